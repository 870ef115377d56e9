"""tern without -d: it goes into the background and logs to syslog. Every
process, the chrooted and filtered smtp workers too, writes its lines to
the socket `syslog_socket` names (here a datagram socket the test reads),
and the SMTP dialogue carries nothing but SMTP."""

import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import TERN_BIN, Tern, _ppid, alive, descendants_of
from smtp_client import simple_body


class SyslogSink:
    """A datagram socket like /dev/log; keeps every line it receives."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)
        self.sock.settimeout(0.2)
        self.lines = []
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done:
            try:
                self.lines.append(self.sock.recv(65536).decode(errors="replace"))
            except socket.timeout:
                continue
            except OSError:
                return

    def text(self):
        return "\n".join(self.lines)

    def wait_for(self, needle, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return True
            time.sleep(0.05)
        return needle in self.text()

    def close(self):
        self.done = True
        self.thread.join(2)
        self.sock.close()


def daemon_pid(t, timeout=10):
    """The background parent: the queue's pidfile names the queue, its parent is tern."""
    pidfile = t.spool / "queue.pid"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            qpid = int(pidfile.read_text())
            r = _ppid(qpid)
            if r:
                return r[0]
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.05)
    pytest.fail("no queue.pid: the daemon did not start")


def stop_daemon(pid):
    procs = [pid] + descendants_of(pid)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while any(alive(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    for p in procs:
        if alive(p):
            os.kill(p, signal.SIGKILL)


def test_background_daemon_logs_to_syslog(tmp_path):
    sink = SyslogSink(tmp_path / "log")
    t = Tern(tmp_path / "tern", extra=f"syslog_socket {sink.path}\n")
    pid = None
    try:
        r = subprocess.run([TERN_BIN, "-f", str(t.conf)], capture_output=True, timeout=20)
        assert r.returncode == 0, r.stderr
        pid = daemon_pid(t)
        assert alive(pid)	# `tern` returned; the daemon goes on in the background
        assert sink.wait_for("proc=parent level=info event=ready"), sink.text()
        for n in range(3):
            c = socket.create_connection((t.host, t.port), timeout=10)
            f = c.makefile("rb")
            replies = [f.readline()]
            for cmd in (b"EHLO client.example", b"MAIL FROM:<bob@example.test>",
                        b"RCPT TO:<alice@localhost>", b"DATA"):
                c.sendall(cmd + b"\r\n")
                line = f.readline()
                while line[3:4] == b"-":
                    line = f.readline()
                replies.append(line)
            c.sendall(simple_body(f"message {n}") + b".\r\nQUIT\r\n")
            replies += [f.readline(), f.readline()]
            rest = f.read()
            c.close()
            codes = [x[:3] for x in replies]
            assert codes == [b"220", b"250", b"250", b"250", b"354", b"250", b"221"], replies
            assert rest == b"", rest	# nothing after 221: no log line on the wire
        got = b"".join(t.wait_for_messages("alice", n=3))
        for n in range(3):
            assert b"Subject: message %d" % n in got
        # The worker's own lines, from inside its chroot and filter.
        assert sink.wait_for("proc=smtp level=info event=disconnect"), sink.text()
        text = sink.text()
        assert text.count("proc=smtp level=info event=connect") == 3, text
        assert text.count("event=queued") == 3, text
        assert "event=delivered" in text and "proc=queue" in text
        assert "event=child-died" not in text, text
        # RFC 3164 as syslog(3) writes it: facility mail (2), severity info (6).
        line = next(x for x in sink.lines if "event=queued" in x)
        assert line.startswith("<22>") and " tern[" in line, line
        # The syslog daemon restarts (a new socket at the same path): after
        # a reload the new workers log to it.
        sink.close()
        os.unlink(sink.path)
        sink = SyslogSink(tmp_path / "log")
        os.kill(pid, signal.SIGHUP)
        assert sink.wait_for("event=reloaded generation=1"), sink.text()
        # Until the old workers have stopped accepting, one of them may
        # take a connection (its lines go to the old socket): try a few.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            c = socket.create_connection((t.host, t.port), timeout=10)
            assert c.makefile("rb").readline().startswith(b"220")
            c.sendall(b"QUIT\r\n")
            c.recv(100)
            c.close()
            if sink.wait_for("proc=smtp level=info event=disconnect", timeout=1):
                break
        assert "proc=smtp level=info event=disconnect" in sink.text(), sink.text()
    finally:
        if pid:
            stop_daemon(pid)
        sink.close()
