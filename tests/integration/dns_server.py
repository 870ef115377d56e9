"""A real DNS server for integration tests: unbound on 127.0.0.1, high port.

    srv = UnboundServer(["example.test MX 10 mx.example.test",
                         "mx.example.test A 127.0.0.2"], workdir)
    srv.start()        # srv.address == "127.0.0.1@PORT" (for dns_unbound_new)
    ...
    srv.stop()         # always, by PID

Records use the dns_static line format (src/dns/dns.h): NAME TYPE DATA with
TYPE one of A AAAA MX TXT CNAME PTR TLSA; "NAME MX 0 ." is a null MX
(RFC 7505). Two pseudo types make failures on demand: "NAME SERVFAIL"
(forwarded to a helper that answers SERVFAIL) and "NAME TIMEOUT"
(forwarded to a socket that never answers). Each name's last label becomes
a static local zone, so unknown names there are NXDOMAIN; everything else
is REFUSED: the server never queries the Internet.
"""

import os
import random
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

UNBOUND = os.environ.get("UNBOUND_BIN", "/usr/sbin/unbound")
TYPES = {"A": 1, "CNAME": 5, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28,
         "TLSA": 52}
TARGET_TYPES = ("CNAME", "PTR", "MX")


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        port = random.randint(20000, 60000)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            try:
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def build_query(name, qtype, qid=None):
    """A DNS query message (RD set) for name and a type name or number."""
    qid = random.randint(0, 0xFFFF) if qid is None else qid
    t = TYPES[qtype] if isinstance(qtype, str) else qtype
    wire = b"".join(bytes([len(lab)]) + lab.encode()
                    for lab in name.rstrip(".").split(".") if lab) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + wire + \
        struct.pack(">HH", t, 1)


def query(port, name, qtype, timeout=2.0):
    """Asks 127.0.0.1:port over UDP; returns the raw response bytes."""
    q = build_query(name, qtype)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, ("127.0.0.1", port))
        while True:
            data, _ = s.recvfrom(65535)
            if data[:2] == q[:2]:
                return data


class _Servfail(threading.Thread):
    """Answers every query with SERVFAIL (or, silent=True, never)."""

    def __init__(self, silent):
        super().__init__(daemon=True)
        self.silent = silent
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False

    def run(self):
        while not self.stopping:
            try:
                data, peer = self.sock.recvfrom(4096)
            except (socket.timeout, OSError):
                continue
            if self.silent or len(data) < 12:
                continue
            flags = 0x8182  # QR, RD, RA, rcode 2
            self.sock.sendto(data[:2] + struct.pack(">HHHHH", flags, 1, 0, 0, 0)
                             + data[12:], peer)

    def stop(self):
        self.stopping = True
        self.join(timeout=2)
        self.sock.close()


def _local_data(name, rtype, data):
    if rtype in TARGET_TYPES:
        parts = data.split()
        if parts and parts[-1] != ".":
            parts[-1] = parts[-1].rstrip(".") + "."
        data = " ".join(parts)
    line = f"{name.rstrip('.')}. 300 IN {rtype} {data}"
    if "'" in line:
        raise ValueError(f"record cannot hold a single quote: {line}")
    return f"    local-data: '{line}'"


class UnboundServer:
    def __init__(self, records, workdir, zones=None):
        self.records = list(records)
        self.workdir = Path(workdir)
        self.zones = zones
        self.port = None
        self.proc = None
        self.helpers = []

    @property
    def address(self):
        return f"127.0.0.1@{self.port}"

    def _config(self):
        local, forwards, zones = [], [], set(self.zones or [])
        transparent = []
        for rec in self.records:
            fields = rec.split(None, 2)
            name, rtype = fields[0].rstrip(".").lower(), fields[1].upper()
            if rtype in ("SERVFAIL", "TIMEOUT"):
                helper = _Servfail(silent=rtype == "TIMEOUT")
                helper.start()
                self.helpers.append(helper)
                # Not answered by the static zone around it: forwarded.
                transparent.append(f'    local-zone: "{name}." transparent')
                forwards += ["forward-zone:", f'    name: "{name}."',
                             f"    forward-addr: 127.0.0.1@{helper.port}"]
                continue
            if rtype not in TYPES or len(fields) < 3:
                raise ValueError(f"bad record: {rec}")
            if self.zones is None:
                zones.add(name.rsplit(".", 1)[-1])
            local.append(_local_data(name, rtype, fields[2]))
        d = self.workdir
        conf = [
            "server:",
            "    interface: 127.0.0.1",
            f"    port: {self.port}",
            "    do-daemonize: no",
            '    chroot: ""',
            '    username: ""',
            f'    directory: "{d}"',
            f'    pidfile: "{d / "unbound.pid"}"',
            "    use-syslog: no",
            f'    logfile: "{d / "unbound.log"}"',
            "    verbosity: 1",
            "    do-ip6: no",
            "    do-not-query-localhost: no",
            '    module-config: "iterator"',
            "    access-control: 127.0.0.0/8 allow",
            "    num-threads: 1",
            # Nothing leaves the machine: unknown zones are refused.
            '    local-zone: "." refuse',
        ]
        conf += [f'    local-zone: "{z.rstrip(".")}." static' for z in sorted(zones)]
        conf += transparent + local
        conf += ["remote-control:", "    control-enable: no"]
        return "\n".join(conf + forwards) + "\n"

    def start(self, timeout=10.0, port=None):
        """port: a given one (53 in a network namespace of its own,
        opendkim_ns.py), else a free high port."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        conf = self.workdir / "unbound.conf"
        conf.write_text(self._config())
        log = open(self.workdir / "unbound.stderr", "wb")
        self.proc = subprocess.Popen([UNBOUND, "-d", "-c", str(conf)],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                query(self.port, "ready.invalid", "A", timeout=0.2)
                return self
            except OSError:
                time.sleep(0.05)
        out = (self.workdir / "unbound.stderr").read_text(errors="replace")
        self.stop()
        raise RuntimeError(f"unbound did not start:\n{out}")

    def query(self, name, qtype):
        return query(self.port, name, qtype)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        for h in self.helpers:
            h.stop()
        self.helpers = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
