#!/usr/bin/python3
"""bench/idle.py: many idle SMTP connections held at once (issue 6).

    idle.py PORT N ROOTPID [HOLD_SECONDS]

Measures the PSS of the server's processes first (pss_base_kib), then opens
N connections to 127.0.0.1:PORT (at most 500 connecting at a time),
reads each greeting, sends EHLO and reads its reply, then leaves them idle.
When every connection is greeted, refused or timed out (or after 30 s; 10 s for one connection),
while all of them are still held, it measures

  - the PSS (proportional set size) of every process in the tree of
    ROOTPID, summed (from /proc/PID/smaps_rollup), and the number of
    processes;
  - how long a new client waits for its greeting (connect to 220, timed
    out after 5 s): three probes, 0.5 s apart, the median is reported;

then holds the connections HOLD_SECONDS more (default 0) and checks how
many are still open (a server may drop idle clients), and closes all.

Prints one line of key=value pairs on stdout:
  n greeted ehlo refused timeout error open_after pss_base_kib pss_kib
  nproc per_conn_bytes ((pss_kib - pss_base_kib) * 1024 / greeted)
  probe_ms (each probe, comma separated; "timeout" if none came)
  open_s (time to open and greet all) client_cpu_s (this script's CPU)
The soft RLIMIT_NOFILE is raised to the hard limit first.
"""
import asyncio
import os
import resource
import statistics
import sys
import time

CONNECT_AT_ONCE = 500
GREET_TIMEOUT = 10.0
PHASE_LIMIT = 30.0


def tree(root):
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def pss_kib(root):
    total, n = 0, 0
    for p in tree(root):
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        n += 1
                        break
        except OSError:
            pass
    return total, n


async def read_reply(reader):
    """Reads one SMTP reply (all its lines); returns its code or None."""
    while True:
        line = await reader.readline()
        if not line:
            return None
        if len(line) < 4 or line[3:4] != b"-":
            return line[:3]


class Held:
    def __init__(self):
        self.conns = []
        self.count = {"greeted": 0, "ehlo": 0, "refused": 0, "timeout": 0,
                      "error": 0}


FAILED = object()


async def counted(held, aw):
    """aw's result within GREET_TIMEOUT, or FAILED after counting why not."""
    try:
        return await asyncio.wait_for(aw, GREET_TIMEOUT)
    except asyncio.TimeoutError:
        held.count["timeout"] += 1
    except OSError:
        held.count["error"] += 1
    return FAILED


async def one(port, held, sem):
    async with sem:
        rw = await counted(held, asyncio.open_connection("127.0.0.1", port))
        if rw is FAILED:
            return
        r, w = rw
        held.conns.append((r, w))
    code = await counted(held, read_reply(r))
    if code is FAILED:
        return
    if code != b"220":
        held.count["refused"] += 1
        return
    held.count["greeted"] += 1
    try:
        w.write(b"EHLO idle.bench.example\r\n")
        code = await asyncio.wait_for(read_reply(r), GREET_TIMEOUT)
    except (asyncio.TimeoutError, OSError):
        return
    if code == b"250":
        held.count["ehlo"] += 1


async def probe(port):
    t0 = time.monotonic()
    try:
        r, w = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), 5.0)
        code = await asyncio.wait_for(read_reply(r), 5.0 - (time.monotonic() - t0))
    except (asyncio.TimeoutError, OSError):
        return None
    ms = (time.monotonic() - t0) * 1000
    w.write(b"QUIT\r\n")
    try:
        await asyncio.wait_for(r.read(), 1.0)
    except (asyncio.TimeoutError, OSError):
        pass
    w.close()
    return ms if code == b"220" else None


async def still_open(held):
    """Connections the server has not closed: a read must not see EOF."""
    n = 0
    for r, _ in held.conns:
        if r.at_eof():
            continue
        try:
            data = await asyncio.wait_for(r.read(1), 0.001)
        except asyncio.TimeoutError:
            n += 1
            continue
        except OSError:
            continue
        if data:
            n += 1	# an unexpected reply, but still open
    return n


async def main():
    port, n, root = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    hold = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    held = Held()
    base, _ = pss_kib(root)
    sem = asyncio.Semaphore(CONNECT_AT_ONCE)
    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(one(port, held, sem)) for _ in range(n)]
    done, pending = await asyncio.wait(tasks, timeout=PHASE_LIMIT)
    open_s = time.monotonic() - t0
    for t in pending:
        t.cancel()
    held.count["timeout"] += len(pending)
    await asyncio.sleep(0.5)	# let the server's children settle
    pss, nproc = pss_kib(root)
    probes = []
    for _ in range(3):
        probes.append(await probe(port))
        await asyncio.sleep(0.5)
    if hold > 0:
        await asyncio.sleep(hold)
    after = await still_open(held)
    for _, w in held.conns:
        w.close()
    await asyncio.sleep(0.2)
    got = [p for p in probes if p is not None]
    ru = resource.getrusage(resource.RUSAGE_SELF)
    g = held.count["greeted"]
    out = dict(n=n, **held.count, open_after=after, pss_base_kib=base,
               pss_kib=pss, nproc=nproc,
               per_conn_bytes=(pss - base) * 1024 // g if g else 0,
               probe_ms=",".join("timeout" if p is None else "%.1f" % p
                                 for p in probes),
               probe_median_ms=("%.1f" % statistics.median(got)) if got else "timeout",
               open_s="%.2f" % open_s,
               client_cpu_s="%.2f" % (ru.ru_utime + ru.ru_stime))
    print(" ".join("%s=%s" % kv for kv in out.items()), flush=True)


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main())
