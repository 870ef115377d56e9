"""Delivery status notifications (RFC 3461/3464): a recipient that fails for
good gets its sender a multipart/report bounce; NOTIFY=SUCCESS earns a
success report; NOTIFY=NEVER and the null sender get nothing; a bounce
that cannot be delivered goes to the postmaster once and never loops."""

import email
import email.policy
import os
import re
import time

import pytest

BODY = (b"From: bob@localhost\r\nTo: alice@localhost\r\nSubject: dsn test\r\n"
        b"Message-ID: <dsn-1@localhost>\r\n\r\nhello\r\n")


def break_maildir(tern, user):
    """A file where the Maildir should be: delivery fails for good (ENOTDIR)."""
    d = tern.maildir(user)
    d.parent.mkdir(parents=True, exist_ok=True)
    d.write_bytes(b"not a folder")


def report_parts(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    parts = list(msg.iter_parts())
    status = parts[1]
    assert status.get_content_type() == "message/delivery-status"
    return msg, parts


@pytest.mark.tern(users=["carol"])
def test_bounce_for_a_permanent_local_failure(tern):
    c = tern.client()
    c.ehlo()
    # bob gets mail: his Maildir exists and works.
    c.deliver("alice@localhost", ["bob@localhost"], BODY)
    tern.wait_for_messages("bob")
    break_maildir(tern, "carol")
    qid = c.deliver("bob@localhost", ["carol@localhost"], BODY,
                    params=" RET=HDRS ENVID=env+2B1")
    tern.wait_log(rf"event=failed id={qid} to=carol@localhost")
    msgs = tern.wait_for_messages("bob", n=2)
    raw = [m for m in msgs if b"multipart/report" in m]
    assert len(raw) == 1, msgs
    stored = raw[0]
    assert stored.startswith(b"Return-Path: <>\r\n")
    msg, parts = report_parts(stored.split(b"\r\n", 2)[2])
    assert msg["To"] == "bob@localhost" or "<bob@localhost>" in msg["To"]
    assert msg["Auto-Submitted"].startswith("auto-replied")
    text = parts[1].as_string()
    assert "Action: failed" in text
    assert re.search(r"Final-Recipient: rfc822; ?carol@localhost", text), text
    assert "Original-Envelope-Id: env+1" in text, text
    assert re.search(r"Status: 5\.\d\.\d", text), text
    # RET=HDRS: the headers come back, not the body.
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert b"Subject: dsn test" in parts[2].get_payload(decode=True)
    assert b"hello" not in parts[2].get_payload(decode=True)
    tern.wait_spool_empty()


@pytest.mark.tern(users=["carol"])
def test_notify_success_and_never(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@localhost>").check(250)
    c.cmd("RCPT TO:<alice@localhost> NOTIFY=SUCCESS ORCPT=rfc822;alice+2Bx@localhost").check(250)
    c.cmd("DATA").check(354)
    c.message(BODY).check(250)
    tern.wait_for_messages("alice")
    [report] = tern.wait_for_messages("bob")
    msg, parts = report_parts(report.split(b"\r\n", 2)[2])
    text = parts[1].as_string()
    assert "Action: delivered" in text, text
    assert "Original-Recipient: rfc822;alice+x@localhost" in text.replace("; ", ";"), text
    # NOTIFY=NEVER: a failure stays silent.
    break_maildir(tern, "carol")
    c.cmd("MAIL FROM:<bob@localhost>").check(250)
    c.cmd("RCPT TO:<carol@localhost> NOTIFY=NEVER").check(250)
    c.cmd("DATA").check(354)
    r = c.message(BODY).check(250)
    qid = r.text.split()[-1]
    tern.wait_log(rf"event=failed id={qid}")
    time.sleep(0.5)
    assert len(tern.maildir_names("bob")) == 1
    tern.wait_spool_empty()


@pytest.mark.tern(users=["carol"])
def test_no_bounce_to_null_sender_and_double_bounce(tern):
    c = tern.client()
    c.ehlo()
    # The domain's folder is made by the delivery user, as in real life.
    c.deliver("bob@localhost", ["alice@localhost"], BODY)
    tern.wait_for_messages("alice")
    break_maildir(tern, "carol")
    qid = c.deliver("", ["carol@localhost"], BODY)
    tern.wait_log(rf"event=dsn-dropped id={qid}")
    # A bounce that cannot be delivered goes to the postmaster, once.
    break_maildir(tern, "bob")
    qid2 = c.deliver("bob@localhost", ["carol@localhost"], BODY)
    tern.wait_log(rf"event=failed id={qid2}")
    tern.wait_log(r"event=dsn-queued id=\w+ to=<postmaster@localhost>")
    [double] = tern.wait_for_messages("postmaster")
    assert b"multipart/report" in double
    time.sleep(0.5)
    assert len(tern.maildir_names("postmaster")) == 1
    tern.wait_spool_empty()


@pytest.mark.tern(users=["carol"], extra="delay_warning 1s\nretry_interval 1s")
def test_delay_warning_once(tern):
    c = tern.client()
    c.ehlo()
    c.deliver("bob@localhost", ["alice@localhost"], BODY)
    tern.wait_for_messages("alice")
    # carol's Maildir exists but cannot be written: a temporary failure.
    box = tern.maildir("carol")
    box.mkdir(mode=0o700)
    os.chmod(box, 0)
    qid = c.deliver("bob@localhost", ["carol@localhost"], BODY)
    [warning] = tern.wait_for_messages("bob", timeout=15)
    msg, parts = report_parts(warning.split(b"\r\n", 2)[2])
    text = parts[1].as_string()
    assert "Action: delayed" in text, text
    assert "Will-Retry-Until:" in text, text
    assert qid.encode() in warning
    # Later retries do not warn again.
    time.sleep(3)
    assert len(tern.maildir_names("bob")) == 1
    assert (tern.spool / "queue" / f"{qid}.env").exists()
