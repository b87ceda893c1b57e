"""STARTTLS session resumption in smtpd (RFC 3207 with TLS 1.2 and 1.3).

A client that kept the session from its first connection resumes it on
the next one: with a session ticket (the default) and, with tickets off,
from the server's session cache. smtpd_tls_session_cache_timeout = 0
turns resumption off.
"""

import re
import subprocess

import pytest

from test_smtpd import certs, start, tls_params  # noqa: F401  (certs is a fixture)


def s_client(kite, sess, first, *extra):
    """One STARTTLS session with openssl s_client; returns its output."""
    argv = ["openssl", "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{kite.port}", "-ign_eof",
            "-sess_out" if first else "-sess_in", str(sess)] + list(extra)
    p = subprocess.run(argv, input=b"EHLO resume.example\r\nQUIT\r\n", capture_output=True, timeout=30)
    out = p.stdout.decode(errors="replace")
    assert "221 2.0.0" in out, out + p.stderr.decode(errors="replace")
    return out


def resumed(out):
    if re.search(r"^Reused, TLSv1\.[23]", out, re.M):
        return True
    assert re.search(r"^New, TLSv1\.[23]", out, re.M), out
    return False


@pytest.mark.parametrize("proto", ["-tls1_3", "-tls1_2"])
def test_a_second_connection_resumes_the_session(kite, certs, proto):  # noqa: F811
    start(kite, **tls_params(kite, certs))
    sess = kite.confdir / "client.session"
    assert not resumed(s_client(kite, sess, True, proto))
    assert resumed(s_client(kite, sess, False, proto))
    kite.wait_log(r"(?s)(TLS connection established from .*){2}")


def test_resumption_from_the_cache_without_tickets(kite, certs):  # noqa: F811
    start(kite, **tls_params(kite, certs))
    sess = kite.confdir / "client.session"
    assert not resumed(s_client(kite, sess, True, "-tls1_2", "-no_ticket"))
    assert resumed(s_client(kite, sess, False, "-tls1_2", "-no_ticket"))


def test_no_resumption_when_the_cache_timeout_is_zero(kite, certs):  # noqa: F811
    start(kite, **tls_params(kite, certs, smtpd_tls_session_cache_timeout="0"))
    sess = kite.confdir / "client.session"
    for proto in ("-tls1_2", "-tls1_3"):
        assert not resumed(s_client(kite, sess, True, proto))
        # The server hands out nothing resumable (no ticket, no session ID),
        # so the client has no session to offer, or one that is refused.
        if sess.exists():
            assert not resumed(s_client(kite, sess, False, proto))
            sess.unlink()
