"""Every command reply of docs' protocol contract: codes, enhanced codes,
sequence errors, address syntax, line length, error limit."""

import re

import pytest

from smtp_client import ENH_RE, simple_body


def test_greeting(tern):
    c = tern.client(greet=False)
    r = c.reply().check(220)
    assert r.lines == ["test.example ESMTP tern"] or r.text.startswith("test.example ESMTP")


def test_ehlo_keywords(tern):
    c = tern.client()
    r = c.cmd("EHLO client.example").check(250)
    assert r.lines[0].split()[0] == "test.example"
    kw = r.lines[1:]
    assert set(kw) == {"PIPELINING", "SIZE 1048576", "8BITMIME", "SMTPUTF8",
                       "ENHANCEDSTATUSCODES", "DSN", "CHUNKING"}, kw
    assert r.raw.count(b"250 ") == 1 and r.raw.split(b"\r\n")[-2].startswith(b"250 ")


def test_helo_has_no_enhanced_codes(tern):
    c = tern.client()
    r = c.cmd("HELO client.example").check(250)
    assert r.lines == ["test.example"]
    replies = [c.cmd("NOOP"), c.cmd("RCPT TO:<alice@localhost>"),
               c.cmd("MAIL FROM:<bob@example.test>"), c.cmd("RCPT TO:<alice@localhost>"),
               c.cmd("RCPT TO:<nobody@localhost>"), c.cmd("RSET"), c.cmd("VRFY alice"),
               c.cmd("BOGUS")]
    assert [r.code for r in replies] == [250, 503, 250, 250, 550, 250, 252, 500]
    for r in replies:
        assert not ENH_RE.match(r.lines[0]), f"enhanced code after HELO: {r.raw!r}"


def test_enhanced_codes_after_ehlo(tern):
    c = tern.client()
    c.ehlo()
    cmds = ["NOOP", "RCPT TO:<alice@localhost>", "MAIL FROM:<bob@example.test>",
            "MAIL FROM:<bob@example.test>", "RCPT TO:<alice@localhost>",
            "RCPT TO:<nobody@localhost>", "RCPT TO:<x@foreign.example>", "RSET",
            "VRFY alice", "HELP", "EXPN staff", "BOGUS", "DATA"]
    for cmd in cmds:
        r = c.cmd(cmd)
        for line in r.lines:
            m = ENH_RE.match(line)
            assert m, f"{cmd}: no enhanced code in {r.raw!r}"
            assert m.group(1) == str(r.code)[0], f"{cmd}: class mismatch {r.raw!r}"


def test_vrfy_never_reveals(tern):
    c = tern.client()
    c.ehlo()
    a = c.cmd("VRFY alice").check(252, "2.5.0")
    b = c.cmd("VRFY nosuchuser").check(252, "2.5.0")
    assert a.text == b.text


def test_help_noop_rset_quit(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("HELP").check(214, "2.0.0")
    c.cmd("NOOP").check(250, "2.0.0", "Ok")
    c.cmd("NOOP some argument").check(250, "2.0.0")
    c.cmd("MAIL FROM:<bob@example.test>").check(250, "2.1.0")
    c.cmd("RSET").check(250, "2.0.0", "Ok")
    c.cmd("RCPT TO:<alice@localhost>").check(503, "5.5.1")  # RSET ended the transaction
    c.cmd("QUIT").check(221, "2.0.0")
    assert c.closed()


def test_not_implemented(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("EXPN staff").check(502, "5.5.1")
    c.cmd("STARTTLS").check(502, "5.5.1")
    c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==").check(502, "5.5.1")
    c.cmd("NOOP").check(250, "2.0.0")


def test_unknown_command(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("FROB nicate").check(500, "5.5.2")
    c.cmd("NOOP").check(250)


def test_command_line_too_long(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("NOOP " + "x" * 595).check(500, "5.5.2", "line too long")
    c.cmd("NOOP").check(250, "2.0.0")
    # The line limit is 512 octets with CRLF: 512 is fine, 513 is not.
    c.cmd("NOOP " + "y" * 505).check(250, "2.0.0")
    c.cmd("NOOP " + "z" * 506).check(500, "5.5.2")
    c.cmd("NOOP").check(250, "2.0.0")


def test_very_long_line_then_transaction(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<" + "a" * 20000 + "@example.test>").check(500, "5.5.2")
    c.deliver("bob@example.test", ["alice@localhost"], simple_body())
    tern.wait_for_messages("alice")


@pytest.mark.parametrize("cmd", ["MAIL FROM:<bob@example.test>", "RCPT TO:<alice@localhost>",
                                 "DATA", "BDAT 0 LAST"])
def test_needs_helo_first(tern, cmd):
    c = tern.client()
    c.cmd(cmd).check(503)
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test>").check(250, "2.1.0")


def test_bad_sequences(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("RCPT TO:<alice@localhost>").check(503, "5.5.1", "need MAIL")
    c.cmd("DATA").check(503, "5.5.1")
    c.cmd("MAIL FROM:<bob@example.test>").check(250, "2.1.0")
    c.cmd("DATA").check(503, "5.5.1", "need RCPT")
    c.cmd("MAIL FROM:<bob@example.test>").check(503, "5.5.1", "nested MAIL")
    c.cmd("RCPT TO:<alice@localhost>").check(250, "2.1.5")
    c.cmd("DATA").check(354)
    c.message(simple_body()).check(250, "2.0.0")


@pytest.mark.parametrize("addr", ["bob@@example.test", "bob example@example.test",
                                  "bob@", "@example.test", "bob@exa mple.test",
                                  "\"unterminated@example.test", "bob@example..test"])
def test_bad_sender_address(tern, addr):
    c = tern.client()
    c.ehlo()
    c.cmd(f"MAIL FROM:<{addr}>").check(501, "5.1.7")
    c.cmd("MAIL FROM:<bob@example.test>").check(250, "2.1.0")


@pytest.mark.parametrize("addr", ["alice@@localhost", "alice@", "", "alice@local..host",
                                  "\"alice@localhost", "ali ce@localhost", "alice@-localhost"])
def test_bad_recipient_address(tern, addr):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test>").check(250)
    c.cmd(f"RCPT TO:<{addr}>").check(501, "5.1.3")
    c.cmd("RCPT TO:<alice@localhost>").check(250, "2.1.5")


@pytest.mark.parametrize("cmd", ["MAIL", "MAIL TO:<bob@example.test>", "MAIL FROM:",
                                 "RCPT", "RCPT FROM:<alice@localhost>"])
def test_bad_syntax(tern, cmd):
    c = tern.client()
    c.ehlo()
    if cmd.startswith("RCPT"):
        c.cmd("MAIL FROM:<bob@example.test>").check(250)
    r = c.cmd(cmd)
    assert r.code == 501 and r.enhanced in ("5.5.4", "5.1.7", "5.1.3"), r.raw
    c.cmd("NOOP").check(250)


def test_source_routes_accepted(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<@a.example,@b.example:bob@example.test>").check(250, "2.1.0")
    c.cmd("RCPT TO:<@relay.example:alice@localhost>").check(250, "2.1.5")
    c.cmd("DATA").check(354)
    c.message(simple_body()).check(250, "2.0.0")
    [stored] = tern.wait_for_messages("alice")
    assert stored.startswith(b"Return-Path: <bob@example.test>\r\n"
                             b"Delivered-To: alice@localhost\r\n")


def test_quoted_local_part(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<\"bob smith\"@example.test>").check(250, "2.1.0")
    c.cmd("RCPT TO:<\"alice\"@localhost>").check(250, "2.1.5")
    c.cmd("DATA").check(354)
    c.message(simple_body()).check(250, "2.0.0")
    [stored] = tern.wait_for_messages("alice")
    assert stored.startswith(b"Return-Path: <\"bob smith\"@example.test>\r\n"
                             b"Delivered-To: alice@localhost\r\n")


def test_verbs_mixed_case(tern):
    c = tern.client()
    c.cmd("eHlO client.example").check(250)
    c.cmd("MaIl FrOm:<bob@example.test>").check(250, "2.1.0")
    c.cmd("rcpt to:<alice@localhost>").check(250, "2.1.5")
    c.cmd("DaTa").check(354)
    c.message(simple_body()).check(250, "2.0.0")
    c.cmd("nOoP").check(250)
    c.cmd("qUiT").check(221)
    tern.wait_for_messages("alice")


@pytest.mark.tern(limits={"errors": 3})
def test_too_many_errors(tern):
    c = tern.client()
    c.ehlo()
    codes = []
    for _ in range(5):
        r = c.cmd("BOGUS")
        codes.append(r.code)
        if r.code == 421:
            r.check(421, "4.7.0", "too many errors")
            assert r.text.startswith("4.7.0 test.example")
            break
    # The 421 is the answer to the 3rd error or the one after it.
    assert codes in ([500, 500, 421], [500, 500, 500, 421]), codes
    assert c.closed()


def test_reply_text_has_no_control_chars(tern):
    c = tern.client()
    c.ehlo()
    r = c.cmd(b"MAIL FROM:<bob\x01@example.test>")
    assert r.code in (500, 501), r
    assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", r.raw), r.raw
