"""Crash consistency: nothing acknowledged is ever lost (RFC 5321 4.1.1.4:
250 after the end of data means the server took responsibility).

Many sessions send messages in parallel (several per connection, a unique
Message-ID each) while another thread kills the daemon with SIGKILL at
random moments and restarts it (test_crash_kill9_all), or kills only the
queue or the deliver process and lets the parent replace it
(test_crash_kill9_queue_or_deliver). At the end every message answered 250
must be in the Maildir; duplicates are allowed (at-least-once) but counted
and printed. Messages without a final reply, or with 4xx, may or may not
arrive.

TERN_CRASH_N sets the number of messages (default 150, for CI);
TERN_CRASH_KILLS the number of kills (default 6).
"""

import os
import random
import re
import threading
import time
import uuid

from smtp_client import Client, simple_body

N = int(os.environ.get("TERN_CRASH_N", "150"))
KILLS = int(os.environ.get("TERN_CRASH_KILLS", "6"))
THREADS = 12
PER_CONNECTION = 5
# Wall time for the sending phase, and for the deliveries to finish after it.
SEND_BUDGET = 30 + N * 0.05
DRAIN_BUDGET = 30 + N * 0.02
MSGID_RE = re.compile(rb"\r\nMessage-ID: <([^>\r\n]+)>\r\n")
CRASH_LIMITS = {"connections_per_ip": 100, "timeout_command": "10s"}
CRASH_EXTRA = "retry_interval 1s"


class Run:
    """The shared state of one crash run: what was sent and with what result."""

    def __init__(self, tern, n, rcpt="alice@localhost"):
        self.tern = tern
        self.n = n
        self.rcpt = rcpt
        self.tag = uuid.uuid4().hex[:8]
        self.lock = threading.Lock()
        self.next = 0
        self.attempted = 0
        self.results = {}          # Message-ID -> "250", "4xx code", "5xx code", "noreply"
        self.deadline = time.monotonic() + SEND_BUDGET
        self.kills = 0

    def take(self, k):
        with self.lock:
            first = self.next
            self.next = min(self.n, self.next + k)
            return list(range(first, self.next))

    def record(self, msgid, result):
        with self.lock:
            self.results[msgid] = result
            self.attempted += 1

    def msgid(self, i):
        return f"crash-{self.tag}-{i}@client.example"


def connect(run):
    """A greeted, EHLO'd client, retrying while the daemon is down; None at the deadline."""
    while time.monotonic() < run.deadline:
        c = None
        try:
            c = Client(run.tern.host, run.tern.port, timeout=10)
            c.reply().check(220)
            c.cmd("EHLO client.example").check(250)
            return c
        except (OSError, ConnectionError, AssertionError):
            if c:
                c.close()
            time.sleep(0.05 + random.random() * 0.1)
    return None


def send_one(c, msgid, rcpt="alice@localhost"):
    """One transaction; returns the final reply's result. Raises on a dead connection."""
    r = c.cmd("MAIL FROM:<bob@example.test>")
    if r.code != 250:
        return f"mail-{r.code}"
    r = c.cmd(f"RCPT TO:<{rcpt}>")
    if r.code != 250:
        c.cmd("RSET")
        return f"rcpt-{r.code}"
    r = c.cmd("DATA")
    if r.code != 354:
        return f"data-{r.code}"
    c.send(simple_body(subject="crash", text=f"body of {msgid}", msgid=msgid) + b".\r\n")
    return str(c.reply().code)


def sender(run):
    while True:
        batch = run.take(PER_CONNECTION)
        if not batch:
            return
        c = connect(run)
        for i in batch:
            msgid = run.msgid(i)
            if c is None:
                run.record(msgid, "noreply")
                c = connect(run) if time.monotonic() < run.deadline else None
                continue
            try:
                run.record(msgid, send_one(c, msgid, run.rcpt))
            except (OSError, ConnectionError, AssertionError):
                # The server died under us: no final reply for this one.
                run.record(msgid, "noreply")
                c.close()
                c = connect(run)
        if c is not None:
            try:
                c.cmd("QUIT")
            except (OSError, ConnectionError, AssertionError):
                pass
            c.close()


def kill_points(n, kills):
    """Progress counts (messages attempted) at which to kill, spread over the run."""
    return sorted(random.sample(range(max(1, n // 20), max(2, n - n // 20)), min(kills, n // 2)))


def run_with_killer(run, kill_once, threads=THREADS):
    points = kill_points(run.n, KILLS)
    senders = [threading.Thread(target=sender, args=(run,), daemon=True) for _ in range(threads)]
    for t in senders:
        t.start()
    errors = []

    def killer():
        try:
            for p in points:
                while run.attempted < p and any(t.is_alive() for t in senders):
                    if time.monotonic() > run.deadline:
                        return
                    time.sleep(0.01)
                if not any(t.is_alive() for t in senders):
                    return
                time.sleep(random.random() * 0.05)
                if kill_once():
                    run.kills += 1
        except BaseException as e:   # pytest.fail() inside start() and the like
            errors.append(e)

    k = threading.Thread(target=killer, daemon=True)
    k.start()
    for t in senders:
        t.join(max(1, run.deadline - time.monotonic() + 15))
    k.join(30)
    assert not errors, errors
    assert not any(t.is_alive() for t in senders), "senders did not finish in time"
    assert not k.is_alive(), "killer did not finish in time"


def delivered_ids(tern, user="alice", domain="localhost"):
    """Message-ID -> number of copies in the user's Maildir (new/ and cur/)."""
    counts = {}
    for sub in ("new", "cur"):
        d = tern.maildir(user, domain) / sub
        if not d.exists():
            continue
        for name in os.listdir(d):
            m = MSGID_RE.search((d / name).read_bytes())
            assert m, f"message without Message-ID in {d / name}"
            mid = m.group(1).decode()
            counts[mid] = counts.get(mid, 0) + 1
    return counts


def check_run(run, label, peer=None):
    tern = run.tern
    # Let everything committed be delivered (recovery included).
    tern.wait_spool_empty(timeout=DRAIN_BUDGET)
    if peer is not None:
        peer.wait_spool_empty(timeout=DRAIN_BUDGET)
    time.sleep(0.5)
    got = delivered_ids(peer, "alice", "relay.test") if peer is not None else delivered_ids(tern)
    acked = [m for m, r in run.results.items() if r == "250"]
    lost = [m for m in acked if m not in got]
    dups = {m: n for m, n in got.items() if n > 1}
    strangers = [m for m in got if m not in run.results]
    other = {}
    for r in run.results.values():
        if r != "250":
            other[r] = other.get(r, 0) + 1
    print(f"\ncrash ({label}): sent {len(run.results)}, acked {len(acked)}, "
          f"delivered {len(got)}, lost {len(lost)}, duplicates {sum(n - 1 for n in dups.values())}"
          f" (kills {run.kills}; not acked: {other})")
    if dups:
        print(f"crash ({label}): duplicated Message-IDs: {sorted(dups.items())}")
    assert len(run.results) == run.n
    assert not strangers, strangers
    assert not lost, f"acknowledged but not delivered: {lost}"
    # A crash must never turn into a permanent refusal of the client's mail.
    assert not [r for r in run.results.values() if r[-3:-2] == "5"], other
    # The run must have meant something: kills happened, most mail got through.
    assert run.kills >= 1
    assert len(acked) >= run.n // 3, (len(acked), other)


def test_crash_kill9_all(tern_factory):
    """SIGKILL of the whole process group at random moments, then a restart."""
    tern = tern_factory(limits=CRASH_LIMITS, extra=CRASH_EXTRA)
    run = Run(tern, N)

    def kill_once():
        tern.kill9()
        time.sleep(random.random() * 0.2)
        tern.start(timeout=20)
        return True

    run_with_killer(run, kill_once)
    check_run(run, "kill -9 of all")


def role_pids(tern):
    """{"queue": pid, "deliver": pid} among the parent's children, told apart
    by their working directory: the queue's is the spool, deliver's the
    Maildir base (see docs/ARCHITECTURE.md)."""
    spool = os.path.realpath(tern.spool)
    mail = os.path.realpath(tern.maildir_root)
    out = {}
    for pid in tern.children():
        try:
            cwd = os.path.realpath(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            continue
        if cwd == spool:
            out["queue"] = pid
        elif cwd == mail:
            out["deliver"] = pid
    return out


def test_crash_kill9_queue_or_deliver(tern_factory):
    """SIGKILL of the queue or of the deliver process alone; the parent
    replaces it (a dead queue restarts every child)."""
    tern = tern_factory(limits=CRASH_LIMITS, extra=CRASH_EXTRA)
    assert set(role_pids(tern)) == {"queue", "deliver"}, role_pids(tern)
    run = Run(tern, N)
    killed = {"queue": 0, "deliver": 0}

    def kill_once():
        roles = role_pids(tern)
        if not roles:
            return False
        role = random.choice(sorted(roles))
        try:
            os.kill(roles[role], 9)
        except ProcessLookupError:
            return False
        killed[role] += 1
        # Wait for the replacement before the next kill.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = role_pids(tern)
            if role in now and now[role] != roles[role]:
                break
            time.sleep(0.02)
        return True

    run_with_killer(run, kill_once)
    assert tern.proc.poll() is None, "the parent died"
    print(f"\ncrash: killed {killed}")
    check_run(run, "kill -9 of queue or deliver")


def test_crash_kill9_relayed(tern_factory):
    """The same for mail that leaves by SMTP: A relays (through an alias and
    a route) to a second tern B, and A is killed at random moments. Every
    message A acknowledged must reach B; B is never killed."""
    peer = tern_factory(extra="domain relay.test { users users.passwd; maildir mail/%d/%u }")
    tern = tern_factory(limits=CRASH_LIMITS, aliases={"relayed": "alice@relay.test"},
                        extra=CRASH_EXTRA + f"\nroute relay.test {{ via 127.0.0.1:{peer.port} }}")
    run = Run(tern, N, rcpt="relayed@localhost")

    def kill_once():
        tern.kill9()
        time.sleep(random.random() * 0.2)
        tern.start(timeout=20)
        return True

    run_with_killer(run, kill_once)
    check_run(run, "kill -9 of a relaying tern", peer=peer)
