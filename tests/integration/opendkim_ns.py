"""Verifies a message with OpenDKIM's library (libopendkim, Debian's
libopendkim11 from opendkim-tools) against a local unbound, inside a
network and mount namespace of its own.

Why not opendkim-testmsg itself: Debian 12's (2.11.0~beta2) fails on every
input, signed or not, CRLF or LF, with "dkim_chunk(): Syntax error"
before any DNS query, so it cannot tell a good signature from a bad one
(the cause was not pinned down: the tool also sets DKIM_LIBFLAGS_FIXCRLF).
The same library's dkim_verify()/dkim_chunk()/dkim_eom(), the calls the
tool makes, called here through ctypes with the default flags, verify as
documented.

Why a namespace: libopendkim asks the C library's resolver, which reads
/etc/resolv.conf and knows no port but 53, and the library offers no
name server option to its tools. So, run as `unshare -m -n python3
opendkim_ns.py WORKDIR RECORD...` with the message (CRLF) on stdin, this
script brings up the namespace's own loopback, starts unbound on
127.0.0.1:53 there serving the records (dns_server.py's format),
bind-mounts a resolv.conf naming it over /etc/resolv.conf (mount and
network are private to the namespace: the machine's are untouched),
verifies, prints "STATUS ERROR" (dkim_eom's result string and the
library's error text) and exits 0 only if every signature verified
(DKIM_STAT_OK). unbound is stopped by PID.
"""

import ctypes
import subprocess
import sys
from pathlib import Path

from dns_server import UnboundServer

DKIM_STAT_OK = 0


def libopendkim():
    lib = ctypes.CDLL("libopendkim.so.11")
    lib.dkim_init.restype = ctypes.c_void_p
    lib.dkim_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.dkim_verify.restype = ctypes.c_void_p
    lib.dkim_verify.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p,
                                ctypes.POINTER(ctypes.c_int)]
    lib.dkim_chunk.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.dkim_eom.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.dkim_geterror.restype = ctypes.c_char_p
    lib.dkim_geterror.argtypes = [ctypes.c_void_p]
    lib.dkim_getresultstr.restype = ctypes.c_char_p
    lib.dkim_getresultstr.argtypes = [ctypes.c_int]
    lib.dkim_free.argtypes = [ctypes.c_void_p]
    lib.dkim_close.argtypes = [ctypes.c_void_p]
    return lib


def verify(msg):
    """(status code, "STATUS ERROR") from libopendkim for msg."""
    L = libopendkim()
    handle = L.dkim_init(None, None)
    st = ctypes.c_int(0)
    d = L.dkim_verify(handle, b"tern-test", None, ctypes.byref(st))
    if not d:
        return st.value, f"dkim_verify: {L.dkim_getresultstr(st.value).decode()}"
    rc = L.dkim_chunk(d, msg, len(msg))
    if rc == DKIM_STAT_OK:
        rc = L.dkim_chunk(d, None, 0)
    if rc == DKIM_STAT_OK:
        rc = L.dkim_eom(d, None)
    err = L.dkim_geterror(d)
    text = f"{L.dkim_getresultstr(rc).decode()} {err.decode() if err else '-'}"
    L.dkim_free(d)
    L.dkim_close(handle)
    return rc, text


def main():
    work = Path(sys.argv[1])
    records = sys.argv[2:]
    msg = sys.stdin.buffer.read()
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    resolv = work / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n")
    subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
    srv = UnboundServer(records, work / "unbound-ns")
    srv.start(port=53)
    try:
        rc, text = verify(msg)
    finally:
        srv.stop()
    print(text)
    return 0 if rc == DKIM_STAT_OK else 1


if __name__ == "__main__":
    sys.exit(main())
