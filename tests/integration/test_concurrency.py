"""200 concurrent clients, each delivering one message: all arrive."""

import smtplib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

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
