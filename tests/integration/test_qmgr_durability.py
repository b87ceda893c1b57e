"""qmgr without fsyncs in its event loop: crashes cost at most a duplicate
delivery, never a message.

- qmgr's moves to and from active/ no longer fsync the directories. A crash
  of the machine can lose such a rename; the file is then still in the
  queue it came from. The tests put files where a lost rename would leave
  them and check that qmgr finds them and delivers only what was not done.
- Delivery agents mark their delivered recipients done in the queue file
  themselves (without a sync) before they report; qmgr removes finished
  files in batches after one syncfs (qmgr/remove.c). Crash points in that
  marking (KITE_FAULT_MARKS) and kill -9 of an agent or of qmgr mid-delivery
  must leave every recipient delivered at least once, at most twice.
- A qmgr stopped or killed while finished files wait for their removal
  batch leaves nothing behind and delivers nothing again.
- qmgr does not trust an agent's claim that it marked a recipient: a false
  claim costs a duplicate, a claim on a deferred recipient is refused.
"""

import os
import re
import signal
import time
from pathlib import Path

import pytest

from conftest import LIBEXEC
from test_local import chown_to_instance, maildir_messages, message, need_mail_path, send
from test_qmgr import needs_daemons, qmgr_request, queue_files, setup_instance, wait_until, write_message


# Deferred mail waits: the tests move it around while Kite is stopped, or flush it themselves.
SLOW_RETRY = {"minimal_backoff_time": "300s", "maximal_backoff_time": "600s"}


def all_queue_files(kite):
    return {q: queue_files(kite, q) for q in ("incoming", "active", "deferred", "hold", "corrupt")}


def queue_empty(kite):
    return not any(all_queue_files(kite).values())


def requested(agent, qid):
    """The recipient lists of every request the test agent got for qid."""
    return [sorted(r[3].split(",")) for r in agent.requests() if r[0] == qid]


def maildir_count(kite, user):
    new = Path(kite.maildir_base) / user / "new"
    return len(list(new.iterdir())) if new.is_dir() else 0


def deferred_path(kite, qid):
    (p,) = [p for p in (kite.queue_dir / "deferred").rglob(qid)]
    return p


def lose_move_to_deferred(kite, qid):
    """Kite stopped: put the file back where a lost active -> deferred rename leaves it."""
    src = deferred_path(kite, qid)
    os.rename(src, kite.queue_dir / "active" / qid)


# ---- lost renames ---------------------------------------------------------------------------

@needs_daemons
@pytest.mark.parametrize("where", ["active", "incoming", "deferred"])
def test_file_left_by_a_lost_rename_is_found_and_only_pending_recipients_delivered(kite, where):
    """A file in active/ (lost active -> deferred or active -> incoming), incoming/ (lost
    incoming -> active) or deferred/ (lost deferred -> active), with one recipient done."""
    agent = setup_instance(kite)
    kite.start()        # lays out the queue
    kite.stop()
    if where == "deferred":
        # Where the rename from deferred/ would have come from: the hashed path, due now.
        qid = write_message(kite, "alice@example.org", ["done@example.com", "todo@example.com"], done=(0,),
                            queue="incoming")
        dest = kite.queue_dir / "deferred" / qid[-1]
        dest.mkdir(parents=True, exist_ok=True)
        chown_to_instance(kite, dest)
        os.rename(kite.queue_dir / "incoming" / qid, dest / qid)
    else:
        qid = write_message(kite, "alice@example.org", ["done@example.com", "todo@example.com"], done=(0,),
                            queue=where)
    # A future next-attempt time, as set before the move to deferred/: must not delay recovery.
    if where == "active":
        future = time.time() + 3600
        os.utime(kite.queue_dir / "active" / qid, (future, future))
    kite.start()
    if where == "deferred":
        qmgr_request(kite, "flush")
    kite.wait_log(re.escape(qid) + r": removed", timeout=20)
    assert requested(agent, qid) == [["todo@example.com"]]
    assert queue_empty(kite), all_queue_files(kite)


@needs_daemons
def test_lost_move_to_deferred_redelivers_nothing_qmgr_marked(kite):
    """qmgr's own marks (a bounced and a delivered recipient via the test agent, which does not
    mark) survive when the rename to deferred/ is lost and the file turns up in active/."""
    agent = setup_instance(kite, **SLOW_RETRY)
    agent.set("later@example.com defer 4.2.0 try later", "gone@example.com bounce 5.1.1 no such user")
    kite.start()
    qid = write_message(kite, "alice@example.org", ["ok@example.com", "later@example.com", "gone@example.com"])
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(qid) + r": to=<later@example.com>.*status=deferred", timeout=20)
    wait_until(lambda: queue_files(kite, "deferred"), what="message deferred", kite=kite)
    kite.stop()
    lose_move_to_deferred(kite, qid)
    agent.set()
    kite.start()
    kite.wait_log(re.escape(qid) + r": removed", timeout=20)
    assert requested(agent, qid) == [["gone@example.com", "later@example.com", "ok@example.com"],
                                     ["later@example.com"]]
    assert not any(qid in files for files in all_queue_files(kite).values())


@needs_daemons
def test_agent_marks_survive_a_lost_move_to_deferred(kite):
    """A recipient marked done by the agent itself (local, Maildir) is not delivered again."""
    if not (LIBEXEC / "local").exists():
        pytest.skip("local must be built")
    agent = setup_instance(kite, **SLOW_RETRY)
    agent.set("later@example.com defer 4.2.0 try later")
    kite.start()
    qid = write_message(kite, "alice@example.org", ["ann@sandbox.test", "later@example.com"])
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(qid) + r": to=<ann@sandbox.test>, relay=(local|virtual).*status=sent", timeout=20)
    kite.wait_log(re.escape(qid) + r": to=<later@example.com>.*status=deferred", timeout=20)
    wait_until(lambda: queue_files(kite, "deferred"), what="message deferred", kite=kite)
    kite.stop()
    lose_move_to_deferred(kite, qid)
    agent.set()
    kite.start()
    kite.wait_log(re.escape(qid) + r": removed", timeout=20)
    assert maildir_count(kite, "ann") == 1
    assert requested(agent, qid) == [["later@example.com"], ["later@example.com"]]


# ---- crash points in the agent's marking ---------------------------------------------------

@pytest.mark.parametrize("step", [0, 1])
def test_agent_crash_points_while_marking_cost_at_most_a_duplicate(kite, step):
    """local aborts at marking step N (0: before writing the status byte); 1 is past the last
    step for one recipient (the agent no longer syncs: qmgr does, once per removal batch)."""
    base_env = kite.params["import_environment"]
    kite.set(import_environment=f"{base_env} KITE_FAULT_MARKS=local:{step}")
    kite.start()
    send(kite, "alice@example.org", ["ann@sandbox.test"], message(b"marks %d" % step, b"body\r\n"))
    maildir_messages(kite.maildir_base / "ann", 1)
    if step < 1:
        kite.wait_log(r"local pid \d+ killed by signal 6", timeout=20)
    else:
        kite.wait_log(r": removed", timeout=20)
    time.sleep(0.5)
    kite.stop()
    # Without the fault, whatever is left is delivered; nothing is lost.
    kite.set(import_environment=base_env)
    kite.start()
    qmgr_request(kite, "flush")
    wait_until(lambda: queue_empty(kite), timeout=30, what="queue empty", kite=kite)
    copies = maildir_count(kite, "ann")
    # Before the mark: the recipient is delivered again (a duplicate). After it: never again.
    if step == 0:
        assert copies >= 2, (step, copies, kite.log_tail())
    else:
        assert copies == 1, (step, copies, kite.log_tail())
    assert ("killed by signal 6" in kite.log_text()) == (step < 1)


# ---- kill -9 mid-delivery ---------------------------------------------------------------------

def slow_alias(kite):
    """alias slow: a command that takes 3 seconds and counts its runs in work/runs."""
    need_mail_path()
    from test_aliases import aliases
    work = kite.base / "work"
    work.mkdir()
    script = work / "slow.sh"
    script.write_text(f"#!/bin/sh\ncat > /dev/null\nsleep 3\necho run >> {work}/runs\n")
    script.chmod(0o755)
    chown_to_instance(kite, work, script)
    aliases(kite, f"slow: \"|{script}\"\n")
    return work / "runs"


def runs(path):
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


def local_children(kite):
    return [pid for pid, info in kite.children("local")]


@pytest.mark.parametrize("victim", ["qmgr", "local"])
def test_kill_9_mid_delivery_costs_at_most_a_duplicate(kite, victim):
    counter = slow_alias(kite)
    kite.start()
    send(kite, "alice@example.org", ["slow@kite.test"], message(b"kill %s" % victim.encode(), b"body\r\n"))
    pids = wait_until(lambda: local_children(kite), timeout=20, what="local busy", kite=kite)
    time.sleep(1.0)     # the command is running
    if victim == "qmgr":
        ((qpid, _),) = kite.children("qmgr")
        os.kill(qpid, signal.SIGKILL)
    else:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
    kite.wait_log(rf"{victim} pid \d+ killed by signal 9", timeout=20)
    qmgr_request(kite, "flush")
    wait_until(lambda: runs(counter) >= 1 and queue_empty(kite), timeout=40, what="delivered and queue empty",
               kite=kite)
    time.sleep(4)       # a second run in flight finishes
    assert 1 <= runs(counter) <= 2, kite.log_tail()
    assert queue_empty(kite), (all_queue_files(kite), kite.log_tail())


# ---- qmgr checks the agent's claims -------------------------------------------------------------

@needs_daemons
def test_false_mark_claim_costs_a_duplicate_never_a_loss(kite):
    """The test agent claims marked=1 for liar@ but writes nothing; the message is deferred for
    later@, and liar@ is delivered again in the next round (the file says it is pending)."""
    agent = setup_instance(kite, **SLOW_RETRY)
    agent.set("liar@example.com claim 2.0.0 delivered", "later@example.com defer 4.2.0 try later")
    kite.start()
    qid = write_message(kite, "alice@example.org", ["liar@example.com", "later@example.com"])
    qmgr_request(kite, "incoming")
    wait_until(lambda: queue_files(kite, "deferred"), timeout=20, what="message deferred", kite=kite)
    agent.set()
    qmgr_request(kite, "flush")
    kite.wait_log(re.escape(qid) + r": removed", timeout=20)
    assert requested(agent, qid) == [["later@example.com", "liar@example.com"],
                                     ["later@example.com", "liar@example.com"]]


@needs_daemons
def test_marked_claim_on_a_deferred_recipient_is_refused(kite):
    agent = setup_instance(kite)
    agent.set("odd@example.com claimdefer 4.4.1 odd")
    kite.start()
    qid = write_message(kite, "alice@example.org", ["odd@example.com"])
    qmgr_request(kite, "incoming")
    kite.wait_log(r"deliver_result: recipient \d+ marked done with status 1", timeout=20)
    kite.wait_log(re.escape(qid) + r": to=<odd@example.com>.*status=deferred \(delivery agent protocol error\)",
                  timeout=20)
    agent.set()
    qmgr_request(kite, "flush")
    kite.wait_log(re.escape(qid) + r": removed", timeout=20)
    assert requested(agent, qid) == [["odd@example.com"], ["odd@example.com"]]


@needs_daemons
def test_marking_agent_and_qmgr_agree(kite):
    """The test agent marks like the real agents (deliver_mark_done): the message is removed after
    one request, and qmgr writes nothing more for those recipients."""
    agent = setup_instance(kite)
    agent.set("* mark 2.0.0 delivered")
    kite.start()
    qid = write_message(kite, "alice@example.org", ["a@example.com", "b@example.com"])
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(qid) + r": removed", timeout=20)
    assert requested(agent, qid) == [["a@example.com", "b@example.com"]]
    assert "marked recipient" not in kite.log_text()
