"""AUTH (RFC 4954) PLAIN and LOGIN on the submission listeners: only inside
TLS, every response form, errors, hash schemes, the failure delay and the
per-address lockout, and no password in the log (the daemons here run
with -v). Real clients: the raw Client, smtplib."""

import re
import smtplib
import subprocess
import time
import warnings

import pytest

from conftest import USER_PASSWORDS, wait_filtered
from tls_helpers import (assert_no_secrets, b64, check_tls_stored, cipher_text, client_context,
                         ehlo_keywords, implicit, plain, start_submission, starttls,
                         submission_client, tern_check)

WRONG = "Wrong-Pw-5d1e"
# Passwords of extra users with other hash schemes.
SCHEME_PASSWORDS = {"carol": "carol-Pw-1", "dave": "dave-Pw-2", "erin": "erin-Pw-3",
                    "frank": "frank-Pw-4"}


def secrets():
    out = [WRONG, b64(WRONG)]
    for login in ("alice", "alice@localhost"):
        out.append(plain(login, WRONG))
    for pw in SCHEME_PASSWORDS.values():
        out += [pw, b64(pw)]
    return out


@pytest.fixture
def submission(tern_factory, tls_certs, password_hashes):
    """Starts daemons with AUTH (max_failures 3 unless told) and -v; at the
    end, no password or its base64 form may be in their logs."""
    made = []

    def make(**kw):
        kw.setdefault("auth", {"max_failures": 3})
        t = start_submission(tern_factory, tls_certs, password_hashes, verbose=True, **kw)
        made.append(t)
        return t

    yield make
    for t in made:
        t.stop()
        assert_no_secrets(t, extra=secrets())


@pytest.fixture
def sub(submission):
    return submission()


def tls_client(t, certs, port_name="sub", source=None):
    """After EHLO, STARTTLS (587) or the handshake (465), and EHLO again."""
    if port_name == "smtps":
        c = implicit(t, client_context(certs), source=source)
    else:
        c = t.client(port=t.ports[port_name], source=source)
        c.ehlo()
        starttls(c, client_context(certs))
    c.ehlo()
    return c


def test_auth_process_is_filtered(sub):
    """The password checker runs under the deny-list filter like the other
    children (test_sandbox.py): no exec, fork, file writes or signals."""
    wait_filtered(sub, "tern-auth")


# ---- never in clear

def test_auth_not_offered_before_tls(sub, tls_certs):
    c = sub.client(port=sub.ports["sub"])
    kw = ehlo_keywords(c.ehlo())
    assert "AUTH" not in kw and "STARTTLS" in kw
    # Right credentials in clear: refused, and nothing changes.
    c.cmd("AUTH PLAIN " + plain("alice", USER_PASSWORDS["alice"])).check(
        530, "5.7.0", "Must issue a STARTTLS command first")
    c.cmd("AUTH LOGIN").check(530, "5.7.0")
    c.cmd("MAIL FROM:<alice@localhost>").check(530, "5.7.0")
    starttls(c, client_context(tls_certs))
    kw = ehlo_keywords(c.ehlo())
    assert "AUTH" in kw
    r = c.cmd("EHLO client.example")
    assert "AUTH PLAIN LOGIN" in r.lines


def test_auth_refused_in_clear_without_tls(submission):
    """A submission listener with `tls none`: AUTH is never offered and
    is refused with 538 (RFC 4954 4: encryption required)."""
    t = submission(listeners={"clear": "mode submission; tls none"})
    c = t.client(port=t.ports["clear"])
    kw = ehlo_keywords(c.ehlo())
    assert "AUTH" not in kw and "STARTTLS" not in kw
    c.cmd("AUTH PLAIN " + plain("alice", USER_PASSWORDS["alice"])).check(538, "5.7.11")
    c.cmd("AUTH LOGIN").check(538, "5.7.11")
    c.cmd("MAIL FROM:<alice@localhost>").check(530, "5.7.0", "Authentication required")


def test_auth_on_mx_listener(sub, tls_certs):
    c = sub.client()
    c.ehlo()
    starttls(c, client_context(tls_certs))
    assert "AUTH" not in ehlo_keywords(c.ehlo())
    c.cmd("AUTH PLAIN " + plain("alice", USER_PASSWORDS["alice"])).check(502, "5.5.1")


# ---- the forms of PLAIN and LOGIN

@pytest.mark.parametrize("port_name", ["sub", "smtps"])
def test_plain_initial_response(sub, tls_certs, port_name):
    c = tls_client(sub, tls_certs, port_name)
    c.cmd("AUTH PLAIN " + plain("alice@localhost", USER_PASSWORDS["alice"])).check(
        235, "2.7.0", "Authentication successful")
    # AUTH is no longer offered, and a second AUTH is refused.
    assert "AUTH" not in ehlo_keywords(c.ehlo())
    c.cmd("AUTH PLAIN " + plain("alice@localhost", USER_PASSWORDS["alice"])).check(503, "5.5.1")
    c.cmd("MAIL FROM:<alice@localhost>").check(250, "2.1.0")
    assert 'event=auth-ok user="alice@localhost"' in sub.log()


def test_plain_without_initial_response(sub, tls_certs):
    c = tls_client(sub, tls_certs)
    r = c.cmd("AUTH PLAIN")
    assert r.raw == b"334 \r\n"
    c.cmd(plain("bob@example.test", USER_PASSWORDS["bob"])).check(235, "2.7.0")


def test_plain_short_login_and_utf8(sub, tls_certs):
    """`user` logs in to the first domain; a UTF-8 user and password."""
    c = tls_client(sub, tls_certs)
    c.cmd("AUTH PLAIN " + plain("alice", USER_PASSWORDS["alice"])).check(235, "2.7.0")
    c.cmd("MAIL FROM:<alice@localhost>").check(250)
    c2 = tls_client(sub, tls_certs)
    c2.cmd("AUTH PLAIN " + plain("jürgen@localhost", USER_PASSWORDS["jürgen"])).check(235)


def test_login_mechanism(sub, tls_certs):
    c = tls_client(sub, tls_certs)
    assert c.cmd("AUTH LOGIN").raw == b"334 VXNlcm5hbWU6\r\n"
    assert c.cmd(b64("alice@localhost")).raw == b"334 UGFzc3dvcmQ6\r\n"
    c.cmd(b64(USER_PASSWORDS["alice"])).check(235, "2.7.0")


def test_login_initial_response(sub, tls_certs):
    c = tls_client(sub, tls_certs, "smtps")
    assert c.cmd("AUTH LOGIN " + b64("bob@localhost")).raw == b"334 UGFzc3dvcmQ6\r\n"
    c.cmd(b64(USER_PASSWORDS["bob"])).check(235, "2.7.0")


def test_lower_case_mechanism(sub, tls_certs):
    c = tls_client(sub, tls_certs)
    c.cmd("auth plain " + plain("alice", USER_PASSWORDS["alice"])).check(235, "2.7.0")


# ---- errors

def test_cancel(sub, tls_certs):
    c = tls_client(sub, tls_certs)
    c.cmd("AUTH PLAIN").check(334)
    c.cmd("*").check(501, "5.7.0")
    c.cmd("AUTH LOGIN").check(334)
    c.cmd("*").check(501, "5.7.0")
    c.cmd("AUTH LOGIN").check(334)
    c.cmd(b64("alice")).check(334)
    c.cmd("*").check(501, "5.7.0")
    # Canceling is not a failure: the session goes on and may log in.
    c.cmd("AUTH PLAIN " + plain("alice", USER_PASSWORDS["alice"])).check(235)
    assert "event=auth-failed" not in sub.log()


def test_bad_base64(sub, tls_certs):
    c = tls_client(sub, tls_certs)
    c.cmd("AUTH PLAIN !!!not-base64!!!").check(501, "5.5.2")
    c.cmd("AUTH PLAIN").check(334)
    c.cmd("%%%%").check(501, "5.5.2")
    c.cmd("AUTH LOGIN").check(334)
    c.cmd("dXNlcg=x").check(501, "5.5.2")
    c.cmd("NOOP").check(250)


def test_unknown_mechanism(sub, tls_certs):
    c = tls_client(sub, tls_certs)
    c.cmd("AUTH CRAM-MD5").check(504, "5.5.4")
    c.cmd("AUTH XOAUTH2 " + b64("user=alice\x01auth=Bearer x\x01\x01")).check(504, "5.5.4")
    c.cmd("AUTH PLAIN " + plain("alice", USER_PASSWORDS["alice"])).check(235)


def test_bad_password(sub, tls_certs):
    c = tls_client(sub, tls_certs)
    start = time.monotonic()
    c.cmd("AUTH PLAIN " + plain("alice", WRONG)).check(535, "5.7.8")
    first = time.monotonic() - start
    assert first >= 0.4, f"no delay before 535 ({first:.2f} s)"
    # An unknown user gets the same answer.
    c.cmd("AUTH PLAIN " + plain("nobody@localhost", WRONG)).check(535, "5.7.8")
    # Still not authenticated.
    c.cmd("MAIL FROM:<alice@localhost>").check(530, "5.7.0", "Authentication required")
    assert 'event=auth-failed user="alice"' in sub.log()


def test_growing_delay_and_lockout_per_ip(submission, tls_certs):
    t = submission(auth={"max_failures": 2, "failure_window": "10m", "lockout": "15m"})
    c = tls_client(t, tls_certs)
    delays = []
    for _ in range(2):
        start = time.monotonic()
        c.cmd("AUTH PLAIN " + plain("alice", WRONG)).check(535, "5.7.8")
        delays.append(time.monotonic() - start)
    assert delays[0] >= 0.4 and delays[1] >= delays[0] + 0.3, delays
    # Now this address is locked out, even with the right password.
    c.cmd("AUTH PLAIN " + plain("alice", USER_PASSWORDS["alice"])).check(
        421, "4.7.0", "too many authentication failures")
    assert c.closed(5)
    for port_name in ("sub", "smtps"):
        c = tls_client(t, tls_certs, port_name)
        c.cmd("AUTH PLAIN " + plain("alice", USER_PASSWORDS["alice"])).check(421, "4.7.0")
        assert c.closed(5)
    # Another address is not.
    for port_name in ("sub", "smtps"):
        c = tls_client(t, tls_certs, port_name, source="127.0.0.2")
        c.cmd("AUTH PLAIN " + plain("alice", USER_PASSWORDS["alice"])).check(235, "2.7.0")
    assert "event=auth-lockout ip=127.0.0.1" in t.log()


def test_login_mechanism_wrong_password(sub, tls_certs):
    c = tls_client(sub, tls_certs)
    c.cmd("AUTH LOGIN").check(334)
    c.cmd(b64("alice")).check(334)
    c.cmd(b64(WRONG)).check(535, "5.7.8")


# ---- hash schemes and plain-text passwords

def scheme_hashes():
    def openssl(flag, pw):
        return subprocess.run(["openssl", "passwd", flag, pw], capture_output=True, text=True,
                              check=True).stdout.strip()
    out = {"carol": "{SHA512-CRYPT}" + openssl("-6", SCHEME_PASSWORDS["carol"]),
           "dave": openssl("-6", SCHEME_PASSWORDS["dave"]),
           "erin": "{SHA256-CRYPT}" + openssl("-5", SCHEME_PASSWORDS["erin"])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
            out["frank"] = "{BLF-CRYPT}" + crypt.crypt(
                SCHEME_PASSWORDS["frank"], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
        except (ImportError, ValueError, AttributeError):
            pass
    return out


def test_hash_schemes(tern_factory, tls_certs, password_hashes):
    hashes = dict(password_hashes, **scheme_hashes())
    t = start_submission(tern_factory, tls_certs, hashes, users=list(SCHEME_PASSWORDS),
                         auth={"max_failures": 20})
    for user in hashes:
        if user not in SCHEME_PASSWORDS:
            continue
        c = tls_client(t, tls_certs)
        c.cmd("AUTH PLAIN " + plain(user, SCHEME_PASSWORDS[user])).check(235, "2.7.0")
    # One wrong password (each failure adds to the delay of this address).
    c = tls_client(t, tls_certs)
    c.cmd("AUTH PLAIN " + plain("dave", SCHEME_PASSWORDS["carol"])).check(535, "5.7.8")
    t.stop()
    assert_no_secrets(t, extra=secrets())


def test_plaintext_passwords_refused_by_check(tern_factory, tls_certs, password_hashes):
    """{PLAIN} passwords with an auth block: `tern -n` fails, unless
    allow_plaintext yes."""
    t = start_submission(tern_factory, tls_certs, {}, start=False)
    r = tern_check(t.conf)
    assert r.returncode == 1, r.stderr
    assert re.search(r"users\.passwd:1: .*alice.*plain", r.stderr), r.stderr
    t2 = start_submission(tern_factory, tls_certs, {}, start=False,
                          auth={"allow_plaintext": "yes"})
    r = tern_check(t2.conf)
    assert r.returncode == 0, r.stderr
    t2.start()
    c = tls_client(t2, tls_certs)
    c.cmd("AUTH PLAIN " + plain("alice", "secret-0")).check(235, "2.7.0")
    c.cmd("MAIL FROM:<alice@localhost>").check(250)
    t2.stop()
    assert "secret-0" not in t2.log() and plain("alice", "secret-0") not in t2.log()


# ---- smtplib

def test_smtplib_login_plain_sendmail(sub, tls_certs):
    s = smtplib.SMTP(sub.host, sub.ports["sub"], local_hostname="client.example", timeout=10)
    try:
        s.starttls(context=client_context(tls_certs))
        s.ehlo()
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        s.login("alice@localhost", USER_PASSWORDS["alice"])
        body = (b"From: alice@localhost\r\nTo: bob@localhost\r\nSubject: smtplib\r\n"
                b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <x1@client.example>\r\n"
                b"\r\nhello bob\r\n")
        assert s.sendmail("alice@localhost", ["bob@localhost"], body) == {}
        using = cipher_text(s.sock)
        s.quit()
    finally:
        s.close()
    [m] = sub.wait_for_messages("bob")
    qid = m.split(b"with ESMTPSA id ", 1)[1][:16].decode()
    check_tls_stored(m, "alice@localhost", "bob@localhost", qid, body, using,
                     proto="ESMTPSA", for_rcpt="bob@localhost")


@pytest.mark.parametrize("initial", [True, False])
def test_smtplib_login_mechanism(sub, tls_certs, initial):
    s = smtplib.SMTP_SSL(sub.host, sub.ports["smtps"], local_hostname="client.example",
                         context=client_context(tls_certs), timeout=10)
    try:
        s.ehlo()
        s.user, s.password = "bob@localhost", USER_PASSWORDS["bob"]
        code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=initial)
        assert code == 235
        assert s.docmd("AUTH", "LOGIN")[0] == 503
        s.quit()
    finally:
        s.close()


def test_smtplib_bad_password(sub, tls_certs):
    s = smtplib.SMTP(sub.host, sub.ports["sub"], local_hostname="client.example", timeout=10)
    try:
        s.starttls(context=client_context(tls_certs))
        s.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.auth("PLAIN", lambda challenge=None: f"\0alice\0{WRONG}")
        assert e.value.smtp_code == 535
    finally:
        s.close()


def test_raw_sendmail_after_auth_queued(sub, tls_certs):
    c = submission_client(sub, tls_certs, "alice@localhost")
    body = (b"From: alice@localhost\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
            b"Message-ID: <x2@client.example>\r\n\r\nhi\r\n")
    qid = c.deliver("alice@localhost", ["bob@localhost"], body)
    [m] = sub.wait_for_messages("bob")
    check_tls_stored(m, "alice@localhost", "bob@localhost", qid, body, cipher_text(c.sock),
                     proto="ESMTPSA", for_rcpt="bob@localhost")
