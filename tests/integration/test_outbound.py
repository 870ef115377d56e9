"""Outbound delivery (src/deliver/mta.c, src/smtp/client.c, the queue's
relay jobs and bounces) against real peers on loopback.

Peers: Postfix's smtp-sink (dumps every transaction to a file; -r/-f make
it answer chosen commands with 4xx/5xx), a second tern as an MX, and the
local unbound of dns_fixture.py serving the test zones. Mail reaches the
outbound side through a submission listener from 127.0.0.1 (a trusted
network by default) or through an alias that points at a foreign address.

MX delivery always uses port 25, so those tests bind 127.X.Y.n:25 (X, Y
random per test, so that parallel runs do not collide) and need root.
"""

import base64
import email
import email.policy
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import TERN_BIN, USER_PASSWORDS, free_port, has_ipv6_loopback
from dns_fixture import unbound_server  # noqa: F401
from smtp_client import is_root
from tls_helpers import SERVER_NAME, start_submission, tls_block

SMTP_SINK = os.environ.get("SMTP_SINK_BIN", "/usr/sbin/smtp-sink")
needs_port25 = pytest.mark.skipif(
    not is_root(), reason="MX delivery goes to port 25: binding 127.X.Y.n:25 needs root")
pytestmark = pytest.mark.skipif(not Path(SMTP_SINK).exists(),
                                reason=f"{SMTP_SINK} missing (Debian package postfix)")

SENDER = "alice@localhost"


def body(subject="outbound", text="hello", extra=b""):
    """A message with Date and Message-ID, so that submission adds nothing
    and the queued bytes are our Received header + exactly this."""
    return (f"From: alice@localhost\r\nTo: someone@peer.test\r\n"
            f"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{subject}.{random.getrandbits(32):08x}@client.example>\r\n"
            f"Subject: {subject}\r\n\r\n{text}\r\n"
            f".a line starting with a dot\r\n..two dots\r\n\r\n"
            f"last line\r\n").encode() + extra


# ---- peers: smtp-sink

def _listening(ip, port):
    """Is something listening on ip:port (TCP, IPv4)?"""
    a = socket.inet_aton(ip)
    want = f"{a[::-1].hex().upper()}:{port:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        return any(line.split()[1] == want and line.split()[3] == "0A" for line in f)


class Sink:
    """One smtp-sink on ip:port dumping each transaction into its folder
    (one file each). Waits for the listening socket (no test session, so
    the counters count only tern's)."""

    def __init__(self, workdir, ip, port, opts=()):
        self.dir = Path(workdir)
        self.dumps_dir = self.dir / "dump"
        self.ip, self.port, self.opts = ip, port, list(opts)
        self.proc = None
        self.starts = 0

    def start(self, opts=None):
        if opts is not None:
            self.opts = list(opts)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        out = open(self.dir / f"counters.{self.starts}", "wb")
        cmd = [SMTP_SINK, *(["-u", "root"] if is_root() else []), "-c",
               "-d", f"{self.dumps_dir}/%Y%m%d%H%M%S.", *self.opts,
               f"{self.ip}:{self.port}", "20"]
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        deadline = time.monotonic() + 10
        while not _listening(self.ip, self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"smtp-sink {cmd} did not start: " +
                                   (self.dir / f"counters.{self.starts}").read_text())
            time.sleep(0.02)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def files(self):
        if not self.dumps_dir.exists():
            return []
        return sorted(p for p in self.dumps_dir.iterdir() if p.is_file())

    def dumps(self):
        return [parse_dump(p.read_bytes()) for p in self.files()]

    def messages(self):
        """Messages counted by the running sink (-c: "mesg=N", updated at
        each end of data)."""
        text = (self.dir / f"counters.{self.starts}").read_bytes()
        found = re.findall(rb"mesg=(\d+)", text)
        return int(found[-1]) if found else 0

    def wait_dumps(self, n, timeout=10):
        """The dumps once there are n. Call it after tern logged event=sent:
        the sink has then answered the final dot, so the files are whole."""
        deadline = time.monotonic() + timeout
        while len(self.files()) < n:
            assert time.monotonic() < deadline, f"{len(self.files())} of {n} dumps at {self.dir}"
            time.sleep(0.05)
        return self.dumps()

    def sessions(self):
        """Sessions ended, by the running sink's counters (-c: "sess=N")."""
        text = (self.dir / f"counters.{self.starts}").read_bytes()
        found = re.findall(rb"sess=(\d+)", text)
        return int(found[-1]) if found else 0

    def wait_messages(self, n, timeout=5):
        """Polls the counters until n messages (the sink may print them a
        moment after its reply)."""
        deadline = time.monotonic() + timeout
        while self.messages() < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages()


def parse_dump(data):
    """smtp-sink's dump: X-* lines, its 3-line Received header, the message
    as received with LF line ends (dots unstuffed), an empty line."""
    m = re.match(rb"((?:X-[A-Za-z-]+: [^\n]*\n)+)Received: [^\n]*\n\t[^\n]*\n\t[^\n]*\n", data)
    assert m, f"not a smtp-sink dump: {data[:300]!r}"
    fields = {}
    for line in m.group(1).decode().splitlines():
        k, _, v = line.partition(": ")
        fields.setdefault(k, []).append(v)
    rest = data[m.end():]
    assert rest.endswith(b"\n"), rest[-50:]
    return {"mail": fields["X-Mail-Args"][0], "rcpts": fields.get("X-Rcpt-Args", []),
            "helo": fields.get("X-Helo-Args", [None])[0], "proto": fields["X-Client-Proto"][0],
            "message": rest[:-1]}


def lf(data):
    """CRLF -> LF, as the sink writes the message (tern never sends a bare LF)."""
    assert b"\n" not in data.replace(b"\r\n", b""), "bare LF in a message"
    return data.replace(b"\r\n", b"\n")


@pytest.fixture
def sinks(tmp_path):
    started = []

    def make(ip="127.0.0.1", port=None, opts=(), start=True):
        s = Sink(tmp_path / f"sink{len(started)}", ip, port or free_port(), opts)
        started.append(s)
        return s.start() if start else s

    yield make
    for s in started:
        s.stop()


# ---- addresses for MX peers

@pytest.fixture
def net():
    """A random 127.X.Y.0/24 whose .2-.5 port 25 is free, as "127.X.Y"."""
    for _ in range(20):
        prefix = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}"
        if not any(_listening(f"{prefix}.{i}", 25) for i in range(2, 6)) and \
                not _listening("0.0.0.0", 25):
            return prefix
    pytest.skip("no free 127.X.Y.0/24 with port 25 unused")


# ---- tern A (the sender) and B (a tern MX)

def wait_log(t, pattern, timeout=10, count=1):
    """Polls t's log until `pattern` (a regex) matches `count` times;
    returns the matches."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        found = rx.findall(t.log())
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            t.fail_with_log(f"log: {pattern!r} seen {len(found)} of {count} times "
                            f"after {timeout} s")
        time.sleep(0.05)


def log_lines(t, *words):
    """The log lines that contain every one of words."""
    return [ln for ln in t.log().splitlines() if all(w in ln for w in words)]


def sender_tern(tern_factory, dns=None, extra="", **options):
    """Tern A: the mx listener, a submission listener ("sub", tls none,
    relaying for 127.0.0.1), DNS at `dns` (an unbound_server), retries
    after 1 s."""
    text = "retry_interval 1s\n" + (f"dns_server {dns.address}\n" if dns else "") + extra
    return tern_factory(listeners={"sub": "mode submission"}, extra=text, **options)


def submit(t, rcpts, msg, sender=SENDER, params="", ehlo="client.example"):
    """One transaction through A's submission listener; the queue ID."""
    c = t.client(port=t.ports["sub"])
    c.ehlo(ehlo)
    qid = c.deliver(sender, rcpts, msg, params)
    c.cmd("QUIT").check(221)
    return qid


def peer_tern(tern_factory, ip=None, hostname="mx1.peer.test", extra="", **options):
    """Tern B: domain peer.test (users alice, bob, jürgen) on ip:25 (an MX)
    or, without ip, on 127.0.0.1 at a free port (for a route)."""
    t = tern_factory(start=False, port=25 if ip else None,
                     extra="domain peer.test { users users.passwd; maildir mail/%d/%u }\n"
                     + extra, **options)
    if ip:
        t.host = ip
    t.hostname = hostname
    t.write_files()
    return t.start()


def a_received(qid, rcpt=None, helo="client.example", nl=rb"\r\n"):
    """Regex (bytes) of A's Received header (line ends nl): "for <rcpt>"
    only with one recipient."""
    head = (rb"Received: from " + re.escape(helo.encode()) + rb" \(\[127\.0\.0\.1\]\)" + nl +
            rb"\tby test\.example \(tern\) with ESMTP id " + qid.encode())
    if rcpt:
        head += nl + rb"\tfor <" + re.escape(rcpt.encode()) + rb">"
    return head + rb"; [^\r\n]+" + nl


def events(t, event, qid):
    return log_lines(t, f"event={event} ", f"id={qid} ")


def wait_bounce(t, qid, user="alice", domain="localhost", timeout=10):
    """The bounce (RFC 3464) about message qid in user@domain's Maildir at
    t: checks its form, returns its text (CRLF -> LF)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in t.maildir_messages(user, domain)
                 if f"X-Tern-Queue-ID: {qid}\r\n".encode() in m]
        if found:
            break
        if time.monotonic() > deadline:
            t.fail_with_log(f"no bounce about {qid} for {user}@{domain}")
        time.sleep(0.05)
    [raw] = found
    assert raw.startswith(b"Return-Path: <>\r\n"), raw[:200]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") in ("delivery-status", "global-delivery-status")
    parts = list(msg.iter_parts())
    assert parts[1].get_content_type() in ("message/delivery-status",
                                           "message/global-delivery-status"), parts
    return raw.decode("utf-8", "replace").replace("\r\n", "\n")


def check_failed(report, rcpt, status=None, diagnostic=None):
    """The report has exactly one per-recipient block for rcpt with Action
    failed (and that Status, and a Diagnostic-Code starting so, if given);
    returns the block."""
    # RFC 6533 3: in message/delivery-status a UTF-8 address is utf-8
    # typed with its non-ASCII characters as \x{HEX}.
    enc = "".join(ch if ord(ch) < 128 else f"\\x{{{ord(ch):X}}}" for ch in rcpt)
    final = (f"rfc822; ?{re.escape(rcpt)}" if enc == rcpt
             else f"utf-8; ?({re.escape(enc)}|{re.escape(rcpt)})")
    blocks = [b for b in report.split("\n\n") if re.search(rf"^Final-Recipient: {final}$", b, re.M)]
    assert len(blocks) == 1, report
    b = blocks[0]
    assert re.search(r"^Action: failed$", b, re.M), b
    if status:
        assert re.search(rf"^Status: {re.escape(status)}$", b, re.M), b
    if diagnostic:
        assert re.search(rf"^Diagnostic-Code: smtp; ?{re.escape(diagnostic)}", b, re.M), b
    return b


BDAT_SIZE_BUG = (
    "daemon bug: 'BDAT n LAST' counts the message as received (envelope size, e.g. 209) "
    "but the queued content sent after it also holds tern's Received header: the peer "
    "stores a message cut short by that header's length and reads the rest as commands "
    "(500 5.5.2 ... too many errors); MAIL SIZE= is too small by as much")


# ---- smarthost route

def test_smarthost_byte_exact(tern_factory, sinks):
    sink = sinks()
    a = sender_tern(tern_factory, extra=f"route * {{ via 127.0.0.1:{sink.port} }}\n")
    msg = body("smarthost", extra=b"x" * 998 + b"\r\n.\r\n")
    qid = submit(a, ["someone@peer.test"], msg)
    wait_log(a, rf"event=removed id={qid} delivered=1 failed=0")
    [d] = sink.wait_dumps(1)
    assert d["mail"].split()[0] == f"<{SENDER}>"
    assert d["rcpts"] == ["<someone@peer.test>"]
    assert d["helo"] == "test.example" and d["proto"] == "ESMTP"
    # What tern queued: its Received header, then the message as sent.
    expected = a_received(qid, "someone@peer.test", nl=rb"\n") + re.escape(lf(msg))
    assert re.fullmatch(expected, d["message"], re.S), d["message"][:400]
    [sent] = events(a, "sent", qid)
    assert "proc=mta" in sent and "to=<someone@peer.test>" in sent
    assert f"relay=[127.0.0.1]:{sink.port}" in sent and "code=250" in sent, sent
    a.wait_spool_empty(5)
    assert sink.wait_messages(1) == 1
    assert not log_lines(a, "event=tls ")    # the sink offers no STARTTLS: clear text


def test_relay_journal_says_who_reports(tern_factory, sinks):
    """The mta's journal lines (src/queue/journal.h) end in " r" when the
    peer did not announce DSN, so that a NOTIFY=SUCCESS report is ours to
    send after a crash (RFC 3461 5.2), and not when it did. The journal is
    read while a third job (a peer that accepts the connection and never
    greets) keeps the queue from emptying it."""
    nodsn, dsn = sinks(opts=["-N"]), sinks()
    with socket.socket() as stall:
        stall.bind(("127.0.0.1", 0))
        stall.listen(8)
        stall.settimeout(10)
        a = sender_tern(tern_factory, extra=(
            f"route stall.example {{ via 127.0.0.1:{stall.getsockname()[1]} }}\n"
            f"route nodsn.example {{ via 127.0.0.1:{nodsn.port} }}\n"
            f"route dsn.example {{ via 127.0.0.1:{dsn.port} }}\n"))
        submit(a, ["x@stall.example"], body("stall"))
        conn, _ = stall.accept()	# that job is in flight now
        with conn:
            q1 = submit(a, ["y@nodsn.example"], body("nodsn"))
            q2 = submit(a, ["z@dsn.example"], body("dsn"))
            wait_log(a, rf"event=sent id={q1} ")
            wait_log(a, rf"event=sent id={q2} ")
            lines = (a.spool / "relay.journal").read_text().splitlines()
            assert f"{q1} 0 r" in lines and f"{q2} 0" in lines, lines


def test_one_transaction_per_domain(tern_factory, sinks):
    """An alias to foreign addresses (the mx listener): the two peer.test
    recipients go in one transaction, other.test in another."""
    sink = sinks()
    a = sender_tern(tern_factory, extra=f"route * {{ via 127.0.0.1:{sink.port} }}\n",
                    aliases={"team": "x@peer.test, other@other.test, y@peer.test"})
    c = a.client()
    c.ehlo()
    msg = body("alias")
    qid = c.deliver("someone@outside.test", ["team@localhost"], msg)
    wait_log(a, rf"event=removed id={qid} delivered=3 failed=0")
    dumps = sink.wait_dumps(2)
    by_rcpts = sorted((sorted(d["rcpts"]), d) for d in dumps)
    assert [r for r, _ in by_rcpts] == [["<other@other.test>"],
                                        ["<x@peer.test>", "<y@peer.test>"]]
    for _, d in by_rcpts:
        assert d["mail"].split()[0] == "<someone@outside.test>"
        # One recipient at SMTP level: the header names team@localhost.
        assert re.fullmatch(a_received(qid, "team@localhost", nl=rb"\n") + re.escape(lf(msg)),
                            d["message"], re.S), d["message"][:300]
    assert sink.wait_messages(2) == 2
    assert len(events(a, "sent", qid)) == 3
    a.wait_spool_empty(5)


# ---- MX routing (port 25)

def mx_zone(net, hostname="test.example"):
    return ["peer.test MX 10 mx1.peer.test",
            "peer.test MX 20 mx2.peer.test",
            f"mx1.peer.test A {net}.2",
            f"mx2.peer.test A {net}.3",
            f"implicit.test A {net}.4",
            "nullmx.test MX 0 .",
            f"loop.test MX 10 {hostname}",
            f"{hostname} A {net}.5",
            "servfail.test SERVFAIL"]


class NoChunking(threading.Thread):
    """A TCP relay ip:port -> 127.0.0.1:target that removes CHUNKING from
    the server's EHLO reply, so that tern A uses DATA with a tern peer."""

    def __init__(self, ip, port, target):
        super().__init__(daemon=True)
        self.target = target
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((ip, port))
        self.ls.listen(8)
        self.ls.settimeout(0.2)
        self.socks = []
        self.stopping = False

    def run(self):
        while not self.stopping:
            try:
                c, _ = self.ls.accept()
            except (socket.timeout, OSError):
                continue
            s = socket.create_connection(("127.0.0.1", self.target))
            self.socks += [c, s]
            threading.Thread(target=self.pump, args=(c, s, False), daemon=True).start()
            threading.Thread(target=self.pump, args=(s, c, True), daemon=True).start()

    @staticmethod
    def pump(src, dst, from_server):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            if from_server:
                data = NoChunking.strip(data)
            try:
                dst.sendall(data)
            except OSError:
                return

    @staticmethod
    def strip(data):
        """The EHLO reply without its CHUNKING line (its last line then
        gets the "250 " form)."""
        lines = data.split(b"\r\n")
        kept = [ln for ln in lines if ln[4:].strip().upper() != b"CHUNKING"]
        if len(kept) != len(lines) and len(kept) >= 2 and kept[-1] == b"":
            kept[-2] = kept[-2][:3] + b" " + kept[-2][4:]
        return b"\r\n".join(kept)

    def stop(self):
        self.stopping = True
        self.join(2)
        for s in [self.ls] + self.socks:
            s.close()


@pytest.fixture
def relays():
    started = []

    def make(ip, port, target):
        r = NoChunking(ip, port, target)
        started.append(r)
        r.start()
        return r

    yield make
    for r in started:
        r.stop()


def mixed_results(a, b, net):
    """A relays to B (a tern, MX of peer.test): bob is accepted, nobody is
    refused 550 5.1.1 in the same transaction."""
    msg = body("mixed")
    qid = submit(a, ["bob@peer.test", "nobody@peer.test"], msg)
    wait_log(a, rf"event=removed id={qid} ")
    sent = events(a, "sent", qid)
    assert len(sent) == 1, a.log()[-3000:]
    sent = sent[0]
    assert "to=<bob@peer.test>" in sent and f"relay=mx1.peer.test[{net}.2]:25" in sent, sent
    [got] = b.wait_for_messages("bob", "peer.test")
    assert got.endswith(msg), f"B stored {len(got)} octets, ending {got[-40:]!r}"
    # A's Received header (two recipients: no "for"), then the message.
    assert re.search(a_received(qid) + re.escape(msg) + rb"\Z", got), got[:600]
    assert got.startswith(b"Return-Path: <alice@localhost>\r\nDelivered-To: bob@peer.test\r\n")
    assert re.search(rb"\r\nReceived: from test\.example \(\[127\.[0-9.]+\]\)\r\n"
                     rb"\tby mx1\.peer\.test \(tern\) with ESMTP id [0-9a-f]{16}", got), got[:400]
    [bounced] = events(a, "bounced", qid)
    assert "to=<nobody@peer.test>" in bounced and "code=550 status=5.1.1" in bounced, bounced
    [failed] = events(a, "failed", qid)
    assert "to=nobody@peer.test" in failed and "5.1.1" in failed, failed
    assert log_lines(a, f"event=removed id={qid} delivered=1 failed=1")
    # The bounce to alice@localhost (local at A) names nobody only.
    report = wait_bounce(a, qid)
    check_failed(report, "nobody@peer.test", "5.1.1",
                 "550 5.1.1 <nobody@peer.test>: Recipient address")
    assert not re.search(r"^Final-Recipient: rfc822; ?bob@", report, re.M), report
    a.wait_spool_empty(5)
    # B: one session (besides the fixture's), EHLO MAIL RCPT RCPT DATA|BDAT
    # QUIT, one message, one accepted recipient, the refused one an error.
    wait_log(b, r"event=disconnect [^\n]*messages=1 ")
    sessions = [ln for ln in log_lines(b, "event=disconnect ") if "commands=1 " not in ln]
    assert len(sessions) == 1, sessions
    assert "commands=6 messages=1 rcpts=1 errors=1" in sessions[0], sessions
    [queued] = log_lines(b, "event=queued ")
    assert "nrcpt=1" in queued, queued


@needs_port25
def test_mixed_results_tern_mx(tern_factory, unbound_server, net):
    """B offers CHUNKING: A sends BDAT."""
    dns = unbound_server(mx_zone(net))
    b = peer_tern(tern_factory, ip=f"{net}.2")
    a = sender_tern(tern_factory, dns)
    mixed_results(a, b, net)


@needs_port25
def test_mixed_results_tern_mx_without_chunking(tern_factory, unbound_server, relays, net):
    """The same through a relay that hides B's CHUNKING (A uses DATA)."""
    dns = unbound_server(mx_zone(net))
    b = peer_tern(tern_factory)
    relays(f"{net}.2", 25, b.port)
    a = sender_tern(tern_factory, dns)
    mixed_results(a, b, net)


@needs_port25
def test_mx_preference_and_fallback(tern_factory, unbound_server, sinks, net):
    dns = unbound_server(mx_zone(net))
    mx1 = sinks(f"{net}.2", 25)
    mx2 = sinks(f"{net}.3", 25)
    a = sender_tern(tern_factory, dns)
    q1 = submit(a, ["one@peer.test"], body("first"))
    wait_log(a, rf"event=removed id={q1} delivered=1")
    [d] = mx1.wait_dumps(1)
    assert d["rcpts"] == ["<one@peer.test>"]
    assert f"relay=mx1.peer.test[{net}.2]:25" in events(a, "sent", q1)[0]
    assert mx2.files() == []
    mx1.stop()
    q2 = submit(a, ["two@peer.test"], body("second"))
    wait_log(a, rf"event=removed id={q2} delivered=1")
    [d] = mx2.wait_dumps(1)
    assert d["rcpts"] == ["<two@peer.test>"]
    assert f"relay=mx2.peer.test[{net}.3]:25" in events(a, "sent", q2)[0]
    assert events(a, "connect-failed", q2), "the pref-10 host was not tried first"
    assert f"peer=mx1.peer.test[{net}.2]:25" in events(a, "connect-failed", q2)[0]
    assert len(mx1.files()) == 1
    a.wait_spool_empty(5)


@needs_port25
@pytest.mark.parametrize("opt,error", [
    ("-Q", "greeting: 421 "),                          # a 421 greeting
    ("-q", "connection closed by the server"),          # closed before any greeting
])
def test_refused_greeting_tries_next_mx(tern_factory, unbound_server, sinks, net, opt, error):
    """RFC 5321 5.1: the pref-10 MX greets 421 (smtp-sink -Q connect) or
    hangs up at once (-q connect): the same attempt goes on to the pref-20
    MX, no deferral."""
    dns = unbound_server(mx_zone(net))
    mx1 = sinks(f"{net}.2", 25, opts=[opt, "connect"])
    mx2 = sinks(f"{net}.3", 25)
    a = sender_tern(tern_factory, dns)
    qid = submit(a, ["one@peer.test"], body("greet"))
    wait_log(a, rf"event=removed id={qid} delivered=1 failed=0")
    [d] = mx2.wait_dumps(1)
    assert d["rcpts"] == ["<one@peer.test>"]
    [failed] = events(a, "connect-failed", qid)
    assert f"peer=mx1.peer.test[{net}.2]:25" in failed and error in failed, failed
    assert f"relay=mx2.peer.test[{net}.3]:25" in events(a, "sent", qid)[0]
    assert not events(a, "deferred", qid)
    assert mx1.files() == []


@needs_port25
def test_implicit_mx(tern_factory, unbound_server, sinks, net):
    dns = unbound_server(mx_zone(net))
    host = sinks(f"{net}.4", 25)
    a = sender_tern(tern_factory, dns)
    qid = submit(a, ["someone@implicit.test"], body("implicit"))
    wait_log(a, rf"event=removed id={qid} delivered=1 failed=0")
    [d] = host.wait_dumps(1)
    assert d["rcpts"] == ["<someone@implicit.test>"]
    assert f"relay=implicit.test[{net}.4]:25" in events(a, "sent", qid)[0]


def test_null_mx(tern_factory, unbound_server):
    """Through an alias on the mx listener: null MX is a permanent failure."""
    dns = unbound_server(mx_zone("127.0.0"))
    a = sender_tern(tern_factory, dns, aliases={"ext": "someone@nullmx.test"})
    c = a.client()
    c.ehlo()
    qid = c.deliver("bob@example.test", ["ext@localhost"], body("nullmx"))
    wait_log(a, rf"event=removed id={qid} delivered=0 failed=1")
    [b] = events(a, "bounced", qid)
    assert "to=<someone@nullmx.test>" in b and "code=556 status=5.1.10" in b, b
    assert "null MX" in b
    [f] = events(a, "failed", qid)
    assert "to=someone@nullmx.test" in f
    assert log_lines(a, "event=dsn-queued ", "to=<bob@example.test>")
    report = wait_bounce(a, qid, "bob", "example.test")
    check_failed(report, "someone@nullmx.test")
    assert not events(a, "connect-failed", qid)
    a.wait_spool_empty(5)


def test_mx_loop(tern_factory, unbound_server):
    """loop.test's only MX is our own hostname: 554 5.4.6, no connection
    (its address has no listener: a connection attempt would defer)."""
    dns = unbound_server(mx_zone("127.0.0"))
    a = sender_tern(tern_factory, dns)
    qid = submit(a, ["someone@loop.test"], body("loop"))
    wait_log(a, rf"event=removed id={qid} delivered=0 failed=1")
    [b] = events(a, "bounced", qid)
    assert "to=<someone@loop.test>" in b and "code=554 status=5.4.6" in b, b
    assert "loops back to myself" in b
    check_failed(wait_bounce(a, qid), "someone@loop.test")
    assert not events(a, "connect-failed", qid)


def test_dns_servfail_defers(tern_factory, unbound_server):
    dns = unbound_server(mx_zone("127.0.0"))
    a = sender_tern(tern_factory, dns)
    qid = submit(a, ["someone@servfail.test"], body("servfail"))
    wait_log(a, rf"event=deferred id={qid} pending=1 retry_in=\d+s", timeout=30)
    [d] = events(a, "deferred", qid)[:1]
    assert "proc=mta" in d and "to=<someone@servfail.test>" in d, d
    assert re.search(r"code=451 status=4\.4\.3", d), d
    # Retried with a doubled interval, still temporary, still queued.
    wait_log(a, rf"event=deferred id={qid} pending=1 retry_in=2s", timeout=10)
    assert len(events(a, "deferred", qid)) >= 4
    assert not events(a, "failed", qid) and not events(a, "bounced", qid)
    assert a.spool_files() == [f"queue/{qid}.env", f"queue/{qid}.msg"]


# ---- retries

def test_tempfail_then_retry(tern_factory, sinks):
    """The sink soft-rejects RCPT (450 4.3.0): deferred, kept; restarted
    without -r it gets exactly the queued bytes at the retry after 1 s."""
    sink = sinks(opts=["-r", "rcpt"])
    a = sender_tern(tern_factory, extra=f"route * {{ via 127.0.0.1:{sink.port} }}\n")
    msg = body("retry")
    qid = submit(a, ["someone@peer.test"], msg)
    wait_log(a, rf"event=deferred id={qid} pending=1 retry_in=1s")
    d = [ln for ln in events(a, "deferred", qid) if "proc=mta" in ln][0]
    assert "to=<someone@peer.test>" in d and "code=450 status=4.3.0" in d, d
    assert a.spool_files() == [f"queue/{qid}.env", f"queue/{qid}.msg"]
    queued = a.queued_content(qid)
    assert re.fullmatch(a_received(qid, "someone@peer.test") + re.escape(msg), queued, re.S)
    assert sink.files() == [] and not events(a, "sent", qid)
    sink.stop()
    sink.start(opts=[])
    t0 = time.monotonic()
    wait_log(a, rf"event=removed id={qid} delivered=1 failed=0", timeout=8)
    assert time.monotonic() - t0 < 6
    [dump] = sink.wait_dumps(1)
    assert dump["message"] == lf(queued)
    assert dump["rcpts"] == ["<someone@peer.test>"]
    assert len(events(a, "sent", qid)) == 1
    assert not events(a, "bounced", qid) and not events(a, "failed", qid)
    a.wait_spool_empty(5)


def test_hard_reject_is_permanent(tern_factory, sinks):
    """5xx at RCPT (smtp-sink -f rcpt): failed at once, no retry."""
    sink = sinks(opts=["-f", "rcpt"])
    a = sender_tern(tern_factory, extra=f"route * {{ via 127.0.0.1:{sink.port} }}\n")
    qid = submit(a, ["someone@peer.test"], body("hard"))
    wait_log(a, rf"event=removed id={qid} delivered=0 failed=1")
    [b] = events(a, "bounced", qid)
    assert "code=500 status=5.3.0" in b, b
    check_failed(wait_bounce(a, qid), "someone@peer.test", "5.3.0",
                 "500 5.3.0 Error: command failed")
    assert not [ln for ln in events(a, "deferred", qid)]
    assert sink.files() == []
    a.wait_spool_empty(5)


# ---- lifetime

def test_lifetime_expiry(tern_factory, sinks):
    """lifetime is at least 60 s: the test ages the queued envelope instead
    of waiting (stop, created -= 120 s, start). The next temporary failure
    after recovery fails the recipient with 4.4.7 and bounces."""
    sink = sinks(opts=["-r", "rcpt"])
    a = sender_tern(tern_factory, extra=f"lifetime 60s\nroute * {{ via 127.0.0.1:{sink.port} }}\n")
    qid = submit(a, ["someone@peer.test"], body("expiry"))
    wait_log(a, rf"event=deferred id={qid} pending=1 retry_in=1s")
    assert a.stop() == 0
    env = a.spool / "queue" / f"{qid}.env"
    text = env.read_text()
    created = int(re.search(r"^created: (\d+)$", text, re.M).group(1))
    assert abs(created - time.time()) < 30, text
    with open(env, "r+") as f:     # in place: owner and mode stay
        f.write(text.replace(f"created: {created}\n", f"created: {created - 120}\n"))
    a.start()
    wait_log(a, rf"event=recovered id={qid} nrcpt=1")
    wait_log(a, rf"event=removed id={qid} delivered=0 failed=1")
    [failed] = events(a, "failed", qid)
    assert "to=someone@peer.test" in failed and "4.4.7 message expired after 60s" in failed, failed
    assert "last error: 450 4.3.0" in failed, failed
    check_failed(wait_bounce(a, qid), "someone@peer.test", "4.4.7")
    assert sink.files() == []
    a.wait_spool_empty(5)


# Expiry itself is above; the configuration:

LIFETIME_D = pytest.param("5d", 0, "")


@pytest.mark.parametrize("value,rc,error", [
    ("60s", 0, ""), ("60", 0, ""), ("1m", 0, ""), ("120h", 0, ""), ("168h", 0, ""), LIFETIME_D,
    ("59s", 1, 'lifetime: 59s is out of range (60..604800 seconds)'),
    ("0", 1, "lifetime: 0 is out of range (60..604800 seconds)"),
    ("169h", 1, "lifetime: 169h is out of range (60..604800 seconds)"),
    ("soon", 1, 'lifetime: not a duration "soon"'),
])
def test_lifetime_config(tern_factory, value, rc, error):
    t = tern_factory(start=False, extra=f"lifetime {value}\n")
    line = t.config_text().splitlines().index(f"lifetime {value}") + 1
    r = subprocess.run([TERN_BIN, "-n", "-f", str(t.conf)], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == rc, r.stderr
    if error:
        assert f"{t.conf}:{line}: {error}" in r.stderr, r.stderr


# ---- STARTTLS

def self_signed(d, cn):
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", f"/CN={cn}"],
                   check=True, capture_output=True, timeout=30)
    return f"tls {{\n    cert {cert}\n    key {key}\n}}\n"


@pytest.fixture
def tls_peer(tern_factory, unbound_server, net, tmp_path):
    """B: a tern MX of peer.test on net.2:25 offering STARTTLS with a
    self-signed certificate (opportunistic TLS checks nothing); A: tern
    with the DNS."""
    dns = unbound_server(mx_zone(net))
    b = peer_tern(tern_factory, ip=f"{net}.2",
                  extra=self_signed(tmp_path / "cert", "mx1.peer.test"))
    a = sender_tern(tern_factory, dns)
    return a, b


@needs_port25
def test_starttls_to_tern_mx(tls_peer, net):
    a, b = tls_peer
    qid = submit(a, ["bob@peer.test"], body("tls"))
    [tls] = wait_log(a, rf"event=tls id={qid} [^\n]*")
    assert f"peer=mx1.peer.test[{net}.2]:25 version=TLSv1.3 cipher=" in tls, tls
    [started] = wait_log(b, r"event=tls-started [^\n]*")
    assert 'using="TLSv1.3 with cipher' in started, started
    wait_log(a, rf"event=removed id={qid} ")


@needs_port25
def test_starttls_to_tern_mx_delivered(tls_peer, net):
    a, b = tls_peer
    msg = body("tls")
    qid = submit(a, ["bob@peer.test"], msg)
    wait_log(a, rf"event=removed id={qid} ")
    assert len(events(a, "sent", qid)) == 1, a.log()[-2000:]
    [got] = b.wait_for_messages("bob", "peer.test")
    assert got.endswith(msg), f"B stored {len(got)} octets, ending {got[-40:]!r}"
    assert re.search(rb"\r\nReceived: from test\.example \(\[127\.[0-9.]+\]\)\r\n"
                     rb"\t\(using TLSv1\.3 with cipher [^\r]+\)\r\n"
                     rb"\tby mx1\.peer\.test \(tern\) with ESMTPS id ", got), got[:400]


def tls_must(tern_factory, sinks, where):
    sink = sinks()
    extra = (f"smtp_tls must\nroute * {{ via 127.0.0.1:{sink.port} }}\n" if where == "smtp_tls"
             else f"route * {{ via 127.0.0.1:{sink.port}; tls must }}\n")
    a = sender_tern(tern_factory, extra=extra)
    qid = submit(a, ["someone@peer.test"], body("must"))
    wait_log(a, rf"event=deferred id={qid} pending=1 retry_in=1s")
    d = [ln for ln in events(a, "deferred", qid) if "proc=mta" in ln][0]
    return a, sink, qid, d


@pytest.mark.parametrize("where", ["smtp_tls", "route"])
def test_tls_must_without_starttls(tern_factory, sinks, where):
    """TLS required, the sink offers no STARTTLS: deferred, no transaction
    at the sink, kept in the queue."""
    a, sink, qid, d = tls_must(tern_factory, sinks, where)
    assert "to=<someone@peer.test>" in d and "code=451 " in d, d
    assert sink.files() == [] and sink.messages() == 0
    assert a.spool_files() == [f"queue/{qid}.env", f"queue/{qid}.msg"]
    assert not events(a, "failed", qid) and not events(a, "bounced", qid)


def test_tls_must_status_474(tern_factory, sinks):
    a, sink, qid, d = tls_must(tern_factory, sinks, "smtp_tls")
    assert "code=451 status=4.7.4" in d and "TLS is required" in d, d


# ---- what the peer supports

def test_size_too_big_for_peer(tern_factory):
    """B (a tern with message_size 1K) says SIZE 1024: A fails the message
    552 5.3.4 without a MAIL command."""
    b = peer_tern(tern_factory, limits={"message_size": "1K"})
    a = sender_tern(tern_factory, extra=f"route * {{ via 127.0.0.1:{b.port} }}\n")
    qid = submit(a, ["bob@peer.test"], body("big", extra=(b"y" * 78 + b"\r\n") * 26))
    wait_log(a, rf"event=removed id={qid} delivered=0 failed=1")
    [bounced] = events(a, "bounced", qid)
    assert "to=<bob@peer.test>" in bounced and "code=552 status=5.3.4" in bounced, bounced
    assert "limit of 1024" in bounced, bounced
    assert events(a, "failed", qid)
    check_failed(wait_bounce(a, qid), "bob@peer.test")
    # At B: A's session had EHLO and QUIT only.
    wait_log(b, r"event=disconnect [^\n]*commands=2 ", count=1)
    sessions = [ln for ln in log_lines(b, "event=disconnect ") if "commands=1 " not in ln]
    assert len(sessions) == 1 and "messages=0 rcpts=0 errors=0" in sessions[0], sessions
    assert b.all_maildir_files() == [] and b.spool_files() == []


def test_smtputf8_to_peer_without_it(tern_factory, sinks):
    """A UTF-8 recipient, the sink does not offer SMTPUTF8: 553 5.6.7, no
    transaction at the sink."""
    sink = sinks()
    a = sender_tern(tern_factory, extra=f"route * {{ via 127.0.0.1:{sink.port} }}\n")
    msg = "From: alice@localhost\r\nTo: jürgen@peer.test\r\nSubject: grüße\r\n" \
          "Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <u@client.example>\r\n" \
          "\r\nhallo\r\n".encode()
    qid = submit(a, ["jürgen@peer.test"], msg, params=" SMTPUTF8")
    wait_log(a, rf"event=removed id={qid} delivered=0 failed=1")
    [bounced] = events(a, "bounced", qid)
    assert "to=<jürgen@peer.test>" in bounced and "code=553 status=5.6.7" in bounced, bounced
    assert events(a, "failed", qid)
    check_failed(wait_bounce(a, qid), "jürgen@peer.test")
    assert sink.files() == [] and sink.messages() == 0
    a.wait_spool_empty(5)


# ---- the bounces' delivery-status fields

@pytest.mark.parametrize("rcpt,status", [
    ("someone@nullmx.test", "5.1.10"), ("someone@loop.test", "5.4.6"),
    ("big@size.test", "5.3.4"), ("jürgen@utf8.test", "5.6.7")])
def test_bounce_status_of_mta_failures(tern_factory, unbound_server, sinks, rcpt, status):
    dns = unbound_server(mx_zone("127.0.0"))
    sink = sinks()
    b = peer_tern(tern_factory, limits={"message_size": "1K"})
    a = sender_tern(tern_factory, dns, extra=f"route utf8.test {{ via 127.0.0.1:{sink.port} }}\n"
                    f"route size.test {{ via 127.0.0.1:{b.port} }}\n")
    msg = body("status", extra=(b"z" * 78 + b"\r\n") * 20)
    qid = submit(a, [rcpt], msg, params=" SMTPUTF8" if "ü" in rcpt else "")
    wait_log(a, rf"event=removed id={qid} delivered=0 failed=1")
    [bounced] = events(a, "bounced", qid)
    assert f"status={status} " in bounced, bounced
    check_failed(wait_bounce(a, qid), rcpt, status)


@needs_port25
def test_bounce_remote_mta(tern_factory, unbound_server, sinks, net):
    dns = unbound_server(mx_zone(net))
    sinks(f"{net}.2", 25, opts=["-f", "rcpt"])
    a = sender_tern(tern_factory, dns)
    qid = submit(a, ["someone@peer.test"], body("remote-mta"))
    wait_log(a, rf"event=removed id={qid} delivered=0 failed=1")
    b = check_failed(wait_bounce(a, qid), "someone@peer.test", "5.3.0",
                     "500 5.3.0 Error: command failed")
    assert re.search(r"^Remote-MTA: dns; ?mx1\.peer\.test$", b, re.M), b


# ---- connection reuse

def test_connection_reuse(tern_factory, sinks):
    """Five messages one after the other to one destination go over one
    connection (RSET between them); it is closed (QUIT) after 5 s idle."""
    sink = sinks()
    a = sender_tern(tern_factory, extra=f"route * {{ via 127.0.0.1:{sink.port} }}\n")
    qids = []
    for i in range(5):
        qids.append(submit(a, [f"r{i}@peer.test"], body(f"reuse{i}")))
        wait_log(a, rf"event=removed id={qids[-1]} delivered=1 failed=0")
    reused = log_lines(a, "event=conn-reused ")
    assert [re.search(r" id=(\w+)", ln).group(1) for ln in reused] == qids[1:], reused
    assert [re.search(r"messages=(\d+)", ln).group(1) for ln in reused] == ["1", "2", "3", "4"]
    assert sink.wait_messages(5) == 5
    assert sink.sessions() == 0      # still open
    wait_log(a, rf"event=conn-closed peer=\[127\.0\.0\.1\]:{sink.port} messages=5 reason=idle",
             timeout=10)
    deadline = time.monotonic() + 5
    while sink.sessions() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sink.sessions() == 1
    assert sorted(d["rcpts"] for d in sink.wait_dumps(5)) == \
        [[f"<r{i}@peer.test>"] for i in range(5)]


def test_reuse_failure_reconnects(tern_factory, sinks):
    """A kept connection whose RSET gets 421 (smtp-sink -Q rset) is dropped
    and the message goes over a new connection, without a deferral."""
    sink = sinks(opts=["-Q", "rset"])
    a = sender_tern(tern_factory, extra=f"route * {{ via 127.0.0.1:{sink.port} }}\n")
    qids = []
    for i in range(3):
        qids.append(submit(a, [f"r{i}@peer.test"], body(f"rf{i}")))
        wait_log(a, rf"event=removed id={qids[-1]} delivered=1 failed=0")
    failed = log_lines(a, "event=reuse-failed ")
    assert [re.search(r" id=(\w+)", ln).group(1) for ln in failed] == qids[1:], failed
    assert all("RSET refused: 421" in ln for ln in failed), failed
    assert not log_lines(a, "event=deferred ")
    assert sink.wait_messages(3) == 3


# ---- a small SMTP peer that counts connections

class Peer(threading.Thread):
    """A minimal SMTP server on host:port (IPv4 or IPv6) that counts the
    connections it accepts and the most it held at once; `greeting` is its
    first reply, `delay` seconds pass before its reply to the final dot."""

    def __init__(self, host="127.0.0.1", port=None, greeting="220 peer ESMTP", delay=0.0,
                 auth_login=False):
        super().__init__(daemon=True)
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.ls = socket.socket(fam)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((host, port or 0))
        self.port = self.ls.getsockname()[1]
        self.ls.listen(64)
        self.ls.settimeout(0.1)
        self.greeting, self.delay = greeting, delay
        self.auth_login = auth_login    # offer AUTH LOGIN only; logins land in self.logins
        self.logins = []
        self.lock = threading.Lock()
        self.connections = self.now = self.most = 0
        self.messages = []         # (mail, [rcpts], data)
        self.socks = []
        self.stopping = False
        self.start()

    def run(self):
        while not self.stopping:
            try:
                c, _ = self.ls.accept()
            except (socket.timeout, OSError):
                continue
            with self.lock:
                self.connections += 1
                self.now += 1
                self.most = max(self.most, self.now)
                self.socks.append(c)
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def session(self, c):
        try:
            self.dialog(c, c.makefile("rb"))
        except OSError:
            pass
        finally:
            with self.lock:
                self.now -= 1
            c.close()

    def dialog(self, c, f):
        c.sendall(self.greeting.encode() + b"\r\n")
        if not self.greeting.startswith("220"):
            return
        mail, rcpts = None, []
        while True:
            line = f.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"EHLO":
                c.sendall(b"250-peer\r\n" + (b"250-AUTH LOGIN\r\n" if self.auth_login else b"")
                          + b"250 8BITMIME\r\n")
            elif verb == b"AUTH":
                assert line.strip().upper() == b"AUTH LOGIN", line
                c.sendall(b"334 VXNlcm5hbWU6\r\n")
                user = base64.b64decode(f.readline().strip())
                c.sendall(b"334 UGFzc3dvcmQ6\r\n")
                pw = base64.b64decode(f.readline().strip())
                with self.lock:
                    self.logins.append((user, pw))
                c.sendall(b"235 2.7.0 ok\r\n")
            elif verb == b"MAIL":
                mail, rcpts = line.strip().decode(), []
                c.sendall(b"250 2.1.0 ok\r\n")
            elif verb == b"RCPT":
                rcpts.append(line.strip().decode())
                c.sendall(b"250 2.1.5 ok\r\n")
            elif verb == b"DATA":
                c.sendall(b"354 go\r\n")
                data = b""
                while (line := f.readline()) not in (b".\r\n", b""):
                    data += line
                time.sleep(self.delay)
                with self.lock:
                    self.messages.append((mail, rcpts, data))
                c.sendall(b"250 2.0.0 ok\r\n")
            elif verb == b"QUIT":
                c.sendall(b"221 2.0.0 bye\r\n")
                return
            else:
                c.sendall(b"250 2.0.0 ok\r\n")

    def stop(self):
        self.stopping = True
        self.join(5)
        self.ls.close()
        with self.lock:
            for c in self.socks:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def peers():
    started = []

    def make(**kw):
        p = Peer(**kw)
        started.append(p)
        return p

    yield make
    for p in started:
        p.stop()


def submit_many(t, n, prefix):
    """n messages in one session to A's submission listener, one recipient
    each (r0@peer.test ...); their queue IDs."""
    c = t.client(port=t.ports["sub"])
    c.ehlo("client.example")
    qids = [c.deliver(SENDER, [f"r{i}@peer.test"], body(f"{prefix}{i}")) for i in range(n)]
    c.cmd("QUIT").check(221)
    return qids


# ---- concurrency

@pytest.mark.parametrize("conf,most", [
    ("relay_destination_concurrency 2\n", 2),
    ("relay_concurrency 1\n", 1),
])
def test_relay_concurrency(tern_factory, peers, conf, most):
    """Each message holds the peer 0.4 s: six at once reach the limit and
    never pass it."""
    p = peers(delay=0.4)
    a = sender_tern(tern_factory, extra=f"route * {{ via 127.0.0.1:{p.port} }}\n" + conf)
    qids = submit_many(a, 6, "conc")
    for q in qids:
        wait_log(a, rf"event=removed id={q} delivered=1 failed=0", timeout=20)
    assert p.most == most
    assert len(p.messages) == 6
    assert p.connections == most      # and each connection was kept for the next


def test_reuse_messages_cap(tern_factory, sinks):
    """relay_reuse_messages 3, one connection at a time: 7 messages take
    3 connections (3 + 3 + 1)."""
    sink = sinks()
    a = sender_tern(tern_factory, extra=f"route * {{ via 127.0.0.1:{sink.port} }}\n"
                    "relay_destination_concurrency 1\nrelay_reuse_messages 3\n"
                    "relay_reuse_idle 1s\n")
    qids = submit_many(a, 7, "cap")
    for q in qids:
        wait_log(a, rf"event=removed id={q} delivered=1 failed=0", timeout=20)
    assert sink.wait_messages(7) == 7
    wait_log(a, r"event=conn-closed peer=\S+ messages=1 reason=idle", timeout=5)
    deadline = time.monotonic() + 5
    while sink.sessions() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sink.sessions() == 3
    assert len(log_lines(a, "event=conn-reused ")) == 4


def test_no_reuse(tern_factory, peers):
    """relay_reuse_messages 0: a connection per message."""
    p = peers()
    a = sender_tern(tern_factory, extra=f"route * {{ via 127.0.0.1:{p.port} }}\n"
                    "relay_destination_concurrency 1\nrelay_reuse_messages 0\n")
    for q in submit_many(a, 3, "noreuse"):
        wait_log(a, rf"event=removed id={q} delivered=1 failed=0", timeout=20)
    assert p.connections == 3 and len(p.messages) == 3
    assert not log_lines(a, "event=conn-reused ")


@pytest.mark.parametrize("line,error", [
    ("relay_concurrency 1", ""), ("relay_concurrency 10000", ""),
    ("relay_concurrency 0", "relay_concurrency: 0 is out of range (1..10000)"),
    ("relay_concurrency 10001", "relay_concurrency: 10001 is out of range (1..10000)"),
    ("relay_concurrency many", 'relay_concurrency: not a number "many"'),
    ("relay_destination_concurrency 1000", ""),
    ("relay_destination_concurrency 1001",
     "relay_destination_concurrency: 1001 is out of range (1..1000)"),
    ("relay_reuse_messages 0", ""),
    ("relay_reuse_messages 100001", "relay_reuse_messages: 100001 is out of range (0..100000)"),
    ("relay_reuse_idle 5m", ""),
    ("relay_reuse_idle 301", "relay_reuse_idle: 301 is out of range (1..300)"),
    ("relay_reuse_idle 0", "relay_reuse_idle: 0 is out of range (1..300)"),
    ("relay_reuse_idle 2x", 'relay_reuse_idle: not a duration "2x"'),
    ("relay_backoff_failures 1", ""),
    ("relay_backoff_failures 0", "relay_backoff_failures: 0 is out of range (1..1000)"),
    ("relay_backoff 1h", ""),
    ("relay_backoff 61m", "relay_backoff: 61m is out of range (1..3600)"),
])
def test_relay_number_config(tern_factory, line, error):
    t = tern_factory(start=False, extra=line + "\n")
    nr = t.config_text().splitlines().index(line) + 1
    r = subprocess.run([TERN_BIN, "-n", "-f", str(t.conf)], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == (1 if error else 0), r.stderr
    if error:
        assert f"{t.conf}:{nr}: {error}" in r.stderr, r.stderr


# ---- a failing destination backed off as a whole

def test_backoff_dead_destination(tern_factory):
    """Nobody listens on the route's port; one connection at a time. After
    2 refused connections (relay_backoff_failures 2) the other messages
    are deferred without an attempt, with the reason."""
    port = free_port()
    a = sender_tern(tern_factory, extra=f"route * {{ via 127.0.0.1:{port} }}\n"
                    "relay_destination_concurrency 1\nrelay_backoff_failures 2\n"
                    "relay_backoff 60s\n")
    qids = submit_many(a, 5, "dead")
    wait_log(a, r"event=backed-off ", count=3)
    time.sleep(2.5)                 # the queue retries each after 1 s and 2 s
    attempts = log_lines(a, "event=connect-failed ")
    assert len(attempts) == 2, attempts
    assert all(f"peer=[127.0.0.1]:{port} error=\"Connection refused\"" in ln
               for ln in attempts), attempts
    [bo] = log_lines(a, "event=dest-backoff ")
    assert 'dest="route *" failures=2 seconds=60' in bo, bo
    deferred = [ln for ln in log_lines(a, "event=deferred ", "proc=mta")
                if "destination backed off" in ln]
    assert len(deferred) >= 3 + 3, deferred     # three at first, then their retries
    assert "reply=\"destination backed off for 60s after 2 failures in a row; last error: " \
        f"[127.0.0.1]:{port}: Connection refused\"" in deferred[0], deferred[0]
    assert {re.search(r" id=(\w+)", ln).group(1) for ln in deferred} <= set(qids)


def test_backoff_cleared_by_success(tern_factory, sinks):
    """A greeting 421 counts as a failure too; after the back-off (2 s)
    one attempt gets through to the now healthy peer, which clears it."""
    sink = sinks(start=False)
    p = Peer(port=sink.port, greeting="421 4.3.2 not now")
    try:
        a = sender_tern(tern_factory, extra=f"route * {{ via 127.0.0.1:{sink.port} }}\n"
                        "relay_backoff_failures 2\nrelay_backoff 2s\n")
        qid = submit(a, ["someone@peer.test"], body("clear"))
        wait_log(a, r"event=dest-backoff ")
        assert p.connections == 2
        [bo] = log_lines(a, "event=dest-backoff ")
        assert "failures=2 seconds=2 " in bo and "greeting: 421 4.3.2 not now" in bo, bo
    finally:
        p.stop()
    sink.start()
    wait_log(a, rf"event=removed id={qid} delivered=1 failed=0", timeout=15)
    # The mta logs it when the job ends, after its result went to the queue.
    [rec] = wait_log(a, r"event=dest-recovered [^\n]*")
    assert 'dest="route *" failures=2' in rec, rec
    assert sink.wait_messages(1) == 1
    # Cleared: the next message goes at once.
    q2 = submit(a, ["other@peer.test"], body("clear2"))
    wait_log(a, rf"event=removed id={q2} delivered=1 failed=0", timeout=3)


# ---- routes by host name

def test_route_bracket_host(tern_factory, unbound_server, sinks):
    """via [smart.test]:PORT: the host's A record, no MX lookup (the MX
    that smart.test also has would lead elsewhere)."""
    sink = sinks()
    dns = unbound_server(["smart.test A 127.0.0.1", "smart.test MX 10 elsewhere.test",
                          "elsewhere.test A 127.0.0.9"])
    a = sender_tern(tern_factory, dns, extra=f"route * {{ via [smart.test]:{sink.port} }}\n")
    qid = submit(a, ["someone@peer.test"], body("bracket"))
    wait_log(a, rf"event=removed id={qid} delivered=1 failed=0")
    [sent] = events(a, "sent", qid)
    assert f"relay=smart.test[127.0.0.1]:{sink.port} " in sent, sent
    assert [d["rcpts"] for d in sink.wait_dumps(1)] == [["<someone@peer.test>"]]


def test_route_mx_name(tern_factory, unbound_server, sinks):
    """via relay.test:PORT (no brackets): relay.test's MX host, at PORT."""
    sink = sinks()
    dns = unbound_server(["relay.test MX 10 mx.relay.test", "mx.relay.test A 127.0.0.1",
                          "relay.test A 127.0.0.9"])
    a = sender_tern(tern_factory, dns, extra=f"route peer.test {{ via relay.test:{sink.port} }}\n")
    qid = submit(a, ["someone@peer.test"], body("mxname"))
    wait_log(a, rf"event=removed id={qid} delivered=1 failed=0")
    [sent] = events(a, "sent", qid)
    assert f"relay=mx.relay.test[127.0.0.1]:{sink.port} " in sent, sent
    assert sink.wait_messages(1) == 1


def test_route_host_without_address_defers(tern_factory, unbound_server):
    """A route host that does not resolve is the administrator's to fix:
    deferred (4.x), never bounced."""
    dns = unbound_server(["relay.test MX 10 mx.relay.test", "mx.relay.test A 127.0.0.1"])
    a = sender_tern(tern_factory, dns, extra="route * { via [relay.test]:2525 }\n")
    qid = submit(a, ["someone@peer.test"], body("nohost"))
    wait_log(a, rf"event=deferred id={qid} ")
    [d] = [ln for ln in events(a, "deferred", qid) if "proc=mta" in ln]
    assert "code=451 status=4.4.4" in d and 'reply="host relay.test has no address"' in d, d
    assert not events(a, "bounced", qid)


@pytest.mark.parametrize("via,error", [
    ("[mx.example]:2525", ""), ("[mx.example]", ""), ("mx.example", ""),
    ("mx.example:587", ""), ("192.0.2.1", ""), ("[::1]:25", ""),
    ("[mx.example", "bad host"), ("mx..example", "bad host"), ("mx.example:0", "bad host"),
    ("mx.example:70000", "bad host"), ("[mx.example]x", "bad host"), ("mx.example:", "bad host"),
])
def test_route_via_config(tern_factory, via, error):
    t = tern_factory(start=False, extra=f"route * {{ via {via} }}\n")
    nr = t.config_text().splitlines().index(f"route * {{ via {via} }}") + 1
    r = subprocess.run([TERN_BIN, "-n", "-f", str(t.conf)], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == (1 if error else 0), r.stderr
    if error:
        assert f'{t.conf}:{nr}: route: via: bad host "{via}" (IP:PORT, [IPv6]:PORT, ' \
            "[HOST]:PORT or DOMAIN:PORT)" in r.stderr, r.stderr


# ---- TLS policy per route: verify

def verify_pair(tern_factory, unbound_server, tls_certs, peer_tls, name=SERVER_NAME, ca=None):
    """B: a tern for peer.test with `peer_tls` (a tls block); A routes
    peer.test to [name]:B's port with tls verify and the test CA."""
    dns = unbound_server([f"{name} A 127.0.0.1"])
    b = peer_tern(tern_factory, extra=peer_tls)
    a = sender_tern(tern_factory, dns, extra=(
        f"route peer.test {{ via [{name}]:{b.port}; tls verify; "
        f"tls_ca {ca or tls_certs['ca']} }}\n"))
    return a, b


def test_tls_verify_passes(tern_factory, unbound_server, tls_certs):
    a, b = verify_pair(tern_factory, unbound_server, tls_certs, tls_block(tls_certs, sni=False))
    msg = body("verify")
    qid = submit(a, ["bob@peer.test"], msg)
    wait_log(a, rf"event=removed id={qid} delivered=1 failed=0")
    [tls] = events(a, "tls", qid)
    assert f"peer={SERVER_NAME}[127.0.0.1]:{b.port} version=TLSv1.3" in tls, tls
    [got] = b.wait_for_messages("bob", "peer.test")
    assert got.endswith(msg)
    assert b"with ESMTPS id " in got


@pytest.mark.parametrize("case,error", [
    ("self-signed", "self-signed certificate"),
    ("wrong-name", "hostname mismatch"),
    ("wrong-ca", "unable to get local issuer certificate"),
])
def test_tls_verify_fails(tern_factory, unbound_server, tls_certs, tmp_path, case, error):
    """Verification fails: deferred with the reason, nothing delivered."""
    peer_tls, name, ca = tls_block(tls_certs, sni=False), SERVER_NAME, None
    if case == "self-signed":
        peer_tls = self_signed(tmp_path / "ss", SERVER_NAME)
    elif case == "wrong-name":
        name = "wrong.test.example"
    else:
        self_signed(tmp_path / "other", "some CA")
        ca = tmp_path / "other" / "cert.pem"
    a, b = verify_pair(tern_factory, unbound_server, tls_certs, peer_tls, name, ca)
    qid = submit(a, ["bob@peer.test"], body("verifyfail"))
    wait_log(a, rf"event=deferred id={qid} pending=1")
    [d] = [ln for ln in events(a, "deferred", qid) if "proc=mta" in ln]
    assert f'reply="{name}[127.0.0.1]:{b.port}: TLS certificate verification failed: ' \
        f'{error}"' in d, d
    assert "code=451 " in d
    assert b.maildir_messages("bob", "peer.test") == []


@pytest.mark.parametrize("ca", ["test", "other", None])
def test_smtp_tls_ca_global(tern_factory, unbound_server, tls_certs, tmp_path, ca):
    """smtp_tls verify with the global smtp_tls_ca (a route that only says
    where, no tls or tls_ca of its own): the test CA verifies B; another
    CA, or none (the system's), does not."""
    dns = unbound_server([f"{SERVER_NAME} A 127.0.0.1"])
    b = peer_tern(tern_factory, extra=tls_block(tls_certs, sni=False))
    ca_line = ""
    if ca == "test":
        ca_line = f"smtp_tls_ca {tls_certs['ca']}\n"
    elif ca == "other":
        self_signed(tmp_path / "other", "some CA")
        ca_line = f"smtp_tls_ca {tmp_path / 'other' / 'cert.pem'}\n"
    a = sender_tern(tern_factory, dns, extra=(
        f"smtp_tls verify\n{ca_line}route peer.test {{ via [{SERVER_NAME}]:{b.port} }}\n"))
    msg = body("verify-global")
    qid = submit(a, ["bob@peer.test"], msg)
    if ca == "test":
        wait_log(a, rf"event=removed id={qid} delivered=1 failed=0")
        [got] = b.wait_for_messages("bob", "peer.test")
        assert got.endswith(msg) and b"with ESMTPS id " in got
        return
    wait_log(a, rf"event=deferred id={qid} pending=1")
    [d] = [ln for ln in events(a, "deferred", qid) if "proc=mta" in ln]
    assert f'reply="{SERVER_NAME}[127.0.0.1]:{b.port}: TLS certificate verification failed: ' \
        'unable to get local issuer certificate"' in d, d
    assert b.maildir_messages("bob", "peer.test") == []


def test_smtp_tls_ca_unreadable(tern_factory, tmp_path):
    t = tern_factory(start=False, extra=f"smtp_tls_ca {tmp_path / 'nope.pem'}\n")
    r = subprocess.run([TERN_BIN, "-n", "-f", str(t.conf)], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 1
    assert f'smtp_tls_ca: cannot read "{tmp_path / "nope.pem"}"' in r.stderr, r.stderr


@pytest.mark.parametrize("value,ok", [("encrypt", True), ("verify", True), ("must", True),
                                      ("strict", False)])
def test_tls_policy_config(tern_factory, value, ok):
    t = tern_factory(start=False, extra=f"smtp_tls {value}\n")
    r = subprocess.run([TERN_BIN, "-n", "-f", str(t.conf)], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == (0 if ok else 1), r.stderr
    if not ok:
        assert f'smtp_tls: "{value}" is not none, may, encrypt or verify' in r.stderr


# ---- AUTH to a smarthost

def smarthost_pair(tern_factory, unbound_server, tls_certs, password_hashes, tmp_path,
                   secret="alice alice-Pw-7f3e\n", route_opts="tls verify", mode=0o600):
    """B: a tern with a submission listener (STARTTLS required, AUTH,
    the users' real password hashes; relayed mail stays in its queue).
    A: route * to [mail.test.example]:B's submission port with AUTH from
    a secret file."""
    b = start_submission(tern_factory, tls_certs, password_hashes)
    dns = unbound_server([f"{SERVER_NAME} A 127.0.0.1"])
    sec = tmp_path / "relay.secret"
    sec.write_text(secret)
    sec.chmod(mode)
    a = sender_tern(tern_factory, dns, extra=(
        f"route * {{ via [{SERVER_NAME}]:{b.ports['sub']}; {route_opts}; "
        f"tls_ca {tls_certs['ca']}; auth {sec} }}\n"))
    return a, b


def b_queued(b, timeout=10):
    """The content of the one message B has queued."""
    deadline = time.monotonic() + timeout
    while not [f for f in b.spool_files() if f.endswith(".msg")] or \
            not list((b.spool / "queue").glob("*.env")):
        assert time.monotonic() < deadline, b.log()[-2000:]
        time.sleep(0.05)
    [m] = [f for f in b.spool_files() if f.endswith(".msg")]
    return b.queued_content(m[len("queue/"):-4])


def test_smarthost_auth_over_tls(tern_factory, unbound_server, tls_certs, password_hashes,
                                 tmp_path):
    a, b = smarthost_pair(tern_factory, unbound_server, tls_certs, password_hashes, tmp_path)
    msg = body("smarthost-auth")
    qid = submit(a, ["someone@far.test"], msg)
    wait_log(a, rf"event=removed id={qid} delivered=1 failed=0")
    [ok] = wait_log(b, r"event=auth-ok [^\n]*")
    assert 'user="alice"' in ok, ok
    got = b_queued(b)
    assert got.endswith(msg)
    assert re.search(rb"^Received: from test\.example \(\[127\.0\.0\.1\]\)\r\n"
                     rb"\t\(using TLSv1\.3 with cipher [^\r]+\)\r\n"
                     rb"\tby test\.example \(tern\) with ESMTPSA id ", got), got[:300]
    assert "alice-Pw-7f3e" not in a.log() and "alice-Pw-7f3e" not in b.log()


def test_smarthost_auth_wrong_password(tern_factory, unbound_server, tls_certs,
                                       password_hashes, tmp_path):
    a, b = smarthost_pair(tern_factory, unbound_server, tls_certs, password_hashes, tmp_path,
                          secret="# relay\n\nalice not-her-password\n")
    qid = submit(a, ["someone@far.test"], body("badpw"))
    wait_log(a, rf"event=deferred id={qid} pending=1", timeout=15)
    [d] = [ln for ln in events(a, "deferred", qid) if "proc=mta" in ln]
    assert "code=451 status=4.7.0 " in d and \
        'reply="authentication failed: 535 5.7.8 ' in d, d
    assert b.spool_files() == []


def test_smarthost_auth_refused_without_tls(tern_factory, unbound_server, tls_certs,
                                            password_hashes, tmp_path):
    """tls none: the credentials are not sent; B never sees an AUTH."""
    a, b = smarthost_pair(tern_factory, unbound_server, tls_certs, password_hashes, tmp_path,
                          route_opts="tls none")
    qid = submit(a, ["someone@far.test"], body("cleartext"))
    wait_log(a, rf"event=deferred id={qid} pending=1")
    [d] = [ln for ln in events(a, "deferred", qid) if "proc=mta" in ln]
    assert "code=451 status=4.7.10 " in d and "credentials are not sent without TLS" in d, d
    assert "event=auth" not in b.log()


@pytest.mark.parametrize("mode,secret,error", [
    (0o644, "u p\n", "may be read or written by others (mode 644; it must be 0600 or 0640)"),
    (0o600, "# nothing\n\n", 'holds no line "USER PASSWORD"'),
    (0o600, "onlyuser\n", 'holds no line "USER PASSWORD"'),
    (0o640, "u  pass word \r\n", ""),
])
def test_route_auth_file_config(tern_factory, tmp_path, mode, secret, error):
    sec = tmp_path / "secret"
    sec.write_text(secret)
    sec.chmod(mode)
    t = tern_factory(start=False, extra=f"route * {{ via [relay.test]; auth {sec} }}\n")
    r = subprocess.run([TERN_BIN, "-n", "-f", str(t.conf)], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == (1 if error else 0), r.stderr
    if error:
        assert f'route: auth: "{sec}" {error}' in r.stderr, r.stderr


def test_auth_login_without_tls_when_allowed(tern_factory, peers, tmp_path):
    """A peer offering only AUTH LOGIN and no STARTTLS: with
    auth_without_tls yes the credentials go (LOGIN, in two steps)."""
    p = peers(auth_login=True)
    sec = tmp_path / "secret"
    sec.write_text("relay-user s3cret pass\n")
    sec.chmod(0o600)
    a = sender_tern(tern_factory, extra=f"route * {{ via 127.0.0.1:{p.port}; auth {sec}; "
                    "auth_without_tls yes }\n")
    qid = submit(a, ["someone@far.test"], body("login"))
    wait_log(a, rf"event=removed id={qid} delivered=1 failed=0")
    assert p.logins == [(b"relay-user", b"s3cret pass")]
    assert len(p.messages) == 1


# ---- IPv6

@pytest.mark.skipif(not has_ipv6_loopback(), reason="::1 is not configured on this machine")
@pytest.mark.parametrize("via", ["[v6.peer.test]", "v6relay.test"])
def test_ipv6_peer_through_aaaa(tern_factory, unbound_server, peers, via):
    """A peer on ::1 only, found through its AAAA record (the route's host,
    or the MX host of the route's domain)."""
    p = peers(host="::1")
    dns = unbound_server(["v6.peer.test AAAA ::1", "v6relay.test MX 10 v6.peer.test"])
    a = sender_tern(tern_factory, dns, extra=f"route * {{ via {via}:{p.port} }}\n")
    msg = body("ipv6")
    qid = submit(a, ["someone@far.test"], msg)
    wait_log(a, rf"event=removed id={qid} delivered=1 failed=0")
    [sent] = events(a, "sent", qid)
    assert f"relay=v6.peer.test[::1]:{p.port} " in sent, sent
    [(mail, rcpts, data)] = p.messages
    assert mail.startswith(f"MAIL FROM:<{SENDER}>") and rcpts == ["RCPT TO:<someone@far.test>"]
    assert data.endswith(msg.replace(b"\r\n.", b"\r\n.."))
