"""Delivery status notifications end to end (RFC 3464): a bounce parsed
with Python's email package field by field, one notice per message,
NOTIFY=NEVER, double bounces to the postmaster, and a failing double
bounce that is discarded instead of looping."""

import email
import email.policy
import re
import smtplib
import time

from test_local import maildir_messages, message, need_mail_path


def send_dsn(kite, sender, rcpts, data, mail_options=(), rcpt_options=None):
    """Send with DSN parameters; rcpt_options maps recipient -> list of options."""
    with smtplib.SMTP("127.0.0.1", kite.port, timeout=30) as s:
        s.ehlo("client.example")
        code, _ = s.mail(sender, list(mail_options))
        assert code == 250
        for r in rcpts:
            code, _ = s.rcpt(r, (rcpt_options or {}).get(r, []))
            assert code == 250, (r, code)
        code, _ = s.data(data)
        assert code == 250


def looping(subject, *addrs):
    """A message that already went through ADDRS: delivering to them bounces 5.4.6."""
    extra = b"".join(b"Delivered-To: " + a.encode() + b"\r\n" for a in addrs)
    return message(subject, b"original body\r\n", extra=extra)


def dsn_fields(part):
    """The per-message block and the per-recipient blocks of a message/delivery-status part."""
    blocks = part.get_payload()
    return blocks[0], blocks[1:]


def test_bounce_is_a_complete_rfc3464_report(kite):
    need_mail_path()
    kite.start()
    data = looping(b"bounce me", "dave@sandbox.test", "erin@sandbox.test")
    send_dsn(kite, "alice@sandbox.test", ["dave@sandbox.test", "erin@sandbox.test", "ok@sandbox.test"], data,
             mail_options=["ENVID=env-42"],
             rcpt_options={"dave@sandbox.test": ["NOTIFY=FAILURE", "ORCPT=rfc822;Dave@Sandbox.test"]})
    m = kite.wait_log(r"kite/bounce\[\d+\]: (\w+): sender non-delivery notification: (\w+)", timeout=30)
    orig_id, notice_id = m.group(1), m.group(2)
    maildir_messages(kite.maildir_base / "ok", 1)
    (raw,) = maildir_messages(kite.maildir_base / "alice", 1)
    msg = email.message_from_bytes(raw, policy=email.policy.default)

    # The envelope: null sender; the header: from MAILER-DAEMON to the sender.
    assert msg["Return-Path"] == "<>"
    assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@kite.test"
    assert msg["To"] == "alice@sandbox.test"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Date"] and msg["Message-Id"] and msg["Subject"]
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status", "message/rfc822"]
    human = parts[0].get_content()
    assert "<dave@sandbox.test>: mail forwarding loop for dave@sandbox.test" in human
    assert "<erin@sandbox.test>: mail forwarding loop for erin@sandbox.test" in human

    per_msg, per_rcpt = dsn_fields(parts[1])
    assert per_msg["Reporting-MTA"] == "dns; kite.test"
    assert per_msg["X-Kite-Queue-ID"] == orig_id
    assert per_msg["Original-Envelope-Id"] == "env-42"
    assert email.utils.parsedate_to_datetime(per_msg["Arrival-Date"])
    # One notice for the message, listing both failed recipients and not the delivered one.
    assert len(per_rcpt) == 2
    by_rcpt = {b["Final-Recipient"]: b for b in per_rcpt}
    dave = by_rcpt["rfc822; dave@sandbox.test"]
    assert dave["Original-Recipient"] == "rfc822;Dave@Sandbox.test"
    assert dave["Action"] == "failed"
    assert dave["Status"] == "5.4.6"
    assert dave["Diagnostic-Code"] == "X-Kite; mail forwarding loop for dave@sandbox.test"
    assert email.utils.parsedate_to_datetime(dave["Last-Attempt-Date"])
    assert dave["Will-Retry-Until"] is None
    erin = by_rcpt["rfc822; erin@sandbox.test"]
    assert erin["Original-Recipient"] is None
    assert erin["Status"] == "5.4.6"

    # RET=FULL is the default: the original comes back whole.
    returned = parts[2].get_payload()[0]
    assert returned["Subject"] == "bounce me"
    assert returned.get_content().replace("\r\n", "\n") == "original body\n"
    assert len(re.findall(rf"{orig_id}: sender non-delivery notification", kite.log_text())) == 1
    kite.wait_log(rf"{notice_id}: to=<alice@sandbox\.test>, .*status=sent \(delivered to maildir\)")


def test_ret_hdrs_returns_only_the_header(kite):
    need_mail_path()
    kite.start()
    send_dsn(kite, "alice@sandbox.test", ["dave@sandbox.test"], looping(b"headers only", "dave@sandbox.test"),
             mail_options=["RET=HDRS"])
    (raw,) = maildir_messages(kite.maildir_base / "alice", 1, timeout=30)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    third = list(msg.iter_parts())[2]
    assert third.get_content_type() == "text/rfc822-headers"
    text = third.get_payload(decode=True).decode()
    assert "Subject: headers only" in text
    assert "original body" not in text


def test_notify_never_suppresses_the_notice(kite):
    need_mail_path()
    kite.start()
    send_dsn(kite, "alice@sandbox.test", ["dave@sandbox.test"], looping(b"never", "dave@sandbox.test"),
             rcpt_options={"dave@sandbox.test": ["NOTIFY=NEVER"]})
    m = kite.wait_log(r"(\w+): to=<dave@sandbox\.test>, .*status=bounced", timeout=30)
    kite.wait_log(rf"{m.group(1)}: removed", timeout=30)
    time.sleep(1)
    assert "non-delivery notification" not in kite.log_text()
    assert not (kite.maildir_base / "alice").exists()


def test_bounce_of_a_bounce_goes_to_the_postmaster(kite):
    need_mail_path()
    kite.set(**{"2bounce_notice_recipient": "postmaster@sandbox.test"})
    kite.start()
    send_dsn(kite, "", ["dave@sandbox.test"], looping(b"null sender", "dave@sandbox.test"))
    m = kite.wait_log(r"kite/bounce\[\d+\]: (\w+): postmaster non-delivery notification: (\w+)", timeout=30)
    (raw,) = maildir_messages(kite.maildir_base / "postmaster", 1)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    # The double bounce comes from double_bounce_sender, so its own failure ends the chain.
    assert msg["Return-Path"] == "<double-bounce@kite.test>"
    assert msg["To"] == "postmaster@sandbox.test"
    per_msg, per_rcpt = dsn_fields(list(msg.iter_parts())[1])
    assert per_msg["X-Kite-Queue-ID"] == m.group(1)
    assert per_rcpt[0]["Status"] == "5.4.6"


def test_failing_double_bounce_is_discarded(kite):
    need_mail_path()
    # The postmaster address itself is undeliverable: an unknown local user.
    kite.set(**{"2bounce_notice_recipient": "no-such-postmaster@kite.test"})
    kite.start()
    send_dsn(kite, "", ["dave@sandbox.test"], looping(b"doomed", "dave@sandbox.test"))
    m = kite.wait_log(r"(\w+): postmaster non-delivery notification: (\w+)", timeout=30)
    kite.wait_log(rf"{m.group(2)}: to=<no-such-postmaster@kite\.test>, .*dsn=5\.1\.1, status=bounced", timeout=30)
    kite.wait_log(rf"{m.group(2)}: undeliverable postmaster notification discarded", timeout=30)
    time.sleep(2)
    # Nothing more: no third notice, no loop.
    assert kite.log_text().count("non-delivery notification") == 1


def test_notify_success_sends_a_delivery_report(kite):
    need_mail_path()
    kite.start()
    send_dsn(kite, "alice@sandbox.test", ["gina@sandbox.test", "hal@sandbox.test"], message(b"tell me", b"x\r\n"),
             mail_options=["RET=FULL"],
             rcpt_options={"gina@sandbox.test": ["NOTIFY=SUCCESS,FAILURE"]})
    m = kite.wait_log(r"kite/bounce\[\d+\]: (\w+): sender delivery status notification: (\w+)", timeout=30)
    maildir_messages(kite.maildir_base / "gina", 1)
    (raw,) = maildir_messages(kite.maildir_base / "alice", 1)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Return-Path"] == "<>"
    parts = list(msg.iter_parts())
    # RFC 3461 §4.3: success reports return the header only, even with RET=FULL.
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    per_msg, per_rcpt = dsn_fields(parts[1])
    assert per_msg["X-Kite-Queue-ID"] == m.group(1)
    # Only the recipient that asked is reported.
    assert len(per_rcpt) == 1
    assert per_rcpt[0]["Final-Recipient"] == "rfc822; gina@sandbox.test"
    assert per_rcpt[0]["Action"] == "delivered"
    assert per_rcpt[0]["Status"] == "2.0.0"


def test_delay_warning_reports_delayed_recipient(kite):
    need_mail_path()
    user = kite.user
    work = kite.base / "work"
    work.mkdir()
    fwd = work / "fwd"
    fwd.write_text("\"|echo busy; exit 75\"\n")
    import os
    os.chmod(fwd, 0o644)
    if os.geteuid() == 0:
        os.chown(work, kite.uid, kite.gid)
        os.chown(fwd, kite.uid, kite.gid)
    kite.set(forward_path=str(fwd), delay_warning_time="1s")
    kite.start()
    send_dsn(kite, "alice@sandbox.test", [f"{user}@kite.test"], message(b"slow", b"x\r\n"))
    m = kite.wait_log(r"kite/bounce\[\d+\]: (\w+): sender delay notification: (\w+)", timeout=40)
    (raw,) = maildir_messages(kite.maildir_base / "alice", 1)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    per_msg, per_rcpt = dsn_fields(parts[1])
    assert per_msg["X-Kite-Queue-ID"] == m.group(1)
    assert per_rcpt[0]["Final-Recipient"] == f"rfc822; {user}@kite.test"
    assert per_rcpt[0]["Action"] == "delayed"
    assert per_rcpt[0]["Status"] == "4.3.0"
    assert "busy" in per_rcpt[0]["Diagnostic-Code"]
    assert email.utils.parsedate_to_datetime(per_rcpt[0]["Will-Retry-Until"])
    # Only one warning per message.
    time.sleep(3)
    assert kite.log_text().count("sender delay notification") == 1
