"""A client that goes away mid-transaction leaves nothing behind."""

import socket
import time

from smtp_client import simple_body


def wait_no_files(tern, timeout=5):
    deadline = time.monotonic() + timeout
    while (tern.spool_files() or tern.all_maildir_files()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tern.spool_files() == []
    assert tern.all_maildir_files() == []


def test_close_mid_data(tern):
    c = tern.client()
    c.ehlo()
    c.mail_rcpt_data("bob@example.test", ["alice@localhost"])
    c.send(b"Subject: cut\r\n\r\n" + b"line of text\r\n" * 2000)
    c.close()
    time.sleep(0.5)
    wait_no_files(tern)
    # tern still works and only the new message arrives.
    d = tern.client()
    d.ehlo()
    d.deliver("bob@example.test", ["alice@localhost"], simple_body("after"))
    [stored] = tern.wait_for_messages("alice")
    assert b"Subject: after" in stored


def test_reset_mid_data(tern):
    c = tern.client()
    c.ehlo()
    c.mail_rcpt_data("bob@example.test", ["alice@localhost"])
    c.send(b"Subject: cut\r\n\r\nsome text")
    # RST instead of FIN.
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()
    time.sleep(0.5)
    wait_no_files(tern)


def test_close_mid_bdat(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test>").check(250)
    c.cmd("RCPT TO:<alice@localhost>").check(250)
    c.send(b"BDAT 14\r\nSubject: x\r\n\r\n")
    c.reply().check(250)
    c.send(b"BDAT 5000 LAST\r\nonly part")
    c.close()
    time.sleep(0.5)
    wait_no_files(tern)


def test_close_after_rcpt(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test>").check(250)
    c.cmd("RCPT TO:<alice@localhost>").check(250)
    c.close()
    time.sleep(0.3)
    wait_no_files(tern)
