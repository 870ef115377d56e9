"""Recipient limit: 100 accepted, the 101st gets 452 4.5.3; all 100 get
their copy."""

import pytest

from smtp_client import queued_id

USERS = [f"user{i:03d}" for i in range(1, 102)]


@pytest.mark.tern(users=USERS)
def test_hundred_recipients(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test>").check(250)
    c.send(b"".join(b"RCPT TO:<%s@localhost>\r\n" % u.encode() for u in USERS))
    replies = c.replies(101)
    for u, r in zip(USERS[:100], replies):
        assert r.code == 250, (u, r)
    replies[100].check(452, "4.5.3", "too many recipients")
    c.cmd("DATA").check(354)
    body = b"Subject: to a hundred\r\n\r\nhi all\r\n"
    qid = queued_id(c.message(body))
    for u in USERS[:100]:
        msgs = tern.wait_for_messages(u, n=1, timeout=30, settle=0)
        assert len(msgs) == 1, u
        assert msgs[0].startswith(b"Return-Path: <bob@example.test>\r\nDelivered-To: %s@localhost\r\n"
                                  % u.encode())
        assert b"\tby test.example (tern) with ESMTP id %s; " % qid.encode() in msgs[0]
        assert msgs[0].endswith(b"\r\n" + body)
    assert tern.maildir_names(USERS[100]) == []


@pytest.mark.tern(limits={"recipients": 101})
def test_configured_recipient_limit(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test>").check(250)
    c.send(b"".join(b"RCPT TO:<alice+%d@localhost>\r\n" % i for i in range(102)))
    replies = c.replies(102)
    assert [r.code for r in replies] == [250] * 101 + [452]
    replies[101].check(452, "4.5.3")
    c.cmd("RSET").check(250)
