"""ternctl queue hold/release/delete, mailq's held mark and ternctl status.
The commands go to the queue process on spool/control; a message in
delivery is held or deleted only when its attempt ends."""

import re
import socket
import subprocess
import threading
import time

from conftest import TERNCTL_BIN, free_port
from test_sendmail import sendmail


def ctl(t, *args):
    return subprocess.run([TERNCTL_BIN, "-C", str(t.conf), *args], capture_output=True,
                          text=True, timeout=20)


def queued_id(t, rcpt="someone@far.example"):
    r = sendmail(t, ["-f", "bob@localhost", rcpt], b"Subject: q\n\nx\n")
    assert r.returncode == 0, r.stderr
    m = None
    deadline = time.monotonic() + 10
    while m is None:
        m = re.search(r"event=deferred id=([0-9a-f]{16})", t.log())
        assert time.monotonic() < deadline, t.log()[-2000:]
        time.sleep(0.05)
    return m.group(1)


def test_hold_release_delete(tern_factory):
    t = tern_factory(extra="route * { via 127.0.0.1:9 }\nretry_interval 1h")
    qid = queued_id(t)
    r = ctl(t, "queue", "hold", qid)
    assert (r.returncode, r.stdout) == (0, f"ok {qid} held\n"), r
    t.wait_log(rf"event=held id={qid} recipients=1")
    r = ctl(t, "queue", "hold", qid)
    assert (r.returncode, r.stderr) == (1, f"error {qid} is already held\n"), r
    lines = ctl(t, "queue", "list").stdout.splitlines()
    assert lines[1].startswith(qid + "!"), lines
    assert "rcpt: held remote <someone@far.example>" in ctl(t, "queue", "show", qid).stdout
    # Held survives a restart: recovered, stored, never tried.
    t.restart()
    t.wait_log(r"event=recovery messages=1 ")
    time.sleep(0.3)
    after = t.log().split(f"event=recovered id={qid}")[-1]
    assert f"event=held id={qid}" in after and "event=deferred" not in after, after
    r = ctl(t, "status")
    assert r.returncode == 0 and "queue held 1\n" in r.stdout, r
    r = ctl(t, "queue", "release", qid)
    assert (r.returncode, r.stdout) == (0, f"ok {qid} released\n"), r
    t.wait_log(rf"event=released id={qid} recipients=1")
    t.wait_log(rf"(?s)event=released.*event=deferred id={qid}")
    assert ctl(t, "queue", "list").stdout.splitlines()[1].startswith(qid + " ")
    r = ctl(t, "queue", "release", qid)
    assert (r.returncode, r.stderr) == (1, f"error {qid} is not held\n"), r
    r = ctl(t, "queue", "delete", qid)
    assert (r.returncode, r.stdout) == (0, f"ok {qid} deleted\n"), r
    t.wait_log(rf"event=deleted id={qid} from=<bob@localhost> undelivered=1")
    assert t.spool_files() == []
    # No bounce to the sender.
    time.sleep(0.5)
    assert t.maildir_names("bob") == [] and "dsn-queued" not in t.log()
    r = ctl(t, "queue", "delete", qid)
    assert (r.returncode, r.stderr) == (1, f"error no queued message {qid}\n"), r
    r = ctl(t, "queue", "hold", "xyz")
    assert r.returncode == 2 and r.stderr == "ternctl: not a queue ID: xyz\n", r


def test_delete_held_message(tern_factory):
    t = tern_factory(extra="route * { via 127.0.0.1:9 }\nretry_interval 1h")
    qid = queued_id(t)
    assert ctl(t, "queue", "hold", qid).returncode == 0
    t.wait_log(rf"event=held id={qid}")
    r = ctl(t, "queue", "delete", qid)
    assert (r.returncode, r.stdout) == (0, f"ok {qid} deleted\n"), r
    t.wait_log(rf"event=deleted id={qid} from=<bob@localhost> held=1")
    assert t.spool_files() == []
    assert "queue held 0\n" in ctl(t, "status").stdout


class StallingPeer:
    """Accepts one connection and says nothing until go(); then `reply`."""

    def __init__(self, reply):
        self.port = free_port()
        self.reply = reply
        self.event = threading.Event()
        self.accepted = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.sock.settimeout(30)
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        self.accepted.set()
        self.event.wait(30)
        try:
            c.sendall(self.reply)
            c.close()
        except OSError:
            pass

    def close(self):
        self.event.set()
        self.sock.close()
        self.thread.join(5)


def test_hold_and_delete_wait_for_the_delivery_in_progress(tern_factory):
    for verb, after in (("hold", "held"), ("delete", "deleted")):
        peer = StallingPeer(b"421 4.3.2 busy\r\n")
        try:
            t = tern_factory(extra=f"route * {{ via 127.0.0.1:{peer.port} }}\n"
                             "retry_interval 1h")
            r = sendmail(t, ["-f", "bob@localhost", "someone@far.example"], b"Subject: q\n\nx\n")
            assert r.returncode == 0, r.stderr
            assert peer.accepted.wait(10)
            qid = re.search(r"event=picked-up id=([0-9a-f]{16})", t.log()).group(1)
            assert "queue active 1\n" in ctl(t, "status").stdout
            r = ctl(t, "queue", verb, qid)
            assert r.stdout == f"ok {qid} will be {after} when the delivery in progress ends\n", r
            time.sleep(0.3)
            assert f"event={verb}-requested id={qid}" in t.log()
            assert f"event={after} id={qid}" not in t.log()
            peer.event.set()
            if verb == "hold":
                t.wait_log(rf"event=held id={qid} recipients=1")
                assert "queue held 1\n" in ctl(t, "status").stdout
                assert ctl(t, "queue", "list").stdout.splitlines()[1].startswith(qid + "!")
            else:
                t.wait_log(rf"event=deleted id={qid} from=<bob@localhost> undelivered=1")
                assert t.spool_files() == []
            assert f"proc=queue level=info event=deferred id={qid}" not in t.log()
            t.stop()
        finally:
            peer.close()


def test_status(tern):
    c = tern.client()
    r = ctl(tern, "status")
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0] == "ok"
    procs = [l.split() for l in lines if l.startswith("process ")]
    roles = sorted(p[2] for p in procs)
    assert roles == ["deliver", "mta", "parent", "queue", "smtp", "smtp"], lines
    assert [p[1] for p in procs if p[2] == "parent"] == [str(tern.pid)]
    assert sorted(int(p[1]) for p in procs if p[2] != "parent") == sorted(tern.children())
    assert all(len(p) == 4 for p in procs)
    assert f"listen 127.0.0.1:{tern.port} mx" in lines
    assert "connections 1" in lines
    assert lines[-3:] == ["queue active 0", "queue deferred 0", "queue held 0"]
    c.close()


def test_retry_time_survives_restart(tern_factory):
    """A deferred message keeps its next attempt time across a restart (no
    burst of retries at start); a flush still tries it at once."""
    t = tern_factory(extra="route * { via 127.0.0.1:9 }\nretry_interval 1h")
    qid = queued_id(t)
    assert re.search(rf"event=deferred id={qid} pending=1 retry_in=3600s", t.log()), t.log()
    t.restart()
    t.wait_log(rf"event=recovered id={qid}")
    t.wait_log(rf"(?s)event=recovered id={qid}.*event=deferred id={qid} retry_in=")
    after = t.log().split(f"event=recovered id={qid}")[-1]
    wait = int(re.search(rf"event=deferred id={qid} retry_in=(\d+)s", after).group(1))
    assert 3500 <= wait <= 3600, after
    time.sleep(1)
    after = t.log().split(f"event=recovered id={qid}")[-1]
    assert "pending=1" not in after, after  # no attempt was made
    r = ctl(t, "queue", "flush")
    assert r.returncode == 0, r
    t.wait_log(rf"(?s)event=recovered id={qid}.*event=deferred id={qid} pending=1 retry_in=")
