"""Helpers of the TLS, AUTH and submission tests: configuration blocks, a
daemon with submission listeners, STARTTLS and implicit TLS on the raw
Client, SASL encodings and checks of the stored bytes with a TLS Received
header. Certificates come from the `tls_certs` fixture (conftest.py)."""

import base64
import hashlib
import re
import smtplib
import ssl
import subprocess

from conftest import TERN_BIN, USER_PASSWORDS
from smtp_client import received_date

SERVER_NAME = "mail.test.example"
OTHER_NAME = "other.test.example"
# One STARTTLS (587) and one implicit TLS (465) submission listener.
SUBMISSION = {"sub": "mode submission", "smtps": "mode submission; tls implicit"}


def tls_block(certs, min_version=None, sni=True, cert=None, key=None):
    """The tls { } configuration text: default certificate (cert/key or
    the test's mail.test.example one) and an sni block for
    other.test.example."""
    text = f"tls {{\n    cert {cert or certs['cert']}\n    key {key or certs['key']}\n"
    if min_version:
        text += f"    min_version {min_version}\n"
    if sni:
        text += (f"    sni {OTHER_NAME} {{\n        cert {certs['other']}\n"
                 f"        key {certs['other_key']}\n    }}\n")
    return text + "}\n"


def auth_block(**opts):
    """auth { KEY VALUE; ... } from keyword arguments (max_failures=3)."""
    return "auth {\n" + "".join(f"    {k} {v}\n" for k, v in opts.items()) + "}\n"


def start_submission(tern_factory, certs, hashes, auth=None, trusted="none", listeners=None,
                     tls=None, extra="", **options):
    """A daemon with the mx listener (STARTTLS offered), the SUBMISSION
    listeners, AUTH on (auth: dict of auth block options; False: no auth
    block), the users' password hashes and `trusted_networks TRUSTED`
    (None: the default). Relayed mail goes to a closed loopback port, so it
    waits in the queue."""
    text = tls if tls is not None else tls_block(certs)
    text += "route * { via 127.0.0.1:9 }\n"
    if auth is not False:
        text += auth_block(**(auth or {}))
    if trusted:
        text += f"trusted_networks {trusted}\n"
    return tern_factory(listeners=listeners or SUBMISSION, passwords=hashes, extra=text + extra,
                        **options)


def client_context(certs, maximum=None, minimum=None):
    """A verifying client context that trusts the test CA."""
    ctx = ssl.create_default_context(cafile=str(certs["ca"]))
    if maximum:
        ctx.maximum_version = maximum
    if minimum:
        ctx.minimum_version = minimum
    return ctx


def starttls(c, ctx, hostname=SERVER_NAME):
    """STARTTLS on a raw Client (after EHLO): 220, then the handshake on the
    same socket. Nothing else may have arrived in clear."""
    c.cmd("STARTTLS").check(220, "2.0.0", "Ready to start TLS")
    assert c.buf == b"", f"bytes after the 220 to STARTTLS: {c.buf!r}"
    c.sock = ctx.wrap_socket(c.sock, server_hostname=hostname)
    return c


def implicit(tern, ctx, port=None, hostname=SERVER_NAME, source=None, greet=True):
    """A raw Client of the implicit TLS listener (465): handshake, then the
    greeting."""
    c = tern.client(port=port or tern.ports["smtps"], greet=False, source=source)
    c.sock = ctx.wrap_socket(c.sock, server_hostname=hostname)
    if greet:
        c.greeting()
    return c


def submission_client(tern, certs, user=None, source=None):
    """A raw Client of the 587 listener after EHLO, STARTTLS, EHLO and, with
    user, a successful AUTH PLAIN as that user."""
    c = tern.client(port=tern.ports["sub"], source=source)
    c.ehlo()
    starttls(c, client_context(certs))
    c.ehlo()
    if user:
        c.cmd("AUTH PLAIN " + plain(user, password(user))).check(235, "2.7.0")
    return c


def password(login):
    return USER_PASSWORDS[login.split("@")[0]]


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def plain(user, pw, authzid=""):
    """The RFC 4616 PLAIN response, base64."""
    return b64(f"{authzid}\0{user}\0{pw}")


def ehlo_keywords(reply):
    """The keywords of an EHLO reply (first word of each line after the
    first), upper case."""
    return [line.split()[0].upper() for line in reply.lines[1:] if line.split()]


def cipher_text(sslobj):
    """What tern writes after "using" for this client's TLS session."""
    name, version, bits = sslobj.cipher()
    return f"{version} with cipher {name} ({bits}/{bits} bits)"


def expected_tls_stored(sender, delivered_to, qid, body, using, date, proto="ESMTPSA",
                        for_rcpt=None, helo="client.example", added=b"",
                        hostname="test.example", ip="127.0.0.1"):
    head = (f"Return-Path: <{sender}>\r\n"
            f"Delivered-To: {delivered_to}\r\n"
            f"Received: from {helo} ([{ip}])\r\n"
            f"\t(using {using})\r\n"
            f"\tby {hostname} (tern) with {proto} id {qid}")
    if for_rcpt is not None:
        head += f"\r\n\tfor <{for_rcpt}>; {date}\r\n"
    else:
        head += f"; {date}\r\n"
    return head.encode() + added + body


def check_tls_stored(stored, sender, delivered_to, qid, body, using, proto="ESMTPSA",
                     for_rcpt=None, helo="client.example", added=b"", ip="127.0.0.1"):
    date = received_date(stored)
    exp = expected_tls_stored(sender, delivered_to, qid, body, using, date, proto, for_rcpt,
                              helo, added, ip=ip)
    assert stored == exp


def tern_check(conf):
    """`tern -n -f conf`."""
    return subprocess.run([TERN_BIN, "-n", "-f", str(conf)], capture_output=True, text=True,
                          timeout=20)


def s_client(port, *args, starttls=True, data=b"QUIT\r\n", timeout=20):
    """openssl s_client against 127.0.0.1:port; returns (rc, stdout+stderr)."""
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-ign_eof", *args]
    if starttls:
        cmd += ["-starttls", "smtp"]
    r = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def s_client_subject_cn(port, servername=None, starttls=True):
    """The subject CN of the certificate the server presents."""
    args = ["-servername", servername] if servername else ["-noservername"]
    rc, out = s_client(port, *args, starttls=starttls)
    m = re.search(r"^subject=.*?CN\s*=\s*([^,/\n]+)", out, re.M)
    assert m, f"no subject in s_client output (rc {rc}):\n{out}"
    return m.group(1).strip()


def fingerprint(sock):
    """SHA-256 of the DER certificate the server presented on sock."""
    return hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()


def cert_fingerprint(path):
    der = ssl.PEM_cert_to_DER_cert(open(path).read())
    return hashlib.sha256(der).hexdigest()


def smtp_starttls(tern, certs, port=None):
    """smtplib.SMTP on port (default: the 587 listener) after STARTTLS."""
    s = smtplib.SMTP("127.0.0.1", port or tern.ports["sub"], local_hostname="client.example",
                     timeout=10)
    s.starttls(context=client_context(certs))
    s.ehlo("client.example")
    return s


def secrets_of(logins):
    """Strings that must never appear in a log: each password and the
    base64 forms a client sent."""
    out = []
    for login in logins:
        pw = password(login)
        out += [pw, b64(pw), plain(login, pw)]
    return out


def assert_no_secrets(tern, logins=None, extra=()):
    text = tern.log()
    for s in secrets_of(logins or USER_PASSWORDS) + list(extra):
        assert s not in text, f"secret {s!r} in the log {tern.logfile}"
