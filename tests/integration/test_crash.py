"""Crash points: the queue file writers (kitedrop, cleanup) are stopped with
abort() after N write operations (KITE_FAULT_WRITES=N) for every N until
they finish; every state left on disk must be either absent or a complete
queue file, and no message that was accepted may be lost."""

import os
import signal
import struct
import subprocess
import time
from pathlib import Path

from conftest import BIN, wait_until


def rec(t, d):
    d = d.encode() if isinstance(d, str) else d
    return t.encode() + struct.pack(">I", len(d)) + d


def submission(i):
    """kitedrop's input: envelope, two recipients, a multi-record body."""
    body = f"Subject: crash {i}\n\n" + ("line of text\n" * 50)
    return (rec("A", "sender=alice") + rec("N", "2") + rec("R", "-ann@example.com") + rec("R", "-bo@example.com")
            + rec("M", "") + rec("C", body[:300]) + rec("C", body[300:]) + rec("E", ""))


def ids(kite, queue):
    d = Path(kite.queue_dir) / queue
    return sorted(p.name for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))


def temps(kite, queue):
    d = Path(kite.queue_dir) / queue
    return sorted(p for p in d.rglob(".tmp.*") if p.is_file())


def complete(kite, queue, qid):
    """The strict reader accepts the file."""
    r = kite.run("kitecat", "-e", str(Path(kite.queue_dir) / queue / qid))
    return r.returncode == 0


def run_kitedrop(kite, n, data):
    env = kite.env()
    env["KITE_FAULT_WRITES"] = str(n)
    return subprocess.run([str(BIN / "kitedrop"), "-c", str(kite.confdir)], input=data, env=env,
                          capture_output=True, timeout=30, **kite._user_kwargs())


def test_kitedrop_crash_points_leave_absent_or_complete(kite):
    kite.start()
    kite.stop()
    crashed = 0
    finished = False
    for n in range(0, 200):
        r = run_kitedrop(kite, n, submission(n))
        if r.returncode == 0:
            finished = True
            break
        assert r.returncode == -signal.SIGABRT, (n, r.returncode, r.stderr)
        crashed += 1
        for qid in ids(kite, "maildrop"):
            assert complete(kite, "maildrop", qid), f"crash point {n}: incomplete maildrop/{qid} visible"
    assert finished and crashed > 15
    visible = ids(kite, "maildrop")
    assert len(visible) >= 1          # at least the finished one; late crash points may have left more
    leftovers = temps(kite, "maildrop")
    assert leftovers                  # early crash points leave temporary files, never queue files
    # Started, pickup takes every complete file and ignores the temporary ones.
    kite.start()
    wait_until(lambda: ids(kite, "maildrop") == [], timeout=20, what="maildrop drained", kite=kite)
    log = kite.log_text()
    assert log.count("from=<alice>") >= len(visible)
    assert "corrupt" not in log
    # The structure check clears temporary files once they are old.
    old = time.time() - 7200
    for p in temps(kite, "maildrop"):
        os.utime(p, (old, old))
    r = kite.run("kitesuper", "-s")
    assert r.returncode == 0, r.stderr
    assert temps(kite, "maildrop") == []


def test_cleanup_crash_points_never_lose_accepted_mail(kite):
    base_env = kite.params["import_environment"]
    kite.start()
    kite.stop()
    assert kite.run("sendmail", "-f", "alice", "ann@sandbox.test",
                    input="Subject: survive\n\n" + "text\n" * 100).returncode == 0
    (waiting,) = ids(kite, "maildrop")
    for n in range(0, 60, 4):
        kite.set(import_environment=f"{base_env} KITE_FAULT_WRITES={n}")
        mark = len(kite.log_text())
        kite.start()
        # pickup feeds cleanup at start; cleanup either dies at write n or queues the message.
        kite.wait_log(r"cleanup pid \d+ killed by signal 6|kite/cleanup\[\d+\]: \w+: message-id=", timeout=20,
                      after=mark)
        time.sleep(0.5)
        kite.stop()
        queued = 0
        for queue in ("incoming", "active", "deferred", "hold"):
            for qid in ids(kite, queue):
                assert complete(kite, queue, qid), f"crash point {n}: incomplete {queue}/{qid} visible"
                queued += 1
        delivered = list((Path(kite.maildir_base) / "ann").rglob("new/*"))
        if queued or delivered:
            break
        # Not queued: the submission must still be waiting in maildrop/.
        assert ids(kite, "maildrop") == [waiting], f"crash point {n}: message lost"
    else:
        raise AssertionError("cleanup never finished")
    assert kite.log_text().count("killed by signal 6") >= 5     # it really crashed at many points
    # Without faults everything still waiting goes through; nothing is lost.
    kite.set(import_environment=base_env)
    kite.start()
    wait_until(lambda: ids(kite, "maildrop") == [], timeout=20, what="maildrop drained", kite=kite)
