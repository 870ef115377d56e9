"""SIZE (RFC 1870): the advertised limit, a declared size over it (552 at
MAIL), an actual size over it (552 after the data, nothing stored), and a
message of exactly the limit (accepted)."""

import time

import pytest

from smtp_client import queued_id

LIMIT = 10000


def body_of(n):
    """A message of exactly n octets: CRLF lines, none starting with '.'."""
    head = b"Subject: size\r\n\r\n"
    rest = n - len(head)
    lines = []
    while rest > 0:
        k = min(rest, 78)
        if k < 2:
            # Fold the remainder into the previous line.
            last = lines.pop()
            lines.append(b"x" * (len(last) - 2 + k) + b"\r\n")
            break
        lines.append(b"x" * (k - 2) + b"\r\n")
        rest -= k
    body = head + b"".join(lines)
    assert len(body) == n
    return body


pytestmark = pytest.mark.tern(limits={"message_size": LIMIT})


def test_ehlo_advertises_size(tern):
    c = tern.client()
    r = c.ehlo()
    assert f"SIZE {LIMIT}" in r.lines


def test_declared_size_too_big(tern):
    c = tern.client()
    c.ehlo()
    c.cmd(f"MAIL FROM:<bob@example.test> SIZE={LIMIT + 1}").check(552, "5.3.4")
    c.cmd(f"MAIL FROM:<bob@example.test> SIZE={LIMIT}").check(250, "2.1.0")


def test_declared_size_huge_number(tern):
    c = tern.client()
    c.ehlo()
    # RFC 1870: size-value = 1*20DIGIT; 20 nines overflow 64 bits.
    c.cmd("MAIL FROM:<bob@example.test> SIZE=99999999999999999999").check(552, "5.3.4")
    c.cmd("MAIL FROM:<bob@example.test> SIZE=18446744073709551616").check(552, "5.3.4")
    c.cmd("MAIL FROM:<bob@example.test> SIZE=1000").check(250, "2.1.0")


def test_actual_size_too_big(tern):
    c = tern.client()
    c.ehlo()
    c.mail_rcpt_data("bob@example.test", ["alice@localhost"])
    c.message(body_of(LIMIT + 1)).check(552, "5.3.4")
    time.sleep(0.5)
    assert tern.spool_files() == []
    assert tern.all_maildir_files() == []
    # The session goes on.
    c.deliver("bob@example.test", ["alice@localhost"], body_of(100))
    assert len(tern.wait_for_messages("alice")) == 1


def test_much_too_big(tern):
    c = tern.client()
    c.ehlo()
    c.mail_rcpt_data("bob@example.test", ["alice@localhost"])
    c.message(body_of(LIMIT * 50)).check(552, "5.3.4")
    c.cmd("NOOP").check(250)
    time.sleep(0.3)
    assert tern.spool_files() == []
    assert tern.all_maildir_files() == []


def test_exactly_at_limit(tern):
    c = tern.client()
    c.ehlo()
    body = body_of(LIMIT)
    qid = c.deliver("bob@example.test", ["alice@localhost"], body, f" SIZE={LIMIT}")
    [stored] = tern.wait_for_messages("alice")
    assert stored.endswith(b"\r\n" + body)
    assert qid.encode() in stored


def test_bdat_over_limit(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test>").check(250)
    c.cmd("RCPT TO:<alice@localhost>").check(250)
    body = body_of(LIMIT + 1)
    half = len(body) // 2
    c.send(b"BDAT %d\r\n" % half + body[:half] + b"BDAT %d LAST\r\n" % (len(body) - half) +
           body[half:])
    r1 = c.reply()
    if r1.code == 250:
        c.reply().check(552, "5.3.4")
    else:
        r1.check(552, "5.3.4")
    c.cmd("RSET").check(250)
    time.sleep(0.3)
    assert tern.spool_files() == []
    assert tern.all_maildir_files() == []
