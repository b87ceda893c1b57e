"""Finished messages are removed in batches after one syncfs (qmgr/remove.c).

The delivery agents write their done marks without a sync; qmgr keeps a
finished message's file in active/ until the next removal batch, makes all
marks durable with one syncfs, run by a worker thread beside the event loop,
then retires the files and logs "ID: removed".

- A burst of deliveries costs far fewer mark syncs (fdatasync, syncfs) than
  messages; every message arrives exactly once and every queue file is gone.
- kite stop with finished files pending removes them (qmgr's exit hook).
- kill -9 of qmgr with finished files pending: the next qmgr finds them in
  active/, every recipient done, and removes them without delivering again.
- While a sync is in flight (KITE_SYNC_DELAY_MS slows the worker down) the
  event loop goes on: a second message is taken from incoming/ and delivered
  before the first one's removal sync completes; stop and kill -9 with a sync
  in flight keep every rule (stop waits for it, kill -9 leaves the files).
KITE_REMOVE_DELAY_MS stretches the batch interval so that the pending state
is certain when the test stops or kills qmgr.
"""

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import LIBEXEC
from test_qmgr import qmgr_request, queue_files, wait_until, write_message

needs_local = pytest.mark.skipif(not all((LIBEXEC / d).exists() for d in ("qmgr", "local")),
                                 reason="qmgr and local must be built")


def queue_empty(kite):
    return not any(queue_files(kite, q) for q in ("incoming", "active", "deferred", "hold", "corrupt"))


def delivered(kite, user):
    base = Path(kite.maildir_base) / user
    return [p for d in ("new", "cur") if (base / d).is_dir() for p in (base / d).iterdir() if p.is_file()]


def long_batches(kite, ms):
    base = kite.params["import_environment"]
    kite.set(import_environment=f"{base} KITE_REMOVE_DELAY_MS={ms}")


def slow_syncs(kite, ms):
    """Each batch starts at once, and its sync takes ms (the worker sleeps first)."""
    base = kite.params["import_environment"]
    kite.set(import_environment=f"{base} KITE_REMOVE_DELAY_MS=0 KITE_SYNC_DELAY_MS={ms}")


def log_offset(kite, regex):
    m = re.search(regex, kite.log_text())
    return m.start() if m else None


def deliver_pending(kite, users):
    """One message per user, delivered; returns the IDs, all finished and still in active/."""
    ids = [write_message(kite, "alice@example.org", [f"{u}@sandbox.test"]) for u in users]
    qmgr_request(kite, "incoming")
    for qid in ids:
        kite.wait_log(re.escape(qid) + r": to=<.*status=sent", timeout=30)
    assert sorted(queue_files(kite, "active")) == sorted(ids), kite.log_tail()
    assert ": removed" not in kite.log_text()
    return ids


def qmgr_pid(kite):
    ((pid, _),) = wait_until(lambda: kite.children("qmgr"), timeout=20, what="qmgr running", kite=kite)
    return pid


def strace_counts(path):
    """syscall -> calls from `strace -c` output."""
    counts = {}
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if len(f) >= 5 and f[-1] in ("fsync", "fdatasync", "syncfs"):
            counts[f[-1]] = int(f[3])
    return counts


@needs_local
def test_burst_costs_far_fewer_mark_syncs_than_messages(kite):
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    n = 120
    kite.start()
    qmgr_request(kite, "wakeup")
    tracees = [kite.master_pid(), qmgr_pid(kite)] + [p for s in ("local", "virtual") for p, _ in kite.children(s)]
    out = kite.base / "strace.out"
    args = ["strace", "-f", "-c", "-o", str(out), "-e", "trace=fsync,fdatasync,syncfs"]
    for pid in tracees:
        args += ["-p", str(pid)]
    tracer = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)     # attached
        if tracer.poll() is not None:
            pytest.skip("strace cannot attach: " + tracer.stderr.read().decode(errors="replace"))
        ids = [write_message(kite, "alice@example.org", [f"u{i % 10}@sandbox.test"]) for i in range(n)]
        qmgr_request(kite, "incoming")
        wait_until(lambda: len(re.findall(r": removed", kite.log_text())) >= n and queue_empty(kite),
                   timeout=120, what="all removed", kite=kite)
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
    counts = strace_counts(out)
    # Maildir delivery itself fsyncs the file and new/ (2 per message); the marks are synced per batch.
    mark_syncs = counts.get("fdatasync", 0) + counts.get("syncfs", 0)
    print(f"{n} messages: {counts}")
    assert counts.get("syncfs", 0) >= 1, counts
    assert mark_syncs <= n // 4, counts
    assert counts.get("fsync", 0) >= 2 * n, counts       # the trace did see the deliveries
    for qid in ids:
        assert len(re.findall(re.escape(qid) + r": to=<.*status=sent", kite.log_text())) == 1
        assert len(re.findall(re.escape(qid) + r": removed", kite.log_text())) == 1
    assert sum(len(delivered(kite, f"u{i}")) for i in range(10)) == n
    assert queue_empty(kite), kite.log_tail()


@needs_local
def test_stop_with_pending_removals_leaves_no_finished_file(kite):
    long_batches(kite, 60000)
    kite.start()
    ids = deliver_pending(kite, ["ann", "bob", "cid"])
    kite.stop()
    for qid in ids:
        assert re.search(re.escape(qid) + r": removed", kite.log_text()), kite.log_tail()
    assert queue_empty(kite), kite.log_tail()
    assert [len(delivered(kite, u)) for u in ("ann", "bob", "cid")] == [1, 1, 1]


@needs_local
def test_kill_9_with_pending_removals_redelivers_nothing(kite):
    long_batches(kite, 60000)
    kite.start()
    ids = deliver_pending(kite, ["ann", "bob", "cid"])
    os.kill(qmgr_pid(kite), signal.SIGKILL)
    kite.wait_log(r"qmgr pid \d+ killed by signal 9", timeout=20)
    qmgr_request(kite, "wakeup")
    # The next qmgr takes the files back from active/ and loads them: nothing left to deliver.
    for qid in ids:
        wait_until(lambda: len(re.findall(re.escape(qid) + r": from=<.*\(queue active\)", kite.log_text())) >= 2,
                   timeout=30, what=f"{qid} loaded again", kite=kite)
    kite.stop()
    for qid in ids:
        assert len(re.findall(re.escape(qid) + r": to=<", kite.log_text())) == 1, kite.log_tail()
        assert len(re.findall(re.escape(qid) + r": removed", kite.log_text())) == 1, kite.log_tail()
    assert [len(delivered(kite, u)) for u in ("ann", "bob", "cid")] == [1, 1, 1]
    assert queue_empty(kite), kite.log_tail()



@needs_local
def test_pending_files_are_not_picked_up_again(kite):
    """While finished files wait in active/, scans, flush, "deliver ID" and kitesuper -r find
    nothing to deliver (they look at incoming/ and deferred/, or skip done recipients)."""
    long_batches(kite, 60000)
    kite.start()
    ids = deliver_pending(kite, ["hal", "ivy"])
    assert qmgr_request(kite, "flush")["status"] == 0
    assert qmgr_request(kite, "wakeup")["status"] == 0
    for qid in ids:
        reply = qmgr_request(kite, "deliver", queue_id=qid)
        assert reply["status"] == 1 and "no such message" in reply["text"], reply
    time.sleep(1.5)
    assert sorted(queue_files(kite, "active")) == sorted(ids)
    res = kite.run("kitesuper", "-r", "ALL")
    assert res.returncode == 0, res.stderr
    time.sleep(1.5)
    kite.stop()
    for qid in ids:
        assert len(re.findall(re.escape(qid) + r": to=<", kite.log_text())) == 1, kite.log_tail()
    assert [len(delivered(kite, u)) for u in ("hal", "ivy")] == [1, 1]
    assert queue_empty(kite) and not queue_files(kite, "maildrop"), kite.log_tail()


@needs_local
def test_delivery_goes_on_while_a_sync_is_in_flight(kite):
    """The first message's removal sync takes 6 s; meanwhile qmgr answers, takes a second
    message from incoming/ and has it delivered. Then both are removed, in order."""
    slow_syncs(kite, 6000)
    kite.start()
    first = write_message(kite, "alice@example.org", ["ann@sandbox.test"])
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(first) + r": to=<ann@sandbox.test>.*status=sent", timeout=30)
    time.sleep(0.3)     # qmgr has the result: the first batch's sync is in flight
    t0 = time.monotonic()
    second = write_message(kite, "alice@example.org", ["bob@sandbox.test"])
    assert qmgr_request(kite, "incoming")["status"] == 0
    kite.wait_log(re.escape(second) + r": to=<bob@sandbox.test>.*status=sent", timeout=5)
    took = time.monotonic() - t0
    text = kite.log_text()
    assert not re.search(re.escape(first) + r": removed", text), kite.log_tail()
    assert took < 4.5, took
    assert first in queue_files(kite, "active"), kite.log_tail()
    # The second waits for the next batch, which starts when the first sync completes.
    kite.wait_log(re.escape(first) + r": removed", timeout=20)
    kite.wait_log(re.escape(second) + r": removed", timeout=20)
    assert log_offset(kite, re.escape(first) + r": removed") < log_offset(kite, re.escape(second) + r": removed")
    kite.stop()
    for qid in (first, second):
        assert len(re.findall(re.escape(qid) + r": to=<", kite.log_text())) == 1, kite.log_tail()
        assert len(re.findall(re.escape(qid) + r": removed", kite.log_text())) == 1, kite.log_tail()
    assert [len(delivered(kite, u)) for u in ("ann", "bob")] == [1, 1]
    assert queue_empty(kite), kite.log_tail()


@needs_local
def test_stop_with_a_sync_in_flight_waits_and_removes_everything(kite):
    slow_syncs(kite, 3000)
    kite.start()
    ids = deliver_pending(kite, ["ann", "bob", "cid"])
    t0 = time.monotonic()
    kite.stop()
    assert time.monotonic() - t0 >= 1.0    # qmgr waited for the sync in flight
    for qid in ids:
        assert len(re.findall(re.escape(qid) + r": removed", kite.log_text())) == 1, kite.log_tail()
    assert "killing the remaining processes" not in kite.log_text()
    assert queue_empty(kite), kite.log_tail()
    assert [len(delivered(kite, u)) for u in ("ann", "bob", "cid")] == [1, 1, 1]


@needs_local
def test_kill_9_with_a_sync_in_flight_redelivers_nothing(kite):
    slow_syncs(kite, 3000)
    kite.start()
    ids = deliver_pending(kite, ["ann", "bob", "cid"])
    os.kill(qmgr_pid(kite), signal.SIGKILL)
    kite.wait_log(r"qmgr pid \d+ killed by signal 9", timeout=20)
    assert sorted(queue_files(kite, "active")) == sorted(ids), kite.log_tail()
    qmgr_request(kite, "wakeup")
    for qid in ids:
        wait_until(lambda: len(re.findall(re.escape(qid) + r": from=<.*\(queue active\)", kite.log_text())) >= 2,
                   timeout=30, what=f"{qid} loaded again", kite=kite)
    for qid in ids:
        kite.wait_log(re.escape(qid) + r": removed", timeout=30)
    kite.stop()
    for qid in ids:
        assert len(re.findall(re.escape(qid) + r": to=<", kite.log_text())) == 1, kite.log_tail()
        assert len(re.findall(re.escape(qid) + r": removed", kite.log_text())) == 1, kite.log_tail()
    assert [len(delivered(kite, u)) for u in ("ann", "bob", "cid")] == [1, 1, 1]
    assert queue_empty(kite), kite.log_tail()
