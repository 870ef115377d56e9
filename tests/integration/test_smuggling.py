"""SMTP smuggling: only CRLF.CRLF ends the data. Bare CR / bare LF
sequences that other servers take as the end of data must neither end it nor
let a hidden second transaction through; the message is refused with 550
5.6.0 once, after the real end of data."""

import time

import pytest

from smtp_client import simple_body

SEQUENCES = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\n..\n", b"\r\n.\r"]

HIDDEN = (b"MAIL FROM:<evil@example.test>\r\n"
          b"RCPT TO:<bob@localhost>\r\n"
          b"DATA\r\n"
          b"Subject: smuggled\r\n"
          b"\r\n"
          b"smuggled body\r\n")


def ident(seq):
    return seq.decode().replace("\r", "CR").replace("\n", "LF")


@pytest.mark.parametrize("seq", SEQUENCES, ids=[ident(s) for s in SEQUENCES])
def test_smuggling_sequence(tern, seq):
    c = tern.client()
    c.ehlo()
    c.mail_rcpt_data("bob@example.test", ["alice@localhost"])
    c.send(b"Subject: first\r\n\r\nfirst body" + seq + HIDDEN + b".\r\n")
    c.reply().check(550, "5.6.0", "bare CR or LF")
    # Nothing else: no replies to the hidden MAIL/RCPT/DATA.
    c.no_reply(0.5)
    c.cmd("NOOP").check(250, "2.0.0")
    # A clean message afterwards in the same session works.
    c.deliver("bob@example.test", ["alice@localhost"], simple_body("clean"))
    [stored] = tern.wait_for_messages("alice")
    assert b"Subject: clean\r\n" in stored and b"smuggled" not in stored
    time.sleep(0.3)
    assert tern.maildir_names("bob") == []
    assert [f for f in tern.all_maildir_files() if "/alice/" not in f] == []


LONE = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"]


@pytest.mark.parametrize("seq", LONE, ids=[ident(s) for s in LONE])
def test_lone_sequence_does_not_end_data(tern, seq):
    c = tern.client()
    c.ehlo()
    c.mail_rcpt_data("bob@example.test", ["alice@localhost"])
    c.send(b"Subject: x\r\n\r\nbody" + seq)
    c.no_reply(0.5)
    c.send(b"\r\n.\r\n")
    c.reply().check(550, "5.6.0")
    c.cmd("NOOP").check(250)
    time.sleep(0.3)
    assert tern.all_maildir_files() == []
    assert tern.spool_files() == []


def test_bare_lf_in_headers_refused(tern):
    c = tern.client()
    c.ehlo()
    c.mail_rcpt_data("bob@example.test", ["alice@localhost"])
    c.message(b"Subject: x\nX-Other: y\r\n\r\nbody\r\n", stuff=False).check(550, "5.6.0")
    c.cmd("NOOP").check(250)


def test_bare_lf_data_end_pipelined_with_commands(tern):
    """The classic exploit shape: everything in one write with LF.LF."""
    c = tern.client()
    c.ehlo()
    c.send(b"MAIL FROM:<bob@example.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n")
    assert [r.code for r in c.replies(3)] == [250, 250, 354]
    c.send(b"Subject: a\r\n\r\na\n.\n" + HIDDEN + b".\r\nQUIT\r\n")
    c.reply().check(550, "5.6.0")
    c.reply().check(221)
    assert c.closed()
    time.sleep(0.5)
    assert tern.all_maildir_files() == []
    assert tern.spool_files() == []
