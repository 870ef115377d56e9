"""Never an open relay: foreign domains and every address trick."""

import pytest

from smtp_client import simple_body


@pytest.mark.parametrize("rcpt,code,enh", [
    ("someone@foreign.example", 554, "5.7.1"),
    ("alice%foreign.example@localhost", 550, "5.1.1"),
    ("\"alice@foreign.example\"@localhost", 550, "5.1.1"),
    ("alice!foreign.example@localhost", 550, "5.1.1"),
    ("@localhost:alice@foreign.example", 554, "5.7.1"),
    ("@localhost,@example.test:alice@foreign.example", 554, "5.7.1"),
    ("alice@[127.0.0.1]", 554, "5.7.1"),
    ("alice@localhost.foreign.example", 554, "5.7.1"),
    ("alice@example.test.foreign.example", 554, "5.7.1"),
    ("postmaster@foreign.example", 554, "5.7.1"),
])
def test_relay_denied(tern, rcpt, code, enh):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<alice@localhost>").check(250)
    c.cmd(f"RCPT TO:<{rcpt}>").check(code, enh)
    c.cmd("DATA").check(503, "5.5.1")


def test_relay_denied_null_sender(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<>").check(250)
    c.cmd("RCPT TO:<x@foreign.example>").check(554, "5.7.1", "Relay access denied")


def test_unknown_user(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test>").check(250)
    c.cmd("RCPT TO:<nobody@localhost>").check(550, "5.1.1", "User unknown")
    c.cmd("RCPT TO:<nobody@example.test>").check(550, "5.1.1")


def test_uppercase_domain(tern):
    c = tern.client()
    c.ehlo()
    c.deliver("bob@example.test", ["alice@LOCALHOST", "Bob@Example.Test"], simple_body())
    [a] = tern.wait_for_messages("alice", "localhost")
    [b] = tern.wait_for_messages("bob", "example.test")
    assert b"Delivered-To: alice@localhost\r\n" in a
    assert b"Delivered-To: bob@example.test\r\n" in b


def test_nothing_queued_after_denials(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<alice@localhost>").check(250)
    for r in ["a@foreign.example", "alice%foreign.example@localhost", "alice@[127.0.0.1]"]:
        assert c.cmd(f"RCPT TO:<{r}>").code >= 500
    c.cmd("DATA").check(503)
    assert tern.spool_files() == []
