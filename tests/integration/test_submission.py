"""Submission policy (RFC 6409) on 587 and 465: AUTH or a trusted network
before MAIL, relaying only for those, sender ownership of MAIL FROM and
From:, Date and Message-ID added when missing, foreign recipients waiting in
the queue; the mx listener never relays. Real clients: swaks, msmtp."""

import email.utils
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import USER_PASSWORDS
from smtp_client import DATE_RE, check_stored, simple_body
from tls_helpers import (assert_no_secrets, check_tls_stored, cipher_text, client_context,
                         implicit, plain, start_submission, starttls, submission_client)

DATE = "Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n"


@pytest.fixture
def sub(tern_factory, tls_certs, password_hashes):
    t = start_submission(tern_factory, tls_certs, password_hashes)
    yield t
    t.stop()
    assert_no_secrets(t)


def body_from(sender, subject="s", date=True, msgid=True, text="hello"):
    hdr = f"From: {sender}\r\nTo: bob@localhost\r\nSubject: {subject}\r\n"
    if date:
        hdr += DATE
    if msgid:
        hdr += f"Message-ID: <{subject}@client.example>\r\n"
    return (hdr + f"\r\n{text}\r\n").encode()


def wait_log(t, pattern, timeout=5):
    deadline = time.monotonic() + timeout
    while not re.search(pattern, t.log()):
        assert time.monotonic() < deadline, f"{pattern!r} not in the log:\n{t.log()[-3000:]}"
        time.sleep(0.05)


def wait_outbound(t, qid="[0-9a-f]{16}"):
    """Foreign recipients wait in the queue: held (no outbound delivery) or
    deferred (the route's host refuses connections)."""
    wait_log(t, rf"event=(held id={qid} remote|deferred id={qid} pending)=1")


# ---- who may send

def test_auth_required(sub, tls_certs):
    c = submission_client(sub, tls_certs)
    c.cmd("MAIL FROM:<alice@localhost>").check(530, "5.7.0", "Authentication required")
    c.cmd("RCPT TO:<bob@localhost>").check(503, "5.5.1")
    c2 = implicit(sub, client_context(tls_certs))
    c2.ehlo()
    c2.cmd("MAIL FROM:<>").check(530, "5.7.0", "Authentication required")
    assert sub.spool_files() == []


def test_starttls_required_before_mail(sub):
    c = sub.client(port=sub.ports["sub"])
    c.ehlo()
    for cmd in ("MAIL FROM:<alice@localhost>", "RCPT TO:<bob@localhost>", "DATA"):
        c.cmd(cmd).check(530, "5.7.0", "Must issue a STARTTLS command first")


def test_default_trusted_is_nobody_with_auth(tern_factory, tls_certs, password_hashes):
    """With an auth block and no trusted_networks, loopback is not trusted."""
    t = start_submission(tern_factory, tls_certs, password_hashes, trusted=None)
    c = submission_client(t, tls_certs)
    c.cmd("MAIL FROM:<alice@localhost>").check(530, "5.7.0", "Authentication required")


def test_trusted_network_relays_without_auth(tern_factory, tls_certs, password_hashes):
    """Without an auth block, the default trusted_networks (loopback) may send
    through the submission listener, to any domain, as any sender."""
    t = start_submission(tern_factory, tls_certs, password_hashes, trusted=None, auth=False)
    for source in ("127.0.0.1", "127.0.0.2"):
        c = submission_client(t, tls_certs, source=source)
        c.cmd("MAIL FROM:<someone@elsewhere.example>").check(250, "2.1.0")
        c.cmd("RCPT TO:<far@foreign.example>").check(250, "2.1.5")
        c.cmd("RCPT TO:<alice@localhost>").check(250, "2.1.5")
        c.cmd("DATA").check(354)
        body = simple_body(f"trusted {source}")
        c.message(body).check(250, "2.0.0")
    msgs = t.wait_for_messages("alice", n=2)
    assert all(b"with ESMTPS id " in m for m in msgs)
    assert b"([127.0.0.2])" in b"".join(msgs)
    wait_outbound(t)


def test_trusted_networks_cidr(tern_factory, tls_certs, password_hashes):
    t = start_submission(tern_factory, tls_certs, password_hashes, trusted="127.0.0.2/32")
    c = submission_client(t, tls_certs)
    c.cmd("MAIL FROM:<alice@localhost>").check(530, "5.7.0")
    c = submission_client(t, tls_certs, source="127.0.0.2")
    c.cmd("MAIL FROM:<alice@localhost>").check(250)
    c.cmd("RCPT TO:<far@foreign.example>").check(250)


def test_no_auth_block_trusted_none(tern_factory, tls_certs, password_hashes):
    """Submission without an auth block and nobody trusted: nobody sends."""
    t = start_submission(tern_factory, tls_certs, password_hashes, auth=False)
    c = submission_client(t, tls_certs)
    r = c.cmd("EHLO client.example")
    assert not any(line.upper().startswith("AUTH") for line in r.lines)
    c.cmd("MAIL FROM:<alice@localhost>").check(530, "5.7.0")


def test_mx_never_relays(tern_factory, tls_certs, password_hashes):
    # Default trusted networks: loopback is trusted, but not on mx.
    t = start_submission(tern_factory, tls_certs, password_hashes, trusted=None)
    c = t.client()
    c.ehlo()
    c.cmd("MAIL FROM:<alice@localhost>").check(250)
    c.cmd("RCPT TO:<far@foreign.example>").check(554, "5.7.1", "Relay access denied")
    starttls(c, client_context(tls_certs))
    c.ehlo()
    c.cmd("MAIL FROM:<alice@localhost>").check(250)
    c.cmd("RCPT TO:<far@foreign.example>").check(554, "5.7.1", "Relay access denied")
    c.cmd("RCPT TO:<alice@localhost>").check(250)
    c.cmd("AUTH PLAIN " + plain("alice", USER_PASSWORDS["alice"])).check(502, "5.5.1")
    c.cmd("RCPT TO:<x@foreign.example>").check(554, "5.7.1")


# ---- relaying after AUTH

def test_relay_after_auth_queued(sub, tls_certs):
    c = submission_client(sub, tls_certs, "alice@localhost")
    body = body_from("alice@localhost", "relay")
    c.mail_rcpt_data("alice@localhost", ["far@foreign.example", "bob@localhost"])
    qid = re.search(r"queued as ([0-9a-f]{16})", c.message(body).check(250, "2.0.0").text)
    qid = qid.group(1)
    [m] = sub.wait_for_messages("bob")
    check_tls_stored(m, "alice@localhost", "bob@localhost", qid, body, cipher_text(c.sock))
    wait_outbound(sub, qid)
    env = sub.spool / "queue" / f"{qid}.env"
    assert (sub.spool / "queue" / f"{qid}.msg").exists()
    text = env.read_text(errors="replace")
    assert re.search(r"^rcpt: (held|pending) remote .*far@foreign\.example", text, re.M), text
    assert re.search(r"^rcpt: delivered local .*bob@localhost", text, re.M), text


def test_relay_denied_before_auth_on_587(sub, tls_certs):
    c = submission_client(sub, tls_certs)
    c.cmd("RCPT TO:<far@foreign.example>").check(503, "5.5.1")
    c.cmd("MAIL FROM:<alice@localhost>").check(530)


# ---- sender ownership

@pytest.mark.parametrize("sender,ok", [
    ("alice@localhost", True),
    ("alice+lists@localhost", True),
    ("Alice@LOCALHOST", True),
    ("", True),
    ("root@localhost", True),            # alias of alice
    ("bob@localhost", False),
    ("alice@example.test", False),       # another mailbox
    ("alice@foreign.example", False),
    ("postmaster@localhost", False),
])
def test_mail_from_ownership(sub, tls_certs, sender, ok):
    c = submission_client(sub, tls_certs, "alice@localhost")
    r = c.cmd(f"MAIL FROM:<{sender}>")
    if ok:
        r.check(250, "2.1.0")
    else:
        r.check(553, "5.7.1")
        assert r.text == (f"5.7.1 <{sender}>: Sender address rejected: "
                          f"not owned by user alice@localhost"), r.raw


def test_from_header_not_owned(sub, tls_certs):
    c = submission_client(sub, tls_certs, "alice@localhost")
    c.mail_rcpt_data("alice@localhost", ["bob@localhost"])
    c.message(body_from("bob@localhost", "forged")).check(
        553, "5.7.1", "From: header address not owned by user alice@localhost")
    # Several From: addresses: every one must be owned.
    c.mail_rcpt_data("alice@localhost", ["bob@localhost"])
    c.message(body_from("alice@localhost, bob@localhost", "two")).check(553, "5.7.1")
    c.mail_rcpt_data("alice@localhost", ["bob@localhost"])
    c.message(body_from("\"Alice\" <bob@localhost>", "display")).check(553, "5.7.1")
    time.sleep(0.3)
    assert sub.spool_files() == [] and sub.all_maildir_files() == []
    # The session goes on.
    c.mail_rcpt_data("alice@localhost", ["bob@localhost"])
    body = body_from("Alice <alice@localhost>", "mine")
    c.message(body).check(250, "2.0.0")
    [m] = sub.wait_for_messages("bob")
    assert m.endswith(body)


def test_alias_owned_sender(sub, tls_certs):
    c = submission_client(sub, tls_certs, "alice")
    body = body_from("root@localhost", "alias")
    qid = c.deliver("root@localhost", ["bob@localhost"], body)
    [m] = sub.wait_for_messages("bob")
    check_tls_stored(m, "root@localhost", "bob@localhost", qid, body, cipher_text(c.sock),
                     for_rcpt="bob@localhost")


def test_senders_map(tern_factory, tls_certs, password_hashes, tmp_path):
    smap = tmp_path / "senders.map"
    smap.write_text("alice@localhost: team@localhost, news@other.example\n")
    t = start_submission(tern_factory, tls_certs, password_hashes,
                         auth={"senders": str(smap)})
    c = submission_client(t, tls_certs, "alice@localhost")
    for sender in ("team@localhost", "news@other.example", "News@Other.Example"):
        c.cmd(f"MAIL FROM:<{sender}>").check(250)
        c.cmd("RSET").check(250)
    c.cmd("MAIL FROM:<x@other.example>").check(553, "5.7.1")
    c.cmd("MAIL FROM:<x@third.example>").check(553, "5.7.1")
    body = body_from("team@localhost", "team")
    c.deliver("team@localhost", ["bob@localhost"], body)
    # Not for bob.
    c2 = submission_client(t, tls_certs, "bob@localhost")
    c2.cmd("MAIL FROM:<team@localhost>").check(553, "5.7.1")
    assert t.wait_for_messages("bob")[0].endswith(body)


def test_senders_map_whole_domain(tern_factory, tls_certs, password_hashes, tmp_path):
    smap = tmp_path / "senders.map"
    smap.write_text("alice@localhost: team@localhost, *@other.example\n")
    t = start_submission(tern_factory, tls_certs, password_hashes,
                         auth={"senders": str(smap)})
    c = submission_client(t, tls_certs, "alice@localhost")
    for sender in ("team@localhost", "anyone@other.example"):
        c.cmd(f"MAIL FROM:<{sender}>").check(250)
        c.cmd("RSET").check(250)
    c.cmd("MAIL FROM:<x@sub.other.example>").check(553, "5.7.1")


def test_sender_check_off(tern_factory, tls_certs, password_hashes):
    t = start_submission(tern_factory, tls_certs, password_hashes,
                         auth={"sender_check": "no"})
    c = submission_client(t, tls_certs, "alice@localhost")
    body = body_from("bob@localhost", "as bob")
    c.deliver("bob@localhost", ["bob@localhost"], body)
    assert t.wait_for_messages("bob")[0].endswith(body)


# ---- Date and Message-ID (RFC 6409 8)

def stored_added_date(m):
    d = re.search(rb"\r\nDate: ([^\r]*)\r\n", m)
    assert d, m[:600]
    date = d.group(1).decode()
    assert DATE_RE.match(date), date
    assert abs(email.utils.parsedate_to_datetime(date).timestamp() - time.time()) < 300
    return date


@pytest.mark.parametrize("date,msgid", [(False, False), (True, False), (False, True)])
def test_date_message_id_added(sub, tls_certs, date, msgid):
    c = submission_client(sub, tls_certs, "alice@localhost")
    body = body_from("alice@localhost", "add", date=date, msgid=msgid)
    qid = c.deliver("alice@localhost", ["bob@localhost"], body)
    [m] = sub.wait_for_messages("bob")
    added = b""
    if not date:
        added += f"Date: {stored_added_date(m)}\r\n".encode()
    if not msgid:
        added += f"Message-ID: <{qid}.tern@test.example>\r\n".encode()
    check_tls_stored(m, "alice@localhost", "bob@localhost", qid, body, cipher_text(c.sock),
                     for_rcpt="bob@localhost", added=added)


def test_date_message_id_left_alone(sub, tls_certs):
    c = submission_client(sub, tls_certs, "alice@localhost")
    body = (b"from: alice@localhost\r\nDATE: Fri, 27 Nov 2026 09:00:00 +0100\r\n"
            b"message-id: <keep@client.example>\r\nSubject: keep\r\n\r\nbody\r\n")
    qid = c.deliver("alice@localhost", ["bob@localhost"], body)
    [m] = sub.wait_for_messages("bob")
    check_tls_stored(m, "alice@localhost", "bob@localhost", qid, body, cipher_text(c.sock),
                     for_rcpt="bob@localhost")


def test_headers_not_added_on_mx(sub):
    c = sub.client()
    c.ehlo()
    body = b"From: bob@example.test\r\nSubject: bare\r\n\r\nno date\r\n"
    qid = c.deliver("bob@example.test", ["alice@localhost"], body)
    [m] = sub.wait_for_messages("alice")
    check_stored(m, "bob@example.test", "alice@localhost", qid, body, for_rcpt="alice@localhost")


# ---- real clients

def test_swaks_submission_starttls_plain(sub, tls_certs):
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(sub.ports["sub"]), "--tls",
         "--ehlo", "client.example", "--auth", "PLAIN", "--auth-user", "alice@localhost",
         "--auth-password", USER_PASSWORDS["alice"], "--from", "alice@localhost",
         "--to", "far@foreign.example,bob@localhost", "--header", "Subject: swaks 587"],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "235 2.7.0" in r.stdout and "queued as" in r.stdout
    [m] = sub.wait_for_messages("bob")
    assert b"\tby test.example (tern) with ESMTPSA id " in m
    assert b"Subject: swaks 587\r\n" in m
    wait_outbound(sub)
    assert_no_secrets(sub)


def test_swaks_implicit_tls_login(sub):
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(sub.ports["smtps"]), "--tlsc",
         "--ehlo", "client.example", "--auth", "LOGIN", "--auth-user", "bob@localhost",
         "--auth-password", USER_PASSWORDS["bob"], "--from", "bob@localhost",
         "--to", "alice@localhost", "--header", "Subject: swaks 465"],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    [m] = sub.wait_for_messages("alice")
    assert b"with ESMTPSA id " in m and b"Subject: swaks 465\r\n" in m
    assert_no_secrets(sub)


def test_swaks_wrong_sender_refused(sub):
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(sub.ports["sub"]), "--tls",
         "--auth", "PLAIN", "--auth-user", "alice@localhost",
         "--auth-password", USER_PASSWORDS["alice"], "--from", "bob@localhost",
         "--to", "bob@localhost"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "553 5.7.1 <bob@localhost>: Sender address rejected" in r.stdout + r.stderr
    assert sub.spool_files() == []


@pytest.mark.skipif(shutil.which("msmtp") is None, reason="msmtp not installed")
@pytest.mark.parametrize("port_name", ["sub", "smtps"])
def test_msmtp(sub, tls_certs, tmp_path, port_name):
    conf = tmp_path / "msmtprc"
    conf.write_text(
        "defaults\n"
        "account default\n"
        "host 127.0.0.1\n"
        f"port {sub.ports[port_name]}\n"
        "domain client.example\n"
        "from alice@localhost\n"
        "auth on\n"
        "user alice@localhost\n"
        f"password {USER_PASSWORDS['alice']}\n"
        "tls on\n"
        f"tls_starttls {'on' if port_name == 'sub' else 'off'}\n"
        f"tls_trust_file {tls_certs['ca']}\n")
    os.chmod(conf, 0o600)
    msg = (b"From: Alice <alice@localhost>\r\nTo: bob@localhost\r\n"
           b"Subject: msmtp\r\n\r\nsent with msmtp\r\n")
    r = subprocess.run(["msmtp", "-C", str(conf), "-a", "default", "bob@localhost"],
                       input=msg, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    [m] = sub.wait_for_messages("bob")
    assert b"Received: from client.example ([127.0.0.1])\r\n\t(using TLSv1.3 " in m
    assert b"with ESMTPSA id " in m
    assert b"\r\nSubject: msmtp\r\n" in m and m.endswith(b"\r\nsent with msmtp\r\n")
    # msmtp writes its own Date and Message-ID; tern keeps them, adds none.
    assert m.count(b"\r\nMessage-ID: ") == 1 and m.count(b"\r\nDate: ") == 1
    assert b".tern@test.example" not in m
    assert_no_secrets(sub)
