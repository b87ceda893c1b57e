"""qmgr with the real programs around it: smtpd -> cleanup -> qmgr -> local
(virtual mailboxes) and bounce. Skipped until those daemons are built."""

import re
import smtplib
import time
from pathlib import Path

import pytest

from conftest import LIBEXEC

needs_flow = pytest.mark.skipif(
    not all((LIBEXEC / d).exists() for d in ("smtpd", "cleanup", "qmgr", "local", "bounce")),
    reason="smtpd, cleanup, qmgr, local and bounce must be built")


def maildir_files(kite, user):
    new = Path(kite.maildir_base) / user / "new"
    cur = Path(kite.maildir_base) / user / "cur"
    return [p for d in (new, cur) if d.exists() for p in d.iterdir() if p.is_file()]


@needs_flow
def test_thousand_messages_to_ten_mailboxes_all_arrive_once(kite):
    kite.start()
    users = ["user%d" % i for i in range(10)]
    sent = 0
    for batch in range(10):
        with smtplib.SMTP("127.0.0.1", kite.port, timeout=60) as s:
            s.ehlo("client.test")
            for i in range(100):
                n = batch * 100 + i
                rcpt = "%s@sandbox.test" % users[n % 10]
                msg = ("From: sender@example.org\r\nTo: %s\r\nSubject: message %d\r\n"
                       "Message-ID: <m%d@example.org>\r\n\r\nbody of message %d\r\n" % (rcpt, n, n, n))
                s.sendmail("sender@example.org", [rcpt], msg)
                sent += 1
    assert sent == 1000
    deadline = time.time() + 180
    while time.time() < deadline:
        counts = [len(maildir_files(kite, u)) for u in users]
        if sum(counts) >= 1000:
            break
        time.sleep(0.5)
    counts = [len(maildir_files(kite, u)) for u in users]
    assert counts == [100] * 10, "%s\n%s" % (counts, kite.log_tail())
    # every message exactly once, in the right mailbox
    for u in users:
        seen = set()
        for p in maildir_files(kite, u):
            m = re.search(rb"Subject: message (\d+)", p.read_bytes())
            assert m
            n = int(m.group(1))
            assert users[n % 10] == u
            seen.add(n)
        assert len(seen) == 100
    deadline = time.time() + 30
    while len(re.findall(r": removed$", kite.log_text(), re.M)) < 1000 and time.time() < deadline:
        time.sleep(0.2)
    text = kite.log_text()
    assert len(re.findall(r": removed$", text, re.M)) == 1000
    assert len(re.findall(r"\(queue active\)", text)) >= 1000
    assert len(re.findall(r"status=sent", text)) >= 1000


@needs_flow
def test_bounce_notice_reaches_the_sender(kite):
    kite.set(default_transport="error:remote delivery disabled")
    kite.start()
    with smtplib.SMTP("127.0.0.1", kite.port, timeout=30) as s:
        s.sendmail("alice@sandbox.test", ["nobody@elsewhere.example"],
                   "From: alice@sandbox.test\r\nSubject: doomed\r\n\r\nhello\r\n")
    m = kite.wait_log(r"(\w+): to=<nobody@elsewhere.example>, relay=none, .*dsn=5\.0\.0, status=bounced \(remote delivery disabled\)")
    qid = m.group(1)
    kite.wait_log(re.escape(qid) + r": removed", timeout=20)
    files = kite.wait_for_files(Path(kite.maildir_base) / "alice" / "new", 1, timeout=20)
    report = files[0].read_bytes()
    assert b"multipart/report" in report and b"report-type=delivery-status" in report
    assert b"nobody@elsewhere.example" in report
