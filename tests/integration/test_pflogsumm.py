"""pflogsumm (Debian package) counts Kite's Postfix-format log correctly."""

import re
import shutil
import subprocess

import pytest

from test_local import maildir_messages, message, need_mail_path, send


def test_pflogsumm_counts_delivered_and_bounced(kite):
    need_mail_path()
    if shutil.which("pflogsumm") is None:
        pytest.skip("pflogsumm is not installed (apt-get install pflogsumm)")
    kite.start()
    for i in range(3):
        send(kite, "alice@sandbox.test", [f"user{i}@sandbox.test"], message(b"good %d" % i, b"x\r\n"))
    for i in range(2):
        data = message(b"bad %d" % i, b"x\r\n", extra=b"Delivered-To: loop%d@sandbox.test\r\n" % i)
        send(kite, "alice@sandbox.test", [f"loop{i}@sandbox.test"], data)
    for i in range(3):
        maildir_messages(kite.maildir_base / f"user{i}", 1)
    # Each bounce comes back to alice as a notice, which is delivered too.
    maildir_messages(kite.maildir_base / "alice", 2, timeout=30)
    kite.wait_log(r"(?s)(removed.*){7}", timeout=30)
    out = subprocess.run(["pflogsumm", "--syslog-name=kite", str(kite.log)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr

    def count(label):
        m = re.search(rf"^\s*(\d+)\s+{label}\s*$", out.stdout, re.M)
        assert m, f"no '{label}' line in:\n{out.stdout}"
        return int(m.group(1))

    assert count("delivered") == 5
    assert count("bounced") == 2
    assert count("deferred") == 0
