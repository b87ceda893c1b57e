"""End-to-end tests of reject_unknown_client_hostname and
reject_unknown_reverse_client_hostname: a loopback DNS server
(smtpd_dns_resolver_address) gives each client source address 127.0.0.x a
different naming outcome, and smtplib clients see the exact reply, while
the maillog gets Postfix's NOQUEUE reject line.

  127.0.0.2  PTR good.example.test, A 127.0.0.2            forward-confirmed
  127.0.0.3  PTR forged.example.test, A 127.0.0.9          name does not lead back
  127.0.0.4  PTR gone.example.test, no A (NXDOMAIN)        forward lookup fails
  127.0.0.5  no PTR (NXDOMAIN)                             no reverse name
  127.0.0.6  PTR query SERVFAIL                            temporary, reverse
  127.0.0.7  PTR flaky.example.test, A query SERVFAIL      temporary, forward only
"""

import re
import smtplib

import pytest

from test_smtpd_dns import dns, ptr, show_log_on_failure, start_named  # noqa: F401 (fixtures)

RECORDS = {
    ptr("127.0.0.2"): {"PTR": ["good.example.test"]}, "good.example.test": {"A": ["127.0.0.2"]},
    ptr("127.0.0.3"): {"PTR": ["forged.example.test"]}, "forged.example.test": {"A": ["127.0.0.9"]},
    ptr("127.0.0.4"): {"PTR": ["gone.example.test"]},
    ptr("127.0.0.6"): {"rcode": 2},
    ptr("127.0.0.7"): {"PTR": ["flaky.example.test"]}, "flaky.example.test": {"rcode": 2},
}

HOSTNAME = "reject_unknown_client_hostname"
REVERSE = "reject_unknown_reverse_client_hostname"

# Which naming outcome each restriction refuses: "perm" gets unknown_client_reject_code, "temp" always 450.
OUTCOME = {
    HOSTNAME: {"127.0.0.2": None, "127.0.0.3": "perm", "127.0.0.4": "perm", "127.0.0.5": "perm",
               "127.0.0.6": "temp", "127.0.0.7": "temp"},
    REVERSE: {"127.0.0.2": None, "127.0.0.3": None, "127.0.0.4": None, "127.0.0.5": "perm",
              "127.0.0.6": "temp", "127.0.0.7": None},
}

CLIENT_NAME = {"127.0.0.2": "good.example.test"}


def rcpt_from(kite, src, rcpt="alice@sandbox.test"):
    """EHLO, MAIL, RCPT from source address src; returns the RCPT reply (code, text)."""
    with smtplib.SMTP("127.0.0.1", kite.port, timeout=15, source_address=(src, 0)) as c:
        c.ehlo("client.test")
        code, _ = c.mail("sender@example.test")
        assert code == 250
        return c.rcpt(rcpt)


def expected(restriction, src, code):
    """(code, text) the restriction gives the client at src, or None when it passes."""
    kind = OUTCOME[restriction][src]
    if kind is None:
        return None
    if kind == "temp":
        code = 450
    what = "reverse hostname" if restriction == REVERSE else "hostname"
    return code, f"{code // 100}.7.25 Client host rejected: cannot find your {what}, [{src}]"


@pytest.mark.parametrize("restriction", [HOSTNAME, REVERSE])
@pytest.mark.parametrize("code", [None, 550])
def test_each_naming_outcome_gets_the_documented_reply_and_log_line(kite, dns, restriction, code):
    params = dict(smtpd_client_restrictions=restriction)
    if code:
        params["unknown_client_reject_code"] = str(code)
    start_named(kite, dns(RECORDS), **params)
    for src in OUTCOME[restriction]:
        got_code, got_text = rcpt_from(kite, src)
        want = expected(restriction, src, code or 450)
        if want is None:
            assert got_code == 250, (src, got_code, got_text)
            continue
        assert (got_code, got_text.decode()) == want, src
        name = CLIENT_NAME.get(src, "unknown")
        line = (f"NOQUEUE: reject: RCPT from {name}[{src}]: {want[0]} {want[1]}; "
                "from=<sender@example.test> to=<alice@sandbox.test> proto=ESMTP helo=<client.test>")
        kite.wait_log(re.escape(line) + "$")
    kite.wait_log(r"connect from good\.example\.test\[127\.0\.0\.2\]")


def test_server_failure_is_450_even_with_a_5xx_code(kite, dns):
    start_named(kite, dns(RECORDS), smtpd_client_restrictions=f"{REVERSE}, {HOSTNAME}",
                unknown_client_reject_code="550")
    assert rcpt_from(kite, "127.0.0.6") == (
        450, b"4.7.25 Client host rejected: cannot find your reverse hostname, [127.0.0.6]")
    assert rcpt_from(kite, "127.0.0.7") == (
        450, b"4.7.25 Client host rejected: cannot find your hostname, [127.0.0.7]")
    assert rcpt_from(kite, "127.0.0.5") == (
        550, b"5.7.25 Client host rejected: cannot find your reverse hostname, [127.0.0.5]")
    assert rcpt_from(kite, "127.0.0.2")[0] == 250


def test_relay_list_rejects_at_rcpt(kite, dns):
    start_named(kite, dns(RECORDS), smtpd_relay_restrictions=f"{HOSTNAME}, permit_mynetworks, reject_unauth_destination",
                unknown_client_reject_code="554")
    assert rcpt_from(kite, "127.0.0.3") == (554, b"5.7.25 Client host rejected: cannot find your hostname, [127.0.0.3]")
    assert rcpt_from(kite, "127.0.0.2")[0] == 250


def test_data_list_rejects_at_data(kite, dns):
    start_named(kite, dns(RECORDS), smtpd_data_restrictions=REVERSE, unknown_client_reject_code="550")
    with smtplib.SMTP("127.0.0.1", kite.port, timeout=15, source_address=("127.0.0.5", 0)) as c:
        c.ehlo("client.test")
        c.mail("sender@example.test")
        assert c.rcpt("alice@sandbox.test")[0] == 250
        assert c.docmd("DATA") == (550, b"5.7.25 Client host rejected: cannot find your reverse hostname, [127.0.0.5]")
    # The transaction has a queue file by now: its ID takes NOQUEUE's place.
    kite.wait_log(r"\w+: " + re.escape("reject: DATA from unknown[127.0.0.5]: 550 5.7.25 Client host rejected: "
                            "cannot find your reverse hostname, [127.0.0.5]; from=<sender@example.test> "
                            "proto=ESMTP helo=<client.test>") + "$")
    with smtplib.SMTP("127.0.0.1", kite.port, timeout=15, source_address=("127.0.0.3", 0)) as c:
        c.ehlo("client.test")
        c.mail("sender@example.test")
        assert c.rcpt("alice@sandbox.test")[0] == 250
        code, _ = c.data(b"Subject: t\r\n\r\nhello\r\n")
        assert code == 250  # a reverse name that does not lead back is still a reverse name


def test_without_delay_reject_logged_at_connect_told_at_mail(kite, dns):
    start_named(kite, dns(RECORDS), smtpd_client_restrictions=REVERSE, smtpd_delay_reject="no")
    with smtplib.SMTP("127.0.0.1", kite.port, timeout=15, source_address=("127.0.0.5", 0)) as c:
        c.ehlo("client.test")
        assert c.mail("sender@example.test") == (
            450, b"4.7.25 Client host rejected: cannot find your reverse hostname, [127.0.0.5]")
    kite.wait_log(re.escape("NOQUEUE: reject: CONNECT from unknown[127.0.0.5]: 450 4.7.25 Client host rejected: "
                            "cannot find your reverse hostname, [127.0.0.5]; proto=SMTP") + "$")
