"""Spool files are reused (renamed into spool/free/ after delivery, taken
again for the next message) instead of unlinked and created anew; a reused
file must carry exactly the new message, never the tail of an older one."""

import os
import subprocess
import time

import pytest

from conftest import TERNCTL_BIN, spool_footer
from smtp_client import simple_body
from test_delivery import deliver_owner


def chown_to_deliver_user(path):
    uid, gid = deliver_owner()
    os.chown(path, uid, gid)


def free_files(tern):
    d = tern.spool / "free"
    return sorted(os.listdir(d)) if d.exists() else []


def body_of(stored):
    """The message as the client sent it: after Return-Path and Delivered-To
    (added at delivery) and the Received header (added at receipt)."""
    return stored.split(b"\r\n\r\n", 1)[1]


def test_reused_file_holds_only_the_new_message(tern):
    """A long message's file goes to free/ after delivery and comes back
    into the queue's stock at its next fill (after 12 more lone messages,
    see test_stock_fill); the short message stored in it later must end
    where its own footer says, with the old tail cut."""
    from test_direct import deliver_stopped

    c = tern.client()
    c.ehlo()
    long_text = "\r\n".join(["x" * 900] * 200)  # 180 KB
    c.deliver("bob@example.test", ["alice@localhost"], simple_body("long", long_text))
    tern.wait_for_messages("alice", n=1)
    tern.wait_spool_empty()
    first = free_files(tern)
    # No envelope file was written (a lone message has its envelope after
    # the content, test_direct.py): the content file waits in free/.
    assert len(first) == 1 and first[0].endswith(".msg"), first
    inode = os.stat(tern.spool / "free" / first[0]).st_ino
    qids = []
    with deliver_stopped(tern):
        for i in range(20):
            qids.append(c.deliver("bob@example.test", ["alice@localhost"],
                                  simple_body(f"short {i}", f"tiny {i}")))
        reused = [q for q in qids if os.stat(tern.spool / "queue" / f"{q}.msg").st_ino == inode]
        assert len(reused) == 1, (qids, tern.stock_files())
        i = qids.index(reused[0])
        data = (tern.spool / "queue" / f"{reused[0]}.msg").read_bytes()
        assert spool_footer(data, reused[0]) is not None and len(data) < 4000, len(data)
        assert tern.queued_content(reused[0]).endswith(f"\r\n\r\ntiny {i}\r\n".encode())
    msgs = tern.wait_for_messages("alice", n=21)
    tern.wait_spool_empty()
    [short] = [m for m in msgs if f"Subject: short {i}\r\n".encode() in m]
    assert reused[0].encode() in short
    assert body_of(short) == f"tiny {i}\r\n".encode()
    c.close()


def test_stock_fill(tern):
    """The queue names 16 files ahead in queue/ (modification time 0, no
    content): each lone message takes the oldest; below 4 the stock is
    filled up again with one directory fsync. ternctl does not list them,
    a clean stop removes them."""
    # Made after recovery, which may end after the workers accept (ASan).
    deadline = time.monotonic() + 10
    while len(stock := tern.stock_files()) < 16 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(stock) == 16, stock
    for name in stock:
        st = os.stat(tern.spool / "queue" / name)
        assert st.st_mtime == 0 and st.st_size == 0, (name, st)
    r = subprocess.run([TERNCTL_BIN, "-C", str(tern.conf), "queue", "list"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and r.stdout.strip() == "Mail queue is empty", r
    c = tern.client()
    c.ehlo()
    qids = [c.deliver("bob@example.test", ["alice@localhost"], simple_body(f"s{i}"))
            for i in range(14)]
    c.close()
    # Taken in the order they were named. The 13th left 3, and 13 new
    # names filled it up to 16; the 14th took the oldest, one of the first.
    assert [f"{q}.msg" for q in qids] == stock[:14]
    now = tern.stock_files()
    assert now[:2] == stock[14:] and len(now) == 15, now
    assert not set(now[2:]) & set(stock)
    tern.wait_for_messages("alice", n=14)
    tern.wait_spool_empty()
    tern.stop()
    assert os.listdir(tern.spool / "queue") == []


@pytest.mark.tern(workers=1)
def test_spare_file(tern):
    """With a commit's answer the queue hands the worker the next message's
    file (a spare, named ahead like the stock): the next DATA writes into it
    without asking the queue. A worker that dies holding one gives it back
    (to free/, no partial-message line); nothing of it stays in queue/."""
    import signal
    import time

    c = tern.client()
    c.ehlo()
    c.deliver("bob@example.test", ["alice@localhost"], simple_body("one"))
    spare = tern.stock_files()[0]  # the oldest name: taken as the spare
    q2 = c.deliver("bob@example.test", ["alice@localhost"], simple_body("two"))
    assert f"{q2}.msg" == spare
    spare = tern.stock_files()[0]
    c.close()
    tern.wait_for_messages("alice", n=2)
    tern.wait_spool_empty()
    [worker] = tern.smtp_workers()
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (tern.spool / "queue" / spare).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (tern.spool / "queue" / spare).exists(), tern.stock_files()
    assert spare in free_files(tern)
    assert "event=partial-removed" not in tern.log()
    # The new worker starts without one, asks at DATA, and gets one again.
    deadline = time.monotonic() + 10
    while not tern.smtp_workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    c = tern.client()
    c.ehlo()
    c.deliver("bob@example.test", ["alice@localhost"], simple_body("three"))
    c.close()
    tern.wait_for_messages("alice", n=3)


def test_free_files_removed_at_start(tern):
    c = tern.client()
    c.ehlo()
    c.deliver("bob@example.test", ["alice@localhost"], simple_body())
    tern.wait_for_messages("alice")
    tern.wait_spool_empty()
    c.close()
    assert len(free_files(tern)) == 1
    tern.restart()
    # The queue empties free/ before its recovery (one line per start).
    tern.wait_log(r"event=recovery[\s\S]*event=recovery")
    assert free_files(tern) == []


@pytest.mark.tern(extra="retry_interval 1s")
def test_envelope_files_are_reused_too(tern):
    """A message whose envelope was rewritten (here: the mailbox refuses at
    first, the retry state is stored in ID.env) leaves both its files in
    free/."""
    c = tern.client()
    c.ehlo()
    c.deliver("bob@example.test", ["bob@localhost"], simple_body())
    tern.wait_for_messages("bob")
    box = tern.maildir("alice")
    box.mkdir(mode=0o700)
    os.chmod(box, 0)
    qid = c.deliver("bob@example.test", ["alice@localhost"], simple_body())
    tern.wait_log(rf"event=deferred id={qid} ")
    assert (tern.spool / "queue" / f"{qid}.env").exists()
    chown_to_deliver_user(box)
    os.chmod(box, 0o700)
    tern.wait_for_messages("alice")
    tern.wait_spool_empty()
    assert f"{qid}.env" in free_files(tern)
    assert f"{qid}.msg" in free_files(tern)
    c.close()
