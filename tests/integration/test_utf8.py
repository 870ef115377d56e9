"""8BITMIME (RFC 6152) and SMTPUTF8 (RFC 6531)."""

from smtp_client import check_stored, queued_id

EIGHTBIT = ("Subject: =?utf-8?q?caf=C3=A9?=\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n"
            "\r\n"
            "café, naïve, Grüße, 日本語\r\n").encode() + bytes(range(0x80, 0x100)) + b"\r\n"


def test_8bitmime_stored_exactly(tern):
    c = tern.client()
    c.ehlo()
    qid = c.deliver("bob@example.test", ["alice@localhost"], EIGHTBIT, " BODY=8BITMIME")
    [stored] = tern.wait_for_messages("alice")
    check_stored(stored, "bob@example.test", "alice@localhost", qid, EIGHTBIT,
                 for_rcpt="alice@localhost")


def test_body_7bit_parameter(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test> BODY=7BIT").check(250, "2.1.0")
    c.cmd("RSET").check(250)
    assert c.cmd("MAIL FROM:<bob@example.test> BODY=9BIT").code in (501, 555)


def test_smtputf8_recipient(tern):
    body = "Subject: für jürgen\r\n\r\nHallo Jürgen\r\n".encode()
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test> SMTPUTF8 BODY=8BITMIME").check(250, "2.1.0")
    c.cmd("RCPT TO:<jürgen@localhost>".encode()).check(250, "2.1.5")
    c.cmd("DATA").check(354)
    qid = queued_id(c.message(body))
    [stored] = tern.wait_for_messages("jürgen")
    check_stored(stored, "bob@example.test", "jürgen@localhost", qid, body,
                 for_rcpt="jürgen@localhost", proto="UTF8SMTP")


def test_smtputf8_sender(tern):
    body = b"Subject: x\r\n\r\nx\r\n"
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<jöran@exämple.test> SMTPUTF8".encode()).check(250, "2.1.0")
    c.cmd("RCPT TO:<alice@localhost>").check(250, "2.1.5")
    c.cmd("DATA").check(354)
    qid = queued_id(c.message(body))
    [stored] = tern.wait_for_messages("alice")
    check_stored(stored, "jöran@exämple.test", "alice@localhost", qid, body,
                 for_rcpt="alice@localhost", proto="UTF8SMTP")


def test_utf8_without_smtputf8_refused(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<jöran@example.test>".encode()).check(553, "5.6.7")
    c.cmd("MAIL FROM:<bob@exämple.test>".encode()).check(553, "5.6.7")
    c.cmd("MAIL FROM:<bob@example.test>").check(250, "2.1.0")
    c.cmd("RCPT TO:<jürgen@localhost>".encode()).check(553, "5.6.7")
    c.cmd("RCPT TO:<alice@localhost>").check(250, "2.1.5")


def test_invalid_utf8_refused(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test> SMTPUTF8").check(250)
    r = c.cmd(b"RCPT TO:<j\xfcrgen@localhost>")   # Latin-1, not UTF-8
    assert r.code in (501, 553), r
    c.cmd("RCPT TO:<alice@localhost>").check(250)

