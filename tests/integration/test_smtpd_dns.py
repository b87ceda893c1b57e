"""End-to-end tests of smtpd's client name lookup: forward-confirmed reverse
names from a loopback DNS server (smtpd_dns_resolver_address), the
"unknown" cases, and above all that a slow PTR answer for one client does
not stall the other sessions of the same smtpd process.

Clients bind source addresses 127.0.0.x (Linux routes all of 127/8 to
loopback); the instance listens on 127.0.0.1. master.cf allows one smtpd
process, so every session shares one event loop.
"""

import os
import re
import smtplib
import socket
import struct
import time

import pytest

from conftest import LIBEXEC
from dnsserver import DNSServer
from test_smtpd import master_cf, read_qfile, start

pytestmark = pytest.mark.skipif(not (LIBEXEC / "smtpd").exists() or not (LIBEXEC / "cleanup").exists(),
                                reason="needs the smtpd and cleanup daemons")


@pytest.fixture(autouse=True)
def show_log_on_failure(kite):
    yield
    print("--- maillog ---\n" + kite.log_tail(80))


@pytest.fixture
def dns():
    servers = []

    def make(records):
        d = DNSServer(records)
        servers.append(d)
        return d

    yield make
    for d in servers:
        d.stop()


def ptr(addr):
    return ".".join(reversed(addr.split("."))) + ".in-addr.arpa"


def start_named(kite, dns_server, **params):
    """One smtpd process that names clients through dns_server."""
    master_cf(kite, maxproc="1")
    base = dict(smtpd_peername_lookup="yes", smtpd_dns_resolver_address=dns_server.address)
    if "ASAN_OPTIONS" in os.environ:
        # Against a SAN=1 build, let the daemons see e.g. ASAN_OPTIONS=log_path=/tmp/asan/smtpd.
        base["import_environment"] = "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C KITE_CONFIG_DIR ASAN_OPTIONS"
    base.update(params)
    start(kite, **base)


def connect_from(kite, src, timeout=15):
    return socket.create_connection(("127.0.0.1", kite.port), timeout=timeout, source_address=(src, 0))


def wait_query(dns_server, name, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(q[0] == name for q in dns_server.queries):
            return
        time.sleep(0.02)
    raise AssertionError(f"no DNS query for {name}: {dns_server.queries}")


def send_message(kite, src, rcpt="alice@sandbox.test"):
    """A whole mail transaction from source address src; returns the DATA reply."""
    with smtplib.SMTP("127.0.0.1", kite.port, timeout=15, source_address=(src, 0)) as c:
        c.ehlo("client.test")
        c.mail("sender@example.test")
        c.rcpt(rcpt)
        code, text = c.data(b"Subject: t\r\n\r\nhello\r\n")
        return code, text


def smtpd_pid(kite, regex):
    m = kite.wait_log(r"kite/smtpd\[(\d+)\]: " + regex)
    return int(m.group(1))


def test_forward_confirmed_ptr_names_the_client_in_log_and_received_header(kite, dns):
    d = dns({ptr("127.0.0.2"): {"PTR": ["mail.example.test"]}, "mail.example.test": {"A": ["127.0.0.2"]}})
    start_named(kite, d)
    code, _ = send_message(kite, "127.0.0.2")
    assert code == 250
    kite.wait_log(r"connect from mail\.example\.test\[127\.0\.0\.2\]")
    kite.wait_log(r": client=mail\.example\.test\[127\.0\.0\.2\]")
    files = kite.wait_for_files(kite.queue_dir / "incoming", 1)
    attrs, rcpts, content = read_qfile(files[0])
    assert b"(mail.example.test [127.0.0.2])" in content
    assert (ptr("127.0.0.2"), 12) in d.queries and ("mail.example.test", 1) in d.queries


def test_ptr_without_matching_address_gives_unknown(kite, dns):
    d = dns({ptr("127.0.0.2"): {"PTR": ["forged.example.test"]}, "forged.example.test": {"A": ["127.0.0.9"]},
             ptr("127.0.0.3"): {"PTR": ["gone.example.test"]}})
    start_named(kite, d)
    for src in ("127.0.0.2", "127.0.0.3"):
        code, _ = send_message(kite, src)
        assert code == 250
    kite.wait_log(r"connect from unknown\[127\.0\.0\.2\]")
    kite.wait_log(r"warning: hostname forged\.example\.test does not resolve to address 127\.0\.0\.2$")
    kite.wait_log(r"connect from unknown\[127\.0\.0\.3\]")
    kite.wait_log(r"warning: hostname gone\.example\.test does not resolve to address 127\.0\.0\.3: \S")
    assert "connect from forged" not in kite.log_text()


def test_malformed_or_missing_ptr_and_server_failure_give_unknown(kite, dns):
    d = dns({ptr("127.0.0.2"): {"PTR": ["bad[name].example.test"]}, "bad[name].example.test": {"A": ["127.0.0.2"]},
             ptr("127.0.0.3"): {"PTR": ["127.0.0.3"]},
             ptr("127.0.0.4"): {"rcode": 2}})
    start_named(kite, d)
    for src in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"):  # .5: NXDOMAIN
        t0 = time.time()
        with connect_from(kite, src) as s:
            assert s.recv(512).startswith(b"220 ")
            s.sendall(b"QUIT\r\n")
        assert time.time() - t0 < 5
        kite.wait_log(r"connect from unknown\[%s\]" % re.escape(src))
    kite.wait_log(r"warning: numeric hostname: 127\.0\.0\.3")
    assert "bad[name]" not in kite.log_text()


def test_slow_ptr_for_one_client_does_not_stall_another_in_the_same_process(kite, dns):
    d = dns({ptr("127.0.0.2"): {"PTR": ["slow.example.test"], "delay": 3}, "slow.example.test": {"A": ["127.0.0.2"]},
             ptr("127.0.0.3"): {"PTR": ["fast.example.test"]}, "fast.example.test": {"A": ["127.0.0.3"]}})
    start_named(kite, d)
    t_a = time.time()
    a = connect_from(kite, "127.0.0.2")
    try:
        wait_query(d, ptr("127.0.0.2"))
        # B arrives while A's PTR answer is held back, and completes a whole transaction.
        code, _ = send_message(kite, "127.0.0.3")
        assert code == 250
        a.setblocking(False)
        with pytest.raises(BlockingIOError):
            a.recv(512)  # B is done, and A has no greeting yet: B did not wait for A's lookup
        a.setblocking(True)
        a.settimeout(15)
        greeting = a.recv(512)
        t_a_greet = time.time()
        assert greeting.startswith(b"220 ")
        assert t_a_greet - t_a >= 2.5
        a.sendall(b"QUIT\r\n")
        assert a.recv(512).startswith(b"221 ")
    finally:
        a.close()
    pid_b = smtpd_pid(kite, r"connect from fast\.example\.test\[127\.0\.0\.3\]")
    pid_b_msg = smtpd_pid(kite, r"\w+: client=fast\.example\.test\[127\.0\.0\.3\]")
    pid_a = smtpd_pid(kite, r"connect from slow\.example\.test\[127\.0\.0\.2\]")
    assert pid_a == pid_b == pid_b_msg
    log = kite.log_text()
    assert log.index("client=fast.example.test") < log.index("connect from slow.example.test")


def test_lookup_that_never_answers_times_out_as_unknown(kite, dns):
    d = dns({ptr("127.0.0.4"): {"drop": True}})
    start_named(kite, d, smtpd_peername_lookup_timeout="2s")
    t0 = time.time()
    with connect_from(kite, "127.0.0.4") as s:
        assert s.recv(512).startswith(b"220 ")
        waited = time.time() - t0
        s.sendall(b"QUIT\r\n")
    assert 1.5 <= waited < 6
    kite.wait_log(r"warning: 127\.0\.0\.4: client name lookup timed out after 2s")
    kite.wait_log(r"connect from unknown\[127\.0\.0\.4\]")


def test_client_that_leaves_during_its_lookup_breaks_nothing(kite, dns):
    records = {ptr("127.0.0.3"): {"PTR": ["fast.example.test"]}, "fast.example.test": {"A": ["127.0.0.3"]},
               ptr("127.0.0.5"): {"PTR": ["slow.example.test"], "delay": 3}, "slow.example.test": {"A": ["127.0.0.5"]}}
    # More slow clients than worker threads, so some leave while still queued.
    for i in range(20, 32):
        records[ptr(f"127.0.0.{i}")] = {"PTR": ["slow.example.test"], "delay": 3}
    d = dns(records)
    start_named(kite, d)
    s = connect_from(kite, "127.0.0.5")
    wait_query(d, ptr("127.0.0.5"))
    s.close()  # FIN
    kite.wait_log(r"lost connection after CONNECT from unknown\[127\.0\.0\.5\]", timeout=2)
    kite.wait_log(r"disconnect from unknown\[127\.0\.0\.5\]")
    socks = [connect_from(kite, f"127.0.0.{i}") for i in range(20, 32)]
    wait_query(d, ptr("127.0.0.20"))
    for i, c in enumerate(socks):
        if i % 2:  # reset
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    # A client reset before accept() has no address left to show: unknown[unknown].
    gone = re.compile(r"disconnect from unknown\[(127\.0\.0\.(2\d|3[01])|unknown)\]")
    deadline = time.time() + 10
    while len(gone.findall(kite.log_text())) < 12 and time.time() < deadline:
        time.sleep(0.05)
    assert len(gone.findall(kite.log_text())) == 12
    time.sleep(3.5)  # the abandoned lookups come back now and must be dropped quietly
    code, _ = send_message(kite, "127.0.0.3")
    assert code == 250
    pid_first = smtpd_pid(kite, r"connect from unknown\[127\.0\.0\.5\]")
    pid_after = smtpd_pid(kite, r"connect from fast\.example\.test\[127\.0\.0\.3\]")
    assert pid_first == pid_after
    log = kite.log_text()
    assert "slow.example.test" not in log
    assert "localhost" not in log  # never mistaken for a local submission
    assert not re.search(r"panic|fatal|ERROR: AddressSanitizer|runtime error", log)


def test_peername_lookup_no_skips_lookups(kite, dns):
    d = dns({ptr("127.0.0.2"): {"PTR": ["mail.example.test"]}, "mail.example.test": {"A": ["127.0.0.2"]}})
    start_named(kite, d, smtpd_peername_lookup="no")
    code, _ = send_message(kite, "127.0.0.2")
    assert code == 250
    kite.wait_log(r"connect from unknown\[127\.0\.0\.2\]")
    assert d.queries == []


def test_system_resolver_names_loopback_from_hosts_file(kite):
    with open("/etc/hosts") as f:
        if not re.search(r"^127\.0\.0\.1\s+localhost\b", f.read(), re.M):
            pytest.skip("/etc/hosts does not name 127.0.0.1 localhost")
    master_cf(kite, maxproc="1")
    start(kite, smtpd_peername_lookup="yes")
    code, _ = send_message(kite, "127.0.0.1")
    assert code == 250
    kite.wait_log(r"connect from localhost\[127\.0\.0\.1\]")


def test_lookup_through_resolver_address_works_chrooted(kite, dns):
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")
    d = dns({ptr("127.0.0.2"): {"PTR": ["mail.example.test"]}, "mail.example.test": {"A": ["127.0.0.2"]}})
    kite.as_root_with_mail_owner()
    # chroot = y for smtpd: its workers resolve inside queue_directory, with no /etc there.
    kite.master_cf(f"127.0.0.1:{kite.port} inet n - y - 1 smtpd\ncleanup unix n - y - 0 cleanup\n")
    start(kite, smtpd_peername_lookup="yes", smtpd_dns_resolver_address=d.address)
    with connect_from(kite, "127.0.0.2") as s:
        assert s.recv(512).startswith(b"220 ")
        pid = smtpd_pid(kite, r"connect from mail\.example\.test\[127\.0\.0\.2\]")
        # The session still runs: the process that named the client is chrooted.
        assert os.path.realpath(os.readlink(f"/proc/{pid}/root")) == os.path.realpath(kite.queue_dir)
        s.sendall(b"QUIT\r\n")
