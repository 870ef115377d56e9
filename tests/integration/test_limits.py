"""Connection limits, the command timeout and the early-talker check."""

import socket
import time

import pytest

from smtp_client import Client


@pytest.mark.tern(limits={"connections_per_ip": 2})
def test_connections_per_ip(tern):
    a = tern.client()
    b = tern.client()
    c = tern.client(greet=False)
    r = c.reply().check(421, "4.7.0", "too many connections")
    assert r.text.startswith("4.7.0 test.example")
    assert c.closed()
    # The two first sessions are fine.
    a.cmd("NOOP").check(250)
    b.cmd("NOOP").check(250)
    # When one goes, a new connection is accepted again.
    a.cmd("QUIT").check(221)
    a.close()
    deadline = time.monotonic() + 5
    while True:
        d = tern.client(greet=False)
        r = d.reply()
        if r.code == 220 or time.monotonic() > deadline:
            break
        d.close()
        time.sleep(0.1)
    r.check(220)


@pytest.mark.tern(limits={"timeout_command": "2s"})
def test_idle_timeout(tern):
    c = tern.client()
    c.ehlo()
    t0 = time.monotonic()
    r = c.reply(timeout=15)
    elapsed = time.monotonic() - t0
    r.check(421, "4.4.2", "timeout exceeded")
    assert r.text.startswith("4.4.2 test.example")
    assert 1.5 <= elapsed <= 6, elapsed
    assert c.closed()


@pytest.mark.tern(limits={"timeout_command": "2s"})
def test_activity_resets_timeout(tern):
    c = tern.client()
    c.ehlo()
    for _ in range(4):
        time.sleep(1)
        c.cmd("NOOP").check(250)


@pytest.mark.tern(limits={"greeting_delay": "1s"})
def test_early_talker(tern):
    c = Client(tern.host, tern.port)
    tern.clients.append(c)
    c.send(b"EHLO early.example\r\n")
    r = c.reply(timeout=10)
    r.check(554, "5.5.0", "talked before the greeting")
    assert c.closed()


@pytest.mark.tern(limits={"greeting_delay": "1s"})
def test_patient_client_after_greeting_delay(tern):
    t0 = time.monotonic()
    c = tern.client(greet=False)
    r = c.reply(timeout=10)
    r.check(220)
    assert time.monotonic() - t0 >= 0.9
    c.ehlo()
    c.cmd("NOOP").check(250)


def test_half_close_client(tern):
    """A client that sends QUIT and shuts down its write side still gets 221."""
    c = tern.client()
    c.send(b"QUIT\r\n")
    c.sock.shutdown(socket.SHUT_WR)
    c.reply().check(221)
    assert c.closed()


@pytest.mark.tern(limits={"commands": 10})
def test_commands_per_session(tern):
    c = tern.client()
    c.ehlo()
    for _ in range(9):
        c.cmd("NOOP").check(250)
    c.cmd("NOOP").check(421, "4.7.0", "too many commands")
    assert c.closed()
    # Another session starts from zero.
    d = tern.client()
    d.cmd("NOOP").check(250)


@pytest.mark.tern(limits={"messages_per_ip": 3})
def test_messages_per_ip_per_minute(tern):
    body = b"Subject: rate\r\n\r\nx\r\n"
    # The count is per clock minute (time / 60, src/server/worker.c): start
    # early in one, or a slow run (valgrind) crosses into the next and the
    # fourth message is counted afresh.
    if time.time() % 60 > 40:
        time.sleep(60.5 - time.time() % 60)
    for i in range(3):
        c = tern.client()
        c.ehlo()
        c.deliver("bob@example.test", ["alice@localhost"], body)
    # The fourth MAIL this minute, from the same address, on another worker or not.
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test>").check(421, "4.7.0", "too many messages")
    assert c.closed()
    assert len(tern.wait_for_messages("alice", n=3)) == 3
