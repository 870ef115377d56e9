"""SIGHUP reloads without dropping sessions; a dead worker is replaced;
SIGTERM lets the current transaction finish and exits 0."""

import os
import signal
import time

from conftest import alive
from smtp_client import queued_id, simple_body


def wait_until(pred, timeout=5, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def rcpt_code(tern, addr):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test>").check(250)
    code = c.cmd(f"RCPT TO:<{addr}>").code
    c.cmd("QUIT")
    c.close()
    return code


def test_sighup_adds_user_keeps_sessions(tern):
    old = tern.client()
    old.ehlo()
    old.cmd("MAIL FROM:<bob@example.test>").check(250)
    old.cmd("RCPT TO:<alice@localhost>").check(250)
    assert rcpt_code(tern, "carol@localhost") == 550
    tern.users.append("carol")
    tern.write_users()
    tern.sighup()
    assert wait_until(lambda: rcpt_code(tern, "carol@localhost") == 250), tern.log()[-3000:]
    # The session opened before the reload goes on with its transaction.
    old.cmd("RCPT TO:<bob@localhost>").check(250, "2.1.5")
    old.cmd("DATA").check(354)
    queued_id(old.message(simple_body("old session")))
    # New connections deliver to the new user.
    c = tern.client()
    c.ehlo()
    c.deliver("bob@example.test", ["carol@localhost"], simple_body("for carol"))
    assert b"old session" in tern.wait_for_messages("alice")[0]
    assert b"old session" in tern.wait_for_messages("bob")[0]
    assert b"for carol" in tern.wait_for_messages("carol")[0]
    assert tern.proc.poll() is None


def test_sighup_reaches_the_queue(tern):
    """The queue outlives a reload: it resolves the recipients of local
    programs' mail and writes its Received fields with the new
    configuration, which the parent passes to it (it may not read the files)."""
    from test_sendmail import sendmail
    tern.users.append("carol")
    tern.write_users()
    tern.hostname = "renamed.example"
    tern.conf.write_text(tern.config_text())
    tern.sighup()
    assert wait_until(lambda: "event=config-applied generation=1 domains=2" in tern.log()), \
        tern.log()[-3000:]
    r = sendmail(tern, ["-f", "bob@localhost", "carol@localhost"], b"Subject: hi\n\nfor carol\n")
    assert r.returncode == 0, r.stderr
    [m] = tern.wait_for_messages("carol")
    assert b"Received: by renamed.example (tern) with local id " in m, m[:300]
    assert b"for carol" in m
    assert "event=pickup-refused" not in tern.log()


def test_sighup_keeps_the_spool(tern, tmp_path):
    """The spool changes only at a restart: a reload says so and goes on
    with the old one (the queue works in it)."""
    text = tern.config_text()
    tern.conf.write_text(text.replace(f"spool {tern.spool}\n", f"spool {tmp_path / 'other'}\n"))
    tern.sighup()
    assert wait_until(lambda: "event=reloaded generation=1" in tern.log()), tern.log()[-3000:]
    assert "event=reload-restart-needed setting=spool" in tern.log()
    c = tern.client()
    c.ehlo()
    c.deliver("bob@example.test", ["alice@localhost"], simple_body("after"))
    assert b"after" in tern.wait_for_messages("alice")[0]
    assert not (tmp_path / "other").exists()


def test_sighup_with_bad_config_keeps_old(tern):
    good = tern.conf.read_text()
    tern.conf.write_text(good + "frobnicate yes\n")
    tern.sighup()
    time.sleep(1)
    assert tern.proc.poll() is None, "tern exited on a bad reload"
    c = tern.client()
    c.ehlo()
    c.deliver("bob@example.test", ["alice@localhost"], simple_body())
    assert len(tern.wait_for_messages("alice")) == 1
    assert "frobnicate" in tern.log() or "tern.conf:" in tern.log()


def test_dead_worker_replaced(tern):
    workers = wait_until(lambda: len(tern.smtp_workers()) == 2 and tern.smtp_workers())
    assert workers and len(workers) == 2, (tern.children(), tern.log()[-2000:])
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    new = wait_until(lambda: (lambda w: len(w) == 2 and victim not in w and w)(tern.smtp_workers()))
    assert new, (tern.smtp_workers(), tern.log()[-2000:])
    assert tern.proc.poll() is None
    # Mail still flows, over several connections (both workers).
    for i in range(6):
        c = tern.client()
        c.ehlo()
        c.deliver("bob@example.test", ["alice@localhost"], simple_body(f"after {i}"))
        c.cmd("QUIT")
    assert len(tern.wait_for_messages("alice", n=6)) == 6
    assert str(victim) in tern.log() or "died" in tern.log() or "exit" in tern.log()


def test_sigterm_exits_zero(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test>").check(250)
    c.cmd("RCPT TO:<alice@localhost>").check(250)
    c.cmd("DATA").check(354)
    queued_id(c.message(simple_body("before the stop")))
    c.cmd("QUIT")
    c.close()
    tern.wait_for_messages("alice", timeout=15)
    children = tern.children()
    assert children
    os.kill(tern.pid, signal.SIGTERM)
    rc = tern.proc.wait(10)
    assert rc == 0, tern.log()[-2000:]
    assert wait_until(lambda: not any(alive(p) for p in children), timeout=5)
    # A clean stop warns about nothing: the queue stops before the deliver
    # process and the mta, so neither looks lost to it (event=deliver-lost).
    stop = tern.log().split("event=stopping", 1)[1]
    assert "level=warn" not in stop and "level=error" not in stop, stop


def test_sigterm_finishes_transaction(tern):
    c = tern.client()
    c.ehlo()
    c.cmd("MAIL FROM:<bob@example.test>").check(250)
    c.cmd("RCPT TO:<alice@localhost>").check(250)
    os.kill(tern.pid, signal.SIGTERM)
    time.sleep(0.5)
    c.cmd("DATA").check(354)
    qid = queued_id(c.message(simple_body("in flight")))
    r = c.cmd("QUIT")
    assert r.code in (221, 421), r
    rc = tern.proc.wait(15)
    assert rc == 0
    # Delivered before the exit, or after the next start.
    if not tern.maildir_names("alice"):
        tern.start()
    [stored] = tern.wait_for_messages("alice", timeout=15)
    assert qid.encode() in stored


def test_sigterm_refuses_new_transactions(tern):
    c = tern.client()
    c.ehlo()
    os.kill(tern.pid, signal.SIGTERM)
    time.sleep(0.5)
    try:
        r = c.cmd("MAIL FROM:<bob@example.test>")
    except OSError:
        return      # idle sessions may simply be closed
    r.check(421, "4.3.2", "shutting down")
