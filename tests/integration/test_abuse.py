"""Abuse: memory stays bounded whatever a client sends, and honest clients
are served during each attack.

The daemon's memory is the sum of VmRSS over the parent and all its
children (/proc). A session holds at most SESSION_IN_MAX (256 KiB) of
unprocessed input, SESSION_OUT_MAX (256 KiB) of unsent replies and a
SESSION_WBUF (64 KiB) write buffer (src/server/session.c), so K attacking
sessions may grow the daemon by less than K * 1 MiB plus a constant for
heap slack. Under a sanitizer build (redzones, quarantine) the figures are
printed but the bounds are not checked.

Each test prints `abuse: NAME sessions=K base=.. peak=.. growth=.. KiB`.
"""

import os
import re
import socket
import threading
import time
import uuid

import pytest

from conftest import descendants_of
from dns_fixture import unbound_server  # noqa: F401
from smtp_client import Client, simple_body

MIB = 1024 * 1024
PER_SESSION = 1 * MIB           # 256 + 256 + 64 KiB of buffers, rounded up
CONSTANT = 4 * MIB              # heap slack of 4 processes, libevent tables
SAMPLE_EVERY = 0.02
# A checked mx listener (auth_checks) holds the header section for the
# check request: SESSION_HDR_MAX (256 KiB, src/server/session.c). On its way
# it is copied once into the worker's IPC queue, then the check process
# holds it with its answer (CHECKD_ANSWER_MAX, 16 KiB) for each of at most
# CHECKD_PENDING_MAX (512) requests (src/server/checkd.c).
HDR_MAX = 256 * 1024
CHECK_ANSWER_MAX = 16 * 1024
CHECK_PENDING_MAX = 512
PER_CHECKED_SESSION = PER_SESSION + 3 * HDR_MAX + CHECK_ANSWER_MAX


# ---- measuring

def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def daemon_rss(tern):
    """KiB resident over the parent and every descendant."""
    return sum(rss_kib(p) for p in [tern.pid] + descendants_of(tern.pid))


def sanitized(tern):
    """True if the daemon runs a sanitizer build (RSS bounds do not apply)."""
    try:
        with open(f"/proc/{tern.pid}/maps") as f:
            maps = f.read()
    except OSError:
        return False
    return "libasan" in maps or "libclang_rt.asan" in maps


class Sampler:
    """Samples the daemon's RSS (and optionally the largest spool file) in a
    thread until stopped; keeps the peaks."""

    def __init__(self, tern, spool=False):
        self.tern = tern
        self.spool = spool
        self.peak = 0
        self.spool_peak = 0
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop_ev.is_set():
            self.sample()
            time.sleep(SAMPLE_EVERY)

    def sample(self):
        self.peak = max(self.peak, daemon_rss(self.tern))
        if self.spool:
            self.spool_peak = max(self.spool_peak, largest_spool_file(self.tern))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.thread.join(5)
        self.sample()


def largest_spool_file(tern):
    big = 0
    for sub in ("queue", "tmp"):
        d = tern.spool / sub
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            try:
                big = max(big, os.stat(d / n).st_size)
            except OSError:
                pass
    return big


def baseline(tern):
    """RSS after one honest message went through every process (warm heaps)."""
    honest(tern)
    time.sleep(0.3)
    return daemon_rss(tern)


def check_growth(tern, name, k, base, peak, per_session=PER_SESSION):
    growth = peak - base
    bound = (k * per_session + CONSTANT) // 1024
    print(f"\nabuse: {name} sessions={k} base={base} peak={peak} growth={growth} KiB "
          f"(bound {bound} KiB)")
    if sanitized(tern):
        return
    assert growth < bound, f"{name}: RSS grew by {growth} KiB with {k} sessions (bound {bound})"


# ---- clients

def honest(tern, timeout=20):
    """An honest client delivers a message during the attack; it must arrive."""
    msgid = f"honest-{uuid.uuid4().hex}@client.example"
    c = Client(tern.host, tern.port, timeout=timeout)
    try:
        c.reply(timeout).check(220)
        c.cmd("EHLO honest.example").check(250)
        c.deliver("bob@example.test", ["alice@localhost"], simple_body("honest", msgid=msgid))
        c.cmd("QUIT").check(221)
    finally:
        c.close()
    want = f"Message-ID: <{msgid}>".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(want in m for m in tern.maildir_messages("alice")):
            return msgid
        time.sleep(0.05)
    tern.fail_with_log(f"the honest message {msgid} did not arrive during the attack")


def attacker(tern, source=None, timeout=30):
    c = Client(tern.host, tern.port, timeout=timeout, source=source) if source else \
        Client(tern.host, tern.port, timeout=timeout)
    c.reply().check(220)
    c.cmd("EHLO attacker.example").check(250)
    return c


class Threads:
    """Runs each fn in its own thread; join() re-raises the first exception."""

    def __init__(self, fns):
        self.errors = []
        self.threads = [threading.Thread(target=self.wrap, args=(fn,), daemon=True)
                        for fn in fns]
        for t in self.threads:
            t.start()

    def wrap(self, fn):
        try:
            fn()
        except BaseException as e:
            self.errors.append(e)

    def join(self, timeout=60):
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), "attacker threads did not finish"
        if self.errors:
            raise self.errors[0]


# ---- attacks

@pytest.mark.tern(limits={"connections_per_ip": 50})
def test_huge_lines_without_lf(tern):
    """K sessions each send a 1 MB command line without LF: the server
    discards past command_line, answers 500 5.5.2 when the line ends, and
    the session goes on."""
    k = 10
    base = baseline(tern)
    sent = threading.Barrier(k + 1, timeout=60)
    finish = threading.Event()

    def one():
        c = attacker(tern)
        try:
            c.send(b"A" * MIB)
            sent.wait()
            assert finish.wait(60)
            c.send(b"\r\n")
            c.reply().check(500, "5.5.2", "line too long")
            c.cmd("NOOP").check(250, "2.0.0")
        finally:
            c.close()

    with Sampler(tern) as s:
        t = Threads([one] * k)
        sent.wait()
        time.sleep(0.3)
        honest(tern)
        s.sample()
        finish.set()
        t.join(60)
    check_growth(tern, "huge-lines", k, base, s.peak)


@pytest.mark.tern(limits={"message_size": "512K", "connections_per_ip": 50})
def test_endless_headers(tern):
    """K sessions each send 50 MB of header lines in DATA: 552 5.3.4 after
    the end of the data, nothing stored, and the spool file never grows far
    past message_size."""
    k = 3
    total = 50 * MIB
    line = b"X-Flood: " + b"a" * 80 + b"\r\n"
    chunk = line * (64 * 1024 // len(line))
    base = baseline(tern)
    halfway = threading.Barrier(k + 1, timeout=60)

    def one():
        c = attacker(tern)
        try:
            c.mail_rcpt_data("bob@example.test", ["alice@localhost"])
            n = 0
            while n < total:
                c.send(chunk)
                n += len(chunk)
                if n < total // 2 <= n + len(chunk):
                    halfway.wait()
            c.send(b".\r\n")
            c.reply(30).check(552, "5.3.4")
            c.cmd("NOOP").check(250)
        finally:
            c.close()

    with Sampler(tern, spool=True) as s:
        t = Threads([one] * k)
        halfway.wait()
        honest(tern)
        t.join(120)
    check_growth(tern, "endless-headers", k, base, s.peak)
    # The session stops writing at the limit: message_size plus one gathered write and the Received header.
    assert s.spool_peak <= 512 * 1024 + 64 * 1024 + 4096, s.spool_peak
    tern.wait_spool_empty()
    assert all(b"X-Flood" not in m for m in tern.maildir_messages("alice"))


@pytest.mark.tern(limits={"connections_per_ip": 50})
def test_rcpt_flood(tern):
    """K sessions each pipeline 100000 RCPT commands in one go: 100 are
    accepted (recipients), then 452 4.5.3 until the error limit (10) ends the
    session with 421 4.7.0; the rest is never buffered."""
    k = 5
    flood = b"RCPT TO:<alice@localhost>\r\n" * 100000
    base = baseline(tern)
    replies = []
    lock = threading.Lock()

    def one():
        c = attacker(tern)
        got = []
        try:
            c.cmd("MAIL FROM:<bob@example.test>").check(250)
            reader_done = threading.Event()

            def reader():
                try:
                    while True:
                        got.append(c.reply(30))
                except (ConnectionError, OSError):
                    pass
                finally:
                    reader_done.set()

            threading.Thread(target=reader, daemon=True).start()
            try:
                c.sock.sendall(flood)
            except (ConnectionError, OSError):
                pass    # the server closed after 421
            assert reader_done.wait(30)
        finally:
            c.close()
        with lock:
            replies.append(got)

    with Sampler(tern) as s:
        t = Threads([one] * k)
        honest(tern)
        t.join(60)
    check_growth(tern, "rcpt-flood", k, base, s.peak)
    assert len(replies) == k
    for got in replies:
        codes = [r.code for r in got]
        assert codes[:100] == [250] * 100, codes[:110]
        assert codes[100:-1] == [452] * 10, codes[100:]
        got[100].check(452, "4.5.3", "too many recipients")
        got[-1].check(421, "4.7.0", "too many errors")


# The commands limit (default 100000) would end these sessions early: here
# the back-pressure itself is under test.
@pytest.mark.tern(limits={"connections_per_ip": 50, "commands": 100000000})
def test_pipelined_noop_flood_unread(tern):
    """K sessions pipeline NOOPs as fast as they can and never read a reply:
    the server must stop reading (its replies back up), not grow; what the
    clients manage to send is bounded by the socket buffers."""
    k = 5
    seconds = 3.0
    chunk = b"NOOP\r\n" * (64 * 1024 // 6)
    # Kernel buffers on the way: the server's receive and our send buffer
    # (autotuned up to these), plus replies already made (out of our receive
    # buffer and the server's send buffer, 14 bytes of reply per 6 of NOOP).
    with open("/proc/sys/net/ipv4/tcp_rmem") as f:
        rmem = int(f.read().split()[2])
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        wmem = int(f.read().split()[2])
    max_sent = rmem + wmem + (rmem + wmem) * 6 // 14 + 4 * MIB
    base = baseline(tern)
    sent = []
    lock = threading.Lock()

    def one():
        c = attacker(tern)
        n = 0
        try:
            c.sock.setblocking(False)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    n += c.sock.send(chunk)
                except BlockingIOError:
                    time.sleep(0.005)
            c.sock.setblocking(True)
            c.sock.settimeout(10)
            c.reply().check(250, "2.0.0")
        finally:
            c.close()
        with lock:
            sent.append(n)

    with Sampler(tern) as s:
        t = Threads([one] * k)
        time.sleep(seconds / 2)
        honest(tern)
        t.join(60)
    print(f"\nabuse: noop-flood bytes accepted per session: {sent} (bound {max_sent})")
    check_growth(tern, "noop-flood", k, base, s.peak)
    assert len(sent) == k
    assert max(sent) < max_sent, sent


def test_idle_connections(tern):
    """200 idle connections (from 10 loopback addresses, 20 each = the
    per-address limit) are all greeted and cost little; the honest client
    still gets through."""
    k = 200
    per_session = 16 * 1024     # an idle session holds no data buffers
    base = baseline(tern)
    conns = []
    try:
        for i in range(k):
            src = f"127.0.0.{2 + i // 20}"
            c = Client.__new__(Client)
            c.sock = socket.create_connection((tern.host, tern.port), timeout=10,
                                              source_address=(src, 0))
            c.timeout = 10
            c.buf = b""
            conns.append(c)
        for c in conns:
            c.reply().check(220)
        time.sleep(0.3)
        with Sampler(tern) as s:
            honest(tern)
        check_growth(tern, "idle-connections", k, base, s.peak, per_session=per_session)
    finally:
        for c in conns:
            c.close()


@pytest.mark.tern(limits={"timeout_command": "2s"})
def test_slow_client_times_out(tern):
    """One byte every 0.2 s never completes a command: timeout_command bounds
    the wait for the next command (docs/CONFIG.md), so the server answers
    421 4.4.2 about 2 s after its last reply and closes."""
    c = tern.client()
    c.ehlo()
    t0 = time.monotonic()
    text = b"NOOP " + b"x" * 200      # never ends: no CRLF within the test
    got = None
    c.sock.settimeout(0.2)
    for b in text:
        if time.monotonic() - t0 > 8:
            break
        try:
            c.sock.send(bytes([b]))
        except OSError:
            break
        try:
            chunk = c.sock.recv(4096)
            c.buf += chunk
            if b"\r\n" in c.buf or not chunk:
                got = time.monotonic() - t0
                break
        except socket.timeout:
            pass
    c.sock.settimeout(10)
    assert got is not None, ("a client sending one byte every 0.2 s was never timed out "
                             f"(timeout_command 2s, {time.monotonic() - t0:.1f} s)")
    r = c.reply()
    r.check(421, "4.4.2", "timeout exceeded")
    assert 1.5 <= got <= 4, got
    assert c.closed()


def check_pid(t):
    """The check process: the pid of its log lines."""
    found = re.findall(r"pid=(\d+) proc=check ", t.log())
    assert found, t.log()
    return int(found[-1])


def test_checked_large_headers(tern_factory, unbound_server):
    """K sessions on a checked mx listener each send a header section just
    under SESSION_HDR_MAX while the check process is stuck on DNS (slow.test
    never answers; one thread): every request waits in the check process
    with its header. The daemon grows by less than K sessions' buffers plus
    the header three times over (session, IPC queue, check process); the
    check process alone by less than min(K, CHECKD_PENDING_MAX) requests.
    Each message is then accepted with a temperror result."""
    k = 40
    dns = unbound_server(["slow.test TIMEOUT"])
    t = tern_factory(limits={"connections_per_ip": 100},
                     extra=f"dns_server {dns.address}\nauth_checks on {{\n"
                     "    authserv_id mx.tern.test\n    timeout 6s\n    threads 1\n}\n")
    line = b"X-Pad: " + b"p" * 190 + b"\r\n"
    header = b"From: a@slow.test\r\nSubject: big\r\n" + \
        line * ((HDR_MAX - 2048) // len(line)) + b"\r\n"
    assert HDR_MAX - 8192 < len(header) < HDR_MAX - 1024
    base = baseline(t)
    cpid = check_pid(t)
    check_base = rss_kib(cpid)
    sent = threading.Barrier(k + 1, timeout=60)
    codes = []
    lock = threading.Lock()

    def one():
        c = attacker(t)
        try:
            c.mail_rcpt_data("a@slow.test", ["alice@localhost"])
            c.send(header + b"body\r\n.\r\n")
            sent.wait()
            r = c.reply(60)
            with lock:
                codes.append(r.code)
        finally:
            c.close()

    check_peak = 0
    with Sampler(t) as s:
        th = Threads([one] * k)
        sent.wait()
        # Every request reached the check process, none is answered yet.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            check_peak = max(check_peak, rss_kib(cpid))
            time.sleep(SAMPLE_EVERY)
        th.join(120)
    check_growth(t, "checked-headers", k, base, s.peak, per_session=PER_CHECKED_SESSION)
    per_request = HDR_MAX + CHECK_ANSWER_MAX
    bound = (min(k, CHECK_PENDING_MAX) * per_request + CONSTANT) // 1024
    growth = check_peak - check_base
    print(f"abuse: checked-headers check process base={check_base} peak={check_peak} "
          f"growth={growth} KiB (bound {bound} KiB)")
    if not sanitized(t):
        # The requests did reach it: at least half of their headers are resident.
        assert k * len(header) // 2048 < growth < bound, (growth, bound)
    assert codes == [250] * k, codes
    t.wait_for_messages("alice", n=k + 1, timeout=60)
