/*
 * auth.c - SMTP AUTH client (RFC 4954) with PLAIN (RFC 4616) and LOGIN.
 *
 * Credentials come from smtp_sasl_password_maps, looked up as Postfix does:
 * the next hop as given ("[host]:port", "domain"), then the server's host
 * name. Values are "user:password". Plaintext mechanisms are used over an
 * unencrypted connection only when smtp_sasl_security_options allows them
 * (the default "noplaintext" forbids it); with TLS,
 * smtp_sasl_tls_security_options applies.
 */
#include <string.h>

#include "base64.h"
#include "maps.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "smtp_auth.h"
#include "strutil.h"

static maps *password_maps;

/* smtp_auth_init - open the password table (before the privilege drop) */
void smtp_auth_init(void)
{
    if (var_smtp_sasl_auth_enable && password_maps == NULL)
        password_maps = maps_open("smtp_sasl_password_maps", var_smtp_sasl_password_maps, 0);
}

/* option_set - does a security option list contain opt? */
static int option_set(const char *list, const char *opt)
{
    char *copy = xstrdup(list), *cp = copy, *tok;
    int found = 0;

    while ((tok = str_token(&cp, CHARS_COMMA_SPACE)) != NULL)
        if (str_case_eq(tok, opt))
            found = 1;
    xfree(copy);
    return found;
}

/* find_credentials - "user:password" for this server, or NULL */
static char *find_credentials(const smtp_session *ss, const char *nexthop, int *status)
{
    const char *keys[3];
    vbuf hostkey;
    char *result = NULL;

    vbuf_init(&hostkey, 0);
    vbuf_printf(&hostkey, "%s", ss->host);
    keys[0] = nexthop;
    keys[1] = hostkey.data;
    keys[2] = NULL;
    *status = MAP_NOTFOUND;
    for (int i = 0; keys[i] && result == NULL; i++) {
        const char *v = maps_find(password_maps, keys[i], status);

        if (*status == MAP_ERROR)
            break;
        if (v)
            result = xstrdup(v);
    }
    vbuf_release(&hostkey);
    return result;
}

/* auth_step - send a line, expect a reply class; returns the code or <= 0 */
static int auth_step(smtp_session *ss, const char *line, smtp_reply *r)
{
    stream_set_timeout(ss->s, (int) var_smtp_helo_timeout);
    if (stream_puts(ss->s, line) < 0 || stream_puts(ss->s, "\r\n") < 0 || stream_flush(ss->s) < 0) {
        ss->broken = 1;
        return -1;
    }
    return smtp_reply_read(ss->s, r, NULL);
}

/* smtp_auth - authenticate when credentials exist; 0 ok or nothing to do */
int smtp_auth(smtp_session *ss, const char *nexthop, vbuf *why)
{
    const char *opts = ss->tls ? var_smtp_sasl_tls_security_options : var_smtp_sasl_security_options;
    int status;
    char *cred, *colon;
    smtp_reply r;
    vbuf buf, line;
    int code = 0, ret = -1;

    if (password_maps == NULL)
        smtp_auth_init();
    cred = find_credentials(ss, nexthop, &status);
    if (status == MAP_ERROR) {
        vbuf_set(why, "smtp_sasl_password_maps lookup error");
        return -1;
    }
    if (cred == NULL)
        return 0;                       /* no password for this server */
    if (!(ss->features & SMTP_FEAT_AUTH)) {
        xfree(cred);
        return 0;                       /* Postfix: go on without AUTH */
    }
    if (option_set(opts, "noplaintext")) {
        vbuf_reset(why);
        vbuf_printf(why, "SASL authentication to %s[%s] needs TLS: plaintext mechanisms are not allowed (%s)",
                    ss->host, ss->addr, ss->tls ? "smtp_sasl_tls_security_options" : "smtp_sasl_security_options");
        xfree(cred);
        return -1;
    }
    colon = strchr(cred, ':');
    if (colon == NULL) {
        vbuf_reset(why);
        vbuf_printf(why, "malformed smtp_sasl_password_maps entry for %s (expect user:password)", ss->host);
        xfree(cred);
        return -1;
    }
    *colon = 0;
    smtp_reply_init(&r);
    vbuf_init(&buf, 0);
    vbuf_init(&line, 0);
    if (ss->auth_mechs & SMTP_AUTH_PLAIN) {
        /* RFC 4616: authzid NUL authcid NUL passwd. */
        vbuf_append(&buf, "", 1);
        vbuf_puts(&buf, cred);
        vbuf_append(&buf, "", 1);
        vbuf_puts(&buf, colon + 1);
        vbuf_puts(&line, "AUTH PLAIN ");
        base64_encode(&line, buf.data, buf.len);
        code = auth_step(ss, line.data, &r);
    } else if (ss->auth_mechs & SMTP_AUTH_LOGIN) {
        code = auth_step(ss, "AUTH LOGIN", &r);
        if (code == 334) {
            base64_encode(&line, cred, strlen(cred));
            code = auth_step(ss, line.data, &r);
        }
        if (code == 334) {
            vbuf_reset(&line);
            base64_encode(&line, colon + 1, strlen(colon + 1));
            code = auth_step(ss, line.data, &r);
        }
    } else {
        vbuf_reset(why);
        vbuf_printf(why, "SASL authentication failed: server %s[%s] offered no supported mechanism", ss->host,
                    ss->addr);
        goto out;
    }
    vbuf_reset(why);
    if (code == 235) {
        ss->authenticated = 1;
        ret = 0;
    } else if (code <= 0) {
        ss->broken = 1;
        vbuf_printf(why, "lost connection with %s[%s] during SASL authentication", ss->host, ss->addr);
    } else {
        vbuf_printf(why, "SASL authentication failed; server %s[%s] said: %s", ss->host, ss->addr,
                    vbuf_str(&r.text));
    }
out:
    /* Don't leave the password around in memory. */
    explicit_bzero(buf.data, buf.cap);
    explicit_bzero(line.data, line.cap);
    explicit_bzero(cred, strlen(cred) + 1 + strlen(colon + 1));
    xfree(cred);
    vbuf_release(&buf);
    vbuf_release(&line);
    smtp_reply_free(&r);
    return ret;
}
