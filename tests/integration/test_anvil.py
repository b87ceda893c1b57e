"""End-to-end tests of the anvil service and smtpd's per-client limits
(smtpd_client_connection_count_limit, smtpd_client_connection_rate_limit,
smtpd_client_message_rate_limit, smtpd_client_recipient_rate_limit):
real SMTP sessions against a running instance, several smtpd processes
made by master (max_use), processes killed with SIGKILL, and anvil's own
socket spoken to directly with attribute frames.

Loopback is in $mynetworks and so exempt by default; the tests that want
limits set smtpd_client_event_limit_exceptions empty.
"""

import os
import re
import signal
import socket
import struct
import time

import pytest

from conftest import LIBEXEC, TEST_DAEMONS

pytestmark = pytest.mark.skipif(
    not all((LIBEXEC / d).exists() for d in ("smtpd", "cleanup", "anvil")),
    reason="needs the smtpd, cleanup and anvil daemons")

ANVIL_LINE = "anvil unix - - n - 1 anvil\n"


@pytest.fixture(autouse=True)
def show_log_on_failure(kite):
    yield
    print("--- maillog ---\n" + kite.log_tail(80))


def start(kite, smtpd_opts="", anvil=ANVIL_LINE, **params):
    """smtpd on kite.port (with -o options), cleanup, and anvil's master.cf line (False: none)."""
    base = dict(smtpd_greet_pause_ms=0, smtpd_error_sleep_time="0s", smtpd_peername_lookup="no",
                smtpd_client_event_limit_exceptions="")
    base.update(params)
    for name in [k for k, v in base.items() if v is None]:
        kite.params.pop(name, None)                     # leave it at its default
        del base[name]
    kite.set(**base)
    text = f"127.0.0.1:{kite.port} inet n - n - - smtpd{smtpd_opts}\n"
    text += "cleanup unix n - n - 0 cleanup\n"
    if anvil:
        text += anvil
    kite.master_cf(text)
    kite.start()


class Session:
    """A raw SMTP session; greet=True reads the banner and returns it in .banner."""

    def __init__(self, kite, timeout=20):
        self.sock = socket.create_connection(("127.0.0.1", kite.port), timeout=timeout)
        self.buf = b""
        self.banner = self.reply()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; have %r" % self.buf)
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln.decode(errors="replace")

    def reply(self):
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return "\n".join(lines)

    def cmd(self, text):
        self.sock.sendall((text + "\r\n").encode())
        return self.reply()

    def wait_closed(self, timeout=10):
        """Wait until the server closed the connection."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(4096):
                pass
        except ConnectionResetError:
            pass

    def quit(self):
        assert self.cmd("QUIT").startswith("221")
        self.wait_closed()
        self.sock.close()

    def close(self):
        self.sock.close()


def server_pid(kite, sess):
    """The pid of the smtpd process that holds the server side of this session (from /proc)."""
    client_port = sess.sock.getsockname()[1]
    want = f"{socket.inet_aton('127.0.0.1')[::-1].hex().upper()}:{kite.port:04X}"
    peer = f"{socket.inet_aton('127.0.0.1')[::-1].hex().upper()}:{client_port:04X}"
    inode = None
    with open("/proc/net/tcp") as f:
        for row in f.readlines()[1:]:
            cols = row.split()
            if cols[1] == want and cols[2] == peer:
                inode = cols[9]
    assert inode, "no server-side socket for the session in /proc/net/tcp"
    for pid, info in kite.children():
        if not info["cmdline"] or not info["cmdline"][0].endswith("smtpd"):
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
        except OSError:
            continue
    raise AssertionError("no smtpd process holds the session's socket")


def wait_until(pred, timeout=15, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# ---- anvil's protocol, spoken directly ----------------------------------


def frame(*attrs):
    """An attribute frame: (name, value) with str or int values."""
    payload = b""
    for name, value in attrs:
        n = name.encode()
        if isinstance(value, int):
            payload += b"i" + struct.pack(">H", len(n)) + n + struct.pack(">I", 8) + struct.pack(">q", value)
        else:
            v = value.encode()
            payload += b"s" + struct.pack(">H", len(n)) + n + struct.pack(">I", len(v)) + v
    return struct.pack(">I", len(payload)) + payload


def read_frame(sock):
    def exact(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError("anvil closed the connection")
            data += chunk
        return data

    (plen,) = struct.unpack(">I", exact(4))
    payload, out, pos = exact(plen), {}, 0
    while pos < len(payload):
        t = payload[pos:pos + 1]
        (nlen,) = struct.unpack(">H", payload[pos + 1:pos + 3])
        name = payload[pos + 3:pos + 3 + nlen].decode()
        pos += 3 + nlen
        (vlen,) = struct.unpack(">I", payload[pos:pos + 4])
        value = payload[pos + 4:pos + 4 + vlen]
        pos += 4 + vlen
        out[name] = struct.unpack(">q", value)[0] if t == b"i" else value.decode()
    return out


class AnvilClient:
    """A client on queue_directory/private/anvil (what smtpd does, by hand)."""

    def __init__(self, kite):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(str(kite.queue_dir / "private" / "anvil"))
        assert read_frame(self.sock) == {"protocol": "anvil"}

    def request(self, request, ident, **extra):
        self.sock.sendall(frame(("request", request), ("ident", ident), *extra.items()))
        return read_frame(self.sock)

    def close(self):
        self.sock.close()


# ---- tests --------------------------------------------------------------


def test_count_limit_is_global_across_smtpd_processes(kite):
    # max_use=2: the first smtpd stops taking clients after two sessions, so
    # master starts a second process for the next ones.
    start(kite, smtpd_opts=" -o max_use=2", smtpd_client_connection_count_limit=3)
    a, b = Session(kite), Session(kite)
    c = Session(kite)
    for s in (a, b, c):
        assert s.banner.startswith("220 "), s.banner
    d = Session(kite)
    assert d.banner == "421 4.7.0 kite.test Error: too many connections from 127.0.0.1"
    pids = {server_pid(kite, s) for s in (a, b, c)}
    assert server_pid(kite, a) == server_pid(kite, b)
    assert len(pids) == 2, pids            # the limit held across two processes
    kite.wait_log(r"smtpd\[\d+\]: warning: Connection concurrency limit exceeded: 4 from "
                  r"unknown\[127\.0\.0\.1\] for service 127\.0\.0\.1:%d" % kite.port)
    d.wait_closed()
    for s in (a, b, c):
        s.quit()


def test_concurrent_sessions_are_admitted_exactly_up_to_the_limit(kite):
    import concurrent.futures
    start(kite, smtpd_opts=" -o max_use=3", smtpd_client_connection_count_limit=5)
    with concurrent.futures.ThreadPoolExecutor(max_workers=9) as ex:
        sessions = list(ex.map(lambda _: Session(kite, timeout=60), range(9)))
    admitted = [s for s in sessions if s.banner.startswith("220 ")]
    refused = [s for s in sessions if s.banner.startswith("421 4.7.0 ")]
    assert (len(admitted), len(refused)) == (5, 4), [s.banner for s in sessions]
    assert len({server_pid(kite, s) for s in admitted}) >= 2
    for s in refused:
        s.wait_closed()
    for s in admitted:
        s.quit()


def test_closing_a_session_frees_its_slot(kite):
    start(kite, smtpd_client_connection_count_limit=2)
    a, b = Session(kite), Session(kite)
    c = Session(kite)
    assert c.banner.startswith("421 4.7.0 "), c.banner
    c.wait_closed()
    a.quit()
    d = Session(kite)
    assert d.banner.startswith("220 "), d.banner      # a's and c's slots are free again
    e = Session(kite)
    assert e.banner.startswith("421 4.7.0 "), e.banner
    e.wait_closed()
    b.quit()
    d.quit()


def test_killed_smtpd_releases_its_connections(kite):
    start(kite, smtpd_opts=" -o max_use=2", smtpd_client_connection_count_limit=2)
    a, b = Session(kite), Session(kite)
    victim = server_pid(kite, a)
    assert server_pid(kite, b) == victim
    c = Session(kite)
    assert c.banner.startswith("421 4.7.0 "), c.banner
    c.wait_closed()
    os.kill(victim, signal.SIGKILL)
    a.wait_closed()
    b.wait_closed()

    def admitted():
        s = Session(kite)
        ok = s.banner.startswith("220 ")
        if ok:
            s.quit()
        else:
            s.wait_closed()
        return ok

    # anvil notices the dead process's connection closing and gives its two slots back.
    wait_until(admitted, what="a session after the smtpd holding the slots was killed")
    x, y = Session(kite), Session(kite)
    assert x.banner.startswith("220 ") and y.banner.startswith("220 "), (x.banner, y.banner)
    z = Session(kite)
    assert z.banner.startswith("421 4.7.0 "), z.banner
    z.wait_closed()
    x.quit()
    y.quit()


def test_connection_rate_limit(kite):
    start(kite, smtpd_client_connection_count_limit=0, smtpd_client_connection_rate_limit=3)
    for _ in range(3):
        s = Session(kite)
        assert s.banner.startswith("220 "), s.banner
        s.quit()
    s = Session(kite)
    assert s.banner == "421 4.7.0 kite.test Error: too many connections from 127.0.0.1"
    s.wait_closed()
    kite.wait_log(r"warning: Connection rate limit exceeded: 4 from unknown\[127\.0\.0\.1\] for service ")


def test_connection_rate_window_ends(kite):
    start(kite, smtpd_client_connection_rate_limit=2, anvil_rate_time_unit="5s")
    first = time.time()
    for _ in range(2):
        s = Session(kite)
        assert s.banner.startswith("220 "), s.banner
        s.quit()
    s = Session(kite)
    assert s.banner.startswith("421 4.7.0 "), s.banner
    s.wait_closed()
    time.sleep(max(0.0, first + 6 - time.time()))
    s = Session(kite)
    assert s.banner.startswith("220 "), s.banner        # a new window
    s.quit()


def test_message_rate_limit_across_sessions(kite):
    start(kite, smtpd_client_message_rate_limit=2)
    a = Session(kite)
    a.cmd("EHLO c.example")
    assert a.cmd("MAIL FROM:<x@example.org>").startswith("250")
    assert a.cmd("RSET").startswith("250")
    assert a.cmd("MAIL FROM:<x@example.org>").startswith("250")
    a.quit()
    b = Session(kite)
    b.cmd("EHLO c.example")
    assert b.cmd("MAIL FROM:<x@example.org>") == "450 4.7.1 Error: too much mail from 127.0.0.1"
    b.quit()
    kite.wait_log(r"warning: Message delivery request rate limit exceeded: 3 from unknown\[127\.0\.0\.1\] "
                  r"for service 127\.0\.0\.1:%d" % kite.port)


def test_recipient_rate_limit(kite):
    start(kite, smtpd_client_recipient_rate_limit=3)
    a = Session(kite)
    a.cmd("EHLO c.example")
    assert a.cmd("MAIL FROM:<x@example.org>").startswith("250")
    for user in ("r1", "r2", "r3"):
        assert a.cmd(f"RCPT TO:<{user}@sandbox.test>").startswith("250")
    assert a.cmd("RCPT TO:<r4@sandbox.test>") == "450 4.7.1 Error: too many recipients from 127.0.0.1"
    # The accepted recipients still get the message.
    assert a.cmd("DATA").startswith("354")
    assert a.cmd("Subject: t\r\n\r\nbody\r\n.").startswith("250")
    a.quit()
    kite.wait_log(r"warning: Recipient address rate limit exceeded: 4 from unknown\[127\.0\.0\.1\] for service ")
    assert len(kite.wait_for_files(kite.queue_dir / "incoming", 1)) == 1


@pytest.mark.parametrize("exceptions", [None, "127.0.0.1", "192.0.2.0/24, 127.0.0.0/8"])
def test_event_limit_exceptions_are_exempt(kite, exceptions):
    params = dict(smtpd_client_connection_count_limit=1, smtpd_client_connection_rate_limit=1,
                  smtpd_client_message_rate_limit=1, smtpd_client_recipient_rate_limit=1)
    start(kite, smtpd_client_event_limit_exceptions=exceptions, **params)    # None: $mynetworks
    sessions = [Session(kite) for _ in range(3)]
    for s in sessions:
        assert s.banner.startswith("220 "), s.banner
    s = sessions[0]
    s.cmd("EHLO c.example")
    for _ in range(2):
        assert s.cmd("MAIL FROM:<x@example.org>").startswith("250")
        assert s.cmd("RCPT TO:<a@sandbox.test>").startswith("250")
        assert s.cmd("RCPT TO:<b@sandbox.test>").startswith("250")
        assert s.cmd("RSET").startswith("250")
    for s in sessions:
        s.quit()
    assert "limit exceeded" not in kite.log_text()


def test_without_anvil_mail_is_accepted_with_a_warning(kite):
    start(kite, anvil=False, smtpd_client_connection_count_limit=1, smtpd_client_message_rate_limit=1)
    a, b = Session(kite), Session(kite)
    assert a.banner.startswith("220 ") and b.banner.startswith("220 "), (a.banner, b.banner)
    for s in (a, b):
        s.cmd("EHLO c.example")
        assert s.cmd("MAIL FROM:<x@example.org>").startswith("250")
        assert s.cmd("RCPT TO:<alice@sandbox.test>").startswith("250")
        assert s.cmd("DATA").startswith("354")
        assert s.cmd("Subject: t\r\n\r\nbody\r\n.").startswith("250")
        s.quit()
    kite.wait_log(r"smtpd\[\d+\]: warning: connect to private/anvil: .*limits are not enforced")
    assert len(kite.wait_for_files(kite.queue_dir / "incoming", 2)) == 2


@pytest.mark.skipif(not (TEST_DAEMONS / "testd").exists(), reason="needs the test daemon")
def test_anvil_socket_without_an_answer_costs_one_timeout(kite):
    # Something that never greets sits on private/anvil: the first session
    # waits for the greeting timeout, then smtpd backs off and mail flows.
    start(kite, anvil="anvil unix - - n - 1 testd trigger\n", smtpd_client_connection_count_limit=1)
    a = Session(kite, timeout=60)
    assert a.banner.startswith("220 "), a.banner
    kite.wait_log(r"smtpd\[\d+\]: warning: private/anvil does not answer; client connection and rate limits "
                  r"are not enforced")
    t0 = time.time()
    b = Session(kite, timeout=60)
    assert b.banner.startswith("220 "), b.banner          # no limit, and no second wait
    assert time.time() - t0 < 4
    b.cmd("EHLO c.example")
    assert b.cmd("MAIL FROM:<x@example.org>").startswith("250")
    assert b.cmd("RCPT TO:<alice@sandbox.test>").startswith("250")
    assert b.cmd("DATA").startswith("354")
    assert b.cmd("Subject: t\r\n\r\nbody\r\n.").startswith("250")
    a.quit()
    b.quit()


def test_smtpd_survives_anvil_restart(kite):
    start(kite, smtpd_client_connection_count_limit=1)
    a = Session(kite)
    assert a.banner.startswith("220 ")
    anvil = [pid for pid, info in kite.children("anvil")]
    assert len(anvil) == 1
    os.kill(anvil[0], signal.SIGKILL)
    # The new anvil knows nothing of a; smtpd notices the broken connection,
    # reconnects at once and counts from there: b is admitted, c is not.
    b = Session(kite)
    assert b.banner.startswith("220 "), b.banner
    c = Session(kite)
    assert c.banner.startswith("421 4.7.0 "), c.banner
    c.wait_closed()
    b.cmd("EHLO c.example")
    assert b.cmd("MAIL FROM:<x@example.org>").startswith("250")
    a.quit()
    b.quit()


def test_chrooted_anvil_as_mail_owner_enforces_limits(kite):
    # The shipped master.cf line: chroot=y, unprivileged.
    kite.as_root_with_mail_owner()
    import pwd
    owner = pwd.getpwnam("kite")
    start(kite, anvil="anvil unix - - y - 1 anvil\n", smtpd_client_connection_count_limit=1,
          anvil_status_update_time="1s")
    a = Session(kite)
    assert a.banner.startswith("220 "), a.banner
    b = Session(kite)
    assert b.banner.startswith("421 4.7.0 "), b.banner
    b.wait_closed()
    [(pid, info)] = kite.children("anvil")
    assert info["root"] == str(kite.queue_dir)
    assert info["uids"] == [owner.pw_uid] * 4
    kite.wait_log(r"anvil\[\d+\]: statistics: max connection count 2 for \(")
    a.quit()


def test_anvil_releases_a_closed_clients_counts(kite):
    start(kite)
    one, two = AnvilClient(kite), AnvilClient(kite)
    assert one.request("connect", "smtp:192.0.2.7") == {"status": 0, "count": 1, "rate": 1}
    assert one.request("connect", "smtp:192.0.2.7") == {"status": 0, "count": 2, "rate": 2}
    # A client cannot release what another registered.
    assert two.request("disconnect", "smtp:192.0.2.7") == {"status": -1}
    assert two.request("connect", "smtp:192.0.2.7") == {"status": 0, "count": 3, "rate": 3}
    one.close()

    def probe():
        # Look without leaving a count behind: connect, then give it back.
        r = two.request("connect", "smtp:192.0.2.7")
        assert two.request("disconnect", "smtp:192.0.2.7") == {"status": 0}
        return r["count"] <= 2 and r

    reply = wait_until(probe, what="anvil to release the closed client's counts")
    assert reply["count"] == 2                  # two's own one, and the probe's
    assert two.request("disconnect", "smtp:192.0.2.7") == {"status": 0}
    assert two.request("message", "smtp:192.0.2.7") == {"status": 0, "rate": 1}
    assert two.request("recipient", "smtp:192.0.2.7") == {"status": 0, "rate": 1}
    two.close()


def test_anvil_refuses_hostile_requests(kite):
    start(kite)
    c = AnvilClient(kite)
    assert c.request("launch", "smtp:192.0.2.7") == {"status": -1}
    assert c.request("connect", "bad ident") == {"status": -1}
    assert c.request("connect", "x" * 300) == {"status": -1}
    assert c.request("connect", "smtp:192.0.2.7", extra=1) == {"status": -1}
    c.sock.sendall(frame(("request", "connect")))
    assert read_frame(c.sock) == {"status": -1}
    # Still serving after all that.
    assert c.request("connect", "smtp:192.0.2.7")["status"] == 0
    # An oversized frame ends the connection.
    c.sock.sendall(struct.pack(">I", 1 << 20))
    with pytest.raises((EOFError, ConnectionResetError)):
        read_frame(c.sock)
    c.close()
    # So does a frame that does not decode.
    d = AnvilClient(kite)
    d.sock.sendall(struct.pack(">I", 3) + b"zzz")
    with pytest.raises((EOFError, ConnectionResetError)):
        read_frame(d.sock)
    d.close()
    kite.wait_log(r"anvil\[\d+\]: warning: anvil: request frame of 1048576 bytes exceeds")
    # The service is alive.
    e = AnvilClient(kite)
    assert e.request("connect", "smtp:192.0.2.8") == {"status": 0, "count": 1, "rate": 1}
    e.close()


def test_anvil_logs_statistics(kite):
    start(kite, smtpd_client_connection_count_limit=5, anvil_status_update_time="2s")
    a, b = Session(kite), Session(kite)
    ident = r"127\.0\.0\.1:%d:127\.0\.0\.1" % kite.port
    kite.wait_log(r"anvil\[\d+\]: statistics: max connection rate 2/60s for \(%s\) at \w+ +\d+ [\d:]+" % ident)
    kite.wait_log(r"anvil\[\d+\]: statistics: max connection count 2 for \(%s\) at " % ident)
    kite.wait_log(r"anvil\[\d+\]: statistics: max cache size 1 at ")
    a.quit()
    b.quit()


def test_anvil_reports_statistics_when_it_stops(kite):
    start(kite, smtpd_client_recipient_rate_limit=10)
    a = Session(kite)
    a.cmd("EHLO c.example")
    assert a.cmd("MAIL FROM:<x@example.org>").startswith("250")
    assert a.cmd("RCPT TO:<r1@sandbox.test>").startswith("250")
    assert a.cmd("RCPT TO:<r2@sandbox.test>").startswith("250")
    a.quit()
    assert "statistics:" not in kite.log_text()      # anvil_status_update_time is 600s
    kite.stop()
    kite.wait_log(r"anvil\[\d+\]: statistics: max recipient rate 2/60s for \(127\.0\.0\.1:%d:127\.0\.0\.1\)"
                  % kite.port)
    kite.wait_log(r"anvil\[\d+\]: statistics: max connection count 1 for ")
    assert kite.instance_pids() == []
