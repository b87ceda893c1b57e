/*
 * tls.c - STARTTLS (RFC 3207) and wrapper-mode TLS for smtpd, on OpenSSL 3.
 *
 * Offers the server context (built once before the chroot from
 * smtpd_tls_cert_file, _key_file, _chain_files, _protocols, _ciphers, with
 * an in-process session cache and tickets for resumption), a non-blocking
 * handshake step for the event loop, and a stream transport so the rest of
 * smtpd reads and writes through the stream as before.
 *
 * Trusts the key and certificate files; trusts nothing from the peer.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "smtpd.h"
#include "strutil.h"

struct smtpd_tls {
    SSL *ssl;
    char desc[256];
};

static SSL_CTX *server_ctx;

/* tls_log_errors - drain OpenSSL's error queue into the log */
static void tls_log_errors(const char *what)
{
    unsigned long e;
    char buf[256];

    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        msg_warn("%s: %s", what, buf);
    }
}

/* parse_min_version - ">=TLSv1.2" or "TLSv1.2 TLSv1.3" or "!SSLv3 ..." → the lowest version */
static int parse_min_version(const char *spec)
{
    static const struct {
        const char *name;
        int version;
    } v[] = {{"TLSv1", TLS1_VERSION}, {"TLSv1.1", TLS1_1_VERSION}, {"TLSv1.2", TLS1_2_VERSION},
             {"TLSv1.3", TLS1_3_VERSION}};
    char *copy = xstrdup(spec ? spec : ""), *cursor = copy, *w;
    int min = 0;
    size_t i;

    while ((w = str_token(&cursor, CHARS_COMMA_SPACE ":")) != NULL) {
        const char *name = w;

        if (strncmp(name, ">=", 2) == 0)
            name += 2;
        if (*name == '!')
            continue;
        for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
            if (strcasecmp(name, v[i].name) == 0 && (min == 0 || v[i].version < min))
                min = v[i].version;
    }
    xfree(copy);
    /* Never below TLS 1.2 unless asked for explicitly. */
    return min ? min : TLS1_2_VERSION;
}

/* cipher_list - Postfix grade names or an OpenSSL cipher string */
static const char *cipher_list(const char *spec)
{
    if (spec == NULL || *spec == 0 || strcasecmp(spec, "medium") == 0)
        return "HIGH:MEDIUM:!aNULL:!eNULL:!MD5:!RC4:!3DES:!DES";
    if (strcasecmp(spec, "high") == 0)
        return "HIGH:!aNULL:!eNULL:!MD5:!RC4:!3DES";
    return spec;
}

/* smtpd_tls_init - build the server context; 0, or -1 when TLS can't be offered */
int smtpd_tls_init(void)
{
    const char *level = var_smtpd_tls_security_level;
    static const unsigned char sid_ctx[] = "kite-smtpd";
    char *copy, *cursor, *w;

    if ((level == NULL || *level == 0 || strcasecmp(level, "none") == 0) && !var_smtpd_tls_wrappermode)
        return 0;
    if (var_smtpd_tls_cert_file == NULL || *var_smtpd_tls_cert_file == 0) {
        if (var_smtpd_tls_chain_files == NULL || *var_smtpd_tls_chain_files == 0) {
            msg_warn("TLS is enabled but no smtpd_tls_cert_file or smtpd_tls_chain_files is set; TLS disabled");
            return -1;
        }
    }
    server_ctx = SSL_CTX_new(TLS_server_method());
    if (server_ctx == NULL) {
        tls_log_errors("SSL_CTX_new");
        return -1;
    }
    SSL_CTX_set_min_proto_version(server_ctx, parse_min_version(var_smtpd_tls_protocols));
    SSL_CTX_set_options(server_ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_set_cipher_list(server_ctx, cipher_list(var_smtpd_tls_ciphers)) != 1)
        tls_log_errors("smtpd_tls_ciphers");
    /* Resumption: server-side cache and tickets. */
    SSL_CTX_set_session_cache_mode(server_ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(server_ctx, sid_ctx, sizeof(sid_ctx) - 1);
    SSL_CTX_set_timeout(server_ctx, var_smtpd_tls_session_cache_timeout);
    SSL_CTX_set_mode(server_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                                     | SSL_MODE_RELEASE_BUFFERS);
    if (var_smtpd_tls_chain_files && *var_smtpd_tls_chain_files) {
        copy = xstrdup(var_smtpd_tls_chain_files);
        cursor = copy;
        while ((w = str_token(&cursor, CHARS_COMMA_SPACE)) != NULL) {
            if (SSL_CTX_use_certificate_chain_file(server_ctx, w) != 1
                || SSL_CTX_use_PrivateKey_file(server_ctx, w, SSL_FILETYPE_PEM) != 1) {
                tls_log_errors(w);
                xfree(copy);
                goto fail;
            }
        }
        xfree(copy);
    } else {
        if (SSL_CTX_use_certificate_chain_file(server_ctx, var_smtpd_tls_cert_file) != 1) {
            tls_log_errors(var_smtpd_tls_cert_file);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(server_ctx, var_smtpd_tls_key_file, SSL_FILETYPE_PEM) != 1) {
            tls_log_errors(var_smtpd_tls_key_file);
            goto fail;
        }
    }
    if (SSL_CTX_check_private_key(server_ctx) != 1) {
        tls_log_errors("smtpd_tls_key_file");
        goto fail;
    }
    return 0;
fail:
    msg_warn("cannot load the TLS certificate or key; TLS disabled");
    SSL_CTX_free(server_ctx);
    server_ctx = NULL;
    return -1;
}

/* smtpd_tls_available - can STARTTLS be offered */
int smtpd_tls_available(void)
{
    return server_ctx != NULL;
}

/* ---- the stream transport ---- */

/* map_error - an SSL_get_error result as errno/want; returns -1 or 0 (EOF) */
static ssize_t map_error(SSL *ssl, int ret, short *want)
{
    switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        *want = POLLIN;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        *want = POLLOUT;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        ERR_clear_error();
        errno = EIO;
        return -1;
    }
}

/* tls_read - transport read */
static ssize_t tls_read(void *ctx, int fd, void *buf, size_t len, short *want)
{
    SSL *ssl = ctx;
    size_t n = 0;
    int ret = SSL_read_ex(ssl, buf, len, &n);

    if (ret == 1)
        return (ssize_t) n;
    return map_error(ssl, ret, want);
}

/* tls_write - transport write */
static ssize_t tls_write(void *ctx, int fd, const void *buf, size_t len, short *want)
{
    SSL *ssl = ctx;
    size_t n = 0;
    int ret = SSL_write_ex(ssl, buf, len, &n);

    if (ret == 1)
        return (ssize_t) n;
    if (map_error(ssl, ret, want) == 0)
        errno = EPIPE;
    return -1;
}

/* tls_pending - decrypted bytes OpenSSL holds */
static size_t tls_pending(void *ctx)
{
    int n = SSL_pending((SSL *) ctx);

    return n > 0 ? (size_t) n : 0;
}

static const stream_transport tls_transport = {tls_read, tls_write, tls_pending};

/* smtpd_tls_start - see smtpd.h */
void smtpd_tls_start(smtpd_session *s)
{
    smtpd_tls *t = xcalloc(1, sizeof(*t));

    t->ssl = SSL_new(server_ctx);
    if (t->ssl == NULL || SSL_set_fd(t->ssl, s->fd) != 1)
        msg_fatal("cannot create a TLS session");
    SSL_set_accept_state(t->ssl);
    s->tls = t;
}

/* smtpd_tls_step - see smtpd.h */
int smtpd_tls_step(smtpd_session *s, int *want)
{
    smtpd_tls *t = s->tls;
    int ret;
    const SSL_CIPHER *c;
    int bits, alg_bits = 0;

    if (t == NULL)
        return -1;
    ERR_clear_error();
    ret = SSL_do_handshake(t->ssl);
    if (ret != 1) {
        switch (SSL_get_error(t->ssl, ret)) {
        case SSL_ERROR_WANT_READ:
            *want = SMTPD_WANT_READ;
            return 0;
        case SSL_ERROR_WANT_WRITE:
            *want = SMTPD_WANT_WRITE;
            return 0;
        default:
            tls_log_errors("TLS handshake");
            msg_info("SSL_accept error from %s: -1", s->namaddr);
            return -1;
        }
    }
    c = SSL_get_current_cipher(t->ssl);
    bits = SSL_CIPHER_get_bits(c, &alg_bits);
    snprintf(t->desc, sizeof(t->desc), "%s with cipher %s (%d/%d bits)", SSL_get_version(t->ssl),
             SSL_CIPHER_get_name(c), bits, alg_bits);
    stream_set_transport(s->in, &tls_transport, t->ssl);
    return 1;
}

/* smtpd_tls_free - end TLS on the session (best-effort close_notify) */
void smtpd_tls_free(smtpd_session *s)
{
    if (s->tls == NULL)
        return;
    if (s->tls_active)
        (void) SSL_shutdown(s->tls->ssl);
    SSL_free(s->tls->ssl);
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
    return s->tls ? SSL_get_version(s->tls->ssl) : "";
}

/* smtpd_tls_cipher - the negotiated cipher name */
const char *smtpd_tls_cipher(const smtpd_session *s)
{
    return s->tls ? SSL_CIPHER_get_name(SSL_get_current_cipher(s->tls->ssl)) : "";
}
