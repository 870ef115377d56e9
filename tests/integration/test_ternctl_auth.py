"""ternctl's mail-authentication tools (src/cli/authcmd.c): `dkim keygen`,
`dkim verify` and `spf check`, against a local unbound serving the test
zones (dns_fixture.py). Signatures for `dkim verify` are made by dkimpy,
an implementation independent of ours."""

import base64
import os
import re
import stat
import subprocess

import pytest

from conftest import TERNCTL_BIN
from dns_fixture import unbound_server  # noqa: F401

dkim = pytest.importorskip("dkim")

MSG = (b"From: Alice <alice@sign.test>\r\nTo: bob@peer.test\r\n"
       b"Subject: verify me\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
       b"Message-ID: <v1@sign.test>\r\n\r\nHello,\r\n\r\nthe body.\r\n")


def ternctl(*args, stdin=None, conf=None):
    cmd = [TERNCTL_BIN, *(["-C", str(conf)] if conf else []), *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=60)


def keygen(tmp_path, domain, selector, *opts):
    """Runs `ternctl dkim keygen`; returns (key path, the dns_static line
    of the record it printed)."""
    out = tmp_path / f"{selector}.key"
    r = ternctl("dkim", "keygen", domain, selector, "--out", str(out), *opts)
    assert r.returncode == 0, r.stderr
    assert r.stderr.decode() == f"ternctl: private key written to {out}; publish this record:\n"
    m = re.fullmatch(rb'(\S+)\. IN TXT ((?:"[^"]*" ?)+)\n', r.stdout)
    assert m, r.stdout
    assert m.group(1).decode() == f"{selector}._domainkey.{domain}"
    return out, f"{m.group(1).decode()} TXT {m.group(2).decode().strip()}"


def dkimpy_key(pem):
    """The key as dkimpy takes it: PEM for RSA, the base64 of the raw
    32-byte seed for Ed25519 (the end of its 48-byte PKCS#8 DER)."""
    der = base64.b64decode(b"".join(pem.splitlines()[1:-1]))
    return base64.b64encode(der[-32:]) if len(der) == 48 else pem


def dkimpy_sign(msg, selector, domain, pem):
    key = dkimpy_key(pem)
    alg = b"rsa-sha256" if key is pem else b"ed25519-sha256"
    return dkim.sign(msg, selector, domain, key, signature_algorithm=alg) + msg


def txt_value(record_line):
    """The TXT value the record line publishes (strings joined)."""
    return "".join(re.findall(r'"([^"]*)"', record_line))


@pytest.mark.parametrize("kind,opts,k", [("ed25519", ("--type", "ed25519"), "ed25519"),
                                          ("rsa", (), "rsa"),
                                          ("rsa3072", ("--bits", "3072"), "rsa")])
def test_keygen_writes_key_and_prints_record(tmp_path, kind, opts, k):
    key, rec = keygen(tmp_path, "sign.test", kind, *opts)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    pem = key.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    value = txt_value(rec)
    assert value.startswith(f"v=DKIM1; k={k}; p=")
    # Every string fits a TXT character-string (RFC 1035 3.3.14).
    assert all(len(s) <= 255 for s in re.findall(r'"([^"]*)"', rec))
    # dkimpy signs with the key and verifies against the printed record.
    signed = dkimpy_sign(MSG, kind.encode(), b"sign.test", pem)
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: value.encode())
    if kind == "rsa3072":
        # 3072 bits: 582 octets of record, three strings.
        assert [len(s) for s in re.findall(r'"([^"]*)"', rec)] == [255, 255, 72]


def test_keygen_refuses_to_overwrite_and_bad_options(tmp_path):
    key, _ = keygen(tmp_path, "sign.test", "s1")
    before = key.read_bytes()
    r = ternctl("dkim", "keygen", "sign.test", "s1", "--out", str(key))
    assert r.returncode == 1 and b"File exists" in r.stderr
    assert key.read_bytes() == before
    assert ternctl("dkim", "keygen", "sign.test", "s2", "--type", "dsa").returncode == 2
    assert ternctl("dkim", "keygen", "sign.test", "s2", "--type", "ed25519",
                   "--bits", "2048").returncode == 2
    assert ternctl("dkim", "keygen", "sign.test").returncode == 2
    assert not (tmp_path / "s2.key").exists()


# ---- dkim verify

@pytest.fixture
def signed(tmp_path, unbound_server):  # noqa: F811
    """A message signed by dkimpy with an ed25519 and an rsa key whose
    records (from ternctl keygen) the local unbound serves."""
    ed, ed_rec = keygen(tmp_path, "sign.test", "ed", "--type", "ed25519")
    rsa, rsa_rec = keygen(tmp_path, "sign.test", "rs")
    srv = unbound_server([ed_rec, rsa_rec])
    msg = dkimpy_sign(MSG, b"rs", b"sign.test", rsa.read_bytes())
    msg = dkimpy_sign(msg, b"ed", b"sign.test", ed.read_bytes())
    return srv, msg


def verify_lines(r):
    return r.stdout.decode().splitlines()


def test_dkim_verify_pass(tmp_path, signed):
    srv, msg = signed
    r = ternctl("dkim", "verify", "--resolver", f"127.0.0.1:{srv.port}", stdin=msg)
    assert r.returncode == 0, r.stderr
    assert verify_lines(r) == [
        "signature 1: d=sign.test s=ed a=ed25519-sha256 result=pass bits=256",
        "signature 2: d=sign.test s=rs a=rsa-sha256 result=pass bits=2048",
    ]
    # A file with LF line ends (as saved by a mail client) reads the same.
    f = tmp_path / "m.eml"
    f.write_bytes(msg.replace(b"\r\n", b"\n"))
    r = ternctl("dkim", "verify", str(f), "--resolver", f"127.0.0.1@{srv.port}")
    assert r.returncode == 0 and len(verify_lines(r)) == 2, r.stdout


def test_dkim_verify_tampered_fails_with_reason(signed):
    srv, msg = signed
    bad = msg.replace(b"the body.", b"the b0dy.")
    r = ternctl("dkim", "verify", "--resolver", f"127.0.0.1:{srv.port}", stdin=bad)
    assert r.returncode == 1
    assert verify_lines(r) == [
        'signature 1: d=sign.test s=ed a=ed25519-sha256 result=fail bits=256 '
        'reason="body hash mismatch"',
        'signature 2: d=sign.test s=rs a=rsa-sha256 result=fail bits=2048 '
        'reason="body hash mismatch"',
    ]
    bad = msg.replace(b"Subject: verify me", b"Subject: verify you")
    r = ternctl("dkim", "verify", "--resolver", f"127.0.0.1:{srv.port}", stdin=bad)
    assert r.returncode == 1
    assert [re.sub(r" reason=.*", "", ln) for ln in verify_lines(r)] == [
        "signature 1: d=sign.test s=ed a=ed25519-sha256 result=fail bits=256",
        "signature 2: d=sign.test s=rs a=rsa-sha256 result=fail bits=2048",
    ]
    assert all('reason="signature' in ln for ln in verify_lines(r)), r.stdout


def test_dkim_verify_unsigned_and_missing_key(tmp_path, unbound_server):  # noqa: F811
    srv = unbound_server(["other.test TXT \"v=spf1 -all\""])
    r = ternctl("dkim", "verify", "--resolver", f"127.0.0.1:{srv.port}", stdin=MSG)
    assert r.returncode == 1 and verify_lines(r) == ["no DKIM-Signature"]
    key, _ = keygen(tmp_path, "sign.test", "gone", "--type", "ed25519")
    msg = dkimpy_sign(MSG, b"gone", b"sign.test", key.read_bytes())
    r = ternctl("dkim", "verify", "--resolver", f"127.0.0.1:{srv.port}", stdin=msg)
    assert r.returncode == 1
    [line] = verify_lines(r)
    assert line.startswith("signature 1: d=sign.test s=gone a=ed25519-sha256 result=permerror"), line
    assert ternctl("dkim", "verify", str(tmp_path / "nonexistent")).returncode == 8


def test_dkim_verify_resolver_from_config(tmp_path, signed):
    """Without --resolver the configuration's dns_server is used."""
    srv, msg = signed
    conf = tmp_path / "tern.conf"
    conf.write_text(f"listen 127.0.0.1:2525\ndns_server {srv.address}\n"
                    f"domain localhost {{ maildir mail/%u }}\n")
    r = ternctl("dkim", "verify", stdin=msg, conf=conf)
    assert r.returncode == 0 and len(verify_lines(r)) == 2, (r.stdout, r.stderr)
    conf.write_text("bogus\n")
    r = ternctl("dkim", "verify", stdin=msg, conf=conf)
    assert r.returncode == 8 and b'unknown directive "bogus"' in r.stderr


# ---- spf check

SPF_ZONE = [
    'pass.test TXT "v=spf1 ip4:192.0.2.0/24 include:inc.test -all"',
    'inc.test TXT "v=spf1 ip4:198.51.100.7 -all"',
    'fail.test TXT "v=spf1 ip4:192.0.2.1 exp=why.fail.test -all"',
    'why.fail.test TXT "%{i} may not send for %{d}"',
    'soft.test TXT "v=spf1 ~all"',
    'mx.helo.test TXT "v=spf1 a -all"',
    'mx.helo.test A 192.0.2.9',
    'broken.test TXT "v=spf1 ip4:300.1.1.1 -all"',
    'down.test SERVFAIL',
]


@pytest.fixture
def spf_dns(unbound_server):  # noqa: F811
    return unbound_server(SPF_ZONE)


def spf(srv, ip, helo, mailfrom):
    return ternctl("spf", "check", ip, helo, mailfrom, "--resolver", f"127.0.0.1:{srv.port}")


def test_spf_pass(spf_dns):
    r = spf(spf_dns, "192.0.2.9", "mx.helo.test", "alice@pass.test")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == (
        "mailfrom: pass\n"
        "  identity: alice@pass.test (domain pass.test)\n"
        "  record: v=spf1 ip4:192.0.2.0/24 include:inc.test -all\n"
        "  mechanism: ip4:192.0.2.0/24\n"
        "  lookups: 0 (void 0)\n"
        "helo: pass\n"
        "  identity: postmaster@mx.helo.test (domain mx.helo.test)\n"
        "  record: v=spf1 a -all\n"
        "  mechanism: a\n"
        "  lookups: 1 (void 0)\n")
    # Through the include: the term of the top record that matched.
    r = spf(spf_dns, "198.51.100.7", "x.example", "alice@pass.test")
    assert r.returncode == 0
    assert "  mechanism: include:inc.test\n  lookups: 1 (void 0)\n" in r.stdout.decode()


def test_spf_fail_with_explanation(spf_dns):
    r = spf(spf_dns, "203.0.113.5", "mx.helo.test", "bob@fail.test")
    assert r.returncode == 1
    out = r.stdout.decode()
    assert out.startswith("mailfrom: fail\n  identity: bob@fail.test (domain fail.test)\n"
                          "  record: v=spf1 ip4:192.0.2.1 exp=why.fail.test -all\n"
                          "  mechanism: -all\n"
                          "  explanation: 203.0.113.5 may not send for fail.test\n"), out
    assert "helo: fail\n" in out


def test_spf_softfail_neutral_none_errors(spf_dns):
    r = spf(spf_dns, "203.0.113.5", "mx.helo.test", "x@soft.test")
    assert r.returncode == 3 and r.stdout.startswith(b"mailfrom: softfail\n")
    assert b"  mechanism: ~all\n" in r.stdout
    r = spf(spf_dns, "203.0.113.5", "mx.helo.test", "x@nothing.test")
    assert r.returncode == 5 and r.stdout.startswith(b"mailfrom: none\n")
    assert b"  problem: nothing.test: no SPF record\n" in r.stdout
    r = spf(spf_dns, "203.0.113.5", "mx.helo.test", "x@broken.test")
    assert r.returncode == 7 and r.stdout.startswith(b"mailfrom: permerror\n")
    r = spf(spf_dns, "203.0.113.5", "mx.helo.test", "x@down.test")
    assert r.returncode == 6 and r.stdout.startswith(b"mailfrom: temperror\n")
    # The null sender: the HELO identity decides (RFC 7208 2.4).
    r = spf(spf_dns, "192.0.2.9", "mx.helo.test", "<>")
    assert r.returncode == 0
    assert r.stdout.startswith(b"mailfrom: pass\n  identity: <> (postmaster@HELO) "
                               b"(domain mx.helo.test)\n")


def test_spf_usage_errors():
    assert ternctl("spf", "check", "not-an-ip", "h.test", "a@b.test").returncode == 2
    assert ternctl("spf", "check", "192.0.2.1", "h.test").returncode == 2
    r = ternctl("spf", "check", "192.0.2.1", "h.test", "a@b.test", "--resolver")
    assert r.returncode == 2 and b"usage: ternctl" in r.stderr


def test_help_lists_the_commands():
    r = ternctl("--help")
    assert r.returncode == 0
    for words in (b"dkim keygen DOMAIN SELECTOR", b"dkim verify [FILE]",
                  b"spf check IP HELO MAILFROM", b"--resolver HOST[:PORT]",
                  b"dmarc check [FILE] --ip IP --helo NAME --mail-from ADDR"):
        assert words in r.stdout, words


# ---- dmarc check

DMARC_ZONE = [
    # SPF: 192.0.2.0/24 may send for every domain here.
    'dpass.test TXT "v=spf1 ip4:192.0.2.0/24 -all"',
    '_dmarc.dpass.test TXT "v=DMARC1; p=reject"',
    'reject.test TXT "v=spf1 ip4:192.0.2.0/24 -all"',
    '_dmarc.reject.test TXT "v=DMARC1; p=reject; pct=100"',
    'nodmarc.test TXT "v=spf1 ip4:192.0.2.0/24 -all"',
    # Alignment: mail comes from a subdomain of the From domain.
    'bounce.rel.test TXT "v=spf1 ip4:192.0.2.0/24 -all"',
    '_dmarc.rel.test TXT "v=DMARC1; p=reject"',
    'bounce.strict.test TXT "v=spf1 ip4:192.0.2.0/24 -all"',
    '_dmarc.strict.test TXT "v=DMARC1; p=reject; adkim=s; aspf=s"',
    # Organizational domain: no record at news.org.test, sp= at org.test.
    'news.org.test TXT "v=spf1 -all"',
    '_dmarc.org.test TXT "v=DMARC1; p=reject; sp=quarantine"',
    'mx.helo.test A 192.0.2.9',
    'mx.helo.test TXT "v=spf1 a -all"',
    # iprev (addresses outside the reserved ranges, whose reverse zones
    # libunbound answers itself): .9 leads back, .10 names a host elsewhere.
    '9.0.0.16.in-addr.arpa PTR relay.iprev.test',
    'relay.iprev.test A 16.0.0.9',
    '10.0.0.16.in-addr.arpa PTR liar.iprev.test',
    'liar.iprev.test A 16.0.0.99',
]


def dmsg(from_addr):
    return (f"From: Alice <{from_addr}>\r\nTo: bob@peer.test\r\n"
            f"Subject: dmarc\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <d1@x.test>\r\n\r\nHello.\r\n").encode()


@pytest.fixture
def dmarc_env(tmp_path, unbound_server):  # noqa: F811
    """The zone above plus one ed25519 key per signing domain, and a
    configuration naming the resolver and the authserv-id."""
    keys, recs = {}, []
    for d in ("dpass.test", "sub.rel.test", "sub.strict.test", "strict.test"):
        key, rec = keygen(tmp_path, d, "k" + d.replace(".", ""), "--type", "ed25519")
        keys[d] = key.read_bytes()
        recs.append(rec)
    srv = unbound_server(DMARC_ZONE + recs)
    conf = tmp_path / "tern.conf"
    conf.write_text(f"listen 127.0.0.1:2525\nhostname mx.tern.test\n"
                    f"dns_server {srv.address}\n"
                    f"domain localhost {{ maildir mail/%u }}\n")
    return srv, conf, keys


def sign_as(msg, keys, d):
    return dkimpy_sign(msg, ("k" + d.replace(".", "")).encode(), d.encode(), keys[d])


def dmarc_check(conf, msg, ip, mailfrom, helo="mx.helo.test", *extra):
    return ternctl("dmarc", "check", "--ip", ip, "--helo", helo, "--mail-from", mailfrom,
                   *extra, stdin=msg, conf=conf)


def dmarc_section(r):
    """The lines from "dmarc:" up to the A-R field."""
    out = r.stdout.decode()
    return out[out.index("dmarc: "):out.index("Authentication-Results:")].splitlines()


def ar_field(r):
    out = r.stdout.decode()
    return out[out.index("Authentication-Results:"):]


def test_dmarc_check_reports_an_arc_chain(tmp_path, unbound_server):  # noqa: F811
    # A message a list (arc.test, RSA: ARC's only algorithm) sealed with
    # dkimpy: the A-R field says arc=pass; its body changed afterwards, fail.
    key, rec = keygen(tmp_path, "arc.test", "karc")
    srv = unbound_server(DMARC_ZONE + [rec])
    conf = tmp_path / "tern.conf"
    conf.write_text(f"listen 127.0.0.1:2525\nhostname mx.tern.test\n"
                    f"dns_server {srv.address}\ndomain localhost {{ maildir mail/%u }}\n")
    msg = b"Authentication-Results: list.arc.test; spf=pass smtp.mailfrom=dpass.test\r\n" + \
        dmsg("alice@dpass.test")
    sealed = b"".join(dkim.arc_sign(msg, b"karc", b"arc.test", key.read_bytes(),
                                    b"list.arc.test")) + msg
    r = dmarc_check(conf, sealed, "192.0.2.9", "alice@dpass.test")
    assert "arc: pass, 1 instance(s) (chain verified)\n" in r.stdout.decode(), r.stdout
    assert "\tarc=pass (i=1) smtp.remote-ip=192.0.2.9 header.oldest-pass=0;\n" in ar_field(r)
    r = dmarc_check(conf, sealed.replace(b"Hello.", b"Hello!"), "192.0.2.9", "alice@dpass.test")
    assert "arc: fail, 1 instance(s) (newest ARC-Message-Signature did not verify)\n" in \
        r.stdout.decode(), r.stdout
    assert "\tarc=fail (i=1) reason=" in ar_field(r)
    # No ARC set: no arc line, no arc= result.
    r = dmarc_check(conf, msg, "192.0.2.9", "alice@dpass.test")
    out = r.stdout.decode()
    assert r.returncode == 0 and "\narc: " not in out and "\tarc=" not in out, out


def test_dmarc_check_pass(dmarc_env):
    srv, conf, keys = dmarc_env
    msg = sign_as(dmsg("alice@dpass.test"), keys, "dpass.test")
    r = dmarc_check(conf, msg, "192.0.2.9", "alice@dpass.test")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert out.startswith(
        "spf mailfrom: pass\n"
        "  identity: alice@dpass.test (domain dpass.test)\n"
        "  record: v=spf1 ip4:192.0.2.0/24 -all\n"
        "  mechanism: ip4:192.0.2.0/24\n"
        "  lookups: 0 (void 0)\n"
        "spf helo: pass\n"
        "  identity: postmaster@mx.helo.test (domain mx.helo.test)\n"
        "  record: v=spf1 a -all\n"
        "  mechanism: a\n"
        "  lookups: 1 (void 0)\n"
        "dkim signature 1: d=dpass.test s=kdpasstest a=ed25519-sha256 result=pass bits=256\n"
        "dmarc: pass\n"), out
    assert dmarc_section(r) == [
        "dmarc: pass",
        "  from domain: dpass.test",
        "  record: _dmarc.dpass.test (From domain): v=DMARC1; p=reject",
        "  policy: reject (p=reject sp=reject pct=100; p= applies to the From domain)",
        "  spf alignment: relaxed, mailfrom domain dpass.test, spf pass: aligned",
        "  dkim alignment: relaxed, signature 1 d=dpass.test, dkim pass: aligned",
        "  disposition: none",
        "  reason: record at _dmarc.dpass.test: policy reject, disposition none; "
        "spf dpass.test aligned; dkim aligned d=dpass.test",
    ]
    b = re.search(rb"\bb=([A-Za-z0-9+/]{8})", msg).group(1).decode()
    # "/" is a tspecial (RFC 2045 5.1): such a value is a quoted-string.
    b = f'"{b}"' if "/" in b else b
    # The field the daemon would prepend: the configuration's hostname is the authserv-id.
    assert ar_field(r) == (
        "Authentication-Results: mx.tern.test;\n"
        "\tspf=pass smtp.mailfrom=alice@dpass.test;\n"
        "\tspf=pass smtp.helo=mx.helo.test;\n"
        f"\tdkim=pass header.d=dpass.test header.s=kdpasstest header.b={b};\n"
        "\tdmarc=pass (p=reject sp=reject dis=none) header.from=dpass.test\n"
        "\tpolicy.dmarc=none;\n"
        # 2.0.192.in-addr.arpa is one of libunbound's own (empty) zones
        "\tiprev=permerror policy.iprev=192.0.2.9\n")
    # A file, and --resolver instead of the configuration's dns_server.
    f = conf.parent / "m.eml"
    f.write_bytes(msg)
    r2 = ternctl("dmarc", "check", str(f), "--ip", "192.0.2.9", "--helo", "mx.helo.test",
                 "--mail-from", "<alice@dpass.test>", "--resolver", f"127.0.0.1:{srv.port}")
    assert r2.returncode == 0, r2.stderr
    assert dmarc_section(r2) == dmarc_section(r)


def test_dmarc_check_fail_reject(dmarc_env):
    """SPF fails and there is no signature: p=reject applies."""
    _, conf, _ = dmarc_env
    r = dmarc_check(conf, dmsg("ceo@reject.test"), "203.0.113.5", "ceo@reject.test")
    assert r.returncode == 1, r.stdout
    assert r.stdout.decode().startswith("spf mailfrom: fail\n")
    assert "dkim: no DKIM-Signature\n" in r.stdout.decode()
    assert dmarc_section(r) == [
        "dmarc: fail",
        "  from domain: reject.test",
        "  record: _dmarc.reject.test (From domain): v=DMARC1; p=reject; pct=100",
        "  policy: reject (p=reject sp=reject pct=100; p= applies to the From domain)",
        "  spf alignment: relaxed, mailfrom domain reject.test, spf fail: "
        "does not count (not pass)",
        "  dkim alignment: no signature",
        "  disposition: reject",
        "  reason: record at _dmarc.reject.test: policy reject, disposition reject; "
        "spf reject.test not aligned or not pass; dkim no aligned passing signature",
    ]
    assert ar_field(r) == (
        "Authentication-Results: mx.tern.test;\n"
        "\tspf=fail smtp.mailfrom=ceo@reject.test;\n"
        "\tspf=fail smtp.helo=mx.helo.test;\n"
        "\tdkim=none;\n"
        "\tdmarc=fail (p=reject sp=reject dis=reject) header.from=reject.test\n"
        "\tpolicy.dmarc=reject;\n"
        "\tiprev=permerror policy.iprev=203.0.113.5\n")


def test_dmarc_check_no_record(dmarc_env):
    _, conf, _ = dmarc_env
    r = dmarc_check(conf, dmsg("x@nodmarc.test"), "192.0.2.9", "x@nodmarc.test")
    assert r.returncode == 5, r.stdout
    assert dmarc_section(r) == [
        "dmarc: none",
        "  from domain: nodmarc.test",
        "  record: none",
        "  spf alignment: relaxed, mailfrom domain nodmarc.test, spf pass: aligned",
        "  dkim alignment: no signature",
        "  disposition: none",
        "  reason: no DMARC record for nodmarc.test",
    ]
    assert "\tdmarc=none header.from=nodmarc.test;\n" in ar_field(r)


@pytest.mark.parametrize("ip,field", [
    ("16.0.0.9", "\tiprev=pass (relay.iprev.test) policy.iprev=16.0.0.9\n"),
    ("16.0.0.10", "\tiprev=fail policy.iprev=16.0.0.10\n"),
    ("16.0.0.11", "\tiprev=permerror policy.iprev=16.0.0.11\n"),
])
def test_dmarc_check_iprev(dmarc_env, ip, field):
    """RFC 8601 3: the client address's PTR name must lead back to it."""
    _, conf, _ = dmarc_env
    r = dmarc_check(conf, dmsg("x@nodmarc.test"), ip, "x@nodmarc.test")
    assert ar_field(r).endswith(field), ar_field(r)


def test_dmarc_check_relaxed_and_strict_alignment(dmarc_env):
    """Mail from bounce.D, signed by sub.D, From D: aligned under relaxed
    (same organizational domain), not under strict (adkim=s aspf=s)."""
    _, conf, keys = dmarc_env
    msg = sign_as(dmsg("alice@rel.test"), keys, "sub.rel.test")
    r = dmarc_check(conf, msg, "192.0.2.9", "x@bounce.rel.test")
    assert r.returncode == 0, r.stdout
    assert dmarc_section(r)[4:6] == [
        "  spf alignment: relaxed, mailfrom domain bounce.rel.test, spf pass: aligned",
        "  dkim alignment: relaxed, signature 1 d=sub.rel.test, dkim pass: aligned",
    ]
    msg = sign_as(dmsg("alice@strict.test"), keys, "sub.strict.test")
    r = dmarc_check(conf, msg, "192.0.2.9", "x@bounce.strict.test")
    assert r.returncode == 1, r.stdout
    assert dmarc_section(r)[:7] == [
        "dmarc: fail",
        "  from domain: strict.test",
        "  record: _dmarc.strict.test (From domain): v=DMARC1; p=reject; adkim=s; aspf=s",
        "  policy: reject (p=reject sp=reject pct=100; p= applies to the From domain)",
        "  spf alignment: strict, mailfrom domain bounce.strict.test, spf pass: not aligned",
        "  dkim alignment: strict, signature 1 d=sub.strict.test, dkim pass: not aligned",
        "  disposition: reject",
    ]
    # A second signature by the From domain itself aligns strictly.
    msg = sign_as(msg, keys, "strict.test")
    r = dmarc_check(conf, msg, "192.0.2.9", "x@bounce.strict.test")
    assert r.returncode == 0, r.stdout
    assert dmarc_section(r)[5:8] == [
        "  dkim alignment: strict, signature 1 d=strict.test, dkim pass: aligned",
        "  dkim alignment: strict, signature 2 d=sub.strict.test, dkim pass: not aligned",
        "  disposition: none",
    ]


def test_dmarc_check_org_domain_sp(dmarc_env):
    """No record at news.org.test: the one at org.test applies, with sp=."""
    _, conf, _ = dmarc_env
    r = dmarc_check(conf, dmsg("n@news.org.test"), "192.0.2.9", "n@news.org.test")
    assert r.returncode == 1, r.stdout
    assert dmarc_section(r)[:7] == [
        "dmarc: fail",
        "  from domain: news.org.test",
        "  record: _dmarc.org.test (organizational domain): v=DMARC1; p=reject; sp=quarantine",
        "  policy: quarantine (p=reject sp=quarantine pct=100; "
        "sp= applies below the organizational domain)",
        "  spf alignment: relaxed, mailfrom domain news.org.test, spf fail: "
        "does not count (not pass)",
        "  dkim alignment: no signature",
        "  disposition: quarantine",
    ]
    assert "\tdmarc=fail (p=reject sp=quarantine dis=quarantine) header.from=news.org.test\n" \
        in ar_field(r)


def test_dmarc_check_permerror_and_usage(dmarc_env):
    _, conf, _ = dmarc_env
    msg = b"To: bob@peer.test\r\nSubject: no from\r\n\r\nHi.\r\n"
    r = dmarc_check(conf, msg, "192.0.2.9", "<>")
    assert r.returncode == 7, r.stdout
    assert dmarc_section(r) == ["dmarc: permerror", "  disposition: none",
                                "  reason: no From field"]
    # <>: SPF checks postmaster@HELO, and DMARC aligns the HELO name.
    r = dmarc_check(conf, dmsg("a@helo.test"), "192.0.2.9", "<>")
    assert r.stdout.decode().startswith(
        "spf mailfrom: pass\n  identity: <> (postmaster@HELO) (domain mx.helo.test)\n")
    assert "  spf alignment: relaxed, helo domain mx.helo.test, spf pass: aligned\n" \
        in r.stdout.decode()
    assert ternctl("dmarc", "check", "--ip", "192.0.2.9", "--helo", "h.test").returncode == 2
    r = ternctl("dmarc", "check", "--ip", "nope", "--helo", "h", "--mail-from", "a@b.test")
    assert r.returncode == 2 and b"is not an IP address" in r.stderr
    r = ternctl("dmarc", "verify", "--ip", "192.0.2.9")
    assert r.returncode == 2 and b"usage: ternctl" in r.stderr
