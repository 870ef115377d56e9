"""Mail for local mailboxes only is delivered before its 250 (the queue's
"direct" commit): the 250 means the message is fsynced in every Maildir,
the spool file is never synced and no envelope is written. Anything that
does not go as planned turns it into an ordinary queued message first.
A message on its own is stored instead (one flush before its 250, not
two): the tests of the direct commit keep another transaction open."""

import contextlib
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from conftest import TERNCTL_BIN, spool_footer
from smtp_client import simple_body


def deliver_pids(tern):
    """The daemon's deliver processes (they name themselves tern-deliver)."""
    pids = []
    for pid in tern.children():
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "tern-deliver":
                    pids.append(pid)
        except FileNotFoundError:
            continue
    return sorted(pids)


@contextlib.contextmanager
def deliver_stopped(tern):
    """The (one) deliver process under SIGSTOP for the block; SIGCONT after,
    unless it is gone by then."""
    [pid] = deliver_pids(tern)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def send_parallel(tern, tag, n):
    """n clients at once, one message each, Subject: TAGi; returns the subjects."""
    errors = []

    def send(i):
        try:
            c = tern.client()
            c.ehlo()
            c.deliver("carol@example.test", ["alice@localhost"], simple_body(f"{tag}{i}"))
            c.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return [f"{tag}{i}".encode() for i in range(n)]


@contextlib.contextmanager
def companion(tern):
    """Another client in the middle of its message (its queue file is open
    from the 354 on): while it lasts no message is on its own."""
    c = tern.client()
    c.ehlo()
    c.mail_rcpt_data("dave@example.test", ["bob@localhost"])
    c.send(b"Subject: companion\r\n")
    try:
        yield c
    finally:
        c.close()


def committed_line(tern, qid):
    tern.wait_log(rf"event=committed id={qid} ")  # logged just after the reply
    lines = [ln for ln in tern.log().splitlines() if f"event=committed id={qid} " in ln]
    assert len(lines) == 1, lines
    return lines[0]


def test_in_every_mailbox_when_the_250_comes(tern):
    c = tern.client()
    c.ehlo()
    with companion(tern):
        qid = c.deliver("carol@example.test", ["alice@localhost", "bob@localhost"],
                        simple_body("direct"))
        # No waiting: both copies are already in new/ when the client has its 250.
        for user in ("alice", "bob"):
            [stored] = tern.maildir_messages(user)
            assert f"id {qid}".encode() in stored
            assert stored.startswith(b"Return-Path: <carol@example.test>\r\n"
                                     + f"Delivered-To: {user}@localhost\r\n".encode())
        assert committed_line(tern, qid).endswith(" direct=delivered")
        tern.wait_log(rf"event=removed id={qid} delivered=2 failed=0")
        # Only the content file existed, and it went back to free/ unsynced.
        assert not (tern.spool / "queue" / f"{qid}.env").exists()
        assert not (tern.spool / "queue" / f"{qid}.msg").exists()
        assert sorted(os.listdir(tern.spool / "free")) == [f"{qid}.msg"]
    c.close()


def test_lone_message_is_stored(tern):
    """Nothing else in the works: the message is stored (envelope and footer
    after its content, no ID.env), acknowledged, then delivered; ternctl
    lists it meanwhile from its footer."""
    c = tern.client()
    c.ehlo()
    with deliver_stopped(tern):
        qid = c.deliver("carol@example.test", ["alice@localhost"], simple_body("alone"))
        line = committed_line(tern, qid)
        assert "direct=" not in line and line.endswith(" batch=1"), line
        data = (tern.spool / "queue" / f"{qid}.msg").read_bytes()
        foot = spool_footer(data, qid)
        assert foot is not None, data[-200:]
        assert re.search(r"^rcpt: pending local .*alice@localhost", foot["env"], re.M), foot
        assert f"id {qid}".encode() in data[:foot["content_len"]]
        assert not (tern.spool / "queue" / f"{qid}.env").exists()
        r = subprocess.run([TERNCTL_BIN, "-C", str(tern.conf), "queue", "list"],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0 and r.stdout.splitlines()[1].startswith(qid + " "), r
        assert "alice@localhost" in r.stdout
        r = subprocess.run([TERNCTL_BIN, "-C", str(tern.conf), "queue", "show", qid],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0 and f"id: {qid}\n" in r.stdout, r
        assert "rcpt: pending local <alice@localhost>" in r.stdout, r.stdout
    [stored] = tern.wait_for_messages("alice", settle=0.5)
    # Exactly the content: neither envelope nor footer reached the mailbox.
    assert stored.endswith(data[:foot["content_len"]])
    tern.wait_log(rf"event=removed id={qid} delivered=1 failed=0")
    tern.wait_spool_empty()
    c.close()


@pytest.mark.tern(verbose=True)
def test_stored_messages_go_to_the_deliver_process_together(tern):
    """Stored messages (acknowledged, nobody waits) are delivered in bursts:
    the queue holds their requests for a moment and sends them together,
    instead of waking the deliver process for each message."""
    n = 10
    for i in range(n):
        c = tern.client()
        c.ehlo()
        c.deliver("carol@example.test", ["alice@localhost"], simple_body(f"burst{i}"))
        c.close()
    assert len(tern.wait_for_messages("alice", n=n)) == n
    tern.wait_spool_empty()
    released = [int(k) for k in re.findall(r"event=later-released n=(\d+)", tern.log())]
    # Every one went through the hold, and fewer bursts than messages.
    assert sum(released) == n, released
    assert len(released) < n, released


def test_success_notify_goes_through_the_spool(tern):
    """A success DSN is owed: the message is stored (fsync) before the 250."""
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@localhost>").check(250)
    c.cmd("RCPT TO:<alice@localhost> NOTIFY=SUCCESS").check(250)
    c.cmd("DATA").check(354)
    qid = c.message(simple_body()).check(250).text.split()[-1]
    assert "direct=" not in committed_line(tern, qid)
    tern.wait_for_messages("alice")
    [report] = tern.wait_for_messages("bob")
    assert b"Action: delivered" in report
    c.close()


@pytest.mark.tern(extra="retry_interval 1s")
def test_stalled_deliver_process_still_gets_a_250(tern):
    """The deliver process does not answer: after a second the message is
    stored as any other and acknowledged; delivered once when it resumes."""
    c = tern.client()
    c.ehlo()
    with companion(tern), deliver_stopped(tern):
        t0 = time.monotonic()
        qid = c.deliver("carol@example.test", ["alice@localhost"], simple_body("stalled"))
        waited = time.monotonic() - t0
        tern.wait_log(rf"event=direct-timeout id={qid} inflight=1")
        assert committed_line(tern, qid).endswith(" direct=stored")
        env = (tern.spool / "queue" / f"{qid}.env").read_text()
        assert re.search(r"^rcpt: pending local .*alice@localhost", env, re.M), env
        assert (tern.spool / "queue" / f"{qid}.msg").exists()
        assert tern.maildir_names("alice") == []
        assert 0.9 < waited < 8, waited
    [stored] = tern.wait_for_messages("alice", settle=1.0)
    assert f"id {qid}".encode() in stored
    tern.wait_log(rf"event=removed id={qid} delivered=1 failed=0")
    tern.wait_spool_empty()
    c.close()


@pytest.mark.tern(limits={"connections_per_ip": 50})
def test_many_sessions_at_once(tern):
    """Direct commits of many sessions share the deliver process's batches;
    every message arrives exactly once."""
    n = 30
    sent = send_parallel(tern, "m", n)
    msgs = tern.wait_for_messages("alice", n=n, settle=0.5)
    subjects = sorted(re.search(rb"Subject: (m\d+)", m).group(1) for m in msgs)
    assert subjects == sorted(sent)
    # Each was acknowledged once: delivered first (or, on a machine too busy
    # to deliver within a second, stored first), or stored when it happened
    # to be on its own; with 30 at once some were delivered first.
    assert len(re.findall(r"event=committed id=", tern.log())) == n
    assert re.search(r"event=committed id=\S+ .* direct=delivered", tern.log())
    tern.wait_spool_empty()


def wait_deliver_pids(tern, ok, timeout=10):
    """Polls until ok(the deliver processes' pids); returns them."""
    deadline = time.monotonic() + timeout
    while not ok(pids := deliver_pids(tern)):
        assert time.monotonic() < deadline, pids
        time.sleep(0.05)
    return pids


@pytest.mark.tern(extra="deliver_processes 3", limits={"connections_per_ip": 50})
def test_several_deliver_processes(tern):
    """deliver_processes 3: three of them share the work; one that dies is
    replaced; a reload replaces all three; no message is lost or doubled."""
    first = wait_deliver_pids(tern, lambda p: len(p) == 3)
    sent = send_parallel(tern, "a", 20)
    os.kill(first[0], signal.SIGKILL)
    after_kill = wait_deliver_pids(tern, lambda p: len(p) == 3 and first[0] not in p)
    sent += send_parallel(tern, "b", 20)
    tern.sighup()
    wait_deliver_pids(tern, lambda p: len(p) == 3 and not set(p) & set(after_kill))
    sent += send_parallel(tern, "c", 20)
    msgs = tern.wait_for_messages("alice", n=len(sent), settle=0.5)
    subjects = sorted(re.search(rb"Subject: ([abc]\d+)", m).group(1) for m in msgs)
    assert subjects == sorted(sent)
    # Maildir names carry the delivering process's pid (maildir(5) "P"):
    # after the reload only the new processes delivered.
    new_dir = tern.maildir("alice") / "new"
    c_pids = set()
    for name in tern.maildir_names("alice"):
        if re.search(rb"Subject: c\d+", (new_dir / name).read_bytes()):
            c_pids.add(int(re.search(r"P(\d+)", name).group(1)))
    assert c_pids and c_pids <= set(deliver_pids(tern)), (c_pids, deliver_pids(tern))
    assert not c_pids & set(after_kill)
    tern.wait_spool_empty()
