"""qmgr end to end: real master, real qmgr, a real test delivery agent.

Messages are real queue files (the qfile format of include/qfile.h) put
into incoming/ the way cleanup does it (temporary name, fsync, rename);
qmgr is poked over public/qmgr with attr frames. The test agent
(tests/daemon/testagent.c) answers per recipient from a table and keeps a
journal of every request it got, so the tests see exactly which
deliveries qmgr made.
"""

import os
import re
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, LIBEXEC, TEST_DAEMONS

B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_seq = [0]


def _b36(value, width):
    out = []
    for _ in range(width):
        out.append(B36[value % 36])
        value //= 36
    return "".join(reversed(out))


def new_queue_id():
    now = time.time()
    _seq[0] += 1
    return _b36(int(now), 7) + _b36(int((now % 1) * 1e6), 4) + _b36(os.getpid() * 1000 + _seq[0], 7)


def _rec(rtype, data=b""):
    if isinstance(data, str):
        data = data.encode()
    return rtype.encode() + struct.pack(">I", len(data)) + data


def write_message(kite, sender, rcpts, body=b"Subject: test\r\n\r\nhello\r\n", arrival=None,
                  warn_time=0, notify=None, queue="incoming", done=()):
    """A complete queue file in queue/ID (via a temporary name); returns the ID."""
    qid = new_queue_id()
    arrival = time.time() if arrival is None else arrival
    recs = [_rec("V", "KITE1"), _rec("Z", "%020d" % len(body)), _rec("W", "%020d" % warn_time),
            _rec("A", "arrival=%.6f" % arrival), _rec("A", "sender=" + sender)]
    for i, r in enumerate(rcpts):
        if notify:
            recs.append(_rec("N", str(notify)))
        recs.append(_rec("R", ("D" if i in done else "-") + r))
    recs.append(_rec("M"))
    recs.append(_rec("C", body))
    recs.append(_rec("E"))
    d = kite.queue_dir / queue
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / (".tmp.test.%s" % qid)
    with open(tmp, "wb") as f:
        f.write(b"".join(recs))
        f.flush()
        os.fsync(f.fileno())
    if os.geteuid() == 0:
        os.chown(tmp, kite.uid, kite.gid)
    os.rename(tmp, d / qid)
    return qid


def _attr_str(name, value):
    n, v = name.encode(), value.encode()
    return b"s" + struct.pack(">H", len(n)) + n + struct.pack(">I", len(v)) + v


def _decode(payload):
    out, i = {}, 0
    while i < len(payload):
        t = payload[i:i + 1]
        nl = struct.unpack(">H", payload[i + 1:i + 3])[0]
        name = payload[i + 3:i + 3 + nl].decode()
        vl = struct.unpack(">I", payload[i + 3 + nl:i + 7 + nl])[0]
        v = payload[i + 7 + nl:i + 7 + nl + vl]
        out[name] = struct.unpack(">q", v)[0] if t == b"i" else v.decode()
        i += 7 + nl + vl
    return out


def _attr_int(name, value):
    n = name.encode()
    return b"i" + struct.pack(">H", len(n)) + n + struct.pack(">I", 8) + struct.pack(">q", value)


def qmgr_request(kite, request, **attrs):
    """One request frame to public/qmgr (int values as 'i' attributes); returns the reply as a dict."""
    payload = _attr_str("request", request) + b"".join(
        _attr_int(k, v) if isinstance(v, int) else _attr_str(k, v) for k, v in attrs.items())
    deadline = time.time() + 10
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(str(kite.queue_dir / "public" / "qmgr"))
            break
        except OSError:
            s.close()
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    with s:
        s.settimeout(10)
        s.sendall(struct.pack(">I", len(payload)) + payload)
        hdr = b""
        while len(hdr) < 4:
            chunk = s.recv(4 - len(hdr))
            if not chunk:
                return {}
            hdr += chunk
        n = struct.unpack(">I", hdr)[0]
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                break
            data += chunk
    return _decode(data)


def journal_lines(path):
    try:
        return [l.split(" ") for l in Path(path).read_text().splitlines() if l]
    except FileNotFoundError:
        return []


def queue_files(kite, queue):
    d = kite.queue_dir / queue
    return sorted(p.name for p in d.rglob("*") if p.is_file()) if d.exists() else []


def wait_until(fn, timeout=10, what="condition", kite=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what + ("\n" + kite.log_tail() if kite else ""))


needs_daemons = pytest.mark.skipif(
    not (LIBEXEC / "qmgr").exists() or not (TEST_DAEMONS / "testagent").exists(),
    reason="qmgr and testagent must be built")


class Agent:
    """The test agent's table and journal in the instance directory."""

    def __init__(self, kite):
        self.table = kite.base / "agent-table"
        self.journal = kite.base / "agent-journal"
        self.table.write_text("")

    def set(self, *lines):
        tmp = self.table.with_suffix(".tmp")
        tmp.write_text("".join(l + "\n" for l in lines))
        os.rename(tmp, self.table)

    def requests(self):
        return journal_lines(self.journal)


def setup_instance(kite, extra_services="", **params):
    agent = Agent(kite)
    if os.geteuid() == 0:
        os.chmod(kite.base, 0o755)
        for p in (agent.table,):
            os.chown(p, kite.uid, kite.gid)
        agent.journal.touch()
        os.chown(agent.journal, kite.uid, kite.gid)
    base = {"default_transport": "testagent", "relay_transport": "testagent",
            "delay_warning_time": "0", "testagent_destination_concurrency_limit": "2"}
    base.update(params)
    kite.set(**base)
    services = ["qmgr unix n - n 300 1 qmgr",
                f"testagent unix - - n - 20 testagent {agent.table} {agent.journal}"]
    if have_bounce():
        services += ["bounce unix - - n - 0 bounce", "defer unix - - n - 0 bounce",
                     "trace unix - - n - 0 bounce", "cleanup unix n - n - 0 cleanup"]
    if (LIBEXEC / "local").exists():
        services += ["virtual unix - n n - - local"]
    kite.master_cf("\n".join(services) + "\n" + extra_services)
    return agent


def have_bounce():
    return (LIBEXEC / "bounce").exists() and (LIBEXEC / "cleanup").exists()


@needs_daemons
def test_message_delivered_and_removed(kite):
    agent = setup_instance(kite)
    kite.start()
    qid = write_message(kite, "alice@example.org", ["bob@example.com", "carol@example.com"])
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(qid) + r": from=<alice@example.org>, size=\d+, nrcpt=2 \(queue active\)")
    kite.wait_log(re.escape(qid) + r": to=<bob@example.com>, relay=testagent, delay=[\d.]+, "
                  r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, status=sent \(delivered\)")
    kite.wait_log(re.escape(qid) + r": removed")
    assert queue_files(kite, "active") == [] and queue_files(kite, "incoming") == []
    reqs = agent.requests()
    assert len(reqs) == 1
    assert reqs[0][:3] == [qid, "testagent", "example.com"]
    assert sorted(reqs[0][3].split(",")) == ["bob@example.com", "carol@example.com"]


@needs_daemons
def test_recipients_grouped_by_destination_and_limit(kite):
    agent = setup_instance(kite, testagent_destination_recipient_limit="2")
    kite.start()
    rcpts = ["a@one.test", "b@one.test", "c@one.test", "d@two.test"]
    qid = write_message(kite, "s@example.org", rcpts)
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(qid) + r": removed")
    reqs = agent.requests()
    by_dest = {}
    for r in reqs:
        by_dest.setdefault(r[2], []).append(r[3].split(","))
    assert sorted(len(x) for x in by_dest["one.test"]) == [1, 2]
    assert by_dest["two.test"] == [["d@two.test"]]


@needs_daemons
def test_deferred_then_delivered_after_backoff(kite):
    agent = setup_instance(kite)
    agent.set("bob@example.com defer 4.2.0 mailbox busy")
    kite.start()
    t0 = int(time.time())
    qid = write_message(kite, "alice@example.org", ["bob@example.com", "ok@example.com"])
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(qid) + r": to=<bob@example.com>, .*dsn=4\.2\.0, status=deferred \(mailbox busy\)")
    wait_until(lambda: qid in queue_files(kite, "deferred"), what="deferred file", kite=kite)
    path = [p for p in (kite.queue_dir / "deferred").rglob(qid)][0]
    # next attempt in the future: between minimal and maximal backoff (2s..4s)
    assert t0 + 2 <= path.stat().st_mtime <= t0 + 6
    agent.set()
    kite.wait_log(re.escape(qid) + r": removed", timeout=15)
    reqs = agent.requests()
    # ok@ was delivered in the first round and marked done: never sent again
    sent_to = [a for r in reqs for a in r[3].split(",")]
    assert sent_to.count("ok@example.com") == 1
    assert sent_to.count("bob@example.com") == 2


@needs_daemons
def test_done_recipients_skipped_after_qmgr_kill(kite):
    agent = setup_instance(kite, testagent_destination_recipient_limit="1",
                           testagent_destination_concurrency_limit="1")
    agent.set("slow@example.com sleep3 2.0.0 delivered")
    kite.start()
    qid = write_message(kite, "alice@example.org", ["fast@example.com", "slow@example.com"])
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(qid) + r": to=<fast@example.com>, .*status=sent")
    wait_until(lambda: any("slow@example.com" in r[3] for r in agent.requests()), what="slow delivery", kite=kite)
    qmgr = [pid for pid, info in kite.children("qmgr")]
    assert qmgr
    os.kill(qmgr[0], 9)
    # master starts a new qmgr for the next request; it moves active/ back
    # to incoming/ and finishes the message
    wait_until(lambda: not kite.children("qmgr"), what="qmgr gone", kite=kite)
    qmgr_request(kite, "wakeup")
    kite.wait_log(re.escape(qid) + r": removed", timeout=30)
    sent_to = [a for r in agent.requests() for a in r[3].split(",")]
    assert sent_to.count("fast@example.com") == 1


@needs_daemons
def test_crashed_agent_defers_never_loses(kite):
    agent = setup_instance(kite)
    agent.set("boom@example.com crash 4.0.0 x")
    kite.start()
    qid = write_message(kite, "alice@example.org", ["boom@example.com"])
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(qid) + r": to=<boom@example.com>, relay=none, .*dsn=4\.3\.0, status=deferred")
    wait_until(lambda: qid in queue_files(kite, "deferred"), what="deferred file", kite=kite)
    agent.set()
    qmgr_request(kite, "flush")
    kite.wait_log(re.escape(qid) + r": to=<boom@example.com>, relay=testagent, .*status=sent", timeout=15)
    kite.wait_log(re.escape(qid) + r": removed")


@needs_daemons
def test_dead_destination_gets_no_new_connections(kite):
    agent = setup_instance(kite, fast_flush_domains="dead.test", minimal_backoff_time="30s", maximal_backoff_time="60s",
                           testagent_destination_concurrency_limit="1")
    agent.set("@dead.test defer 4.4.1 connect to dead.test: Connection refused")
    kite.start()
    first = write_message(kite, "a@example.org", ["x@dead.test"])
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(first) + r": to=<x@dead.test>, .*dsn=4\.4\.1, status=deferred")
    kite.wait_log(r"testagent:dead.test: destination unreachable")
    ids = [write_message(kite, "a@example.org", ["y%d@dead.test" % i]) for i in range(3)]
    alive = write_message(kite, "a@example.org", ["z@alive.test"])
    qmgr_request(kite, "incoming")
    for qid in ids:
        kite.wait_log(re.escape(qid) + r": to=<y\d@dead.test>, relay=none, .*dsn=4\.4\.1, "
                      r"status=deferred \(delivery temporarily suspended: connect to dead.test")
    kite.wait_log(re.escape(alive) + r": removed")
    dead_reqs = [r for r in agent.requests() if r[2] == "dead.test"]
    assert len(dead_reqs) == 1          # only the first message reached the agent
    # flush_site revives the destination and retries its mail at once
    agent.set()
    reply = qmgr_request(kite, "flush_site", site="dead.test")
    assert reply.get("status") == 0
    for qid in [first] + ids:
        kite.wait_log(re.escape(qid) + r": removed", timeout=15)


@needs_daemons
def test_flush_site_only_takes_that_site(kite):
    agent = setup_instance(kite, fast_flush_domains="a.test b.test", minimal_backoff_time="60s", maximal_backoff_time="120s",
                           default_destination_concurrency_failed_cohort_limit="100")
    agent.set("* defer 4.2.0 try later")
    kite.start()
    a = write_message(kite, "s@example.org", ["u@a.test"])
    b = write_message(kite, "s@example.org", ["u@b.test"])
    qmgr_request(kite, "incoming")
    wait_until(lambda: a in queue_files(kite, "deferred") and b in queue_files(kite, "deferred"),
               what="both deferred", kite=kite)
    agent.set()
    reply = qmgr_request(kite, "flush_site", site="a.test")
    assert reply["status"] == 0 and "a.test" in reply["text"]
    kite.wait_log(re.escape(a) + r": removed")
    time.sleep(1)
    assert b in queue_files(kite, "deferred")
    reply = qmgr_request(kite, "deliver", queue_id=b)
    assert reply["status"] == 0
    kite.wait_log(re.escape(b) + r": removed")
    reply = qmgr_request(kite, "deliver", queue_id="0000000000000000ZZ")
    assert reply["status"] == 1


@needs_daemons
def test_flush_site_subdomains_only_when_asked(kite):
    agent = setup_instance(kite, fast_flush_domains="c.test", minimal_backoff_time="60s", maximal_backoff_time="120s",
                           default_destination_concurrency_failed_cohort_limit="100")
    agent.set("* defer 4.2.0 try later")
    kite.start()
    sub = write_message(kite, "s@example.org", ["u@mx.sub.c.test"])
    top = write_message(kite, "s@example.org", ["u@c.test"])
    near = write_message(kite, "s@example.org", ["u@xc.test"])
    qmgr_request(kite, "incoming")
    wait_until(lambda: all(q in queue_files(kite, "deferred") for q in (sub, top, near)),
               what="all deferred", kite=kite)
    agent.set()
    # a plain site is that destination only
    reply = qmgr_request(kite, "flush_site", site="sub.c.test")
    assert reply["status"] == 0
    time.sleep(1)
    assert sub in queue_files(kite, "deferred")
    # subdomains=1 (ETRN @domain): the domain and its subdomains, not xc.test
    reply = qmgr_request(kite, "flush_site", site="c.test", subdomains=1)
    assert reply["status"] == 0 and reply["text"] == "queuing started for @c.test"
    kite.wait_log(re.escape(sub) + r": removed")
    kite.wait_log(re.escape(top) + r": removed")
    time.sleep(1)
    assert near in queue_files(kite, "deferred")
    # hostile values
    assert qmgr_request(kite, "flush_site", site="c.test", subdomains=2)["status"] == 1
    assert qmgr_request(kite, "flush_site", site="c.test", subdomains=-1)["status"] == 1
    assert qmgr_request(kite, "flush_site", site="c.test", subdomains="1")["status"] == 1


@needs_daemons
def test_stop_and_continue(kite):
    agent = setup_instance(kite)
    kite.start()
    assert qmgr_request(kite, "stop")["status"] == 0
    qid = write_message(kite, "s@example.org", ["u@example.com"])
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(qid) + r": from=<s@example.org>")
    time.sleep(1)
    assert agent.requests() == []
    assert qmgr_request(kite, "continue")["status"] == 0
    kite.wait_log(re.escape(qid) + r": removed")


@needs_daemons
def test_corrupt_file_moved_aside(kite):
    setup_instance(kite)
    kite.start()
    qid = new_queue_id()
    bad = kite.queue_dir / "incoming" / qid
    bad.write_bytes(b"V\x00\x00\x00\x05KITE1garbage")
    if os.geteuid() == 0:
        os.chown(bad, kite.uid, kite.gid)
    good = write_message(kite, "s@example.org", ["u@example.com"])
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(qid) + r": corrupt queue file")
    kite.wait_log(re.escape(good) + r": removed")
    assert qid in queue_files(kite, "corrupt")


@needs_daemons
def test_hold_queue_is_ignored(kite):
    agent = setup_instance(kite)
    kite.start()
    held = write_message(kite, "s@example.org", ["u@example.com"], queue="hold")
    good = write_message(kite, "s@example.org", ["v@example.com"])
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(good) + r": removed")
    time.sleep(1.5)     # a deferred/incoming scan has run meanwhile
    assert held in queue_files(kite, "hold")
    assert all(r[0] != held for r in agent.requests())


@needs_daemons
def test_already_done_recipients_are_not_delivered(kite):
    agent = setup_instance(kite)
    kite.start()
    qid = write_message(kite, "s@example.org", ["done@example.com", "todo@example.com"], done=(0,))
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(qid) + r": removed")
    sent_to = [a for r in agent.requests() for a in r[3].split(",")]
    assert sent_to == ["todo@example.com"]


@needs_daemons
def test_bounced_recipient_logged_and_recorded(kite):
    agent = setup_instance(kite)
    agent.set("nobody@example.com bounce 5.1.1 no such user")
    kite.start()
    qid = write_message(kite, "s@example.org", ["nobody@example.com"])
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(qid) + r": to=<nobody@example.com>, .*dsn=5\.1\.1, status=bounced \(no such user\)")
    if have_bounce():
        kite.wait_log(re.escape(qid) + r": removed", timeout=15)
    else:
        # no bounce service: the notice is owed, so the message must stay queued
        wait_until(lambda: qid in queue_files(kite, "deferred"), what="deferred (notice owed)", kite=kite)
        assert qid in queue_files(kite, "bounce")


@needs_daemons
def test_lifetime_expiry_bounces_deferred_recipients(kite):
    agent = setup_instance(kite, maximal_queue_lifetime="3s", bounce_queue_lifetime="3s")
    agent.set("slow@example.com defer 4.4.7 still no answer")
    kite.start()
    qid = write_message(kite, "s@example.org", ["slow@example.com"], arrival=time.time() - 10)
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(qid) + r": from=<s@example.org>, status=expired, returned to sender")
    assert qid in queue_files(kite, "bounce") or have_bounce()


@needs_daemons
def test_bounce_queue_lifetime_applies_to_notices_only(kite):
    agent = setup_instance(kite, maximal_queue_lifetime="1d", bounce_queue_lifetime="3s")
    agent.set("slow@example.com defer 4.4.1 no answer")
    kite.start()
    notice = write_message(kite, "", ["slow@example.com"], arrival=time.time() - 10)
    normal = write_message(kite, "s@example.org", ["slow@example.com"], arrival=time.time() - 10)
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(notice) + r": from=<>, status=expired, returned to sender")
    kite.wait_log(re.escape(normal) + r": to=<slow@example\.com>, .*status=deferred")
    assert not re.search(re.escape(normal) + r": from=<s@example\.org>, status=expired", kite.log_text())


@needs_daemons
def test_message_active_limit_bounds_the_active_queue(kite):
    agent = setup_instance(kite, qmgr_message_active_limit="2")
    agent.set("@slow.test sleep1 2.0.0 delivered")
    kite.start()
    ids = [write_message(kite, "s@example.org", ["u%d@slow.test" % i]) for i in range(6)]
    qmgr_request(kite, "incoming")
    most = 0
    deadline = time.time() + 30
    while time.time() < deadline:
        most = max(most, len(queue_files(kite, "active")))
        if all(re.search(re.escape(q) + r": removed", kite.log_text()) for q in ids):
            break
        time.sleep(0.02)
    assert all(re.search(re.escape(q) + r": removed", kite.log_text()) for q in ids)
    assert 1 <= most <= 2


@needs_daemons
def test_fair_rotation_between_destinations(kite):
    """A destination with a long backlog does not starve a small one."""
    agent = setup_instance(kite, testagent_destination_concurrency_limit="1")
    agent.set("@slow.test sleep1 2.0.0 delivered")
    kite.start()
    slow = [write_message(kite, "s@example.org", ["u%d@slow.test" % i]) for i in range(5)]
    fast = write_message(kite, "s@example.org", ["u@fast.test"])
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(fast) + r": removed", timeout=8)
    # the fast destination was served long before the slow backlog drained
    assert not all(re.search(re.escape(q) + r": removed", kite.log_text()) for q in slow)
    for q in slow:
        kite.wait_log(re.escape(q) + r": removed", timeout=20)


@needs_daemons
def test_many_messages_all_delivered_once(kite):
    agent = setup_instance(kite)
    kite.start()
    ids = [write_message(kite, "s@example.org", ["u%d@d%d.test" % (i % 10, i % 3)]) for i in range(200)]
    qmgr_request(kite, "incoming")
    wait_until(lambda: all(q not in queue_files(kite, "incoming") + queue_files(kite, "active") for q in ids),
               timeout=60, what="all delivered", kite=kite)
    text = kite.log_text()
    assert len(re.findall(r": removed", text)) == 200
    assert sorted(r[0] for r in agent.requests()) == sorted(ids)


@needs_daemons
@pytest.mark.skipif(not have_bounce() or not (LIBEXEC / "local").exists(), reason="needs bounce, cleanup, local")
def test_delay_warning_sent_once_while_deferred(kite):
    agent = setup_instance(kite, delay_warning_time="1s")
    agent.set("slow@example.com defer 4.2.0 mailbox busy")
    kite.start()
    qid = write_message(kite, "alice@sandbox.test", ["slow@example.com"], notify=8 | 4)
    qmgr_request(kite, "incoming")
    files = kite.wait_for_files(kite.maildir_base / "alice" / "new", 1, timeout=20)
    report = files[0].read_bytes()
    assert b"report-type=delivery-status" in report
    assert re.search(rb"Action: delayed", report)
    assert b"slow@example.com" in report
    # later rounds do not warn again
    kite.wait_log(re.escape(qid) + r": from=<alice@sandbox.test>.*\n(.*\n)*.*" + re.escape(qid) + r": from=", timeout=15)
    time.sleep(3)
    assert len(list((kite.maildir_base / "alice" / "new").iterdir())) == 1
    assert qid in queue_files(kite, "deferred") + queue_files(kite, "active")


@needs_daemons
@pytest.mark.skipif(not have_bounce(), reason="needs bounce and cleanup")
def test_success_notice_for_notify_success(kite):
    agent = setup_instance(kite)
    kite.start()
    qid = write_message(kite, "alice@sandbox.test", ["bob@example.com"], notify=2)
    qmgr_request(kite, "incoming")
    kite.wait_log(re.escape(qid) + r": to=<bob@example.com>, .*status=sent")
    kite.wait_log(re.escape(qid) + r": removed", timeout=15)
    assert qid not in queue_files(kite, "trace")


@needs_daemons
def test_dead_destination_defers_the_rest_of_the_same_message(kite):
    agent = setup_instance(kite, minimal_backoff_time="30s", maximal_backoff_time="60s",
                           testagent_destination_concurrency_limit="1",
                           testagent_destination_recipient_limit="1")
    agent.set("@down.test defer 4.4.1 connect to down.test: Connection timed out")
    kite.start()
    qid = write_message(kite, "a@example.org", ["r1@down.test", "r2@down.test", "r3@down.test"])
    qmgr_request(kite, "incoming")
    for r in ("r2", "r3"):
        kite.wait_log(re.escape(qid) + r": to=<%s@down.test>, relay=none, .*status=deferred "
                      r"\(delivery temporarily suspended: connect to down.test" % r)
    wait_until(lambda: qid in queue_files(kite, "deferred"), what="deferred file", kite=kite)
    assert len([r for r in agent.requests() if r[2] == "down.test"]) == 1
    # qmgr is still alive and serving
    assert qmgr_request(kite, "wakeup")["status"] == 0
    assert not re.search(r"libexec/qmgr pid \d+ (exit status|killed by signal)", kite.log_text()), kite.log_tail()


@needs_daemons
@pytest.mark.skipif(not (BIN / "kitequeue").exists(), reason="kitequeue must be built")
def test_kitequeue_flush_requests_reach_qmgr(kite):
    agent = setup_instance(kite, fast_flush_domains="s1.test", minimal_backoff_time="60s", maximal_backoff_time="120s",
                           default_destination_concurrency_failed_cohort_limit="100")
    agent.set("* defer 4.2.0 try later")
    kite.start()
    ids = {site: write_message(kite, "s@example.org", ["u@%s" % site]) for site in ("s1.test", "s2.test", "s3.test")}
    qmgr_request(kite, "incoming")
    wait_until(lambda: all(q in queue_files(kite, "deferred") for q in ids.values()), what="all deferred", kite=kite)
    agent.set()
    res = kite.run("kitequeue", "-s", "s1.test")
    assert res.returncode == 0, res.stderr
    kite.wait_log(re.escape(ids["s1.test"]) + r": removed")
    res = kite.run("kitequeue", "-i", ids["s2.test"])
    assert res.returncode == 0, res.stderr
    kite.wait_log(re.escape(ids["s2.test"]) + r": removed")
    assert ids["s3.test"] in queue_files(kite, "deferred")
    res = kite.run("kitequeue", "-f")
    assert res.returncode == 0, res.stderr
    kite.wait_log(re.escape(ids["s3.test"]) + r": removed")


@needs_daemons
def test_hostile_requests_are_refused(kite):
    setup_instance(kite)
    kite.start()
    assert qmgr_request(kite, "explode")["status"] == 1
    assert qmgr_request(kite, "flush", surprise="x")["status"] == 1
    assert qmgr_request(kite, "flush_site")["status"] == 1
    assert qmgr_request(kite, "flush_site", site="a b; rm -rf /")["status"] == 1
    assert qmgr_request(kite, "flush_site", site="x" * 300)["status"] == 1
    assert qmgr_request(kite, "deliver", queue_id="../../etc/passwd")["status"] == 1
    assert qmgr_request(kite, "deliver")["status"] == 1
    # a frame that is not even attr-encoded, then a good request still works
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(kite.queue_dir / "public" / "qmgr"))
    s.sendall(b"\x00\x00\x00\x05garba")
    s.close()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(kite.queue_dir / "public" / "qmgr"))
    s.sendall(b"\xff\xff\xff\xff")
    s.close()
    assert qmgr_request(kite, "wakeup")["status"] == 0
    assert not re.search(r"libexec/qmgr pid \d+ (exit status|killed by signal)", kite.log_text())
