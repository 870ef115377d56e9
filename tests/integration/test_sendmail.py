"""tern-sendmail: the sendmail(8) interface of scripts. The message goes
through the spool's maildrop folder, so it is delivered when the daemon
runs and kept when it does not."""

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import TERN_BIN

SENDMAIL = str(Path(TERN_BIN).parent / "tern-sendmail")


def sendmail(tern, args, text, user=None):
    cmd = [SENDMAIL, "-C", str(tern.conf)] + args
    if user:
        cmd = ["runuser", "-u", user, "--"] + cmd
    return subprocess.run(cmd, input=text, capture_output=True, timeout=20)


def test_plain_recipients_and_headers_added(tern):
    r = sendmail(tern, ["-f", "bob@localhost", "alice@localhost"],
                 b"Subject: from cron\n\nline one\n.\nnot sent\n")
    assert r.returncode == 0, r.stderr
    [m] = tern.wait_for_messages("alice")
    assert m.startswith(b"Return-Path: <bob@localhost>\r\n")
    assert re.search(rb"Received: by test\.example \(tern\) with local id [0-9a-f]{16}\r\n\t\(uid \d+\); ",
                     m), m[:300]
    # LF became CRLF; a lone dot ended the input (no -i); From, Date and
    # Message-ID were added.
    assert b"Subject: from cron\r\n" in m
    assert m.endswith(b"\r\n\r\nline one\r\n")
    assert b"\r\nFrom: <bob@localhost>\r\n" in m
    assert b"\r\nDate: " in m and b"\r\nMessage-ID: <" in m
    tern.wait_spool_empty()


def test_dash_t_and_dash_i(tern):
    text = (b"From: Bob <bob@localhost>\nTo: Alice <alice@localhost>\n"
            b"Cc: root@localhost\nBcc: bob@localhost\nSubject: t\n\n.\nstill here\n")
    r = sendmail(tern, ["-t", "-i"], text)
    assert r.returncode == 0, r.stderr
    # root is an alias of alice: one copy (de-duplicated), and bob by Bcc.
    [a] = tern.wait_for_messages("alice")
    [b] = tern.wait_for_messages("bob")
    for m in (a, b):
        assert b"Bcc:" not in m
        assert m.endswith(b"\r\n\r\n.\r\nstill here\r\n")
    assert len(tern.maildir_names("alice")) == 1


def test_kept_while_the_daemon_is_down(tern):
    tern.stop()
    r = sendmail(tern, ["alice@localhost"], b"Subject: while down\n\nhello\n")
    assert r.returncode == 0, r.stderr
    drops = [n for n in os.listdir(tern.spool / "maildrop") if not n.startswith(".")]
    assert len(drops) == 1
    tern.start()
    [m] = tern.wait_for_messages("alice")
    assert b"Subject: while down" in m
    assert os.listdir(tern.spool / "maildrop") == []


@pytest.fixture
def open_base():
    """A base folder other users may pass through (pytest's are 0700), as
    /etc/tern and /var/spool are on a real system."""
    base = Path(tempfile.mkdtemp(prefix="tern-sendmail-", dir="/var/tmp"))
    os.chmod(base, 0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_any_local_user_may_send(tern_factory, open_base):
    tern = tern_factory(base=open_base / "t")
    os.chmod(open_base / "t", 0o711)
    r = sendmail(tern, ["alice@localhost"], b"Subject: from nobody\n\nhi\n", user="nobody")
    assert r.returncode == 0, r.stderr
    [m] = tern.wait_for_messages("alice")
    assert re.search(rb"\(uid 65534\)", m)
    # ... but cannot read the spool or the maildrop.
    r = subprocess.run(["runuser", "-u", "nobody", "--", "ls", str(tern.spool / "maildrop")],
                       capture_output=True)
    assert r.returncode != 0


def test_bad_usage(tern):
    r = sendmail(tern, [], b"Subject: x\n\nno recipient\n")
    assert r.returncode == 64
    r = sendmail(tern, ["-Q"], b"")
    assert r.returncode == 64


TERNCTL = str(Path(TERN_BIN).parent / "ternctl")


def test_ternctl_queue_list_show_flush(tern_factory):
    t = tern_factory(extra="route * { via 127.0.0.1:9 }\nretry_interval 1h")
    r = subprocess.run([TERNCTL, "-C", str(t.conf), "queue", "list"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0 and r.stdout == "Mail queue is empty\n", r
    r = sendmail(t, ["-f", "bob@localhost", "someone@far.example"], b"Subject: q\n\nx\n")
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 10
    while "event=deferred" not in t.log():
        assert time.monotonic() < deadline, t.log()[-2000:]
        time.sleep(0.05)
    r = subprocess.run([TERNCTL, "-C", str(t.conf), "queue", "list"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0].startswith("-Queue ID-")
    qid = lines[1].split()[0]
    assert re.fullmatch(r"[0-9a-f]{16}", qid) and lines[1].endswith("bob@localhost")
    assert any(l.strip() == "someone@far.example" for l in lines)
    assert lines[-1] == "-- 1 Kbytes in 1 Request."
    r = subprocess.run([TERNCTL, "-C", str(t.conf), "queue", "show", qid], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0 and "rcpt: pending remote <someone@far.example>" in r.stdout, r
    r = subprocess.run([TERNCTL, "-C", str(t.conf), "queue", "flush"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0, r
    deadline = time.monotonic() + 10
    while "event=flush messages=1" not in t.log():
        assert time.monotonic() < deadline, t.log()[-2000:]
        time.sleep(0.05)


class BsSession:
    """tern-sendmail -bs driven line by line, as an SMTP client would."""

    def __init__(self, tern):
        self.p = subprocess.Popen([SENDMAIL, "-C", str(tern.conf), "-bs"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def reply(self):
        lines = []
        while True:
            line = self.p.stdout.readline().decode()
            assert line.endswith("\r\n"), (lines, line)
            lines.append(line[:-2])
            if line[3] == " ":
                return lines

    def cmd(self, text):
        self.p.stdin.write(text.encode() + b"\r\n")
        self.p.stdin.flush()
        return self.reply()


def test_bs_smtp_on_stdin(tern):
    s = BsSession(tern)
    try:
        assert s.reply() == ["220 test.example ESMTP tern (sendmail -bs)"]
        assert s.cmd("EHLO client") == ["250-test.example", "250-8BITMIME", "250-SIZE 67108864",
                                        "250 ENHANCEDSTATUSCODES"]
        assert s.cmd("RCPT TO:<alice@localhost>") == ["503 5.5.1 MAIL first"]
        assert s.cmd("MAIL FROM:<bob@localhost>") == ["250 2.1.0 Ok"]
        assert s.cmd("RCPT TO:<alice@localhost>") == ["250 2.1.5 Ok"]
        assert s.cmd("RCPT TO:<bad address>") == ["501 5.5.4 address lacks a domain"]
        assert s.cmd("DATA") == ["354 End data with <CR><LF>.<CR><LF>"]
        assert s.cmd("Subject: one\r\nFrom: <bob@localhost>\r\n\r\n..leading dot\r\n.") == \
            ["250 2.0.0 Ok: queued"]
        assert s.cmd("MAIL FROM:<>") == ["250 2.1.0 Ok"]
        assert s.cmd("RCPT TO:<bob@localhost>") == ["250 2.1.5 Ok"]
        assert s.cmd("DATA") == ["354 End data with <CR><LF>.<CR><LF>"]
        assert s.cmd("Subject: two\r\n\r\nsecond\r\n.") == ["250 2.0.0 Ok: queued"]
        assert s.cmd("BDAT 10") == ["502 5.5.1 command not implemented"]
        assert s.cmd("QUIT") == ["221 2.0.0 test.example closing"]
        assert s.p.wait(10) == 0
    finally:
        s.p.kill()
        s.p.wait()
    tern.wait_for_messages("alice")
    tern.wait_for_messages("bob")
    a = tern.maildir_messages("alice")[0]
    assert b"Subject: one\r\n" in a and a.endswith(b"\r\n\r\n.leading dot\r\n")
    assert b"Return-Path: <bob@localhost>" in a
    b = tern.maildir_messages("bob")[0]
    assert b"Return-Path: <>" in b and b.endswith(b"\r\n\r\nsecond\r\n")


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_bs_with_swaks_pipe(tern):
    r = subprocess.run(["swaks", "--pipe", f"{SENDMAIL} -C {tern.conf} -bs",
                        "--from", "bob@localhost", "--to", "alice@localhost",
                        "--header", "Subject: via swaks"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "<-  250 2.0.0 Ok: queued" in r.stdout, r.stdout
    tern.wait_for_messages("alice")
    assert b"Subject: via swaks\r\n" in tern.maildir_messages("alice")[0]
