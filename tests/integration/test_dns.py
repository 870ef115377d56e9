"""DNS through a real unbound: build/tests/test_unbound (src/dns/unbound.c,
sync and async, and mx_resolve over it) against the dns_fixture server."""

import os
import struct
import subprocess
from pathlib import Path

from dns_fixture import unbound_server  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("TERN_BIN", REPO / "build" / "tern")).parent
TEST_UNBOUND = os.environ.get("TERN_TEST_UNBOUND", str(BUILD / "tests" / "test_unbound"))

# The zone tests/unit/test_unbound.c expects.
ZONE = [
    "example.test MX 10 mx1.example.test",
    "example.test MX 20 mx2.example.test",
    "mx1.example.test A 127.0.0.2",
    "mx1.example.test AAAA ::2",
    "mx2.example.test A 127.0.0.3",
    "null.test MX 0 .",
    'txt.test TXT "v=spf1 " "-all"',
    "alias.test CNAME mx1.example.test",
    "9.8.7.6.in-addr.arpa PTR mx1.example.test",
    "_25._tcp.mx1.example.test TLSA 3 1 1 00ff",
    "fail.test SERVFAIL",
    "slow.test TIMEOUT",
]


def rcode_an(msg):
    flags, _, an = struct.unpack(">HHH", msg[2:8])
    return flags & 0xF, an


def test_server_answers(unbound_server):
    srv = unbound_server(ZONE)
    assert rcode_an(srv.query("example.test", "MX")) == (0, 2)
    assert rcode_an(srv.query("null.test", "MX")) == (0, 1)
    assert rcode_an(srv.query("example.test", "A")) == (0, 0)
    assert rcode_an(srv.query("nope.test", "A")) == (3, 0)
    assert rcode_an(srv.query("fail.test", "A")) == (2, 0)
    # Outside the test zones nothing is looked up on the Internet.
    assert rcode_an(srv.query("example.com", "A")) == (5, 0)


def test_server_stops(unbound_server):
    srv = unbound_server(["a.test A 127.0.0.9"])
    proc = srv.proc
    srv.stop()
    assert proc.poll() is not None


def test_unbound_resolver(unbound_server):
    assert Path(TEST_UNBOUND).exists(), f"{TEST_UNBOUND} not built"
    srv = unbound_server(ZONE)
    env = dict(os.environ, TERN_TEST_DNS=srv.address)
    p = subprocess.run([TEST_UNBOUND], env=env, capture_output=True, text=True,
                       timeout=60)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "SKIP" not in out, out
    assert "PASSED  ] 7 test(s)" in out, out
