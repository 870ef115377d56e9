"""Dot-stuffing undone exactly (RFC 5321 4.5.2) and the text line limit."""

import smtplib
import time

from smtp_client import check_stored, queued_id, simple_body

BODY = (b"Subject: dots\r\n"
        b"\r\n"
        b".\r\n"
        b"..\r\n"
        b"...\r\n"
        b".foo\r\n"
        b"..bar\r\n"
        b" .not at start\r\n"
        b"a.b\r\n"
        b".\r\n")


def test_dots_round_trip_raw(tern):
    c = tern.client()
    c.ehlo()
    c.mail_rcpt_data("bob@example.test", ["alice@localhost"])
    wire = (b"Subject: dots\r\n\r\n..\r\n...\r\n....\r\n..foo\r\n...bar\r\n"
            b" .not at start\r\na.b\r\n..\r\n.\r\n")
    c.send(wire)
    qid = queued_id(c.reply())
    [stored] = tern.wait_for_messages("alice")
    check_stored(stored, "bob@example.test", "alice@localhost", qid, BODY,
                 for_rcpt="alice@localhost")


def test_dots_round_trip_smtplib(tern):
    with smtplib.SMTP(tern.host, tern.port, local_hostname="client.example", timeout=10) as s:
        s.ehlo()
        s.mail("bob@example.test")
        s.rcpt("alice@localhost")
        qid = queued_id(s.data(BODY))
    [stored] = tern.wait_for_messages("alice")
    check_stored(stored, "bob@example.test", "alice@localhost", qid, BODY,
                 for_rcpt="alice@localhost")


def test_empty_message(tern):
    c = tern.client()
    c.ehlo()
    c.mail_rcpt_data("bob@example.test", ["alice@localhost"])
    c.send(b".\r\n")
    qid = queued_id(c.reply())
    [stored] = tern.wait_for_messages("alice")
    check_stored(stored, "bob@example.test", "alice@localhost", qid, b"",
                 for_rcpt="alice@localhost")


def test_line_of_998_accepted(tern):
    body = b"Subject: long\r\n\r\n" + b"x" * 998 + b"\r\nend\r\n"
    c = tern.client()
    c.ehlo()
    qid = c.deliver("bob@example.test", ["alice@localhost"], body)
    [stored] = tern.wait_for_messages("alice")
    check_stored(stored, "bob@example.test", "alice@localhost", qid, body,
                 for_rcpt="alice@localhost")


def test_stuffed_line_of_998_accepted(tern):
    """998 octets after unstuffing (999 on the wire) is a legal line."""
    body = b"Subject: long\r\n\r\n" + b"." + b"y" * 997 + b"\r\n"
    c = tern.client()
    c.ehlo()
    qid = c.deliver("bob@example.test", ["alice@localhost"], body)
    [stored] = tern.wait_for_messages("alice")
    check_stored(stored, "bob@example.test", "alice@localhost", qid, body,
                 for_rcpt="alice@localhost")


def test_line_of_1001_octets_refused(tern):
    body = b"Subject: too long\r\n\r\n" + b"x" * 999 + b"\r\nend\r\n"
    c = tern.client()
    c.ehlo()
    c.mail_rcpt_data("bob@example.test", ["alice@localhost"])
    c.message(body).check(550, "5.6.0", "longer than 1000")
    time.sleep(0.3)
    assert tern.spool_files() == []
    assert tern.all_maildir_files() == []
    # The session goes on.
    c.deliver("bob@example.test", ["alice@localhost"], simple_body())
    assert len(tern.wait_for_messages("alice")) == 1


def test_huge_line_refused(tern):
    body = b"Subject: huge\r\n\r\n" + b"x" * 200000 + b"\r\n"
    c = tern.client()
    c.ehlo()
    c.mail_rcpt_data("bob@example.test", ["alice@localhost"])
    c.message(body).check(550, "5.6.0")
    c.cmd("NOOP").check(250)
    time.sleep(0.3)
    assert tern.all_maildir_files() == []
