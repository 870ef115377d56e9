"""Spool files are reused (renamed into spool/free/ after delivery, taken
again for the next message) instead of unlinked and created anew; a reused
file must carry exactly the new message, never the tail of an older one."""

import os

import pytest

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
    qid = c.deliver("bob@example.test", ["alice@localhost"], simple_body("short", "tiny"))
    msgs = tern.wait_for_messages("alice", n=2)
    tern.wait_spool_empty()
    short = [m for m in msgs if b"Subject: short" in m]
    assert len(short) == 1
    assert qid.encode() in short[0]
    assert body_of(short[0]) == b"tiny\r\n"
    assert short[0].endswith(b"\r\n\r\ntiny\r\n")
    # The file was taken from free/ and came back there after delivery.
    assert len(free_files(tern)) == 1
    assert free_files(tern) != first
    c.close()


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
