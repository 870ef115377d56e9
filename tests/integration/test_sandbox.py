"""The smtp workers run under the seccomp filter of src/server/sandbox.c:
/proc shows filter mode in every worker, also in replacements and after a
reload, and the workers still do their job. That forbidden calls are
refused (open -> EPERM, execve -> SIGSYS) is shown by tests/unit/test_sandbox.c
on the same filter. The other children (mta, check, queue, deliver, auth)
run under the deny-list filter (sandbox_denylist)."""

import os
import signal
import time

import pytest

from conftest import assert_filtered, filtered_now, proc_status, wait_filtered
from smtp_client import simple_body


def wait_workers(tern, n, old=(), timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        w = tern.smtp_workers()
        # A child just forked holds the listening socket before it has set
        # up (and so before its filter is on): wait until they all have.
        if len(w) == n and not set(w) & set(old) and all(filtered_now(p) for p in w):
            return w
        time.sleep(0.05)
    tern.fail_with_log(f"expected {n} new workers, have {tern.smtp_workers()}")


def test_workers_are_filtered(tern):
    # Ready means accepting: a worker may hold the socket before its filter is on.
    workers = wait_workers(tern, 2)
    for pid in workers:
        assert_filtered(pid)
    # The parent forks and execs nothing, but it is not the sandboxed process.
    assert proc_status(tern.pid)["Seccomp"] == "0"


def test_filtered_workers_deliver(tern):
    for i in range(4):
        c = tern.client()
        c.ehlo()
        c.deliver("bob@example.test", ["alice@localhost"], simple_body(f"sandboxed {i}"))
        c.cmd("QUIT").check(221)
    tern.wait_for_messages("alice", n=4)
    # No worker was killed by the filter (SIGSYS) on the way.
    assert "signal=31" not in tern.log()
    for pid in tern.smtp_workers():
        assert_filtered(pid)


def test_replacement_worker_is_filtered(tern):
    old = tern.smtp_workers()
    os.kill(old[0], signal.SIGKILL)
    # The replacement is caught once it has set up (wait_workers says why).
    for pid in wait_workers(tern, 2, old=(old[0],)):
        assert_filtered(pid)


def test_workers_after_reload_are_filtered(tern):
    old = tern.smtp_workers()
    tern.sighup()
    for pid in wait_workers(tern, 2, old):
        assert_filtered(pid)
    c = tern.client()
    c.ehlo()
    c.deliver("bob@example.test", ["alice@localhost"], simple_body("after reload"))
    tern.wait_for_messages("alice")


@pytest.mark.tern(verbose=True)
def test_fsyncs_go_through_aio_under_the_filter(tern):
    """The queue and the deliver process sync their batches through Linux
    AIO (src/common/syncpool.c): io_setup, io_submit and io_getevents pass
    their filter (the start-up probe submits one fsync), and a message for
    two mailboxes is one batch of two files (the debug line says so),
    synced that way."""
    for proc in ("queue", "deliver"):
        tern.wait_log(rf"proc={proc} level=info event=fsync-pool kind=aio")
    c = tern.client()
    c.ehlo()
    c.deliver("bob@example.test", ["alice@localhost", "bob@localhost"],
              simple_body("two files, one batch"))
    for user in ("alice", "bob"):
        tern.wait_for_messages(user)
    assert "proc=deliver level=debug event=deliver-batch n=2" in tern.log()
    assert "event=maildir-failed" not in tern.log()


@pytest.mark.tern(extra="auth_checks on")
def test_other_children_are_filtered(tern):
    """Every child but the workers runs under sandbox_denylist's filter (no
    exec, fork or signals to other processes, and for the mta and the check
    process no file writes; tests/unit/test_sandbox.c shows each refusal).
    That they still do their work under it is what the rest of the suite
    shows (delivery, relay, checks, DSNs)."""
    for comm in ("tern-mta", "tern-check", "tern-queue", "tern-deliver"):
        wait_filtered(tern, comm)
