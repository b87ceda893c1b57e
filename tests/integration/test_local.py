"""Local delivery end to end: SMTP in, Maildir / mbox / .forward / pipes out.

Every test runs a real instance (smtpd, cleanup, qmgr, local) and reads
real mailboxes. Until the whole mail path is built the tests skip.
"""

import os
import subprocess
import re
import smtplib
import time
from pathlib import Path

import pytest

from conftest import LIBEXEC

MAIL_DAEMONS = ("smtpd", "cleanup", "qmgr", "local", "bounce")


def need_mail_path():
    missing = [d for d in MAIL_DAEMONS if not (LIBEXEC / d).exists()]
    if missing:
        pytest.skip("not built yet: " + ", ".join(missing))


def send(kite, sender, rcpts, data, eight_bit=False):
    """One message over SMTP; data is bytes with CRLF line ends."""
    with smtplib.SMTP("127.0.0.1", kite.port, timeout=30) as s:
        s.ehlo("client.example")
        opts = ["BODY=8BITMIME"] if eight_bit else []
        s.sendmail(sender, rcpts, data, mail_options=opts)


def message(subject, body, extra=b""):
    """A complete message with Date and Message-ID so nothing is added to it."""
    return (b"From: Alice <alice@example.org>\r\n"
            b"To: somebody\r\n"
            b"Subject: " + subject + b"\r\n"
            b"Date: Sun, 29 Nov 2026 05:00:00 +0000\r\n"
            b"Message-ID: <" + subject.replace(b" ", b".") + b"@example.org>\r\n"
            + extra + b"\r\n" + body)


def strip_added(text, rcpt):
    """Split what delivery prepended (Return-Path, Delivered-To) and the trace headers."""
    lines = text.split(b"\n")
    assert lines[0].startswith(b"Return-Path: <"), lines[0]
    assert lines[1] == b"Delivered-To: " + rcpt.encode(), lines[1]
    rest = lines[2:]
    # Received: headers (with their folded lines) are the MTA's; drop them.
    while rest and (rest[0].startswith(b"Received:") or rest[0][:1] in (b" ", b"\t")):
        rest.pop(0)
    return lines[0], b"\n".join(rest)


def lf(data):
    return data.replace(b"\r\n", b"\n")


def maildir_messages(path, n, timeout=20):
    files = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        new = Path(path) / "new"
        files = sorted(new.iterdir()) if new.is_dir() else []
        if len(files) >= n:
            return [f.read_bytes() for f in files]
        time.sleep(0.1)
    raise AssertionError(f"{len(files)} messages in {path}, wanted {n}")


def chown_to_instance(kite, *paths):
    if os.geteuid() == 0:
        for p in paths:
            os.chown(p, kite.uid, kite.gid)


BODY_8BIT = (b"Hello,\r\n"
             b"From the start of a line.\r\n"
             b">From already quoted.\r\n"
             b"caf\xc3\xa9 \xe2\x82\xac 8-bit kept\r\n"
             b"..leading dots\r\n"
             b"\r\n"
             b"last line\r\n")


def test_smtp_to_maildir_is_byte_identical(kite):
    need_mail_path()
    kite.start()
    data = message(b"maildir test", BODY_8BIT)
    send(kite, "alice@example.org", ["bob@sandbox.test"], data, eight_bit=True)
    (got,) = maildir_messages(kite.maildir_base / "bob", 1)
    rp, rest = strip_added(got, "bob@sandbox.test")
    assert rp == b"Return-Path: <alice@example.org>"
    assert rest == lf(data)
    m = kite.wait_log(r"kite/local\[\d+\]: (\w+): to=<bob@sandbox\.test>, relay=virtual, delay=[\d.]+, "
                      r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, status=sent \(delivered to maildir\)")
    # Maildir file names: time.MusecPpid_Rrandom.host
    name = sorted((kite.maildir_base / "bob" / "new").iterdir())[0].name
    assert re.fullmatch(r"\d+\.M\d{6}P\d+_R[0-9a-f]{16}\.kite\.test", name), name
    assert not list((kite.maildir_base / "bob" / "tmp").iterdir())


def test_smtp_to_mbox_quotes_from_lines(kite):
    need_mail_path()
    spool = kite.base / "spool"
    spool.mkdir()
    chown_to_instance(kite, spool)
    kite.set(mail_spool_directory=str(spool))
    kite.start()
    user = kite.user
    data = message(b"mbox test", BODY_8BIT)
    send(kite, "alice@example.org", [f"{user}@kite.test"], data, eight_bit=True)
    kite.wait_log(rf"to=<{user}@kite\.test>, relay=local, .*dsn=2\.0\.0, status=sent \(delivered to mailbox\)",
                  timeout=20)
    box = (spool / user).read_bytes()
    first, rest = box.split(b"\n", 1)
    assert re.fullmatch(rb"From alice@example\.org  \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}", first), first
    rp, rest = strip_added(rest, f"{user}@kite.test")
    want = lf(data).replace(b"\nFrom the start", b"\n>From the start") + b"\n"
    assert rest == want
    assert oct((spool / user).stat().st_mode & 0o777) == "0o600"
    assert not (spool / f"{user}.lock").exists()


def test_dot_forward_to_pipe_and_maildir(kite):
    need_mail_path()
    user = kite.user
    fwd = kite.base / "forward"
    fwd.mkdir()
    out = kite.base / "piped"
    out.mkdir()
    chown_to_instance(kite, fwd, out)
    f = fwd / user
    f.write_text(f"# comment\n\"|/bin/cat > {out}/copy\", carol@sandbox.test\n")
    chown_to_instance(kite, f)
    os.chmod(f, 0o644)
    kite.set(forward_path=f"{fwd}/$user")
    kite.start()
    data = message(b"forward test", b"forwarded body\r\n")
    send(kite, "alice@example.org", [f"{user}@kite.test"], data)
    kite.wait_log(rf"to=<{user}@kite\.test>, relay=local, .*status=sent \(delivered to command: /bin/cat",
                  timeout=20)
    (got,) = maildir_messages(kite.maildir_base / "carol", 1)
    # The forwarded copy records the forwarding address for loop detection.
    assert f"Delivered-To: {user}@kite.test".encode() in got
    assert got.endswith(b"forwarded body\n")
    kite.wait_log(rf"to=<carol@sandbox\.test>, orig_to=<{user}@kite\.test>, relay=local, .*status=sent "
                  rf"\(forwarded as \w+\)")
    copy = (out / "copy").read_bytes()
    assert copy.startswith(b"Return-Path: <alice@example.org>\nDelivered-To: ")
    assert copy.endswith(b"forwarded body\n")


def test_group_writable_forward_is_refused(kite):
    need_mail_path()
    spool = kite.base / "spool"
    spool.mkdir()
    user = kite.user
    fwd = kite.base / "forward"
    fwd.mkdir()
    f = fwd / user
    f.write_text("carol@sandbox.test\n")
    chown_to_instance(kite, spool, fwd, f)
    os.chmod(f, 0o664)
    kite.set(forward_path=f"{fwd}/$user", mail_spool_directory=str(spool))
    kite.start()
    send(kite, "alice@example.org", [f"{user}@kite.test"], message(b"gw", b"x\r\n"))
    kite.wait_log(r"warning: refusing .*forward/\S+ is group or world writable", timeout=20)
    kite.wait_log(rf"to=<{user}@kite\.test>, relay=local, .*status=sent \(delivered to mailbox\)")
    assert not (kite.maildir_base / "carol").exists()


def test_pipe_exit_75_defers_then_delivers(kite):
    need_mail_path()
    user = kite.user
    work = kite.base / "work"
    work.mkdir()
    script = work / "flaky.sh"
    script.write_text("#!/bin/sh\n"
                      f"if [ ! -e {work}/seen ]; then touch {work}/seen; echo try later; exit 75; fi\n"
                      f"cat > {work}/delivered\n")
    os.chmod(script, 0o755)
    fwd = work / "fwd"
    fwd.write_text(f"|{script}\n")
    os.chmod(fwd, 0o644)
    chown_to_instance(kite, work, script, fwd)
    kite.set(forward_path=str(fwd))
    kite.start()
    send(kite, "alice@example.org", [f"{user}@kite.test"], message(b"flaky", b"eventually\r\n"))
    kite.wait_log(rf"to=<{user}@kite\.test>, relay=local, .*dsn=4\.3\.0, status=deferred "
                  rf"\(Command died with status 75: .*try later\)", timeout=20)
    kite.wait_log(rf"to=<{user}@kite\.test>, relay=local, .*dsn=2\.0\.0, status=sent \(delivered to command",
                  timeout=30)
    assert (work / "delivered").read_bytes().endswith(b"eventually\n")


def test_pipe_gets_clean_environment(kite):
    need_mail_path()
    user = kite.user
    work = kite.base / "work"
    work.mkdir()
    fwd = work / "fwd"
    fwd.write_text(f"\"|/usr/bin/env > {work}/env\"\n")
    os.chmod(fwd, 0o644)
    chown_to_instance(kite, work, fwd)
    kite.set(forward_path=str(fwd))
    kite.start()
    send(kite, "alice@example.org", [f"{user}@kite.test"], message(b"env", b"x\r\n"))
    kite.wait_log(rf"to=<{user}@kite\.test>, .*status=sent \(delivered to command", timeout=20)
    env = dict(line.split("=", 1) for line in (work / "env").read_text().splitlines())
    assert env["SENDER"] == "alice@example.org"
    assert env["RECIPIENT"] == f"{user}@kite.test"
    assert env["USER"] == user and env["LOGNAME"] == user
    assert env["LOCAL"] == user and env["DOMAIN"] == "kite.test"
    assert env["PATH"] == "/usr/bin:/bin"
    assert env["ORIGINAL_RECIPIENT"] == f"{user}@kite.test"
    assert "KITE_CONFIG_DIR" not in env


def test_pipe_over_time_limit_is_killed_and_bounced(kite):
    need_mail_path()
    user = kite.user
    work = kite.base / "work"
    work.mkdir()
    fwd = work / "fwd"
    fwd.write_text("\"|/bin/sleep 30\"\n")
    os.chmod(fwd, 0o644)
    chown_to_instance(kite, work, fwd)
    kite.set(forward_path=str(fwd), command_time_limit="1s")
    kite.start()
    t0 = time.time()
    send(kite, "alice@example.org", [f"{user}@kite.test"], message(b"slow", b"x\r\n"))
    kite.wait_log(rf"to=<{user}@kite\.test>, relay=local, .*dsn=5\.3\.0, status=bounced \(command time limit "
                  rf"exceeded", timeout=20)
    assert time.time() - t0 < 15
    left = subprocess.run(["pgrep", "-f", "^/bin/sleep 30$"], capture_output=True, text=True).stdout.split()
    assert left == []


def test_unprivileged_instance_refuses_other_users(kite):
    if kite.uid == 0 or kite.root_mode:
        pytest.skip("needs an unprivileged instance")
    kite.start()
    send(kite, "alice@example.org", ["daemon@kite.test"], message(b"other user", b"x\r\n"))
    kite.wait_log(r"to=<daemon@kite\.test>, relay=local, .*dsn=4\.3\.0, status=deferred \(an unprivileged mail "
                  r"system cannot deliver as user \"daemon\"", timeout=20)


def test_delivered_to_loop_bounces(kite):
    need_mail_path()
    kite.start()
    data = message(b"loop", b"x\r\n", extra=b"Delivered-To: dave@sandbox.test\r\n")
    send(kite, "alice@example.org", ["dave@sandbox.test"], data)
    kite.wait_log(r"to=<dave@sandbox\.test>, relay=virtual, .*dsn=5\.4\.6, status=bounced "
                  r"\(mail forwarding loop for dave@sandbox\.test\)", timeout=20)
    assert not (kite.maildir_base / "dave" / "new").exists() or \
        not list((kite.maildir_base / "dave" / "new").iterdir())


@pytest.fixture
def system_user(kite):
    """A throwaway login user with its home in the instance tree (root only)."""
    import pwd
    import subprocess
    if os.geteuid() != 0:
        pytest.skip("needs root")
    name = "kt%d" % (os.getpid() % 100000)
    home = kite.base / "home" / name
    home.parent.mkdir()
    os.chmod(kite.base / "home", 0o755)
    subprocess.run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh", name],
                   check=True, capture_output=True)
    home.mkdir()
    pw = pwd.getpwnam(name)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    os.chmod(home, 0o700)
    try:
        yield pw
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def test_root_instance_delivers_as_the_recipient(kite, system_user):
    need_mail_path()
    kite.as_root_with_mail_owner()
    work = kite.base / "work"
    work.mkdir()
    os.chmod(work, 0o1777)
    kite.set(home_mailbox="Maildir/")
    pw = system_user
    fwd = Path(pw.pw_dir) / ".forward"
    fwd.write_text(f"\\{pw.pw_name}, \"|/usr/bin/id -u > {work}/uid\"\n")
    os.chown(fwd, pw.pw_uid, pw.pw_gid)
    kite.start()
    send(kite, "alice@example.org", [f"{pw.pw_name}@kite.test"], message(b"as user", b"mine\r\n"))
    (got,) = maildir_messages(Path(pw.pw_dir) / "Maildir", 1)
    assert got.endswith(b"mine\n")
    new = Path(pw.pw_dir) / "Maildir" / "new"
    f = next(new.iterdir())
    # Written by a process that had become the user: the user owns the file and the Maildir.
    assert f.stat().st_uid == pw.pw_uid and f.stat().st_gid == pw.pw_gid
    assert new.stat().st_uid == pw.pw_uid
    kite.wait_log(rf"to=<{pw.pw_name}@kite\.test>, relay=local, .*status=sent \(delivered to command: /usr/bin/id",
                  timeout=20)
    assert (work / "uid").read_text().strip() == str(pw.pw_uid)
    assert (work / "uid").stat().st_uid == pw.pw_uid
