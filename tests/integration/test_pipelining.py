"""PIPELINING (RFC 2920): a whole transaction in one write, replies in order."""

from smtp_client import check_stored, dot_stuff, queued_id

BODY = b"Subject: pipelined\r\n\r\none write\r\n.leading dot\r\n"


def test_transaction_in_one_write(tern):
    c = tern.client()
    c.ehlo()
    c.send(b"MAIL FROM:<bob@example.test>\r\n"
           b"RCPT TO:<alice@localhost>\r\n"
           b"RCPT TO:<nobody@localhost>\r\n"
           b"RCPT TO:<bob@localhost>\r\n"
           b"DATA\r\n")
    r = c.replies(5)
    r[0].check(250, "2.1.0")
    r[1].check(250, "2.1.5")
    r[2].check(550, "5.1.1", "nobody@localhost")
    r[3].check(250, "2.1.5")
    r[4].check(354)
    c.send(dot_stuff(BODY) + b".\r\n")
    qid = queued_id(c.reply())
    [a] = tern.wait_for_messages("alice")
    [b] = tern.wait_for_messages("bob")
    check_stored(a, "bob@example.test", "alice@localhost", qid, BODY)
    check_stored(b, "bob@example.test", "bob@localhost", qid, BODY)
    assert tern.maildir_names("nobody") == []


def test_end_of_data_and_next_commands_in_one_write(tern):
    c = tern.client()
    c.ehlo()
    c.mail_rcpt_data("bob@example.test", ["alice@localhost"])
    c.send(dot_stuff(BODY) + b".\r\n"
           b"MAIL FROM:<carol@example.test>\r\n"
           b"RCPT TO:<bob@localhost>\r\n"
           b"DATA\r\n")
    r = c.replies(4)
    q1 = queued_id(r[0])
    r[1].check(250, "2.1.0")
    r[2].check(250, "2.1.5")
    r[3].check(354)
    c.send(BODY + b".\r\nRSET\r\nNOOP\r\nQUIT\r\n")
    r = c.replies(4)
    q2 = queued_id(r[0])
    r[1].check(250, "2.0.0")
    r[2].check(250, "2.0.0")
    r[3].check(221, "2.0.0")
    assert c.closed()
    assert q1 != q2
    [a] = tern.wait_for_messages("alice")
    [b] = tern.wait_for_messages("bob")
    check_stored(a, "bob@example.test", "alice@localhost", q1, BODY, for_rcpt="alice@localhost")
    check_stored(b, "carol@example.test", "bob@localhost", q2,
                 BODY.replace(b"\r\n.leading", b"\r\nleading"), for_rcpt="bob@localhost")


def test_pipelined_errors_keep_order(tern):
    c = tern.client()
    c.ehlo()
    c.send(b"NOOP\r\nBOGUS\r\nRCPT TO:<alice@localhost>\r\nMAIL FROM:<bob@example.test>\r\n"
           b"RCPT TO:<x@foreign.example>\r\nRCPT TO:<alice@localhost>\r\nRSET\r\nVRFY x\r\n"
           b"NOOP\r\n")
    codes = [r.code for r in c.replies(9)]
    assert codes == [250, 500, 503, 250, 554, 250, 250, 252, 250]
    c.no_reply(0.3)


def test_many_transactions_in_one_write(tern):
    c = tern.client()
    c.ehlo()
    n = 20
    # DATA ends a command group (RFC 2920 3.1): wait for each 354.
    qids = []
    for i in range(n):
        c.send(b"MAIL FROM:<bob@example.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n")
        r = c.replies(3)
        assert [x.code for x in r] == [250, 250, 354]
        c.send(b"Subject: %d\r\n\r\nbody %d\r\n.\r\n" % (i, i))
        qids.append(queued_id(c.reply()))
    assert len(set(qids)) == n
    msgs = tern.wait_for_messages("alice", n=n)
    assert len(msgs) == n
    assert sorted(m.split(b"\r\n\r\n", 1)[1] for m in msgs) == \
        sorted(b"body %d\r\n" % i for i in range(n))
