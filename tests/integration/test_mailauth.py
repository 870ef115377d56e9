"""Inbound SPF, DKIM and DMARC checks (the check process, src/server/checkd.c
and src/mailauth/authcheck.c) end to end: a local unbound serves the test
domains' SPF, DKIM key and DMARC records; messages signed with dkimpy
arrive on the mx listener and land in the Maildir with one
Authentication-Results field (RFC 8601), or are refused by policy.

The client is 127.0.0.1 and says EHLO client.example. Domains:
  good.test   SPF allows 127.0.0.1, DKIM keys rsa._domainkey and
              ed._domainkey, DMARC p=reject
  bad.test    SPF -all, DMARC p=reject
  quar.test   SPF -all, DMARC p=quarantine
  slow.test   every query times out (a silent server)
"""

import base64
import email
import email.policy
import os
import re
import signal
import subprocess
import time

import pytest

from dns_fixture import unbound_server  # noqa: F401

dkim = pytest.importorskip("dkim")

AUTHSERV = "mx.tern.test"
HDR = b"From: Alice <alice@good.test>\r\nTo: bob@localhost\r\nSubject: hi\r\n" \
      b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <m1@good.test>\r\n"
BODY = b"Hello Bob.\r\nThe body is signed.\r\n"


def txt(s):
    """A TXT record's data as quoted strings of at most 255 octets."""
    return " ".join(f'"{s[i:i + 250]}"' for i in range(0, len(s), 250))


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", str(d / "rsa.pem")], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(d / "rsa.pem"), "-pubout", "-outform",
                    "DER", "-out", str(d / "rsa.der")], check=True, capture_output=True)
    seed = os.urandom(32)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization
    pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "rsa": (d / "rsa.pem").read_bytes(),
        "rsa_pub": base64.b64encode((d / "rsa.der").read_bytes()).decode(),
        "ed": base64.b64encode(seed),
        "ed_pub": base64.b64encode(pub).decode(),
    }


def zone(keys):
    return [
        f'good.test TXT {txt("v=spf1 ip4:127.0.0.1 -all")}',
        f'rsa._domainkey.good.test TXT {txt("v=DKIM1; k=rsa; p=" + keys["rsa_pub"])}',
        f'ed._domainkey.good.test TXT {txt("v=DKIM1; k=ed25519; p=" + keys["ed_pub"])}',
        f'_dmarc.good.test TXT {txt("v=DMARC1; p=reject")}',
        f'bad.test TXT {txt("v=spf1 -all")}',
        f'_dmarc.bad.test TXT {txt("v=DMARC1; p=reject")}',
        f'quar.test TXT {txt("v=spf1 -all")}',
        f'_dmarc.quar.test TXT {txt("v=DMARC1; p=quarantine")}',
        "client.example A 127.0.0.9",
        "slow.test TIMEOUT",
    ]


def sign(keys, msg, alg="rsa"):
    if alg == "rsa":
        sig = dkim.sign(msg, b"rsa", b"good.test", keys["rsa"],
                        include_headers=[b"from", b"to", b"subject", b"date"])
    else:
        sig = dkim.sign(msg, b"ed", b"good.test", keys["ed"], signature_algorithm=b"ed25519-sha256",
                        include_headers=[b"from", b"to", b"subject", b"date"])
    return sig + msg


def checked_tern(tern_factory, dns, policy="", extra="", **options):
    return tern_factory(extra=f"dns_server {dns.address}\nauth_checks on {{\n"
                        f"    authserv_id {AUTHSERV}\n{policy}}}\n{extra}", **options)


def send(t, msg, sender="alice@good.test", rcpt="bob@localhost", code=250, enh=None):
    c = t.client()
    c.ehlo("client.example")
    c.mail_rcpt_data(sender, [rcpt])
    r = c.message(msg)
    r.check(code, enh)
    c.cmd("QUIT").check(221)
    return r


def authres(raw):
    """The Authentication-Results fields of a stored message, parsed with
    Python's email package; returns (fields, {method: [(result, props)]})
    of the one that carries our authserv-id."""
    m = email.message_from_bytes(raw, policy=email.policy.compat32)
    fields = [" ".join(v.split()) for v in m.get_all("Authentication-Results", [])]
    ours = [f for f in fields if f.split(";")[0].strip() == AUTHSERV]
    assert len(ours) == 1, fields
    res = {}
    for part in ours[0].split(";")[1:]:
        part = re.sub(r"\([^)]*\)", "", part).strip()
        mm = re.match(r"([a-z]+)=([a-z]+)(.*)$", part)
        assert mm, part
        props = dict(re.findall(r'([a-z]+\.[a-z-]+)=("[^"]*"|[^ ]+)', mm.group(3)))
        props.update(re.findall(r'(reason)=("[^"]*"|[^ ]+)', mm.group(3)))
        res.setdefault(mm.group(1), []).append((mm.group(2), props))
    return fields, res


def test_signed_rsa_and_ed25519_pass(tern_factory, unbound_server, keys):
    dns = unbound_server(zone(keys))
    t = checked_tern(tern_factory, dns)
    msg = sign(keys, HDR + b"\r\n" + BODY)
    msg = sign(keys, msg, "ed")
    send(t, msg)
    raw = t.wait_for_messages("bob")[0]
    fields, res = authres(raw)
    assert res["spf"][0] == ("pass", {"smtp.mailfrom": "alice@good.test"})
    assert res["spf"][1][0] == "none" and res["spf"][1][1] == {"smtp.helo": "client.example"}
    assert sorted((r, p["header.d"], p["header.s"]) for r, p in res["dkim"]) == \
        [("pass", "good.test", "ed"), ("pass", "good.test", "rsa")]
    assert res["dmarc"] == [("pass", {"header.from": "good.test", "policy.dmarc": "none"})]
    # iprev (RFC 8601 3): 127.0.0.1's PTR is "localhost", whose A record leads
    # back (both from libunbound's own local zones).
    assert res["iprev"] == [("pass", {"policy.iprev": "127.0.0.1"})]
    assert "iprev=pass (localhost) policy.iprev=127.0.0.1" in fields[0]
    # Above our Received header, the message after it byte for byte.
    assert raw.index(b"Authentication-Results:") < raw.index(b"Received: from client.example")
    assert raw.endswith(msg)
    # dkimpy agrees the stored message still verifies (nothing of it changed).
    assert dkim.verify(msg, dnsfunc=lambda name, timeout=5: {
        b"rsa._domainkey.good.test.": b"v=DKIM1; k=rsa; p=" + keys["rsa_pub"].encode(),
        b"ed._domainkey.good.test.": b"v=DKIM1; k=ed25519; p=" + keys["ed_pub"].encode(),
    }[name])


def test_tampered_body_fails_dkim_and_dmarc_rejects(tern_factory, unbound_server, keys):
    dns = unbound_server(zone(keys))
    t = checked_tern(tern_factory, dns)
    msg = sign(keys, HDR + b"\r\n" + BODY).replace(b"Hello Bob", b"Hello Eve")
    # SPF still passes and is aligned: DMARC passes, DKIM fails.
    send(t, msg)
    fields, res = authres(t.wait_for_messages("bob")[0])
    assert res["dkim"][0][0] == "fail"
    assert res["dkim"][0][1]["header.d"] == "good.test"
    assert res["dkim"][0][1]["reason"] == '"body hash mismatch"'
    assert res["dmarc"][0][0] == "pass"
    # From an address SPF does not allow (bad.test MAIL FROM): nothing
    # aligned passes, p=reject refuses at the end of data.
    send(t, msg, sender="x@bad.test", code=550, enh="5.7.1")
    assert len(t.maildir_names("bob")) == 1
    t.wait_log(r"event=reject stage=data reason=dmarc")


def test_spf_fail_reject_and_record(tern_factory, unbound_server, keys):
    dns = unbound_server(zone(keys))
    plain = b"From: x@localhost\r\nSubject: s\r\n\r\nbody\r\n"
    t = checked_tern(tern_factory, dns, policy="    spf_fail reject\n")
    r = send(t, plain, sender="x@bad.test", code=550, enh="5.7.23")
    assert "SPF" in r.text
    assert t.maildir_names("bob") == []
    t2 = checked_tern(tern_factory, dns)
    send(t2, plain, sender="x@bad.test")
    fields, res = authres(t2.wait_for_messages("bob")[0])
    assert res["spf"][0] == ("fail", {"smtp.mailfrom": "x@bad.test"})
    # From: localhost has no DMARC record.
    assert res["dmarc"] == [("none", {"header.from": "localhost"})]


def test_dmarc_quarantine_goes_to_junk(tern_factory, unbound_server, keys):
    dns = unbound_server(zone(keys))
    t = checked_tern(tern_factory, dns)
    send(t, b"From: q@quar.test\r\nSubject: s\r\n\r\nbody\r\n", sender="q@quar.test")
    junk = t.maildir("bob") / ".Junk" / "new"
    deadline = time.monotonic() + 10
    while not (junk.exists() and os.listdir(junk)):
        assert time.monotonic() < deadline, t.log()
        time.sleep(0.05)
    raw = (junk / os.listdir(junk)[0]).read_bytes()
    assert b"\r\nX-Tern-Quarantine: DMARC policy quarantine\r\n" in raw
    fields, res = authres(raw)
    assert res["dmarc"] == [("fail", {"header.from": "quar.test", "policy.dmarc": "quarantine"})]
    assert t.maildir_names("bob") == []


def test_forged_authres_removed_foreign_kept(tern_factory, unbound_server, keys):
    dns = unbound_server(zone(keys))
    t = checked_tern(tern_factory, dns)
    msg = (f"Authentication-Results: {AUTHSERV.upper()}; dkim=pass header.d=bank.test\r\n"
           "Authentication-Results: other.example;\r\n spf=pass smtp.mailfrom=a@good.test\r\n"
           f"Authentication-Results:\r\n\t{AUTHSERV} ; malformed ((\r\n").encode() + HDR + \
        b"\r\n" + BODY
    send(t, msg)
    raw = t.wait_for_messages("bob")[0]
    fields, res = authres(raw)
    assert fields[1:] == ["other.example; spf=pass smtp.mailfrom=a@good.test"]
    assert b"bank.test" not in raw and b"malformed" not in raw
    assert res["dkim"] == [("none", {})]
    t.wait_log(r"event=authres-removed", timeout=5)
    assert len(re.findall(r"event=authres-removed", t.log())) == 2


def test_slow_dns_temperror_no_hang(tern_factory, unbound_server, keys):
    dns = unbound_server(zone(keys))
    t = checked_tern(tern_factory, dns, policy="    timeout 2s\n    spf_fail reject\n")
    start = time.monotonic()
    send(t, b"From: s@slow.test\r\n\r\nbody\r\n", sender="s@slow.test")
    assert time.monotonic() - start < 8
    fields, res = authres(t.wait_for_messages("bob")[0])
    assert res["spf"][0][0] == "temperror"
    assert res["dmarc"][0][0] == "temperror"


def check_pid(t):
    """The check process: the pid of its log lines."""
    found = re.findall(r"pid=(\d+) proc=check ", t.log())
    assert found, t.log()
    return int(found[-1])


def test_check_process_stopped_or_killed(tern_factory, unbound_server, keys):
    dns = unbound_server(zone(keys))
    t = checked_tern(tern_factory, dns, policy="    timeout 2s\n")
    send(t, b"From: alice@good.test\r\n\r\nfirst\r\n")
    t.wait_for_messages("bob", n=1)
    cpid = check_pid(t)
    assert cpid in t.children()
    os.kill(cpid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        send(t, b"From: alice@good.test\r\n\r\nsecond\r\n")
        assert 1.5 < time.monotonic() - start < 6
    finally:
        os.kill(cpid, signal.SIGCONT)
    msgs = t.wait_for_messages("bob", n=2)
    _, res = authres([m for m in msgs if m.endswith(b"second\r\n")][0])
    assert res["spf"][0] == ("temperror", {"smtp.mailfrom": "alice@good.test",
                                           "reason": '"checks did not complete"'})
    os.kill(cpid, signal.SIGKILL)
    t.wait_log(r"event=child-died proc=check")
    deadline = time.monotonic() + 10
    while len(re.findall(r"event=check-ready", t.log())) < 2:
        assert time.monotonic() < deadline, t.log()
        time.sleep(0.05)
    # A new check process and new workers: mail is checked again. Its first
    # answers may still miss the 2 s timeout on a loaded machine (cold DNS
    # cache), so a few messages are allowed before one must pass.
    deadline = time.monotonic() + 30
    for i in range(1, 11):
        body = b"third %d\r\n" % i
        while True:
            try:
                send(t, b"From: alice@good.test\r\n\r\n" + body)
                break
            except (AssertionError, OSError):
                assert time.monotonic() < deadline
                time.sleep(0.2)
        msgs = t.wait_for_messages("bob", n=2 + i)
        _, res = authres([m for m in msgs if m.endswith(body)][0])
        if res["spf"][0][0] != "temperror" or time.monotonic() > deadline:
            break
    assert res["spf"][0] == ("pass", {"smtp.mailfrom": "alice@good.test"}), res


def test_relayed_message_carries_authres_and_size(tern_factory, unbound_server, keys):
    """Relayed to a second tern (SIZE and CHUNKING: BDAT announces the exact
    octet count, so a wrong size breaks the transaction)."""
    from test_outbound import peer_tern
    dns = unbound_server(zone(keys))
    b = peer_tern(tern_factory)
    t = checked_tern(tern_factory, dns, extra=f"route * {{ via 127.0.0.1:{b.port} }}\n",
                     aliases={"carol": "bob@peer.test"})
    msg = sign(keys, HDR + b"\r\n" + BODY)
    send(t, msg, rcpt="carol@localhost")
    t.wait_log(r"event=sent ")
    got = b.wait_for_messages("bob", "peer.test")[0]
    _, res = authres(got)
    assert res["dkim"][0][0] == "pass" and res["dmarc"][0][0] == "pass"
    assert got.endswith(msg)
    # What A sent: from its A-R field to the end; B's queued size counts it.
    sent = got[got.index(b"Authentication-Results: " + AUTHSERV.encode()):]
    qsize = int(re.findall(r"event=queued id=\w+ nrcpt=1 size=(\d+)", b.log())[-1])
    assert qsize == len(sent)
    # A's queue counted the A-R field too (the envelope's size).
    asize = int(re.findall(r"event=queued id=\w+ nrcpt=1 size=(\d+)", t.log())[-1])
    assert asize == len(msg)


# ---- ARC (RFC 8617): the chain a forwarder sealed, reported as arc= ----

def arc_seal(keys, msg, hop=1):
    """One more ARC set by good.test (selector rsa), as a mailing list or
    forwarder would add it after its own Authentication-Results (hop 2
    records the chain it found: dkimpy wants that); dkimpy is the
    independent sealer."""
    srv = b"hop%d.good.test" % hop
    ar = b"spf=pass smtp.mailfrom=alice@good.test" if hop == 1 else b"arc=pass"
    msg = b"Authentication-Results: " + srv + b"; " + ar + b"\r\n" + msg
    sets = dkim.arc_sign(msg, b"rsa", b"good.test", keys["rsa"], srv,
                         include_headers=[b"from", b"to", b"subject", b"date"])
    assert sets, "dkimpy did not seal"
    return b"".join(sets) + msg


def dkimpy_arc(keys, msg):
    cv, _, reason = dkim.arc_verify(msg, dnsfunc=lambda name, timeout=5: {
        b"rsa._domainkey.good.test.": b"v=DKIM1; k=rsa; p=" + keys["rsa_pub"].encode(),
    }[name])
    return cv.decode() if isinstance(cv, bytes) else cv, reason


# A large body with lines that start with dots (stuffed on the wire, so the
# hashes are taken over the unstuffed bytes) and a trailing empty line.
ARC_BODY = b"".join(b".line %d of a forwarded message\r\n" % i for i in range(6000)) + b"\r\n"


def test_arc_chain_sealed_twice_passes(tern_factory, unbound_server, keys):
    dns = unbound_server(zone(keys))
    t = checked_tern(tern_factory, dns)
    msg = arc_seal(keys, arc_seal(keys, HDR + b"\r\n" + ARC_BODY), hop=2)
    assert dkimpy_arc(keys, msg)[0] == "pass"
    send(t, msg)
    raw = t.wait_for_messages("bob")[0]
    fields, res = authres(raw)
    assert res["arc"] == [("pass", {"smtp.remote-ip": "127.0.0.1", "header.oldest-pass": "0"})]
    assert "arc=pass (i=2)" in fields[0]
    assert raw.endswith(msg)


def test_arc_body_changed_after_sealing_fails(tern_factory, unbound_server, keys):
    dns = unbound_server(zone(keys))
    t = checked_tern(tern_factory, dns)
    msg = arc_seal(keys, HDR + b"\r\n" + ARC_BODY)
    msg = msg.replace(b"line 4711 ", b"line 4712 ")
    assert dkimpy_arc(keys, msg)[0] == "fail"
    send(t, msg)
    fields, res = authres(t.wait_for_messages("bob")[0])
    (result, props), = res["arc"]
    assert result == "fail" and props["smtp.remote-ip"] == "127.0.0.1"
    assert "header.oldest-pass" not in props
    assert "did not verify" in props["reason"]


def test_no_arc_set_no_arc_result(tern_factory, unbound_server, keys):
    # A field that names ARC-Seal without being one: the hashes are taken,
    # the chain has no sets, nothing is reported.
    dns = unbound_server(zone(keys))
    t = checked_tern(tern_factory, dns)
    send(t, HDR + b"X-Note: no ARC-Seal here\r\n\r\n" + BODY)
    fields, res = authres(t.wait_for_messages("bob")[0])
    assert "arc" not in res and "spf" in res
