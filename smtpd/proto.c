/*
 * proto.c - the SMTP command table, the session driver and the commands
 * that don't need a file of their own (RFC 5321 §4.1, RFC 1869 EHLO,
 * RFC 2920 PIPELINING, RFC 2034 ENHANCEDSTATUSCODES, RFC 1870 SIZE,
 * RFC 6152 8BITMIME, RFC 6531 SMTPUTF8, RFC 3461 DSN parameters; ETRN,
 * RFC 1985, is in etrn.c).
 *
 * Offers smtpd_run(): reads as many command lines as are available without
 * blocking, answers them in order and flushes the replies only when the
 * client has nothing more buffered (RFC 2920 §3.1) or a command needs an
 * answer before the client can go on. EHLO keywords and HELP text come from
 * the same table as the verbs, so nothing is advertised that isn't there.
 *
 * Trusts nothing from the client: every line is length-limited, checked for
 * NUL and control characters, and parsed strictly.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "lookup.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "qfile.h"
#include "smtpd.h"
#include "strutil.h"
#include "xtext.h"

/* RFC 4954 §4: an AUTH line may be up to 12288 octets; others 512. */
#define SMTPD_AUTH_LINE_MAX 12288
#define SMTPD_CMD_LINE_MAX 510 /* without CRLF (RFC 5321 §4.5.3.1.4) */

/* Command flags. */
#define CMD_PRE_TLS (1 << 0) /* allowed before STARTTLS when TLS is required */
#define CMD_JUNK (1 << 1)    /* counts toward smtpd_junk_command_limit */
#define CMD_LAST (1 << 2)    /* RFC 2920 §3.1: must be last in a group: flush */
#define CMD_KEYWORD (1 << 3) /* an EHLO keyword only, not a verb */

typedef void (*smtpd_cmd_fn)(smtpd_session *s, char *args);

typedef struct smtpd_cmd {
    const char *verb;    /* NULL for keyword-only rows */
    const char *keyword; /* EHLO keyword, or NULL */
    smtpd_cmd_fn fn;
    int flags;
    const char *help;
} smtpd_cmd;

static void cmd_helo(smtpd_session *s, char *args);
static void cmd_ehlo(smtpd_session *s, char *args);
static void cmd_mail(smtpd_session *s, char *args);
static void cmd_rcpt(smtpd_session *s, char *args);
static void cmd_data(smtpd_session *s, char *args);
static void cmd_bdat(smtpd_session *s, char *args);
static void cmd_rset(smtpd_session *s, char *args);
static void cmd_noop(smtpd_session *s, char *args);
static void cmd_quit(smtpd_session *s, char *args);
static void cmd_help(smtpd_session *s, char *args);
static void cmd_vrfy(smtpd_session *s, char *args);
static void cmd_expn(smtpd_session *s, char *args);
static void cmd_starttls(smtpd_session *s, char *args);
static void cmd_auth(smtpd_session *s, char *args);
static void cmd_etrn(smtpd_session *s, char *args);

/*
 * The command table, in the order EHLO lists the keywords. Keyword-only rows
 * name extensions of MAIL/RCPT; their HELP text documents the parameters.
 */
static const smtpd_cmd smtpd_cmds[] = {
    {"HELO", NULL, cmd_helo, CMD_PRE_TLS, "HELO hostname - introduce yourself (plain SMTP)"},
    {"EHLO", NULL, cmd_ehlo, CMD_PRE_TLS | CMD_LAST, "EHLO hostname - introduce yourself, list extensions"},
    {NULL, "PIPELINING", NULL, CMD_KEYWORD, "PIPELINING - commands may be sent in groups (RFC 2920)"},
    {NULL, "SIZE", NULL, CMD_KEYWORD, "MAIL FROM:<a> SIZE=n - declare the message size (RFC 1870)"},
    {"VRFY", "VRFY", cmd_vrfy, CMD_JUNK | CMD_LAST, "VRFY address - verify a local recipient"},
    {"EXPN", NULL, cmd_expn, CMD_JUNK | CMD_LAST, "EXPN address - verify a local recipient"},
    {"ETRN", "ETRN", cmd_etrn, CMD_JUNK, "ETRN [@]domain - deliver the mail queued for domain now (RFC 1985)"},
    {"STARTTLS", "STARTTLS", cmd_starttls, CMD_PRE_TLS | CMD_LAST, "STARTTLS - switch to TLS (RFC 3207)"},
    {"AUTH", "AUTH", cmd_auth, CMD_LAST, "AUTH mechanism [initial-response] - authenticate (RFC 4954)"},
    {NULL, "ENHANCEDSTATUSCODES", NULL, CMD_KEYWORD, "ENHANCEDSTATUSCODES - replies carry RFC 3463 codes"},
    {NULL, "8BITMIME", NULL, CMD_KEYWORD, "MAIL FROM:<a> BODY=7BIT|8BITMIME|BINARYMIME (RFC 6152, RFC 3030)"},
    {NULL, "DSN", NULL, CMD_KEYWORD,
     "MAIL FROM:<a> RET=FULL|HDRS ENVID=x; RCPT TO:<b> NOTIFY=... ORCPT=rfc822;x (RFC 3461)"},
    {NULL, "SMTPUTF8", NULL, CMD_KEYWORD, "MAIL FROM:<a> SMTPUTF8 - UTF-8 addresses and headers (RFC 6531)"},
    {NULL, "BINARYMIME", NULL, CMD_KEYWORD, "BODY=BINARYMIME - binary content, with BDAT only (RFC 3030)"},
    {"BDAT", "CHUNKING", cmd_bdat, 0, "BDAT size [LAST] - send size octets of message content (RFC 3030)"},
    {"MAIL", NULL, cmd_mail, 0, "MAIL FROM:<sender> [parameters] - start a mail transaction"},
    {"RCPT", NULL, cmd_rcpt, 0, "RCPT TO:<recipient> [parameters] - add a recipient"},
    {"DATA", NULL, cmd_data, CMD_LAST, "DATA - send the message, end with <CRLF>.<CRLF>"},
    {"RSET", NULL, cmd_rset, CMD_PRE_TLS | CMD_JUNK, "RSET - abort the mail transaction"},
    {"NOOP", NULL, cmd_noop, CMD_PRE_TLS | CMD_JUNK | CMD_LAST, "NOOP - do nothing"},
    {"HELP", NULL, cmd_help, CMD_PRE_TLS | CMD_JUNK | CMD_LAST, "HELP [command] - this text"},
    {"QUIT", NULL, cmd_quit, CMD_PRE_TLS | CMD_LAST, "QUIT - close the session"},
};
#define SMTPD_NCMDS (sizeof(smtpd_cmds) / sizeof(smtpd_cmds[0]))
#define COUNT_UNKNOWN (SMTPD_NCOUNT - 1)

/* smtpd_ehlo_discarded - is keyword listed in smtpd_discard_ehlo_keywords */
int smtpd_ehlo_discarded(const char *keyword)
{
    const char *p = var_smtpd_discard_ehlo_keywords;
    size_t klen = strlen(keyword);

    while (p && *p) {
        size_t n;

        p += strspn(p, CHARS_COMMA_SPACE);
        n = strcspn(p, CHARS_COMMA_SPACE);
        if (n == klen && strncasecmp(p, keyword, n) == 0)
            return 1;
        p += n;
    }
    return 0;
}

/* tls_required - smtpd_tls_security_level = encrypt (RFC 3207 §4) */
static int tls_required(void)
{
    return var_smtpd_tls_security_level && strcasecmp(var_smtpd_tls_security_level, "encrypt") == 0;
}

/* keyword_offered - whether EHLO lists this row's keyword now */
static int keyword_offered(const smtpd_session *s, const smtpd_cmd *c)
{
    if (c->keyword == NULL || smtpd_ehlo_discarded(c->keyword))
        return 0;
    if (strcmp(c->keyword, "VRFY") == 0)
        return !var_disable_vrfy_command;
    if (strcmp(c->keyword, "STARTTLS") == 0)
        return !s->tls_active && !s->standalone && smtpd_tls_available();
    if (strcmp(c->keyword, "AUTH") == 0)
        return smtpd_sasl_mechs(s) != NULL;
    if (strcmp(c->keyword, "SMTPUTF8") == 0)
        return var_smtputf8_enable;
    return 1;
}

/* ---- session ---- */

/* smtpd_session_new - state for a new client */
smtpd_session *smtpd_session_new(int fd, int standalone, const char *name, const char *addr, const char *port)
{
    smtpd_session *s = xcalloc(1, sizeof(*s));
    vbuf nb;

    s->fd = fd;
    s->in = stream_open(fd);
    s->out = s->in;
    s->standalone = standalone;
    stream_set_timeout(s->in, 0);
    s->name = xstrdup(name);
    s->addr = xstrdup(addr);
    s->port = xstrdup(port);
    vbuf_init(&nb, 0);
    vbuf_printf(&nb, "%s[%s]", name, addr);
    s->namaddr = vbuf_steal(&nb);
    vbuf_release(&nb);
    /* The caller that knows better (smtpd_service) overrides these from the lookup. */
    s->name_status = s->reverse_name_status = strcmp(name, "unknown") == 0 ? SMTPD_PEER_PERM : SMTPD_PEER_OK;
    s->in_mynetworks = smtpd_check_mynetworks(addr);
    vbuf_init(&s->line, 0);
    vbuf_init(&s->helo, 255);
    vbuf_init(&s->bdat_reply, 0);
    vbuf_init(&s->content, 0);
    s->mode = var_smtpd_tls_wrappermode && !s->standalone ? SMTPD_MODE_TLS_WRAP : SMTPD_MODE_GREET;
    s->last_cmd = "CONNECT";
    s->queue_wait_fd = -1;
    /* RFC 5321 §4.3.1 early talkers: wait a little before the banner, except for mynetworks. */
    if (s->mode == SMTPD_MODE_GREET && !s->standalone && !s->in_mynetworks)
        s->sleep_ms = var_smtpd_greet_pause_ms;
    return s;
}

/* smtpd_session_free - release everything; aborts an unfinished message */
void smtpd_session_free(smtpd_session *s)
{
    smtpd_reset(s);
    smtpd_sasl_free(s);
    smtpd_tls_free(s);
    stream_free(s->in);
    xfree(s->name);
    xfree(s->addr);
    xfree(s->port);
    xfree(s->namaddr);
    xfree(s->sasl_method);
    xfree(s->sasl_username);
    vbuf_release(&s->line);
    vbuf_release(&s->helo);
    vbuf_release(&s->bdat_reply);
    vbuf_release(&s->content);
    xfree(s);
}

/* smtpd_reset - forget the mail transaction (RSET, EHLO, after a message) */
void smtpd_reset(smtpd_session *s)
{
    if (s->queue)
        smtpd_queue_abort(s);
    xfree(s->sender);
    s->sender = NULL;
    xfree(s->envid);
    s->envid = NULL;
    xfree(s->ret);
    s->ret = NULL;
    xfree(s->first_rcpt);
    s->first_rcpt = NULL;
    s->rcpt_count = 0;
    s->declared_size = 0;
    s->body = SMTPD_BODY_NONE;
    s->smtputf8 = 0;
    s->queue_id[0] = 0;
    s->data_errors = 0;
    s->msg_size = 0;
    s->bdat_active = 0;
    s->bdat_failed = 0;
    s->bdat_left = 0;
    s->bdat_last = 0;
    s->bdat_discard = 0;
    vbuf_reset(&s->content);
}

/* ---- replies ---- */

/* enhanced_len - length of a leading "X.Y.Z " enhanced status code, or 0 */
static size_t enhanced_len(const char *p)
{
    const char *q = p;
    int part;

    for (part = 0; part < 3; part++) {
        size_t n = 0;

        while (isdigit((unsigned char) q[n]))
            n++;
        if (n == 0 || n > 3)
            return 0;
        q += n;
        if (part < 2) {
            if (*q != '.')
                return 0;
            q++;
        }
    }
    return *q == ' ' ? (size_t) (q + 1 - p) : 0;
}

/*
 * smtpd_reply - queue one reply line ("250 2.1.0 Ok"). RFC 2034 §3: the
 * enhanced code is only sent once the client has seen ENHANCEDSTATUSCODES.
 * Replies with 4xx/5xx codes count as client errors (except 421).
 */
void smtpd_reply(smtpd_session *s, const char *fmt, ...)
{
    vbuf text;
    va_list ap;
    const char *p;
    size_t skip = 0;

    vbuf_init(&text, 0);
    va_start(ap, fmt);
    vbuf_vprintf(&text, fmt, ap);
    va_end(ap);
    p = vbuf_str(&text);
    if (text.len >= 4 && (!s->esmtp || smtpd_ehlo_discarded("ENHANCEDSTATUSCODES")))
        skip = enhanced_len(p + 4);
    (void) stream_write(s->out, p, text.len < 4 ? text.len : 4);
    (void) stream_write(s->out, p + 4 + skip, text.len > 4 ? text.len - 4 - skip : 0);
    (void) stream_write(s->out, "\r\n", 2);
    if ((p[0] == '4' || p[0] == '5') && p[3] == ' ' && strncmp(p, "421", 3) != 0) {
        s->error_count++;
        s->last_failed = 1;
    }
    vbuf_release(&text);
}

/* smtpd_reply_flush - push queued replies out (non-blocking) */
void smtpd_reply_flush(smtpd_session *s)
{
    int st = stream_flush(s->out);

    if (st < 0 && st != STREAM_AGAIN)
        s->io_error = 1;
}

/*
 * smtpd_error - after a failed command: RFC-compatible back-off. Past the
 * soft limit each error costs a growing delay; at the hard limit the
 * client is disconnected.
 */
void smtpd_error(smtpd_session *s)
{
    if (s->error_count >= var_smtpd_hard_error_limit) {
        msg_info("too many errors after %s from %s", s->last_cmd, s->namaddr);
        smtpd_reply(s, "421 4.7.0 %s Error: too many errors", var_myhostname);
        s->mode = SMTPD_MODE_QUIT;
    } else if (s->error_count >= var_smtpd_soft_error_limit) {
        s->sleep_ms = var_smtpd_error_sleep_time * 1000L * (s->error_count - var_smtpd_soft_error_limit + 1);
    }
}

/* smtpd_protocol - the protocol name for Received: (RFC 3848, RFC 6531 §3.7.3) */
const char *smtpd_protocol(const smtpd_session *s)
{
    static const char *names[2][2][2][2] = {
        {{{"SMTP", "SMTP"}, {"SMTP", "SMTP"}}, {{"ESMTP", "ESMTPA"}, {"ESMTPS", "ESMTPSA"}}},
        {{{"UTF8SMTP", "UTF8SMTP"}, {"UTF8SMTP", "UTF8SMTP"}},
         {{"UTF8SMTP", "UTF8SMTPA"}, {"UTF8SMTPS", "UTF8SMTPSA"}}},
    };

    return names[s->smtputf8 ? 1 : 0][s->esmtp ? 1 : 0][s->tls_active ? 1 : 0][s->sasl_username ? 1 : 0];
}

/* smtpd_log_reject - Postfix's "reject:" log line */
void smtpd_log_reject(smtpd_session *s, const char *verb, const char *reply, const char *rcpt)
{
    vbuf extra;

    vbuf_init(&extra, 0);
    if (s->sender)
        vbuf_printf(&extra, " from=<%s>", s->sender);
    if (rcpt)
        vbuf_printf(&extra, " to=<%s>", rcpt);
    vbuf_printf(&extra, " proto=%s", s->esmtp ? "ESMTP" : "SMTP");
    if (s->helo.len)
        vbuf_printf(&extra, " helo=<%s>", vbuf_str(&s->helo));
    msg_info("%s: reject: %s from %s: %s;%s", s->queue_id[0] ? s->queue_id : "NOQUEUE", verb, s->namaddr, reply,
             vbuf_str(&extra));
    vbuf_release(&extra);
}

/* smtpd_reject - reply with a restriction's verdict and log it */
static void smtpd_reject(smtpd_session *s, const char *verb, const char *reply, const char *rcpt)
{
    smtpd_log_reject(s, verb, reply, rcpt);
    smtpd_reply(s, "%s", reply);
}

/* ---- parsing helpers ---- */

/* next_word - split off the next space-separated word of *cursor */
static char *next_word(char **cursor)
{
    return str_token(cursor, " ");
}

/* no_args - RFC 5321: these commands take no argument */
static int no_args(smtpd_session *s, const char *args, const char *verb)
{
    if (args && *args) {
        smtpd_reply(s, "501 5.5.4 Syntax: %s", verb);
        return 0;
    }
    return 1;
}

/* ---- HELO / EHLO ---- */

/* helo_common - shared HELO/EHLO checks; 1 when the greeting is accepted */
static int helo_common(smtpd_session *s, char *args, const char *verb)
{
    const char *reply;

    if (args == NULL || *args == 0) {
        smtpd_reply(s, "501 5.5.4 Syntax: %s hostname", verb);
        return 0;
    }
    if (strchr(args, ' ') && strcmp(verb, "HELO") == 0)
        *strchr(args, ' ') = 0; /* old clients add words after the name */
    if (strlen(args) > 255) {
        smtpd_reply(s, "501 5.5.4 %s: hostname too long", verb);
        return 0;
    }
    if (!var_smtpd_delay_reject && (reply = smtpd_check_helo(s, args)) != NULL) {
        smtpd_reject(s, verb, reply, NULL);
        return 0;
    }
    smtpd_reset(s);
    vbuf_set(&s->helo, args);
    return 1;
}

/* cmd_helo - RFC 5321 §4.1.1.1 */
static void cmd_helo(smtpd_session *s, char *args)
{
    if (!helo_common(s, args, "HELO"))
        return;
    s->esmtp = 0;
    smtpd_reply(s, "250 %s", var_myhostname);
}

/* cmd_ehlo - RFC 5321 §4.1.1.1, RFC 1869 §4.3: the multi-line keyword list */
static void cmd_ehlo(smtpd_session *s, char *args)
{
    const smtpd_cmd *c;
    vbuf kw;
    int first = 1;

    if (!helo_common(s, args, "EHLO"))
        return;
    s->esmtp = 1;
    vbuf_init(&kw, 0);
    /* The list is built first so the last line gets "250 ". */
    for (c = smtpd_cmds; c < smtpd_cmds + SMTPD_NCMDS; c++) {
        if (!keyword_offered(s, c))
            continue;
        if (!first)
            vbuf_putc(&kw, '\n');
        first = 0;
        if (strcmp(c->keyword, "SIZE") == 0 && var_message_size_limit > 0)
            vbuf_printf(&kw, "SIZE %ld", var_message_size_limit);
        else if (strcmp(c->keyword, "AUTH") == 0)
            vbuf_printf(&kw, "AUTH %s", smtpd_sasl_mechs(s));
        else
            vbuf_puts(&kw, c->keyword);
    }
    {
        char *cursor = kw.data;
        char *line;

        stream_printf(s->out, "250%c%s\r\n", kw.len ? '-' : ' ', var_myhostname);
        while ((line = str_token(&cursor, "\n")) != NULL)
            stream_printf(s->out, "250%c%s\r\n", *cursor ? '-' : ' ', line);
    }
    vbuf_release(&kw);
}

/* ---- MAIL ---- */

/* parse_path - "FROM:<addr>" / "TO:<addr>" prefix and path; 0 or -1 (replied) */
static int parse_path(smtpd_session *s, char *args, const char *prefix, int flags, vbuf *addr, char **rest,
                      const char *syntax)
{
    const char *why = NULL;
    size_t used = 0;
    size_t plen = strlen(prefix);
    char *p;

    if (args == NULL || strncasecmp(args, prefix, plen) != 0) {
        smtpd_reply(s, "501 5.5.4 Syntax: %s", syntax);
        return -1;
    }
    p = args + plen;
    while (*p == ' ') /* "MAIL FROM: <a>" from old clients */
        p++;
    if (*p != '<') {
        smtpd_reply(s, "501 5.1.7 Syntax: %s", syntax);
        return -1;
    }
    if (addr_parse_path(p, flags, addr, &used, &why) < 0) {
        smtpd_reply(s, "501 %s Bad %s address syntax: %s", prefix[0] == 'F' ? "5.1.7" : "5.1.3",
                    prefix[0] == 'F' ? "sender" : "recipient", why ? why : "invalid");
        return -1;
    }
    p += used;
    if (*p && *p != ' ') {
        smtpd_reply(s, "501 5.5.4 Syntax: %s", syntax);
        return -1;
    }
    *rest = p;
    return 0;
}

/* has_8bit - any byte above 127 */
static int has_8bit(const char *p)
{
    for (; *p; p++)
        if ((unsigned char) *p > 127)
            return 1;
    return 0;
}

/* parse_digits - a whole decimal number without sign; 0 or -1 */
static int parse_digits(const char *p, long long *out)
{
    long long v = 0;

    if (*p == 0)
        return -1;
    for (; *p; p++) {
        if (!isdigit((unsigned char) *p))
            return -1;
        if (v > (9223372036854775807LL - 9) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 0;
}

/* cmd_mail - RFC 5321 §4.1.1.2 with the SIZE, BODY, SMTPUTF8, RET, ENVID and AUTH parameters */
static void cmd_mail(smtpd_session *s, char *args)
{
    vbuf addr;
    char *rest, *param;
    const char *reply;
    long long size = 0;
    int body = SMTPD_BODY_NONE, utf8 = 0, seen_size = 0, seen_auth = 0;
    char *envid = NULL, *ret = NULL;

    /* RFC 3207 §4.2: after TLS the client starts over with EHLO. */
    if (s->helo.len == 0 && (var_smtpd_helo_required || s->tls_active)) {
        smtpd_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
        return;
    }
    if (s->sender) {
        smtpd_reply(s, "503 5.5.1 Error: nested MAIL command");
        return;
    }
    if (s->rejected_client) {
        smtpd_reply(s, "%s", s->rejected_client_reply);
        return;
    }
    if (smtpd_anvil_mail(s)) /* smtpd_client_message_rate_limit */
        return;
    /* SMTPUTF8 must be known before the address is parsed. */
    if (args) {
        char *p = args;

        while ((p = strchr(p, ' ')) != NULL) {
            p++;
            if (strncasecmp(p, "SMTPUTF8", 8) == 0 && (p[8] == 0 || p[8] == ' '))
                utf8 = 1;
        }
    }
    vbuf_init(&addr, 0);
    if (parse_path(s, args, "FROM:", ADDR_ALLOW_EMPTY | (var_smtputf8_enable ? ADDR_ALLOW_UTF8 : 0), &addr, &rest,
                   "MAIL FROM:<address>") < 0)
        goto out;
    while ((param = next_word(&rest)) != NULL) {
        char *eq = strchr(param, '=');
        char *val = eq ? eq + 1 : NULL;

        if (eq)
            *eq = 0;
        if (!s->esmtp) {
            smtpd_reply(s, "555 5.5.4 Unsupported option: %s", param);
            goto out;
        }
        if (strcasecmp(param, "SIZE") == 0 && val) {
            if (seen_size++ || parse_digits(val, &size) < 0) {
                smtpd_reply(s, "501 5.5.4 Bad message size syntax");
                goto out;
            }
        } else if (strcasecmp(param, "BODY") == 0 && val) {
            if (body != SMTPD_BODY_NONE) {
                smtpd_reply(s, "501 5.5.4 Duplicate BODY parameter");
                goto out;
            }
            if (strcasecmp(val, "7BIT") == 0)
                body = SMTPD_BODY_7BIT;
            else if (strcasecmp(val, "8BITMIME") == 0)
                body = SMTPD_BODY_8BIT;
            else if (strcasecmp(val, "BINARYMIME") == 0 && !smtpd_ehlo_discarded("BINARYMIME") &&
                     !smtpd_ehlo_discarded("CHUNKING"))
                body = SMTPD_BODY_BINARY;
            else {
                smtpd_reply(s, "501 5.5.4 Unsupported BODY parameter: %s", val);
                goto out;
            }
        } else if (strcasecmp(param, "SMTPUTF8") == 0 && !val && var_smtputf8_enable &&
                   !smtpd_ehlo_discarded("SMTPUTF8")) {
            utf8 = 1;
        } else if (strcasecmp(param, "RET") == 0 && val && !smtpd_ehlo_discarded("DSN")) {
            if (ret) {
                smtpd_reply(s, "501 5.5.4 Duplicate RET parameter");
                goto out;
            }
            if (strcasecmp(val, "FULL") == 0)
                ret = xstrdup("full");
            else if (strcasecmp(val, "HDRS") == 0)
                ret = xstrdup("hdrs");
            else {
                smtpd_reply(s, "501 5.5.4 Bad RET parameter syntax");
                goto out;
            }
        } else if (strcasecmp(param, "ENVID") == 0 && val && !smtpd_ehlo_discarded("DSN")) {
            vbuf dec;

            /* RFC 3461 §4.4: xtext, at most 100 characters. */
            vbuf_init(&dec, 0);
            if (envid || strlen(val) > 100 || xtext_decode(&dec, val) < 0 || dec.len == 0 ||
                strlen(vbuf_str(&dec)) != dec.len) {
                vbuf_release(&dec);
                smtpd_reply(s, "501 5.5.4 Bad ENVID parameter syntax");
                goto out;
            }
            envid = vbuf_steal(&dec);
            vbuf_release(&dec);
        } else if (strcasecmp(param, "AUTH") == 0 && val && !seen_auth) {
            /* RFC 4954 §5: AUTH=<> or an xtext mailbox; trusted only from authenticated clients. */
            seen_auth = 1;
            if (strcmp(val, "<>") != 0 && !xtext_valid(val)) {
                smtpd_reply(s, "501 5.5.4 Bad AUTH parameter syntax");
                goto out;
            }
        } else {
            smtpd_reply(s, "555 5.5.4 Unsupported option: %s", param);
            goto out;
        }
    }
    if (has_8bit(vbuf_str(&addr)) && !utf8) {
        smtpd_reply(s, "553 5.6.7 Must declare SMTPUTF8 to send UTF8 address");
        goto out;
    }
    /* RFC 1870 §6: a declared size above the limit is refused now. */
    if (var_message_size_limit > 0 && size > var_message_size_limit) {
        smtpd_reply(s, "552 5.3.4 Message size exceeds fixed limit");
        goto out;
    }
    s->sender = xstrdup(vbuf_str(&addr));
    if (!var_smtpd_delay_reject && (reply = smtpd_check_mail(s, s->sender)) != NULL) {
        smtpd_reject(s, "MAIL", reply, NULL);
        xfree(s->sender);
        s->sender = NULL;
        goto out;
    }
    s->declared_size = (long) size;
    s->body = body;
    s->smtputf8 = utf8;
    s->envid = envid;
    s->ret = ret;
    envid = ret = NULL;
    smtpd_reply(s, "250 2.1.0 Ok");
out:
    xfree(envid);
    xfree(ret);
    vbuf_release(&addr);
}

/* ---- RCPT ---- */

/* parse_notify - RFC 3461 §4.1; QF_NOTIFY_* or -1 */
static int parse_notify(const char *val)
{
    char *copy = xstrdup(val);
    char *cursor = copy, *w;
    int flags = 0, n = 0;

    while ((w = str_token(&cursor, ",")) != NULL) {
        n++;
        if (strcasecmp(w, "NEVER") == 0)
            flags |= QF_NOTIFY_NEVER;
        else if (strcasecmp(w, "SUCCESS") == 0)
            flags |= QF_NOTIFY_SUCCESS;
        else if (strcasecmp(w, "FAILURE") == 0)
            flags |= QF_NOTIFY_FAILURE;
        else if (strcasecmp(w, "DELAY") == 0)
            flags |= QF_NOTIFY_DELAY;
        else
            flags = -1;
        if (flags < 0)
            break;
    }
    xfree(copy);
    if (n == 0 || flags < 0 || ((flags & QF_NOTIFY_NEVER) && flags != QF_NOTIFY_NEVER) || strstr(val, ",,") ||
        val[strlen(val) - 1] == ',' || val[0] == ',')
        return -1;
    return flags;
}

/* parse_orcpt - RFC 3461 §4.2 "addr-type;xtext" into "type;decoded"; NULL if bad */
static char *parse_orcpt(const char *val)
{
    const char *semi = strchr(val, ';');
    vbuf dec, out;
    size_t i;
    char *res;

    if (semi == NULL || semi == val || strlen(val) > 500)
        return NULL;
    for (i = 0; val + i < semi; i++)
        if (!isalnum((unsigned char) val[i]) && val[i] != '-')
            return NULL;
    vbuf_init(&dec, 0);
    if (xtext_decode(&dec, semi + 1) < 0 || dec.len == 0 || strlen(vbuf_str(&dec)) != dec.len) {
        vbuf_release(&dec);
        return NULL;
    }
    vbuf_init(&out, 0);
    vbuf_append(&out, val, (size_t) (semi - val));
    vbuf_lower(&out);
    vbuf_putc(&out, ';');
    vbuf_puts(&out, vbuf_str(&dec));
    res = vbuf_steal(&out);
    vbuf_release(&out);
    vbuf_release(&dec);
    return res;
}

/* queue_start - open cleanup for the first accepted recipient and send the envelope */
static int queue_start(smtpd_session *s)
{
    vbuf err;
    const char *body;

    vbuf_init(&err, 0);
    if (smtpd_queue_open(s, &err) < 0) {
        msg_warn("%s: cannot connect to cleanup: %s", s->namaddr, vbuf_str(&err));
        vbuf_release(&err);
        return -1;
    }
    vbuf_release(&err);
    if (s->queue_id[0] == 0)
        ; /* kitedrop: pickup logs the message */
    else if (s->sasl_username)
        msg_info("%s: client=%s, sasl_method=%s, sasl_username=%s", s->queue_id, s->namaddr, s->sasl_method,
                 s->sasl_username);
    else
        msg_info("%s: client=%s", s->queue_id, s->namaddr);
    smtpd_queue_attr(s, "sender", s->sender);
    if (s->envid)
        smtpd_queue_attr(s, "envid", s->envid);
    if (s->ret)
        smtpd_queue_attr(s, "ret", s->ret);
    body = s->body == SMTPD_BODY_8BIT ? "8bitmime" : s->body == SMTPD_BODY_BINARY ? "binarymime" : "7bit";
    smtpd_queue_attr(s, "body", body);
    smtpd_queue_attr(s, "smtputf8", s->smtputf8 ? "1" : "0");
    smtpd_queue_attr(s, "client_name", s->name);
    smtpd_queue_attr(s, "client_addr", s->addr);
    smtpd_queue_attr(s, "client_port", s->port);
    if (s->helo.len)
        smtpd_queue_attr(s, "helo", vbuf_str(&s->helo));
    smtpd_queue_attr(s, "protocol", smtpd_protocol(s));
    if (s->sasl_username) {
        smtpd_queue_attr(s, "sasl_method", s->sasl_method);
        smtpd_queue_attr(s, "sasl_username", s->sasl_username);
    }
    return 0;
}

/* cmd_rcpt - RFC 5321 §4.1.1.3 with NOTIFY and ORCPT (RFC 3461 §4) */
static void cmd_rcpt(smtpd_session *s, char *args)
{
    vbuf addr;
    char *rest, *param, *orcpt = NULL;
    const char *reply;
    int notify = 0, seen_notify = 0;

    if (s->sender == NULL) {
        smtpd_reply(s, "503 5.5.1 Error: need MAIL command");
        return;
    }
    if (s->bdat_active) {
        smtpd_reply(s, "503 5.5.1 Error: RCPT after BDAT");
        return;
    }
    if (s->rcpt_count >= var_smtpd_recipient_limit) {
        smtpd_reply(s, "452 4.5.3 Error: too many recipients");
        return;
    }
    if (smtpd_anvil_rcpt(s)) /* smtpd_client_recipient_rate_limit */
        return;
    vbuf_init(&addr, 0);
    if (parse_path(s, args, "TO:", var_smtputf8_enable ? ADDR_ALLOW_UTF8 : 0, &addr, &rest, "RCPT TO:<address>") < 0)
        goto out;
    while ((param = next_word(&rest)) != NULL) {
        char *eq = strchr(param, '=');
        char *val = eq ? eq + 1 : NULL;

        if (eq)
            *eq = 0;
        if (!s->esmtp || smtpd_ehlo_discarded("DSN") || val == NULL) {
            smtpd_reply(s, "555 5.5.4 Unsupported option: %s", param);
            goto out;
        }
        if (strcasecmp(param, "NOTIFY") == 0) {
            if (seen_notify++ || (notify = parse_notify(val)) < 0) {
                smtpd_reply(s, "501 5.5.4 Bad NOTIFY parameter syntax");
                goto out;
            }
        } else if (strcasecmp(param, "ORCPT") == 0) {
            if (orcpt || (orcpt = parse_orcpt(val)) == NULL) {
                smtpd_reply(s, "501 5.5.4 Bad ORCPT parameter syntax");
                goto out;
            }
        } else {
            smtpd_reply(s, "555 5.5.4 Unsupported option: %s", param);
            goto out;
        }
    }
    if (addr.len == 0) {
        smtpd_reply(s, "501 5.1.3 Bad recipient address syntax");
        goto out;
    }
    if (has_8bit(vbuf_str(&addr)) && !s->smtputf8) {
        smtpd_reply(s, "553 5.6.7 Must declare SMTPUTF8 to send UTF8 address");
        goto out;
    }
    if ((reply = smtpd_check_rcpt(s, vbuf_str(&addr))) != NULL) {
        smtpd_reject(s, "RCPT", reply, vbuf_str(&addr));
        goto out;
    }
    if (s->queue == NULL && queue_start(s) < 0) {
        smtpd_reply(s, "451 4.3.0 Error: queue file write error");
        goto out;
    }
    smtpd_queue_rcpt(s, vbuf_str(&addr), orcpt, notify);
    if (s->rcpt_count++ == 0)
        s->first_rcpt = xstrdup(vbuf_str(&addr));
    smtpd_reply(s, "250 2.1.5 Ok");
out:
    xfree(orcpt);
    vbuf_release(&addr);
}

/* ---- DATA, BDAT ---- */

/* cmd_data - RFC 5321 §4.1.1.4 */
static void cmd_data(smtpd_session *s, char *args)
{
    const char *reply;

    if (!no_args(s, args, "DATA"))
        return;
    if (s->sender == NULL) {
        smtpd_reply(s, "503 5.5.1 Error: need MAIL command");
        return;
    }
    if (s->bdat_active) {
        smtpd_reply(s, "503 5.5.1 Error: DATA after BDAT");
        return;
    }
    if (s->rcpt_count == 0) {
        smtpd_reply(s, "554 5.5.1 Error: no valid recipients");
        return;
    }
    /* RFC 3030 §3: BINARYMIME content can only travel with BDAT. */
    if (s->body == SMTPD_BODY_BINARY) {
        smtpd_reply(s, "503 5.5.1 Error: BODY=BINARYMIME requires BDAT");
        return;
    }
    if ((reply = smtpd_check_data(s)) != NULL) {
        smtpd_reject(s, "DATA", reply, NULL);
        return;
    }
    if (s->queue == NULL) {
        smtpd_reply(s, "451 4.3.0 Error: queue file write error");
        return;
    }
    smtpd_data_start(s);
    smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* cmd_bdat - RFC 3030 §2 */
static void cmd_bdat(smtpd_session *s, char *args)
{
    char *argv[4];
    int argc = 0;
    char *cursor = args, *w;

    while (args && argc < 4 && (w = next_word(&cursor)) != NULL)
        argv[argc++] = w;
    if (args && next_word(&cursor) != NULL)
        argc = 4; /* too many: a syntax error */
    smtpd_bdat_cmd(s, argc, argv);
}

/* ---- small commands ---- */

/* cmd_rset - RFC 5321 §4.1.1.5 */
static void cmd_rset(smtpd_session *s, char *args)
{
    if (!no_args(s, args, "RSET"))
        return;
    smtpd_reset(s);
    smtpd_reply(s, "250 2.0.0 Ok");
}

/* cmd_noop - RFC 5321 §4.1.1.9: any argument is ignored */
static void cmd_noop(smtpd_session *s, char *args)
{
    smtpd_reply(s, "250 2.0.0 Ok");
}

/* cmd_quit - RFC 5321 §4.1.1.10 */
static void cmd_quit(smtpd_session *s, char *args)
{
    smtpd_reply(s, "221 2.0.0 Bye");
    s->mode = SMTPD_MODE_QUIT;
}

/* cmd_help - RFC 5321 §4.1.1.8: 214 with the table's text */
static void cmd_help(smtpd_session *s, char *args)
{
    const smtpd_cmd *c;

    if (args && *args) {
        for (c = smtpd_cmds; c < smtpd_cmds + SMTPD_NCMDS; c++) {
            if ((c->verb && strcasecmp(c->verb, args) == 0) || (c->keyword && strcasecmp(c->keyword, args) == 0)) {
                if (c->keyword && !keyword_offered(s, c) && !(c->verb && !c->keyword))
                    break;
                smtpd_reply(s, "214 2.0.0 %s", c->help);
                return;
            }
        }
        smtpd_reply(s, "504 5.5.1 HELP topic not known: %s", args);
        return;
    }
    stream_printf(s->out, "214-%s\r\n", s->esmtp ? "2.0.0 Commands and extensions:" : "Commands and extensions:");
    for (c = smtpd_cmds; c < smtpd_cmds + SMTPD_NCMDS; c++) {
        if (c->keyword && !keyword_offered(s, c))
            continue;
        stream_printf(s->out, "214-  %s\r\n", c->help);
    }
    smtpd_reply(s, "214 2.0.0 End of HELP; see RFC 5321");
}

/* vrfy_common - VRFY/EXPN answered from the recipient tables */
static void vrfy_common(smtpd_session *s, char *args, const char *verb)
{
    vbuf addr;
    const char *why;
    size_t used;
    int known;

    if (var_disable_vrfy_command) {
        /* RFC 5321 §3.5.3: 252 when the server won't say. */
        smtpd_reply(s, "252 2.0.0 Cannot %s user; try RCPT to attempt delivery", verb);
        return;
    }
    if (args == NULL || *args == 0) {
        smtpd_reply(s, "501 5.5.4 Syntax: %s address", verb);
        return;
    }
    vbuf_init(&addr, 0);
    if (addr_parse_path(args, ADDR_NO_BRACKETS, &addr, &used, &why) < 0 || args[used] != 0 || addr.len == 0) {
        smtpd_reply(s, "501 5.1.3 Bad recipient address syntax");
        vbuf_release(&addr);
        return;
    }
    known = smtpd_check_known_rcpt(vbuf_str(&addr));
    if (known > 0)
        smtpd_reply(s, "%s 2.0.0 <%s>", strcmp(verb, "EXPN") == 0 ? "250" : "252", vbuf_str(&addr));
    else if (known == 0)
        smtpd_reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown", vbuf_str(&addr));
    else
        smtpd_reply(s, "450 4.3.0 <%s>: Temporary lookup failure", vbuf_str(&addr));
    vbuf_release(&addr);
}

/* cmd_vrfy - RFC 5321 §4.1.1.6 */
static void cmd_vrfy(smtpd_session *s, char *args)
{
    vrfy_common(s, args, "VRFY");
}

/* cmd_expn - RFC 5321 §4.1.1.7 */
static void cmd_expn(smtpd_session *s, char *args)
{
    vrfy_common(s, args, "EXPN");
}

/* cmd_starttls - RFC 3207 §4 */
static void cmd_starttls(smtpd_session *s, char *args)
{
    if (!no_args(s, args, "STARTTLS"))
        return;
    if (s->tls_active) {
        smtpd_reply(s, "554 5.5.1 Error: TLS already active");
        return;
    }
    if (s->standalone || !smtpd_tls_available()) {
        smtpd_reply(s, "502 5.5.1 Error: command not implemented");
        return;
    }
    smtpd_reply(s, "220 2.0.0 Ready to start TLS");
    s->mode = SMTPD_MODE_TLS;
    s->tls_started = 0;
}

/* cmd_etrn - RFC 1985 (etrn.c does the work) */
static void cmd_etrn(smtpd_session *s, char *args)
{
    smtpd_etrn_cmd(s, args);
}

/* cmd_auth - RFC 4954 (auth.c does the work) */
static void cmd_auth(smtpd_session *s, char *args)
{
    char *argv[3];
    int argc = 0;
    char *cursor = args, *w;

    while (args && argc < 3 && (w = next_word(&cursor)) != NULL)
        argv[argc++] = w;
    smtpd_auth_cmd(s, argc, argv);
}

/* ---- dispatch ---- */

/* count_index - the counter slot of a table row */
static int count_index(const smtpd_cmd *c)
{
    int i = (int) (c - smtpd_cmds);

    return i < COUNT_UNKNOWN ? i : COUNT_UNKNOWN;
}

/* line_ok - strict command line syntax: no NUL, no control characters */
static const char *line_bad(const char *line, size_t len, int flags)
{
    size_t i;

    if (strlen(line) != len)
        return "500 5.5.2 Error: NUL character in command";
    if ((flags & STREAM_LINE_LF) && var_smtpd_forbid_bare_newline)
        return "500 5.5.2 Error: bare <LF> received";
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char) line[i];

        if ((c < 32 && c != '\t') || c == 127)
            return "500 5.5.2 Error: control character in command";
    }
    return NULL;
}

/* smtpd_command - dispatch one command line */
static void smtpd_command(smtpd_session *s, char *line, size_t len, int flags)
{
    const smtpd_cmd *c;
    const char *bad;
    char *args;
    size_t vlen;

    s->last_failed = 0;
    if ((bad = line_bad(line, len, flags)) != NULL) {
        smtpd_reply(s, "%s", bad);
        s->count_all[COUNT_UNKNOWN]++;
        s->count_commands_all++;
        return;
    }
    vlen = strcspn(line, " ");
    args = line[vlen] ? line + vlen + 1 : NULL;
    line[vlen] = 0;
    for (c = smtpd_cmds; c < smtpd_cmds + SMTPD_NCMDS; c++)
        if (c->verb && strcasecmp(c->verb, line) == 0)
            break;
    s->count_commands_all++;
    if (c == smtpd_cmds + SMTPD_NCMDS) {
        s->last_cmd = "UNKNOWN";
        s->count_all[COUNT_UNKNOWN]++;
        smtpd_reply(s, "502 5.5.2 Error: command not recognized");
        return;
    }
    s->last_cmd = c->verb;
    s->count_all[count_index(c)]++;
    if (len > SMTPD_CMD_LINE_MAX && strcmp(c->verb, "AUTH") != 0) {
        smtpd_reply(s, "500 5.5.2 Error: line too long");
        return;
    }
    if (c->keyword && !keyword_offered(s, c)) {
        if (strcmp(c->verb, "AUTH") == 0 && var_smtpd_sasl_auth_enable && !s->tls_active)
            smtpd_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
        else if (strcmp(c->verb, "VRFY") == 0 && var_disable_vrfy_command)
            c->fn(s, args);
        else
            smtpd_reply(s, "502 5.5.1 Error: command not implemented");
    } else if (tls_required() && !s->tls_active && !(c->flags & CMD_PRE_TLS)) {
        smtpd_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
    } else {
        c->fn(s, args);
    }
    if (!s->last_failed) {
        s->count_ok[count_index(c)]++;
        s->count_commands_ok++;
    }
    if (c->flags & CMD_JUNK) {
        if (++s->junk_count > var_smtpd_junk_command_limit)
            s->error_count++;
    }
    if (c->flags & CMD_LAST)
        s->flush_now = 1;
}

/* smtpd_count_line - the "ehlo=1 mail=1 ... commands=N" part of the disconnect line */
void smtpd_count_line(smtpd_session *s, vbuf *out)
{
    size_t i;

    for (i = 0; i <= COUNT_UNKNOWN; i++) {
        const char *name;
        char lower[16];
        size_t j;

        if (s->count_all[i] == 0)
            continue;
        name = i < SMTPD_NCMDS && i < COUNT_UNKNOWN ? smtpd_cmds[i].verb : "unknown";
        if (name == NULL)
            continue;
        for (j = 0; name[j] && j < sizeof(lower) - 1; j++)
            lower[j] = (char) tolower((unsigned char) name[j]);
        lower[j] = 0;
        if (s->count_ok[i] == s->count_all[i])
            vbuf_printf(out, " %s=%d", lower, s->count_ok[i]);
        else
            vbuf_printf(out, " %s=%d/%d", lower, s->count_ok[i], s->count_all[i]);
    }
    if (s->count_commands_ok == s->count_commands_all)
        vbuf_printf(out, " commands=%d", s->count_commands_ok);
    else
        vbuf_printf(out, " commands=%d/%d", s->count_commands_ok, s->count_commands_all);
}

/* smtpd_timeout - RFC 5321 §4.5.3.2: give up on an idle client */
void smtpd_timeout(smtpd_session *s)
{
    msg_info("timeout after %s from %s", s->last_cmd, s->namaddr);
    if (s->mode != SMTPD_MODE_TLS && s->mode != SMTPD_MODE_TLS_WRAP) {
        smtpd_reply(s, "421 4.4.2 %s Error: timeout exceeded", var_myhostname);
        smtpd_reply_flush(s);
    }
    s->mode = SMTPD_MODE_QUIT;
}

/* early_talker - did the client send anything before the greeting (RFC 5321 §4.3.1) */
static int early_talker(smtpd_session *s)
{
    char c;
    ssize_t n;

    if (s->standalone || s->tls_active)
        return 0; /* wrapper mode: the client spoke TLS first */
    n = recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0 || stream_input_buffered(s->in) > 0;
}

/* lost - the client went away or broke the connection */
static int lost(smtpd_session *s, int st)
{
    if (st == STREAM_TIMEOUT)
        msg_info("timeout after %s from %s", s->last_cmd, s->namaddr);
    else
        msg_info("lost connection after %s from %s", s->last_cmd, s->namaddr);
    return SMTPD_WANT_CLOSE;
}

/* flush_status - flush; what to wait for if output is stuck */
static int flush_blocked(smtpd_session *s)
{
    int st = stream_flush(s->out);

    if (st == STREAM_AGAIN)
        return 1;
    if (st < 0)
        s->io_error = 1;
    return 0;
}

/* read_command - read and handle one line in command or AUTH mode; 0 or SMTPD_WANT_* */
static int read_command(smtpd_session *s)
{
    int flags;
    ssize_t n;

    /* RFC 2920 §3.1: flush when the client has nothing more queued. */
    if (s->flush_now || stream_input_buffered(s->in) == 0 || stream_output_pending(s->out) > 8192) {
        s->flush_now = 0;
        if (flush_blocked(s))
            return SMTPD_WANT_WRITE;
        if (s->io_error)
            return lost(s, STREAM_ERR);
    }
    n = stream_getline(s->in, &s->line, SMTPD_AUTH_LINE_MAX, &flags);
    if (n == STREAM_AGAIN)
        return stream_output_pending(s->out) ? SMTPD_WANT_WRITE : SMTPD_WANT_READ;
    if (n < 0)
        return lost(s, (int) n);
    if (flags & STREAM_LINE_NOEOL)
        return lost(s, STREAM_EOF);
    if (s->swallow) {
        /* The tail of an over-long line: dropped. */
        if (!(flags & STREAM_LINE_TOOLONG))
            s->swallow = 0;
        return 0;
    }
    if (flags & STREAM_LINE_TOOLONG) {
        s->swallow = 1;
        s->count_all[COUNT_UNKNOWN]++;
        s->count_commands_all++;
        if (s->mode == SMTPD_MODE_AUTH) {
            smtpd_sasl_free(s);
            s->mode = SMTPD_MODE_CMD;
        }
        smtpd_reply(s, "500 5.5.2 Error: line too long");
        smtpd_error(s);
        return 0;
    }
    if (s->mode == SMTPD_MODE_AUTH) {
        if (strlen(vbuf_str(&s->line)) != s->line.len) {
            smtpd_sasl_free(s);
            s->mode = SMTPD_MODE_CMD;
            smtpd_reply(s, "501 5.5.2 Error: NUL character in response");
        } else {
            smtpd_auth_response(s, vbuf_str(&s->line));
        }
    } else {
        smtpd_command(s, s->line.data, s->line.len, flags);
    }
    if (s->last_failed && s->mode != SMTPD_MODE_QUIT)
        smtpd_error(s);
    return 0;
}

/* smtpd_greet - send the banner, or refuse an early talker */
static int smtpd_greet(smtpd_session *s)
{
    const char *reply;

    if (early_talker(s)) {
        msg_info("improper command pipelining after CONNECT from %s", s->namaddr);
        smtpd_reply(s, "554 5.5.0 Error: SMTP protocol synchronization");
        s->mode = SMTPD_MODE_QUIT;
        return 0;
    }
    if (!var_smtpd_delay_reject && (reply = smtpd_check_client(s)) != NULL) {
        /* Postfix-style: the client learns it at its next command. */
        smtpd_log_reject(s, "CONNECT", reply, NULL);
        s->rejected_client = 1;
        snprintf(s->rejected_client_reply, sizeof(s->rejected_client_reply), "%s", reply);
    }
    stream_printf(s->out, "220 %s\r\n", var_smtpd_banner);
    s->mode = SMTPD_MODE_CMD;
    s->flush_now = 1;
    return 0;
}

/* smtpd_run - see smtpd.h */
int smtpd_run(smtpd_session *s)
{
    int r, want;

    for (;;) {
        if (s->sleep_ms > 0)
            return SMTPD_WANT_SLEEP;
        if (s->io_error)
            return lost(s, STREAM_ERR);
        switch (s->mode) {
        case SMTPD_MODE_GREET:
            smtpd_greet(s);
            break;
        case SMTPD_MODE_TLS_WRAP:
        case SMTPD_MODE_TLS:
            if (!s->tls_started) {
                if (flush_blocked(s))
                    return SMTPD_WANT_WRITE;
                /* RFC 3207 §4.2 (and CVE-2011-0411): nothing sent before the handshake counts. */
                stream_discard_input(s->in);
                smtpd_tls_start(s);
                s->tls_started = 1;
            }
            r = smtpd_tls_step(s, &want);
            if (r == 0)
                return want;
            if (r < 0) {
                msg_info("lost connection after STARTTLS from %s", s->namaddr);
                return SMTPD_WANT_CLOSE;
            }
            s->tls_active = 1;
            /* RFC 3207 §4.2: forget everything learned before TLS, AUTH included. */
            smtpd_reset(s);
            xfree(s->sasl_method);
            xfree(s->sasl_username);
            s->sasl_method = s->sasl_username = NULL;
            vbuf_reset(&s->helo);
            s->esmtp = 0;
            s->mode = s->mode == SMTPD_MODE_TLS_WRAP ? SMTPD_MODE_GREET : SMTPD_MODE_CMD;
            break;
        case SMTPD_MODE_CMD:
        case SMTPD_MODE_AUTH:
            if ((r = read_command(s)) != 0)
                return r;
            break;
        case SMTPD_MODE_DATA:
            if ((r = smtpd_data_input(s)) != 0)
                return r;
            break;
        case SMTPD_MODE_BDAT:
            if ((r = smtpd_bdat_input(s)) != 0)
                return r;
            break;
        case SMTPD_MODE_QUEUE_WAIT:
            return SMTPD_WANT_QUEUE;
        case SMTPD_MODE_QUIT:
            if (flush_blocked(s))
                return SMTPD_WANT_WRITE;
            return SMTPD_WANT_CLOSE;
        }
    }
}
