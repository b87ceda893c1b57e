"""Queue file reuse end to end: qmgr retires finished files into recycle/,
cleanup takes them back for new mail (queue_recycle_limit), and nothing of
an old message, nor anything planted in recycle/, ever reaches a mailbox.
Also master's reaping of children that die (kill -9): replaced, no zombies.

A queue ID ends in the inode number of its file (7 base-36 digits), so the
tests can tell which file a message was written into.
"""

import os
import re
import signal
import smtplib
import struct
import time
from pathlib import Path

import pytest

from conftest import LIBEXEC, proc_info, wait_until

MAIL_DAEMONS = ("smtpd", "cleanup", "qmgr", "local")
B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def need_mail_path():
    missing = [d for d in MAIL_DAEMONS if not (LIBEXEC / d).exists()]
    if missing:
        pytest.skip("not built yet: " + ", ".join(missing))


def message(tag, body):
    """A complete message (Date and Message-ID given, so nothing is added to the body)."""
    return (b"From: Alice <alice@example.org>\r\n"
            b"To: somebody\r\n"
            b"Subject: " + tag + b"\r\n"
            b"Date: Sun, 29 Nov 2026 05:00:00 +0000\r\n"
            b"Message-ID: <" + tag + b"@example.org>\r\n"
            b"\r\n" + body)


def make_body(label, size):
    """About size bytes of CRLF lines, each naming label and its number (so a cut shows)."""
    lines, total, n = [], 0, 0
    while total < size:
        line = b"%s line %06d ........................................\r\n" % (label, n)
        lines.append(line)
        total += len(line)
        n += 1
    return b"".join(lines) + b"end of " + label + b"\r\n"


def send(kite, rcpt, data):
    with smtplib.SMTP("127.0.0.1", kite.port, timeout=30) as s:
        s.ehlo("client.example")
        s.sendmail("alice@example.org", [rcpt], data)


def body_of(delivered):
    """The body of a delivered Maildir file (LF line ends), after the header."""
    head, sep, body = delivered.partition(b"\n\n")
    assert sep, delivered[:200]
    return body


def mailbox(kite, user):
    new = kite.maildir(user) / "new"
    return sorted(new.iterdir()) if new.is_dir() else []


def wait_mail(kite, user, n, timeout=30):
    files = wait_until(lambda: len(mailbox(kite, user)) >= n and mailbox(kite, user), timeout=timeout,
                       what=f"{n} messages for {user}", kite=kite)
    return [f.read_bytes() for f in files]


def queue_files(kite, queue):
    """Messages in a queue (temporary .tmp names excluded)."""
    d = Path(kite.queue_dir) / queue
    if not d.exists():
        return []
    return sorted(p.name for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))


def queue_empty(kite):
    return not any(queue_files(kite, q) for q in ("incoming", "active", "deferred", "hold"))


def recycle(kite):
    """{slot name: (inode, size)} of what is in recycle/."""
    d = Path(kite.queue_dir) / "recycle"
    out = {}
    for p in d.iterdir():
        st = p.lstat()
        out[p.name] = (st.st_ino, st.st_size)
    return out


def queue_id_of(kite, tag):
    """The queue ID cleanup gave the message with Message-ID <tag@example.org>."""
    m = kite.wait_log(rf"kite/cleanup\[\d+\]: (\w+): message-id=<{re.escape(tag)}@example\.org>")
    return m.group(1)


def id_inode(qid):
    """The inode folded into a queue ID (its last 7 base-36 digits)."""
    v = 0
    for c in qid[-7:]:
        v = v * 36 + B36.index(c)
    return v


def fold(ino):
    return ino % (36 ** 7)


def wait_removed(kite, qid):
    kite.wait_log(rf"kite/qmgr\[\d+\]: {qid}: removed", timeout=30)


def chown_to_instance(kite, *paths):
    if os.geteuid() == 0:
        for p in paths:
            os.chown(p, kite.uid, kite.gid)


def _rec(rtype, data=b""):
    if isinstance(data, str):
        data = data.encode()
    return rtype.encode() + struct.pack(">I", len(data)) + data


def queue_file_bytes(sender, rcpts, body):
    """A complete, valid queue file (the qfile format), as cleanup would write it."""
    recs = [_rec("V", "KITE1"), _rec("Z", "%020d" % len(body)), _rec("W", "%020d" % 0),
            _rec("A", "arrival=%.6f" % time.time()), _rec("A", "sender=" + sender)]
    for r in rcpts:
        recs.append(_rec("R", "-" + r))
    recs.append(_rec("M"))
    recs.append(_rec("C", body))
    recs.append(_rec("E"))
    return b"".join(recs)


# ---- recycling in normal operation -------------------------------------------------------

def test_delivered_messages_leave_files_in_recycle_and_arrive_intact(kite):
    need_mail_path()
    limit = 6
    kite.set(queue_recycle_limit=limit)
    kite.start()
    # Very different sizes, in an order that puts short ones after long ones.
    sizes = [120_000, 40, 3_000, 250_000, 10, 70_000, 500, 1, 33_333, 90, 180_000, 7, 4_096, 60_000, 2]
    sent = {}
    for i, size in enumerate(sizes):
        tag = b"reuse-%02d" % i
        body = make_body(b"message %02d" % i, size)
        sent[tag] = body
        send(kite, "bob@sandbox.test", message(tag, body))
        # Let most of them finish before the next, so files go round through recycle/.
        if i % 3 != 2:
            wait_removed(kite, queue_id_of(kite, tag.decode()))
    got = wait_mail(kite, "bob", len(sizes))
    assert len(got) == len(sizes)
    by_tag = {}
    for data in got:
        m = re.search(rb"^Subject: (reuse-\d\d)$", data, re.M)
        assert m, data[:300]
        assert m.group(1) not in by_tag, f"{m.group(1)} delivered twice"
        by_tag[m.group(1)] = data
    assert set(by_tag) == set(sent)
    for tag, body in sent.items():
        assert body_of(by_tag[tag]) == body.replace(b"\r\n", b"\n"), tag
    wait_until(lambda: queue_empty(kite), what="an empty queue", kite=kite)
    slots = recycle(kite)
    assert 1 <= len(slots) <= limit, slots
    assert all(name.isdigit() and int(name) < limit for name in slots), slots
    # Files went round: some message was written into a file an earlier one had.
    ids = [queue_id_of(kite, tag.decode()) for tag in sent]
    inodes = [id_inode(q) for q in ids]
    assert len(set(inodes)) < len(inodes), ids
    assert "unexpected file" not in kite.log_text()


def test_short_message_after_a_long_one_holds_nothing_of_it(kite):
    need_mail_path()
    kite.set(queue_recycle_limit=1)
    kite.start()
    long_body = make_body(b"LONG-MESSAGE-MARKER", 400_000)
    send(kite, "carol@sandbox.test", message(b"long-one", long_body))
    long_id = queue_id_of(kite, "long-one")
    wait_removed(kite, long_id)
    wait_until(lambda: "0" in recycle(kite), what="the long file in recycle/0", kite=kite)
    ino, size = recycle(kite)["0"]
    assert fold(ino) == id_inode(long_id)
    assert size > len(long_body)

    short_body = b"short\r\n"
    send(kite, "carol@sandbox.test", message(b"short-one", short_body))
    short_id = queue_id_of(kite, "short-one")
    # The short message was written into the long one's file...
    assert id_inode(short_id) == fold(ino), (long_id, short_id)
    wait_removed(kite, short_id)
    got = wait_mail(kite, "carol", 2)
    (short,) = [g for g in got if b"Subject: short-one" in g]
    assert b"LONG-MESSAGE-MARKER" not in short
    assert body_of(short) == b"short\n"
    # ...which went back to recycle/ cut to the short message's length.
    wait_until(lambda: "0" in recycle(kite), what="the file back in recycle/0", kite=kite)
    ino2, size2 = recycle(kite)["0"]
    assert ino2 == ino
    assert size2 < 2000
    assert b"LONG-MESSAGE-MARKER" not in (Path(kite.queue_dir) / "recycle" / "0").read_bytes()


def test_recycle_limit_zero_keeps_recycle_empty(kite):
    need_mail_path()
    kite.set(queue_recycle_limit=0)
    kite.start()
    for i in range(5):
        send(kite, "dave@sandbox.test", message(b"off-%d" % i, b"body %d\r\n" % i))
    got = wait_mail(kite, "dave", 5)
    assert sorted(body_of(g) for g in got) == [b"body %d\n" % i for i in range(5)]
    wait_until(lambda: queue_empty(kite), what="an empty queue", kite=kite)
    for i in range(5):
        wait_removed(kite, queue_id_of(kite, "off-%d" % i))
    assert recycle(kite) == {}


def test_planted_queue_file_in_recycle_is_never_delivered_only_overwritten(kite):
    need_mail_path()
    kite.set(queue_recycle_limit=2)
    kite.start()
    # Real files in recycle/ from real deliveries first, then a restart.
    send(kite, "erin@sandbox.test", message(b"before-stop", b"before\r\n"))
    wait_removed(kite, queue_id_of(kite, "before-stop"))
    wait_mail(kite, "erin", 1)
    kite.stop()
    # Every slot holds a complete, valid queue file addressed to mallory.
    rdir = Path(kite.queue_dir) / "recycle"
    for p in rdir.iterdir():
        p.unlink()
    planted = {}
    for slot in ("0", "1"):
        p = rdir / slot
        p.write_bytes(queue_file_bytes("evil@example.org", ["mallory@sandbox.test"],
                                       b"Subject: planted\r\n\r\nPLANTED-IN-RECYCLE " * 500 + b"\r\n"))
        os.chmod(p, 0o600)
        chown_to_instance(kite, p)
        planted[slot] = p.lstat().st_ino
    kite.start()
    time.sleep(3)   # qmgr's start-up scans and a few queue runs
    assert mailbox(kite, "mallory") == []
    # New mail is written into the planted files, which then hold it instead.
    ids = []
    for i in range(2):
        send(kite, "erin@sandbox.test", message(b"after-%d" % i, b"after %d\r\n" % i))
        qid = queue_id_of(kite, "after-%d" % i)
        ids.append(qid)
        wait_removed(kite, qid)
    got = wait_mail(kite, "erin", 3)
    assert all(b"PLANTED" not in g for g in got)
    assert {id_inode(q) for q in ids} == {fold(i) for i in planted.values()}, (ids, planted)
    for p in rdir.iterdir():
        assert b"PLANTED" not in p.read_bytes()
    time.sleep(1)
    assert mailbox(kite, "mallory") == []
    assert "mallory" not in kite.log_text()


def test_foreign_file_in_recycle_is_removed_not_reused(kite):
    """A slot entry cleanup does not own (here: root's, when the tests run as root) or a
    symlink is removed; the message gets a new file and arrives."""
    need_mail_path()
    kite.set(queue_recycle_limit=1)
    kite.start()
    rdir = Path(kite.queue_dir) / "recycle"
    outside = Path(kite.base) / "outside"
    outside.write_bytes(b"precious\n")
    chown_to_instance(kite, outside)
    (rdir / "0").symlink_to(outside)
    send(kite, "frank@sandbox.test", message(b"foreign-1", b"one\r\n"))
    qid = queue_id_of(kite, "foreign-1")
    assert id_inode(qid) != fold(outside.stat().st_ino)
    (got,) = wait_mail(kite, "frank", 1)
    assert body_of(got) == b"one\n"
    assert outside.read_bytes() == b"precious\n"
    kite.wait_log(r"kite/cleanup\[\d+\]: warning: incoming/\.tmp\.\S+: cannot reuse a file from recycle")
    wait_removed(kite, qid)
    assert not (rdir / "0").is_symlink()


def plant_old_file(kite, slot="0", age=7200):
    """A valid queue file in recycle/slot, owned by the instance, last written `age` seconds ago."""
    p = Path(kite.queue_dir) / "recycle" / slot
    p.write_bytes(queue_file_bytes("old@example.org", ["old@sandbox.test"], b"Subject: old\r\n\r\nOLD\r\n"))
    os.chmod(p, 0o600)
    chown_to_instance(kite, p)
    then = time.time() - age
    os.utime(p, (then, then))
    return p.lstat().st_ino


def test_kitesuper_s_leaves_a_claimed_file_alone_while_cleanup_writes_it(kite):
    """cleanup claims a file retired two hours ago; before its first write, kitesuper -s
    runs: the file must not look like a stale temporary file and be removed."""
    need_mail_path()
    kite.set(queue_recycle_limit=1)
    kite.start()
    ino = plant_old_file(kite)
    incoming = Path(kite.queue_dir) / "incoming"
    with smtplib.SMTP("127.0.0.1", kite.port, timeout=30) as s:
        s.ehlo("client.example")
        assert s.mail("alice@example.org")[0] == 250
        assert s.rcpt("ivan@sandbox.test")[0] == 250
        assert s.docmd("DATA")[0] == 354
        s.send(b"Subject: slow\r\nMessage-ID: <slow@example.org>\r\n\r\nfirst part\r\n")
        tmp = wait_until(lambda: [p for p in incoming.iterdir() if p.name.startswith(".tmp.")],
                         what="cleanup's temporary file", kite=kite)
        assert tmp[0].lstat().st_ino == ino      # the retired file, claimed
        assert time.time() - tmp[0].lstat().st_mtime < 600
        r = kite.run("kitesuper", "-s")
        assert r.returncode == 0, r.stderr
        assert "stale temporary" not in r.stderr
        assert tmp[0].exists()
        s.send(b"second part\r\n.\r\n")
        code, resp = s.getreply()
        assert code == 250, (code, resp, kite.log_tail())
    (got,) = wait_mail(kite, "ivan", 1)
    assert body_of(got) == b"first part\nsecond part\n"
    assert b"OLD" not in got


def test_a_retired_file_still_open_elsewhere_is_not_written_over(kite):
    """A reader that opened a message before it was retired (mailq, kitecat, a delivery
    agent qmgr gave up on) keeps seeing that message, never the next one."""
    need_mail_path()
    table = kite.confdir / "hold.pcre"
    table.write_text("/^Subject: hold-me/  HOLD\n")
    kite.set(queue_recycle_limit=1, header_checks=f"pcre:{table}")
    kite.start()
    secret = make_body(b"FIRST-MESSAGE", 5_000)
    send(kite, "judy@sandbox.test", message(b"hold-me", secret))
    qid = wait_until(lambda: queue_files(kite, "hold"), what="a held message", kite=kite)[0]
    with open(Path(kite.queue_dir) / "hold" / qid, "rb") as reader:
        before = reader.read()
        r = kite.run("kitesuper", "-H", qid)
        assert r.returncode == 0, r.stderr
        wait_removed(kite, qid)
        wait_until(lambda: "0" in recycle(kite), what="the file in recycle/0", kite=kite)
        assert recycle(kite)["0"][0] == os.fstat(reader.fileno()).st_ino
        # The next message must not be written into the file the reader holds.
        send(kite, "judy@sandbox.test", message(b"second", make_body(b"SECOND-MESSAGE", 5_000)))
        second = queue_id_of(kite, "second")
        assert id_inode(second) != fold(os.fstat(reader.fileno()).st_ino)
        wait_mail(kite, "judy", 2)
        reader.seek(0)
        after = reader.read()
    # The same message (delivery only marked its recipient done: one status byte).
    assert len(after) == len(before)
    assert sum(a != b for a, b in zip(after, before)) <= 1
    assert after.count(b"FIRST-MESSAGE") == before.count(b"FIRST-MESSAGE") > 0
    assert b"SECOND-MESSAGE" not in after
    kite.wait_log(r"kite/cleanup\[\d+\]: incoming/\.tmp\.\S+: a file from recycle is still open elsewhere")


def test_kitesuper_s_keeps_recycled_files_and_removes_only_unusable_entries(kite):
    """recycle/ is no queue: kitesuper -s keeps the retired files in their slots however old
    (never reading them as mail), removes only what no claim would take, and no operation
    accepts recycle/ as a queue."""
    need_mail_path()
    kite.set(queue_recycle_limit=4)
    kite.start()
    for i in range(3):
        send(kite, "kim@sandbox.test", message(b"ks-%d" % i, b"ks %d\r\n" % i))
        wait_removed(kite, queue_id_of(kite, "ks-%d" % i))
    wait_mail(kite, "kim", 3)
    rdir = Path(kite.queue_dir) / "recycle"
    for p in rdir.iterdir():
        p.unlink()
    kept = {slot: plant_old_file(kite, slot=slot, age=30 * 86400) for slot in ("0", "3")}
    for junk in ("4", "99", "07", "junk", ".tmp.x"):
        plant_old_file(kite, slot=junk)
    (rdir / "1").symlink_to(Path(kite.base) / "outside")
    (rdir / "2").mkdir()
    chown_to_instance(kite, rdir / "2")
    r = kite.run("kitesuper", "-s")
    assert r.returncode == 0, r.stderr
    assert "Removed 7 unusable entries from recycle" in r.stderr, r.stderr
    assert {name: ino for name, (ino, _) in recycle(kite).items()} == kept
    kite.wait_log(r"kite/kitesuper\[\d+\]: recycle/99: removed, no slot of queue_recycle_limit = 4")
    assert queue_files(kite, "corrupt") == []
    # Nothing left to remove: quiet.
    r = kite.run("kitesuper", "-s")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    for op in ("-d", "-r", "-H", "-h"):
        r = kite.run("kitesuper", op, "ALL", "recycle")
        assert r.returncode != 0 and 'unknown queue "recycle"' in r.stderr, (op, r.stderr)
    # kite check (the layout repair) keeps them too.
    r = kite.kite("check")
    assert r.returncode == 0, r.stderr
    assert {name: ino for name, (ino, _) in recycle(kite).items()} == kept
    # Recycling turned off: every file there is unusable.
    kite.set(queue_recycle_limit=0)
    r = kite.run("kitesuper", "-s")
    assert "Removed 2 unusable entries from recycle" in r.stderr, r.stderr
    assert recycle(kite) == {}
    assert mailbox(kite, "old") == []


# ---- master reaps dead children ------------------------------------------------------

def master_children_with_zombies(kite):
    """(pid, state) of every child of master, zombies included."""
    mpid = kite.master_pid()
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = proc_info(int(name))
            if info and info["ppid"] == mpid:
                out.append((int(name), info["state"]))
    return out


def service_pids(kite, service):
    return [pid for pid, _ in kite.children(service)]


@pytest.mark.parametrize("service", ["cleanup", "virtual"])  # virtual: the local daemon for sandbox.test
def test_killed_idle_service_process_is_reaped_and_replaced(kite, service):
    need_mail_path()
    kite.start()
    send(kite, "gina@sandbox.test", message(b"warm-up", b"warm\r\n"))
    wait_mail(kite, "gina", 1)
    # The process that served the warm-up stays, idle, for max_idle.
    pids = wait_until(lambda: service_pids(kite, service), what=f"an idle {service} process", kite=kite)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    # Reaped: gone from /proc altogether (a zombie would still be there).
    for pid in pids:
        wait_until(lambda: proc_info(pid) is None, timeout=10, what=f"{service} pid {pid} reaped", kite=kite)
    send(kite, "gina@sandbox.test", message(b"after-kill", b"after\r\n"))
    got = wait_mail(kite, "gina", 2)
    assert any(body_of(g) == b"after\n" for g in got)
    new = wait_until(lambda: service_pids(kite, service), what=f"a new {service} process", kite=kite)
    assert not set(new) & set(pids)
    time.sleep(0.5)
    assert [c for c in master_children_with_zombies(kite) if c[1] == "Z"] == []


def test_children_that_exit_on_their_own_leave_no_zombies(kite):
    """max_idle: every idle process exits by itself; master must collect each one."""
    need_mail_path()
    kite.set(max_idle="1s")
    kite.start()
    for i in range(3):
        send(kite, "hank@sandbox.test", message(b"idle-%d" % i, b"idle %d\r\n" % i))
    wait_mail(kite, "hank", 3)
    served = (service_pids(kite, "cleanup") + service_pids(kite, "virtual") +
              service_pids(kite, f"127.0.0.1:{kite.port}"))
    assert served
    for pid in served:
        wait_until(lambda: proc_info(pid) is None, timeout=15, what=f"pid {pid} exited and reaped", kite=kite)
    assert [c for c in master_children_with_zombies(kite) if c[1] == "Z"] == []
    # And the services still work.
    send(kite, "hank@sandbox.test", message(b"idle-late", b"late\r\n"))
    wait_mail(kite, "hank", 4)
