"""The queue end to end: sendmail -> kitedrop -> maildrop -> pickup -> cleanup
-> incoming/hold, with cleanup's header fixes, rewriting, header_checks and
limits, and pickup's handling of hostile maildrop files."""

import os
import re
from pathlib import Path

import pytest

from conftest import wait_until

HOLD_ALL = "/^Subject: /  HOLD held by the test\n"


def queue_files(kite, queue):
    """Queue IDs (file names) under a queue directory, temporary files excluded."""
    d = Path(kite.queue_dir) / queue
    if not d.exists():
        return []
    return sorted(p.name for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))


def hold_everything(kite, extra=""):
    """header_checks that put every message with a Subject on hold (so it stays inspectable)."""
    table = kite.confdir / "hold.pcre"
    table.write_text(extra + HOLD_ALL)
    kite.set(header_checks=f"pcre:{table}")


def submit(kite, *args, text, check=True):
    r = kite.run("sendmail", *args, input=text)
    if check:
        assert r.returncode == 0, r.stderr + "\n" + kite.log_tail()
    return r


def held_message(kite, n=1):
    """Wait for n messages in hold/; returns their IDs."""
    return wait_until(lambda: len(queue_files(kite, "hold")) >= n and queue_files(kite, "hold"),
                      what=f"{n} held messages", kite=kite)


def kitecat(kite, qid, *flags):
    r = kite.run("kitecat", *flags, qid)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_local_submission_gets_missing_headers_and_crlf(kite):
    hold_everything(kite)
    kite.start()
    submit(kite, "-F", "Alice Example", "-f", "alice", "bob@example.com",
           text="Subject: headers\nX-Test: 1\n\nbody line\n")
    (qid,) = held_message(kite)
    env = kitecat(kite, qid, "-e")
    assert "sender: alice@kite.test" in env
    assert "recipient: bob@example.com" in env
    assert "origin: local" in env
    raw = (Path(kite.queue_dir) / "hold" / qid).read_bytes()
    assert re.search(rb"Received: by kite\.test \(Kite, from userid %d\)\r\n\tid %s; " % (kite.uid, qid.encode()), raw)
    assert b"Subject: headers\r\nX-Test: 1\r\n" in raw
    assert b"From: Alice Example <alice@kite.test>\r\n" in raw
    assert re.search(rb"\r\nDate: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", raw)
    assert b"Message-Id: <" in raw
    assert b"\r\n\r\nbody line\r\n" in raw
    kite.wait_log(rf"kite/pickup\[\d+\]: {qid}: uid=\d+ from=<alice>")
    kite.wait_log(rf"kite/cleanup\[\d+\]: {qid}: message-id=<\d{{14}}\.{qid}@kite\.test>")
    kite.wait_log(rf"kite/cleanup\[\d+\]: {qid}: hold: header Subject: headers from local; from=<alice@kite.test>")
    assert queue_files(kite, "maildrop") == []


def test_header_checks_reject_discard_and_replace(kite):
    table = kite.confdir / "hc.pcre"
    table.write_text("/^Subject: .*forbidden/ REJECT not here\n"
                     "/^Subject: discard/ DISCARD\n"
                     "/^X-Mailer:/ REPLACE X-Mailer: anonymous\n"
                     "/^Subject: keep/ HOLD\n")
    kite.set(header_checks=f"pcre:{table}")
    kite.start()
    submit(kite, "-f", "a@example.com", "b@example.com", text="Subject: forbidden fruit\n\nx\n")
    kite.wait_log(r"reject: header Subject: forbidden fruit from local; from=<a@example.com> "
                  r"to=<b@example.com>: 5\.7\.1 not here")
    kite.wait_log(r"message refused: 5\.7\.1 not here")
    # The submitter hears about it: a notice from the null sender is queued for them.
    m = kite.wait_log(r"kite/pickup\[\d+\]: (\w+): sender non-delivery notification: a@example.com")
    notice = m.group(1)
    submit(kite, "-f", "a@example.com", "b@example.com", text="Subject: discard me\n\nx\n")
    kite.wait_log(r"discard: header Subject: discard me from local")
    submit(kite, "-f", "a@example.com", "b@example.com", text="X-Mailer: Foo 2.0\nSubject: keep\n\nx\n")
    (qid,) = held_message(kite)
    raw = (Path(kite.queue_dir) / "hold" / qid).read_bytes()
    assert b"X-Mailer: anonymous\r\n" in raw and b"Foo 2.0" not in raw
    # Rejected and discarded messages left nothing behind but the notice.
    wait_until(lambda: queue_files(kite, "maildrop") == [], what="empty maildrop", kite=kite)
    assert set(queue_files(kite, "incoming")) <= {notice}
    assert queue_files(kite, "corrupt") == []


def test_canonical_and_virtual_alias_rewriting_keeps_original(kite):
    hold_everything(kite)
    (kite.confdir / "canonical").write_text("@old.example @new.example\n")
    (kite.confdir / "virtual").write_text("team@example.com ann@example.com, bo@example.com\n")
    kite.set(canonical_maps=f"texthash:{kite.confdir}/canonical",
             virtual_alias_maps=f"texthash:{kite.confdir}/virtual")
    kite.start()
    submit(kite, "-f", "x@old.example", "team@example.com", "y@old.example", text="Subject: rw\n\nx\n")
    (qid,) = held_message(kite)
    env = kitecat(kite, qid, "-e")
    assert "sender: x@new.example" in env
    assert "recipient: ann@example.com" in env
    assert "recipient: bo@example.com" in env
    assert "recipient: y@new.example" in env
    assert "original_recipient: team@example.com" in env
    assert "original_recipient: y@old.example" in env
    assert not re.search(r"^recipient: team@example.com", env, re.M)


def test_message_size_limit_refuses_big_submission(kite):
    kite.set(message_size_limit=1000)
    kite.start()
    r = submit(kite, "b@example.com", text="Subject: big\n\n" + "x" * 2000 + "\n", check=False)
    assert r.returncode == 65, r.stderr
    assert "too big" in r.stderr
    assert queue_files(kite, "maildrop") == []


def test_hostile_maildrop_files_go_to_corrupt(kite):
    kite.start()
    maildrop = Path(kite.queue_dir) / "maildrop"
    # Garbage under a valid-looking ID, and a truncated copy of a real submission.
    # Made complete and owned first, then renamed in: pickup may scan at any moment.
    staged = Path(kite.queue_dir) / "0TP8ZAAAAAA000AAAA.staged"
    staged.write_bytes(b"V\x00\x00\x00\x05KITE1garbage")
    os.chown(staged, kite.uid, kite.gid)
    os.rename(staged, maildrop / "0TP8ZAAAAAA000AAAA")
    # kitedrop's trigger makes pickup scan maildrop/.
    submit(kite, "-f", "a@example.com", "b@example.com", text="Subject: fine\n\nx\n")
    kite.wait_log(r"maildrop/0TP8ZAAAAAA000AAAA: .*; moved to corrupt")
    assert "0TP8ZAAAAAA000AAAA" in queue_files(kite, "corrupt")
    wait_until(lambda: queue_files(kite, "maildrop") == [], what="empty maildrop", kite=kite)
    # The good message went through.
    kite.wait_log(r"kite/pickup\[\d+\]: \w+: uid=\d+ from=<a@example.com>")


def test_pickup_refuses_attributes_not_on_the_allow_list(kite):
    maildrop = Path(kite.queue_dir) / "maildrop"
    kite.start()
    # A well-formed queue file that claims to come from a remote client.
    import struct

    def rec(t, d):
        d = d.encode()
        return t.encode() + struct.pack(">I", len(d)) + d
    body = "Subject: sneaky\r\n\r\nx\r\n"
    data = (rec("V", "KITE1") + rec("Z", "%020d" % len(body)) + rec("W", "0" * 20)
            + rec("A", f"uid={kite.uid}") + rec("A", "sender=a@b") + rec("A", "client_addr=192.0.2.1")
            + rec("R", "-x@example.com") + rec("M", "") + rec("C", body) + rec("E", ""))
    staged = Path(kite.queue_dir) / "0TP8ZBBBBBB000BBBB.staged"
    staged.write_bytes(data)
    os.chown(staged, kite.uid, kite.gid)
    os.rename(staged, maildrop / "0TP8ZBBBBBB000BBBB")
    submit(kite, "-f", "a@example.com", "b@example.com", text="Subject: fine\n\nx\n")
    kite.wait_log(r"maildrop/0TP8ZBBBBBB000BBBB: attribute not allowed in maildrop; moved to corrupt")


def _rec(t, d):
    import struct
    d = d.encode() if isinstance(d, str) else d
    return t.encode() + struct.pack(">I", len(d)) + d


GOOD_TAIL = _rec("R", "-x@example.com") + _rec("M", "") + _rec("C", "Subject: s\n\nx\n") + _rec("E", "")
HOSTILE_KITEDROP_INPUTS = [
    ("empty", b""),
    ("truncated header", _rec("A", "sender=a")[:3]),
    ("truncated data", _rec("A", "sender=alice@example.com")[:-4]),
    ("no end marker", _rec("A", "sender=a") + GOOD_TAIL[:-5]),
    ("attribute not allowed", _rec("A", "client_addr=192.0.2.1") + GOOD_TAIL),
    ("uid forged", _rec("A", "uid=0") + GOOD_TAIL),
    ("attribute without =", _rec("A", "sender") + GOOD_TAIL),
    ("NUL in attribute", _rec("A", "sender=a\0b") + GOOD_TAIL),
    ("newline in recipient", _rec("R", "-x@exa\nmple.com") + _rec("M", "") + _rec("E", "")),
    ("recipient marked done", _rec("R", "Dx@example.com") + _rec("M", "") + _rec("E", "")),
    ("original recipient record", _rec("F", "y@example.com") + GOOD_TAIL),
    ("bad notify", _rec("N", "16") + GOOD_TAIL),
    ("unknown record type", _rec("X", "zz") + GOOD_TAIL),
    ("length over the limit", b"C\x00\x10\x00\x01"),
    ("content before marker", _rec("C", "x") + GOOD_TAIL),
    ("data after end marker", _rec("A", "sender=a") + GOOD_TAIL + b"junk"),
    ("bad ret value", _rec("A", "ret=everything") + GOOD_TAIL),
]


@pytest.mark.parametrize("name,data", HOSTILE_KITEDROP_INPUTS, ids=[c[0] for c in HOSTILE_KITEDROP_INPUTS])
def test_kitedrop_refuses_hostile_input_and_leaves_nothing(kite, name, data):
    kite.start()
    kite.stop()
    r = kite.run("kitedrop", input=data)
    assert r.returncode == 65, (name, r.returncode, r.stderr)
    assert queue_files(kite, "maildrop") == []
    assert not list((Path(kite.queue_dir) / "maildrop").glob(".tmp.*"))
    # The same stream, repaired, is accepted.
    assert kite.run("kitedrop", input=_rec("A", "sender=a") + GOOD_TAIL).returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a set-gid copy")
def test_setgid_kitedrop_refuses_a_user_configuration(kite):
    import shutil
    import subprocess

    from conftest import BIN

    copy = Path(kite.base) / "kitedrop-sgid"
    shutil.copy(BIN / "kitedrop", copy)
    os.chown(copy, 0, 0)
    os.chmod(copy, 0o2755)
    os.chmod(kite.base, 0o755)
    r = subprocess.run([str(copy), "-c", str(kite.confdir)], input=b"", capture_output=True, timeout=30,
                       env=kite.env(), **kite._user_kwargs())
    assert r.returncode == 64, (r.returncode, r.stderr)
    assert b"is not the built-in configuration directory" in r.stderr
