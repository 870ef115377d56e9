"""CHUNKING (RFC 3030): BDAT chunks, BDAT 0 LAST, mixing with DATA, and
byte-exact storage (BDAT data is never dot-unstuffed)."""

import pytest

from smtp_client import check_stored, queued_id, simple_body

PART1 = b"Subject: chunks\r\n\r\n.foo stays\r\n..bar stays\r\n"
PART2 = b".\r\nlast line\r\n"


def start(c, rcpts=("alice@localhost",)):
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test>").check(250)
    for r in rcpts:
        c.cmd(f"RCPT TO:<{r}>").check(250)


def test_chunks_then_last(tern):
    c = tern.client()
    start(c)
    c.send(b"BDAT %d\r\n" % len(PART1) + PART1)
    c.reply().check(250, "2.0.0", f"{len(PART1)} octets received")
    c.send(b"BDAT %d LAST\r\n" % len(PART2) + PART2)
    qid = queued_id(c.reply())
    [stored] = tern.wait_for_messages("alice")
    check_stored(stored, "bob@example.test", "alice@localhost", qid, PART1 + PART2,
                 for_rcpt="alice@localhost")


def test_chunks_pipelined_in_one_write(tern):
    c = tern.client()
    start(c)
    c.send(b"BDAT %d\r\n" % len(PART1) + PART1 + b"BDAT %d LAST\r\n" % len(PART2) + PART2 +
           b"NOOP\r\n")
    r = c.replies(3)
    r[0].check(250, "2.0.0")
    qid = queued_id(r[1])
    r[2].check(250, "2.0.0")
    [stored] = tern.wait_for_messages("alice")
    check_stored(stored, "bob@example.test", "alice@localhost", qid, PART1 + PART2,
                 for_rcpt="alice@localhost")


def test_bdat_zero_last(tern):
    c = tern.client()
    start(c)
    c.send(b"BDAT %d\r\n" % len(PART1) + PART1)
    c.reply().check(250, "2.0.0")
    c.send(b"BDAT 0 LAST\r\n")
    qid = queued_id(c.reply())
    [stored] = tern.wait_for_messages("alice")
    check_stored(stored, "bob@example.test", "alice@localhost", qid, PART1,
                 for_rcpt="alice@localhost")


def test_chunk_with_crlf_dot_crlf_inside(tern):
    """A "\\r\\n.\\r\\n" inside a chunk is data, not the end of anything."""
    body = b"Subject: x\r\n\r\na\r\n.\r\nMAIL FROM:<evil@example.test>\r\n"
    c = tern.client()
    start(c)
    c.send(b"BDAT %d LAST\r\n" % len(body) + body)
    qid = queued_id(c.reply())
    c.cmd("NOOP").check(250)
    [stored] = tern.wait_for_messages("alice")
    check_stored(stored, "bob@example.test", "alice@localhost", qid, body,
                 for_rcpt="alice@localhost")


def test_data_after_bdat_is_503(tern):
    c = tern.client()
    start(c)
    c.send(b"BDAT %d\r\n" % len(PART1) + PART1)
    c.reply().check(250, "2.0.0")
    c.cmd("DATA").check(503, "5.5.1")
    c.cmd("RSET").check(250)
    c.deliver("bob@example.test", ["alice@localhost"], simple_body("after"))
    [stored] = tern.wait_for_messages("alice")
    assert b"Subject: after" in stored and b"chunks" not in stored


def test_bdat_without_rcpt_consumes_chunk(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test>").check(250)
    chunk = b"NOOP\r\nQUIT\r\n"
    c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    c.reply().check(503, "5.5.1")
    # The chunk was read as data, not as commands.
    c.no_reply(0.3)
    c.cmd("RSET").check(250, "2.0.0")
    assert tern.spool_files() == []


@pytest.mark.parametrize("arg", ["abc", "-5", "", "5 FIRST", "5LAST", "0x10"])
def test_bdat_bad_size(tern, arg):
    # Without a valid size the chunk's end is unknown: tern may close after
    # the 501, but must never take the following bytes as commands.
    c = tern.client()
    start(c)
    c.send(f"BDAT {arg}\r\nRSET\r\n".encode())
    c.reply().check(501, "5.5.4")
    try:
        r = c.reply(timeout=1)
    except OSError:
        return
    r.check(250, "2.0.0")   # the RSET, if the session went on


def test_bdat_binary_8bit(tern):
    body = b"Subject: bin\r\n\r\n" + bytes(range(0x80, 0x100)) + b"\r\n"
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test> BODY=8BITMIME").check(250)
    c.cmd("RCPT TO:<alice@localhost>").check(250)
    c.send(b"BDAT %d LAST\r\n" % len(body) + body)
    qid = queued_id(c.reply())
    [stored] = tern.wait_for_messages("alice")
    check_stored(stored, "bob@example.test", "alice@localhost", qid, body,
                 for_rcpt="alice@localhost")
