"""End-to-end tests of smtpd: real clients (smtplib, swaks, openssl s_client,
raw sockets) against a running Kite instance with smtpd and cleanup.

qmgr is left out of master.cf so accepted messages stay in incoming/,
where the tests read the queue file (records: type, 4-byte length, data).
"""

import base64
import concurrent.futures
import hashlib
import hmac
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN as BIN_DIR, BUILD, LIBEXEC

# smtpd hands every message to cleanup; without that daemon there is nothing to test end to end.
pytestmark = pytest.mark.skipif(not (LIBEXEC / "smtpd").exists() or not (LIBEXEC / "cleanup").exists(),
                                reason="needs the smtpd and cleanup daemons")


# ---- helpers ------------------------------------------------------------


@pytest.fixture(autouse=True)
def show_log_on_failure(kite):
    yield
    print("--- maillog ---\n" + kite.log_tail(60))


def master_cf(kite, extra="", opts="", maxproc="-"):
    text = f"127.0.0.1:{kite.port} inet n - n - {maxproc} smtpd{opts}\n"
    text += "cleanup unix n - n - 0 cleanup\n" + extra
    kite.master_cf(text)


USERS = ["alice", "bob", "carol", "a1", "a2", "a3", "blocked", "later"]


def start(kite, **params):
    # The recipients these tests use, as a plain table.
    (kite.confdir / "vmailbox").write_text("".join(f"{u}@sandbox.test {u}/\n" for u in USERS))
    base = dict(smtpd_greet_pause_ms=0, smtpd_error_sleep_time="0s", smtpd_sasl_failure_delay="0s",
                smtpd_peername_lookup="no", virtual_mailbox_maps=f"texthash:{kite.confdir}/vmailbox")
    base.update(params)
    kite.set(**base)
    if not kite._master_cf:
        master_cf(kite)
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


def read_qfile(path):
    """Parse a queue file into (attrs, rcpts, content)."""
    data = Path(path).read_bytes()
    attrs, rcpts, content, cur = {}, [], b"", {}
    pos = 0
    while pos + 5 <= len(data):
        t = chr(data[pos])
        n = int.from_bytes(data[pos + 1:pos + 5], "big")
        val = data[pos + 5:pos + 5 + n]
        pos += 5 + n
        if t == "A":
            k, _, v = val.decode(errors="replace").partition("=")
            attrs[k] = v
        elif t in "OFN":
            cur[t] = val.decode(errors="replace")
        elif t == "R":
            cur["R"] = val[1:].decode(errors="replace")
            rcpts.append(cur)
            cur = {}
        elif t == "C":
            content += val
    return attrs, rcpts, content


def incoming(kite):
    d = kite.queue_dir / "incoming"
    if not d.exists():
        return []
    return sorted(p for p in d.rglob("*") if p.is_file() and re.fullmatch(r"[0-9A-Z]+", p.name))


def queued_file(kite, qid, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for p in incoming(kite):
            if p.name == qid:
                return p
        time.sleep(0.05)
    raise AssertionError(f"{qid} not in incoming/\n{kite.log_tail()}")


class Raw:
    """A line-oriented raw SMTP client for pipelining and hostile input."""

    def __init__(self, port, greet=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        if greet:
            assert self.reply().startswith("220 ")

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; have %r" % self.buf)
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln.decode(errors="replace")

    def reply(self):
        """One (possibly multi-line) reply as text, lines joined by \\n."""
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return "\n".join(lines)

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def closed(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem"), "-days", "2", "-subj", "/CN=kite.test"],
                   check=True, capture_output=True)
    os.chmod(d, 0o755)
    os.chmod(d / "key.pem", 0o644)
    return d


def tls_params(kite, certs, **more):
    # The instance user must read them: copy into the instance's confdir.
    for name in ("cert.pem", "key.pem"):
        shutil.copy(certs / name, kite.confdir / name)
        if os.geteuid() == 0:
            os.chown(kite.confdir / name, kite.uid, kite.gid)
    p = dict(smtpd_tls_security_level="may", smtpd_tls_cert_file=str(kite.confdir / "cert.pem"),
             smtpd_tls_key_file=str(kite.confdir / "key.pem"), smtpd_tls_received_header="yes")
    p.update(more)
    return p


def auth_params(kite, certs, **more):
    (kite.confdir / "sasl_passwd").write_text(
        "alice {PLAIN}wonderland\nbob {PLAIN}builder\n")
    p = tls_params(kite, certs, smtpd_sasl_auth_enable="yes",
                   smtpd_sasl_password_maps=f"texthash:{kite.confdir}/sasl_passwd")
    p.update(more)
    return p


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


MSG = "From: a@example.org\r\nTo: alice@sandbox.test\r\nSubject: hi\r\n\r\nhello\r\n"


# ---- greeting, EHLO, basic mail ------------------------------------------


def test_mail_is_queued_with_log_lines_and_received_header(kite):
    start(kite)
    with smtplib.SMTP("127.0.0.1", kite.port, local_hostname="client.example") as s:
        code, msg = s.ehlo()
        assert code == 250
        s.mail("sender@example.org")
        s.rcpt("alice@sandbox.test")
        code, msg = s.data(MSG)
        assert code == 250
        qid = re.search(r"queued as ([0-9A-Z]+)", msg.decode()).group(1)
    attrs, rcpts, content = read_qfile(queued_file(kite, qid))
    assert attrs["sender"] == "sender@example.org"
    assert attrs["protocol"] == "ESMTP" and attrs["helo"] == "client.example"
    assert [r["R"] for r in rcpts] == ["alice@sandbox.test"]
    assert content.startswith(b"Received: from client.example (localhost [127.0.0.1])\r\n\tby kite.test (Kite)"
                              b" with ESMTP id " + qid.encode() + b"\r\n\tfor <alice@sandbox.test>; ") or \
        content.startswith(b"Received: from client.example (unknown [127.0.0.1])"), content[:200]
    assert content.endswith(b"\r\n\r\nhello\r\n")
    kite.wait_log(r"smtpd\[\d+\]: connect from \w+\[127\.0\.0\.1\]")
    kite.wait_log(rf"smtpd\[\d+\]: {qid}: client=\w+\[127\.0\.0\.1\]")
    kite.wait_log(r"disconnect from \w+\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5")


def test_ehlo_keywords_are_exactly_the_implemented_ones(kite, certs):
    start(kite, **auth_params(kite, certs, smtpd_tls_auth_only="no"))
    r = Raw(kite.port)
    ehlo = r.cmd("EHLO client.example").split("\n")
    kws = [ln[4:].split()[0] for ln in ehlo[1:]]
    assert kws == ["PIPELINING", "SIZE", "VRFY", "ETRN", "STARTTLS", "AUTH", "ENHANCEDSTATUSCODES", "8BITMIME",
                   "DSN", "SMTPUTF8", "BINARYMIME", "CHUNKING"]
    assert "ATRN" not in kws
    r.close()


def test_discard_ehlo_keywords_hides_them(kite):
    start(kite, smtpd_discard_ehlo_keywords="pipelining, dsn, silent-discard")
    r = Raw(kite.port)
    ehlo = r.cmd("EHLO c.example")
    assert "PIPELINING" not in ehlo and "DSN" not in ehlo and "SIZE" in ehlo
    assert r.cmd("MAIL FROM:<a@example.org> RET=FULL").startswith("555 5.5.4")
    r.close()


def test_every_extension_exercised_and_stored(kite):
    start(kite)
    r = Raw(kite.port)
    r.cmd("EHLO client.example")
    assert r.cmd("MAIL FROM:<j\u00f6rg@example.org> SIZE=500 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=env+2Bid"
                 ).startswith("250 2.1.0")
    assert r.cmd("RCPT TO:<alice@sandbox.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;alice+2Bx@sandbox.test"
                 ).startswith("250 2.1.5")
    assert r.cmd("RCPT TO:<bob@sandbox.test> NOTIFY=NEVER").startswith("250 2.1.5")
    assert r.cmd("DATA").startswith("354")
    r.send("Subject: caf\u00e9\r\n\r\n8bit \u00e9\r\n.\r\n")
    rep = r.reply()
    assert rep.startswith("250 2.0.0 Ok: queued as "), rep
    qid = rep.split()[-1]
    attrs, rcpts, content = read_qfile(queued_file(kite, qid))
    assert attrs["envid"] == "env+id" and attrs["ret"] == "hdrs"
    assert attrs["body"] == "8bitmime" and attrs["smtputf8"] == "1"
    assert attrs["sender"] == "j\u00f6rg@example.org"
    assert rcpts[0]["O"] == "rfc822;alice+x@sandbox.test"
    assert int(rcpts[0]["N"]) == (2 | 8)            # SUCCESS | DELAY
    assert int(rcpts[1]["N"]) == 1                  # NEVER
    assert b"with UTF8SMTP id" in content
    r.close()


def test_enhanced_status_codes_only_after_ehlo(kite):
    start(kite)
    r = Raw(kite.port)
    assert r.cmd("HELO c.example") == "250 kite.test"
    assert r.cmd("MAIL FROM:<a@example.org>") == "250 Ok"
    assert r.cmd("RSET") == "250 Ok"
    r.cmd("EHLO c.example")
    assert r.cmd("RSET") == "250 2.0.0 Ok"
    r.close()


def test_help_vrfy_noop_and_syntax_errors(kite):
    start(kite)
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    h = r.cmd("HELP")
    assert h.startswith("214-") and "BDAT" in h and h.split("\n")[-1].startswith("214 ")
    assert r.cmd("HELP MAIL").startswith("214 2.0.0 MAIL FROM")
    assert r.cmd("NOOP hello") == "250 2.0.0 Ok"
    assert r.cmd("VRFY nosuchuser@kite.test").startswith("550 5.1.1")
    assert r.cmd("FOO").startswith("502 5.5.2")
    assert r.cmd("MAIL FROM:<broken").startswith("501")
    assert r.cmd("RCPT TO:<a@sandbox.test>").startswith("503 5.5.1")
    assert r.cmd("DATA").startswith("503 5.5.1")
    assert r.cmd("MAIL FROM:<a@example.org> BOGUS=1").startswith("555 5.5.4")
    assert r.cmd("QUIT").startswith("221 2.0.0")
    r.close()


def test_vrfy_disabled_says_252(kite):
    start(kite, disable_vrfy_command="yes")
    r = Raw(kite.port)
    assert "VRFY" not in r.cmd("EHLO c.example")
    assert r.cmd("VRFY alice@sandbox.test").startswith("252 ")
    assert r.cmd("EXPN alice@sandbox.test").startswith("252 ")
    r.close()


def test_expn_answers_from_the_recipient_tables(kite):
    start(kite)
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    assert r.cmd("EXPN nosuchuser@kite.test").startswith("550 5.1.1")
    assert r.cmd("EXPN alice@sandbox.test").startswith("25")
    assert r.cmd("EXPN").startswith("501")
    r.close()


# ---- PIPELINING ----------------------------------------------------------


def test_pipelined_group_answered_in_order(kite):
    start(kite)
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    r.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<alice@sandbox.test>\r\nRCPT TO:<x@remote.example>\r\n"
           "RCPT TO:<bob@sandbox.test>\r\nDATA\r\n")
    assert r.reply().startswith("250 2.1.0")
    assert r.reply().startswith("250 2.1.5")
    assert r.reply().startswith("250 2.1.5")          # 127.0.0.1 is in mynetworks
    assert r.reply().startswith("250 2.1.5")
    assert r.reply().startswith("354")
    r.send("Subject: p\r\n\r\nx\r\n.\r\nQUIT\r\n")
    assert r.reply().startswith("250 2.0.0 Ok: queued as")
    assert r.reply().startswith("221")
    r.close()


def test_early_talker_is_refused(kite):
    start(kite, smtpd_greet_pause_ms=500, mynetworks="192.0.2.0/24")   # mynetworks clients get no pause
    s = socket.create_connection(("127.0.0.1", kite.port), timeout=10)
    s.sendall(b"EHLO early.example\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"554 "), data          # no EHLO yet: no enhanced code
    s.close()
    kite.wait_log(r"improper command pipelining after CONNECT from")


# ---- SIZE ----------------------------------------------------------------


def test_size_declared_over_limit_refused_at_mail(kite):
    start(kite, message_size_limit=10000)
    r = Raw(kite.port)
    assert "SIZE 10000" in r.cmd("EHLO c.example")
    assert r.cmd("MAIL FROM:<a@example.org> SIZE=10001").startswith("552 5.3.4")
    assert r.cmd("MAIL FROM:<a@example.org> SIZE=100").startswith("250")
    r.close()


def test_size_actual_over_limit_refused_nothing_queued(kite):
    start(kite, message_size_limit=10000)
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    r.cmd("MAIL FROM:<a@example.org> SIZE=100")
    r.cmd("RCPT TO:<alice@sandbox.test>")
    assert r.cmd("DATA").startswith("354")
    r.send(("x" * 70 + "\r\n") * 200 + ".\r\n")
    assert r.reply().startswith("552 5.3.4")
    # And with BDAT.
    r.cmd("MAIL FROM:<a@example.org>")
    r.cmd("RCPT TO:<alice@sandbox.test>")
    r.send("BDAT 20000 LAST\r\n" + "y" * 20000)
    assert r.reply().startswith("552 5.3.4")
    assert r.cmd("NOOP").startswith("250")
    time.sleep(0.3)
    assert incoming(kite) == []
    r.close()


# ---- CHUNKING / BINARYMIME -----------------------------------------------


def test_bdat_pipelined_chunks_and_binarymime(kite):
    start(kite)
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    body = b"Subject: bin\r\n\r\n" + bytes(range(256)) + b"\r\n.\r\n\n.\n"
    r.send(b"MAIL FROM:<a@example.org> BODY=BINARYMIME\r\nRCPT TO:<alice@sandbox.test>\r\n"
           + b"BDAT 10\r\n" + body[:10] + b"BDAT %d\r\n" % (len(body) - 10) + body[10:] + b"BDAT 0 LAST\r\n")
    assert r.reply().startswith("250 2.1.0")
    assert r.reply().startswith("250 2.1.5")
    assert r.reply() == "250 2.0.0 Ok: 10 bytes"
    assert r.reply() == f"250 2.0.0 Ok: {len(body)} bytes"
    rep = r.reply()
    assert rep.startswith("250 2.0.0 Ok: queued as"), rep
    attrs, rcpts, content = read_qfile(queued_file(kite, rep.split()[-1]))
    assert attrs["body"] == "binarymime"
    assert content.endswith(body[16:]), "BDAT content must arrive unchanged (no dot handling)"
    r.close()


def test_bdat_edge_cases(kite):
    start(kite)
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    # BDAT without MAIL: the chunk is read and dropped, not run as commands.
    r.send("BDAT 6\r\nQUIT\r\n")
    assert r.reply().startswith("503 5.5.1")
    assert r.cmd("NOOP").startswith("250")
    # BINARYMIME needs BDAT.
    r.cmd("MAIL FROM:<a@example.org> BODY=BINARYMIME")
    r.cmd("RCPT TO:<alice@sandbox.test>")
    assert r.cmd("DATA").startswith("503 5.5.1")
    # DATA after BDAT in the same transaction is refused.
    r.send("BDAT 3\r\nabc")
    assert r.reply().startswith("250 2.0.0 Ok: 3 bytes")
    assert r.cmd("DATA").startswith("503 5.5.1")
    assert r.cmd("BDAT 0 LAST").startswith("250 2.0.0 Ok: queued as")
    # Bad syntax.
    assert r.cmd("BDAT").startswith("501 5.5.4")
    assert r.cmd("BDAT -1").startswith("501 5.5.4")
    assert r.cmd("BDAT 1 FIRST").startswith("501 5.5.4")
    # Empty message with BDAT 0 LAST.
    r.cmd("MAIL FROM:<>")
    r.cmd("RCPT TO:<bob@sandbox.test>")
    assert r.cmd("BDAT 0 LAST").startswith("250 2.0.0 Ok: queued as")
    r.close()


def test_bdat_after_failed_chunk_are_discarded(kite):
    start(kite, message_size_limit=100)
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    r.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<alice@sandbox.test>\r\n"
           "BDAT 200\r\n" + "z" * 200 + "BDAT 6\r\nRSET\r\nBDAT 4 LAST\r\nQUIT")
    assert r.reply().startswith("250")
    assert r.reply().startswith("250")
    assert r.reply().startswith("552 5.3.4")
    assert r.reply().startswith("503 5.5.1")     # discarded chunk (its bytes were "RSET\r\n")
    assert r.reply().startswith("503 5.5.1")     # discarded LAST chunk ("QUIT"), transaction over
    assert r.cmd("NOOP").startswith("250")
    assert incoming(kite) == []
    r.close()


# ---- smuggling and hostile input ------------------------------------------


@pytest.mark.parametrize("bad_end", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"])
def test_smuggling_variants_never_end_data(kite, bad_end):
    start(kite)
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    r.cmd("MAIL FROM:<a@example.org>")
    r.cmd("RCPT TO:<alice@sandbox.test>")
    assert r.cmd("DATA").startswith("354")
    r.send(b"Subject: one\r\n\r\nfirst" + bad_end
           + b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<bob@sandbox.test>\r\nDATA\r\n"
           + b"Subject: smuggled\r\n\r\nsecond\r\n.\r\n")
    rep = r.reply()
    assert rep.startswith("550 5.5.2"), rep
    assert r.cmd("NOOP").startswith("250")
    time.sleep(0.3)
    assert incoming(kite) == []
    r.close()
    kite.wait_log(r"bare <(LF|CR)> received from")


def test_bare_newline_tolerated_when_allowed_but_never_ends_data(kite):
    start(kite, smtpd_forbid_bare_newline="no")
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    r.cmd("MAIL FROM:<a@example.org>")
    r.cmd("RCPT TO:<alice@sandbox.test>")
    r.cmd("DATA")
    r.send(b"Subject: x\r\n\r\na\n.\nMAIL FROM:<e@x>\r\n.\r\n")
    rep = r.reply()
    assert rep.startswith("250 2.0.0 Ok: queued as")
    _, _, content = read_qfile(queued_file(kite, rep.split()[-1]))
    # One message; LF made CRLF; the lone "." line is unstuffed like any other.
    assert content.endswith(b"\r\n\r\na\r\n\r\nMAIL FROM:<e@x>\r\n")
    r.close()


def test_long_lines_and_nul_bytes(kite):
    start(kite)
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    # A text line of 1001 octets with CRLF.
    r.cmd("MAIL FROM:<a@example.org>")
    r.cmd("RCPT TO:<alice@sandbox.test>")
    r.cmd("DATA")
    r.send("Subject: l\r\n\r\n" + "a" * 999 + "\r\n.\r\n")
    assert r.reply().startswith("500 5.5.2")
    # 998 + CRLF is fine.
    r.cmd("MAIL FROM:<a@example.org>")
    r.cmd("RCPT TO:<alice@sandbox.test>")
    r.cmd("DATA")
    r.send("Subject: l\r\n\r\n" + "a" * 998 + "\r\n.\r\n")
    assert r.reply().startswith("250 2.0.0")
    # NUL in the text.
    r.cmd("MAIL FROM:<a@example.org>")
    r.cmd("RCPT TO:<alice@sandbox.test>")
    r.cmd("DATA")
    r.send(b"Subject: n\r\n\r\na\x00b\r\n.\r\n")
    assert r.reply().startswith("550 5.6.0")
    # NUL and over-long command lines.
    assert r.cmd("NO\x00OP").startswith("500 5.5.2")
    assert r.cmd("NOOP " + "x" * 600).startswith("500 5.5.2")
    assert r.cmd("NOOP " + "x" * 20000).startswith("500 5.5.2")
    assert r.cmd("NOOP").startswith("250")
    r.close()


def test_drop_mid_data_leaves_nothing_queued(kite):
    start(kite)
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    r.cmd("MAIL FROM:<a@example.org>")
    r.cmd("RCPT TO:<alice@sandbox.test>")
    r.cmd("DATA")
    r.send("Subject: half\r\n\r\nsome text\r\n")
    time.sleep(0.2)
    r.close()
    kite.wait_log(r"lost connection after DATA")
    time.sleep(0.3)
    assert incoming(kite) == []


def test_error_limits_and_timeout(kite):
    start(kite, smtpd_soft_error_limit=2, smtpd_hard_error_limit=4, smtpd_timeout="2s")
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    for _ in range(3):
        assert r.cmd("BOGUS").startswith("502")
    t0 = time.time()
    r.send("BOGUS\r\n")
    assert r.reply().startswith("502")
    assert r.reply().startswith("421 4.7.0")
    assert r.closed()
    r.close()
    r = Raw(kite.port)
    t0 = time.time()
    rep = r.reply()
    assert rep.startswith("421 kite.test Error: timeout") and 1.5 < time.time() - t0 < 6
    r.close()
    kite.wait_log(r"timeout after CONNECT from")


def test_error_delay_grows_past_the_soft_limit(kite):
    start(kite, smtpd_soft_error_limit=1, smtpd_hard_error_limit=10, smtpd_error_sleep_time="1s")
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    delays = []
    for _ in range(3):
        t0 = time.time()
        assert r.cmd("BOGUS").startswith("502")
        delays.append(time.time() - t0)
    r.close()
    # error 1: 1 s, error 2: 2 s, error 3: 3 s (Postfix's growing delay)
    assert 0.8 < delays[0] < 1.8 and 1.8 < delays[1] < 2.8 and 2.8 < delays[2] < 3.8, delays


# ---- STARTTLS --------------------------------------------------------------


def test_starttls_with_openssl_s_client(kite, certs):
    start(kite, **tls_params(kite, certs))
    p = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{kite.port}",
                        "-quiet", "-ign_eof"],
                       input=b"EHLO tls.example\r\nQUIT\r\n", capture_output=True, timeout=20)
    out = p.stdout.decode(errors="replace")
    assert "250-kite.test" in out and "221 2.0.0" in out, out + p.stderr.decode(errors="replace")
    assert "STARTTLS" not in out        # not offered again inside TLS
    kite.wait_log(r"TLS connection established from .*TLSv1\.[23] with cipher")


def test_starttls_injection_is_discarded(kite, certs):
    start(kite, **tls_params(kite, certs))
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    r.send("STARTTLS\r\nRSET\r\nMAIL FROM:<inject@example.org>\r\n")
    assert r.reply().startswith("220 2.0.0")
    tls = client_ctx().wrap_socket(r.sock, server_hostname="kite.test")
    tls.sendall(b"MAIL FROM:<a@example.org>\r\n")
    rep = tls.recv(4096).decode()
    # The injected commands were thrown away, so this is the first reply,
    # and the session was reset: the client must say EHLO again.
    assert rep.startswith("503 ") and "send HELO/EHLO first" in rep, rep
    assert rep.count("\r\n") == 1, rep
    tls.sendall(b"RSET\r\nEHLO c.example\r\n")
    rep = b""
    while not re.search(rb"250 [^\r]*\r\n$", rep) or b"250-" not in rep:
        rep += tls.recv(4096)
    assert b"STARTTLS" not in rep
    tls.close()


def test_mail_after_starttls_needs_a_new_ehlo(kite, certs):
    start(kite, **tls_params(kite, certs))
    with smtplib.SMTP("127.0.0.1", kite.port, local_hostname="c.example") as s:
        s.starttls(context=client_ctx())
        # smtplib forgets the EHLO state after STARTTLS; speak directly.
        code, msg = s.docmd("MAIL FROM:<a@example.org>")
        assert code == 503 and b"send HELO/EHLO first" in msg
        s.ehlo("c.example")
        code, _ = s.docmd("MAIL FROM:<a@example.org>")
        assert code == 250


def test_tls_received_header_and_esmtps(kite, certs):
    start(kite, **tls_params(kite, certs))
    with smtplib.SMTP("127.0.0.1", kite.port, local_hostname="c.example") as s:
        s.starttls(context=client_ctx())
        s.ehlo("c.example")
        s.mail("a@example.org")
        s.rcpt("alice@sandbox.test")
        code, msg = s.data(MSG)
        qid = msg.decode().split()[-1]
    _, _, content = read_qfile(queued_file(kite, qid))
    assert re.search(rb"\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)\)", content)
    assert b"with ESMTPS id " + qid.encode() in content


def test_tls_encrypt_level_requires_starttls(kite, certs):
    start(kite, **tls_params(kite, certs, smtpd_tls_security_level="encrypt"))
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    assert r.cmd("MAIL FROM:<a@example.org>").startswith("530 5.7.0")
    r.close()


def test_wrappermode_smtps(kite, certs):
    port = kite.free_port()
    master_cf(kite, extra=f"127.0.0.1:{port} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes\n")
    start(kite, **tls_params(kite, certs))
    with smtplib.SMTP_SSL("127.0.0.1", port, local_hostname="c.example", context=client_ctx()) as s:
        s.ehlo("c.example")
        assert not s.has_extn("starttls")
        s.mail("a@example.org")
        s.rcpt("alice@sandbox.test")
        code, msg = s.data(MSG)
        assert code == 250


def test_swaks_with_tls_and_pipelining(kite, certs):
    if shutil.which("swaks") is None:
        pytest.skip("swaks not installed")
    start(kite, **tls_params(kite, certs))
    p = subprocess.run(["swaks", "--server", f"127.0.0.1:{kite.port}", "--from", "a@example.org", "--to",
                        "alice@sandbox.test", "--tls", "--pipeline", "--helo", "swaks.example"],
                       capture_output=True, timeout=30)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out
    assert re.search(r"<~  250 2\.0\.0 Ok: queued as", out), out


# ---- AUTH ----------------------------------------------------------------


def tls_client(kite):
    s = smtplib.SMTP("127.0.0.1", kite.port, local_hostname="c.example")
    s.starttls(context=client_ctx())
    s.ehlo("c.example")
    return s


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_auth_mechanisms_success_and_failure(kite, certs, mech):
    start(kite, **auth_params(kite, certs))
    s = tls_client(kite)
    assert mech in s.esmtp_features["auth"].split()
    s.user, s.password = "alice", "wrong"
    with pytest.raises(smtplib.SMTPAuthenticationError) as e:
        s.auth(mech, getattr(s, "auth_" + mech.lower().replace("-", "_")))
    assert e.value.smtp_code == 535 and b"5.7.8" in e.value.smtp_error
    s.user, s.password = "alice", "wonderland"
    code, _ = s.auth(mech, getattr(s, "auth_" + mech.lower().replace("-", "_")))
    assert code == 235
    s.mail("alice@example.org")
    s.rcpt("someone@remote.example")                  # relay allowed after AUTH
    code, msg = s.data(MSG)
    qid = msg.decode().split()[-1]
    s.quit()
    attrs, _, content = read_qfile(queued_file(kite, qid))
    assert attrs["sasl_method"] == mech and attrs["sasl_username"] == "alice"
    assert b"with ESMTPSA id" in content
    kite.wait_log(rf"{qid}: client=\w+\[127\.0\.0\.1\], sasl_method={mech}, sasl_username=alice")
    kite.wait_log(rf"warning: \w+\[127\.0\.0\.1\]: SASL {mech} authentication failed")


def scram_client(sock_cmd, user, password):
    """RFC 5802 client side; sock_cmd(line) returns the server reply."""
    cnonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = f"n={user},r={cnonce}"
    rep = sock_cmd("AUTH SCRAM-SHA-256 " + base64.b64encode(("n,," + first_bare).encode()).decode())
    assert rep.startswith("334 "), rep
    server_first = base64.b64decode(rep[4:]).decode()
    fields = dict(kv.split("=", 1) for kv in server_first.split(","))
    assert fields["r"].startswith(cnonce)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    final_wo = f"c=biws,r={fields['r']}"
    auth_msg = f"{first_bare},{server_first},{final_wo}".encode()
    sig = hmac.new(stored, auth_msg, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    rep = sock_cmd(base64.b64encode(f"{final_wo},p={base64.b64encode(proof).decode()}".encode()).decode())
    if not rep.startswith("334 "):
        return rep
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    want = base64.b64encode(hmac.new(server_key, auth_msg, "sha256").digest()).decode()
    assert base64.b64decode(rep[4:]).decode() == "v=" + want
    return sock_cmd("")


def test_auth_scram_sha256_success_failure(kite, certs):
    start(kite, **auth_params(kite, certs))
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    r.send("STARTTLS\r\n")
    assert r.reply().startswith("220")
    r.sock = client_ctx().wrap_socket(r.sock, server_hostname="kite.test")
    assert "SCRAM-SHA-256" in r.cmd("EHLO c.example")
    assert scram_client(r.cmd, "bob", "wrong").startswith("535 5.7.8")
    assert scram_client(r.cmd, "bob", "builder").startswith("235 2.7.0")
    assert r.cmd("AUTH PLAIN").startswith("503 5.5.1")      # already authenticated
    r.close()


def test_auth_abort_and_bad_input(kite, certs):
    start(kite, **auth_params(kite, certs))
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    r.send("STARTTLS\r\n")
    r.reply()
    r.sock = client_ctx().wrap_socket(r.sock, server_hostname="kite.test")
    r.cmd("EHLO c.example")
    for mech in ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"):
        assert r.cmd("AUTH " + mech).startswith("334")
        assert r.cmd("*").startswith("501 5.7.0")
    assert r.cmd("AUTH PLAIN !!!notbase64").startswith("501 5.5.2")
    assert r.cmd("AUTH DIGEST-MD5").startswith("504 5.5.4")
    assert r.cmd("AUTH").startswith("501 5.5.4")
    r.close()


def test_auth_failure_is_delayed(kite, certs):
    start(kite, **auth_params(kite, certs, smtpd_sasl_failure_delay="1s"))
    s = tls_client(kite)
    t0 = time.time()
    with pytest.raises(smtplib.SMTPAuthenticationError):
        s.login("alice", "nope")
    assert time.time() - t0 >= 0.9
    s.close()


def test_auth_not_offered_before_tls_by_default(kite, certs):
    start(kite, **auth_params(kite, certs))
    r = Raw(kite.port)
    assert "AUTH" not in r.cmd("EHLO c.example")
    assert r.cmd("AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=").startswith("530 5.7.0")
    r.close()


def test_crypt_hashes_offer_only_plain_and_login(kite, certs):
    h = subprocess.run(["openssl", "passwd", "-6", "-salt", "abcdefgh", "s3cret"], capture_output=True,
                       check=True).stdout.decode().strip()
    (kite.confdir / "sasl_hashed").write_text(f"carol {h}\n")
    start(kite, **tls_params(kite, certs, smtpd_sasl_auth_enable="yes",
                             smtpd_sasl_password_maps=f"texthash:{kite.confdir}/sasl_hashed"))
    s = tls_client(kite)
    assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
    s.login("carol", "s3cret")
    s.quit()


# ---- relay control and restrictions -------------------------------------


def test_relay_denied_outside_mynetworks_allowed_inside(kite):
    start(kite, mynetworks="192.0.2.0/24")
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    r.cmd("MAIL FROM:<a@example.org>")
    assert r.cmd("RCPT TO:<x@remote.example>") == "554 5.7.1 <x@remote.example>: Relay access denied"
    assert r.cmd("RCPT TO:<alice@sandbox.test>").startswith("250")
    r.close()
    kite.wait_log(r"NOQUEUE: reject: RCPT from \w+\[127\.0\.0\.1\]: 554 5\.7\.1 <x@remote\.example>: "
                  r"Relay access denied; from=<a@example\.org> to=<x@remote\.example> proto=ESMTP helo=<c\.example>")


def test_permit_sasl_authenticated_allows_relay_outside_mynetworks(kite, certs):
    # Loopback is not in mynetworks here: only AUTH can allow relaying.
    start(kite, **auth_params(kite, certs, mynetworks="192.0.2.0/24"))
    s = tls_client(kite)
    s.mail("alice@example.org")
    code, msg = s.rcpt("someone@remote.example")
    assert code == 554 and b"Relay access denied" in msg
    s.rset()
    s.login("alice", "wonderland")
    s.mail("alice@example.org")
    code, _ = s.rcpt("someone@remote.example")
    assert code == 250
    s.quit()


def test_unknown_local_recipient_rejected_at_rcpt(kite):
    start(kite, local_recipient_maps=f"inline:{{postmaster=x, root=x}}")
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    r.cmd("MAIL FROM:<a@example.org>")
    rep = r.cmd("RCPT TO:<nosuch@kite.test>")
    assert rep == "550 5.1.1 <nosuch@kite.test>: Recipient address rejected: User unknown in local recipient table"
    assert r.cmd("RCPT TO:<root@kite.test>").startswith("250")
    r.close()
    kite.wait_log(r"reject: RCPT from .*: 550 5\.1\.1 <nosuch@kite\.test>: Recipient address rejected: "
                  r"User unknown in local recipient table; from=<a@example\.org> to=<nosuch@kite\.test>")


def test_access_tables_and_helo_checks(kite):
    (kite.confdir / "rcpt_access").write_text("blocked@sandbox.test REJECT no thanks\n"
                                              "later@sandbox.test 451 4.7.1 try later\n")
    (kite.confdir / "sender_access").write_text("spammer.example REJECT\n")
    (kite.confdir / "client_access").write_text("127.0.0.2 REJECT\n192.0.2 REJECT\n")
    start(kite, smtpd_recipient_restrictions=f"check_recipient_access texthash:{kite.confdir}/rcpt_access",
          smtpd_sender_restrictions=f"check_sender_access texthash:{kite.confdir}/sender_access",
          smtpd_client_restrictions=f"check_client_access texthash:{kite.confdir}/client_access",
          smtpd_helo_restrictions="reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname")
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    r.cmd("MAIL FROM:<a@example.org>")
    assert r.cmd("RCPT TO:<blocked@sandbox.test>") == \
        "554 5.7.1 <blocked@sandbox.test>: Recipient address rejected: no thanks"
    assert r.cmd("RCPT TO:<later@sandbox.test>").startswith("451 4.7.1")
    assert r.cmd("RCPT TO:<alice@sandbox.test>").startswith("250")
    r.cmd("RSET")
    r.cmd("MAIL FROM:<x@spammer.example>")
    assert r.cmd("RCPT TO:<alice@sandbox.test>").startswith("554 5.7.1 <x@spammer.example>: Sender address rejected")
    r.cmd("RSET")
    r.cmd("EHLO nodots")
    r.cmd("MAIL FROM:<a@example.org>")
    assert r.cmd("RCPT TO:<alice@sandbox.test>").startswith("504 5.5.2 <nodots>: Helo command rejected")
    r.cmd("EHLO bad_name!")
    r.cmd("MAIL FROM:<a@example.org>")
    assert r.cmd("RCPT TO:<alice@sandbox.test>").startswith("501 5.5.2 <bad_name!>: Helo command rejected")
    r.close()


def test_data_restrictions(kite):
    start(kite, smtpd_data_restrictions="reject")
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    r.cmd("MAIL FROM:<a@example.org>")
    r.cmd("RCPT TO:<alice@sandbox.test>")
    assert r.cmd("DATA").startswith("554 5.7.1")
    r.close()


def test_recipient_limit(kite):
    start(kite, smtpd_recipient_limit=2)
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    r.cmd("MAIL FROM:<a@example.org>")
    assert r.cmd("RCPT TO:<a1@sandbox.test>").startswith("250")
    assert r.cmd("RCPT TO:<a2@sandbox.test>").startswith("250")
    assert r.cmd("RCPT TO:<a3@sandbox.test>").startswith("452 4.5.3")
    r.close()


def test_connection_count_limit(kite):
    # The counts live in the anvil service, shared by every smtpd process.
    master_cf(kite, extra="anvil unix - - n - 1 anvil\n", maxproc="1")
    start(kite, smtpd_client_connection_count_limit=2, smtpd_client_event_limit_exceptions="")
    a, b = Raw(kite.port), Raw(kite.port)
    c = Raw(kite.port, greet=False)
    assert c.reply().startswith("421 4.7.0")
    a.close()
    time.sleep(0.3)
    d = Raw(kite.port)
    d.cmd("QUIT")
    for x in (b, c, d):
        x.close()
    kite.wait_log(r"Connection concurrency limit exceeded: 3 from")


# ---- scale -----------------------------------------------------------------


def test_300_rapid_connections(kite):
    start(kite)

    def one(_):
        with socket.create_connection(("127.0.0.1", kite.port), timeout=20) as s:
            f = s.makefile("rb")
            assert f.readline().startswith(b"220 ")
            s.sendall(b"EHLO c.example\r\nQUIT\r\n")
            data = f.read()
            return b"221 2.0.0" in data

    with concurrent.futures.ThreadPoolExecutor(max_workers=30) as ex:
        results = list(ex.map(one, range(300)))
    assert all(results)


def smtpd_pss_kb(kite):
    """Total PSS of the smtpd processes, and how many there are."""
    total, n = 0, 0
    for pid, info in kite.children():
        if not info["cmdline"] or not info["cmdline"][0].endswith("smtpd"):
            continue
        n += 1
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                m = re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M)
                total += int(m.group(1))
        except FileNotFoundError:
            pass
    return total, n


def test_500_idle_sessions_cost_under_100mb(kite):
    start(kite)
    socks = []
    try:
        for _ in range(500):
            s = socket.create_connection(("127.0.0.1", kite.port), timeout=20)
            socks.append(s)
        for s in socks:
            assert s.recv(512).startswith(b"220 ")
        kb, nproc = smtpd_pss_kb(kite)
        print(f"\n500 idle sessions: {nproc} smtpd processes, PSS total {kb} kB")
        (BUILD / "smtpd-idle-500.txt").write_text(f"{kb}\n")
        assert 0 < kb < 100 * 1024
    finally:
        for s in socks:
            s.close()


# ---- stand-alone (sendmail -bs) -------------------------------------------


def test_standalone_mode_on_stdin(kite):
    start(kite)
    p = subprocess.run([str(LIBEXEC / "smtpd"), "-S", "-c", str(kite.confdir)],
                       input=b"EHLO local\r\nMAIL FROM:<u@kite.test>\r\nRCPT TO:<x@remote.example>\r\nDATA\r\n"
                             b"Subject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n",
                       capture_output=True, timeout=30, cwd=str(kite.base), env=kite.env(),
                       **kite._user_kwargs())
    out = p.stdout.decode(errors="replace")
    assert out.startswith("220 "), out + p.stderr.decode(errors="replace")
    assert "STARTTLS" not in out and "AUTH" not in out
    m = re.search(r"250 2\.0\.0 Ok: queued as ([0-9A-Z]+)", out)
    assert m, out + p.stderr.decode(errors="replace")
    assert "221 2.0.0 Bye" in out
    queued_file(kite, m.group(1))


def test_as_root_with_mail_owner(kite, certs):
    """master as root: smtpd reads the key while privileged, then runs as mail_owner."""
    kite.as_root_with_mail_owner()
    params = tls_params(kite, certs)
    os.chown(kite.confdir / "key.pem", 0, 0)
    os.chmod(kite.confdir / "key.pem", 0o600)            # root-only, like a real key
    start(kite, **params)
    with smtplib.SMTP("127.0.0.1", kite.port, local_hostname="c.example") as s:
        s.starttls(context=client_ctx())
        s.ehlo("c.example")
        s.mail("a@example.org")
        s.rcpt("alice@sandbox.test")
        code, msg = s.data(MSG)
        assert code == 250
    pids = [pid for pid, info in kite.children() if info["cmdline"][0].endswith("smtpd")]
    assert pids
    import pwd
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            uid = int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))
        assert uid == pwd.getpwnam("kite").pw_uid


def test_cidr_client_and_pcre_helo_access(kite):
    (kite.confdir / "clients.cidr").write_text("192.0.2.0/24 OK\n127.0.0.0/8 550 5.7.1 go away\n")
    (kite.confdir / "helo.pcre").write_text("/^evil\\./ REJECT bad helo\n")
    start(kite, smtpd_client_restrictions=f"check_client_access cidr:{kite.confdir}/clients.cidr",
          smtpd_helo_restrictions=f"check_helo_access pcre:{kite.confdir}/helo.pcre")
    r = Raw(kite.port)
    r.cmd("EHLO evil.example")
    r.cmd("MAIL FROM:<a@example.org>")
    # Client restrictions come first (smtpd_delay_reject: all evaluated at RCPT).
    assert r.cmd("RCPT TO:<alice@sandbox.test>") == \
        "550 5.7.1 <unknown[127.0.0.1]>: Client host rejected: go away"
    r.close()
    kite.set(smtpd_client_restrictions="")
    kite.reload()
    time.sleep(0.5)
    r = Raw(kite.port)
    r.cmd("EHLO evil.example")
    r.cmd("MAIL FROM:<a@example.org>")
    assert r.cmd("RCPT TO:<alice@sandbox.test>") == "554 5.7.1 <evil.example>: Helo command rejected: bad helo"
    r.cmd("EHLO good.example")
    r.cmd("MAIL FROM:<a@example.org>")
    assert r.cmd("RCPT TO:<alice@sandbox.test>").startswith("250")
    r.close()


def test_empty_relay_and_recipient_restrictions_never_relay(kite):
    start(kite, smtpd_relay_restrictions="", smtpd_recipient_restrictions="")
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    r.cmd("MAIL FROM:<a@example.org>")
    assert r.cmd("RCPT TO:<x@remote.example>").startswith("451 4.3.5")
    r.close()


def test_delay_reject_no_rejects_at_each_stage(kite):
    start(kite, smtpd_delay_reject="no", smtpd_helo_restrictions="reject_non_fqdn_helo_hostname",
          smtpd_sender_restrictions="reject_non_fqdn_sender")
    r = Raw(kite.port)
    assert r.cmd("EHLO nodots").startswith("504 <nodots>: Helo command rejected")   # no EHLO yet: no X.Y.Z
    r.cmd("EHLO c.example")
    assert r.cmd("MAIL FROM:<user>").startswith("504 5.5.2 <user>: Sender address rejected")
    assert r.cmd("MAIL FROM:<user@example.org>").startswith("250")
    r.close()
    kite.set(smtpd_client_restrictions="reject")
    kite.reload()
    time.sleep(0.5)
    r = Raw(kite.port)
    r.cmd("EHLO c.example")
    assert r.cmd("MAIL FROM:<user@example.org>").startswith("554 5.7.1")
    r.close()
    kite.wait_log(r"NOQUEUE: reject: CONNECT from \w+\[127\.0\.0\.1\]: 554 5\.7\.1")


@pytest.fixture
def builtin_main_cf(kite):
    """The built-in configuration directory's main.cf, written for one test.

    Set-gid programs take their list of other allowed configuration
    directories from there only. Skipped where a real installation owns it.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root to write the built-in configuration directory")
    r = kite.run("kiteconf", "-d", "-h", "config_directory")
    assert r.returncode == 0, r.stderr
    builtin = Path(r.stdout.strip())
    main_cf = builtin / "main.cf"
    if main_cf.exists():
        pytest.skip(f"{main_cf} exists (an installed Kite); not touching it")
    made = []
    for d in reversed([builtin] + list(builtin.parents)):
        if not d.exists():
            d.mkdir()
            made.append(d)
    yield main_cf
    main_cf.unlink(missing_ok=True)
    for d in reversed(made):
        d.rmdir()


def setgid_copy(kite, name):
    """A copy of build/bin/NAME, set-gid to the instance's group, in kite.base/sbin."""
    sbin = kite.base / "sbin"
    sbin.mkdir(exist_ok=True)
    os.chmod(sbin, 0o755)
    shutil.copy(BIN_DIR / name, sbin / name)
    os.chown(sbin / name, 0, kite.gid)
    os.chmod(sbin / name, 0o2755)
    return sbin / name


def standalone_as_nobody(kite, builtin_main_cf, listed):
    """sendmail -bs by a user who can't reach cleanup: smtpd -S hands the
    message to a set-gid kitedrop, pointed at this instance's directory."""
    if not (BIN_DIR / "kitedrop").exists():
        pytest.skip("kitedrop not built")
    builtin_main_cf.write_text(f"alternate_config_directories = /nonexistent {kite.confdir if listed else ''}\n")
    sbin = setgid_copy(kite, "kitedrop").parent
    start(kite, command_directory=str(sbin))
    # maillog_file is the instance user's; let the other user append (syslog needs no such step).
    os.chmod(kite.log, 0o666)
    return subprocess.run([str(LIBEXEC / "smtpd"), "-S", "-c", str(kite.confdir)],
                          input=b"EHLO local\r\nMAIL FROM:<nobody@kite.test> ENVID=e1\r\n"
                                b"RCPT TO:<alice@sandbox.test> NOTIFY=NEVER\r\nDATA\r\n"
                                b"Subject: via kitedrop\r\n\r\nbody\r\n.\r\nQUIT\r\n",
                          capture_output=True, timeout=30, cwd="/", env=kite.env(), user=65534, group=65534,
                          extra_groups=[])


def test_standalone_as_ordinary_user_goes_through_kitedrop(kite, builtin_main_cf):
    p = standalone_as_nobody(kite, builtin_main_cf, listed=True)
    out = p.stdout.decode(errors="replace")
    assert "250 2.0.0 Ok: queued\r\n" in out, out + p.stderr.decode(errors="replace")
    files = [f for f in (kite.queue_dir / "maildrop").iterdir() if f.is_file()]
    assert len(files) == 1
    assert files[0].stat().st_gid == kite.gid     # written with kitedrop's group, by nobody
    attrs, rcpts, content = read_qfile(files[0])
    assert attrs["sender"] == "nobody@kite.test" and attrs["envid"] == "e1"
    assert rcpts[0]["R"] == "alice@sandbox.test" and int(rcpts[0]["N"]) == 1
    assert b"Subject: via kitedrop\r\n" in content


def test_setgid_kitedrop_refuses_an_unlisted_configuration(kite, builtin_main_cf):
    p = standalone_as_nobody(kite, builtin_main_cf, listed=False)
    out = p.stdout.decode(errors="replace")
    assert "250 2.0.0 Ok: queued" not in out
    assert re.search(r"^4\d\d |^5\d\d ", out, re.M), out
    assert "alternate_config_directories" in p.stderr.decode(errors="replace") + kite.log_tail(40)
    assert not [f for f in (kite.queue_dir / "maildrop").iterdir() if f.is_file()]
