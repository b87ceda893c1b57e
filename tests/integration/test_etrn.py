"""ETRN (RFC 1985) end to end: a real Kite instance (smtpd, cleanup, qmgr,
smtp), mail for relay domains whose next hop is down sitting in deferred/,
and an aiosmtpd sink (sink.py) that comes up at that next hop afterwards.

Retry times are long (minimal_backoff_time and queue_run_delay of
minutes), so a delivery within seconds can only come from the ETRN. The
ETRN itself is sent with Python's smtplib (swaks has no way to send an
ETRN command; it submits some of the mail instead) and with raw sockets
where the exact reply line matters.
"""

import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import BIN, LIBEXEC
from sink import Sink

pytestmark = pytest.mark.skipif(
    not all((LIBEXEC / d).exists() for d in ("smtpd", "cleanup", "qmgr", "smtp")),
    reason="needs the smtpd, cleanup, qmgr and smtp daemons")

SWAKS = shutil.which("swaks")


@pytest.fixture(autouse=True)
def show_log_on_failure(kite):
    yield
    print("--- maillog ---\n" + kite.log_tail(80))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(kite, hop_port, **params):
    """An instance relaying relay.test (and subdomains) and other.test to [127.0.0.1]:hop_port."""
    hop = "smtp:[127.0.0.1]:%d" % hop_port
    base = dict(relay_domains="relay.test other.test",
                transport_maps="inline:{relay.test=%s, .relay.test=%s, other.test=%s}" % (hop, hop, hop),
                smtpd_greet_pause_ms=0, smtpd_error_sleep_time="0s", smtpd_peername_lookup="no",
                # Only an ETRN can explain a delivery within the test's time.
                minimal_backoff_time="300s", maximal_backoff_time="600s", queue_run_delay="300s")
    base.update(params)
    kite.set(**base)
    kite.start()
    wait_port(kite.port)


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.settimeout(5)
                s.recv(512)
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def submit(kite, rcpt, use_swaks=False):
    """One message to rcpt through smtpd (with swaks when asked and installed)."""
    body = "Subject: etrn test\r\n\r\nfor %s\r\n" % rcpt
    if use_swaks and SWAKS:
        r = subprocess.run([SWAKS, "--server", "127.0.0.1", "--port", str(kite.port), "--ehlo", "client.test",
                            "--from", "sender@kite.test", "--to", rcpt, "--data", body.replace("\r\n", "\n"),
                            "--timeout", "30"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        return
    with smtplib.SMTP("127.0.0.1", kite.port, timeout=30) as c:
        c.ehlo("client.test")
        c.sendmail("sender@kite.test", [rcpt], body.encode())


def deferred_ids(kite):
    d = kite.queue_dir / "deferred"
    return sorted(p.name for p in d.rglob("*") if p.is_file()) if d.exists() else []


def wait_deferred(kite, rcpt, n):
    """Wait until rcpt's delivery was deferred and n messages sit in deferred/."""
    kite.wait_log(r"to=<%s>, .*status=deferred" % re.escape(rcpt), timeout=20)
    deadline = time.time() + 20
    while len(deferred_ids(kite)) < n:
        if time.time() > deadline:
            raise AssertionError("deferred/ holds %s" % deferred_ids(kite))
        time.sleep(0.05)


def etrn(kite, arg, ehlo=True):
    """(code, text) of ETRN arg from a fresh smtplib session."""
    with smtplib.SMTP("127.0.0.1", kite.port, timeout=30) as c:
        if ehlo:
            c.ehlo("client.test")
        code, text = c.docmd("ETRN", arg)
        return code, text.decode()


def raw_dialogue(kite, lines):
    """Send each line, collect each (possibly multi-line) reply as text."""
    with socket.create_connection(("127.0.0.1", kite.port), timeout=30) as s:
        f = s.makefile("rb")
        f.readline()
        replies = []
        for line in lines:
            s.sendall(line.encode() + b"\r\n")
            reply = b""
            while True:
                ln = f.readline()
                assert ln, "connection closed after %r" % line
                reply += ln
                if ln[3:4] != b"-":
                    break
            replies.append(reply.decode())
        return replies


def rcpts_of(sink):
    return sorted(r[0] for m in sink.messages for r in m.rcpts)


# ---- delivery -----------------------------------------------------------


def test_etrn_delivers_that_domains_deferred_mail_now_and_no_other(kite):
    port = free_port()
    start(kite, port)
    submit(kite, "u@relay.test")
    wait_deferred(kite, "u@relay.test", 1)
    submit(kite, "v@other.test", use_swaks=True)
    wait_deferred(kite, "v@other.test", 2)
    sink = Sink(port)
    try:
        t0 = time.time()
        assert etrn(kite, "relay.test") == (250, "2.0.0 Queuing started")
        sink.wait_messages(1, timeout=20)
        assert time.time() - t0 < 60            # the retry would come after 300s
        kite.wait_log(r"to=<u@relay\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*status=sent" % port)
        kite.wait_log(r"qmgr\[\d+\]: flush request for relay\.test$")
        kite.wait_log(r"disconnect from unknown\[127\.0\.0\.1\] ehlo=1 etrn=1 quit=1 commands=3")
        # other.test's mail is not delivered by that ETRN: it stays deferred
        time.sleep(3)
        assert rcpts_of(sink) == ["u@relay.test"]
        assert len(deferred_ids(kite)) == 1
        assert not re.search(r"to=<v@other\.test>, .*status=sent", kite.log_text())
        # ... though it would have been deliverable: its own ETRN delivers it
        assert etrn(kite, "other.test") == (250, "2.0.0 Queuing started")
        sink.wait_messages(2, timeout=20)
        assert rcpts_of(sink) == ["u@relay.test", "v@other.test"]
        kite.wait_log(r"to=<v@other\.test>, .*status=sent")
    finally:
        sink.stop()


def test_etrn_at_domain_flushes_subdomains_plain_domain_does_not(kite):
    port = free_port()
    start(kite, port)
    for rcpt in ("x@sub.relay.test", "y@deep.sub.relay.test"):
        submit(kite, rcpt)
    wait_deferred(kite, "x@sub.relay.test", 1)
    wait_deferred(kite, "y@deep.sub.relay.test", 2)
    submit(kite, "z@other.test")
    wait_deferred(kite, "z@other.test", 3)
    sink = Sink(port)
    try:
        # Plain ETRN: that destination only (Postfix's fast flush); no mail is for relay.test itself.
        assert etrn(kite, "relay.test") == (250, "2.0.0 Queuing started")
        time.sleep(3)
        assert sink.messages == []
        # ETRN @domain (RFC 1985 §5): the domain and all its subdomains, nothing else.
        assert etrn(kite, "@relay.test") == (250, "2.0.0 Queuing started")
        sink.wait_messages(2, timeout=20)
        kite.wait_log(r"qmgr\[\d+\]: flush request for @relay\.test$")
        time.sleep(2)
        assert rcpts_of(sink) == ["x@sub.relay.test", "y@deep.sub.relay.test"]
        assert len(deferred_ids(kite)) == 1
    finally:
        sink.stop()


def test_default_restrictions_let_a_client_outside_mynetworks_etrn(kite):
    # Postfix's default: smtpd_etrn_restrictions is empty, so any client may ETRN.
    port = free_port()
    start(kite, port, mynetworks="192.0.2.0/24")
    submit(kite, "w@relay.test")
    wait_deferred(kite, "w@relay.test", 1)
    sink = Sink(port)
    try:
        assert etrn(kite, "relay.test") == (250, "2.0.0 Queuing started")
        sink.wait_messages(1, timeout=20)
        assert rcpts_of(sink) == ["w@relay.test"]
    finally:
        sink.stop()


# ---- policy ---------------------------------------------------------------


def test_smtpd_etrn_restrictions_check_etrn_access_hash_and_reject(kite):
    src = kite.confdir / "etrn_access"
    src.write_text("blocked.relay.test REJECT\n"
                   "later.relay.test 450 4.7.1 not now\n"
                   "relay.test OK\n")
    kite.run("kitemap", f"hash:{src}", check=True)
    assert (kite.confdir / "etrn_access.db").exists()
    if os.geteuid() == 0:
        os.chown(kite.confdir / "etrn_access.db", kite.uid, kite.gid)
    start(kite, free_port(), mynetworks="192.0.2.0/24",
          smtpd_etrn_restrictions=f"check_etrn_access hash:{src}, permit_mynetworks, reject")
    assert etrn(kite, "blocked.relay.test") == (554, "5.7.1 <blocked.relay.test>: Etrn command rejected: "
                                                     "Access denied")
    # parent domains are looked up too
    assert etrn(kite, "@a.blocked.relay.test") == (554, "5.7.1 <a.blocked.relay.test>: Etrn command rejected: "
                                                        "Access denied")
    assert etrn(kite, "later.relay.test") == (450, "4.7.1 <later.relay.test>: Etrn command rejected: not now")
    assert etrn(kite, "relay.test") == (250, "2.0.0 Queuing started")
    # no table entry, not in mynetworks: the final reject
    assert etrn(kite, "other.test") == (554, "5.7.1 <other.test>: Etrn command rejected: Access denied")
    # without EHLO the codes stay and the enhanced codes go, as for every reply
    assert raw_dialogue(kite, ["HELO client.test", "ETRN other.test"])[1] == \
        "554 <other.test>: Etrn command rejected: Access denied\r\n"
    kite.wait_log(r"smtpd\[\d+\]: NOQUEUE: reject: ETRN from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 "
                  r"<blocked\.relay\.test>: Etrn command rejected: Access denied; proto=ESMTP helo=<client\.test>$")


def test_smtpd_etrn_restrictions_permit_mynetworks_reject_for_mynetworks_client(kite):
    start(kite, free_port(), smtpd_etrn_restrictions="permit_mynetworks, reject")
    assert etrn(kite, "relay.test") == (250, "2.0.0 Queuing started")
    kite.set(mynetworks="192.0.2.0/24")
    kite.reload()
    assert etrn(kite, "relay.test") == (554, "5.7.1 <relay.test>: Etrn command rejected: Access denied")


def test_domain_outside_fast_flush_domains_gets_459(kite):
    start(kite, free_port(), fast_flush_domains="relay.test")
    assert etrn(kite, "other.test") == (459, "4.7.1 <other.test>: service unavailable")
    kite.wait_log(r"smtpd\[\d+\]: warning: reject: ETRN other\.test\.\.\. from unknown\[127\.0\.0\.1\]$")
    # subdomains of a fast flush domain are eligible (parent_domain_matches_subdomains)
    assert etrn(kite, "sub.relay.test") == (250, "2.0.0 Queuing started")
    # RFC 1985 "#queue": there are no named queues to start
    assert etrn(kite, "#relay.test") == (459, "4.7.1 <relay.test>: service unavailable")
    assert etrn(kite, "[127.0.0.1]") == (459, "4.7.1 <[127.0.0.1]>: service unavailable")


def test_fast_flush_domains_empty_refuses_every_etrn(kite):
    start(kite, free_port(), fast_flush_domains="")
    assert etrn(kite, "relay.test") == (459, "4.7.1 <relay.test>: service unavailable")


# ---- protocol ---------------------------------------------------------------


def test_etrn_sequence_and_syntax_errors(kite):
    start(kite, free_port(), smtpd_helo_required="yes")
    r = raw_dialogue(kite, ["ETRN relay.test", "EHLO client.test", "MAIL FROM:<a@kite.test>", "ETRN relay.test",
                            "RSET", "ETRN", "ETRN a.test b.test", "ETRN @", "ETRN .", "ETRN r\u00e9lay.test",
                            "ETRN relay.test", "QUIT"])
    assert r[0] == "503 Error: send HELO/EHLO first\r\n"
    assert r[2] == "250 2.1.0 Ok\r\n"
    assert r[3] == "503 5.5.1 Error: MAIL transaction in progress\r\n"
    assert r[5] == "500 5.5.4 Syntax: ETRN domain\r\n"
    assert r[6] == "500 5.5.4 Syntax: ETRN domain\r\n"
    assert r[7] == "501 5.5.4 Error: invalid parameter syntax\r\n"
    assert r[8] == "501 5.5.4 Error: invalid parameter syntax\r\n"
    assert r[9] == "501 5.5.4 Error: invalid parameter syntax\r\n"
    assert r[10] == "250 2.0.0 Queuing started\r\n"


def test_etrn_without_helo_is_fine_unless_helo_is_required(kite):
    # Postfix asks for HELO/EHLO before ETRN only with smtpd_helo_required = yes.
    start(kite, free_port())
    assert raw_dialogue(kite, ["ETRN relay.test"]) == ["250 Queuing started\r\n"]


def test_ehlo_lists_etrn_and_discard_hides_it(kite):
    start(kite, free_port())
    with smtplib.SMTP("127.0.0.1", kite.port, timeout=30) as c:
        c.ehlo("client.test")
        assert c.has_extn("etrn")
        code, text = c.docmd("HELP", "ETRN")
        assert code == 214 and b"ETRN [@]domain" in text
    kite.set(smtpd_discard_ehlo_keywords="etrn")
    kite.reload()
    with smtplib.SMTP("127.0.0.1", kite.port, timeout=30) as c:
        c.ehlo("client.test")
        assert not c.has_extn("etrn")
        assert c.has_extn("pipelining")
        assert c.docmd("ETRN", "relay.test")[0] == 502


# ---- the queue manager unreachable ------------------------------------------


def test_etrn_with_qmgr_absent_is_458(kite):
    rows = [ln for ln in kite.default_master_cf().splitlines() if not ln.startswith("qmgr ")]
    kite.master_cf("\n".join(rows) + "\n")
    start(kite, free_port())
    assert not (kite.queue_dir / "public" / "qmgr").exists()
    assert etrn(kite, "relay.test") == (458, "4.3.0 Unable to queue messages")
    kite.wait_log(r"smtpd\[\d+\]: warning: unable to talk to fast flush service: connect to public/qmgr: ")


def test_etrn_with_qmgr_stuck_answers_458_within_trigger_timeout(kite):
    start(kite, free_port(), trigger_timeout="2s")
    pids = [pid for pid, _ in kite.children("qmgr")]
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGSTOP)
    try:
        t0 = time.time()
        assert etrn(kite, "relay.test") == (458, "4.3.0 Unable to queue messages")
        assert time.time() - t0 < 10
        kite.wait_log(r"warning: unable to talk to fast flush service: public/qmgr: no answer: ")
    finally:
        os.kill(pids[0], signal.SIGCONT)
    # and once qmgr runs again, ETRN works again
    assert etrn(kite, "relay.test") == (250, "2.0.0 Queuing started")


# ---- kitequeue -s: the same flush_site request, checked by qmgr ------------


def test_kitequeue_s_delivers_an_eligible_sites_deferred_mail_and_no_other(kite):
    port = free_port()
    # relay.test is eligible through fast_flush_domains' default, $relay_domains
    start(kite, port)
    submit(kite, "u@relay.test")
    wait_deferred(kite, "u@relay.test", 1)
    submit(kite, "v@other.test")
    wait_deferred(kite, "v@other.test", 2)
    sink = Sink(port)
    try:
        t0 = time.time()
        r = kite.run("kitequeue", "-s", "relay.test")
        assert r.returncode == 0, r.stderr
        assert r.stderr == ""
        sink.wait_messages(1, timeout=20)
        assert time.time() - t0 < 60            # the retry would come after 300s
        kite.wait_log(r"to=<u@relay\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*status=sent" % port)
        kite.wait_log(r"qmgr\[\d+\]: flush request for relay\.test$")
        time.sleep(2)
        assert rcpts_of(sink) == ["u@relay.test"]
        assert len(deferred_ids(kite)) == 1
    finally:
        sink.stop()


def test_kitequeue_s_refuses_a_site_outside_fast_flush_domains_and_delivers_nothing(kite):
    port = free_port()
    start(kite, port, fast_flush_domains="relay.test")
    submit(kite, "v@other.test")
    wait_deferred(kite, "v@other.test", 1)
    submit(kite, "w@sub.relay.test")
    wait_deferred(kite, "w@sub.relay.test", 2)
    sink = Sink(port)
    try:
        r = kite.run("kitequeue", "-s", "other.test")
        assert r.returncode == 69, (r.returncode, r.stderr)      # EX_UNAVAILABLE, as postqueue -s
        assert r.stderr == ('kitequeue: fatal: Cannot flush mail for site "other.test": it is not eligible '
                            'for the fast flush service (fast_flush_domains)\n')
        assert r.stdout == ""
        kite.wait_log(r"qmgr\[\d+\]: warning: flush request for other\.test refused: not in fast_flush_domains$")
        # a subdomain of a fast flush domain is eligible; other.test is not and stays deferred
        r = kite.run("kitequeue", "-s", "sub.relay.test")
        assert r.returncode == 0, r.stderr
        sink.wait_messages(1, timeout=20)
        time.sleep(3)
        assert rcpts_of(sink) == ["w@sub.relay.test"]
        assert len(deferred_ids(kite)) == 1
        assert not re.search(r"to=<v@other\.test>, .*status=sent", kite.log_text())
        assert not re.search(r"flush request for other\.test$", kite.log_text())
        # kitequeue -f is not limited by fast_flush_domains: it delivers other.test's mail now
        r = kite.run("kitequeue", "-f")
        assert r.returncode == 0, r.stderr
        sink.wait_messages(2, timeout=20)
        assert rcpts_of(sink) == ["v@other.test", "w@sub.relay.test"]
    finally:
        sink.stop()


def test_kitequeue_s_with_fast_flush_domains_empty_refuses_every_site(kite):
    start(kite, free_port(), fast_flush_domains="")
    r = kite.run("kitequeue", "-s", "relay.test")
    assert r.returncode == 69
    assert '"relay.test"' in r.stderr and "fast_flush_domains" in r.stderr
    # control characters in the site never reach the terminal raw
    r = kite.run("kitequeue", "-s", "relay.test\x1b[2J")
    assert r.returncode == 64 and "\x1b" not in r.stderr        # EX_USAGE: qmgr finds the site malformed
    assert r.stderr == "kitequeue: bad or missing site\n"


def test_kitequeue_s_with_an_unreadable_fast_flush_table_fails_and_delivers_nothing(kite):
    port = free_port()
    start(kite, port, fast_flush_domains="relay.test hash:%s" % (kite.confdir / "missing"))
    submit(kite, "v@other.test")
    wait_deferred(kite, "v@other.test", 1)
    sink = Sink(port)
    try:
        # a listed name still matches before the table is asked
        assert kite.run("kitequeue", "-s", "relay.test").returncode == 0
        r = kite.run("kitequeue", "-s", "other.test")
        assert r.returncode == 69, (r.returncode, r.stderr)
        assert r.stderr == "kitequeue: fast_flush_domains lookup error for other.test, try again later\n"
        kite.wait_log(r"qmgr\[\d+\]: warning: flush request for other\.test: fast_flush_domains lookup error$")
        time.sleep(2)
        assert sink.messages == []
        assert len(deferred_ids(kite)) == 1
    finally:
        sink.stop()


def test_etrn_gets_459_when_qmgrs_fast_flush_domains_refuses(kite):
    # smtpd's own check passes (relay_domains), qmgr's (its -o override) does not: the same 459.
    rows = []
    for ln in kite.default_master_cf().splitlines():
        rows.append(ln + " -o fast_flush_domains=relay.test" if ln.startswith("qmgr ") else ln)
    kite.master_cf("\n".join(rows) + "\n")
    port = free_port()
    start(kite, port)
    submit(kite, "v@other.test")
    wait_deferred(kite, "v@other.test", 1)
    sink = Sink(port)
    try:
        assert etrn(kite, "other.test") == (459, "4.7.1 <other.test>: service unavailable")
        kite.wait_log(r"qmgr\[\d+\]: warning: flush request for other\.test refused: not in fast_flush_domains$")
        kite.wait_log(r"smtpd\[\d+\]: warning: reject: ETRN other\.test\.\.\. from unknown\[127\.0\.0\.1\]$")
        assert etrn(kite, "relay.test") == (250, "2.0.0 Queuing started")
        time.sleep(3)
        assert sink.messages == []
        assert len(deferred_ids(kite)) == 1
    finally:
        sink.stop()
