/*
 * tls.c - smtpd's STARTTLS (RFC 3207) and wrapper-mode glue over the shared
 * TLS module (include/tls.h).
 *
 * Offers: the server context, built once before the chroot from the
 * smtpd_tls_* parameters (protocols, ciphers, certificate chain, session
 * cache and tickets for resumption); a non-blocking handshake step for the
 * event loop; and the negotiated details for the log and Received:.
 *
 * Trusts the key and certificate files; trusts nothing from the peer. The
 * protocol code has already discarded plaintext the client pipelined after
 * STARTTLS before the handshake starts.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "smtpd.h"
#include "tls.h"

struct smtpd_tls {
    tls_session *pending; /* handshake not finished yet */
    char desc[256];
};

static tls_ctx *server_ctx;

/* smtpd_tls_init - build the server context; 0, or -1 when TLS can't be offered */
int smtpd_tls_init(void)
{
    int level = tls_level_parse(var_smtpd_tls_security_level ? var_smtpd_tls_security_level : "");

    if (level < 0) {
        msg_warn("unknown smtpd_tls_security_level \"%s\"; TLS disabled", var_smtpd_tls_security_level);
        return -1;
    }
    if (level == TLS_LEV_NONE && !var_smtpd_tls_wrappermode)
        return 0;
    if ((server_ctx = tls_server_init()) == NULL) {
        msg_warn("cannot set up the TLS server context; TLS disabled");
        return -1;
    }
    return 0;
}

/* smtpd_tls_available - can STARTTLS be offered */
int smtpd_tls_available(void)
{
    return server_ctx != NULL;
}

/* smtpd_tls_start - see smtpd.h */
void smtpd_tls_start(smtpd_session *s)
{
    smtpd_tls *t = xcalloc(1, sizeof(*t));

    t->pending = server_ctx ? tls_server_begin(server_ctx, s->in, s->namaddr) : NULL;
    s->tls = t;
}

/* smtpd_tls_step - see smtpd.h */
int smtpd_tls_step(smtpd_session *s, int *want)
{
    smtpd_tls *t = s->tls;
    const tls_info *info;

    if (t == NULL || t->pending == NULL)
        return -1;
    switch (tls_handshake_step(t->pending)) {
    case TLS_HS_WANT_READ:
        *want = SMTPD_WANT_READ;
        return 0;
    case TLS_HS_WANT_WRITE:
        *want = SMTPD_WANT_WRITE;
        return 0;
    case TLS_HS_DONE:
        t->pending = NULL; /* installed on the stream now */
        info = tls_get_info(s->in);
        if (info)
            snprintf(t->desc, sizeof(t->desc), "%s with cipher %s (%d/%d bits)", info->protocol, info->cipher,
                     info->bits, info->alg_bits);
        tls_log_established(s->in, "from", s->namaddr);
        return 1;
    default:
        tls_session_free(t->pending);
        t->pending = NULL;
        return -1;
    }
}

/* smtpd_tls_free - end TLS on the session (best-effort close_notify) */
void smtpd_tls_free(smtpd_session *s)
{
    if (s->tls == NULL)
        return;
    if (s->tls->pending)
        tls_session_free(s->tls->pending);
    else if (tls_get_info(s->in))
        tls_shutdown(s->in);
    xfree(s->tls);
    s->tls = NULL;
}

/* smtpd_tls_description - "TLSv1.3 with cipher X (256/256 bits)" */
const char *smtpd_tls_description(const smtpd_session *s)
{
    return s->tls ? s->tls->desc : "";
}

/* smtpd_tls_protocol - e.g. "TLSv1.3" */
const char *smtpd_tls_protocol(const smtpd_session *s)
{
    const tls_info *info = tls_get_info(s->in);

    return info ? info->protocol : "";
}

/* smtpd_tls_cipher - the negotiated cipher name */
const char *smtpd_tls_cipher(const smtpd_session *s)
{
    const tls_info *info = tls_get_info(s->in);

    return info ? info->cipher : "";
}
