"""sendmail end to end: -t with Bcc, exit codes, dots, submission while the
mail system is down, -bs through smtpd -S, mailq and newaliases."""

import re
import time
from pathlib import Path

import pytest

from conftest import BIN, LIBEXEC, wait_until

DELIVERY = all((LIBEXEC / d).exists() for d in ("qmgr", "local"))


def queue_files(kite, queue):
    d = Path(kite.queue_dir) / queue
    if not d.exists():
        return []
    return sorted(p.name for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))


def hold_everything(kite):
    table = kite.confdir / "hold.pcre"
    table.write_text("/^Subject: hold/  HOLD\n")
    kite.set(header_checks=f"pcre:{table}")


def mailbox(kite, user):
    """Messages delivered to USER@sandbox.test (Maildir new/)."""
    d = Path(kite.maildir_base) / user / "new"
    return sorted(d.iterdir()) if d.exists() else []


def test_sendmail_t_extracts_recipients_and_removes_bcc(kite):
    hold_everything(kite)
    kite.start()
    msg = ("From: Alice <alice@kite.test>\n"
           "To: Ann <ann@sandbox.test>, bo@sandbox.test\n"
           "Cc: \"Cy, C.\" <cy@sandbox.test>\n"
           "Bcc: secret@sandbox.test\n"
           "Subject: hold for inspection\n\nhello\n")
    r = kite.run("sendmail", "-t", "-i", input=msg)
    assert r.returncode == 0, r.stderr
    (qid,) = wait_until(lambda: queue_files(kite, "hold"), what="held message", kite=kite)
    env = kite.run("kitecat", "-e", qid).stdout
    for rcpt in ("ann@sandbox.test", "bo@sandbox.test", "cy@sandbox.test", "secret@sandbox.test"):
        assert re.search(rf"^recipient: {re.escape(rcpt)}$", env, re.M), env
    headers = kite.run("kitecat", "-h", qid).stdout
    assert "To: Ann <ann@sandbox.test>, bo@sandbox.test" in headers
    assert "Bcc" not in headers and "secret" not in headers
    if not DELIVERY:
        return
    # Released, it reaches every mailbox, and nobody sees the Bcc.
    assert kite.run("kitesuper", "-H", qid).returncode == 0
    for user in ("ann", "bo", "cy", "secret"):
        (path,) = wait_until(lambda: mailbox(kite, user), timeout=20, what=f"delivery to {user}", kite=kite)
        headers = path.read_text(errors="replace").split("\n\n", 1)[0]
        assert not re.search(r"^Bcc:", headers, re.M | re.I)
        if user != "secret":
            assert "secret@" not in headers


def test_sendmail_exit_codes(kite):
    kite.start()
    cases = [
        ((), "x\n", 64, "Recipient addresses must be specified"),
        (("-bd",), "", 64, "not supported"),
        (("-N", "sometimes", "a@b"), "", 64, "bad -N"),
        (("-Q",), "", 64, "unknown option"),
        (("-t",), "Subject: none\n\nx\n", 65, "No recipient addresses found in message header"),
        (("-bv",), "", 64, "Recipient addresses must be specified"),
    ]
    for args, text, code, msg in cases:
        r = kite.run("sendmail", *args, input=text)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        assert msg in r.stderr, (args, r.stderr)
    time.sleep(0.5)
    assert queue_files(kite, "maildrop") == []
    assert queue_files(kite, "incoming") == []


@pytest.mark.skipif(not DELIVERY, reason="needs qmgr and local")
def test_sendmail_bv_reports_without_delivering(kite):
    """-bv: every recipient is resolved as for delivery, the sender gets one
    report (deliverable / undeliverable), and nothing is delivered."""
    kite.start()
    r = kite.run("sendmail", "-f", "alice@sandbox.test", "-bv", "bob@sandbox.test", "nobody-such@kite.test",
                 input="")
    assert r.returncode == 0, r.stderr
    assert "Mail Delivery Status Report will be mailed to <alice@sandbox.test>" in r.stdout
    (path,) = wait_until(lambda: mailbox(kite, "alice"), timeout=20, what="verify report", kite=kite)
    report = path.read_text(errors="replace")
    assert re.search(r"^Subject: Mail Delivery Status Report\s*$", report, re.M), report
    assert "report-type=delivery-status" in report
    blocks = {}
    for block in re.split(r"\r?\n\r?\n", report):
        m = re.search(r"^Final-Recipient: rfc822; (\S+)", block, re.M)
        if m:
            blocks[m.group(1)] = block
    assert set(blocks) == {"bob@sandbox.test", "nobody-such@kite.test"}, report
    assert re.search(r"^Action: deliverable\s*$", blocks["bob@sandbox.test"], re.M)
    assert re.search(r"^Status: 2\.\d+\.\d+\s*$", blocks["bob@sandbox.test"], re.M)
    assert re.search(r"^Diagnostic-Code: .*deliverable via local", blocks["bob@sandbox.test"], re.M)
    assert re.search(r"^Action: undeliverable\s*$", blocks["nobody-such@kite.test"], re.M)
    assert re.search(r"^Status: 5\.1\.1\s*$", blocks["nobody-such@kite.test"], re.M)
    assert re.search(r"^Diagnostic-Code: .*unknown user", blocks["nobody-such@kite.test"], re.M)
    # The probe itself is gone, bob got nothing, and no one else got mail.
    kite.wait_log(r"status=deliverable", timeout=10)
    kite.wait_log(r"status=undeliverable", timeout=10)
    wait_until(lambda: not any(queue_files(kite, q) for q in ("incoming", "active", "deferred", "maildrop")),
               what="empty queue", kite=kite)
    time.sleep(1)
    assert mailbox(kite, "bob") == []
    assert queue_files(kite, "trace") == [] and queue_files(kite, "bounce") == [] and queue_files(kite, "defer") == []
    assert len(mailbox(kite, "alice")) == 1


@pytest.mark.skipif(not DELIVERY, reason="needs qmgr and local")
def test_sendmail_bv_expands_aliases_but_runs_and_writes_nothing(kite):
    """A probe to an alias with an address, a command and a file is resolved
    through the alias; the command is not run, the file not written, nothing
    forwarded."""
    from test_aliases import aliases
    from test_local import chown_to_instance, need_mail_path

    need_mail_path()
    work = kite.base / "work"
    work.mkdir()
    chown_to_instance(kite, work)
    aliases(kite, f"team: bob@sandbox.test, \"|/bin/cat > {work}/piped\", {work}/archive\n")
    kite.start()
    r = kite.run("sendmail", "-f", "alice@sandbox.test", "-bv", "team@kite.test", input="")
    assert r.returncode == 0, r.stderr
    (path,) = wait_until(lambda: mailbox(kite, "alice"), timeout=20, what="verify report", kite=kite)
    report = path.read_text(errors="replace")
    assert re.search(r"^Final-Recipient: rfc822; team@kite\.test\s*$", report, re.M), report
    assert re.search(r"^Action: deliverable\s*$", report, re.M), report
    assert not re.search(r"^Action: (?!deliverable)", report, re.M), report
    wait_until(lambda: not any(queue_files(kite, q) for q in ("incoming", "active", "deferred")),
               what="empty queue", kite=kite)
    time.sleep(1)
    assert not (work / "piped").exists()
    assert not (work / "archive").exists()
    assert mailbox(kite, "bob") == []
    assert len(mailbox(kite, "alice")) == 1


def test_sendmail_dot_ends_input_unless_i(kite):
    hold_everything(kite)
    kite.start()
    r = kite.run("sendmail", "a@example.com", input="Subject: hold dot\n\nbefore\n.\nafter\n")
    assert r.returncode == 0
    r = kite.run("sendmail", "-oi", "a@example.com", input="Subject: hold dot i\n\nbefore\n.\nafter\n")
    assert r.returncode == 0
    ids = wait_until(lambda: len(queue_files(kite, "hold")) == 2 and queue_files(kite, "hold"),
                     what="two held messages", kite=kite)
    bodies = {}
    for qid in ids:
        out = kite.run("kitecat", "-h", "-b", qid).stdout
        bodies["dot i" in out] = out
    assert "after" not in bodies[False]
    assert "before\n.\nafter" in bodies[True]


def test_mail_submitted_while_stopped_goes_out_after_start(kite):
    kite.start()
    kite.stop()
    r = kite.run("sendmail", "-f", "alice", "ann@sandbox.test", input="Subject: while down\n\nqueued offline\n")
    assert r.returncode == 0, r.stderr
    waiting = queue_files(kite, "maildrop")
    assert len(waiting) == 1
    # The queue can be listed while the system is down (mail_owner runs showq directly).
    listing = kite.run("kitequeue", "-p")
    assert listing.returncode == 0, listing.stderr
    assert waiting[0] in listing.stdout
    kite.start()
    kite.wait_log(r"kite/pickup\[\d+\]: \w+: uid=\d+ from=<alice>")
    wait_until(lambda: queue_files(kite, "maildrop") == [], what="maildrop emptied", kite=kite)
    if DELIVERY:
        (path,) = wait_until(lambda: mailbox(kite, "ann"), timeout=20, what="delivery", kite=kite)
        assert "queued offline" in path.read_text()


@pytest.mark.skipif(not (LIBEXEC / "smtpd").exists(), reason="smtpd not built")
def test_sendmail_bs_speaks_smtp(kite):
    hold_everything(kite)
    kite.start()
    session = ("EHLO client.example\r\nMAIL FROM:<alice@kite.test>\r\nRCPT TO:<ann@example.com>\r\n"
               "DATA\r\nSubject: hold bs\r\n\r\nvia -bs\r\n.\r\nQUIT\r\n")
    r = kite.run("sendmail", "-bs", input=session)
    assert r.returncode == 0, r.stderr
    codes = re.findall(r"^(\d{3})[ -]", r.stdout, re.M)
    assert codes[0] == "220" and codes[-1] == "221", r.stdout
    assert "354" in codes
    assert r.stdout.count("\n250 ") >= 3 or r.stdout.count("250 ") >= 3, r.stdout
    (qid,) = wait_until(lambda: queue_files(kite, "hold"), what="held message", kite=kite)
    assert "via -bs" in kite.run("kitecat", "-b", qid).stdout


def test_mailq_and_newaliases_names(kite):
    hold_everything(kite)
    kite.start()
    assert kite.run("sendmail", "a@example.com", input="Subject: hold q\n\nx\n").returncode == 0
    wait_until(lambda: queue_files(kite, "hold"), what="held message", kite=kite)
    mq = kite.run("mailq")
    assert mq.returncode == 0, mq.stderr
    assert mq.stdout == kite.run("kitequeue", "-p").stdout
    assert kite.run("sendmail", "-bp").stdout == mq.stdout
    aliases = kite.confdir / "aliases"
    aliases.write_text("postmaster: root\nteam: ann, bo\n")
    kite.set(alias_database=f"hash:{aliases}")
    r = kite.run("newaliases")
    assert r.returncode == 0, r.stderr
    assert (kite.confdir / "aliases.db").exists()
    if (BIN / "kitemap").exists():
        q = kite.run("kitemap", "-q", "team", f"hash:{aliases}")
        assert q.returncode == 0 and "ann" in q.stdout, q.stderr
