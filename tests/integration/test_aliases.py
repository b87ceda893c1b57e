"""Aliases end to end: lists with addresses, a pipe and a file, owner-
addresses, :include:, recursion and loops, hostile alias data."""

import os
import time
from pathlib import Path

import pytest

from conftest import BIN
from test_local import chown_to_instance, maildir_messages, message, need_mail_path, send


def aliases(kite, text):
    """Write an aliases file and build it (newaliases, or kitemap -A)."""
    src = kite.confdir / "aliases"
    src.write_text(text)
    chown_to_instance(kite, src)
    kite.set(alias_maps=f"hash:{src}", alias_database=f"hash:{src}")
    if (BIN / "sendmail").exists():
        kite.run("newaliases", check=True)
    elif (BIN / "kitemap").exists():
        kite.run("kitemap", "-A", f"hash:{src}", check=True)
    else:
        pytest.skip("neither newaliases nor kitemap is built")
    assert Path(str(src) + ".db").exists()
    chown_to_instance(kite, Path(str(src) + ".db"))


def test_alias_list_with_address_pipe_and_file(kite):
    need_mail_path()
    work = kite.base / "work"
    work.mkdir()
    chown_to_instance(kite, work)
    aliases(kite, "# team list\n"
                  f"team: bob@sandbox.test, \"|/bin/cat > {work}/piped\", {work}/archive\n"
                  "owner-team: carol@sandbox.test\n")
    kite.start()
    data = message(b"alias test", b"to the team\r\n")
    send(kite, "alice@example.org", ["team@kite.test"], data)
    kite.wait_log(r"to=<team@kite\.test>, relay=local, .*status=sent \(delivered to command: /bin/cat",
                  timeout=20)
    kite.wait_log(rf"to=<team@kite\.test>, relay=local, .*status=sent \(delivered to file: {work}/archive\)")
    kite.wait_log(r"to=<bob@sandbox\.test>, orig_to=<team@kite\.test>, relay=local, .*"
                  r"status=sent \(forwarded as \w+\)")
    (got,) = maildir_messages(kite.maildir_base / "bob", 1)
    # The forwarded copy carries the list owner as its envelope sender.
    assert got.startswith(b"Return-Path: <owner-team@kite.test>\n")
    assert b"Delivered-To: team@kite.test\n" in got
    assert (work / "piped").read_bytes().endswith(b"to the team\n")
    archive = (work / "archive").read_bytes()
    assert archive.startswith(b"From owner-team@kite.test  ")
    assert archive.endswith(b"to the team\n\n")


def test_alias_include_and_loop(kite):
    need_mail_path()
    inc = kite.base / "list.inc"
    inc.write_text("# members\nerin@sandbox.test\nfrank@sandbox.test\n")
    chown_to_instance(kite, inc)
    os.chmod(inc, 0o644)
    aliases(kite, f"staff: :include:{inc}\n"
                  "ping: pong\n"
                  "pong: ping\n")
    kite.start()
    send(kite, "alice@example.org", ["staff@kite.test"], message(b"include", b"hello staff\r\n"))
    maildir_messages(kite.maildir_base / "erin", 1)
    maildir_messages(kite.maildir_base / "frank", 1)
    # ping -> pong -> ping: the loop ends at the user lookup, never spins.
    send(kite, "alice@example.org", ["ping@kite.test"], message(b"loop", b"x\r\n"))
    kite.wait_log(r"to=<ping@kite\.test>, relay=local, .*dsn=5\.1\.1, status=bounced "
                  r"\(unknown user: \"ping\"\)", timeout=20)


def test_writable_include_is_refused(kite):
    need_mail_path()
    inc = kite.base / "open.inc"
    inc.write_text("erin@sandbox.test\n")
    chown_to_instance(kite, inc)
    os.chmod(inc, 0o666)
    aliases(kite, f"open: :include:{inc}\n")
    kite.start()
    send(kite, "alice@example.org", ["open@kite.test"], message(b"open", b"x\r\n"))
    kite.wait_log(r"warning: refusing .*open\.inc is group or world writable", timeout=20)
    kite.wait_log(r"to=<open@kite\.test>, relay=local, .*status=deferred \(cannot use :include: file")
    time.sleep(1)
    assert not (kite.maildir_base / "erin").exists()
