/*
 * tls - TLS over OpenSSL 3 as a stream transport (see tls.h).
 *
 * Offers server and client contexts built from the smtpd_tls_* and
 * smtp_tls_* parameters (or explicit settings), blocking and step-by-step
 * handshakes on a stream, peer verification (chain and RFC 6125 names),
 * session resumption (server: tickets plus the in-process cache; client: an
 * in-process cache keyed by destination), what was negotiated, and
 * Postfix-style log lines.
 *
 * Trusts the configured key, certificate and CA files. Everything from the
 * peer is checked by OpenSSL; names taken from certificates are sanitised
 * before they reach a log line or a header. Plaintext that arrived before
 * the handshake is never read as TLS data (RFC 3207 §6).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "tls.h"

#define TLS_SESSION_MAGIC 0x4b54534cu /* "KTSL" */
#define TLS_CLIENT_CACHE_MAX 1000
#define TLS_NAME_MAX 256

typedef struct tls_cache_entry {
    char *key;
    SSL_SESSION *sess;
    time_t expires;
} tls_cache_entry;

struct tls_ctx {
    SSL_CTX *ssl_ctx;
    int server;
    int loglevel;
    int proto_mask, mand_proto_mask; /* client: per level; server: one */
    char *ciphers, *mand_ciphers;
    long cache_timeout;
    tls_cache_entry *cache; /* client sessions */
    size_t ncache;
};

struct tls_session {
    unsigned magic;
    tls_ctx *ctx;
    SSL *ssl;
    stream *s;
    int server;
    int level;
    char **match;    /* NULL-terminated copy */
    char *cache_key; /* client; NULL: no reuse */
    char *peer;
    int failed; /* fatal error: no close_notify */
    int installed;
    tls_info info;
    char protocol[32];
    char cipher[128];
    char peer_cn[TLS_NAME_MAX];
    char issuer_cn[TLS_NAME_MAX];
    char verify_error[256];
};

static const stream_transport tls_transport;

/* ---- small helpers ---- */

/* empty - NULL or "" */
static int empty(const char *s)
{
    return s == NULL || *s == 0;
}

/* tls_print_errors - log and clear OpenSSL's error queue */
static void tls_print_errors(const char *what, const char *peer)
{
    unsigned long e;
    char buf[256];
    int any = 0;

    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        msg_warn("%s%s%s: %s", what, peer ? " " : "", peer ? peer : "", buf);
        any = 1;
    }
    if (!any)
        msg_warn("%s%s%s", what, peer ? " " : "", peer ? peer : "");
}

/* tls_level_parse - see tls.h */
int tls_level_parse(const char *text)
{
    static const char *const names[] = {"none", "may", "encrypt", "verify", "secure"};

    if (text == NULL || *text == 0)
        return TLS_LEV_NONE;
    for (int i = 0; i < 5; i++)
        if (strcasecmp(text, names[i]) == 0)
            return i;
    return -1;
}

/* tls_level_name - the parameter word for a level */
const char *tls_level_name(int level)
{
    static const char *const names[] = {"none", "may", "encrypt", "verify", "secure"};

    return level >= 0 && level <= TLS_LEV_SECURE ? names[level] : "unknown";
}

/* tls_trust_name - Postfix's word for the peer's trust */
const char *tls_trust_name(int trust)
{
    switch (trust) {
    case TLS_TRUST_UNTRUSTED:
        return "Untrusted";
    case TLS_TRUST_TRUSTED:
        return "Trusted";
    case TLS_TRUST_VERIFIED:
        return "Verified";
    default:
        return "Anonymous";
    }
}

/* next_token - the next item of a list separated by blanks, commas or colons */
static const char *next_token(const char **cp, size_t *len)
{
    const char *p = *cp, *start;

    while (*p && strchr(" \t\r\n,:", *p))
        p++;
    if (*p == 0) {
        *cp = p;
        return NULL;
    }
    start = p;
    while (*p && !strchr(" \t\r\n,:", *p))
        p++;
    *len = (size_t) (p - start);
    *cp = p;
    return start;
}

/* proto_bit - the mask bit of a protocol name; 0 for SSLv2/SSLv3; -1 unknown */
static int proto_bit(const char *name, size_t len)
{
    static const struct {
        const char *name;
        int bit;
    } tab[] = {{"SSLv2", 0},
               {"SSLv3", 0},
               {"TLSv1", TLS_PROTO_TLSv1},
               {"TLSv1.1", TLS_PROTO_TLSv1_1},
               {"TLSv1.2", TLS_PROTO_TLSv1_2},
               {"TLSv1.3", TLS_PROTO_TLSv1_3}};

    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
        if (strlen(tab[i].name) == len && strncmp(tab[i].name, name, len) == 0)
            return tab[i].bit;
    return -1;
}

/*
 * tls_protocol_mask - Postfix protocol syntax: names to include ("TLSv1.2
 * TLSv1.3"), "!name" to exclude, ">=name" / "<=name" for bounds.
 */
int tls_protocol_mask(const char *spec, int *mask)
{
    const char *cp = spec ? spec : "";
    const char *tok;
    size_t len;
    int include = 0, exclude = 0, lo = 0, hi = TLS_PROTO_ALL;

    while ((tok = next_token(&cp, &len)) != NULL) {
        int op = 0, bit;

        if (len >= 2 && (strncmp(tok, ">=", 2) == 0 || strncmp(tok, "<=", 2) == 0)) {
            op = tok[0];
            tok += 2;
            len -= 2;
        } else if (tok[0] == '!') {
            op = '!';
            tok++;
            len--;
        }
        if ((bit = proto_bit(tok, len)) < 0) {
            msg_warn("invalid TLS protocol name \"%.*s\" in \"%s\"", (int) len, tok, spec);
            return -1;
        }
        switch (op) {
        case '>': /* this and later versions */
            lo |= bit ? TLS_PROTO_ALL & ~(bit - 1) : TLS_PROTO_ALL;
            break;
        case '<': /* this and earlier versions */
            hi &= bit ? (bit << 1) - 1 : 0;
            break;
        case '!':
            exclude |= bit;
            break;
        default:
            include |= bit;
            break;
        }
    }
    *mask = (include ? include : TLS_PROTO_ALL) & ~exclude & hi;
    if (lo)
        *mask &= lo;
    if (*mask == 0) {
        msg_warn("TLS protocol list \"%s\" leaves no protocol enabled", spec);
        return -1;
    }
    return 0;
}

/* proto_version - OpenSSL version number of a mask bit */
static int proto_version(int bit)
{
    switch (bit) {
    case TLS_PROTO_TLSv1:
        return TLS1_VERSION;
    case TLS_PROTO_TLSv1_1:
        return TLS1_1_VERSION;
    case TLS_PROTO_TLSv1_2:
        return TLS1_2_VERSION;
    default:
        return TLS1_3_VERSION;
    }
}

/* apply_protocols - min/max version and holes of a mask on one SSL */
static int apply_protocols(SSL *ssl, int mask)
{
    static const struct {
        int bit;
        uint64_t op;
    } holes[] = {{TLS_PROTO_TLSv1, SSL_OP_NO_TLSv1},
                 {TLS_PROTO_TLSv1_1, SSL_OP_NO_TLSv1_1},
                 {TLS_PROTO_TLSv1_2, SSL_OP_NO_TLSv1_2},
                 {TLS_PROTO_TLSv1_3, SSL_OP_NO_TLSv1_3}};
    int lo = 0, hi = 0;

    for (int b = TLS_PROTO_TLSv1; b <= TLS_PROTO_TLSv1_3; b <<= 1) {
        if (mask & b) {
            if (!lo)
                lo = b;
            hi = b;
        }
    }
    if (!SSL_set_min_proto_version(ssl, proto_version(lo)) || !SSL_set_max_proto_version(ssl, proto_version(hi)))
        return -1;
    for (size_t i = 0; i < sizeof(holes) / sizeof(holes[0]); i++) {
        if (holes[i].bit > lo && holes[i].bit < hi && !(mask & holes[i].bit))
            SSL_set_options(ssl, holes[i].op);
    }
    return 0;
}

/* cipher_list - the OpenSSL list for a grade minus exclusions; NULL if bad */
static char *cipher_list(const char *grade, const char *exclude)
{
    const char *base;
    vbuf b;
    const char *cp = exclude ? exclude : "";
    const char *tok;
    size_t len;
    char *list;

    if (empty(grade) || strcasecmp(grade, "medium") == 0)
        base = var_tls_medium_cipherlist ? var_tls_medium_cipherlist
                                         : "HIGH:MEDIUM:!aNULL:!eNULL:!MD5:!RC4:!3DES:@STRENGTH";
    else if (strcasecmp(grade, "high") == 0)
        base = var_tls_high_cipherlist ? var_tls_high_cipherlist : "HIGH:!aNULL:!eNULL:!MD5:!RC4:!3DES:@STRENGTH";
    else if (strcasecmp(grade, "low") == 0 || strcasecmp(grade, "export") == 0) {
        msg_warn("TLS cipher grade \"%s\" is no longer offered; using \"medium\"", grade);
        return cipher_list("medium", exclude);
    } else {
        msg_warn("invalid TLS cipher grade \"%s\": use \"high\" or \"medium\"", grade);
        return NULL;
    }
    vbuf_init(&b, 0);
    vbuf_puts(&b, base);
    while ((tok = next_token(&cp, &len)) != NULL) {
        vbuf_puts(&b, ":!");
        vbuf_append(&b, tok, len);
    }
    list = vbuf_steal(&b);
    vbuf_release(&b);
    return list;
}

/* load_certs - key and certificate chain(s) into the context; 0 or -1 */
static int load_certs(SSL_CTX *c, const char *cert, const char *key, const char *chains, const char *who)
{
    if (!empty(chains)) {
        const char *cp = chains, *tok;
        size_t len;

        while ((tok = next_token(&cp, &len)) != NULL) {
            char *file = xstrndup(tok, len);
            int ok = SSL_CTX_use_certificate_chain_file(c, file) == 1 &&
                     SSL_CTX_use_PrivateKey_file(c, file, SSL_FILETYPE_PEM) == 1;

            if (!ok) {
                msg_warn("%s: cannot load key and certificate chain from %s", who, file);
                xfree(file);
                tls_print_errors("TLS library problem", NULL);
                return -1;
            }
            xfree(file);
        }
    } else if (!empty(cert)) {
        if (SSL_CTX_use_certificate_chain_file(c, cert) != 1) {
            msg_warn("%s: cannot load certificate from %s", who, cert);
            tls_print_errors("TLS library problem", NULL);
            return -1;
        }
        if (SSL_CTX_use_PrivateKey_file(c, empty(key) ? cert : key, SSL_FILETYPE_PEM) != 1) {
            msg_warn("%s: cannot load private key from %s", who, empty(key) ? cert : key);
            tls_print_errors("TLS library problem", NULL);
            return -1;
        }
    } else {
        return 0;
    }
    if (SSL_CTX_check_private_key(c) != 1) {
        msg_warn("%s: private key does not match the certificate", who);
        tls_print_errors("TLS library problem", NULL);
        return -1;
    }
    return 0;
}

/* load_cas - trust anchors; 0 or -1 */
static int load_cas(SSL_CTX *c, const char *CAfile, const char *CApath, const char *who)
{
    if (empty(CAfile) && empty(CApath))
        return 0;
    if (SSL_CTX_load_verify_locations(c, empty(CAfile) ? NULL : CAfile, empty(CApath) ? NULL : CApath) != 1) {
        msg_warn("%s: cannot load CA certificates from %s%s%s", who, empty(CAfile) ? "" : CAfile,
                 !empty(CAfile) && !empty(CApath) ? " and " : "", empty(CApath) ? "" : CApath);
        tls_print_errors("TLS library problem", NULL);
        return -1;
    }
    return 0;
}

/* info_cb - handshake progress at loglevel 3 and up */
static void info_cb(const SSL *ssl, int where, int ret)
{
    tls_session *ts = SSL_get_app_data(ssl);

    if (ts && (where & SSL_CB_LOOP))
        msg_info("%s: %s", ts->peer, SSL_state_string_long(ssl));
    else if (ts && (where & SSL_CB_ALERT))
        msg_info("%s: TLS alert %s: %s", ts->peer, (where & SSL_CB_READ) ? "read" : "write",
                 SSL_alert_desc_string_long(ret));
}

/* accept_any_cert - ask for a client certificate without requiring a good one */
static int accept_any_cert(int ok, X509_STORE_CTX *store)
{
    (void) ok;
    (void) store;
    return 1;
}

/* new_ctx - common context set-up */
static tls_ctx *new_ctx(const SSL_METHOD *method, int server, int loglevel)
{
    tls_ctx *ctx = xcalloc(1, sizeof(*ctx));

    ctx->server = server;
    ctx->loglevel = loglevel;
    if ((ctx->ssl_ctx = SSL_CTX_new(method)) == NULL) {
        tls_print_errors("cannot create TLS context", NULL);
        xfree(ctx);
        return NULL;
    }
    /* No compression (CRIME), no renegotiation (a client DoS lever). */
    SSL_CTX_set_options(ctx->ssl_ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* The stream's output buffer may move and be written in parts. */
    SSL_CTX_set_mode(ctx->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (loglevel >= 3)
        SSL_CTX_set_info_callback(ctx->ssl_ctx, info_cb);
    return ctx;
}

/* tls_ctx_free - release a context and its cached sessions */
void tls_ctx_free(tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    for (size_t i = 0; i < ctx->ncache; i++) {
        xfree(ctx->cache[i].key);
        SSL_SESSION_free(ctx->cache[i].sess);
    }
    xfree(ctx->cache);
    SSL_CTX_free(ctx->ssl_ctx);
    xfree(ctx->ciphers);
    xfree(ctx->mand_ciphers);
    xfree(ctx);
}

/* tls_server_init_config - a server context from explicit settings */
tls_ctx *tls_server_init_config(const tls_server_config *cfg)
{
    static const unsigned char sid_ctx[] = "kite-smtpd";
    tls_ctx *ctx;
    SSL_CTX *c;

    if (empty(cfg->cert_file) && empty(cfg->chain_files)) {
        msg_warn("TLS server: no certificate configured (smtpd_tls_cert_file or "
                 "smtpd_tls_chain_files); TLS is not available");
        return NULL;
    }
    if ((ctx = new_ctx(TLS_server_method(), 1, cfg->loglevel)) == NULL)
        return NULL;
    c = ctx->ssl_ctx;
    if (tls_protocol_mask(cfg->protocols, &ctx->proto_mask) < 0 ||
        (ctx->ciphers = cipher_list(cfg->ciphers, cfg->exclude_ciphers)) == NULL ||
        load_certs(c, cfg->cert_file, cfg->key_file, cfg->chain_files, "TLS server") < 0 ||
        load_cas(c, cfg->CAfile, cfg->CApath, "TLS server") < 0)
        goto bad;
    if (SSL_CTX_set_cipher_list(c, ctx->ciphers) != 1) {
        msg_warn("TLS server: invalid cipher list \"%s\"", ctx->ciphers);
        tls_print_errors("TLS library problem", NULL);
        goto bad;
    }
    if (cfg->preempt_cipherlist)
        SSL_CTX_set_options(c, SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (cfg->ask_ccert) {
        if (!empty(cfg->CAfile)) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->CAfile);

            if (names)
                SSL_CTX_set_client_CA_list(c, names);
        }
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, accept_any_cert);
    }
    /* Resumption: tickets (keys live in this process) and the session cache. */
    SSL_CTX_set_session_id_context(c, sid_ctx, sizeof(sid_ctx) - 1);
    ctx->cache_timeout = cfg->session_cache_timeout;
    if (cfg->session_cache_timeout > 0) {
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
        SSL_CTX_set_timeout(c, cfg->session_cache_timeout);
        SSL_CTX_sess_set_cache_size(c, 20000);
        SSL_CTX_set_num_tickets(c, 1);
    } else {
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(c, 0);
    }
    return ctx;

bad:
    tls_ctx_free(ctx);
    return NULL;
}

/* tls_server_init - a server context from the smtpd_tls_* parameters */
tls_ctx *tls_server_init(void)
{
    tls_server_config cfg;
    int mandatory = tls_level_parse(var_smtpd_tls_security_level) >= TLS_LEV_ENCRYPT;

    memset(&cfg, 0, sizeof(cfg));
    cfg.cert_file = var_smtpd_tls_cert_file;
    cfg.key_file = var_smtpd_tls_key_file;
    cfg.chain_files = var_smtpd_tls_chain_files;
    cfg.CAfile = var_smtpd_tls_CAfile;
    cfg.CApath = var_smtpd_tls_CApath;
    cfg.protocols = mandatory ? var_smtpd_tls_mandatory_protocols : var_smtpd_tls_protocols;
    cfg.ciphers = mandatory ? var_smtpd_tls_mandatory_ciphers : var_smtpd_tls_ciphers;
    cfg.exclude_ciphers = mandatory ? var_smtpd_tls_mandatory_exclude_ciphers : var_smtpd_tls_exclude_ciphers;
    cfg.session_cache_timeout = var_smtpd_tls_session_cache_timeout;
    cfg.ask_ccert = var_smtpd_tls_ask_ccert;
    cfg.preempt_cipherlist = var_tls_preempt_cipherlist;
    cfg.loglevel = (int) var_smtpd_tls_loglevel;
    return tls_server_init_config(&cfg);
}

/* client_cache_find - a live cached session for key, or NULL */
static SSL_SESSION *client_cache_find(tls_ctx *ctx, const char *key)
{
    time_t now = time(NULL);

    for (size_t i = 0; i < ctx->ncache; i++) {
        tls_cache_entry *e = &ctx->cache[i];

        if (strcmp(e->key, key) != 0)
            continue;
        if (e->expires > now && SSL_SESSION_is_resumable(e->sess))
            return e->sess;
        xfree(e->key);
        SSL_SESSION_free(e->sess);
        ctx->cache[i] = ctx->cache[--ctx->ncache];
        return NULL;
    }
    return NULL;
}

/* client_cache_store - keep sess (our reference) under key, replacing any */
static void client_cache_store(tls_ctx *ctx, const char *key, SSL_SESSION *sess)
{
    time_t now = time(NULL);
    size_t i;

    for (i = 0; i < ctx->ncache; i++) {
        if (strcmp(ctx->cache[i].key, key) == 0) {
            SSL_SESSION_free(ctx->cache[i].sess);
            ctx->cache[i].sess = sess;
            ctx->cache[i].expires = now + ctx->cache_timeout;
            return;
        }
    }
    if (ctx->ncache == TLS_CLIENT_CACHE_MAX) {
        size_t old = 0; /* evict the entry expiring first */

        for (i = 1; i < ctx->ncache; i++)
            if (ctx->cache[i].expires < ctx->cache[old].expires)
                old = i;
        xfree(ctx->cache[old].key);
        SSL_SESSION_free(ctx->cache[old].sess);
        ctx->cache[old] = ctx->cache[--ctx->ncache];
    }
    if (ctx->ncache % 16 == 0)
        ctx->cache = xreallocarray(ctx->cache, ctx->ncache + 16, sizeof(*ctx->cache));
    ctx->cache[ctx->ncache].key = xstrdup(key);
    ctx->cache[ctx->ncache].sess = sess;
    ctx->cache[ctx->ncache].expires = now + ctx->cache_timeout;
    ctx->ncache++;
}

/* client_new_session - OpenSSL hands us a resumable session (ticket) */
static int client_new_session(SSL *ssl, SSL_SESSION *sess)
{
    tls_session *ts = SSL_get_app_data(ssl);

    if (ts == NULL || ts->cache_key == NULL || ts->ctx->cache_timeout <= 0)
        return 0;
    client_cache_store(ts->ctx, ts->cache_key, sess);
    return 1; /* we keep the reference */
}

/* tls_client_init_config - a client context from explicit settings */
tls_ctx *tls_client_init_config(const tls_client_config *cfg)
{
    tls_ctx *ctx;
    SSL_CTX *c;

    if ((ctx = new_ctx(TLS_client_method(), 0, cfg->loglevel)) == NULL)
        return NULL;
    c = ctx->ssl_ctx;
    if (tls_protocol_mask(cfg->protocols, &ctx->proto_mask) < 0 ||
        tls_protocol_mask(cfg->mandatory_protocols, &ctx->mand_proto_mask) < 0 ||
        (ctx->ciphers = cipher_list(cfg->ciphers, cfg->exclude_ciphers)) == NULL ||
        (ctx->mand_ciphers = cipher_list(cfg->mandatory_ciphers, cfg->mandatory_exclude_ciphers)) == NULL ||
        load_certs(c, cfg->cert_file, cfg->key_file, cfg->chain_files, "TLS client") < 0 ||
        load_cas(c, cfg->CAfile, cfg->CApath, "TLS client") < 0)
        goto bad;
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    ctx->cache_timeout = cfg->session_cache_timeout;
    if (cfg->session_cache_timeout > 0) {
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(c, client_new_session);
    } else {
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    }
    return ctx;

bad:
    tls_ctx_free(ctx);
    return NULL;
}

/* tls_client_init - a client context from the smtp_tls_* parameters */
tls_ctx *tls_client_init(void)
{
    tls_client_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.cert_file = var_smtp_tls_cert_file;
    cfg.key_file = var_smtp_tls_key_file;
    cfg.chain_files = var_smtp_tls_chain_files;
    cfg.CAfile = var_smtp_tls_CAfile;
    cfg.CApath = var_smtp_tls_CApath;
    cfg.protocols = var_smtp_tls_protocols;
    cfg.mandatory_protocols = var_smtp_tls_mandatory_protocols;
    cfg.ciphers = var_smtp_tls_ciphers;
    cfg.mandatory_ciphers = var_smtp_tls_mandatory_ciphers;
    cfg.exclude_ciphers = var_smtp_tls_exclude_ciphers;
    cfg.mandatory_exclude_ciphers = var_smtp_tls_mandatory_exclude_ciphers;
    cfg.session_cache_timeout = var_smtp_tls_session_cache_timeout;
    cfg.loglevel = (int) var_smtp_tls_loglevel;
    return tls_client_init_config(&cfg);
}

/* ---- sessions ---- */

/* session_of - the TLS session installed on a stream, or NULL */
static tls_session *session_of(const stream *s)
{
    tls_session *ts = stream_transport_ctx(s);

    return ts && ts->magic == TLS_SESSION_MAGIC && ts->installed ? ts : NULL;
}

/* is_ip_literal - an IPv4 or IPv6 address */
static int is_ip_literal(const char *name)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* prepare_stream - flush our output, drop plaintext input; 0 or -1 */
static int prepare_stream(stream *s, const char *peer)
{
    size_t n;
    int st;

    if (session_of(s) != NULL) {
        msg_warn("TLS already active with %s", peer);
        return -1;
    }
    if ((st = stream_flush(s)) < 0) {
        msg_warn("cannot start TLS with %s: %s", peer, stream_strerror(st));
        return -1;
    }
    /* RFC 3207 §6: nothing sent before the handshake counts afterwards. */
    if ((n = stream_input_buffered(s)) > 0) {
        msg_warn("%s: discarding %zu bytes of plaintext sent before the TLS handshake", peer, n);
        stream_discard_input(s);
    }
    return 0;
}

/*
 * The socket BIO writes with write(2), which raises SIGPIPE when the peer
 * has gone. Ours is the same BIO with send(MSG_NOSIGNAL) for writes, so a
 * vanished peer is an ordinary error wherever the library is used.
 */
static BIO_METHOD *nosig_method;

/* nosig_write - write to the socket without SIGPIPE */
static int nosig_write(BIO *b, const char *buf, int len)
{
    int fd = -1;
    ssize_t n;

    (void) BIO_get_fd(b, &fd);
    do
        n = send(fd, buf, (size_t) (len > 0 ? len : 0), MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    BIO_clear_retry_flags(b);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_write(b);
    return (int) n;
}

/* socket_bio - a BIO on fd (not closed with the BIO) */
static BIO *socket_bio(int fd)
{
    BIO *bio;

    if (nosig_method == NULL) {
        const BIO_METHOD *sock = BIO_s_socket();
        BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "kite socket");

        if (m == NULL)
            return NULL;
        BIO_meth_set_write(m, nosig_write);
        BIO_meth_set_read(m, BIO_meth_get_read(sock));
        BIO_meth_set_puts(m, BIO_meth_get_puts(sock));
        BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(sock));
        BIO_meth_set_create(m, BIO_meth_get_create(sock));
        BIO_meth_set_destroy(m, BIO_meth_get_destroy(sock));
        nosig_method = m;
    }
    if ((bio = BIO_new(nosig_method)) == NULL)
        return NULL;
    BIO_set_fd(bio, fd, BIO_NOCLOSE);
    return bio;
}

/* new_session - SSL object bound to the stream's descriptor */
static tls_session *new_session(tls_ctx *ctx, stream *s, const char *peer)
{
    tls_session *ts = xcalloc(1, sizeof(*ts));
    BIO *bio;

    ts->magic = TLS_SESSION_MAGIC;
    ts->ctx = ctx;
    ts->s = s;
    ts->server = ctx->server;
    ts->peer = xstrdup(peer ? peer : "unknown");
    ERR_clear_error();
    if ((ts->ssl = SSL_new(ctx->ssl_ctx)) == NULL || (bio = socket_bio(stream_fd(s))) == NULL) {
        tls_print_errors("cannot create TLS session for", ts->peer);
        tls_session_free(ts);
        return NULL;
    }
    SSL_set_bio(ts->ssl, bio, bio);
    SSL_set_app_data(ts->ssl, ts);
    return ts;
}

/* tls_server_begin - set up a server handshake on s */
tls_session *tls_server_begin(tls_ctx *ctx, stream *s, const char *peer)
{
    tls_session *ts;

    if (!ctx->server)
        msg_panic("tls_server_begin: client context");
    if (prepare_stream(s, peer ? peer : "unknown") < 0 || (ts = new_session(ctx, s, peer)) == NULL)
        return NULL;
    ts->level = TLS_LEV_MAY;
    if (apply_protocols(ts->ssl, ctx->proto_mask) < 0) {
        tls_print_errors("cannot set TLS protocols for", ts->peer);
        tls_session_free(ts);
        return NULL;
    }
    SSL_set_accept_state(ts->ssl);
    return ts;
}

/* match_key - the cache key: destination, level and the names checked */
static char *match_key(const tls_client_opts *opts)
{
    vbuf b;
    char *key;

    vbuf_init(&b, 0);
    vbuf_printf(&b, "%s|%s|%s", opts->cache_key, tls_level_name(opts->level), opts->servername ? opts->servername : "");
    for (const char *const *m = opts->match; m && *m; m++)
        vbuf_printf(&b, "|%s", *m);
    vbuf_printf(&b, "|%s|%s|%s", opts->protocols ? opts->protocols : "", opts->ciphers ? opts->ciphers : "",
                opts->exclude_ciphers ? opts->exclude_ciphers : "");
    key = vbuf_steal(&b);
    vbuf_release(&b);
    return key;
}

/* tls_client_begin - set up a client handshake on s */
tls_session *tls_client_begin(tls_ctx *ctx, stream *s, const tls_client_opts *opts)
{
    tls_session *ts;
    const char *peer = opts->peer ? opts->peer : opts->servername ? opts->servername : "unknown";
    int mandatory = opts->level >= TLS_LEV_ENCRYPT;
    size_t nmatch = 0;

    if (ctx->server)
        msg_panic("tls_client_begin: server context");
    if (prepare_stream(s, peer) < 0 || (ts = new_session(ctx, s, peer)) == NULL)
        return NULL;
    ts->level = opts->level;
    for (const char *const *m = opts->match; m && *m; m++)
        nmatch++;
    ts->match = xcalloc(nmatch + 1, sizeof(char *));
    for (size_t i = 0; i < nmatch; i++)
        ts->match[i] = xstrdup(opts->match[i]);
    {
        int mask = mandatory ? ctx->mand_proto_mask : ctx->proto_mask;
        char *ciphers = NULL;
        int ok;

        if (!empty(opts->protocols) && tls_protocol_mask(opts->protocols, &mask) < 0) {
            tls_session_free(ts);
            return NULL;
        }
        if ((!empty(opts->ciphers) || !empty(opts->exclude_ciphers)) &&
            (ciphers = cipher_list(empty(opts->ciphers) ? "medium" : opts->ciphers, opts->exclude_ciphers)) == NULL) {
            tls_session_free(ts);
            return NULL;
        }
        ok = apply_protocols(ts->ssl, mask) == 0 && SSL_set_cipher_list(ts->ssl, ciphers     ? ciphers
                                                                                 : mandatory ? ctx->mand_ciphers
                                                                                             : ctx->ciphers) == 1;
        xfree(ciphers);
        if (!ok) {
            tls_print_errors("cannot set TLS protocols or ciphers for", ts->peer);
            tls_session_free(ts);
            return NULL;
        }
    }
    if (!empty(opts->servername) && !is_ip_literal(opts->servername) &&
        SSL_set_tlsext_host_name(ts->ssl, opts->servername) != 1) {
        tls_print_errors("cannot set TLS server name for", ts->peer);
        tls_session_free(ts);
        return NULL;
    }
    if (opts->level >= TLS_LEV_VERIFY) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ts->ssl);
        int hosts = 0, ip = 0;

        if (nmatch == 0) {
            msg_warn("TLS verification of %s requested without names to match", ts->peer);
            tls_session_free(ts);
            return NULL;
        }
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        for (size_t i = 0; i < nmatch; i++) {
            if (is_ip_literal(ts->match[i]))
                continue;
            if ((hosts++ ? X509_VERIFY_PARAM_add1_host(param, ts->match[i], 0)
                         : X509_VERIFY_PARAM_set1_host(param, ts->match[i], 0)) != 1) {
                tls_print_errors("cannot set TLS names to verify for", ts->peer);
                tls_session_free(ts);
                return NULL;
            }
        }
        /* With only address names, OpenSSL checks the (first) address. */
        for (size_t i = 0; i < nmatch && hosts == 0 && !ip; i++)
            if (is_ip_literal(ts->match[i]))
                ip = X509_VERIFY_PARAM_set1_ip_asc(param, ts->match[i]) == 1;
        SSL_set_verify(ts->ssl, SSL_VERIFY_PEER, NULL);
    }
    if (!empty(opts->cache_key) && ctx->cache_timeout > 0) {
        SSL_SESSION *cached;

        ts->cache_key = match_key(opts);
        if ((cached = client_cache_find(ctx, ts->cache_key)) != NULL)
            (void) SSL_set_session(ts->ssl, cached);
    }
    SSL_set_connect_state(ts->ssl);
    return ts;
}

/* tls_session_free - free a session; uninstalls it from its stream if installed */
void tls_session_free(tls_session *ts)
{
    if (ts == NULL)
        return;
    if (ts->installed && stream_transport_ctx(ts->s) == ts)
        stream_set_transport(ts->s, NULL, NULL);
    if (ts->ssl)
        SSL_free(ts->ssl);
    for (char **m = ts->match; m && *m; m++)
        xfree(*m);
    xfree(ts->match);
    xfree(ts->cache_key);
    xfree(ts->peer);
    ts->magic = 0;
    xfree(ts);
}

/* sanitize - printable ASCII copy, bounded */
static void sanitize(char *dst, size_t size, const unsigned char *src, int len)
{
    size_t j = 0;

    for (int i = 0; i < len && j + 1 < size; i++)
        dst[j++] = src[i] >= 0x20 && src[i] < 0x7f ? (char) src[i] : '?';
    dst[j] = 0;
}

/* name_cn - the CN of a name, sanitised, into dst ("" if none) */
static void name_cn(const X509_NAME *name, char *dst, size_t size)
{
    int idx;
    const X509_NAME_ENTRY *e;
    unsigned char *utf8 = NULL;
    int len;

    dst[0] = 0;
    if (name == NULL || (idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1)) < 0)
        return;
    if ((e = X509_NAME_get_entry(name, idx)) == NULL)
        return;
    if ((len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e))) < 0)
        return;
    sanitize(dst, size, utf8, len);
    OPENSSL_free(utf8);
}

/* names_match - the certificate matches one of the session's names */
static int names_match(tls_session *ts, X509 *peer)
{
    for (char **m = ts->match; m && *m; m++) {
        if (is_ip_literal(*m) ? X509_check_ip_asc(peer, *m, 0) == 1
                              : X509_check_host(peer, *m, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1)
            return 1;
    }
    return 0;
}

/* handshake_done - record what was negotiated, enforce the level, install */
static int handshake_done(tls_session *ts)
{
    SSL *ssl = ts->ssl;
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    X509 *peer = SSL_get0_peer_certificate(ssl);
    long vr = SSL_get_verify_result(ssl);
    int chain_ok = peer != NULL && vr == X509_V_OK;

    snprintf(ts->protocol, sizeof(ts->protocol), "%s", SSL_get_version(ssl));
    snprintf(ts->cipher, sizeof(ts->cipher), "%s", cipher ? SSL_CIPHER_get_name(cipher) : "none");
    ts->info.protocol = ts->protocol;
    ts->info.cipher = ts->cipher;
    ts->info.bits = cipher ? SSL_CIPHER_get_bits(cipher, &ts->info.alg_bits) : 0;
    ts->info.reused = SSL_session_reused(ssl);
    ts->info.peer_cert = peer != NULL;
    ts->info.peer_cn = ts->peer_cn;
    ts->info.issuer_cn = ts->issuer_cn;
    ts->info.verify_error = ts->verify_error;
    ts->verify_error[0] = 0;
    if (peer) {
        name_cn(X509_get_subject_name(peer), ts->peer_cn, sizeof(ts->peer_cn));
        name_cn(X509_get_issuer_name(peer), ts->issuer_cn, sizeof(ts->issuer_cn));
    }
    if (peer == NULL)
        ts->info.trust = TLS_TRUST_ANONYMOUS;
    else if (!chain_ok) {
        ts->info.trust = TLS_TRUST_UNTRUSTED;
        snprintf(ts->verify_error, sizeof(ts->verify_error), "%s", X509_verify_cert_error_string(vr));
    } else if (!ts->server && names_match(ts, peer))
        ts->info.trust = TLS_TRUST_VERIFIED;
    else {
        ts->info.trust = TLS_TRUST_TRUSTED;
        if (!ts->server && ts->match && ts->match[0])
            snprintf(ts->verify_error, sizeof(ts->verify_error), "certificate name does not match");
    }
    if (ts->ctx->loglevel >= 2 && peer)
        msg_info("%s: %s certificate: subject_CN=%s, issuer_CN=%s%s%s", ts->peer, ts->server ? "client" : "server",
                 ts->peer_cn, ts->issuer_cn, ts->verify_error[0] ? ", problem: " : "", ts->verify_error);
    /* A resumed session skips the checks; enforce the level on the result. */
    if (!ts->server && ts->level >= TLS_LEV_VERIFY && ts->info.trust != TLS_TRUST_VERIFIED) {
        msg_warn("server certificate verification failed for %s: %s", ts->peer,
                 peer ? ts->verify_error : "no certificate");
        return TLS_HS_ERROR;
    }
    stream_set_transport(ts->s, &tls_transport, ts);
    ts->installed = 1;
    return TLS_HS_DONE;
}

/* tls_handshake_step - advance the handshake as far as it goes without waiting */
int tls_handshake_step(tls_session *ts)
{
    int r, err;
    const char *what = ts->server ? "SSL_accept error from" : "SSL_connect error to";

    if (ts->installed)
        return TLS_HS_DONE;
    if (ts->failed)
        return TLS_HS_ERROR;
    ERR_clear_error();
    errno = 0;
    r = SSL_do_handshake(ts->ssl);
    if (r == 1) {
        r = handshake_done(ts);
        if (r != TLS_HS_DONE)
            ts->failed = 1;
        return r;
    }
    err = SSL_get_error(ts->ssl, r);
    if (err == SSL_ERROR_WANT_READ)
        return TLS_HS_WANT_READ;
    if (err == SSL_ERROR_WANT_WRITE)
        return TLS_HS_WANT_WRITE;
    ts->failed = 1;
    if (!ts->server && SSL_get_verify_result(ts->ssl) != X509_V_OK && ts->level >= TLS_LEV_VERIFY) {
        msg_warn("server certificate verification failed for %s: %s", ts->peer,
                 X509_verify_cert_error_string(SSL_get_verify_result(ts->ssl)));
        ERR_clear_error();
    } else if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        if (errno)
            msg_warn("%s %s: %m", what, ts->peer);
        else
            msg_warn("%s %s: lost connection", what, ts->peer);
    } else {
        tls_print_errors(what, ts->peer);
    }
    return TLS_HS_ERROR;
}

/* run_handshake - step with poll() until done, failed or timed out */
static int run_handshake(tls_session *ts, int timeout)
{
    time_t deadline = timeout > 0 ? time(NULL) + timeout : 0;

    for (;;) {
        int r = tls_handshake_step(ts);
        struct pollfd pfd;
        int ms = -1;

        if (r == TLS_HS_DONE)
            return 0;
        if (r == TLS_HS_ERROR)
            return -1;
        if (deadline) {
            time_t left = deadline - time(NULL);

            if (left <= 0) {
                msg_warn("TLS handshake with %s: timeout", ts->peer);
                ts->failed = 1;
                return -1;
            }
            ms = (int) left * 1000;
        }
        pfd.fd = stream_fd(ts->s);
        pfd.events = r == TLS_HS_WANT_READ ? POLLIN : POLLOUT;
        pfd.revents = 0;
        if (poll(&pfd, 1, ms) < 0 && errno != EINTR) {
            msg_warn("TLS handshake with %s: poll: %m", ts->peer);
            ts->failed = 1;
            return -1;
        }
    }
}

/* tls_server_start - blocking server handshake */
tls_session *tls_server_start(tls_ctx *ctx, stream *s, const char *peer, int timeout)
{
    tls_session *ts = tls_server_begin(ctx, s, peer);

    if (ts && run_handshake(ts, timeout) < 0) {
        tls_session_free(ts);
        return NULL;
    }
    return ts;
}

/* tls_client_start - blocking client handshake */
tls_session *tls_client_start(tls_ctx *ctx, stream *s, const tls_client_opts *opts, int timeout)
{
    tls_session *ts = tls_client_begin(ctx, s, opts);

    if (ts && run_handshake(ts, timeout) < 0) {
        tls_session_free(ts);
        return NULL;
    }
    return ts;
}

/* ---- the transport ---- */

/* tp_error - map an SSL I/O failure to the stream transport convention */
static ssize_t tp_error(tls_session *ts, int ret, short *want, int writing)
{
    int err = SSL_get_error(ts->ssl, ret);
    unsigned long e;

    switch (err) {
    case SSL_ERROR_WANT_READ:
        *want = POLLIN;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        *want = POLLOUT;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN: /* close_notify */
        if (writing) {
            errno = EPIPE;
            return -1;
        }
        return 0;
    case SSL_ERROR_SYSCALL:
        ts->failed = 1;
        if (ERR_peek_error() == 0) {
            if (errno == 0 && !writing)
                return 0; /* EOF without close_notify */
            if (errno == 0)
                errno = EPIPE;
            return -1;
        }
        break;
    default:
        ts->failed = 1;
        e = ERR_peek_error();
        if (!writing && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            ERR_clear_error();
            return 0;
        }
        break;
    }
    tls_print_errors(writing ? "TLS write error to" : "TLS read error from", ts->peer);
    errno = EPROTO;
    return -1;
}

/* tp_read - the transport's read */
static ssize_t tp_read(void *ctx, int fd, void *buf, size_t len, short *want)
{
    tls_session *ts = ctx;
    size_t n = 0;
    int r;

    (void) fd;
    ERR_clear_error();
    errno = 0;
    if ((r = SSL_read_ex(ts->ssl, buf, len, &n)) == 1)
        return (ssize_t) n;
    return tp_error(ts, r, want, 0);
}

/* tp_write - the transport's write */
static ssize_t tp_write(void *ctx, int fd, const void *buf, size_t len, short *want)
{
    tls_session *ts = ctx;
    size_t n = 0;
    int r;

    (void) fd;
    ERR_clear_error();
    errno = 0;
    if ((r = SSL_write_ex(ts->ssl, buf, len, &n)) == 1)
        return (ssize_t) n;
    return tp_error(ts, r, want, 1);
}

/* tp_pending - decrypted bytes OpenSSL holds */
static size_t tp_pending(void *ctx)
{
    tls_session *ts = ctx;
    int n = SSL_pending(ts->ssl);

    return n > 0 ? (size_t) n : 0;
}

static const stream_transport tls_transport = {tp_read, tp_write, tp_pending};

/* ---- what was negotiated ---- */

/* tls_get_info - see tls.h */
const tls_info *tls_get_info(const stream *s)
{
    tls_session *ts = session_of(s);

    return ts ? &ts->info : NULL;
}

/* tls_log_established - Postfix's "... TLS connection established ..." line */
void tls_log_established(const stream *s, const char *direction, const char *peer)
{
    const tls_info *i = tls_get_info(s);

    if (i == NULL)
        return;
    msg_info("%s TLS connection established %s %s: %s with cipher %s (%d/%d bits)", tls_trust_name(i->trust), direction,
             peer, i->protocol, i->cipher, i->bits, i->alg_bits);
}

/* tls_received_clause - the TLS comment of a Received: header */
void tls_received_clause(const stream *s, vbuf *out)
{
    const tls_info *i = tls_get_info(s);

    if (i == NULL)
        return;
    vbuf_printf(out, "(using %s with cipher %s (%d/%d bits))", i->protocol, i->cipher, i->bits, i->alg_bits);
}

/* tls_shutdown - see tls.h */
void tls_shutdown(stream *s)
{
    tls_session *ts = session_of(s);

    if (ts == NULL)
        return;
    if (!ts->failed && !(SSL_get_shutdown(ts->ssl) & SSL_SENT_SHUTDOWN)) {
        ERR_clear_error();
        (void) SSL_shutdown(ts->ssl); /* one attempt; the peer may be gone */
        ERR_clear_error();
    }
    tls_session_free(ts);
}

/* tls_detach - free the session without a word to the peer */
void tls_detach(stream *s)
{
    tls_session *ts = session_of(s);

    if (ts != NULL)
        tls_session_free(ts);
}

/* ---- client policy helpers ---- */

/* tls_policy_free - release a parsed policy's strings */
void tls_policy_free(tls_policy *p)
{
    xfree(p->match);
    xfree(p->protocols);
    xfree(p->ciphers);
    xfree(p->exclude);
    xfree(p->servername);
    memset(p, 0, sizeof(*p));
}

/* tls_policy_parse - see tls.h */
int tls_policy_parse(const char *text, tls_policy *out)
{
    static const char *const attrs[] = {"match", "protocols", "ciphers", "exclude", "servername"};
    const char *cp = text ? text : "";
    const char *tok;
    size_t len;
    char *level;

    memset(out, 0, sizeof(*out));
    while (*cp == ' ' || *cp == '\t')
        cp++;
    len = strcspn(cp, " \t\r\n");
    if (len == 0) {
        msg_warn("empty TLS policy");
        return -1;
    }
    level = xstrndup(cp, len);
    out->level = tls_level_parse(level);
    if (out->level < 0 || strchr(level, '=') != NULL) {
        msg_warn("invalid TLS security level \"%.100s\" in policy \"%.200s\"", level, text);
        xfree(level);
        out->level = 0;
        return -1;
    }
    xfree(level);
    cp += len;
    for (;;) {
        char **slots[] = {&out->match, &out->protocols, &out->ciphers, &out->exclude, &out->servername};
        const char *eq;
        size_t k;

        while (*cp == ' ' || *cp == '\t' || *cp == '\r' || *cp == '\n')
            cp++;
        if (*cp == 0)
            return 0;
        tok = cp;
        len = strcspn(cp, " \t\r\n");
        cp += len;
        eq = memchr(tok, '=', len);
        for (k = 0; eq && k < sizeof(attrs) / sizeof(attrs[0]); k++)
            if (strlen(attrs[k]) == (size_t) (eq - tok) && strncmp(attrs[k], tok, (size_t) (eq - tok)) == 0)
                break;
        if (eq == NULL || k == sizeof(attrs) / sizeof(attrs[0])) {
            msg_warn("unknown TLS policy attribute \"%.*s\" in \"%.200s\"", (int) (len > 100 ? 100 : len), tok, text);
            tls_policy_free(out);
            return -1;
        }
        if (eq + 1 == tok + len) {
            msg_warn("empty TLS policy attribute \"%s\" in \"%.200s\"", attrs[k], text);
            tls_policy_free(out);
            return -1;
        }
        if (*slots[k] != NULL) {
            msg_warn("TLS policy attribute \"%s\" given twice in \"%.200s\"", attrs[k], text);
            tls_policy_free(out);
            return -1;
        }
        *slots[k] = xstrndup(eq + 1, (size_t) (tok + len - eq - 1));
        if (k == 1) { /* protocols: check now, not at connect time */
            int mask;

            if (tls_protocol_mask(*slots[k], &mask) < 0) {
                tls_policy_free(out);
                return -1;
            }
        } else if (k == 2) { /* ciphers: a grade we know */
            char *list = cipher_list(*slots[k], NULL);

            if (list == NULL) {
                tls_policy_free(out);
                return -1;
            }
            xfree(list);
        }
    }
}

/* tls_match_names - see tls.h */
char **tls_match_names(const char *spec, const char *hostname, const char *nexthop)
{
    const char *cp = spec ? spec : "";
    const char *tok;
    size_t len, n = 0;
    char **names = xcalloc(1, sizeof(char *));

    while ((tok = next_token(&cp, &len)) != NULL) {
        char *name;

        if (len == 8 && strncasecmp(tok, "hostname", 8) == 0)
            name = empty(hostname) ? NULL : xstrdup(hostname);
        else if (len == 7 && strncasecmp(tok, "nexthop", 7) == 0)
            name = empty(nexthop) ? NULL : xstrdup(nexthop);
        else if (len == 11 && strncasecmp(tok, "dot-nexthop", 11) == 0) {
            vbuf b;

            name = NULL;
            if (!empty(nexthop)) {
                vbuf_init(&b, 0);
                vbuf_printf(&b, ".%s", nexthop);
                name = vbuf_steal(&b);
                vbuf_release(&b);
            }
        } else
            name = xstrndup(tok, len);
        if (name == NULL)
            continue;
        names = xreallocarray(names, n + 2, sizeof(char *));
        names[n++] = name;
        names[n] = NULL;
    }
    return names;
}

/* tls_names_free - free a tls_match_names result */
void tls_names_free(char **names)
{
    for (char **p = names; p && *p; p++)
        xfree(*p);
    xfree(names);
}

/* tls_servername - see tls.h */
const char *tls_servername(const char *spec, const char *hostname, const char *nexthop)
{
    if (empty(spec))
        return NULL;
    if (strcasecmp(spec, "hostname") == 0)
        return empty(hostname) ? NULL : hostname;
    if (strcasecmp(spec, "nexthop") == 0)
        return empty(nexthop) ? NULL : nexthop;
    return spec;
}
