"""Local delivery as the recipient, in a root instance: local switches its
effective identity to the user for a mailbox or Maildir delivery and back to
root afterwards. These tests pin down that the switch is right: files are
the user's, links a user planted are refused as before, and a delivery that
fails leaves local fully root for the next one (checked in /proc).

Root only (a throwaway pair of login users with homes in the instance tree).
"""

import os
import pwd
import re
import smtplib
import subprocess
import time
from pathlib import Path

import pytest

from conftest import LIBEXEC


def need_root_mail_path():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    missing = [d for d in ("smtpd", "cleanup", "qmgr", "local") if not (LIBEXEC / d).exists()]
    if missing:
        pytest.skip("not built yet: " + ", ".join(missing))


def send(kite, rcpt, body=b"hello\r\n", subject=b"privs"):
    data = (b"From: Alice <alice@example.org>\r\nTo: " + rcpt.encode() + b"\r\nSubject: " + subject +
            b"\r\nDate: Sun, 29 Nov 2026 05:00:00 +0000\r\nMessage-ID: <" + subject + b"." +
            str(time.time()).encode() + b"@example.org>\r\n\r\n" + body)
    with smtplib.SMTP("127.0.0.1", kite.port, timeout=30) as s:
        s.sendmail("alice@example.org", [rcpt], data)


@pytest.fixture
def users(kite):
    """Two login users, homes under the instance tree (mode 0700, their own)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    made = []
    home_base = kite.base / "home"
    home_base.mkdir()
    os.chmod(home_base, 0o755)
    try:
        for tag in ("a", "b"):
            name = "kp%s%d" % (tag, os.getpid() % 100000)
            home = home_base / name
            subprocess.run(["userdel", name], capture_output=True)
            subprocess.run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh", name],
                           check=True, capture_output=True)
            made.append(name)
            home.mkdir()
            pw = pwd.getpwnam(name)
            os.chown(home, pw.pw_uid, pw.pw_gid)
            os.chmod(home, 0o700)
        yield [pwd.getpwnam(n) for n in made]
    finally:
        for n in made:
            subprocess.run(["userdel", n], capture_output=True)


def one_local_master_cf(kite):
    """The default services, with a single local process that serves every delivery."""
    text = kite.default_master_cf()
    return re.sub(r"^local unix - n n - - local$", "local unix - n n - 1 local -o max_use=1000",
                  text, flags=re.M)


def proc_status(pid):
    fields = {}
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.split()
    return fields


def assert_local_is_root(kite, pid):
    """Between deliveries local is root in every id, with the groups it started with (master's)."""
    st = proc_status(pid)
    assert st["Uid"] == ["0", "0", "0", "0"], st["Uid"]
    assert st["Gid"] == ["0", "0", "0", "0"], st["Gid"]
    assert sorted(st.get("Groups", [])) == sorted(proc_status(kite.master_pid()).get("Groups", []))


def wait_for(path_fn, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = path_fn()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out")


def new_files(maildir):
    new = Path(maildir) / "new"
    return sorted(new.iterdir()) if new.is_dir() else []


def test_maildir_delivery_as_the_user_owns_files_and_directories(kite, users):
    need_root_mail_path()
    a, b = users
    kite.as_root_with_mail_owner()
    kite.set(home_mailbox="Maildir/")
    kite.start()
    send(kite, f"{a.pw_name}@kite.test")
    (f,) = wait_for(lambda: new_files(Path(a.pw_dir) / "Maildir"))
    st = f.stat()
    assert (st.st_uid, st.st_gid) == (a.pw_uid, a.pw_gid)
    assert st.st_mode & 0o7777 == 0o600
    for sub in ("", "tmp", "new", "cur"):
        d = (Path(a.pw_dir) / "Maildir" / sub).stat()
        assert (d.st_uid, d.st_gid) == (a.pw_uid, a.pw_gid), sub
        assert d.st_mode & 0o7777 == 0o700, sub
    assert not list((Path(a.pw_dir) / "Maildir" / "tmp").iterdir())
    kite.wait_log(rf"to=<{a.pw_name}@kite\.test>, relay=local, .*dsn=2\.0\.0, status=sent \(delivered to maildir\)",
                  timeout=20)


def test_spool_mailbox_symlink_planted_by_the_user_is_refused(kite, users):
    need_root_mail_path()
    a, _ = users
    kite.as_root_with_mail_owner()
    spool = kite.base / "spool"
    spool.mkdir()
    os.chmod(spool, 0o1777)  # users may create files here, as in a world-writable spool
    target = kite.base / "root-file"
    target.write_text("root's\n")
    os.chmod(target, 0o644)
    link = spool / a.pw_name
    os.symlink(target, link)
    os.lchown(link, a.pw_uid, a.pw_gid)
    kite.set(mail_spool_directory=str(spool))
    kite.start()
    send(kite, f"{a.pw_name}@kite.test")
    kite.wait_log(rf"to=<{a.pw_name}@kite\.test>, relay=local, .*dsn=4\.2\.0, status=deferred \(cannot open mailbox "
                  rf"{re.escape(str(link))}: .*is a symbolic link\)", timeout=20)
    assert target.read_text() == "root's\n"
    assert link.is_symlink()
    assert not (spool / (a.pw_name + ".lock")).exists()


def test_home_mbox_symlink_is_refused(kite, users):
    need_root_mail_path()
    a, _ = users
    kite.as_root_with_mail_owner()
    target = kite.base / "root-file"
    target.write_text("root's\n")
    os.chmod(target, 0o666)  # even a file the user may write: a link is never followed
    link = Path(a.pw_dir) / "Mailbox"
    os.symlink(target, link)
    os.lchown(link, a.pw_uid, a.pw_gid)
    kite.set(home_mailbox="Mailbox")
    kite.start()
    send(kite, f"{a.pw_name}@kite.test")
    kite.wait_log(rf"to=<{a.pw_name}@kite\.test>, relay=local, .*dsn=4\.2\.0, status=deferred \(cannot open mailbox "
                  rf".*is a symbolic link\)", timeout=20)
    assert target.read_text() == "root's\n"


def test_maildir_symlinked_into_a_root_directory_is_refused(kite, users):
    need_root_mail_path()
    a, _ = users
    kite.as_root_with_mail_owner()
    rootdir = kite.base / "rootdir"
    for sub in ("", "tmp", "new", "cur"):
        (rootdir / sub).mkdir(exist_ok=True)
        os.chmod(rootdir / sub, 0o755)
    link = Path(a.pw_dir) / "Maildir"
    os.symlink(rootdir, link)
    os.lchown(link, a.pw_uid, a.pw_gid)
    kite.set(home_mailbox="Maildir/")
    kite.start()
    send(kite, f"{a.pw_name}@kite.test")
    kite.wait_log(rf"to=<{a.pw_name}@kite\.test>, relay=local, .*dsn=4\.2\.0, status=deferred \(maildir delivery "
                  rf"failed: .*Permission denied\)", timeout=20)
    # Only the user's rights counted: root's directory got nothing.
    for sub in ("tmp", "new", "cur"):
        assert not list((rootdir / sub).iterdir()), sub


def test_failed_deliveries_leave_local_root_for_the_next_user(kite, users):
    need_root_mail_path()
    a, b = users
    kite.as_root_with_mail_owner()
    kite.set(home_mailbox="Maildir/", mailbox_size_limit=3000)
    kite.master_cf(one_local_master_cf(kite))
    # a's Maildir belongs to root: a delivery as a fails with EACCES.
    md_a = Path(a.pw_dir) / "Maildir"
    for sub in ("", "tmp", "new", "cur"):
        (md_a / sub).mkdir(exist_ok=True)
        os.chmod(md_a / sub, 0o755)
    kite.start()

    send(kite, f"{a.pw_name}@kite.test", subject=b"unwritable")
    m = kite.wait_log(rf"kite/local\[(\d+)\]: \w+: to=<{a.pw_name}@kite\.test>, relay=local, .*dsn=4\.2\.0, "
                      rf"status=deferred \(maildir delivery failed: .*Permission denied\)", timeout=20)
    pid = int(m.group(1))
    assert_local_is_root(kite, pid)

    send(kite, f"{b.pw_name}@kite.test", body=b"x" * 70 + b"\r\n" * 1 + (b"y" * 70 + b"\r\n") * 60,
         subject=b"toobig")
    kite.wait_log(rf"kite/local\[{pid}\]: \w+: to=<{b.pw_name}@kite\.test>, relay=local, .*dsn=5\.2\.2, "
                  rf"status=bounced \(maildir delivery failed: message exceeds mailbox size limit\)", timeout=20)
    assert_local_is_root(kite, pid)
    assert new_files(Path(b.pw_dir) / "Maildir") == []

    send(kite, f"{b.pw_name}@kite.test", subject=b"fits")
    kite.wait_log(rf"kite/local\[{pid}\]: \w+: to=<{b.pw_name}@kite\.test>, relay=local, .*dsn=2\.0\.0, "
                  rf"status=sent \(delivered to maildir\)", timeout=20)
    (f,) = new_files(Path(b.pw_dir) / "Maildir")
    st = f.stat()
    # Written as b, not as a (the failed one before) and not as root...
    assert (st.st_uid, st.st_gid) == (b.pw_uid, b.pw_gid)
    # ...by local itself, not by a child: the unique name carries local's pid.
    assert re.fullmatch(rf"\d+\.M\d{{6}}P{pid}_R[0-9a-f]{{16}}\.kite\.test", f.name), f.name
    assert_local_is_root(kite, pid)
    assert list((md_a / "new").iterdir()) == []
    # One process did all of it.
    assert [p for p, _ in kite.children("local")] == [pid]
