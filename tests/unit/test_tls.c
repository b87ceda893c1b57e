/*
 * Unit tests for tls: real OpenSSL handshakes over socketpairs with a test
 * PKI made at run time by tests/certs/make-certs.sh. Covers data both ways,
 * what tls_get_info reports, verification (success, wrong name, unknown CA)
 * at each level, the protocol floor, session resumption, client
 * certificates, the STARTTLS plaintext-injection defence, blocking
 * handshakes between two processes, configuration errors, parameters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "conf.h"
#include "msg.h"
#include "params.h"
#include "stream.h"
#include "tls.h"
#include "vbuf.h"

static char certdir[256];
static char warnings[8192];
static char infos[8192];

/* capture - keep warnings and info lines for assertions */
static void capture(enum msg_level level, const char *text)
{
    char *buf = level == MSG_INFO ? infos : warnings;
    size_t len = strlen(buf);

    if (level != MSG_INFO && level != MSG_WARN)
        return;
    snprintf(buf + len, 8192 - len, "%s\n", text);
}

static void clear_logs(void)
{
    warnings[0] = 0;
    infos[0] = 0;
}

/* path - a file in the test PKI */
static const char *path(const char *name)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];

    snprintf(b, 512, "%s/%s", certdir, name);
    return b;
}

/* group_setup - make the PKI in a fresh temporary directory */
static int group_setup(void **state)
{
    const char *script = getenv("KITE_MAKE_CERTS");
    pid_t pid;
    int status;

    (void) state;
    msg_stderr(0);
    msg_set_capture(capture);
    if (script == NULL)
        script = "tests/certs/make-certs.sh";
    snprintf(certdir, sizeof(certdir), "/tmp/kite-tls-test.XXXXXX");
    if (mkdtemp(certdir) == NULL)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        char *argv[] = {"/bin/sh", (char *) script, certdir, NULL};
        char *envp[] = {"PATH=/usr/bin:/bin", NULL};

        execve("/bin/sh", argv, envp);
        _exit(127);
    }
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "make-certs.sh failed\n");
        return -1;
    }
    return 0;
}

/* group_teardown - remove the PKI */
static int group_teardown(void **state)
{
    static const char *const files[] = {"ca.pem", "ca.key", "ca.srl", "other-ca.pem",
        "other-ca.key", "other-ca.srl", "server.pem", "server.key", "server-chain.pem",
        "other-server.pem", "other-server.key", "client.pem", "client.key", NULL};

    (void) state;
    for (int i = 0; files[i]; i++)
        (void) unlink(path(files[i]));
    (void) rmdir(certdir);
    return 0;
}

/* server_cfg - a working server configuration */
static tls_server_config server_cfg(void)
{
    tls_server_config c;

    memset(&c, 0, sizeof(c));
    c.cert_file = path("server.pem");
    c.key_file = path("server.key");
    c.protocols = ">=TLSv1.2";
    c.ciphers = "medium";
    c.session_cache_timeout = 3600;
    return c;
}

/* client_cfg - a working client configuration trusting the test CA */
static tls_client_config client_cfg(void)
{
    tls_client_config c;

    memset(&c, 0, sizeof(c));
    c.CAfile = path("ca.pem");
    c.protocols = "!SSLv2, !SSLv3";
    c.mandatory_protocols = ">=TLSv1.2";
    c.ciphers = c.mandatory_ciphers = "medium";
    c.session_cache_timeout = 3600;
    return c;
}

/* A connected pair of streams. */
struct conn {
    stream *srv, *cli;
    tls_session *ss, *cs;
    int rs, rc;
};

static void conn_open(struct conn *c)
{
    int sv[2];

    memset(c, 0, sizeof(*c));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    c->srv = stream_open(sv[0]);
    c->cli = stream_open(sv[1]);
    stream_set_timeout(c->srv, 5);
    stream_set_timeout(c->cli, 5);
    c->rs = c->rc = TLS_HS_WANT_READ;
}

static void conn_close(struct conn *c)
{
    if (tls_get_info(c->srv))
        tls_shutdown(c->srv);
    else
        tls_session_free(c->ss);
    if (tls_get_info(c->cli))
        tls_shutdown(c->cli);
    else
        tls_session_free(c->cs);
    stream_close(c->srv);
    stream_close(c->cli);
}

static int final(int r)
{
    return r == TLS_HS_DONE || r == TLS_HS_ERROR;
}

/* pump - step both handshakes in turn until both are final or stuck */
static void pump(struct conn *c)
{
    for (int i = 0; i < 400 && !(final(c->rs) && final(c->rc)); i++) {
        if (c->ss && !final(c->rs))
            c->rs = tls_handshake_step(c->ss);
        if (c->cs && !final(c->rc))
            c->rc = tls_handshake_step(c->cs);
        /* after one side failed, give the other a few rounds for the alert */
        if ((c->rs == TLS_HS_ERROR || c->rc == TLS_HS_ERROR) && i > 0) {
            for (int k = 0; k < 5; k++) {
                if (c->ss && !final(c->rs))
                    c->rs = tls_handshake_step(c->ss);
                if (c->cs && !final(c->rc))
                    c->rc = tls_handshake_step(c->cs);
            }
            break;
        }
    }
}

/* handshake - begin both sides with these client options and pump */
static void handshake(struct conn *c, tls_ctx *sctx, tls_ctx *cctx, const tls_client_opts *o)
{
    c->ss = tls_server_begin(sctx, c->srv, "client[127.0.0.1]");
    c->cs = tls_client_begin(cctx, c->cli, o);
    assert_non_null(c->ss);
    assert_non_null(c->cs);
    pump(c);
}

/* exchange - one line each way over the established streams */
static void exchange(struct conn *c)
{
    vbuf line;
    int flags;

    vbuf_init(&line, 0);
    assert_int_equal(stream_puts(c->srv, "220 ready\r\n"), 0);
    assert_int_equal(stream_flush(c->srv), 0);
    assert_int_equal(stream_getline(c->cli, &line, 512, &flags), 9);
    assert_string_equal(vbuf_str(&line), "220 ready");
    assert_int_equal(flags, STREAM_LINE_CRLF);
    assert_int_equal(stream_puts(c->cli, "EHLO client.test\r\n"), 0);
    assert_int_equal(stream_flush(c->cli), 0);
    assert_true(stream_getline(c->srv, &line, 512, &flags) > 0);
    assert_string_equal(vbuf_str(&line), "EHLO client.test");
    vbuf_release(&line);
}

static const char *const localhost[] = {"localhost", NULL};

static void test_tls_protocol_mask_follows_postfix_syntax(void **state)
{
    static const struct {
        const char *spec;
        int ok, mask;
    } rows[] = {
        {"", 0, TLS_PROTO_ALL},
        {">=TLSv1.2", 0, TLS_PROTO_TLSv1_2 | TLS_PROTO_TLSv1_3},
        {"!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", 0, TLS_PROTO_TLSv1_2 | TLS_PROTO_TLSv1_3},
        {"!SSLv2:!SSLv3", 0, TLS_PROTO_ALL},
        {"TLSv1.2 TLSv1.3", 0, TLS_PROTO_TLSv1_2 | TLS_PROTO_TLSv1_3},
        {"<=TLSv1.2", 0, TLS_PROTO_TLSv1 | TLS_PROTO_TLSv1_1 | TLS_PROTO_TLSv1_2},
        {">=TLSv1.1, <=TLSv1.2", 0, TLS_PROTO_TLSv1_1 | TLS_PROTO_TLSv1_2},
        {">=TLSv1, !TLSv1.2", 0, TLS_PROTO_TLSv1 | TLS_PROTO_TLSv1_1 | TLS_PROTO_TLSv1_3},
        {"TLSv1.3", 0, TLS_PROTO_TLSv1_3},
        {"TLSv1.4", -1, 0},
        {"!TLSv1, !TLSv1.1, !TLSv1.2, !TLSv1.3", -1, 0},
        {">=TLSv1.3, <=TLSv1.2", -1, 0},
        {"bogus", -1, 0},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int mask = -1;

        clear_logs();
        if (tls_protocol_mask(rows[i].spec, &mask) != rows[i].ok)
            fail_msg("\"%s\": wrong verdict", rows[i].spec);
        if (rows[i].ok == 0 && mask != rows[i].mask)
            fail_msg("\"%s\": mask %#x, expected %#x", rows[i].spec, mask, rows[i].mask);
        if (rows[i].ok < 0)
            assert_true(warnings[0] != 0);
    }
}

static void test_tls_level_names(void **state)
{
    (void) state;
    assert_int_equal(tls_level_parse(""), TLS_LEV_NONE);
    assert_int_equal(tls_level_parse("none"), TLS_LEV_NONE);
    assert_int_equal(tls_level_parse("may"), TLS_LEV_MAY);
    assert_int_equal(tls_level_parse("encrypt"), TLS_LEV_ENCRYPT);
    assert_int_equal(tls_level_parse("verify"), TLS_LEV_VERIFY);
    assert_int_equal(tls_level_parse("secure"), TLS_LEV_SECURE);
    assert_int_equal(tls_level_parse("dane"), -1);
    assert_string_equal(tls_level_name(TLS_LEV_ENCRYPT), "encrypt");
    assert_string_equal(tls_trust_name(TLS_TRUST_VERIFIED), "Verified");
    assert_string_equal(tls_trust_name(TLS_TRUST_ANONYMOUS), "Anonymous");
}

static void test_tls_handshake_verified_with_data_both_ways(void **state)
{
    tls_server_config sc = server_cfg();
    tls_client_config cc = client_cfg();
    tls_ctx *sctx = tls_server_init_config(&sc), *cctx = tls_client_init_config(&cc);
    tls_client_opts o = {TLS_LEV_VERIFY, "localhost", localhost, NULL, "localhost[127.0.0.1]:25"};
    struct conn c;
    const tls_info *si, *ci;
    vbuf rcv;

    (void) state;
    assert_non_null(sctx);
    assert_non_null(cctx);
    conn_open(&c);
    handshake(&c, sctx, cctx, &o);
    assert_int_equal(c.rs, TLS_HS_DONE);
    assert_int_equal(c.rc, TLS_HS_DONE);
    ci = tls_get_info(c.cli);
    si = tls_get_info(c.srv);
    assert_non_null(ci);
    assert_non_null(si);
    assert_string_equal(ci->protocol, "TLSv1.3");
    assert_string_equal(si->protocol, "TLSv1.3");
    assert_string_equal(ci->cipher, si->cipher);
    assert_true(strncmp(ci->cipher, "TLS_", 4) == 0);
    assert_true(ci->bits >= 128);
    assert_int_equal(ci->trust, TLS_TRUST_VERIFIED);
    assert_true(ci->peer_cert);
    assert_string_equal(ci->peer_cn, "localhost");
    assert_string_equal(ci->issuer_cn, "Kite Test CA");
    assert_string_equal(ci->verify_error, "");
    assert_int_equal(ci->reused, 0);
    assert_int_equal(si->trust, TLS_TRUST_ANONYMOUS);
    assert_false(si->peer_cert);
    exchange(&c);
    /* lots of data, larger than a TLS record and the socket buffer chunks */
    {
        char big[50000];
        char got[50000];

        for (size_t i = 0; i < sizeof(big); i++)
            big[i] = (char) ('a' + i % 26);
        if (fork() == 0) {
            int ok = stream_write(c.cli, big, sizeof(big)) == 0 && stream_flush(c.cli) == 0;

            _exit(ok ? 0 : 1);
        }
        assert_int_equal(stream_read_exact(c.srv, got, sizeof(got)), 0);
        assert_memory_equal(got, big, sizeof(big));
        {
            int status;

            assert_true(wait(&status) > 0);
            assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
    }
    /* log line and Received clause */
    clear_logs();
    tls_log_established(c.cli, "to", "localhost[127.0.0.1]:25");
    assert_non_null(strstr(infos, "Verified TLS connection established to localhost[127.0.0.1]:25: "
                                  "TLSv1.3 with cipher TLS_"));
    tls_log_established(c.srv, "from", "client[127.0.0.1]");
    assert_non_null(strstr(infos, "Anonymous TLS connection established from client[127.0.0.1]: TLSv1.3"));
    vbuf_init(&rcv, 0);
    tls_received_clause(c.srv, &rcv);
    assert_true(strncmp(vbuf_str(&rcv), "(using TLSv1.3 with cipher TLS_", 31) == 0);
    assert_non_null(strstr(vbuf_str(&rcv), " bits))"));
    vbuf_release(&rcv);
    /* close_notify reaches the peer as a clean end of stream */
    tls_shutdown(c.srv);
    c.ss = NULL;                                /* freed with the shutdown */
    assert_null(tls_get_info(c.srv));
    {
        vbuf line;
        int flags;

        vbuf_init(&line, 0);
        assert_int_equal(stream_getline(c.cli, &line, 512, &flags), STREAM_EOF);
        vbuf_release(&line);
    }
    conn_close(&c);
    tls_ctx_free(sctx);
    tls_ctx_free(cctx);
}

/* One row per verification case. */
static void test_tls_verification_per_level(void **state)
{
    static const char *const wrong[] = {"mail.example.org", NULL};
    static const char *const dotted[] = {".example.org", "localhost", NULL};
    static const char *const ip[] = {"127.0.0.1", NULL};
    static const struct {
        const char *label;
        int level;
        const char *server_cert;        /* base name */
        const char *const *match;
        int expect_ok;
        int trust;                      /* when ok */
        const char *warn;               /* when not ok */
    } rows[] = {
        {"verify, right name", TLS_LEV_VERIFY, "server", localhost, 1, TLS_TRUST_VERIFIED, NULL},
        {"secure, second name matches", TLS_LEV_SECURE, "server", dotted, 1, TLS_TRUST_VERIFIED, NULL},
        {"verify, IP literal", TLS_LEV_VERIFY, "server", ip, 1, TLS_TRUST_VERIFIED, NULL},
        {"verify, wrong name", TLS_LEV_VERIFY, "server", wrong, 0, 0, "verification failed"},
        {"secure, unknown CA", TLS_LEV_SECURE, "other-server", localhost, 0, 0, "verification failed"},
        {"verify, unknown CA", TLS_LEV_VERIFY, "other-server", localhost, 0, 0, "unable to get local issuer"},
        {"may, wrong name", TLS_LEV_MAY, "server", wrong, 1, TLS_TRUST_TRUSTED, NULL},
        {"encrypt, unknown CA", TLS_LEV_ENCRYPT, "other-server", localhost, 1, TLS_TRUST_UNTRUSTED, NULL},
        {"may, no names", TLS_LEV_MAY, "server", NULL, 1, TLS_TRUST_TRUSTED, NULL},
    };
    tls_client_config cc = client_cfg();
    tls_ctx *cctx = tls_client_init_config(&cc);

    (void) state;
    assert_non_null(cctx);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        tls_server_config sc = server_cfg();
        char cert[64], key[64];
        tls_ctx *sctx;
        tls_client_opts o = {rows[i].level, "localhost", rows[i].match, NULL, "localhost[127.0.0.1]:25"};
        struct conn c;

        snprintf(cert, sizeof(cert), "%s.pem", rows[i].server_cert);
        snprintf(key, sizeof(key), "%s.key", rows[i].server_cert);
        sc.cert_file = path(cert);
        sc.key_file = path(key);
        sctx = tls_server_init_config(&sc);
        assert_non_null(sctx);
        clear_logs();
        conn_open(&c);
        handshake(&c, sctx, cctx, &o);
        if (rows[i].expect_ok) {
            if (c.rc != TLS_HS_DONE || c.rs != TLS_HS_DONE)
                fail_msg("%s: handshake failed: %s", rows[i].label, warnings);
            if (tls_get_info(c.cli)->trust != rows[i].trust)
                fail_msg("%s: trust %s", rows[i].label, tls_trust_name(tls_get_info(c.cli)->trust));
            if (rows[i].trust == TLS_TRUST_UNTRUSTED)
                assert_true(tls_get_info(c.cli)->verify_error[0] != 0);
            exchange(&c);
        } else {
            if (c.rc != TLS_HS_ERROR)
                fail_msg("%s: client handshake did not fail", rows[i].label);
            assert_null(tls_get_info(c.cli));
            if (strstr(warnings, rows[i].warn) == NULL)
                fail_msg("%s: warnings lack \"%s\": %s", rows[i].label, rows[i].warn, warnings);
            /* the server learns of it through the alert */
            assert_int_equal(c.rs, TLS_HS_ERROR);
        }
        conn_close(&c);
        tls_ctx_free(sctx);
    }
    tls_ctx_free(cctx);
}

/* raw_client - a bare OpenSSL client limited to max_version, on fd */
static SSL *raw_client(SSL_CTX **ctxp, int fd, int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl;

    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION), 1);
    assert_int_equal(SSL_CTX_set_max_proto_version(ctx, max_version), 1);
    assert_int_equal(SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0"), 1);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_connect_state(ssl);
    *ctxp = ctx;
    return ssl;
}

/* raw_handshake - pump a raw client against our server session; 1 if both done */
static int raw_handshake(SSL *cl, struct conn *c)
{
    int rc = 0;

    for (int i = 0; i < 400; i++) {
        if (rc != 1) {
            int r = SSL_do_handshake(cl);
            int e = r == 1 ? 0 : SSL_get_error(cl, r);

            if (r == 1)
                rc = 1;
            else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                rc = -1;
        }
        if (!final(c->rs))
            c->rs = tls_handshake_step(c->ss);
        if (final(c->rs) && rc != 0)
            break;
        if (c->rs == TLS_HS_ERROR && i > 10)
            break;
    }
    ERR_clear_error();
    return rc == 1 && c->rs == TLS_HS_DONE;
}

static void test_tls_protocol_floor_refuses_old_clients(void **state)
{
    tls_server_config sc = server_cfg();
    tls_ctx *sctx = tls_server_init_config(&sc);
    struct conn c;
    SSL_CTX *rctx;
    SSL *cl;

    (void) state;
    assert_non_null(sctx);
    /* a TLS 1.1-only client is refused by the default floor */
    conn_open(&c);
    c.ss = tls_server_begin(sctx, c.srv, "old[127.0.0.1]");
    cl = raw_client(&rctx, stream_fd(c.cli), TLS1_1_VERSION);
    clear_logs();
    assert_false(raw_handshake(cl, &c));
    assert_int_equal(c.rs, TLS_HS_ERROR);
    assert_non_null(strstr(warnings, "SSL_accept error from old[127.0.0.1]"));
    SSL_free(cl);
    SSL_CTX_free(rctx);
    conn_close(&c);
    /* a TLS 1.2-only client is fine and gets TLS 1.2 */
    conn_open(&c);
    c.ss = tls_server_begin(sctx, c.srv, "tls12[127.0.0.1]");
    cl = raw_client(&rctx, stream_fd(c.cli), TLS1_2_VERSION);
    assert_true(raw_handshake(cl, &c));
    assert_string_equal(tls_get_info(c.srv)->protocol, "TLSv1.2");
    SSL_free(cl);
    SSL_CTX_free(rctx);
    conn_close(&c);
    tls_ctx_free(sctx);

    /* the floor is ours: raise it to TLS 1.3 and the TLS 1.2 client is refused */
    sc.protocols = "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.2";
    sctx = tls_server_init_config(&sc);
    assert_non_null(sctx);
    conn_open(&c);
    c.ss = tls_server_begin(sctx, c.srv, "tls12[127.0.0.1]");
    cl = raw_client(&rctx, stream_fd(c.cli), TLS1_2_VERSION);
    assert_false(raw_handshake(cl, &c));
    assert_int_equal(c.rs, TLS_HS_ERROR);
    SSL_free(cl);
    SSL_CTX_free(rctx);
    conn_close(&c);
    tls_ctx_free(sctx);
}

static void test_tls_client_mandatory_protocols_apply_from_encrypt(void **state)
{
    tls_server_config sc = server_cfg();
    tls_client_config cc = client_cfg();
    tls_ctx *sctx, *cctx;
    struct conn c;
    tls_client_opts may = {TLS_LEV_MAY, "localhost", NULL, NULL, "peer"};
    tls_client_opts enc = {TLS_LEV_ENCRYPT, "localhost", NULL, NULL, "peer"};

    (void) state;
    sc.protocols = "TLSv1.2";                  /* server speaks only 1.2 */
    cc.protocols = "TLSv1.2, TLSv1.3";
    cc.mandatory_protocols = ">=TLSv1.3";      /* mandatory TLS wants 1.3 */
    sctx = tls_server_init_config(&sc);
    cctx = tls_client_init_config(&cc);
    assert_non_null(sctx);
    assert_non_null(cctx);
    conn_open(&c);
    handshake(&c, sctx, cctx, &may);
    assert_int_equal(c.rc, TLS_HS_DONE);
    assert_string_equal(tls_get_info(c.cli)->protocol, "TLSv1.2");
    conn_close(&c);
    conn_open(&c);
    handshake(&c, sctx, cctx, &enc);
    assert_int_equal(c.rc, TLS_HS_ERROR);
    conn_close(&c);
    tls_ctx_free(sctx);
    tls_ctx_free(cctx);
}

/* resume - two connections with one cache key; returns reused flags */
static void resume_twice(const char *server_protocols, int *srv_reused, int *cli_reused)
{
    tls_server_config sc = server_cfg();
    tls_client_config cc = client_cfg();
    tls_ctx *sctx, *cctx;
    tls_client_opts o = {TLS_LEV_VERIFY, "localhost", localhost, "[localhost]:25", "localhost[127.0.0.1]:25"};

    sc.protocols = server_protocols;
    sctx = tls_server_init_config(&sc);
    cctx = tls_client_init_config(&cc);
    assert_non_null(sctx);
    assert_non_null(cctx);
    for (int round = 0; round < 2; round++) {
        struct conn c;

        conn_open(&c);
        handshake(&c, sctx, cctx, &o);
        assert_int_equal(c.rs, TLS_HS_DONE);
        assert_int_equal(c.rc, TLS_HS_DONE);
        exchange(&c);                           /* the client reads the ticket */
        srv_reused[round] = tls_get_info(c.srv)->reused;
        cli_reused[round] = tls_get_info(c.cli)->reused;
        if (round == 1)
            assert_int_equal(tls_get_info(c.cli)->trust, TLS_TRUST_VERIFIED);
        conn_close(&c);
    }
    tls_ctx_free(sctx);
    tls_ctx_free(cctx);
}

static void test_tls_session_resumed_on_second_connection(void **state)
{
    int s[2], c[2];

    (void) state;
    resume_twice(">=TLSv1.3", s, c);            /* TLS 1.3 tickets */
    assert_int_equal(s[0], 0);
    assert_int_equal(c[0], 0);
    assert_int_equal(s[1], 1);
    assert_int_equal(c[1], 1);
    resume_twice("TLSv1.2", s, c);              /* TLS 1.2 tickets */
    assert_int_equal(s[1], 1);
    assert_int_equal(c[1], 1);
}

static void test_tls_no_resumption_without_cache_key_or_timeout(void **state)
{
    tls_server_config sc = server_cfg();
    tls_client_config cc = client_cfg();
    tls_ctx *sctx, *cctx;
    tls_client_opts o = {TLS_LEV_MAY, "localhost", NULL, NULL, "peer"};

    (void) state;
    sctx = tls_server_init_config(&sc);
    cctx = tls_client_init_config(&cc);
    for (int round = 0; round < 2; round++) {
        struct conn c;

        conn_open(&c);
        handshake(&c, sctx, cctx, &o);
        exchange(&c);
        assert_int_equal(tls_get_info(c.cli)->reused, 0);
        conn_close(&c);
    }
    tls_ctx_free(sctx);
    /* a server with resumption off never resumes, even with a client key */
    sc.session_cache_timeout = 0;
    sctx = tls_server_init_config(&sc);
    o.cache_key = "[localhost]:25";
    for (int round = 0; round < 2; round++) {
        struct conn c;

        conn_open(&c);
        handshake(&c, sctx, cctx, &o);
        exchange(&c);
        assert_int_equal(tls_get_info(c.srv)->reused, 0);
        conn_close(&c);
    }
    tls_ctx_free(sctx);
    tls_ctx_free(cctx);
}

static void test_tls_client_certificate_seen_with_ask_ccert(void **state)
{
    tls_server_config sc = server_cfg();
    tls_client_config cc = client_cfg();
    tls_ctx *sctx, *cctx;
    tls_client_opts o = {TLS_LEV_ENCRYPT, "localhost", NULL, NULL, "peer"};
    struct conn c;

    (void) state;
    sc.ask_ccert = 1;
    sc.CAfile = path("ca.pem");
    cc.cert_file = path("client.pem");
    cc.key_file = path("client.key");
    sctx = tls_server_init_config(&sc);
    cctx = tls_client_init_config(&cc);
    assert_non_null(sctx);
    assert_non_null(cctx);
    conn_open(&c);
    handshake(&c, sctx, cctx, &o);
    assert_int_equal(c.rs, TLS_HS_DONE);
    assert_int_equal(c.rc, TLS_HS_DONE);
    assert_true(tls_get_info(c.srv)->peer_cert);
    assert_string_equal(tls_get_info(c.srv)->peer_cn, "client.test");
    assert_int_equal(tls_get_info(c.srv)->trust, TLS_TRUST_TRUSTED);
    exchange(&c);
    conn_close(&c);
    tls_ctx_free(sctx);
    tls_ctx_free(cctx);
}

/*
 * STARTTLS injection: the client pipelines a command after STARTTLS in
 * plaintext; the server has it buffered when the handshake starts. It must
 * be discarded, never seen as a command that came over TLS.
 */
static void test_tls_plaintext_pipelined_after_starttls_is_discarded(void **state)
{
    tls_server_config sc = server_cfg();
    tls_client_config cc = client_cfg();
    tls_ctx *sctx = tls_server_init_config(&sc), *cctx = tls_client_init_config(&cc);
    tls_client_opts o = {TLS_LEV_ENCRYPT, "localhost", NULL, NULL, "peer"};
    struct conn c;
    vbuf line;
    int flags;

    (void) state;
    vbuf_init(&line, 0);
    conn_open(&c);
    assert_int_equal(write(stream_fd(c.cli), "STARTTLS\r\nRSET\r\nMAIL FROM:<evil>\r\n", 34), 34);
    assert_true(stream_getline(c.srv, &line, 512, &flags) > 0);
    assert_string_equal(vbuf_str(&line), "STARTTLS");
    assert_true(stream_input_buffered(c.srv) > 0);
    assert_int_equal(stream_puts(c.srv, "220 2.0.0 Ready to start TLS\r\n"), 0);
    clear_logs();
    c.ss = tls_server_begin(sctx, c.srv, "client[127.0.0.1]");
    assert_non_null(c.ss);
    assert_non_null(strstr(warnings, "discarding 24 bytes of plaintext"));
    /* the reply went out in plaintext before the handshake */
    assert_true(stream_getline(c.cli, &line, 512, &flags) > 0);
    assert_string_equal(vbuf_str(&line), "220 2.0.0 Ready to start TLS");
    c.cs = tls_client_begin(cctx, c.cli, &o);
    pump(&c);
    assert_int_equal(c.rs, TLS_HS_DONE);
    assert_int_equal(c.rc, TLS_HS_DONE);
    assert_int_equal(stream_puts(c.cli, "EHLO client.test\r\n"), 0);
    assert_int_equal(stream_flush(c.cli), 0);
    assert_true(stream_getline(c.srv, &line, 512, &flags) > 0);
    assert_string_equal(vbuf_str(&line), "EHLO client.test");
    /* a second STARTTLS on a TLS stream is refused */
    assert_null(tls_server_begin(sctx, c.srv, "client[127.0.0.1]"));
    vbuf_release(&line);
    conn_close(&c);
    tls_ctx_free(sctx);
    tls_ctx_free(cctx);
}

/* Plaintext arriving on the socket after STARTTLS breaks the handshake. */
static void test_tls_plaintext_on_socket_fails_handshake(void **state)
{
    tls_server_config sc = server_cfg();
    tls_ctx *sctx = tls_server_init_config(&sc);
    struct conn c;

    (void) state;
    conn_open(&c);
    assert_int_equal(write(stream_fd(c.cli), "EHLO evil\r\nMAIL FROM:<x>\r\n\r\n\r\n\r\n", 32), 32);
    c.ss = tls_server_begin(sctx, c.srv, "client[127.0.0.1]");
    clear_logs();
    for (int i = 0; i < 10 && !final(c.rs); i++)
        c.rs = tls_handshake_step(c.ss);
    assert_int_equal(c.rs, TLS_HS_ERROR);
    assert_non_null(strstr(warnings, "SSL_accept error"));
    conn_close(&c);
    tls_ctx_free(sctx);
}

/* Blocking handshakes with timeouts, server and client in two processes. */
static void test_tls_blocking_start_between_processes(void **state)
{
    tls_server_config sc = server_cfg();
    tls_ctx *sctx = tls_server_init_config(&sc);
    int sv[2];
    pid_t pid;
    stream *s;
    vbuf line;
    int flags, status;

    (void) state;
    assert_non_null(sctx);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tls_client_config cc = client_cfg();
        tls_ctx *cctx = tls_client_init_config(&cc);
        tls_client_opts o = {TLS_LEV_SECURE, "localhost", localhost, "[localhost]", "server"};
        stream *cs;
        int ok;

        close(sv[0]);
        cs = stream_open(sv[1]);
        stream_set_timeout(cs, 5);
        vbuf_init(&line, 0);
        ok = cctx != NULL && tls_client_start(cctx, cs, &o, 5) != NULL
             && tls_get_info(cs)->trust == TLS_TRUST_VERIFIED
             && stream_getline(cs, &line, 512, &flags) > 0 && strcmp(vbuf_str(&line), "hello") == 0
             && stream_puts(cs, "bye\r\n") == 0 && stream_flush(cs) == 0;
        tls_shutdown(cs);
        stream_close(cs);
        tls_ctx_free(cctx);
        vbuf_release(&line);
        _exit(ok ? 0 : 1);
    }
    close(sv[1]);
    s = stream_open(sv[0]);
    stream_set_timeout(s, 5);
    assert_non_null(tls_server_start(sctx, s, "child", 5));
    assert_int_equal(stream_puts(s, "hello\r\n"), 0);
    assert_int_equal(stream_flush(s), 0);
    vbuf_init(&line, 0);
    assert_true(stream_getline(s, &line, 512, &flags) > 0);
    assert_string_equal(vbuf_str(&line), "bye");
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    tls_shutdown(s);
    stream_close(s);
    vbuf_release(&line);
    tls_ctx_free(sctx);
}

static void test_tls_blocking_start_times_out(void **state)
{
    tls_server_config sc = server_cfg();
    tls_ctx *sctx = tls_server_init_config(&sc);
    int sv[2];
    stream *s;
    time_t start = time(NULL);

    (void) state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    s = stream_open(sv[0]);
    clear_logs();
    assert_null(tls_server_start(sctx, s, "silent", 1));    /* the peer says nothing */
    assert_non_null(strstr(warnings, "timeout"));
    assert_true(time(NULL) - start <= 3);
    assert_null(tls_get_info(s));
    stream_close(s);
    close(sv[1]);
    tls_ctx_free(sctx);
}

static void test_tls_bad_configuration_is_refused(void **state)
{
    static const struct {
        const char *label;
        const char *cert, *key, *chain, *protocols, *ciphers, *CAfile;
        const char *warn;
    } rows[] = {
        {"no certificate", NULL, NULL, NULL, NULL, NULL, NULL, "no certificate"},
        {"missing file", "nonexistent.pem", NULL, NULL, NULL, NULL, NULL, "cannot load certificate"},
        {"key mismatch", "server.pem", "client.key", NULL, NULL, NULL, NULL, "private key"},
        {"bad protocol", "server.pem", "server.key", NULL, ">=TLSv2", NULL, NULL, "invalid TLS protocol"},
        {"bad grade", "server.pem", "server.key", NULL, NULL, "superb", NULL, "cipher grade"},
        {"bad CAfile", "server.pem", "server.key", NULL, NULL, NULL, "nonexistent.pem", "CA certificates"},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        tls_server_config sc;

        memset(&sc, 0, sizeof(sc));
        sc.cert_file = rows[i].cert ? path(rows[i].cert) : NULL;
        sc.key_file = rows[i].key ? path(rows[i].key) : NULL;
        sc.protocols = rows[i].protocols;
        sc.ciphers = rows[i].ciphers;
        sc.CAfile = rows[i].CAfile ? path(rows[i].CAfile) : NULL;
        clear_logs();
        if (tls_server_init_config(&sc) != NULL)
            fail_msg("%s: accepted", rows[i].label);
        if (strstr(warnings, rows[i].warn) == NULL)
            fail_msg("%s: warnings lack \"%s\": %s", rows[i].label, rows[i].warn, warnings);
    }
    /* a chain file (key, certificate, CA) alone is enough */
    {
        tls_server_config sc;
        tls_ctx *ctx;

        memset(&sc, 0, sizeof(sc));
        sc.chain_files = path("server-chain.pem");
        ctx = tls_server_init_config(&sc);
        assert_non_null(ctx);
        tls_ctx_free(ctx);
    }
}

/* The parameter-driven constructors read main.cf's smtpd_tls_* / smtp_tls_*. */
static void test_tls_init_from_main_cf(void **state)
{
    char dir[] = "/tmp/kite-tls-conf.XXXXXX";
    char file[300];
    FILE *fp;
    tls_ctx *sctx, *cctx;
    tls_client_opts o = {TLS_LEV_VERIFY, "localhost", localhost, NULL, "peer"};
    struct conn c;

    (void) state;
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/main.cf", dir);
    fp = fopen(file, "w");
    assert_non_null(fp);
    fprintf(fp, "smtpd_tls_security_level = encrypt\n"
                "smtpd_tls_chain_files = %s\n"
                "smtpd_tls_mandatory_protocols = TLSv1.2\n"
                "smtp_tls_CAfile = %s\n",
            path("server-chain.pem"), path("ca.pem"));
    fclose(fp);
    assert_int_equal(conf_load(dir), 0);
    assert_string_equal(var_smtp_tls_mandatory_protocols, ">=TLSv1.2");
    assert_true(var_smtpd_tls_auth_only);
    assert_int_equal(var_smtpd_tls_session_cache_timeout, 3600);
    sctx = tls_server_init();
    cctx = tls_client_init();
    assert_non_null(sctx);
    assert_non_null(cctx);
    conn_open(&c);
    handshake(&c, sctx, cctx, &o);
    assert_int_equal(c.rc, TLS_HS_DONE);
    /* level encrypt selected the mandatory protocol list: TLS 1.2 only */
    assert_string_equal(tls_get_info(c.srv)->protocol, "TLSv1.2");
    conn_close(&c);
    tls_ctx_free(sctx);
    tls_ctx_free(cctx);
    unlink(file);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_protocol_mask_follows_postfix_syntax),
        cmocka_unit_test(test_tls_level_names),
        cmocka_unit_test(test_tls_handshake_verified_with_data_both_ways),
        cmocka_unit_test(test_tls_verification_per_level),
        cmocka_unit_test(test_tls_protocol_floor_refuses_old_clients),
        cmocka_unit_test(test_tls_client_mandatory_protocols_apply_from_encrypt),
        cmocka_unit_test(test_tls_session_resumed_on_second_connection),
        cmocka_unit_test(test_tls_no_resumption_without_cache_key_or_timeout),
        cmocka_unit_test(test_tls_client_certificate_seen_with_ask_ccert),
        cmocka_unit_test(test_tls_plaintext_pipelined_after_starttls_is_discarded),
        cmocka_unit_test(test_tls_plaintext_on_socket_fails_handshake),
        cmocka_unit_test(test_tls_blocking_start_between_processes),
        cmocka_unit_test(test_tls_blocking_start_times_out),
        cmocka_unit_test(test_tls_bad_configuration_is_refused),
        cmocka_unit_test(test_tls_init_from_main_cf),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
