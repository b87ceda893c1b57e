/*
 * tls.c - STARTTLS for the SMTP client (RFC 3207) by security level.
 *
 * The level comes from smtp_tls_policy_maps (the next hop as given, then
 * its bare domain) or smtp_tls_security_level. "may" uses TLS when offered
 * and falls back to plaintext when the handshake fails; "encrypt" and up
 * insist; "verify" checks the certificate against the server's host name,
 * "secure" against the next-hop domain (and its subdomains). The TLS
 * context is built before the privilege drop (keys).
 */
#include <string.h>

#include "maps.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "smtp_tls.h"
#include "strutil.h"
#include "tls.h"

static tls_ctx *client_ctx;
static int client_ctx_failed;
static maps *policy_maps;

/* smtp_tls_init - the client context and the policy table */
void smtp_tls_init(void)
{
    int level = tls_level_parse(var_smtp_tls_security_level);

    if (level < 0) {
        msg_warn("unknown smtp_tls_security_level \"%s\"; using \"none\"", var_smtp_tls_security_level);
        level = TLS_LEV_NONE;
    }
    if (*var_smtp_tls_policy_maps && policy_maps == NULL)
        policy_maps = maps_open("smtp_tls_policy_maps", var_smtp_tls_policy_maps, 0);
    if ((level > TLS_LEV_NONE || policy_maps) && client_ctx == NULL && !client_ctx_failed) {
        client_ctx = tls_client_init();
        if (client_ctx == NULL) {
            client_ctx_failed = 1;
            msg_warn("TLS client initialization failed: TLS deliveries will be deferred or sent in plaintext "
                     "(level may)");
        }
    }
}

/* smtp_tls_level_for - the security level for one next hop */
int smtp_tls_level_for(const char *nexthop)
{
    int level = tls_level_parse(var_smtp_tls_security_level);

    if (level < 0)
        level = TLS_LEV_NONE;
    if (policy_maps) {
        int status;
        const char *v = maps_find(policy_maps, nexthop, &status);

        if (v == NULL && status != MAP_ERROR && nexthop[0] == '[') {
            /* "[host]:port" -> also try the bare host */
            const char *close = strchr(nexthop, ']');

            if (close) {
                char *bare = xstrndup(nexthop + 1, (size_t) (close - nexthop - 1));

                v = maps_find(policy_maps, bare, &status);
                xfree(bare);
            }
        }
        if (status == MAP_ERROR) {
            msg_warn("smtp_tls_policy_maps lookup error for %s: using level encrypt", nexthop);
            return TLS_LEV_ENCRYPT;
        }
        if (v) {
            char *copy = xstrdup(v), *cp = copy, *word = str_token(&cp, CHARS_SPACE);
            int l = word ? tls_level_parse(word) : -1;

            if (l < 0)
                msg_warn("smtp_tls_policy_maps: bad level \"%s\" for %s", v, nexthop);
            else
                level = l;
            xfree(copy);
        }
    }
    return level;
}

/* nexthop_domain - the domain part of a next hop ("[a]:25" -> "a") */
static char *nexthop_domain(const char *nexthop)
{
    const char *p = nexthop;
    size_t n;

    if (*p == '[') {
        p++;
        n = strcspn(p, "]");
    } else {
        n = strcspn(p, ":");
    }
    return xstrndup(p, n);
}

/*
 * smtp_starttls - STARTTLS, handshake, policy checks. Returns 0 (TLS on,
 * or level may and the server refused STARTTLS), -1 (fail this server),
 * -2 (level may and the handshake failed: retry in plaintext).
 */
int smtp_starttls(smtp_session *ss, const char *nexthop, int level, vbuf *why)
{
    smtp_reply r;
    int code;
    tls_client_opts opts;
    const char *match[3] = {NULL, NULL, NULL};
    char *domain = NULL, *dotdomain = NULL;
    tls_session *sess;
    const tls_info *info;
    int ret = -1;

    vbuf_reset(why);
    if (client_ctx == NULL) {
        smtp_tls_init();
        if (client_ctx == NULL) {
            if (level == TLS_LEV_MAY)
                return 0;
            vbuf_printf(why, "TLS is required, but the TLS client is not configured correctly");
            return -1;
        }
    }
    smtp_reply_init(&r);
    stream_set_timeout(ss->s, (int) var_smtp_starttls_timeout);
    if (stream_puts(ss->s, "STARTTLS\r\n") < 0 || stream_flush(ss->s) < 0) {
        ss->broken = 1;
        vbuf_printf(why, "lost connection with %s[%s] while sending STARTTLS", ss->host, ss->addr);
        goto out;
    }
    code = smtp_reply_read(ss->s, &r, NULL);
    if (code <= 0) {
        ss->broken = 1;
        vbuf_printf(why, "lost connection with %s[%s] while sending STARTTLS", ss->host, ss->addr);
        goto out;
    }
    if (code != 220) {
        if (level == TLS_LEV_MAY) {
            ret = 0;
            goto out;
        }
        vbuf_printf(why, "TLS is required, but host %s[%s] refused to start TLS: %s", ss->host, ss->addr,
                    vbuf_str(&r.text));
        goto out;
    }
    memset(&opts, 0, sizeof(opts));
    opts.level = level;
    opts.servername = *var_smtp_tls_servername ? var_smtp_tls_servername : ss->host;
    opts.cache_key = ss->relay.data;
    opts.peer = ss->relay.data;
    if (level == TLS_LEV_VERIFY) {
        match[0] = ss->host;
    } else if (level == TLS_LEV_SECURE) {
        domain = nexthop_domain(nexthop);
        dotdomain = xmalloc(strlen(domain) + 2);
        dotdomain[0] = '.';
        memcpy(dotdomain + 1, domain, strlen(domain) + 1);
        match[0] = domain;
        match[1] = dotdomain;
    }
    opts.match = match[0] ? match : NULL;
    sess = tls_client_start(client_ctx, ss->s, &opts, (int) var_smtp_starttls_timeout);
    if (sess == NULL) {
        ss->broken = 1;
        vbuf_printf(why, "TLS handshake with %s[%s] failed", ss->host, ss->addr);
        ret = level == TLS_LEV_MAY ? -2 : -1;
        goto out;
    }
    info = tls_get_info(ss->s);
    if (level >= TLS_LEV_VERIFY && (info == NULL || info->trust != TLS_TRUST_VERIFIED)) {
        vbuf_printf(why, "Server certificate not verified for %s[%s]%s%s", ss->host, ss->addr,
                    info && *info->verify_error ? ": " : "", info ? info->verify_error : "");
        tls_shutdown(ss->s);
        ss->broken = 1;
        goto out;
    }
    tls_log_established(ss->s, "to", ss->relay.data);
    ss->tls = 1;
    ret = 0;
out:
    xfree(domain);
    xfree(dotdomain);
    smtp_reply_free(&r);
    return ret;
}

/* smtp_tls_session_free - close_notify and uninstall, before the stream closes */
void smtp_tls_session_free(smtp_session *ss)
{
    if (ss->s && ss->tls) {
        tls_shutdown(ss->s);
        ss->tls = 0;
    }
}
