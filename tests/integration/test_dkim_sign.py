"""DKIM signing of outbound mail (src/deliver/signer.c, the mta's hook):
keys from `ternctl dkim keygen`, mail submitted with AUTH (or by
tern-sendmail) and relayed to a peer (a second tern, with CHUNKING or,
through a relay that hides it, with DATA) is signed for its From: domain
and verifies with dkimpy and with `ternctl dkim verify` against a local
unbound publishing the printed records, and with OpenDKIM's library
(opendkim_ns.py); mail relayed from the Internet
(the mx listener) is not signed; `tern -n` checks the key files."""

import re
import subprocess
from pathlib import Path

import pytest

from conftest import TERN_BIN, TERNCTL_BIN
from dns_fixture import unbound_server  # noqa: F401
from test_outbound import peer_tern, relays, wait_log  # noqa: F401
from test_ternctl_auth import keygen, ternctl, txt_value
from tls_helpers import auth_block, submission_client, tls_block

dkim = pytest.importorskip("dkim")

# Beside ternctl: TERN_BIN may be a wrapper (scripts/valgrind.sh).
SENDMAIL = str(Path(TERNCTL_BIN).parent / "tern-sendmail")
LOGIN = "alice@example.test"


def message(subject, sender=LOGIN):
    return (f"From: Alice <{sender}>\r\nTo: bob@peer.test\r\nSubject: {subject}\r\n"
            f"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@example.test>\r\n\r\n"
            f"Hello Bob,\r\n.a line with a dot\r\n\r\nbye\r\n").encode()


class Keys:
    """Keys made by ternctl for example.test; records as published."""

    def __init__(self, tmp_path, *kinds):
        self.files, self.records = {}, {}
        for kind in kinds:
            opts = ("--type", "ed25519") if kind == "ed" else ()
            self.files[kind], self.records[kind] = keygen(tmp_path, "example.test", kind, *opts)

    def config(self):
        return "".join(f"dkim_sign example.test {k} {f}\n" for k, f in self.files.items())

    def dns(self, name, timeout=5):
        """dkimpy's DNS: the published TXT value for name."""
        name = (name.decode() if isinstance(name, bytes) else name).rstrip(".")
        for rec in self.records.values():
            if rec.split()[0] == name:
                return txt_value(rec).encode()
        return None


def signing_pair(tern_factory, tls_certs, password_hashes, keys, relays=None, extra="",  # noqa: F811
                 limits=None):
    """B: a tern for peer.test; A: submission with AUTH, the keys, mail for
    peer.test routed to B (through a relay without CHUNKING if given), the
    alias fwd@localhost -> bob@peer.test."""
    b = peer_tern(tern_factory, limits=limits)
    port = b.port
    if relays:
        from conftest import free_port
        port = free_port()
        relays("127.0.0.1", port, b.port)
    text = (tls_block(tls_certs) + auth_block() + "retry_interval 1s\n" +
            f"route peer.test {{ via 127.0.0.1:{port} }}\n" + keys.config() + extra)
    a = tern_factory(listeners={"sub": "mode submission"}, passwords=password_hashes,
                     aliases={"fwd": "bob@peer.test"}, extra=text, limits=limits)
    return a, b


def submit_auth(a, tls_certs, msg, login=LOGIN, sender=LOGIN):
    c = submission_client(a, tls_certs, user=login)
    qid = c.deliver(sender, ["bob@peer.test"], msg)
    c.cmd("QUIT").check(221)
    return qid


def received_by_b(b, n=1):
    """B's stored messages, without B's own Return-Path/Delivered-To."""
    got = b.wait_for_messages("bob", "peer.test", n=n)
    return [re.sub(rb"\AReturn-Path: [^\r]*\r\nDelivered-To: [^\r]*\r\n", b"", m) for m in got]


def signatures(msg):
    """The DKIM-Signature fields (unfolded), in order."""
    head = msg.split(b"\r\n\r\n", 1)[0]
    fields = re.findall(rb"^DKIM-Signature:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.M | re.I)
    return [re.sub(rb"\s+", b"", f).decode() for f in fields]


def tags(sig):
    return dict(t.split("=", 1) for t in sig.split(";") if t)


def dkimpy_verify_all(msg, keys):
    """Each signature checked by dkimpy on its own."""
    def one(i):
        try:
            return dkim.DKIM(msg).verify(idx=i, dnsfunc=keys.dns)
        except dkim.ValidationError:
            return False
    return [one(i) for i in range(len(signatures(msg)))]


@pytest.mark.parametrize("kind", ["ed", "rsa"])
def test_submission_signed_and_verified(tmp_path, tern_factory, tls_certs, password_hashes,
                                        unbound_server, kind):  # noqa: F811
    keys = Keys(tmp_path, kind)
    a, b = signing_pair(tern_factory, tls_certs, password_hashes, keys)
    msg = message(f"signed {kind}")
    qid = submit_auth(a, tls_certs, msg)
    wait_log(a, rf"event=removed id={qid} delivered=1 failed=0")
    assert re.search(rf"event=dkim-signed id={qid} domain=example.test\b", a.log())
    [got] = received_by_b(b)
    assert got.endswith(msg)
    [sig] = signatures(got)
    t = tags(sig)
    assert (t["v"], t["d"], t["s"], t["c"]) == ("1", "example.test", kind, "relaxed/relaxed")
    assert t["a"] == ("ed25519-sha256" if kind == "ed" else "rsa-sha256")
    # Over-signing: each of these signed once more than it occurs.
    h = [x.lower() for x in t["h"].split(":")]
    for name, n in (("from", 2), ("subject", 2), ("date", 2), ("to", 2),
                    ("message-id", 2), ("cc", 1)):
        assert h.count(name) == n, (name, h)
    assert "received" not in h
    assert dkimpy_verify_all(got, keys) == [True]
    # Tampering breaks it (the check can fail).
    assert dkimpy_verify_all(got.replace(b"Hello Bob", b"Hello Eve"), keys) == [False]
    # ternctl dkim verify against the published records.
    srv = unbound_server(list(keys.records.values()))
    r = ternctl("dkim", "verify", "--resolver", srv.address.replace("@", ":"), stdin=got)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.decode().startswith(f"signature 1: d=example.test s={kind} a={t['a']} "
                                        f"result=pass")


def check_dual(a, b, keys, tls_certs):
    msg = message("dual")
    qid = submit_auth(a, tls_certs, msg)
    wait_log(a, rf"event=removed id={qid} delivered=1 failed=0")
    [got] = received_by_b(b)
    assert got.endswith(msg)
    sigs = signatures(got)
    assert [(tags(s)["s"], tags(s)["a"]) for s in sigs] == [
        ("ed", "ed25519-sha256"), ("rsa", "rsa-sha256")]
    assert dkimpy_verify_all(got, keys) == [True, True]
    return qid


def test_dual_signing_bdat(tmp_path, tern_factory, tls_certs, password_hashes):
    """Two keys for the domain: two signatures, both valid. B offers
    CHUNKING: BDAT's size counts the added fields (else B would cut the
    message short and read the rest as commands)."""
    keys = Keys(tmp_path, "ed", "rsa")
    a, b = signing_pair(tern_factory, tls_certs, password_hashes, keys)
    qid = check_dual(a, b, keys, tls_certs)
    assert not re.search(r"event=(deferred|bounced) id=" + qid, a.log())


def test_dual_signing_data(tmp_path, tern_factory, tls_certs, password_hashes, relays):  # noqa: F811
    """The same with DATA (the relay hides CHUNKING): SIZE= includes the
    fields, and they are dot-stuffed with the content."""
    keys = Keys(tmp_path, "ed", "rsa")
    a, b = signing_pair(tern_factory, tls_certs, password_hashes, keys, relays=relays)
    check_dual(a, b, keys, tls_certs)


def test_internet_mail_not_signed(tmp_path, tern_factory, tls_certs, password_hashes):
    """An alias forwards mail that came in on the mx listener: it leaves
    unsigned even with a From: of a signing domain, and from a trusted address."""
    keys = Keys(tmp_path, "ed")
    a, b = signing_pair(tern_factory, tls_certs, password_hashes, keys,
                        extra="trusted_networks 127.0.0.0/8\n")
    c = a.client()
    c.ehlo("mx.elsewhere.example")
    msg = message("from outside")
    qid = c.deliver("someone@elsewhere.example", ["fwd@localhost"], msg)
    c.cmd("QUIT").check(221)
    wait_log(a, rf"event=removed id={qid} delivered=1 failed=0")
    [got] = received_by_b(b)
    assert got.endswith(msg) and signatures(got) == []
    assert "event=dkim-signed" not in a.log()


def test_trusted_submission_signed(tmp_path, tern_factory, tls_certs, password_hashes):
    """A client of trusted_networks (127.0.0.1) on the submission listener,
    without AUTH: its mail is ours, so signed (the envelope's proto says
    "/sub"); the same client on the mx listener is not (above)."""
    keys = Keys(tmp_path, "ed")
    a, b = signing_pair(tern_factory, tls_certs, password_hashes, keys,
                        extra="trusted_networks 127.0.0.0/8\n")
    msg = message("trusted submission")
    c = submission_client(a, tls_certs)
    qid = c.deliver(LOGIN, ["bob@peer.test"], msg)
    c.cmd("QUIT").check(221)
    wait_log(a, rf"event=removed id={qid} delivered=1 failed=0")
    assert re.search(rf"event=dkim-signed id={qid} domain=example.test\b", a.log())
    [got] = received_by_b(b)
    assert got.endswith(msg)
    assert b"with ESMTPS id " in got    # no AUTH: not ESMTPSA
    assert [tags(s)["s"] for s in signatures(got)] == ["ed"]
    assert dkimpy_verify_all(got, keys) == [True]


@pytest.mark.skipif(not Path(SENDMAIL).exists(), reason=f"{SENDMAIL} not built")
def test_local_mail_signed(tmp_path, tern_factory, tls_certs, password_hashes):
    """tern-sendmail's mail (client "local") is signed."""
    keys = Keys(tmp_path, "ed")
    a, b = signing_pair(tern_factory, tls_certs, password_hashes, keys)
    msg = message("from cron").replace(b"\r\n", b"\n")
    r = subprocess.run([SENDMAIL, "-C", str(a.conf), "-f", LOGIN, "bob@peer.test"],
                       input=msg, capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    wait_log(a, r"event=dkim-signed id=[0-9a-f]{16} domain=example.test")
    [got] = received_by_b(b)
    assert b"Subject: from cron\r\n" in got
    assert [tags(s)["s"] for s in signatures(got)] == ["ed"]
    assert dkimpy_verify_all(got, keys) == [True]


def test_other_from_domain_not_signed(tmp_path, tern_factory, tls_certs, password_hashes):
    """Keys for example.test only: mail From: alice@localhost leaves unsigned."""
    keys = Keys(tmp_path, "ed")
    a, b = signing_pair(tern_factory, tls_certs, password_hashes, keys)
    msg = message("unsigned", sender="alice@localhost")
    qid = submit_auth(a, tls_certs, msg, login="alice", sender="alice@localhost")
    wait_log(a, rf"event=removed id={qid} delivered=1 failed=0")
    [got] = received_by_b(b)
    assert got.endswith(msg) and signatures(got) == []


def test_headers_and_canonicalization_options(tmp_path, tern_factory, tls_certs,
                                              password_hashes):
    keys = Keys(tmp_path, "rsa")
    a, b = signing_pair(tern_factory, tls_certs, password_hashes, keys,
                        extra="dkim_headers From:Subject\ndkim_canonicalization simple/simple\n")
    qid = submit_auth(a, tls_certs, message("options"))
    wait_log(a, rf"event=removed id={qid} delivered=1 failed=0")
    [got] = received_by_b(b)
    [sig] = signatures(got)
    assert tags(sig)["c"] == "simple/simple"
    assert [x.lower() for x in tags(sig)["h"].split(":")] == ["from", "from", "subject", "subject"]
    assert dkimpy_verify_all(got, keys) == [True]


def test_large_signed_beside_small(tmp_path, tern_factory, tls_certs, password_hashes):
    """A 20 MiB message is signed off the mta's event loop (its signing
    thread) while small messages, signed and merely relayed, go out: all
    arrive, each signed one verifies with dkimpy, the relayed ones carry
    no signature."""
    keys = Keys(tmp_path, "ed")
    a, b = signing_pair(tern_factory, tls_certs, password_hashes, keys,
                        limits={"message_size": "30M"})
    line = b"x" * 76 + b"\r\n"
    big = message("big") + line * (20 * 1024 * 1024 // len(line))
    qids = {"big": submit_auth(a, tls_certs, big)}
    for i in range(4):
        qids[f"small signed {i}"] = submit_auth(a, tls_certs, message(f"small signed {i}"))
    for i in range(3):
        c = a.client()
        c.ehlo("mx.elsewhere.example")
        qids[f"relayed {i}"] = c.deliver("someone@elsewhere.example", ["fwd@localhost"],
                                         message(f"relayed {i}"))
        c.cmd("QUIT").check(221)
    for qid in qids.values():
        wait_log(a, rf"event=removed id={qid} delivered=1 failed=0", timeout=60)
    got = {re.search(rb"^Subject: ([^\r]*)\r\n", m, re.M).group(1).decode(): m
           for m in b.wait_for_messages("bob", "peer.test", n=8, timeout=30)}
    assert sorted(got) == sorted(qids)
    assert got["big"].endswith(big) and len(got["big"]) > 20 * 1024 * 1024
    for subject, m in got.items():
        if subject.startswith("relayed"):
            assert signatures(m) == [], subject
        else:
            assert re.search(rf"event=dkim-signed id={qids[subject]} domain=example.test\b",
                             a.log()), subject
            assert dkimpy_verify_all(m, keys) == [True], subject
    assert "event=dkim-sign-failed" not in a.log()


# ---- configuration

def check_conf(tmp_path, text):
    conf = tmp_path / "t.conf"
    conf.write_text("listen 127.0.0.1:2525\ndomain localhost { maildir mail/%u }\n" + text)
    r = subprocess.run([TERN_BIN, "-n", "-f", str(conf)], capture_output=True, timeout=20)
    return r.returncode, (r.stdout + r.stderr).decode().strip()


def test_config_checks_keys(tmp_path):
    keys = Keys(tmp_path, "ed", "rsa")
    conf = tmp_path / "t.conf"
    assert check_conf(tmp_path, keys.config()) == (0, f"tern: configuration {conf} is valid")
    rc, out = check_conf(tmp_path, f"dkim_sign example.test gone {tmp_path}/missing.key\n")
    assert rc == 1 and out.startswith(f"{conf}:3: dkim_sign: {tmp_path}/missing.key: "), out
    (tmp_path / "junk.key").write_text("not a key\n")
    rc, out = check_conf(tmp_path, "dkim_sign example.test junk junk.key\n")
    assert rc == 1 and out.startswith(f"{conf}:3: dkim_sign: {tmp_path}/junk.key: "), out
    rc, out = check_conf(tmp_path, keys.config() + f"dkim_sign example.test third {keys.files['ed']}\n")
    assert (rc, out) == (1, f"{conf}:5: dkim_sign: at most 2 keys per domain (example.test)")
    rc, out = check_conf(tmp_path, f"dkim_sign example.test b_d {keys.files['ed']}\n")
    assert (rc, out) == (1, f'{conf}:3: dkim_sign: bad selector "b_d"')
    rc, out = check_conf(tmp_path, f"dkim_sign example.test ed {keys.files['ed']}\n" * 2)
    assert (rc, out) == (1, f"{conf}:4: dkim_sign: example.test ed declared twice (first at line 3)")
    rc, out = check_conf(tmp_path, "dkim_headers From::To\n")
    assert (rc, out) == (1, f'{conf}:3: dkim_headers: empty header name in "From::To"')
    rc, out = check_conf(tmp_path, "dkim_canonicalization loose/simple\n")
    assert (rc, out) == (1, f'{conf}:3: dkim_canonicalization: "loose/simple" is not '
                            f'relaxed|simple[/relaxed|simple]')


# ---- OpenDKIM as a second, independent verifier (opendkim_ns.py says how)

OPENDKIM_NS = Path(__file__).parent / "opendkim_ns.py"


def opendkim_verify(workdir, msg, records):
    """libopendkim's verdict on msg with records served to it on port 53
    in a namespace of its own: (exit status, its status line)."""
    r = subprocess.run(["unshare", "-m", "-n", "/usr/bin/python3", str(OPENDKIM_NS),
                        str(workdir), *records], input=msg, capture_output=True, timeout=60)
    return r.returncode, r.stdout.decode().strip() or r.stderr.decode()[-300:]


def opendkim_usable():
    try:
        import ctypes
        ctypes.CDLL("libopendkim.so.11")
    except OSError:
        return "libopendkim not installed (opendkim-tools, scripts/deps.sh)"
    if subprocess.run(["unshare", "-m", "-n", "true"], capture_output=True).returncode != 0:
        return "cannot make a mount+network namespace (needs root)"
    return None


@pytest.mark.parametrize("kind", ["ed", "rsa"])
def test_signed_verifies_with_opendkim(tmp_path, tern_factory, tls_certs, password_hashes,
                                       kind):
    """The issue's oracle: what tern signs verifies with OpenDKIM; a
    changed body does not."""
    why = opendkim_usable()
    if why:
        pytest.skip(why)
    keys = Keys(tmp_path, kind)
    a, b = signing_pair(tern_factory, tls_certs, password_hashes, keys)
    qid = submit_auth(a, tls_certs, message(f"opendkim {kind}"))
    wait_log(a, rf"event=removed id={qid} delivered=1 failed=0")
    [got] = received_by_b(b)
    [sig] = signatures(got)
    assert tags(sig)["a"] == ("ed25519-sha256" if kind == "ed" else "rsa-sha256")
    records = list(keys.records.values())
    assert opendkim_verify(tmp_path, got, records) == (0, "Success -")
    assert opendkim_verify(tmp_path, got.replace(b"Hello Bob", b"Hello Eve"),
                           records) == (1, "Bad signature -")
