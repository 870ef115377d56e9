"""A small raw SMTP client for tests where smtplib is too polite, and
helpers to check what tern stored."""

import email.utils
import os
import pwd
import re
import socket
import time

import pytest

ENH_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)")
QID_RE = re.compile(r"queued as ([0-9a-f]{16})(?:\b|$)")
DATE_RE = re.compile(
    r"^(?:(Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?\d{1,2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d{2}:\d{2}:\d{2} [+-]\d{4}( \([A-Za-z0-9+-]+\))?$")


class Reply:
    """One SMTP reply: code (int), lines (the text of each line after the
    code and separator) and raw (the bytes as received)."""

    def __init__(self, code, lines, raw):
        self.code = code
        self.lines = lines
        self.raw = raw

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def enhanced(self):
        """The enhanced status code of the first line ("2.1.0") or None."""
        m = ENH_RE.match(self.lines[0]) if self.lines else None
        return m and m.group(0).strip()

    def check(self, code, enhanced=None, contains=None):
        assert self.code == code, f"expected {code} {enhanced or ''}, got {self.raw!r}"
        if enhanced is not None:
            assert self.enhanced == enhanced, f"expected {code} {enhanced}, got {self.raw!r}"
        if contains is not None:
            assert contains in self.text, f"expected {contains!r} in {self.raw!r}"
        return self

    def __repr__(self):
        return f"Reply({self.raw!r})"


class Client:
    """Raw socket SMTP client: send bytes, read whole (multi-line) replies."""

    def __init__(self, host, port, timeout=10, source=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.timeout = timeout
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        finally:
            self.sock.settimeout(self.timeout)
        if not chunk:
            raise ConnectionError(f"connection closed by server (pending {self.buf!r})")
        self.buf += chunk

    def line(self, timeout=None):
        while b"\r\n" not in self.buf:
            self._fill(timeout or self.timeout)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self, timeout=None):
        raw, lines, code = b"", [], None
        while True:
            line = self.line(timeout)
            raw += line + b"\r\n"
            assert re.match(rb"^\d{3}([ -]|$)", line), f"malformed reply line {line!r}"
            c = int(line[:3])
            assert code is None or c == code, f"code changed inside a reply: {raw!r}"
            code = c
            lines.append(line[4:].decode("utf-8", "replace"))
            if len(line) == 3 or line[3:4] == b" ":
                return Reply(code, lines, raw)

    def replies(self, n, timeout=None):
        return [self.reply(timeout) for _ in range(n)]

    def cmd(self, text, timeout=None):
        """Sends one command line (CRLF added) and reads its reply."""
        if isinstance(text, str):
            text = text.encode()
        self.send(text + b"\r\n")
        return self.reply(timeout)

    def greeting(self):
        return self.reply().check(220)

    def ehlo(self, name="client.example"):
        return self.cmd(f"EHLO {name}").check(250)

    def helo(self, name="client.example"):
        return self.cmd(f"HELO {name}").check(250)

    def no_reply(self, wait=0.5):
        """Asserts that nothing (not even EOF) arrives within `wait` s."""
        if self.buf:
            raise AssertionError(f"unexpected data from server: {self.buf!r}")
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return
        finally:
            self.sock.settimeout(self.timeout)
        raise AssertionError(f"unexpected data from server: {chunk!r}")

    def closed(self, timeout=5):
        """True if the server closes the connection within timeout s
        (anything it still sends is discarded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                if not self.sock.recv(65536):
                    return True
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
        return False

    def mail_rcpt_data(self, sender, rcpts, params=""):
        """MAIL, RCPT for each, DATA: all must succeed (250, 250..., 354)."""
        self.cmd(f"MAIL FROM:<{sender}>{params}").check(250)
        for r in rcpts:
            self.cmd(f"RCPT TO:<{r}>").check(250)
        self.cmd("DATA").check(354)

    def message(self, body, stuff=True):
        """Sends the message (dot-stuffed unless told) and the final dot;
        returns the reply."""
        if isinstance(body, str):
            body = body.encode()
        self.send((dot_stuff(body) if stuff else body) + b".\r\n")
        return self.reply()

    def deliver(self, sender, rcpts, body, params=""):
        """A whole transaction; returns the queue ID of the 250 reply."""
        self.mail_rcpt_data(sender, rcpts, params)
        return queued_id(self.message(body).check(250, "2.0.0"))


def dot_stuff(body):
    """RFC 5321 4.5.2: a line starting with '.' gets one more. body must end
    with CRLF (or be empty)."""
    assert body == b"" or body.endswith(b"\r\n")
    lines = body.split(b"\r\n")
    return b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines)


def queued_id(reply):
    """The 16-hex queue ID of a '250 2.0.0 Ok: queued as ID' reply."""
    if hasattr(reply, "text"):
        code, text = reply.code, reply.text
    else:
        code, text = reply
        text = text.decode() if isinstance(text, bytes) else text
    assert code == 250, f"not queued: {code} {text!r}"
    m = QID_RE.search(text)
    assert m, f"no 'queued as <16 hex>' in {text!r}"
    return m.group(1)


def received_date(stored):
    """The date of tern's Received header (the first one), checked for
    RFC 5322 form and closeness to now."""
    m = re.search(rb"\r\nReceived: [^\r]*\r\n\t[^;\r]*(?:\r\n\t[^;\r]*){0,2}; ([^\r\n]*)\r\n",
                  stored)
    assert m, f"no tern Received header with a date in {stored[:400]!r}"
    date = m.group(1).decode()
    assert DATE_RE.match(date), f"bad Received date {date!r}"
    t = email.utils.parsedate_to_datetime(date).timestamp()
    assert abs(t - time.time()) < 300, f"Received date {date!r} is not now"
    return date


def expected_stored(sender, delivered_to, helo, proto, qid, for_rcpt, date, body,
                    hostname="test.example", ip="127.0.0.1"):
    """The exact bytes of a Maildir file per the protocol contract."""
    head = (f"Return-Path: <{sender}>\r\n"
            f"Delivered-To: {delivered_to}\r\n"
            f"Received: from {helo} ([{ip}])\r\n"
            f"\tby {hostname} (tern) with {proto} id {qid}")
    if for_rcpt is not None:
        head += f"\r\n\tfor <{for_rcpt}>; {date}\r\n"
    else:
        head += f"; {date}\r\n"
    return head.encode() + body


def check_stored(stored, sender, delivered_to, qid, body, for_rcpt=None,
                 helo="client.example", proto="ESMTP"):
    date = received_date(stored)
    exp = expected_stored(sender, delivered_to, helo, proto, qid, for_rcpt, date, body)
    assert stored == exp


def simple_body(subject="test", text="hello", msgid=None):
    hdr = f"From: bob@example.test\r\nTo: alice@localhost\r\nSubject: {subject}\r\n"
    if msgid:
        hdr += f"Message-ID: <{msgid}>\r\n"
    return (hdr + f"\r\n{text}\r\n").encode()


def is_root():
    return os.geteuid() == 0


def uid_of(name):
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


requires_root = pytest.mark.skipif(not is_root(), reason="needs root")
