/*
 * tls - TLS (OpenSSL 3) as a stream transport, for STARTTLS (RFC 3207) and
 * implicit TLS on both sides of SMTP.
 *
 * A tls_ctx holds the long-lived state of one side: certificates and keys,
 * trust anchors, protocol floor and ciphers, the session cache. Build it
 * once per process, before the privilege drop (keys are usually readable
 * by root only): tls_server_init() from the smtpd_tls_* parameters,
 * tls_client_init() from the smtp_tls_* parameters, or the *_config
 * variants with explicit settings.
 *
 * A handshake runs on a connected stream. Before it starts the stream is
 * flushed (the "220 Ready to start TLS" reply goes out in plaintext) and any
 * plaintext input still buffered is discarded: bytes a client pipelined
 * after STARTTLS must never be read as if they came over TLS (RFC 3207 §6;
 * the STARTTLS injection attack). When the handshake completes, the TLS
 * transport is installed on the stream, and all stream_* I/O is encrypted.
 *
 * Once installed, the session belongs to the stream: end it with
 * tls_shutdown(s) (or tls_detach(s)) before stream_close(s). The context
 * must outlive its sessions.
 *
 * Two ways to run a handshake:
 *   - blocking with a timeout: tls_server_start() / tls_client_start();
 *   - step by step from an event loop: tls_server_begin() /
 *     tls_client_begin(), then tls_handshake_step() whenever the descriptor
 *     is ready as the last step asked (TLS_HS_WANT_READ / _WANT_WRITE),
 *     until TLS_HS_DONE or TLS_HS_ERROR (then tls_session_free()).
 *
 * Peer verification (client side, level verify or secure): the chain must
 * lead to smtp_tls_CAfile / smtp_tls_CApath, and the certificate must match
 * one of the caller's names (RFC 6125, via X509_VERIFY_PARAM_set1_host;
 * a name that starts with "." matches any subdomain; an IP literal matches
 * an iPAddress entry). Below verify the handshake never fails on the
 * certificate, but tls_info() still tells whether the peer was Trusted
 * (chain ok) or Verified (chain and name ok).
 *
 * Trusts: the configured files. Everything from the peer goes through
 * OpenSSL's checks; peer names are printed only after sanitising.
 */
#ifndef KITE_TLS_H
#define KITE_TLS_H

#include "stream.h"
#include "vbuf.h"

/* Security levels (Postfix's smtp(d)_tls_security_level values). */
enum tls_level {
    TLS_LEV_NONE,    /* no TLS */
    TLS_LEV_MAY,     /* opportunistic, unauthenticated */
    TLS_LEV_ENCRYPT, /* mandatory, unauthenticated */
    TLS_LEV_VERIFY,  /* mandatory, peer name verified */
    TLS_LEV_SECURE   /* as verify (caller passes stricter names) */
};

/* tls_level_parse - "none", "may", "encrypt", "verify", "secure" ("" = none); -1 if unknown */
int tls_level_parse(const char *text);
const char *tls_level_name(int level);

/* What the peer was (Postfix's log words). */
enum tls_trust {
    TLS_TRUST_ANONYMOUS, /* the peer sent no certificate */
    TLS_TRUST_UNTRUSTED, /* certificate, chain not verified */
    TLS_TRUST_TRUSTED,   /* chain verified, name not (or not asked) */
    TLS_TRUST_VERIFIED   /* chain and name verified */
};
const char *tls_trust_name(int trust); /* "Anonymous", "Untrusted", "Trusted", "Verified" */

typedef struct tls_ctx tls_ctx;
typedef struct tls_session tls_session;

/* Explicit server settings; NULL or "" means unset. */
typedef struct tls_server_config {
    const char *cert_file, *key_file; /* PEM; the cert file may hold the chain */
    const char *chain_files;          /* list: each file a key then its chain */
    const char *CAfile, *CApath;      /* for client certificates */
    const char *protocols;            /* Postfix syntax: ">=TLSv1.2", "!SSLv3, !TLSv1" */
    const char *ciphers;              /* grade: "high" or "medium" */
    const char *exclude_ciphers;      /* list of OpenSSL cipher names to drop */
    long session_cache_timeout;       /* seconds; 0: no resumption */
    int ask_ccert;                    /* ask for (not require) a client certificate */
    int preempt_cipherlist;           /* server cipher order wins */
    int loglevel;                     /* 0..3, as smtpd_tls_loglevel */
} tls_server_config;

/* Explicit client settings; NULL or "" means unset. */
typedef struct tls_client_config {
    const char *cert_file, *key_file, *chain_files;
    const char *CAfile, *CApath;
    const char *protocols, *mandatory_protocols; /* may / encrypt and up */
    const char *ciphers, *mandatory_ciphers;
    const char *exclude_ciphers, *mandatory_exclude_ciphers;
    long session_cache_timeout; /* seconds; 0: no reuse */
    int loglevel;
} tls_client_config;

/*
 * Contexts. NULL (after a warning that says why) when the settings are
 * unusable: missing or mismatched key and certificate, unreadable CA file,
 * an unknown protocol or cipher grade.
 */
tls_ctx *tls_server_init(void); /* smtpd_tls_*; mandatory_* at level encrypt */
tls_ctx *tls_server_init_config(const tls_server_config *cfg);
tls_ctx *tls_client_init(void); /* smtp_tls_* */
tls_ctx *tls_client_init_config(const tls_client_config *cfg);
void tls_ctx_free(tls_ctx *ctx);

/* Per-connection client choices; initialise with designated initialisers. */
typedef struct tls_client_opts {
    int level;                /* enum tls_level; MAY or above */
    const char *servername;   /* SNI (not sent for IP literals); may be NULL */
    const char *const *match; /* NULL-terminated names to verify; may be NULL */
    const char *cache_key;    /* session reuse key (e.g. "[host]:port"); NULL: none */
    const char *peer;         /* for logs: "host[addr]:port" */
    /* Per-destination overrides (e.g. from a policy); NULL: the context's. */
    const char *protocols; /* Postfix protocol syntax */
    const char *ciphers;   /* grade */
    const char *exclude_ciphers;
} tls_client_opts;

/* Handshake, blocking: the session on success (installed on s), else NULL. */
tls_session *tls_server_start(tls_ctx *ctx, stream *s, const char *peer, int timeout);
tls_session *tls_client_start(tls_ctx *ctx, stream *s, const tls_client_opts *opts, int timeout);

/* Handshake, step by step (event loops). */
#define TLS_HS_DONE 0       /* established; transport installed */
#define TLS_HS_WANT_READ 1  /* call again when the fd is readable */
#define TLS_HS_WANT_WRITE 2 /* call again when the fd is writable */
#define TLS_HS_ERROR (-1)   /* failed (logged); tls_session_free() */

tls_session *tls_server_begin(tls_ctx *ctx, stream *s, const char *peer);
tls_session *tls_client_begin(tls_ctx *ctx, stream *s, const tls_client_opts *opts);
int tls_handshake_step(tls_session *sess);
void tls_session_free(tls_session *sess); /* a session not (or no longer) installed */

/* What was negotiated; valid while the session is installed on the stream. */
typedef struct tls_info {
    const char *protocol;     /* "TLSv1.3" */
    const char *cipher;       /* "TLS_AES_256_GCM_SHA384" */
    int bits, alg_bits;       /* effective / algorithm bits */
    int trust;                /* enum tls_trust */
    int peer_cert;            /* the peer sent a certificate */
    const char *peer_cn;      /* subject CN, sanitised; "" if none */
    const char *issuer_cn;    /* issuer CN, sanitised; "" if none */
    const char *verify_error; /* why the chain/name failed; "" if it did not */
    int reused;               /* the session was resumed */
} tls_info;

/* tls_get_info - for a stream with TLS installed; NULL otherwise */
const tls_info *tls_get_info(const stream *s);

/*
 * tls_log_established - Postfix's line, e.g. "Verified TLS connection
 * established to mx.example.org[192.0.2.1]:25: TLSv1.3 with cipher
 * TLS_AES_256_GCM_SHA384 (256/256 bits)"; direction is "from" or "to".
 */
void tls_log_established(const stream *s, const char *direction, const char *peer);

/* tls_received_clause - "(using TLSv1.3 with cipher X (256/256 bits))" for Received: */
void tls_received_clause(const stream *s, vbuf *out);

/*
 * tls_shutdown - send close_notify (one non-blocking attempt; skipped after
 * a fatal error), uninstall the transport (the stream is plain again, to be
 * closed) and free the session. A no-op on a stream without TLS.
 */
void tls_shutdown(stream *s);

/* tls_detach - as tls_shutdown without sending anything (e.g. in a forked child) */
void tls_detach(stream *s);

/*
 * Client policy helpers (smtp_tls_policy_maps, smtp_tls_*_cert_match,
 * smtp_tls_servername).
 *
 * tls_policy_parse - a policy table value: a level, then attributes
 * "match=name:name", "protocols=...", "ciphers=grade", "exclude=...",
 * "servername=...". 0, or -1 after a warning (unknown level or attribute,
 * empty or repeated attribute): the caller defers the destination.
 */
typedef struct tls_policy {
    int level;
    char *match, *protocols, *ciphers, *exclude, *servername; /* NULL: not given */
} tls_policy;

int tls_policy_parse(const char *text, tls_policy *out);
void tls_policy_free(tls_policy *policy);

/*
 * tls_match_names - expand a match list ("hostname", "nexthop",
 * "dot-nexthop" or literal names; separated by colons, commas or blanks)
 * for one connection. NULL-terminated; free with tls_names_free.
 */
char **tls_match_names(const char *spec, const char *hostname, const char *nexthop);
void tls_names_free(char **names);

/* tls_servername - SNI for smtp_tls_servername ("", "hostname", "nexthop", or a name); NULL: none */
const char *tls_servername(const char *spec, const char *hostname, const char *nexthop);

/* Helpers, exposed for tests: Postfix protocol syntax to a mask of TLS_PROTO_*. */
#define TLS_PROTO_TLSv1 (1 << 0)
#define TLS_PROTO_TLSv1_1 (1 << 1)
#define TLS_PROTO_TLSv1_2 (1 << 2)
#define TLS_PROTO_TLSv1_3 (1 << 3)
#define TLS_PROTO_ALL 0x0f
int tls_protocol_mask(const char *spec, int *mask); /* 0, or -1 (warned) */

#endif
