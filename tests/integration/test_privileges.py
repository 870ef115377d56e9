"""Privilege separation when started as root: the parent stays root, smtp
workers run as _tern chrooted into /var/empty and cannot read the spool,
queue and delivery run as vmail, and Maildir files belong to vmail."""

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from smtp_client import is_root, simple_body, uid_of

pytestmark = pytest.mark.skipif(
    not is_root() or uid_of("_tern") is None or uid_of("vmail") is None
    or not os.path.isdir("/var/empty"),
    reason="needs root, the users _tern and vmail and /var/empty (scripts/deps.sh)")


def ids(pid, key):
    """Real, effective, saved and filesystem ids from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def groups(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Groups:"):
                return [int(x) for x in line.split()[1:]]
    return []


@pytest.fixture
def rooted(tern_factory):
    # The spool's own permissions must keep _tern out, so put it below a
    # folder that anyone may traverse (pytest's tmp folders are 0700).
    base = Path(tempfile.mkdtemp(prefix="tern-priv-", dir="/var/tmp"))
    os.chmod(base, 0o711)
    try:
        yield tern_factory(base=base / "t")
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(base)], check=False)


def test_process_users(rooted):
    t = rooted
    tern_uid, vmail_uid = uid_of("_tern"), uid_of("vmail")
    assert ids(t.pid, "Uid") == [0, 0, 0, 0]
    kids = t.children()
    assert kids, t.log()[-2000:]
    by_uid = {}
    for k in kids:
        uids = ids(k, "Uid")
        assert len(set(uids)) == 1, (k, uids)
        gids = ids(k, "Gid")
        assert 0 not in gids and 0 not in groups(k), (k, gids, groups(k))
        by_uid.setdefault(uids[0], []).append(k)
    assert set(by_uid) == {tern_uid, vmail_uid}, by_uid
    # As _tern: the smtp workers (chrooted, holding the listening socket)
    # and the outbound mta (not chrooted: it reads resolv.conf; no listener).
    workers = sorted(t.smtp_workers())
    assert len(workers) == t.workers
    others = sorted(set(by_uid[tern_uid]) - set(workers))
    assert set(workers) <= set(by_uid[tern_uid])
    assert len(others) == 1, (by_uid, workers)
    for k in workers:
        assert os.readlink(f"/proc/{k}/root") == "/var/empty"
    for k in by_uid[vmail_uid] + others:
        assert os.readlink(f"/proc/{k}/root") == "/"


def test_worker_cannot_read_spool(rooted):
    t = rooted
    c = t.client()
    c.ehlo()
    c.deliver("bob@example.test", ["alice@localhost"], simple_body())
    t.wait_for_messages("alice")
    st = os.stat(t.spool)
    assert st.st_uid != uid_of("_tern")
    # Others may only pass through, to the maildrop (mode 1733, tern-sendmail).
    assert st.st_mode & 0o007 == 0o001, oct(st.st_mode)
    md = os.stat(t.spool / "maildrop")
    assert md.st_mode & 0o7777 == 0o1733, oct(md.st_mode)
    for sub in ("", "queue", "tmp"):
        path = t.spool / sub
        r = subprocess.run(["runuser", "-u", "_tern", "--", "ls", str(path)],
                           capture_output=True, text=True)
        assert r.returncode != 0, f"_tern can list {path}"
        r = subprocess.run(["runuser", "-u", "_tern", "--", "test", "-w", str(path)])
        assert r.returncode != 0, f"_tern can write {path}"


def test_maildir_owned_by_vmail(rooted):
    t = rooted
    c = t.client()
    c.ehlo()
    c.deliver("bob@example.test", ["alice@localhost"], simple_body())
    t.wait_for_messages("alice")
    vmail = uid_of("vmail")
    box = t.maildir("alice")
    [name] = t.maildir_names("alice")
    assert os.stat(box / "new" / name).st_uid == vmail
    for d in (box, box / "new", box / "tmp", box / "cur"):
        st = os.stat(d)
        assert st.st_uid == vmail and st.st_mode & 0o077 == 0, (d, oct(st.st_mode))

