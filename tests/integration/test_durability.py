"""250 is a promise: a message acknowledged before a kill -9 is delivered
after the restart."""

import os
import shutil
import subprocess
import time

from conftest import TERNCTL_BIN
from smtp_client import is_root, queued_id, requires_root, simple_body, uid_of


def test_kill9_right_after_250(tern):
    c = tern.client()
    c.ehlo()
    c.mail_rcpt_data("bob@example.test", ["alice@localhost"])
    c.send(b"Subject: durable\r\nMessage-ID: <durable-1@example.test>\r\n\r\nkeep me\r\n.\r\n")
    qid = queued_id(c.reply())
    tern.kill9()
    tern.start()
    msgs = tern.wait_for_messages("alice", timeout=15)
    # At least once; more than one copy would mean a duplicate delivery.
    assert len(msgs) >= 1
    assert all(m == msgs[0] for m in msgs)
    assert qid.encode() in msgs[0] and msgs[0].endswith(b"\r\n\r\nkeep me\r\n")
    tern.wait_spool_empty()


@requires_root
def test_kill9_before_delivery(tern):
    """alice's Maildir is not writable for the delivery user, so the message
    stays queued; after kill -9, a fixed Maildir and a restart, it waits for
    its retry time (kept in the envelope) and `ternctl queue flush` delivers
    it at once."""
    vmail = uid_of("vmail")
    assert vmail is not None and is_root()
    box = tern.maildir("alice")
    made = [d for d in (tern.maildir_root, box.parent, box) if not d.exists()]
    for sub in ("tmp", "new", "cur"):
        os.makedirs(box / sub, mode=0o700, exist_ok=True)
    for d in made + [box / "tmp", box / "new", box / "cur"]:
        os.chmod(d, 0o700)
    # Root-owned 0700 folders: a delivery as vmail fails with EACCES.
    c = tern.client()
    c.ehlo()
    qid = c.deliver("bob@example.test", ["alice@localhost"], simple_body("queued"))
    time.sleep(1.0)
    assert tern.maildir_names("alice") == []
    queued = tern.spool_files()
    assert any(qid in f for f in queued), queued
    tern.kill9()
    for d in made + [box / "tmp", box / "new", box / "cur"]:
        shutil.chown(d, vmail)
    tern.start()
    tern.wait_log(rf"event=deferred id={qid} retry_in=")
    time.sleep(0.5)
    assert tern.maildir_names("alice") == []
    r = subprocess.run([TERNCTL_BIN, "-C", str(tern.conf), "queue", "flush"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r
    [stored] = tern.wait_for_messages("alice", timeout=15)
    assert qid.encode() in stored and b"Subject: queued" in stored
    tern.wait_spool_empty()


def test_partial_spool_file_removed_at_start(tern):
    """A half-written message in spool/tmp (from a crash) is removed at start."""
    tern.stop()
    tmpdir = tern.spool / "tmp"
    assert tmpdir.is_dir()
    junk = tmpdir / "0000000000000001.msg"
    junk.write_bytes(b"Subject: half\r\n\r\nhalf a mess")
    if is_root():
        st = os.stat(tmpdir)
        os.chown(junk, st.st_uid, st.st_gid)
    tern.start()
    deadline = time.monotonic() + 5
    while junk.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not junk.exists()
    assert tern.all_maildir_files() == []


def test_footer_recovered_torn_removed(tern):
    """Two lone messages are stored with their envelope after the content
    (no ID.env) and stay queued (the deliver process is stopped); kill -9.
    One file is then damaged as a crash can leave a reused file (a page of
    another message in it, the footer intact). At start the intact one is
    recovered from its footer and delivered once; the damaged one fails
    its CRC and is removed as never committed."""
    from test_direct import deliver_stopped

    c = tern.client()
    c.ehlo()
    with deliver_stopped(tern):
        kept = c.deliver("bob@example.test", ["alice@localhost"], simple_body("kept"))
        torn = c.deliver("bob@example.test", ["alice@localhost"], simple_body("torn"))
        for qid in (kept, torn):
            assert not (tern.spool / "queue" / f"{qid}.env").exists()
        tern.kill9()
    path = tern.spool / "queue" / f"{torn}.msg"
    data = bytearray(path.read_bytes())
    data[20:24] = b"XXXX"  # inside the Received header, before the footer
    path.write_bytes(bytes(data))
    tern.start()
    tern.wait_log(rf"event=footer-invalid id={torn} reason=\"content or envelope torn \(CRC\)\"")
    tern.wait_log(rf"event=recovered id={kept} nrcpt=1")
    [msg] = tern.wait_for_messages("alice", settle=1.0)
    assert f"id {kept}".encode() in msg and b"Subject: kept\r\n" in msg
    assert not path.exists()
    tern.wait_spool_empty()
