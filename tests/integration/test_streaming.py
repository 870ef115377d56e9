"""Memory per session does not depend on the message's size (issue 6: "memory
per session independent of message size (streamed)").

The smtp worker writes the data into the spool file as it arrives (64 KiB at
a time), the queue reads it back in chunks for the CRC of a stored message,
the deliver process copies it into the Maildir in the kernel, the mta sends
it from the file a buffer at a time. So a 32 MiB message must not make any
of these processes hold more memory than a 1 MiB one does.

Measured per process as the peak resident set (VmHWM), reset before each
message through /proc/PID/clear_refs ("5"), minus the resident set at the
reset. Both sizes go the local way (a Maildir) and the relay way (to a
smtp-sink peer). Under a sanitizer build (redzones, quarantine) the figures
are printed and the messages checked, but the memory bounds are not.
"""

import os
import time

import pytest

from conftest import descendants_of, free_port, proc_status
from smtp_client import is_root
from test_abuse import sanitized
from test_outbound import Sink, sender_tern, submit, wait_log

MIB = 1024 * 1024
SIZES = (1 * MIB, 32 * MIB)
ROLES = ("tern-smtp", "tern-queue", "tern-deliver", "tern-mta")
# What a process may grow more for the large message than for the small one:
# heap slack (glibc keeps freed chunks), never the message.
SLACK_KIB = 2 * 1024


def status_kib(pid, field):
    return int(proc_status(pid)[field].split()[0])


def role_pids(t):
    """{pid: role} of the daemon's processes this test measures."""
    found = {}
    for pid in descendants_of(t.pid):
        try:
            name = proc_status(pid)["Name"]
        except OSError:
            continue
        if name in ROLES:
            found[pid] = name
    assert set(found.values()) == set(ROLES), found
    return found


def reset_peaks(pids):
    """Resets every process's peak RSS; returns the RSS at that moment."""
    base = {}
    for pid in pids:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        base[pid] = status_kib(pid, "VmRSS")
    return base


def growth(pids, base):
    """The largest peak growth per role, in KiB."""
    out = dict.fromkeys(ROLES, 0)
    for pid, role in pids.items():
        out[role] = max(out[role], status_kib(pid, "VmHWM") - base[pid])
    return out


def big_body(size, tag):
    """A message of `size` bytes: a header, then 78-byte lines."""
    head = f"Subject: {tag}\r\nMessage-ID: <{tag}@test.example>\r\n\r\n".encode()
    line = b"0123456789" * 7 + b"abcdef\r\n"
    n = (size - len(head)) // len(line)
    return head + line * n


def send_local(t, body):
    c = t.client()
    c.ehlo()
    qid = c.deliver("sender@test.example", ["alice@localhost"], body)
    c.cmd("QUIT").check(221)
    return qid


def stored_size(t, qid):
    """The size of the Maildir copy of queue ID qid (log: event=delivered)."""
    [path] = wait_log(t, rf"event=delivered id={qid} .*?mailbox=(\S+)")
    return os.path.getsize(path)


@pytest.mark.skipif(not is_root(), reason="clear_refs of processes of other users needs root")
def test_memory_independent_of_message_size(tern_factory, tmp_path):
    sink = Sink(tmp_path / "sink", "127.0.0.1", free_port(), opts=()).start()
    try:
        t = sender_tern(tern_factory, limits={"message_size": "64M"},
                        extra=f"route sink.test {{ via 127.0.0.1:{sink.port} }}\n")
        # Warm heaps: one small message each way first.
        small = big_body(4096, "warm")
        qid = send_local(t, small)
        stored_size(t, qid)
        qid = submit(t, ["x@sink.test"], small)
        wait_log(t, rf"event=removed id={qid} delivered=1 failed=0")
        pids = role_pids(t)
        grew = {}
        for size in SIZES:
            body = big_body(size, f"big{size}")
            base = reset_peaks(pids)
            qid = send_local(t, body)
            # Return-Path, Delivered-To and our Received header come on top.
            assert len(body) < stored_size(t, qid) < len(body) + 2048
            qid = submit(t, ["x@sink.test"], body)
            wait_log(t, rf"event=removed id={qid} delivered=1 failed=0", timeout=30)
            time.sleep(0.2)
            grew[size] = growth(pids, base)
        assert sink.wait_messages(3, timeout=10) == 3
        small_g, big_g = grew[SIZES[0]], grew[SIZES[1]]
        for role in ROLES:
            print(f"\nstreaming: {role} peak growth {small_g[role]} KiB for 1 MiB, "
                  f"{big_g[role]} KiB for 32 MiB")
        if sanitized(t):
            return
        for role in ROLES:
            assert big_g[role] <= small_g[role] + SLACK_KIB, (role, grew)
            # 32 MiB never passes through a process's memory whole.
            assert big_g[role] < 8 * 1024, (role, grew)
    finally:
        sink.stop()
