"""DMARC aggregate reports (RFC 7489 7.2, src/server/dmarcrep.c and
src/mailauth/dmarc_report.c) end to end: a local unbound publishes DMARC
records with rua=mailto:bob@example.test (a mailbox of the test tern);
messages that pass and fail arrive on the mx listener; when the short
report interval ends the check process drops a report into the maildrop
and it lands in bob's Maildir as a multipart message with a gzipped XML
attachment, which is parsed here with Python's email, gzip and xml.etree.

  rep.test  SPF allows 127.0.0.1 only, DMARC p=reject, authorises reports
            to example.test (rep.test._report._dmarc.example.test)
  ext.test  the same without the authorisation: no report (7.1)
"""

import email
import email.policy
import gzip
import os
import stat
import time
import xml.etree.ElementTree as ET

from dns_fixture import unbound_server  # noqa: F401

INTERVAL = 3
FROM = "dmarc-noreply@test.example"


def txt(s):
    return f'"{s}"'


def zone():
    return [
        f'rep.test TXT {txt("v=spf1 ip4:127.0.0.1 -all")}',
        f'_dmarc.rep.test TXT {txt("v=DMARC1; p=reject; sp=quarantine; adkim=s; pct=100; rua=mailto:bob@example.test")}',
        f'rep.test._report._dmarc.example.test TXT {txt("v=DMARC1")}',
        f'ext.test TXT {txt("v=spf1 ip4:127.0.0.1 -all")}',
        f'_dmarc.ext.test TXT {txt("v=DMARC1; p=none; rua=mailto:bob@example.test")}',
        "client.example A 127.0.0.9",
    ]


def reporting_tern(tern_factory, dns):
    return tern_factory(extra=f"dns_server {dns.address}\nauth_checks on {{\n"
                        f"    dmarc_reports {{\n        from {FROM}\n"
                        f"        org_name \"Tern Test\"\n        interval {INTERVAL}s\n    }}\n}}\n")


def send(t, domain, source, code):
    c = t.client(source=source)
    c.ehlo("client.example")
    c.mail_rcpt_data(f"alice@{domain}", ["alice@localhost"])
    msg = (f"From: Alice <alice@{domain}>\r\nTo: alice@localhost\r\nSubject: hi\r\n"
           f"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <{time.time()}@{domain}>\r\n"
           f"\r\nHello.\r\n").encode()
    c.message(msg).check(code)
    c.cmd("QUIT").check(221)


def parse_report(raw):
    """(message, filename, XML root) of one stored report."""
    m = email.message_from_bytes(raw, policy=email.policy.default)
    assert m.get_content_type() == "multipart/mixed"
    parts = [p for p in m.walk() if p.get_content_type() == "application/gzip"]
    assert len(parts) == 1
    name = parts[0].get_filename()
    root = ET.fromstring(gzip.decompress(parts[0].get_payload(decode=True)))
    return m, name, root


def wait_reports(t, total, timeout=INTERVAL * 4 + 10):
    """Reports in bob@example.test until their rows count `total` messages
    (the messages may straddle an interval's end: then two reports)."""
    deadline = time.time() + timeout
    while True:
        reports = [parse_report(raw) for raw in t.maildir_messages("bob", "example.test")]
        n = sum(int(c.text) for _, _, r in reports for c in r.iter("count"))
        if n >= total or time.time() > deadline:
            return reports
        time.sleep(0.3)


def test_aggregate_report(tern_factory, unbound_server):  # noqa: F811
    dns = unbound_server(zone())
    t = reporting_tern(tern_factory, dns)
    d = t.spool / "dmarc"
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    for _ in range(3):
        send(t, "rep.test", "127.0.0.1", 250)	# SPF pass, aligned: DMARC pass
    for _ in range(2):
        send(t, "rep.test", "127.0.0.2", 550)	# SPF fail: DMARC fail, p=reject
    reports = wait_reports(t, 5)
    assert reports, t.log()
    rows = {}
    for m, name, root in reports:
        assert m["From"] == FROM
        assert m["To"] == "bob@example.test"
        rid = root.findtext("report_metadata/report_id")
        assert m["Subject"] == (f"Report Domain: rep.test Submitter: test.example "
                                f"Report-ID: <{rid}>")
        begin = root.findtext("report_metadata/date_range/begin")
        end = root.findtext("report_metadata/date_range/end")
        assert name == f"test.example!rep.test!{begin}!{end}.xml.gz"
        assert int(begin) <= int(end)
        assert root.findtext("report_metadata/org_name") == "Tern Test"
        assert root.findtext("report_metadata/email") == FROM
        pol = root.find("policy_published")
        assert {c.tag: c.text for c in pol} == {
            "domain": "rep.test", "adkim": "s", "aspf": "r", "p": "reject",
            "sp": "quarantine", "pct": "100"}
        for rec in root.findall("record"):
            row = rec.find("row")
            pe = row.find("policy_evaluated")
            key = (row.findtext("source_ip"), pe.findtext("disposition"),
                   pe.findtext("dkim"), pe.findtext("spf"))
            rows[key] = rows.get(key, 0) + int(row.findtext("count"))
            assert rec.findtext("identifiers/header_from") == "rep.test"
            spf = rec.find("auth_results/spf")
            assert (spf.findtext("domain"), spf.findtext("scope")) == ("rep.test", "mfrom")
            assert spf.findtext("result") == ("pass" if key[0] == "127.0.0.1" else "fail")
            assert rec.find("auth_results/dkim") is None
    assert rows == {("127.0.0.1", "none", "fail", "pass"): 3,
                    ("127.0.0.2", "reject", "fail", "fail"): 2}
    # the report itself was not checked or reported on (local submission)
    assert "event=check ip=127.0.0.1 mailfrom=<dmarc-noreply" not in t.log()


def test_external_not_authorised(tern_factory, unbound_server):  # noqa: F811
    dns = unbound_server(zone())
    t = reporting_tern(tern_factory, dns)
    send(t, "ext.test", "127.0.0.1", 250)
    t.wait_log(r"event=dmarc-report-skipped domain=ext.test rua=<bob@example.test>",
               timeout=INTERVAL * 4 + 10)
    time.sleep(1)
    assert t.maildir_messages("bob", "example.test") == []
    assert "event=dmarc-report domain=ext.test" not in t.log()
