"""Kite and Postfix as each other's next hop, and Kite against smtp-sink."""

import smtplib

import pytest

import postfix_peer
from test_smtp_client import free_port, submit

pytestmark = pytest.mark.skipif(not postfix_peer.available(), reason="needs root and Debian's postfix")


def test_kite_relays_to_private_postfix(kite):
    pf_port = free_port()
    pf = postfix_peer.PrivatePostfix(pf_port)
    try:
        pf.start()
        kite.set(relayhost="[127.0.0.1]:%d" % pf_port)
        kite.start()
        submit(kite, "someone@postfix.test", body=b"via kite to postfix\r\n", subject="interop-1")
        msg = pf.wait_messages(1)[0]
        assert b"Subject: interop-1" in msg
        assert b"via kite to postfix" in msg
        # Postfix's Received header names Kite's helo (myhostname).
        assert b"from kite.test" in msg or b"helo=kite.test" in msg or b"(kite.test" in msg
        kite.wait_log(r"to=<someone@postfix\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*status=sent \(250 "
                      % pf_port)
    finally:
        pf.stop()


def test_postfix_relays_to_kite(kite):
    kite.start()
    pf_port = free_port()
    pf = postfix_peer.PrivatePostfix(pf_port, relayhost="[127.0.0.1]:%d" % kite.port)
    try:
        pf.start()
        msg = b"From: <x@postfix.test>\r\nTo: <bob@sandbox.test>\r\nSubject: interop-2\r\n\r\nvia postfix\r\n"
        with smtplib.SMTP("127.0.0.1", pf_port, timeout=30) as c:
            c.sendmail("x@elsewhere.test", ["bob@sandbox.test"], msg)
        files = kite.wait_for_files(kite.maildir_base / "bob" / "new", 1, timeout=30)
        data = files[0].read_bytes()
        assert b"Subject: interop-2" in data
        assert b"via postfix" in data
        kite.wait_log(r"to=<bob@sandbox\.test>, .*status=sent")
    finally:
        pf.stop()


def test_kite_to_smtp_sink(kite):
    port = free_port()
    sink = postfix_peer.SmtpSink(port)
    try:
        kite.set(relayhost="[127.0.0.1]:%d" % port)
        kite.start()
        for i in range(5):
            submit(kite, "r%d@remote.test" % i, subject="sink-%d" % i)
        sink.wait_files(5)
        kite.wait_log(r"to=<r4@remote\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*status=sent" % port)
    finally:
        sink.stop()
