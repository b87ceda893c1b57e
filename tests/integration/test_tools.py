"""The queue tools end to end: kitequeue -p/-j (parsed), -f/-s/-i requests,
kitesuper hold/release/delete/requeue/structure check, kitecat."""

import json
import os
import re
import time
from pathlib import Path

import pytest

from conftest import LIBEXEC, wait_until

HAS_QMGR = (LIBEXEC / "qmgr").exists()
HAS_SMTP = (LIBEXEC / "smtp").exists()

ID_LINE = re.compile(r"^(?P<id>[0-9A-Z]+)(?P<mark>[*! ])\s*(?P<size>\d+) "
                     r"(?P<date>[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d)  (?P<sender>\S+)$")
TOTAL = re.compile(r"^-- (\d+) Kbytes in (\d+) Requests?\.$")


def queue_files(kite, queue):
    d = Path(kite.queue_dir) / queue
    if not d.exists():
        return []
    return sorted(p.name for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))


def hold_everything(kite):
    table = kite.confdir / "hold.pcre"
    table.write_text("/^Subject: hold/  HOLD\n")
    kite.set(header_checks=f"pcre:{table}")


def submit_held(kite, n, rcpts=("ann@example.com",)):
    for i in range(n):
        r = kite.run("sendmail", "-f", f"s{i}@example.com", *rcpts, input=f"Subject: hold {i}\n\nbody {i}\n")
        assert r.returncode == 0, r.stderr
    return wait_until(lambda: len(queue_files(kite, "hold")) >= n and queue_files(kite, "hold"),
                      what=f"{n} held", kite=kite)


def parse_mailq(text):
    """Postfix mailq format -> [(id, mark, size, sender, [recipients], [reasons])], total line."""
    lines = text.splitlines()
    if lines == ["Mail queue is empty"]:
        return [], None
    assert lines[0] == "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------", lines[0]
    msgs, total, cur = [], None, None
    for line in lines[1:]:
        m = ID_LINE.match(line)
        if m:
            cur = {"id": m["id"], "mark": m["mark"], "size": int(m["size"]), "sender": m["sender"],
                   "rcpts": [], "reasons": []}
            msgs.append(cur)
            sender_col = line.index(m["sender"])
        elif line.startswith("("):
            cur["reasons"].append(line[1:-1])
        elif line.strip() and TOTAL.match(line):
            total = TOTAL.match(line).groups()
        elif line.strip():
            assert line.startswith(" " * sender_col), repr(line)   # recipients under the sender
            cur["rcpts"].append(line.strip())
    return msgs, total


def test_kitequeue_listing_and_json(kite):
    hold_everything(kite)
    kite.start()
    ids = submit_held(kite, 2, rcpts=("ann@example.com", "bo@example.com"))
    r = kite.run("kitequeue", "-p")
    assert r.returncode == 0, r.stderr
    msgs, total = parse_mailq(r.stdout)
    assert sorted(m["id"] for m in msgs) == ids
    for m in msgs:
        assert m["mark"] == "!"
        assert m["rcpts"] == ["ann@example.com", "bo@example.com"]
        assert re.fullmatch(r"s\d@example\.com", m["sender"])
    assert total == (str((sum(m["size"] for m in msgs) + 1023) // 1024), "2")

    r = kite.run("kitequeue", "-j")
    assert r.returncode == 0, r.stderr
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    assert sorted(o["queue_id"] for o in objs) == ids
    for o in objs:
        assert set(o) == {"queue_name", "queue_id", "arrival_time", "message_size", "forced_expire", "sender",
                          "recipients"}
        assert o["queue_name"] == "hold"
        assert abs(o["arrival_time"] - time.time()) < 120
        assert o["message_size"] > 0 and o["forced_expire"] is False
        assert [x["address"] for x in o["recipients"]] == ["ann@example.com", "bo@example.com"]
        assert all("delay_reason" not in x for x in o["recipients"])


def test_kitequeue_empty_and_down(kite):
    kite.start()
    r = kite.run("kitequeue", "-p")
    assert r.returncode == 0 and r.stdout == "Mail queue is empty\n", (r.stdout, r.stderr)
    assert kite.run("kitequeue", "-j").stdout == ""
    kite.stop()
    r = kite.run("kitequeue", "-f")
    assert r.returncode == 69
    assert "mail system is down" in r.stderr
    r = kite.run("kitequeue", "-i", "NOTANID!")
    assert r.returncode == 64
    r = kite.run("kitequeue")
    assert r.returncode == 64 and "usage" in r.stderr


def test_kitesuper_hold_release_delete(kite):
    hold_everything(kite)
    kite.start()
    a, b, c = submit_held(kite, 3)
    # Release one: it leaves hold/ (to deferred, or on through qmgr).
    r = kite.run("kitesuper", "-H", a)
    assert r.returncode == 0, r.stderr
    assert "Released from hold: 1 message" in r.stderr
    kite.wait_log(rf"kite/kitesuper\[\d+\]: {a}: released from hold")
    assert a not in queue_files(kite, "hold")
    # Hold it again if it is still in the queue.
    if a in queue_files(kite, "deferred"):
        r = kite.run("kitesuper", "-h", a)
        assert r.returncode == 0 and "Placed on hold: 1 message" in r.stderr, r.stderr
        kite.wait_log(rf"{a}: placed on hold")
        assert a in queue_files(kite, "hold")
    # Delete by ID from stdin, and everything else with ALL.
    r = kite.run("kitesuper", "-d", "-", input=f"{b}\n")
    assert r.returncode == 0 and "Deleted: 1 message" in r.stderr, r.stderr
    kite.wait_log(rf"kite/kitesuper\[\d+\]: {b}: removed")
    assert b not in queue_files(kite, "hold")
    r = kite.run("kitesuper", "-d", "ALL", "hold")
    assert r.returncode == 0, r.stderr
    assert queue_files(kite, "hold") == []
    assert c not in queue_files(kite, "hold")
    r = kite.run("kitesuper", "-d", "bad/id")
    assert r.returncode == 64


def test_kitesuper_requeue_runs_cleanup_again(kite):
    hold_everything(kite)
    kite.start()
    (qid,) = submit_held(kite, 1)
    # New rewriting applies on requeue.
    (kite.confdir / "canonical").write_text("ann@example.com ann.new@example.com\n")
    kite.set(canonical_maps=f"texthash:{kite.confdir}/canonical")
    kite.reload()
    r = kite.run("kitesuper", "-r", qid)
    assert r.returncode == 0 and "Requeued: 1 message" in r.stderr, r.stderr
    kite.wait_log(rf"{qid}: requeued")
    new = wait_until(lambda: [i for i in queue_files(kite, "hold") if i != qid], what="requeued message",
                     kite=kite)
    env = kite.run("kitecat", "-e", new[0]).stdout
    assert "recipient: ann.new@example.com" in env
    assert qid not in queue_files(kite, "hold")


def test_kitesuper_structure_check_repairs(kite):
    hold_everything(kite)
    kite.start()
    (good,) = submit_held(kite, 1)
    q = Path(kite.queue_dir)
    bad = q / "hold" / "0TP8ZCCCCCC000CCCC"
    bad.write_bytes(b"not a queue file")
    stale = q / "incoming" / ".tmp.1.2.3"
    stale.write_bytes(b"V")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = q / "incoming" / ".tmp.4.5.6"
    fresh.write_bytes(b"V")
    orphan = q / "defer"
    orphan.mkdir(exist_ok=True)
    (orphan / "0TP8ZDDDDDD000DDDD").write_bytes(b"x")
    for p in (bad, stale, fresh, orphan / "0TP8ZDDDDDD000DDDD"):
        os.chown(p, kite.uid, kite.gid)
    r = kite.run("kitesuper", "-s")
    assert r.returncode == 0, r.stderr
    assert "Moved to corrupt: 1 message" in r.stderr
    assert "Removed 1 stale temporary file" in r.stderr
    assert "Removed 1 orphaned status log" in r.stderr
    assert bad.name in queue_files(kite, "corrupt")
    assert not stale.exists() and fresh.exists()
    assert good in queue_files(kite, "hold")


def test_kitecat_sections(kite):
    hold_everything(kite)
    kite.start()
    (qid,) = submit_held(kite, 1)
    out = kite.run("kitecat", qid)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.index("*** ENVELOPE RECORDS") < text.index("*** MESSAGE CONTENTS") < text.index("*** MESSAGE FILE END")
    assert "sender: s0@example.com" in text and "recipient: ann@example.com" in text
    hdrs = kite.run("kitecat", "-h", qid).stdout
    assert "Subject: hold 0" in hdrs and "body 0" not in hdrs and "sender:" not in hdrs
    body = kite.run("kitecat", "-b", qid).stdout
    assert "body 0" in body and "Subject:" not in body
    assert kite.run("kitecat", "0TP8ZEEEEEE000EEEE").returncode != 0


@pytest.mark.skipif(not (HAS_QMGR and HAS_SMTP), reason="qmgr and smtp not built")
def test_deferred_mail_shows_reason_and_flushes(kite):
    dead = kite.free_port()
    # kitequeue -s below needs example.net eligible for the fast flush service
    kite.set(relayhost=f"[127.0.0.1]:{dead}", fast_flush_domains="example.net")
    kite.start()
    r = kite.run("sendmail", "-f", "alice@kite.test", "far@example.net", input="Subject: away\n\nx\n")
    assert r.returncode == 0
    qid = wait_until(lambda: queue_files(kite, "deferred"), timeout=30, what="deferred message", kite=kite)[0]

    def reason():
        msgs, _ = parse_mailq(kite.run("kitequeue", "-p").stdout)
        return msgs and msgs[0]["reasons"] and msgs

    msgs = wait_until(reason, timeout=20, what="deferral reason in mailq", kite=kite)
    assert msgs[0]["id"] == qid and msgs[0]["rcpts"] == ["far@example.net"]
    objs = [json.loads(line) for line in kite.run("kitequeue", "-j").stdout.splitlines()]
    assert objs[0]["queue_name"] == "deferred" and objs[0]["recipients"][0]["delay_reason"]
    assert kite.run("kitequeue", "-f").returncode == 0
    assert kite.run("kitequeue", "-s", "example.net").returncode == 0
    assert kite.run("kitequeue", "-i", qid).returncode in (0, 69)


def test_root_install_submission_and_tools(kite):
    """master as root, daemons as mail_owner: submission, listing and kitesuper's privilege drop."""
    kite.as_root_with_mail_owner()
    hold_everything(kite)
    kite.start()
    r = kite.run("sendmail", "-f", "root", "ann@example.com", input="Subject: hold root\n\nx\n")
    assert r.returncode == 0, r.stderr
    (qid,) = wait_until(lambda: queue_files(kite, "hold"), what="held message", kite=kite)
    held = Path(kite.queue_dir) / "hold" / qid
    import pwd
    assert held.stat().st_uid == pwd.getpwnam("kite").pw_uid     # cleanup wrote it as mail_owner
    assert oct(held.stat().st_mode & 0o777) == "0o600"
    msgs, _ = parse_mailq(kite.run("kitequeue", "-p").stdout)
    assert [m["id"] for m in msgs] == [qid]
    r = kite.run("kitesuper", "-d", qid)
    assert r.returncode == 0 and "Deleted: 1 message" in r.stderr, r.stderr
    assert queue_files(kite, "hold") == []
