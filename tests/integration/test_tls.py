"""TLS (RFC 3207 STARTTLS, RFC 8314 implicit TLS): the injection class of
CVE-2011-0411, state reset, protocol versions, SNI, certificate reload on
SIGHUP, hostile handshakes and configuration errors. Real clients: smtplib,
openssl s_client, swaks."""

import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import TERN_BIN, issue_cert
from smtp_client import check_stored, queued_id, simple_body
from tls_helpers import (OTHER_NAME, SERVER_NAME, cert_fingerprint, check_tls_stored,
                         cipher_text, client_context, ehlo_keywords, fingerprint, implicit,
                         s_client, s_client_subject_cn, start_submission, starttls,
                         tern_check, tls_block)


@pytest.fixture
def tls_tern(tern_factory, tls_certs, password_hashes):
    return start_submission(tern_factory, tls_certs, password_hashes, workers=1)


# ---- STARTTLS on the mx listener

def test_starttls_offered_then_gone(tls_tern, tls_certs):
    c = tls_tern.client()
    kw = ehlo_keywords(c.ehlo())
    assert "STARTTLS" in kw and "AUTH" not in kw
    starttls(c, client_context(tls_certs))
    kw = ehlo_keywords(c.ehlo())
    assert "STARTTLS" not in kw and "AUTH" not in kw
    assert "PIPELINING" in kw and "CHUNKING" in kw
    c.cmd("STARTTLS").check(503, "5.5.1")
    c.cmd("AUTH PLAIN AGFsaWNlAHg=").check(502, "5.5.1")


def test_starttls_syntax(tls_tern):
    c = tls_tern.client()
    c.ehlo()
    c.cmd("STARTTLS now").check(501, "5.5.4")
    # Still in clear and usable.
    c.cmd("NOOP").check(250, "2.0.0")


def test_starttls_without_tls_listener(tern_factory, tls_certs, password_hashes):
    t = start_submission(tern_factory, tls_certs, password_hashes,
                         listeners={"plain": "mode mx; tls none"})
    c = t.client(port=t.ports["plain"])
    assert "STARTTLS" not in ehlo_keywords(c.ehlo())
    c.cmd("STARTTLS").check(502, "5.5.1")


def test_starttls_injection(tls_tern, tls_certs):
    """CVE-2011-0411: a command pipelined after STARTTLS in the same write
    must be discarded, not answered inside TLS (nor in clear)."""
    c = tls_tern.client()
    c.ehlo()
    c.send(b"STARTTLS\r\nRSET\r\n")
    c.reply().check(220, "2.0.0")
    time.sleep(0.2)
    c.sock.setblocking(False)
    try:
        leaked = c.sock.recv(4096)
    except BlockingIOError:
        leaked = b""
    c.sock.setblocking(True)
    assert c.buf == b"" and leaked == b"", f"reply in clear after 220: {c.buf + leaked!r}"
    c.sock = client_context(tls_certs).wrap_socket(c.sock, server_hostname=SERVER_NAME)
    # The first bytes inside TLS are the reply to our EHLO, nothing before it.
    c.no_reply(0.7)
    r = c.cmd("EHLO client.example").check(250)
    assert r.raw.startswith(b"250-test.example\r\n"), r.raw
    c.no_reply(0.3)
    c.cmd("NOOP").check(250, "2.0.0")


def test_starttls_injection_mail_command(tls_tern, tls_certs):
    """The same with a whole transaction start pipelined in clear."""
    c = tls_tern.client()
    c.ehlo()
    c.send(b"STARTTLS\r\nMAIL FROM:<evil@example.test>\r\nRCPT TO:<alice@localhost>\r\n")
    c.reply().check(220, "2.0.0")
    c.sock = client_context(tls_certs).wrap_socket(c.sock, server_hostname=SERVER_NAME)
    c.no_reply(0.5)
    c.ehlo()
    # No transaction survived: RCPT needs a MAIL first.
    c.cmd("RCPT TO:<alice@localhost>").check(503, "5.5.1")


def test_ehlo_required_after_starttls(tls_tern, tls_certs):
    c = tls_tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test>").check(250)
    starttls(c, client_context(tls_certs))
    # Back to the state before EHLO (so without enhanced status codes).
    c.cmd("MAIL FROM:<bob@example.test>").check(503, contains="send HELO/EHLO first")
    c.ehlo()
    # The transaction begun in clear is gone.
    c.cmd("RCPT TO:<alice@localhost>").check(503, "5.5.1")
    body = simple_body("after tls")
    qid = c.deliver("bob@example.test", ["alice@localhost"], body)
    [m] = tls_tern.wait_for_messages("alice")
    check_tls_stored(m, "bob@example.test", "alice@localhost", qid, body,
                     cipher_text(c.sock), proto="ESMTPS", for_rcpt="alice@localhost")


def test_smtplib_starttls_received_esmtps(tls_tern, tls_certs):
    s = smtplib.SMTP(tls_tern.host, tls_tern.port, local_hostname="client.example", timeout=10)
    try:
        s.ehlo()
        assert s.has_extn("starttls") and not s.has_extn("auth")
        s.starttls(context=client_context(tls_certs))
        s.ehlo()
        assert not s.has_extn("starttls")
        body = simple_body("smtplib tls")
        refused = s.sendmail("bob@example.test", ["alice@localhost"], body)
        assert refused == {}
        using = cipher_text(s.sock)
        assert using.startswith("TLSv1.3 with cipher ")
        s.quit()
    finally:
        s.close()
    [m] = tls_tern.wait_for_messages("alice")
    qid = re.search(rb"with ESMTPS id ([0-9a-f]{16})", m).group(1).decode()
    check_tls_stored(m, "bob@example.test", "alice@localhost", qid, body, using,
                     proto="ESMTPS", for_rcpt="alice@localhost")


def test_tls12_received_header(tls_tern, tls_certs):
    c = tls_tern.client()
    c.ehlo()
    starttls(c, client_context(tls_certs, maximum=ssl.TLSVersion.TLSv1_2))
    assert c.sock.version() == "TLSv1.2"
    c.ehlo()
    body = simple_body("tls 1.2")
    qid = c.deliver("bob@example.test", ["alice@localhost", "bob@localhost"], body)
    using = cipher_text(c.sock)
    assert using.startswith("TLSv1.2 with cipher ")
    [m] = tls_tern.wait_for_messages("alice")
    check_tls_stored(m, "bob@example.test", "alice@localhost", qid, body, using, proto="ESMTPS")


def test_plain_session_unchanged(tls_tern):
    """Without STARTTLS nothing changes: ESMTP and the old header."""
    c = tls_tern.client()
    c.ehlo()
    body = simple_body("clear")
    qid = c.deliver("bob@example.test", ["alice@localhost"], body)
    [m] = tls_tern.wait_for_messages("alice")
    check_stored(m, "bob@example.test", "alice@localhost", qid, body, for_rcpt="alice@localhost")


def test_swaks_starttls(tls_tern):
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(tls_tern.port),
                        "--tls", "--ehlo", "client.example", "--from", "bob@example.test",
                        "--to", "alice@localhost", "--header", "Subject: swaks tls",
                        "--body", "via swaks"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TLS started" in r.stdout + r.stderr
    [m] = tls_tern.wait_for_messages("alice")
    assert b"\tby test.example (tern) with ESMTPS id " in m
    assert b"Subject: swaks tls\r\n" in m and b"via swaks" in m


# ---- protocol versions

def test_tls11_refused(tls_tern):
    # SECLEVEL=0 lets Debian's OpenSSL offer TLS 1.1 at all: the refusal
    # must come from the server (alert 70, protocol_version).
    rc, out = s_client(tls_tern.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert rc != 0, out
    assert "alert protocol version" in out, out
    assert "Cipher is (NONE)" in out, out
    rc, out = s_client(tls_tern.ports["smtps"], "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0",
                       starttls=False)
    assert rc != 0 and "alert protocol version" in out, out
    # The worker goes on.
    rc, out = s_client(tls_tern.port, "-tls1_2")
    assert rc == 0 and "Protocol  : TLSv1.2" in out, out


def test_min_version_13(tern_factory, tls_certs, password_hashes):
    t = start_submission(tern_factory, tls_certs, password_hashes,
                         tls=tls_block(tls_certs, min_version="1.3"))
    rc, out = s_client(t.port, "-tls1_2")
    assert rc != 0 and "alert protocol version" in out, out
    rc, out = s_client(t.port, "-tls1_3")
    assert rc == 0 and "Protocol  : TLSv1.3" in out, out
    c = t.client()
    c.ehlo()
    c.cmd("STARTTLS").check(220)
    with pytest.raises(ssl.SSLError):
        client_context(tls_certs, maximum=ssl.TLSVersion.TLSv1_2).wrap_socket(
            c.sock, server_hostname=SERVER_NAME)


# ---- SNI

def test_sni_picks_certificate(tls_tern):
    for port, st in ((tls_tern.port, True), (tls_tern.ports["sub"], True),
                     (tls_tern.ports["smtps"], False)):
        assert s_client_subject_cn(port, OTHER_NAME, starttls=st) == OTHER_NAME
        assert s_client_subject_cn(port, SERVER_NAME, starttls=st) == SERVER_NAME
        # Unknown name and no name: the default certificate.
        assert s_client_subject_cn(port, "unknown.test.example", starttls=st) == SERVER_NAME
        assert s_client_subject_cn(port, None, starttls=st) == SERVER_NAME


def test_sni_verified_by_python(tls_tern, tls_certs):
    c = tls_tern.client()
    c.ehlo()
    starttls(c, client_context(tls_certs), hostname=OTHER_NAME)
    assert fingerprint(c.sock) == cert_fingerprint(tls_certs["other"])
    c.ehlo()
    c2 = implicit(tls_tern, client_context(tls_certs))
    assert fingerprint(c2.sock) == cert_fingerprint(tls_certs["cert"])


def test_wildcard_sni(tern_factory, tls_certs, password_hashes, tmp_path):
    cert, key = issue_cert(tmp_path, "wild.pem", "wild.key", "*.wild.test.example",
                           tls_certs["ca"], tls_certs["ca_key"])
    tls = tls_block(tls_certs)[:-2] + f"    sni *.wild.test.example {{ cert {cert}; key {key} }}\n}}\n"
    t = start_submission(tern_factory, tls_certs, password_hashes, tls=tls)
    assert s_client_subject_cn(t.port, "a.wild.test.example") == "*.wild.test.example"
    assert s_client_subject_cn(t.port, OTHER_NAME) == OTHER_NAME
    assert s_client_subject_cn(t.port, "wild.test.example") == SERVER_NAME


# ---- reload

def test_sighup_reloads_certificate_keeps_session(tern_factory, tls_certs, password_hashes,
                                                  tmp_path):
    certdir = tmp_path / "live"
    certdir.mkdir()
    shutil.copy(tls_certs["cert"], certdir / "cert.pem")
    shutil.copy(tls_certs["key"], certdir / "key.pem")
    t = start_submission(tern_factory, tls_certs, password_hashes,
                         tls=tls_block(tls_certs, cert=certdir / "cert.pem",
                                       key=certdir / "key.pem"))
    ctx = client_context(tls_certs)
    old = t.client()
    old.ehlo()
    starttls(old, ctx)
    old_fp = fingerprint(old.sock)
    assert old_fp == cert_fingerprint(tls_certs["cert"])
    old.ehlo()
    old.cmd("MAIL FROM:<bob@example.test>").check(250)
    old.cmd("RCPT TO:<alice@localhost>").check(250)

    # A renewed certificate (new key, same name) replaces the files.
    new_cert, new_key = issue_cert(tmp_path, "renewed.pem", "renewed.key", SERVER_NAME,
                                   tls_certs["ca"], tls_certs["ca_key"], ip="127.0.0.1")
    shutil.copy(new_cert, certdir / "cert.pem.tmp")
    shutil.copy(new_key, certdir / "key.pem.tmp")
    os.replace(certdir / "key.pem.tmp", certdir / "key.pem")
    os.replace(certdir / "cert.pem.tmp", certdir / "cert.pem")
    new_fp = cert_fingerprint(new_cert)
    assert new_fp != old_fp
    t.sighup()

    def presented():
        c = t.client()
        c.ehlo()
        starttls(c, ctx)
        fp = fingerprint(c.sock)
        c.cmd("QUIT")
        c.close()
        return fp

    deadline = time.monotonic() + 10
    while presented() != new_fp:
        assert time.monotonic() < deadline, "new certificate not used after SIGHUP"
        time.sleep(0.1)
    # The session opened before the reload completes its transaction.
    old.cmd("DATA").check(354)
    body = simple_body("across reload")
    qid = queued_id(old.message(body))
    old.cmd("QUIT").check(221)
    [m] = t.wait_for_messages("alice")
    assert f"with ESMTPS id {qid}".encode() in m and m.endswith(body)
    assert t.proc.poll() is None


# ---- implicit TLS (465)

def test_implicit_tls_smtplib(tls_tern, tls_certs):
    s = smtplib.SMTP_SSL(tls_tern.host, tls_tern.ports["smtps"], local_hostname="client.example",
                         context=client_context(tls_certs), timeout=10)
    try:
        code, _ = s.ehlo()
        assert code == 250
        assert not s.has_extn("starttls")
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
    finally:
        s.close()


def test_implicit_tls_raw(tls_tern, tls_certs):
    c = implicit(tls_tern, client_context(tls_certs))
    kw = ehlo_keywords(c.ehlo())
    assert "STARTTLS" not in kw and "AUTH" in kw
    # Already in TLS: refused (the contract says 503; 502 "not implemented"
    # is as good for a listener that never offers STARTTLS).
    r = c.cmd("STARTTLS")
    assert r.code in (502, 503) and r.enhanced == "5.5.1", r
    c.cmd("NOOP").check(250, "2.0.0")
    c.cmd("QUIT").check(221, "2.0.0")


def test_implicit_tls_garbage(tern_factory, tls_certs, password_hashes):
    """Garbage instead of a ClientHello: closed, logged, no crash; the same
    (single) worker serves the next client."""
    t = start_submission(tern_factory, tls_certs, password_hashes, workers=1)
    port = t.ports["smtps"]
    workers = t.smtp_workers()
    garbage = [b"EHLO client.example\r\n",
               bytes(range(256)) * 8,
               b"\x16\x03\x01\xff\xff" + b"\x01" * 300,        # record longer than sent
               b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",    # truncated ClientHello
               b"\x80\x80\x01\x03\x01" + b"\x00" * 200]         # SSLv2-style hello
    for g in garbage:
        c = t.client(port=port, greet=False)
        c.send(g)
        assert c.closed(5), f"not closed after {g[:20]!r}"
        c.close()
    assert "event=tls-failed" in t.log()
    assert t.proc.poll() is None and t.smtp_workers() == workers
    c = implicit(t, client_context(tls_certs))
    c.ehlo()
    c.cmd("NOOP").check(250, "2.0.0")
    # The mx listener of the same worker is fine too.
    m = t.client()
    m.ehlo()


def test_implicit_tls_idle_timeout(tern_factory, tls_certs, password_hashes):
    t = start_submission(tern_factory, tls_certs, password_hashes,
                         limits={"timeout_command": "2s"})
    c = t.client(port=t.ports["smtps"], greet=False)
    start = time.monotonic()
    assert c.closed(6), "idle client on the implicit TLS listener not closed"
    assert time.monotonic() - start >= 1.5
    c2 = implicit(t, client_context(tls_certs))
    c2.ehlo()


def test_implicit_tls_no_greeting_in_clear(tls_tern):
    """A plain SMTP client on 465 gets no 220 in clear."""
    s = socket.create_connection(("127.0.0.1", tls_tern.ports["smtps"]), timeout=5)
    try:
        s.settimeout(0.5)
        with pytest.raises(socket.timeout):
            s.recv(100)
    finally:
        s.close()


# ---- configuration errors

def tls_conf(tern_factory, tls_text):
    t = tern_factory(start=False, listeners={"sub": "mode submission"})
    t.conf.write_text(t.config_text() + tls_text)
    return t, t.config_text().count("\n")   # the line number before tls_text


def conf_error_line(stderr, conf):
    m = re.search(re.escape(str(conf)) + r":(\d+): tls: ", stderr)
    assert m, f"no '{conf}:LINE: tls: ...' in {stderr!r}"
    return int(m.group(1))


def test_config_missing_cert(tern_factory, tls_certs, tmp_path):
    t, before = tls_conf(tern_factory, tls_block(tls_certs, cert=tmp_path / "nosuch.pem"))
    r = tern_check(t.conf)
    assert r.returncode == 1, r.stderr
    assert conf_error_line(r.stderr, t.conf) == before + 1
    assert "nosuch.pem" in r.stderr
    # The daemon itself refuses to start the same way.
    d = subprocess.run([TERN_BIN, "-d", "-f", str(t.conf)],
                       capture_output=True, text=True, timeout=20)
    assert d.returncode == 1
    assert conf_error_line(d.stderr, t.conf) == before + 1


def test_config_key_mismatch(tern_factory, tls_certs):
    t, before = tls_conf(tern_factory, tls_block(tls_certs, key=tls_certs["wrong_key"]))
    r = tern_check(t.conf)
    assert r.returncode == 1, r.stderr
    assert conf_error_line(r.stderr, t.conf) == before + 1
    assert str(tls_certs["wrong_key"]) in r.stderr


def test_config_sni_key_mismatch(tern_factory, tls_certs):
    text = tls_block(tls_certs).replace(str(tls_certs["other_key"]), str(tls_certs["key"]))
    t, before = tls_conf(tern_factory, text)
    r = tern_check(t.conf)
    assert r.returncode == 1, r.stderr
    # The line of the sni block (the 4th line of the tls block).
    assert conf_error_line(r.stderr, t.conf) == before + 4
    assert str(tls_certs["key"]) in r.stderr


def test_config_good_tls(tern_factory, tls_certs):
    t, _ = tls_conf(tern_factory, tls_block(tls_certs, min_version="1.3"))
    r = tern_check(t.conf)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("listen,with_tls", [
    ("mode submission; tls optional", True),    # passwords would travel in clear
    ("mode mx; tls required", False),           # TLS without a tls block
    ("mode submission; tls implicit", False),
])
def test_config_listener_tls_errors(tern_factory, tls_certs, listen, with_tls):
    t = tern_factory(start=False, listeners={"x": listen},
                     extra=tls_block(tls_certs) if with_tls else "")
    r = tern_check(t.conf)
    assert r.returncode == 1, r.stderr
    # The line of that listen directive (the 6th of the configuration).
    assert re.search(re.escape(str(t.conf)) + r":6: \S", r.stderr), r.stderr


def test_sighup_bad_key_keeps_old_certificate(tern_factory, tls_certs, password_hashes,
                                              tmp_path):
    certdir = tmp_path / "live"
    certdir.mkdir()
    shutil.copy(tls_certs["cert"], certdir / "cert.pem")
    shutil.copy(tls_certs["key"], certdir / "key.pem")
    t = start_submission(tern_factory, tls_certs, password_hashes,
                         tls=tls_block(tls_certs, cert=certdir / "cert.pem",
                                       key=certdir / "key.pem"))
    before = t.log()
    shutil.copy(tls_certs["wrong_key"], certdir / "key.pem")
    t.sighup()
    deadline = time.monotonic() + 5
    while str(certdir / "key.pem") not in t.log()[len(before):]:
        assert time.monotonic() < deadline, "reload error not logged:\n" + t.log()[-2000:]
        time.sleep(0.05)
    c = t.client()
    c.ehlo()
    starttls(c, client_context(tls_certs))
    assert fingerprint(c.sock) == cert_fingerprint(tls_certs["cert"])
    c.ehlo()
    assert t.proc.poll() is None
