"""Local delivery beyond the happy path: temporary Maildir failures are
retried (nothing lost), alias targets on foreign domains stay queued as
held, and a full spool gives 452 4.3.1, never a 250 for a message that
was not stored."""

import os
import pwd
import re
import shutil
import subprocess
import time

import pytest

from conftest import spool_footer
from smtp_client import queued_id

BODY = (b"From: bob@example.test\r\nTo: alice@localhost\r\nSubject: retry\r\n"
        b"\r\nbody line\r\n")


def deliver_owner():
    """uid/gid the deliver process runs as (vmail as root, else us)."""
    if os.geteuid() == 0:
        pw = pwd.getpwnam("vmail")
        return pw.pw_uid, pw.pw_gid
    return os.getuid(), os.getgid()


def envelope(tern, qid):
    return (tern.spool / "queue" / f"{qid}.env").read_text()


@pytest.mark.tern(extra="retry_interval 1s")
def test_temporary_failure_is_retried(tern):
    c = tern.client()
    c.ehlo()
    c.deliver("bob@example.test", ["bob@localhost"], BODY)
    tern.wait_for_messages("bob")
    # alice's Maildir exists but the delivery user cannot write it: EACCES.
    box = tern.maildir("alice")
    box.mkdir(mode=0o700)
    os.chmod(box, 0)
    qid = c.deliver("bob@example.test", ["alice@localhost"], BODY)
    tern.wait_log(rf"event=tempfail id={qid} to=alice@localhost")
    # The retry state is stored (ID.env) just before "deferred" is logged.
    tern.wait_log(rf"event=deferred id={qid} ")
    assert (tern.spool / "queue" / f"{qid}.msg").exists(), "deferred message left the spool"
    assert "pending" in envelope(tern, qid)
    assert tern.maildir_names("alice") == []
    uid, gid = deliver_owner()
    os.chown(box, uid, gid)
    os.chmod(box, 0o700)
    [stored] = tern.wait_for_messages("alice", timeout=15)
    assert stored.endswith(b"\r\n" + BODY)
    assert f"id {qid}".encode() in stored
    tern.wait_spool_empty()


@pytest.mark.tern(aliases={"team": "alice, someone@foreign.example"},
                  extra="route * { via 127.0.0.1:9 }\nretry_interval 1s")
def test_relay_journal_marks_only_relayed_recipients(tern):
    """The mta's journal of accepted recipients is replayed at start. A line
    for a relayed recipient marks it delivered; a line naming a local one is
    not believed (the mta never gets local recipients: a compromised one
    must not be able to drop local mail)."""
    c = tern.client()
    c.ehlo()
    c.deliver("bob@example.test", ["bob@localhost"], BODY)
    tern.wait_for_messages("bob")
    box = tern.maildir("alice")	# exists, but the delivery user cannot write it
    box.mkdir(mode=0o700)
    os.chmod(box, 0)
    qid = c.deliver("bob@example.test", ["team@localhost"], BODY)
    tern.wait_log(rf"event=deferred id={qid} pending=2 ")	# both recipients tried
    tern.stop()
    rcpts = [line for line in envelope(tern, qid).splitlines() if line.startswith("rcpt: ")]
    assert len(rcpts) == 2 and " local " in rcpts[0] and "alice@localhost" in rcpts[0] and \
        " remote " in rcpts[1] and "someone@foreign.example" in rcpts[1], rcpts
    (tern.spool / "relay.journal").write_text(f"{qid} 0\n{qid} 1\n")
    uid, gid = deliver_owner()
    os.chown(box, uid, gid)
    os.chmod(box, 0o700)
    tern.start()
    tern.wait_log(rf"event=journal-ignored id={qid} to=alice@localhost")
    tern.wait_log(rf"event=journal-delivered id={qid} to=someone@foreign.example")
    [stored] = tern.wait_for_messages("alice", timeout=15)
    assert f"id {qid}".encode() in stored
    tern.wait_spool_empty()
    assert "journal-delivered id=" + qid + " to=alice" not in tern.log()


def relay_pending(tern, c, rcpt_params):
    """A message from bob@localhost to ext@localhost (someone@foreign.example)
    that waits for a retry (its host refuses connections); its queue ID."""
    c.cmd("MAIL FROM:<bob@localhost>").check(250)
    c.cmd(f"RCPT TO:<ext@localhost>{rcpt_params}").check(250)
    c.cmd("DATA").check(354)
    qid = queued_id(c.message(BODY).check(250))
    tern.wait_log(rf"event=deferred id={qid} ")
    return qid


@pytest.mark.tern(aliases={"ext": "someone@foreign.example"},
                  extra="route * { via 127.0.0.1:9 }\nretry_interval 1h")
def test_relay_journal_keeps_the_success_report(tern):
    """A journal line " r" (the peer did not take the DSN duty over) for a
    recipient that asked NOTIFY=SUCCESS: at the next start the recipient is
    delivered and the sender gets a "relayed" report, once. Without "r" the
    peer reports, and we stay silent."""
    c = tern.client()
    c.ehlo()
    owed = relay_pending(tern, c, " NOTIFY=SUCCESS")
    passed = relay_pending(tern, c, " NOTIFY=SUCCESS")
    c.close()
    tern.stop()
    (tern.spool / "relay.journal").write_text(f"{owed} 0 r\n{passed} 0\n")
    tern.start()
    tern.wait_log(rf"event=journal-delivered id={owed} to=someone@foreign.example")
    tern.wait_log(rf"event=journal-delivered id={passed} to=someone@foreign.example")
    [report] = tern.wait_for_messages("bob", timeout=15)
    assert b"multipart/report" in report
    assert re.search(rb"Action: relayed", report), report
    assert re.search(rb"Final-Recipient: rfc822; ?someone@foreign\.example", report), report
    assert re.search(rb"Status: 2\.0\.0", report), report
    assert owed.encode() in report and passed.encode() not in report
    tern.wait_spool_empty()
    # The journal was emptied after recovery: another start sends nothing.
    assert (tern.spool / "relay.journal").read_bytes() == b""
    tern.stop()
    tern.start()
    # The third start's replay (the first start's found no journal either).
    tern.wait_log(r"(?s)journal-replay lines=2 .*journal-replay lines=0 applied=0 reports=0")
    time.sleep(0.5)
    assert len(tern.maildir_names("bob")) == 1


@pytest.mark.tern(aliases={"ext": "someone@foreign.example",
                           "team": "alice, someone@foreign.example"},
                  extra="route * { via 127.0.0.1:9 }\nretry_interval 1s")
def test_foreign_alias_targets_wait_for_outbound(tern):
    """Alias targets on foreign domains go to outbound delivery; while their
    host refuses connections they stay queued, and local copies are not
    delivered twice."""
    c = tern.client()
    c.ehlo()
    qid1 = c.deliver("bob@example.test", ["ext@localhost"], BODY)
    qid2 = c.deliver("bob@example.test", ["team@localhost"], BODY)
    tern.wait_log(rf"event=deferred id={qid1} pending=1")
    tern.wait_log(rf"event=deferred id={qid2} pending=1")
    [stored] = tern.wait_for_messages("alice")
    assert f"id {qid2}".encode() in stored
    env1, env2 = envelope(tern, qid1), envelope(tern, qid2)
    assert re.search(r"^rcpt: pending remote .*someone@foreign\.example", env1, re.M), env1
    assert re.search(r"^rcpt: delivered local .*alice@localhost", env2, re.M), env2
    assert re.search(r"^rcpt: pending remote .*someone@foreign\.example", env2, re.M), env2
    # Still queued after a restart, and alice does not get a second copy.
    tern.restart()
    tern.wait_log(rf"event=recovered id={qid2}")
    time.sleep(0.5)
    assert len(tern.maildir_names("alice")) == 1
    assert (tern.spool / "queue" / f"{qid2}.env").exists()


def mount_tmpfs(path, size):
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                       capture_output=True, text=True)
    return r.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs")
def test_full_spool_gives_452_and_loses_nothing(tern_factory, tmp_path):
    base = tmp_path / "full"
    spool = base / "spool"
    if not mount_tmpfs(spool, "400k"):
        pytest.skip("tmpfs mount not permitted here")
    t = None
    try:
        t = tern_factory(base=base, start=False, users=["carol"], limits={"errors": 100},
                          extra="retry_interval 1s")
        # carol's Maildir is unwritable, so her mail stays in the spool and fills it.
        uid, gid = deliver_owner()
        os.chown(spool, uid, gid)
        t.start()
        box = t.maildir("carol")
        box.parent.mkdir(parents=True, exist_ok=True)
        os.chown(box.parent, uid, gid)
        box.mkdir(mode=0)
        body = b"Subject: fill\r\n\r\n" + (b"x" * 998 + b"\r\n") * 60  # ~60 KB
        accepted, refused = [], 0
        c = t.client()
        c.ehlo()
        for i in range(20):
            c.cmd("MAIL FROM:<bob@example.test>").check(250)
            c.cmd("RCPT TO:<carol@localhost>").check(250)
            r = c.cmd("DATA")
            if r.code != 354:
                r.check(452, "4.3.1")
                refused += 1
                continue
            r = c.message(body)
            if r.code == 250:
                accepted.append(queued_id(r))
            else:
                r.check(452, "4.3.1")
                refused += 1
        assert refused > 0, "a 400 KiB spool took 20 messages of 60 KB"
        assert accepted, "nothing was accepted at all"
        # Every acknowledged message is in the spool, complete: committed
        # through its footer, or deferred already (then with ID.env).
        for qid in accepted:
            data = (spool / "queue" / f"{qid}.msg").read_bytes()
            foot = spool_footer(data, qid)
            assert foot is not None or (spool / "queue" / f"{qid}.env").exists()
            assert len(data) > len(body)
            if foot is not None:
                assert data[:foot["content_len"]].endswith(body)
        # Space returns when carol's box is fixed: all of them arrive.
        os.chown(box, uid, gid)
        os.chmod(box, 0o700)
        stored = t.wait_for_messages("carol", n=len(accepted), timeout=90)
        assert len(stored) == len(accepted)
        ids = {re.search(rb"id ([0-9a-f]{16})", m).group(1).decode() for m in stored}
        assert ids == set(accepted)
        t.wait_spool_empty(timeout=30)
        # And the server takes mail again.
        qid = c.deliver("bob@example.test", ["alice@localhost"], b"Subject: after\r\n\r\nok\r\n")
        assert qid
        t.stop()
    finally:
        if t is not None:
            t.stop()
        r = subprocess.run(["umount", str(spool)], capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", str(spool)], capture_output=True)


def _body(subject):
    return BODY.replace(b"Subject: retry", b"Subject: " + subject)


def test_maildir_removed_or_renamed_while_running(tern):
    """The deliver process keeps the Maildirs' directories open between
    messages; an admin's rm -rf or mv of a Maildir must not send later
    messages into the old directory (or lose them)."""
    c = tern.client()
    c.ehlo()
    c.deliver("bob@example.test", ["alice@localhost"], _body(b"one"))
    tern.wait_for_messages("alice")
    box = tern.maildir("alice")
    shutil.rmtree(box)
    c.deliver("bob@example.test", ["alice@localhost"], _body(b"two"))
    [two] = tern.wait_for_messages("alice")
    assert b"Subject: two\r\n" in two
    assert sorted(os.listdir(box)) == ["cur", "new", "tmp"]
    assert os.listdir(box / "tmp") == []

    moved = box.with_name("alice.moved")
    box.rename(moved)
    c.deliver("bob@example.test", ["alice@localhost"], _body(b"three"))
    [three] = tern.wait_for_messages("alice")
    assert b"Subject: three\r\n" in three
    assert len(os.listdir(moved / "new")) == 1, "a message went to the renamed Maildir"

    # Recreated by hand (empty, as an admin would): used, not the old one.
    old = box.with_name("alice.old")
    box.rename(old)
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True)
    uid, gid = deliver_owner()
    for p in (box, box / "cur", box / "new", box / "tmp"):
        os.chown(p, uid, gid)
    c.deliver("bob@example.test", ["alice@localhost"], _body(b"four"))
    [four] = tern.wait_for_messages("alice")
    assert b"Subject: four\r\n" in four
    assert len(os.listdir(old / "new")) == 1
    tern.wait_spool_empty()
