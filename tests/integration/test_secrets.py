"""Secrets only where they are needed (docs/SECURITY.md): after fork each
child drops what the parent read for others (src/daemon/parent.c,
child_forget). The memory of each process is searched through
/proc/PID/mem (needs root): the password hashes only in auth, the route
AUTH password only in the mta. The processes that keep a secret are the
positive control: the search finds what is there."""

import os
import subprocess

import pytest

from conftest import TERNCTL_BIN
from dns_fixture import unbound_server  # noqa: F401
from tls_helpers import start_submission

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="reads /proc/PID/mem: needs root")

ROUTE_PASSWORD = "Route-Pw-6b1d93e0"


def memory_has(pid, needle):
    """True if the bytes are in one of the process's writable mappings
    (heap, stacks, data)."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            addr, perms = line.split()[:2]
            if not perms.startswith("rw"):
                continue
            lo, hi = (int(x, 16) for x in addr.split("-"))
            if hi - lo > 1 << 30:
                continue    # a reservation (sanitizer shadow), not data
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except (OSError, OverflowError, ValueError):
                continue
            if needle in data:
                return True
    return False


def pids_by_proc(t):
    """role -> pids, from `ternctl status` (lines "process PID ROLE ...")."""
    r = subprocess.run([TERNCTL_BIN, "-C", str(t.conf), "status"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0, r
    out = {}
    for line in r.stdout.splitlines():
        f = line.split()
        if f[0] == "process":
            out.setdefault(f[2], []).append(int(f[1]))
    return out


def test_secrets_only_where_needed(tern_factory, unbound_server, tls_certs, password_hashes,
                                   tmp_path):
    dns = unbound_server([])
    sec = tmp_path / "relay.secret"
    sec.write_text(f"relayuser {ROUTE_PASSWORD}\n")
    sec.chmod(0o600)
    t = start_submission(tern_factory, tls_certs, password_hashes, extra=(
        f"route far.test {{ via 127.0.0.1:9; auth {sec} }}\n"
        f"dns_server {dns.address}\n"
        "auth_checks on {\n    authserv_id mx.tern.test\n}\n"))
    t.wait_log(r"event=check-ready")
    with open(f"/proc/{t.pid}/maps") as f:
        if "libasan" in f.read():
            pytest.skip("ASan keeps freed memory in quarantine and its heap apart")
    hash_bytes = password_hashes["alice"].split("}", 1)[1].encode()
    procs = pids_by_proc(t)
    for name in ("smtp", "queue", "deliver", "mta", "auth", "check"):
        assert procs.get(name), (name, procs)
    found = {}
    for name, pids in procs.items():
        if name == "parent":
            continue
        found[name] = (any(memory_has(p, hash_bytes) for p in pids),
                       any(memory_has(p, ROUTE_PASSWORD.encode()) for p in pids))
    assert found == {
        "smtp": (False, False),
        "queue": (False, False),
        "deliver": (False, False),
        "mta": (False, True),
        "auth": (True, False),
        "check": (False, False),
    }, found
