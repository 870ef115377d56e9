"""Integration test fixtures: the real tern daemon on a loopback high port.

The `tern` fixture writes a configuration, users and aliases into the test's
temporary folder, starts TERN_BIN (default build/tern) with `-d -f CONF`,
waits for its 220 greeting and yields a Tern object. Teardown always stops
the daemon (SIGTERM, then SIGKILL after 10 s) and fails the test if the log
holds a sanitizer report. Options per test with a marker:

    @pytest.mark.tern(limits={"recipients": 5}, users=["carol"],
                      aliases={"team": "alice, bob"}, workers=1)

More options: `listeners={"sub": "mode submission"}` adds a listener per
name on its own free port (tern.ports["sub"], tern.client(port=...));
`passwords={"alice": "{CRYPT}$y$..."}` puts that password field in the users
file for that user instead of {PLAIN}secret-N; `verbose=True` adds -v.

`tern_factory` starts further daemons (or one in a chosen base folder).
`tls_certs` (a test CA and server certificates, made with openssl once per
test session) and `password_hashes` (`ternctl passwd` hashes of
USER_PASSWORDS) serve the TLS and AUTH tests.
"""

import atexit
import collections
import os
import struct
import zlib
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from smtp_client import Client


def spool_footer(data, qid):
    """Parses the footer after a spool file's content and envelope (written
    here from the format in src/queue/spoolfile.h, so that it checks the C
    code rather than repeats it): None if there is none for qid or it does
    not hold, else its fields and the envelope text."""
    if len(data) < 48 or data[-48:-40] != b"TERNSP1\n":
        return None
    f = data[-48:]
    if struct.unpack("<I", f[44:48])[0] != zlib.crc32(f[:44]) or f[40:44] != b"\0\0\0\0":
        return None
    clen, elen, crc = struct.unpack("<QII", f[24:40])
    if f[8:24] != qid.encode() or clen + elen + 48 != len(data):
        return None
    if zlib.crc32(data[:clen + elen]) != crc:
        return None
    return {"content_len": clen, "env": data[clen:clen + elen].decode()}

def is_stock_file(path):
    """A file of the queue's stock (src/queue/queue.c, stock_fill): an
    ID.msg in queue/ with no ID.env beside it, modification time 0."""
    if path.parent.name != "queue" or path.suffix != ".msg" or path.with_suffix(".env").exists():
        return False
    try:
        return path.stat().st_mtime == 0
    except FileNotFoundError:
        return False


REPO = Path(__file__).resolve().parents[2]
TERN_BIN = os.environ.get("TERN_BIN", str(REPO / "build" / "tern"))
TERNCTL_BIN = os.environ.get("TERNCTL_BIN", str(Path(TERN_BIN).parent / "ternctl"))
# Seconds to wait for the first 220 (scripts/valgrind.sh raises it: a daemon
# under valgrind starts several times slower).
START_TIMEOUT = float(os.environ.get("TERN_START_TIMEOUT", "10"))
HOSTNAME = "test.example"
DEFAULT_USERS = ["alice", "bob", "jürgen"]
DEFAULT_ALIASES = {"root": "alice"}
# Passwords of the users for the AUTH tests (see password_hashes).
USER_PASSWORDS = {"alice": "alice-Pw-7f3e", "bob": "bob-Pw-91c2", "jürgen": "jürgen-Pw-c0de"}
# Only what the tests rely on; tests add timeout_command, greeting_delay...
DEFAULT_LIMITS = {
    "message_size": "1M",
    "recipients": 100,
    "connections_per_ip": 20,
    "errors": 10,
    "shutdown_wait": "5s",
}
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "ERROR: UndefinedBehaviorSanitizer")

_running = set()


def _kill_all_at_exit():
    for t in list(_running):
        t.kill9()


atexit.register(_kill_all_at_exit)


_recent_ports = collections.deque(maxlen=256)


def free_port():
    """A port free on 127.0.0.1 now, and not one of the last 256 handed out:
    the kernel may give a just-closed port again, and one daemon's listeners
    are picked one after the other before any of them binds (two listeners
    on one port once failed a test with "declared twice")."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _recent_ports:
            _recent_ports.append(port)
            return port
    raise RuntimeError("no free port that was not handed out just before")


def _ppid(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may contain blanks.
    fields = stat[stat.rindex(b")") + 2:].split()
    return int(fields[1]), fields[0].decode()


def children_of(pid):
    """Live (non-zombie) children of pid, from /proc/*/stat."""
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        r = _ppid(int(d))
        if r and r[0] == pid and r[1] != "Z":
            kids.append(int(d))
    return sorted(kids)


def descendants_of(pid):
    out, todo = [], [pid]
    while todo:
        for k in children_of(todo.pop()):
            out.append(k)
            todo.append(k)
    return out


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s6:
            s6.bind(("::1", 0))
        return True
    except OSError:
        return False


def alive(pid):
    r = _ppid(pid)
    return r is not None and r[1] != "Z"


def proc_status(pid):
    """/proc/PID/status as a dict of str -> str."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def assert_filtered(pid):
    st = proc_status(pid)
    assert st["Seccomp"] == "2", (pid, st["Seccomp"])          # SECCOMP_MODE_FILTER
    assert st["Seccomp_filters"] == "1", (pid, st["Seccomp_filters"])
    assert st["NoNewPrivs"] == "1", (pid, st["NoNewPrivs"])


def filtered_now(pid):
    try:
        return proc_status(pid).get("Seccomp") == "2"
    except OSError:
        return False	# gone meanwhile


def wait_filtered(tern, comm):
    """The child named comm, once its filter is on (it is named at fork)."""
    pid = tern.child(comm)
    deadline = time.monotonic() + 10
    while not filtered_now(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_filtered(pid)
    return pid


def listening_inodes(port):
    """Socket inodes of TCP sockets listening on 127.0.0.1:port."""
    want = f"0100007F:{port:04X}"
    inodes = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[1] == want and cols[3] == "0A":
                inodes.add(cols[9])
    return inodes


def holds_socket(pid, inodes):
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return True
    except OSError:
        pass
    return False


class Tern:
    """One daemon instance with its files; see the module docstring."""

    def __init__(self, base, limits=None, users=None, aliases=None,
                 workers=2, extra="", port=None, listeners=None, passwords=None,
                 verbose=False):
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.hostname = HOSTNAME
        self.limits = dict(DEFAULT_LIMITS, **(limits or {}))
        self.users = DEFAULT_USERS + list(users or [])
        self.aliases = dict(DEFAULT_ALIASES, **(aliases or {}))
        self.workers = workers
        self.extra = extra
        self.listeners = dict(listeners or {})
        self.ports = {name: free_port() for name in self.listeners}
        self.passwords = dict(passwords or {})
        self.verbose = verbose
        self.conf = self.base / "tern.conf"
        self.users_file = self.base / "users.passwd"
        self.aliases_file = self.base / "aliases"
        self.spool = self.base / "spool"
        self.maildir_root = self.base / "mail"
        self.logfile = self.base / "tern.log"
        self.proc = None
        self.clients = []
        self.write_files()

    # ---- files

    def config_text(self):
        lim = "\n".join(f"    {k} {v}" for k, v in self.limits.items())
        return (
            f"# written by tests/integration/conftest.py\n"
            f"hostname {self.hostname}\n"
            f"spool {self.spool}\n"
            f"workers {self.workers}\n"
            f"listen {self.host}:{self.port} {{ mode mx }}\n"
            + "".join(f"listen {self.host}:{self.ports[n]} {{ {b} }}\n"
                      for n, b in self.listeners.items()) +
            f"limits {{\n{lim}\n}}\n"
            f"domain localhost {{\n"
            f"    users users.passwd\n"
            f"    aliases aliases\n"
            f"    maildir mail/%d/%u\n"
            f"}}\n"
            f"domain example.test {{ users users.passwd; maildir mail/%d/%u }}\n"
            # Outbound DNS must never leave the machine: unless a test brings
            # its own server, queries go to a closed loopback port and fail.
            + ("" if "dns_server" in self.extra else "dns_server 127.0.0.1@9\n") +
            # Inbound SPF/DKIM/DMARC checks are on by default in tern; tests
            # that are not about them keep messages byte for byte as sent.
            ("" if "auth_checks" in self.extra else "auth_checks off\n") +
            f"{self.extra}\n")

    def write_users(self):
        text = "".join(f"{u}:{self.passwords.get(u, f'{{PLAIN}}secret-{i}')}\n"
                       for i, u in enumerate(self.users))
        self.users_file.write_bytes(text.encode())

    def write_files(self):
        self.conf.write_text(self.config_text())
        self.write_users()
        self.aliases_file.write_bytes(
            "".join(f"{k}: {v}\n" for k, v in self.aliases.items()).encode())

    # ---- process

    def start(self, timeout=None):
        timeout = START_TIMEOUT if timeout is None else timeout
        log = open(self.logfile, "ab")
        try:
            self.proc = subprocess.Popen(
                [TERN_BIN, "-d", *(["-v"] if self.verbose else []), "-f", str(self.conf)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        finally:
            log.close()
        _running.add(self)
        self.wait_ready(timeout)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def fail_with_log(self, why):
        pytest.fail(f"{why}\n---- {self.logfile} ----\n{self.log()[-6000:]}")

    def wait_ready(self, timeout=None):
        timeout = START_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail_with_log(f"tern exited with {self.proc.returncode} at start")
            try:
                with socket.create_connection((self.host, self.port), timeout=2) as s:
                    s.settimeout(max(0.5, deadline - time.monotonic()))
                    line = s.makefile("rb").readline()
                    if line.startswith(b"220"):
                        # Leave only after the server closed this session,
                        # so it no longer counts against connection limits.
                        s.sendall(b"QUIT\r\n")
                        s.settimeout(2)
                        try:
                            while s.recv(4096):
                                pass
                        except OSError:
                            pass
                        return
                    last = line
            except OSError as e:
                last = e
            time.sleep(0.05)
        self.fail_with_log(f"no 220 greeting within {timeout} s (last: {last!r})")

    def client(self, greet=True, timeout=10, port=None, source=None):
        """A raw client of the mx listener, or of `port`; `source` binds
        the client side to that address (e.g. 127.0.0.2)."""
        c = Client(self.host, port or self.port, timeout=timeout, source=source)
        self.clients.append(c)
        if greet:
            c.greeting()
        return c

    def close_clients(self):
        for c in self.clients:
            c.close()
        self.clients.clear()

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL of everything left after `timeout` s.
        Returns the exit status (negative: killed by that signal)."""
        if self.proc is None:
            return None
        self.close_clients()
        procs = descendants_of(self.pid)
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        rc = self.proc.poll()
        self.kill9()
        # Children should be gone with the parent; give them a moment.
        deadline = time.monotonic() + 2
        while any(alive(p) for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._kill_pids(procs)
        return rc if rc is not None else -signal.SIGKILL

    def _kill_pids(self, pids):
        for p in pids:
            if alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def kill9(self):
        """SIGKILL the daemon and all its processes at once."""
        if self.proc is None:
            return
        procs = descendants_of(self.pid) if self.proc.poll() is None else []
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._kill_pids(procs)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 5
        while any(alive(p) for p in procs) and time.monotonic() < deadline:
            time.sleep(0.02)
        _running.discard(self)

    def restart(self):
        self.stop()
        return self.start()

    def sighup(self):
        os.kill(self.pid, signal.SIGHUP)

    def children(self):
        return children_of(self.pid)

    def child(self, comm):
        """The PID of the child named comm (tern-queue, tern-mta, ...)."""
        for pid in self.children():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == comm:
                        return pid
            except OSError:
                pass	# gone meanwhile
        self.fail_with_log(f"no child named {comm}")

    def smtp_workers(self):
        """Children holding the listening socket (the smtp workers)."""
        inodes = listening_inodes(self.port)
        return [p for p in self.children() if holds_socket(p, inodes)]

    def sanitizer_report(self):
        text = self.log()
        for m in SANITIZER_MARKS:
            i = text.find(m)
            if i >= 0:
                return text[max(0, i - 200):i + 3000]
        return None

    # ---- mail and spool

    def maildir(self, user, domain="localhost"):
        return self.maildir_root / domain / user

    def maildir_names(self, user, domain="localhost"):
        d = self.maildir(user, domain) / "new"
        try:
            return sorted(n for n in os.listdir(d) if not n.startswith("."))
        except FileNotFoundError:
            return []

    def maildir_messages(self, user, domain="localhost"):
        d = self.maildir(user, domain) / "new"
        return [(d / n).read_bytes() for n in self.maildir_names(user, domain)]

    def wait_for_messages(self, user, domain="localhost", n=1, timeout=10, settle=0.2):
        """Polls until user@domain has at least n messages in new/; waits
        `settle` s more so that extra copies show up too; returns them."""
        deadline = time.monotonic() + timeout
        while len(self.maildir_names(user, domain)) < n:
            if time.monotonic() > deadline:
                got = len(self.maildir_names(user, domain))
                self.fail_with_log(f"{user}@{domain}: {got} of {n} messages "
                                   f"after {timeout} s; spool: {self.spool_files()}")
            time.sleep(0.05)
        time.sleep(settle)
        return self.maildir_messages(user, domain)

    def all_maildir_files(self):
        """Every message file in any Maildir (new/ and cur/) and tmp/ file."""
        out = []
        if self.maildir_root.exists():
            for dirpath, _dirs, files in os.walk(self.maildir_root):
                if Path(dirpath).name in ("new", "cur", "tmp"):
                    out += [str(Path(dirpath, f).relative_to(self.maildir_root)) for f in files]
        return sorted(out)

    def queued_content(self, qid):
        """The message bytes of queue/QID.msg, without the envelope and
        footer a commit appends (see spool_footer)."""
        data = (self.spool / "queue" / f"{qid}.msg").read_bytes()
        foot = spool_footer(data, qid)
        return data if foot is None else data[:foot["content_len"]]

    def spool_files(self):
        """Message files in the spool (queue/ and tmp/), relative paths;
        not the queue's stock (files named ahead for the next messages,
        never written yet: modification time 0, see is_stock_file)."""
        out = []
        for sub in ("queue", "tmp"):
            d = self.spool / sub
            if d.exists():
                for dirpath, _dirs, files in os.walk(d):
                    out += [str(Path(dirpath, f).relative_to(self.spool)) for f in files
                            if not is_stock_file(Path(dirpath, f))]
        return sorted(out)

    def stock_files(self):
        """The queue's stock: names in queue/ (see spool_files)."""
        d = self.spool / "queue"
        return sorted(f for f in os.listdir(d) if is_stock_file(d / f)) if d.exists() else []

    def wait_log(self, pattern, timeout=10):
        """Polls the log until the regex `pattern` matches; fails with the log if not."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.log()):
            if time.monotonic() > deadline:
                self.fail_with_log(f"no log line matching {pattern!r}")
            time.sleep(0.05)

    def wait_spool_empty(self, timeout=10):
        deadline = time.monotonic() + timeout
        while self.spool_files():
            if time.monotonic() > deadline:
                self.fail_with_log(f"spool not empty after {timeout} s: {self.spool_files()}")
            time.sleep(0.05)


def pytest_configure(config):
    config.addinivalue_line("markers", "tern(**options): options of the tern fixture's daemon")


@pytest.fixture
def tern_factory(tmp_path):
    started = []

    def make(base=None, start=True, **options):
        t = Tern(base or tmp_path / f"tern{len(started)}", **options)
        started.append(t)
        return t.start() if start else t

    yield make
    problems = []
    for t in started:
        t.stop()
        report = t.sanitizer_report()
        if report:
            problems.append(f"sanitizer report in {t.logfile}:\n{report}")
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def tern(request, tern_factory):
    marker = request.node.get_closest_marker("tern")
    options = dict(marker.kwargs) if marker else {}
    return tern_factory(**options)


def make_certs(d):
    """A test CA and server certificates (EC P-256) in folder d, made with
    openssl: cert.pem/key.pem for mail.test.example (and IP 127.0.0.1),
    other.pem/other.key for other.test.example, wrong.key (matches
    nothing). Returns a dict of name -> Path (ca, ca_key, cert, key,
    other, other_key, wrong_key)."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    def key(name):
        run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", str(d / name))
        return d / name

    out = {"ca_key": key("ca.key"), "ca": d / "ca.pem"}
    run("req", "-x509", "-new", "-key", str(out["ca_key"]), "-out", str(out["ca"]),
        "-days", "3", "-subj", "/CN=tern test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    out["cert"], out["key"] = issue_cert(d, "cert.pem", "key.pem", "mail.test.example",
                                         out["ca"], out["ca_key"], ip="127.0.0.1")
    out["other"], out["other_key"] = issue_cert(d, "other.pem", "other.key",
                                                "other.test.example", out["ca"], out["ca_key"])
    out["wrong_key"] = key("wrong.key")
    return out


def issue_cert(d, cert_name, key_name, cn, ca, ca_key, ip=None, serial=None):
    """A key and a certificate for host name cn signed by the CA; returns
    (cert path, key path)."""
    d = Path(d)
    san = f"DNS:{cn}" + (f",IP:{ip}" if ip else "")
    ext = d / f"{cert_name}.ext"
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(d / key_name),
                    "-out", str(d / f"{cert_name}.csr"), "-subj", f"/CN={cn}"],
                   check=True, capture_output=True, timeout=30)
    subprocess.run(["openssl", "x509", "-req", "-in", str(d / f"{cert_name}.csr"),
                    "-CA", str(ca), "-CAkey", str(ca_key),
                    *(["-set_serial", str(serial)] if serial else ["-CAcreateserial"]),
                    "-days", "2", "-extfile", str(ext), "-out", str(d / cert_name)],
                   check=True, capture_output=True, timeout=30)
    return d / cert_name, d / key_name


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def password_hashes():
    """user -> password field made by `ternctl passwd` from USER_PASSWORDS."""
    out = {}
    for user, pw in USER_PASSWORDS.items():
        r = subprocess.run([TERNCTL_BIN, "passwd"], input=pw + "\n", capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        out[user] = r.stdout.strip()
        assert out[user].startswith("{CRYPT}$"), out[user]
    return out
