"""200 concurrent clients, each delivering one message: all arrive."""

import re
import smtplib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import proc_status

N = 200


def send_one(tern, i, barrier):
    barrier.wait(30)
    body = (f"From: c{i}@example.test\r\nTo: alice@localhost\r\n"
            f"Subject: client {i}\r\nMessage-ID: <conc-{i}@example.test>\r\n\r\n"
            f"body of {i}\r\n").encode()
    with smtplib.SMTP(tern.host, tern.port, local_hostname=f"c{i}.example", timeout=60) as s:
        s.ehlo()
        refused = s.sendmail(f"c{i}@example.test", ["alice@localhost"], body)
        assert refused == {}
    return i


@pytest.mark.tern(limits={"connections_per_ip": N + 50})
def test_200_concurrent_clients(tern):
    barrier = threading.Barrier(N)
    with ThreadPoolExecutor(max_workers=N) as pool:
        futures = [pool.submit(send_one, tern, i, barrier) for i in range(N)]
        errors = []
        for f in futures:
            try:
                f.result(timeout=120)
            except Exception as e:  # noqa: BLE001 - collect every failure
                errors.append(repr(e))
    assert errors == [], f"{len(errors)} clients failed, first: {errors[:3]}"
    msgs = tern.wait_for_messages("alice", n=N, timeout=60)
    assert len(msgs) == N
    ids = set()
    for m in msgs:
        for line in m.split(b"\r\n"):
            if line.startswith(b"Message-ID: <conc-"):
                ids.add(line)
    assert ids == {f"Message-ID: <conc-{i}@example.test>".encode() for i in range(N)}
    tern.wait_spool_empty(timeout=30)


def _soft_nofile(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no Max open files line")


def test_nofile_raised_idle_clients_held(tern_factory):
    """Started with a soft descriptor limit of 128, tern raises it to the hard
    limit itself, so one worker holds 400 idle clients (issue 6)."""
    import resource
    import socket
    import time

    n = 400
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < n + 200:
        pytest.skip(f"hard descriptor limit {hard} too low")
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
    try:
        t = tern_factory(workers=1, limits={"connections": n + 10,
                                            "connections_per_ip": n + 10})
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    t.wait_log(f"event=nofile from=128 to={hard}")
    (worker,) = t.smtp_workers()
    assert _soft_nofile(worker) == hard
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection((t.host, t.port), timeout=10)
            socks.append(s)
        greeted = 0
        for s in socks:
            f = s.makefile("rb")
            assert f.readline().startswith(b"220 ")
            s.sendall(b"EHLO idle.example\r\n")
            while True:
                line = f.readline()
                assert line[:3] == b"250", line
                if line[3:4] == b" ":
                    break
            greeted += 1
        assert greeted == n
        t0 = time.monotonic()
        c = t.client()	# reads and checks the 220
        assert time.monotonic() - t0 < 1.0
        assert c.cmd("QUIT").code == 221
    finally:
        for s in socks:
            s.close()


def test_out_of_descriptors_pauses_accepting(tern_factory, tmp_path, monkeypatch):
    """A worker out of descriptors stops accepting for a moment instead of
    spinning on accept(2) (EMFILE leaves the connection in the backlog and
    the listening socket readable), and serves new clients once sessions
    have ended."""
    import socket
    import time

    import conftest

    wrapper = tmp_path / "tern-64"
    wrapper.write_text(f'#!/bin/sh\nulimit -n 64\nexec "{conftest.TERN_BIN}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(conftest, "TERN_BIN", str(wrapper))
    t = tern_factory(workers=1, limits={"connections": 500, "connections_per_ip": 500})
    (worker,) = t.smtp_workers()
    socks = [socket.create_connection((t.host, t.port), timeout=10) for _ in range(100)]
    try:
        t.wait_log("event=accept-paused error=\"Too many open files\"")
        time.sleep(1.0)
        log = t.log()
        # At most one pause per 100 ms, not a warning per accept attempt.
        assert 1 <= log.count("event=accept-paused") <= 15
        assert "event=accept-failed" not in log
        with open(f"/proc/{worker}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu_ticks = int(fields[11]) + int(fields[12])
        assert cpu_ticks < 50, f"worker used {cpu_ticks} ticks while paused"
    finally:
        for s in socks:
            s.close()
    time.sleep(0.5)
    c = t.client()	# reads and checks the 220
    assert c.cmd("QUIT").code == 221


def voluntary_switches(pid):
    return int(proc_status(pid)["voluntary_ctxt_switches"])


def connects_by_pid(tern):
    """How many sessions each smtp worker accepted so far (its event=connect lines)."""
    counts = {}
    for m in re.finditer(r" pid=(\d+) proc=smtp level=info event=connect ", tern.log()):
        counts[int(m.group(1))] = counts.get(int(m.group(1)), 0) + 1
    return counts


@pytest.mark.tern(workers=3)
def test_one_idle_worker_woken_per_connection(tern):
    """A new connection wakes one idle worker, not every worker listening on
    the socket (EPOLLEXCLUSIVE, listen_exclusive in src/server/worker.c):
    with clients one after the other, the workers that accept none of them
    sleep through them all. Before, each connection woke all three, and two
    found nothing to accept."""
    import time

    n = 30
    workers = tern.smtp_workers()
    assert len(workers) == 3
    time.sleep(0.2)
    conn0 = connects_by_pid(tern)
    woke0 = {p: voluntary_switches(p) for p in workers}
    for _ in range(n):
        c = tern.client()	# reads and checks the 220
        assert c.cmd("QUIT").code == 221
        c.close()
        time.sleep(0.05)
    time.sleep(0.2)
    conn1 = connects_by_pid(tern)
    accepted = {p: conn1.get(p, 0) - conn0.get(p, 0) for p in workers}
    woke = {p: voluntary_switches(p) - woke0[p] for p in workers}
    assert sum(accepted.values()) == n, (accepted, conn1)
    idle = [p for p in workers if accepted[p] == 0]
    assert idle, f"every worker accepted some of {n} sequential clients: {accepted}"
    for p in idle:
        assert woke[p] <= 5, f"worker {p} accepted nothing but woke {woke[p]} times: {woke}"
