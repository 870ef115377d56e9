"""Mail in, mail stored: smtplib and swaks deliveries, byte-exact Maildir
files with Return-Path, Delivered-To and Received, sub-addresses,
postmaster, aliases, and an empty spool afterwards."""

import smtplib
import subprocess

import pytest

from conftest import free_port, has_ipv6_loopback
from smtp_client import check_stored, queued_id, simple_body

BODY = (b"From: Bob <bob@example.test>\r\n"
        b"To: Alice <alice@localhost>\r\n"
        b"Subject: first message\r\n"
        b"Message-ID: <basic-1@example.test>\r\n"
        b"\r\n"
        b"Hello Alice,\r\n"
        b"\r\n"
        b"this is the body.\r\n")


def smtp(tern):
    s = smtplib.SMTP(tern.host, tern.port, local_hostname="client.example", timeout=10)
    return s


def send(tern, sender, rcpts, body):
    """One transaction with smtplib; returns the queue ID."""
    with smtp(tern) as s:
        assert s.ehlo()[0] == 250
        code, text = s.mail(sender)
        assert code == 250 and text.startswith(b"2.1.0 "), (code, text)
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250 and text.startswith(b"2.1.5 "), (r, code, text)
        return queued_id(s.data(body))


def test_smtplib_byte_exact(tern):
    qid = send(tern, "bob@example.test", ["alice@localhost"], BODY)
    [stored] = tern.wait_for_messages("alice")
    check_stored(stored, "bob@example.test", "alice@localhost", qid, BODY,
                 for_rcpt="alice@localhost")


def test_sendmail_returns_no_refusals(tern):
    with smtp(tern) as s:
        assert s.sendmail("bob@example.test", ["alice@localhost"], BODY) == {}
    [stored] = tern.wait_for_messages("alice")
    assert stored.endswith(b"\r\n" + BODY)


def test_helo_says_smtp_and_null_sender(tern):
    c = tern.client()
    c.helo("old.example")
    c.cmd("MAIL FROM:<>").check(250)
    c.cmd("RCPT TO:<alice@localhost>").check(250)
    c.cmd("DATA").check(354)
    qid = queued_id(c.message(BODY).check(250))
    [stored] = tern.wait_for_messages("alice")
    check_stored(stored, "", "alice@localhost", qid, BODY, for_rcpt="alice@localhost",
                 helo="old.example", proto="SMTP")


def test_queue_id_in_log(tern):
    qid = send(tern, "bob@example.test", ["alice@localhost"], BODY)
    tern.wait_for_messages("alice")
    assert qid in tern.log()


def test_log_start_and_ready(tern):
    log = tern.log()
    assert "event=start" in log and "event=ready" in log
    assert log.index("event=start") < log.index("event=ready")


@pytest.mark.tern(workers=1)
def test_queue_ids_increase(tern):
    """One worker's successive messages get increasing IDs. (With several
    workers they need not: a worker's spare file is named ahead, so a
    message on another worker may get a newer name first; IDs stay unique,
    docs/ARCHITECTURE.md "Spool format".)"""
    ids = [send(tern, "bob@example.test", ["alice@localhost"], simple_body(str(i)))
           for i in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    tern.wait_for_messages("alice", n=3)


def test_two_recipients_one_copy_each_no_for(tern):
    qid = send(tern, "bob@example.test", ["alice@localhost", "bob@example.test"], BODY)
    [a] = tern.wait_for_messages("alice")
    [b] = tern.wait_for_messages("bob", "example.test")
    check_stored(a, "bob@example.test", "alice@localhost", qid, BODY)
    check_stored(b, "bob@example.test", "bob@example.test", qid, BODY)


def test_swaks(tern):
    r = subprocess.run(
        ["swaks", "--server", f"{tern.host}:{tern.port}", "--to", "alice@localhost",
         "--from", "bob@example.test", "--helo", "swaks.example",
         "--header", "Subject: swaks test", "--body", "hello from swaks",
         "--timeout", "10"],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    qid = queued_id((250, r.stdout))
    [stored] = tern.wait_for_messages("alice")
    assert stored.startswith(
        b"Return-Path: <bob@example.test>\r\n"
        b"Delivered-To: alice@localhost\r\n"
        b"Received: from swaks.example ([127.0.0.1])\r\n"
        b"\tby test.example (tern) with ESMTP id " + qid.encode() +
        b"\r\n\tfor <alice@localhost>; ")
    assert b"\r\nSubject: swaks test\r\n" in stored
    assert b"\r\n\r\nhello from swaks\r\n" in stored


@pytest.mark.skipif(not has_ipv6_loopback(), reason="::1 is not configured on this machine")
def test_ipv6_client_in_received(tern_factory):
    """RFC 5321 4.1.3/4.4: an IPv6 client's address in the Received field
    is an IPv6 address literal, "[IPv6:::1]"."""
    port = free_port()
    t = tern_factory(extra=f"listen [::1]:{port} {{ mode mx }}\n")
    s = smtplib.SMTP("::1", port, local_hostname="six.example", timeout=10)
    s.sendmail("bob@example.test", ["alice@localhost"], BODY)
    s.quit()
    [stored] = t.wait_for_messages("alice")
    assert b"\r\nReceived: from six.example ([IPv6:::1])\r\n\tby test.example (tern) with ESMTP id " \
        in stored, stored[:300]


def test_subaddress(tern):
    qid = send(tern, "bob@example.test", ["alice+tag@localhost"], BODY)
    [stored] = tern.wait_for_messages("alice")
    check_stored(stored, "bob@example.test", "alice@localhost", qid, BODY,
                 for_rcpt="alice+tag@localhost")
    assert tern.maildir_names("alice+tag") == []


@pytest.mark.parametrize("domain", ["localhost", "example.test"])
def test_postmaster_any_case(tern, domain):
    qid = send(tern, "bob@example.test", [f"PostMaster@{domain}"], BODY)
    [stored] = tern.wait_for_messages("postmaster", domain)
    check_stored(stored, "bob@example.test", f"postmaster@{domain}", qid, BODY,
                 for_rcpt=f"PostMaster@{domain}")


def test_alias_root_to_alice(tern):
    qid = send(tern, "bob@example.test", ["ROOT@localhost"], BODY)
    [stored] = tern.wait_for_messages("alice")
    check_stored(stored, "bob@example.test", "alice@localhost", qid, BODY,
                 for_rcpt="ROOT@localhost")
    assert tern.maildir_names("root") == []


@pytest.mark.tern(aliases={"team": "alice, bob"})
def test_alias_to_two_users(tern):
    send(tern, "carol@example.test", ["team@localhost"], BODY)
    [a] = tern.wait_for_messages("alice")
    [b] = tern.wait_for_messages("bob")
    assert a.endswith(BODY) and b.endswith(BODY)
    assert b"Delivered-To: alice@localhost\r\n" in a
    assert b"Delivered-To: bob@localhost\r\n" in b


def test_spool_empty_after_delivery(tern):
    send(tern, "bob@example.test", ["alice@localhost", "bob@localhost"], BODY)
    tern.wait_for_messages("alice")
    tern.wait_for_messages("bob")
    tern.wait_spool_empty(timeout=5)
    assert tern.spool_files() == []
