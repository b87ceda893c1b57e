"""The smtp delivery agent against real peers on loopback.

Mail enters a real Kite instance through smtpd and leaves through the
smtp client towards a recording aiosmtpd sink (tests/integration/sink.py)
that can hide or advertise extensions, refuse, or speak LMTP; MX tests use
a tiny DNS server on loopback (smtp_dns_resolver_address).
"""

import email
import email.policy
import os
import re
import smtplib
import socket
import subprocess
import time

import pytest

from dnsserver import DNSServer
from sink import Sink


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def sink_port():
    return free_port()


def submit(kite, to, body=b"hello\r\n", sender="alice@kite.test", subject="test",
           mail_options=(), rcpt_options=(), extra_headers=b""):
    msg = (b"From: <" + sender.encode() + b">\r\nTo: <" + (to if isinstance(to, str) else to[0]).encode() +
           b">\r\nSubject: " + subject.encode() + b"\r\n" + extra_headers + b"\r\n" + body)
    with smtplib.SMTP("127.0.0.1", kite.port, timeout=30) as c:
        c.ehlo("client.test")
        c.sendmail(sender, to if isinstance(to, list) else [to], msg,
                   mail_options=list(mail_options), rcpt_options=list(rcpt_options))
    return msg


def relay_to(kite, port, **params):
    kite.set(relayhost="[127.0.0.1]:%d" % port, **params)


def test_pipelined_transaction_with_dsn_parameters(kite, sink_port):
    sink = Sink(sink_port, hide=["CHUNKING"])
    try:
        relay_to(kite, sink_port)
        kite.start()
        submit(kite, ["bob@remote.test", "carol@remote.test"],
               mail_options=["RET=HDRS", "ENVID=env+2Bid"],
               rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;orig@remote.test"])
        msg = sink.wait_messages(1)[0]
        assert msg.via == "DATA"
        assert msg.param("RET") == "HDRS"
        assert msg.param("ENVID") == "env+2Bid"
        assert sorted(r for r, _ in msg.rcpts) == ["bob@remote.test", "carol@remote.test"]
        for _, params in msg.rcpts:
            assert "NOTIFY=SUCCESS,FAILURE" in params
            assert "ORCPT=rfc822;orig@remote.test" in params
        # PIPELINING (RFC 2920): MAIL, both RCPTs and DATA arrived as one flight,
        # so more input was already waiting when MAIL and each RCPT were read.
        lines = [(t, p) for t, p in sink.dialogue if t.startswith("> ")]
        idx = next(i for i, (t, _) in enumerate(lines) if t.upper().startswith("> MAIL FROM"))
        flight = lines[idx:idx + 4]
        assert [t.split()[1].upper()[:4] for t, _ in flight] == ["MAIL", "RCPT", "RCPT", "DATA"]
        assert all(p for _, p in flight[:3])
        kite.wait_log(r"to=<bob@remote\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*status=sent" % sink_port)
    finally:
        sink.stop()


def test_bdat_used_when_chunking_offered(kite, sink_port):
    sink = Sink(sink_port)
    try:
        relay_to(kite, sink_port, smtp_chunk_size="512")
        kite.start()
        body = b"".join(b"line %04d .. with a dot later\r\n.leading dot\r\n" % i for i in range(60))
        submit(kite, "bob@remote.test", body=body)
        msg = sink.wait_messages(1)[0]
        assert msg.via == "BDAT"
        # BDAT carries the content as is: no dot-stuffing, CRLF lines.
        assert msg.data.endswith(body)
        assert b"\r\n..leading" not in msg.data
        assert len([t for t in sink.commands() if t.upper().startswith("BDAT")]) > 2
    finally:
        sink.stop()


def test_data_dot_stuffing_without_chunking(kite, sink_port):
    sink = Sink(sink_port, hide=["CHUNKING"])
    try:
        relay_to(kite, sink_port)
        kite.start()
        body = b".starts with a dot\r\n..two dots\r\nend\r\n"
        submit(kite, "bob@remote.test", body=body)
        msg = sink.wait_messages(1)[0]
        assert msg.via == "DATA"
        assert msg.data.endswith(body)
    finally:
        sink.stop()


def test_size_refused_without_sending_the_message(kite, sink_port):
    sink = Sink(sink_port, keywords=["PIPELINING", "SIZE 1000", "8BITMIME"])
    try:
        relay_to(kite, sink_port)
        kite.start()
        submit(kite, "bob@remote.test", body=b"x" * 78 + b"\r\n" * 1 + (b"y" * 78 + b"\r\n") * 50)
        kite.wait_log(r"to=<bob@remote\.test>, .*dsn=5\.3\.4, status=bounced \(message size \d+ exceeds size "
                      r"limit 1000 of server")
        assert not any(t.upper().startswith("MAIL") for t in sink.commands())
        assert sink.messages == []
    finally:
        sink.stop()


def test_8bit_converted_to_quoted_printable_for_7bit_hop(kite, sink_port):
    sink = Sink(sink_port, hide=["8BITMIME", "CHUNKING"])
    try:
        relay_to(kite, sink_port)
        kite.start()
        text = "Grüße aus Köln — ünïcödé = equals\r\n".encode("utf-8") * 5
        submit(kite, "bob@remote.test", body=text, mail_options=["BODY=8BITMIME"],
               extra_headers=b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                             b"Content-Transfer-Encoding: 8bit\r\n")
        msg = sink.wait_messages(1)[0]
        assert msg.param("BODY") is None
        assert all(b < 128 for b in msg.data)
        parsed = email.message_from_bytes(msg.data, policy=email.policy.default)
        assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
        assert parsed.get_payload(decode=True) == text
    finally:
        sink.stop()


def test_8bitmime_passed_on_when_offered(kite, sink_port):
    sink = Sink(sink_port, hide=["CHUNKING"])
    try:
        relay_to(kite, sink_port)
        kite.start()
        text = "naïve café\r\n".encode("utf-8")
        submit(kite, "bob@remote.test", body=text, mail_options=["BODY=8BITMIME"])
        msg = sink.wait_messages(1)[0]
        assert msg.param("BODY") == "8BITMIME"
        assert msg.data.endswith(text)
    finally:
        sink.stop()


def test_4xx_deferred_then_delivered_after_retry(kite, sink_port):
    sink = Sink(sink_port, rcpt_replies={"bob@remote.test": "451 4.3.0 try again later"})
    try:
        relay_to(kite, sink_port)
        kite.start()
        submit(kite, "bob@remote.test")
        kite.wait_log(r"to=<bob@remote\.test>, .*dsn=4\.3\.0, status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] "
                      r"said: 451 4\.3\.0 try again later \(in reply to RCPT TO command\)\)")
        sink.config.rcpt_replies.clear()
        kite.run("kitequeue", "-f")
        sink.wait_messages(1, timeout=30)
        kite.wait_log(r"to=<bob@remote\.test>, .*status=sent")
    finally:
        sink.stop()


def test_5xx_bounces_with_remote_text(kite, sink_port):
    sink = Sink(sink_port, rcpt_replies={"nobody@remote.test": "550 5.1.1 <nobody@remote.test>: no such user"})
    try:
        relay_to(kite, sink_port)
        kite.start()
        submit(kite, "nobody@remote.test")
        kite.wait_log(r"to=<nobody@remote\.test>, .*dsn=5\.1\.1, status=bounced \(host 127\.0\.0\.1\[127\.0\.0\.1\] "
                      r"said: 550 5\.1\.1 <nobody@remote\.test>: no such user \(in reply to RCPT TO command\)\)")
    finally:
        sink.stop()


def test_connection_refused_on_first_mx_uses_second(kite):
    port = free_port("127.0.0.3")
    sink = Sink(port, host="127.0.0.3")
    dns = DNSServer({"mx.test": {"MX": [(10, "127.0.0.2"), (20, "127.0.0.3")]}})
    try:
        kite.set(smtp_dns_resolver_address=dns.address,
                 transport_maps="inline:{mx.test=smtp:mx.test:%d}" % port)
        kite.start()
        submit(kite, "bob@mx.test")
        sink.wait_messages(1)
        kite.wait_log(r"connect to 127\.0\.0\.2\[127\.0\.0\.2\]:%d: Connection refused" % port)
        kite.wait_log(r"to=<bob@mx\.test>, relay=127\.0\.0\.3\[127\.0\.0\.3\]:%d, .*status=sent" % port)
        assert ("mx.test", 15) in dns.queries
    finally:
        sink.stop()
        dns.stop()


def test_null_mx_bounces(kite):
    dns = DNSServer({"nullmx.test": {"MX": [(0, ".")]}})
    try:
        kite.set(smtp_dns_resolver_address=dns.address)
        kite.start()
        submit(kite, "bob@nullmx.test")
        kite.wait_log(r"to=<bob@nullmx\.test>, .*dsn=5\.1\.10, status=bounced \(Domain nullmx\.test does not "
                      r"accept mail \(nullMX\)\)")
    finally:
        dns.stop()


def test_lmtp_per_recipient_replies(kite, sink_port):
    sink = Sink(sink_port, lmtp=True, keywords=["PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME"],
                lmtp_rcpt_final={"full@lmtp.test": "452 4.2.2 <full@lmtp.test> mailbox full"})
    try:
        kite.set(transport_maps="inline:{lmtp.test=lmtp:[127.0.0.1]:%d}" % sink_port)
        kite.master_cf(kite.default_master_cf() + "lmtp unix - - n - - smtp\n")
        kite.start()
        submit(kite, ["ok@lmtp.test", "full@lmtp.test"])
        sink.wait_messages(1)
        assert any(t.upper().startswith("LHLO") for t in sink.commands())
        kite.wait_log(r"to=<ok@lmtp\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*status=sent" % sink_port)
        kite.wait_log(r"to=<full@lmtp\.test>, .*dsn=4\.2\.2, status=deferred")
    finally:
        sink.stop()


def test_auth_to_relayhost_needs_tls_by_default(kite, sink_port):
    sink = Sink(sink_port, auth=("relayuser", "s3cret"))
    try:
        pw = kite.confdir / "sasl_passwd"
        pw.write_text("[127.0.0.1]:%d relayuser:s3cret\n" % sink_port)
        relay_to(kite, sink_port, smtp_sasl_auth_enable="yes", smtp_sasl_password_maps="texthash:%s" % pw)
        kite.start()
        submit(kite, "bob@remote.test")
        kite.wait_log(r"to=<bob@remote\.test>, .*status=deferred \(SASL authentication to .* needs TLS")
        assert sink.messages == []
    finally:
        sink.stop()


def test_auth_plain_to_relayhost(kite, sink_port):
    sink = Sink(sink_port, auth=("relayuser", "s3cret"))
    try:
        pw = kite.confdir / "sasl_passwd"
        pw.write_text("[127.0.0.1]:%d relayuser:s3cret\n" % sink_port)
        relay_to(kite, sink_port, smtp_sasl_auth_enable="yes", smtp_sasl_password_maps="texthash:%s" % pw,
                 smtp_sasl_security_options="noanonymous")
        kite.start()
        submit(kite, "bob@remote.test")
        sink.wait_messages(1)
        assert sink.auth_log and sink.auth_log[0][:2] == ("PLAIN", "relayuser")
        assert any("AUTH=<>" in t for t in sink.commands() if t.upper().startswith("MAIL"))
    finally:
        sink.stop()


# ---- STARTTLS towards the next hop (RFC 3207) --------------------------------

@pytest.fixture(scope="module")
def certs():
    # World-readable: the client runs as the instance's (unprivileged) user.
    import pathlib
    import shutil
    import tempfile
    d = pathlib.Path(tempfile.mkdtemp(prefix="kite-pki-"))
    subprocess.run(["sh", str(os.path.join(os.path.dirname(__file__), "..", "certs", "make-certs.sh")), str(d)],
                   check=True)
    os.chmod(d, 0o755)
    for name in os.listdir(d):
        if name.endswith(".pem"):
            os.chmod(d / name, 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def server_tls(certs, name="server"):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(certs / (name + ".pem")), str(certs / (name + ".key")))
    return ctx


def test_tls_may_uses_starttls_when_offered(kite, sink_port, certs):
    sink = Sink(sink_port, tls_context=server_tls(certs))
    try:
        relay_to(kite, sink_port, smtp_tls_security_level="may")
        kite.start()
        submit(kite, "bob@remote.test")
        sink.wait_messages(1)
        assert "STARTTLS" in [t.upper() for t in sink.commands()]
        kite.wait_log(r"Untrusted TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: TLSv1\.[23] "
                      r"with cipher" % sink_port)
    finally:
        sink.stop()


def test_tls_encrypt_defers_when_not_offered(kite, sink_port):
    sink = Sink(sink_port)
    try:
        relay_to(kite, sink_port, smtp_tls_security_level="encrypt")
        kite.start()
        submit(kite, "bob@remote.test")
        kite.wait_log(r"to=<bob@remote\.test>, .*status=deferred \(TLS is required, but was not offered by host "
                      r"127\.0\.0\.1\[127\.0\.0\.1\]\)")
        assert sink.messages == []
    finally:
        sink.stop()


def test_tls_verify_with_test_ca(kite, sink_port, certs):
    sink = Sink(sink_port, tls_context=server_tls(certs))
    try:
        kite.set(relayhost="[localhost]:%d" % sink_port, smtp_tls_security_level="verify",
                 smtp_tls_CAfile=str(certs / "ca.pem"), inet_protocols="ipv4")
        kite.start()
        submit(kite, "bob@remote.test")
        sink.wait_messages(1)
        kite.wait_log(r"Verified TLS connection established to localhost\[127\.0\.0\.1\]:%d" % sink_port)
    finally:
        sink.stop()


def test_tls_verify_fails_with_unknown_ca(kite, sink_port, certs):
    sink = Sink(sink_port, tls_context=server_tls(certs, "other-server"))
    try:
        kite.set(relayhost="[localhost]:%d" % sink_port, smtp_tls_security_level="verify",
                 smtp_tls_CAfile=str(certs / "ca.pem"), inet_protocols="ipv4")
        kite.start()
        submit(kite, "bob@remote.test")
        kite.wait_log(r"to=<bob@remote\.test>, .*status=deferred \((Server certificate not verified|TLS handshake "
                      r"with localhost\[127\.0\.0\.1\] failed)")
        assert sink.messages == []
    finally:
        sink.stop()


def test_helo_fallback_when_ehlo_refused(kite, sink_port):
    sink = Sink(sink_port, ehlo_reply="502 5.5.1 EHLO not implemented")
    try:
        relay_to(kite, sink_port)
        kite.start()
        submit(kite, "bob@remote.test")
        msg = sink.wait_messages(1)[0]
        cmds = [c.split()[0].upper() for c in sink.commands() if c]
        assert "EHLO" in cmds and "HELO" in cmds
        # No ESMTP parameters towards a plain SMTP server.
        assert msg.mail_params == []
    finally:
        sink.stop()


def test_binarymime_refused_for_hop_without_it(kite, sink_port):
    sink = Sink(sink_port, hide=["BINARYMIME"])
    try:
        relay_to(kite, sink_port)
        kite.start()
        body = b"From: <alice@kite.test>\r\nTo: <bob@remote.test>\r\nSubject: bin\r\n\r\n\x00\x01binary\r\n"
        s = socket.create_connection(("127.0.0.1", kite.port), timeout=30)
        f = s.makefile("rb")

        def reply():
            line = f.readline()
            while line[3:4] == b"-":
                line = f.readline()
            return line
        reply()
        s.sendall(b"EHLO client.test\r\n")
        assert reply().startswith(b"250")
        s.sendall(b"MAIL FROM:<alice@kite.test> BODY=BINARYMIME\r\n")
        assert reply().startswith(b"250")
        s.sendall(b"RCPT TO:<bob@remote.test>\r\n")
        assert reply().startswith(b"250")
        s.sendall(b"BDAT %d LAST\r\n" % len(body) + body)
        assert reply().startswith(b"250")
        s.sendall(b"QUIT\r\n")
        s.close()
        kite.wait_log(r"to=<bob@remote\.test>, .*dsn=5\.6\.3, status=bounced \(BINARYMIME is required, but was not "
                      r"offered by host")
        assert sink.messages == []
    finally:
        sink.stop()


def test_smtputf8_refused_for_hop_without_it(kite, sink_port):
    sink = Sink(sink_port, hide=["SMTPUTF8"])
    try:
        relay_to(kite, sink_port)
        kite.start()
        msg = "From: <alice@kite.test>\r\nTo: <bøb@remote.test>\r\nSubject: utf8\r\n\r\nhej\r\n".encode("utf-8")
        with smtplib.SMTP("127.0.0.1", kite.port, timeout=30) as c:
            c.ehlo("client.test")
            c.sendmail("alice@kite.test", ["bøb@remote.test"], msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        kite.wait_log(r"to=<bøb@remote\.test>, .*dsn=5\.6\.7, status=bounced \(SMTPUTF8 is required, but was not "
                      r"offered by host")
        assert sink.messages == []
    finally:
        sink.stop()


def test_connection_reused_for_the_next_message(kite, sink_port):
    sink = Sink(sink_port)
    try:
        relay_to(kite, sink_port, smtp_destination_concurrency_limit="1",
                 smtp_connection_cache_time_limit="10s")
        text = kite.default_master_cf().replace("smtp unix - - n - - smtp", "smtp unix - - n - 1 smtp")
        kite.master_cf(text)
        kite.start()
        base = sink.connections
        submit(kite, "bob@remote.test", subject="one")
        sink.wait_messages(1)
        submit(kite, "carol@remote.test", subject="two")
        sink.wait_messages(2)
        assert sink.connections - base == 1
        assert [t for t in sink.commands() if t.upper() == "RSET"]
    finally:
        sink.stop()


def test_relayed_notice_for_hop_without_dsn(kite, sink_port):
    sink = Sink(sink_port, hide=["DSN"])
    try:
        relay_to(kite, sink_port)
        kite.start()
        submit(kite, "bob@remote.test", sender="alice@sandbox.test", rcpt_options=["NOTIFY=SUCCESS"])
        msg = sink.wait_messages(1)[0]
        assert all("NOTIFY" not in p for _, params in msg.rcpts for p in params)
        files = kite.wait_for_files(kite.maildir_base / "alice" / "new", 1, timeout=30)
        report = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
        assert report.get_content_type() == "multipart/report"
        status = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"][0]
        text = status.as_string()
        assert re.search(r"Action: relayed", text)
        assert re.search(r"Final-Recipient: rfc822; ?bob@remote\.test", text)
    finally:
        sink.stop()


def _two_mx(kite, port):
    dns = DNSServer({"mx.test": {"MX": [(10, "127.0.0.2"), (20, "127.0.0.3")]}})
    kite.set(smtp_dns_resolver_address=dns.address,
             transport_maps="inline:{mx.test=smtp:mx.test:%d}" % port)
    return dns


def test_greeting_4xx_on_first_mx_uses_second(kite):
    port = free_port("127.0.0.3")
    busy = Sink(port, host="127.0.0.2", greeting="421 4.3.2 too busy")
    good = Sink(port, host="127.0.0.3")
    dns = _two_mx(kite, port)
    try:
        kite.start()
        submit(kite, "bob@mx.test")
        good.wait_messages(1)
        assert busy.messages == []
        kite.wait_log(r"to=<bob@mx\.test>, relay=127\.0\.0\.3\[127\.0\.0\.3\]:%d, .*status=sent" % port)
    finally:
        busy.stop()
        good.stop()
        dns.stop()


def test_mail_4xx_on_first_mx_uses_second(kite):
    port = free_port("127.0.0.3")
    busy = Sink(port, host="127.0.0.2", mail_reply="451 4.3.0 local problem")
    good = Sink(port, host="127.0.0.3")
    dns = _two_mx(kite, port)
    try:
        kite.start()
        submit(kite, "bob@mx.test")
        good.wait_messages(1)
        assert any(t.upper().startswith("MAIL") for t in busy.commands())
        assert busy.messages == []
    finally:
        busy.stop()
        good.stop()
        dns.stop()


def test_ipv6_next_hop(kite):
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        port = s.getsockname()[1]
        s.close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    sink = Sink(port, host="::1")
    try:
        relay_to_v6 = "[::1]:%d" % port
        kite.set(relayhost=relay_to_v6, inet_protocols="all")
        kite.start()
        submit(kite, "bob@remote.test")
        sink.wait_messages(1)
        kite.wait_log(r"to=<bob@remote\.test>, relay=::1\[::1\]:%d, .*status=sent" % port)
    finally:
        sink.stop()


def test_slow_server_times_out_and_defers(kite, sink_port):
    sink = Sink(sink_port, delay=3.0)
    try:
        relay_to(kite, sink_port, smtp_helo_timeout="1s")
        kite.start()
        submit(kite, "bob@remote.test")
        kite.wait_log(r"to=<bob@remote\.test>, .*status=deferred \(conversation with 127\.0\.0\.1\[127\.0\.0\.1\] "
                      r"timed out while receiving the initial server greeting\)", timeout=20)
        assert sink.messages == []
    finally:
        sink.stop()


def test_lmtp_over_unix_socket(kite):
    import tempfile
    d = tempfile.mkdtemp(prefix="kite-lmtp-")
    os.chmod(d, 0o755)
    path = os.path.join(d, "lmtp")
    sink = Sink(0, lmtp=True, unix_socket=path, keywords=["PIPELINING", "ENHANCEDSTATUSCODES"])
    try:
        os.chmod(path, 0o666)
        kite.set(transport_maps="inline:{unix.test=lmtp:unix:%s}" % path)
        kite.master_cf(kite.default_master_cf() + "lmtp unix - - n - - smtp\n")
        kite.start()
        submit(kite, "bob@unix.test")
        sink.wait_messages(1)
        assert any(t.upper().startswith("LHLO") for t in sink.commands())
        kite.wait_log(r"to=<bob@unix\.test>, relay=%s, .*status=sent" % re.escape(path))
    finally:
        sink.stop()


def test_auth_login_when_plain_not_offered(kite, sink_port):
    sink = Sink(sink_port, auth=("relayuser", "s3cret"), auth_mechs="LOGIN")
    try:
        pw = kite.confdir / "sasl_passwd"
        pw.write_text("[127.0.0.1]:%d relayuser:s3cret\n" % sink_port)
        relay_to(kite, sink_port, smtp_sasl_auth_enable="yes", smtp_sasl_password_maps="texthash:%s" % pw,
                 smtp_sasl_security_options="noanonymous")
        kite.start()
        submit(kite, "bob@remote.test")
        sink.wait_messages(1)
        assert sink.auth_log and sink.auth_log[0][:2] == ("LOGIN", "relayuser")
    finally:
        sink.stop()


def test_domain_without_mx_uses_its_address(kite, sink_port):
    # "localhost" has no MX record in the test DNS: fall back to its address.
    dns = DNSServer({"localhost": {}})
    sink = Sink(sink_port)
    try:
        kite.set(smtp_dns_resolver_address=dns.address, inet_protocols="ipv4",
                 transport_maps="inline:{nomx.test=smtp:localhost:%d}" % sink_port)
        kite.start()
        submit(kite, "bob@nomx.test")
        sink.wait_messages(1)
        assert ("localhost", 15) in dns.queries
        kite.wait_log(r"to=<bob@nomx\.test>, relay=localhost\[127\.0\.0\.1\]:%d, .*status=sent" % sink_port)
    finally:
        sink.stop()
        dns.stop()


def test_bind_address_is_the_source(kite, sink_port):
    sink = Sink(sink_port)
    try:
        relay_to(kite, sink_port, smtp_bind_address="127.0.0.5", inet_protocols="ipv4")
        kite.start()
        submit(kite, "bob@remote.test")
        sink.wait_messages(1)
        assert sink.peers[-1][0] == "127.0.0.5"
    finally:
        sink.stop()


def test_tls_encrypt_succeeds_with_starttls(kite, sink_port, certs):
    sink = Sink(sink_port, tls_context=server_tls(certs))
    try:
        relay_to(kite, sink_port, smtp_tls_security_level="encrypt")
        kite.start()
        submit(kite, "bob@remote.test")
        sink.wait_messages(1)
        kite.wait_log(r"TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:%d" % sink_port)
    finally:
        sink.stop()


def test_tls_policy_map_raises_the_level_for_one_destination(kite, sink_port):
    sink = Sink(sink_port)
    try:
        relay_to(kite, sink_port, smtp_tls_security_level="may",
                 smtp_tls_policy_maps="inline:{[127.0.0.1]:%d=encrypt}" % sink_port)
        kite.start()
        submit(kite, "bob@remote.test")
        kite.wait_log(r"to=<bob@remote\.test>, .*status=deferred \(TLS is required, but was not offered by host")
        assert sink.messages == []
    finally:
        sink.stop()


def _maildir_new(kite, user):
    d = kite.maildir(user) / "new"
    return sorted(d.iterdir()) if d.exists() else []


def test_verify_probe_asks_rcpt_and_never_sends_data(kite, sink_port):
    """sendmail -bv towards a remote hop: RCPT replies decide (2xx deliverable,
    4xx delayed, 5xx undeliverable), the transaction ends with RSET, no DATA."""
    sink = Sink(sink_port, rcpt_replies={"nobody@remote.test": "550 5.1.1 <nobody@remote.test>: no such user",
                                         "later@remote.test": "451 4.3.0 try again later"})
    try:
        relay_to(kite, sink_port)
        kite.start()
        r = kite.run("sendmail", "-f", "alice@sandbox.test", "-bv", "bob@remote.test", "nobody@remote.test",
                     "later@remote.test", input="")
        assert r.returncode == 0, r.stderr
        deadline = time.time() + 30
        while not _maildir_new(kite, "alice") and time.time() < deadline:
            time.sleep(0.1)
        (path,) = _maildir_new(kite, "alice")
        report = path.read_text(errors="replace")
        blocks = {}
        for block in re.split(r"\r?\n\r?\n", report):
            m = re.search(r"^Final-Recipient: rfc822; (\S+)", block, re.M)
            if m:
                blocks[m.group(1)] = block
        assert set(blocks) == {"bob@remote.test", "nobody@remote.test", "later@remote.test"}, report
        assert re.search(r"^Action: deliverable\s*$", blocks["bob@remote.test"], re.M), report
        assert re.search(r"deliverable via 127\.0\.0\.1\[127\.0\.0\.1\]", blocks["bob@remote.test"]), report
        assert re.search(r"^Action: undeliverable\s*$", blocks["nobody@remote.test"], re.M), report
        assert re.search(r"^Status: 5\.1\.1\s*$", blocks["nobody@remote.test"], re.M), report
        assert re.search(r"^Diagnostic-Code: smtp; 550 5\.1\.1", blocks["nobody@remote.test"], re.M), report
        assert re.search(r"^Action: delayed\s*$", blocks["later@remote.test"], re.M), report
        assert re.search(r"^Status: 4\.3\.0\s*$", blocks["later@remote.test"], re.M), report
        cmds = [c.split(":")[0].split()[0].upper() for c in sink.commands()]
        assert "RCPT" in cmds and "RSET" in cmds, cmds
        assert "DATA" not in cmds and "BDAT" not in cmds, cmds
        assert sink.messages == []
        # One attempt only: the probe left the queue although a recipient was deferred.
        for q in ("active", "deferred", "incoming", "defer", "bounce", "trace"):
            d = kite.queue_dir / q
            assert not d.exists() or not [p for p in d.rglob("*") if p.is_file()], q
    finally:
        sink.stop()
