/*
 * etrn.c - the ETRN command (RFC 1985): "deliver the mail you hold for
 * this domain now", by the queue manager, over new connections to the
 * domain's next hop (never over this session).
 *
 * Offers smtpd_etrn_parse() (the argument: one word, an optional option
 * character, a domain name or address literal) and smtpd_etrn_cmd(), which
 * applies Postfix's order of checks: HELO/EHLO when smtpd_helo_required,
 * no mail transaction in progress, exactly one well-formed argument, not
 * a stand-alone (sendmail -bs) session, smtpd_etrn_restrictions (after the
 * delayed client and HELO restrictions), the domain in fast_flush_domains,
 * and finally the flush_site request to qmgr (flush.c). The replies and
 * log lines are Postfix's, with RFC 3463 codes added (they are dropped
 * for clients that did not say EHLO).
 *
 * The options of RFC 1985 §5: "domain" is that destination only,
 * "@domain" the domain and its subdomains, "#queue" a named queue, which
 * Kite does not have: it gets the "service unavailable" answer and
 * flushes nothing.
 *
 * Trusts nothing the client says: the argument is length-limited and
 * must be a syntactically valid host name or address literal before it
 * reaches a table lookup, a log line or another process.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "msg.h"
#include "params.h"
#include "smtpd.h"
#include "vbuf.h"

#define ETRN_NAME_MAX 255 /* RFC 1035 §2.3.4 */

/* etrn_valid_literal - "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3) */
static int etrn_valid_literal(const char *name, size_t len)
{
    char inner[ETRN_NAME_MAX + 1];
    unsigned char addr[16];

    if (len < 3 || name[0] != '[' || name[len - 1] != ']' || len - 2 > ETRN_NAME_MAX)
        return 0;
    memcpy(inner, name + 1, len - 2);
    inner[len - 2] = 0;
    if (strncasecmp(inner, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, inner + 5, addr) == 1;
    return inet_pton(AF_INET, inner, addr) == 1;
}

/*
 * etrn_valid_hostname - RFC 1035 §2.3.1 labels as Postfix accepts them:
 * letters, digits, '-' (not first or last in a label) and '_', labels of
 * 1..63 octets, no empty label (so no leading, trailing or double dot),
 * and not all digits (an address belongs in brackets).
 */
static int etrn_valid_hostname(const char *name, size_t len)
{
    size_t label = 0, i;
    int non_numeric = 0;

    if (len == 0 || len > ETRN_NAME_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char) name[i];

        if (c == '.') {
            if (label == 0 || name[i - 1] == '-' || i + 1 == len)
                return 0;
            label = 0;
            continue;
        }
        if (c == '-') {
            if (label == 0)
                return 0;
            non_numeric = 1;
        } else if (isalpha(c) || c == '_') {
            non_numeric = 1;
        } else if (!isdigit(c)) {
            return 0; /* 8-bit, blanks, punctuation */
        }
        if (++label > 63)
            return 0;
    }
    return name[len - 1] != '-' && non_numeric;
}

/* smtpd_etrn_parse - RFC 1985 §5: the one argument; 0, or the reply code 500/501 */
int smtpd_etrn_parse(const char *args, vbuf *name, int *kind)
{
    const char *p = args ? args : "";
    size_t len;

    vbuf_reset(name);
    *kind = SMTPD_ETRN_DOMAIN;
    p += strspn(p, " \t");
    len = strcspn(p, " \t");
    if (len == 0 || p[len + strspn(p + len, " \t")] != 0)
        return 500; /* no argument, or more than one */
    if (p[0] == '@' || p[0] == '#') {
        *kind = p[0] == '@' ? SMTPD_ETRN_SUBDOMAINS : SMTPD_ETRN_QUEUE;
        p++;
        len--;
    }
    if (!etrn_valid_hostname(p, len) && !etrn_valid_literal(p, len))
        return 501;
    vbuf_setn(name, p, len);
    return 0;
}

/* etrn_unavailable - RFC 1985 §4 459: not a domain we hold mail for on request */
static void etrn_unavailable(smtpd_session *s, const char *name)
{
    msg_warn("reject: ETRN %.100s... from %s", name, s->namaddr);
    smtpd_reply(s, "459 4.7.1 <%s>: service unavailable", name);
}

/* smtpd_etrn_cmd - RFC 1985 §3: ETRN [@|#]name */
void smtpd_etrn_cmd(smtpd_session *s, char *args)
{
    vbuf name, why;
    const char *reply;
    int kind, code, st;

    if (s->helo.len == 0 && (var_smtpd_helo_required || s->tls_active)) {
        smtpd_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
        return;
    }
    if (s->sender || s->bdat_active) {
        smtpd_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
        return;
    }
    vbuf_init(&name, 0);
    vbuf_init(&why, 0);
    if ((code = smtpd_etrn_parse(args, &name, &kind)) == 500) {
        smtpd_reply(s, "500 5.5.4 Syntax: ETRN domain");
    } else if (code != 0) {
        smtpd_reply(s, "501 5.5.4 Error: invalid parameter syntax");
    } else if (s->standalone) {
        /* No queue manager to ask on behalf of a local submission. */
        msg_warn("do not use ETRN in \"sendmail -bs\" mode");
        smtpd_reply(s, "458 4.3.0 Unable to queue messages");
    } else if (s->rejected_client) {
        smtpd_reply(s, "%s", s->rejected_client_reply);
    } else if ((reply = smtpd_check_etrn(s, vbuf_str(&name))) != NULL) {
        smtpd_log_reject(s, "ETRN", reply, NULL);
        smtpd_reply(s, "%s", reply);
    } else if (kind == SMTPD_ETRN_QUEUE) {
        etrn_unavailable(s, vbuf_str(&name));
    } else if ((st = smtpd_check_fast_flush(vbuf_str(&name))) == 0) {
        etrn_unavailable(s, vbuf_str(&name));
    } else if (st < 0) {
        msg_warn("ETRN %.100s... from %s: fast_flush_domains lookup error", vbuf_str(&name), s->namaddr);
        smtpd_reply(s, "458 4.3.0 Unable to queue messages");
    } else if ((st = smtpd_flush_site(vbuf_str(&name), kind == SMTPD_ETRN_SUBDOMAINS, &why)) == 0) {
        smtpd_reply(s, "250 2.0.0 Queuing started");
    } else if (st == 2) {
        /* qmgr's fast_flush_domains (its -o overrides may differ) said no: the same 459. */
        etrn_unavailable(s, vbuf_str(&name));
    } else {
        if (st > 0)
            msg_warn("bad ETRN %.100s... from %s: %.200s", vbuf_str(&name), s->namaddr, vbuf_str(&why));
        else
            msg_warn("unable to talk to fast flush service: %s", vbuf_str(&why));
        smtpd_reply(s, "458 4.3.0 Unable to queue messages");
    }
    vbuf_release(&name);
    vbuf_release(&why);
}
