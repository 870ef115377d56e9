"""`tern -n -f FILE`: good configurations exit 0, bad ones exit 1 with
"FILE:LINE: reason" on stderr; the shipped etc/tern.conf works."""

import re
import shutil
import subprocess

import pytest

from conftest import REPO, TERN_BIN
from smtp_client import simple_body


def check(path):
    return subprocess.run([TERN_BIN, "-n", "-f", str(path)], capture_output=True, text=True,
                          timeout=20)


def test_good_config(tern_factory):
    t = tern_factory(start=False)
    r = check(t.conf)
    assert r.returncode == 0, r.stderr


def test_shipped_default_config(tmp_path):
    r = check(REPO / "etc" / "tern.conf")
    assert r.returncode == 0, r.stderr


def test_missing_file(tmp_path):
    r = check(tmp_path / "nosuch.conf")
    assert r.returncode == 1
    assert "nosuch.conf" in r.stderr


def bad(tern_factory, tmp_path, text, name="bad.conf"):
    t = tern_factory(start=False)
    path = t.base / name
    path.write_text(text)
    return check(path)


def line_of(stderr, name="bad.conf"):
    m = re.search(re.escape(name) + r":(\d+): \S", stderr)
    assert m, f"no '{name}:LINE: reason' in {stderr!r}"
    return int(m.group(1))


BASE = ("hostname test.example\n"            # 1
        "spool spool\n"                      # 2
        "listen 127.0.0.1:2600 { mode mx }\n"  # 3
        "domain localhost {\n"               # 4
        "    users users.passwd\n"           # 5
        "    maildir mail/%d/%u\n"           # 6
        "}\n")                               # 7


def test_base_of_bad_configs_is_good(tern_factory, tmp_path):
    r = bad(tern_factory, tmp_path, BASE)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("text,line", [
    (BASE + "frobnicate yes\n", 8),
    (BASE.replace("2600", "99999"), 3),
    (BASE.replace("127.0.0.1:2600", "not-an-address"), 3),
    (BASE.replace("{ mode mx }", "{ mode sideways }"), 3),
    (BASE + "domain example.test {\n    users users.passwd\n}\n", (8, 10)),
    (BASE.replace("users users.passwd", "users nosuch.passwd"), 5),
    (BASE + "limits { recipients many }\n", 8),
    (BASE + "limits { message_size -5 }\n", 8),
    (BASE + "domain localhost { users users.passwd; maildir x/%u }\n", 8),
    (BASE + "domain other.test {\n", (8, 9)),
    (BASE + "}\n", 8),
])
def test_bad_config(tern_factory, tmp_path, text, line):
    r = bad(tern_factory, tmp_path, text)
    assert r.returncode == 1, (r.returncode, r.stderr)
    n = line_of(r.stderr)
    if isinstance(line, tuple):
        assert line[0] <= n <= line[1], r.stderr
    else:
        assert n == line, r.stderr


def test_table_error(tern_factory, tmp_path):
    t = tern_factory(start=False)
    t.aliases_file.write_text("# aliases\nroot: |/bin/sh -c 'touch /tmp/pwned'\n")
    r = check(t.conf)
    assert r.returncode == 1
    assert re.search(r"aliases:2: \S", r.stderr), r.stderr


def test_daemon_refuses_bad_config(tern_factory, tmp_path):
    t = tern_factory(start=False)
    t.conf.write_text(t.config_text() + "frobnicate yes\n")
    r = subprocess.run([TERN_BIN, "-d", "-f", str(t.conf)], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 1
    assert re.search(r"tern\.conf:\d+: \S", r.stderr), r.stderr


def test_usage(tmp_path):
    r = subprocess.run([TERN_BIN, "-h"], capture_output=True, text=True, timeout=10)
    assert "-f" in r.stdout + r.stderr
    r = subprocess.run([TERN_BIN, "-Z"], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0


def test_relative_spool(tern_factory):
    t = tern_factory(start=False)
    t.conf.write_text(t.config_text().replace(f"spool {t.spool}", "spool spool"))
    t.start()
    c = t.client()
    c.ehlo()
    c.deliver("bob@example.test", ["alice@localhost"], simple_body())
    assert len(t.wait_for_messages("alice")) == 1
    assert (t.base / "spool").is_dir()


def test_default_config_runs(tern_factory, tmp_path):
    """etc/ as shipped, on another port: mail for alice and root lands in
    run/mail/localhost/alice/new/ next to etc/."""
    etc = tmp_path / "checkout" / "etc"
    t = tern_factory(base=etc, start=False)
    for f in ("tern.conf", "users.passwd", "aliases"):
        shutil.copy(REPO / "etc" / f, etc / f)
    conf = (etc / "tern.conf").read_text()
    assert "127.0.0.1:2525" in conf
    (etc / "tern.conf").write_text(conf.replace("127.0.0.1:2525", f"127.0.0.1:{t.port}"))
    t.spool = tmp_path / "checkout" / "run" / "spool"
    t.maildir_root = tmp_path / "checkout" / "run" / "mail"
    t.start()
    c = t.client()
    r = c.ehlo()
    assert r.lines[0].startswith("localhost")
    c.deliver("bob@example.test", ["root@localhost"], simple_body())
    c.deliver("bob@example.test", ["bob@localhost"], simple_body())
    assert len(t.wait_for_messages("alice")) == 1
    assert len(t.wait_for_messages("bob")) == 1
    t.wait_spool_empty()
