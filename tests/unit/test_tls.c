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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>

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
    static const char *const files[] = {
        "ca.pem",     "ca.key",     "ca.srl",           "other-ca.pem",     "other-ca.key",     "other-ca.srl",
        "server.pem", "server.key", "server-chain.pem", "other-server.pem", "other-server.key", "client.pem",
        "client.key", NULL};

    (void) state;
    for (int i = 0; files[i]; i++)
        (void) unlink(path(files[i]));
    {
        char cmd[600];
        pid_t pid;

        /* capath/ holds hash-named links: remove the directory with rm */
        snprintf(cmd, sizeof(cmd), "%s/capath", certdir);
        if ((pid = fork()) == 0) {
            char *argv[] = {"/bin/rm", "-rf", cmd, NULL};
            char *envp[] = {NULL};

            execve("/bin/rm", argv, envp);
            _exit(127);
        }
        if (pid > 0)
            (void) waitpid(pid, NULL, 0);
    }
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
    tls_client_opts o = {
        .level = TLS_LEV_VERIFY, .servername = "localhost", .match = localhost, .peer = "localhost[127.0.0.1]:25"};
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
    c.ss = NULL; /* freed with the shutdown */
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
        const char *server_cert; /* base name */
        const char *const *match;
        int expect_ok;
        int trust;        /* when ok */
        const char *warn; /* when not ok */
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
        tls_client_opts o = {.level = rows[i].level,
                             .servername = "localhost",
                             .match = rows[i].match,
                             .peer = "localhost[127.0.0.1]:25"};
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
    assert_non_null(strstr(warnings, "unsupported protocol")); /* the floor, not the ciphers */
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
    tls_client_opts may = {.level = TLS_LEV_MAY, .servername = "localhost", .peer = "peer"};
    tls_client_opts enc = {.level = TLS_LEV_ENCRYPT, .servername = "localhost", .peer = "peer"};

    (void) state;
    sc.protocols = "TLSv1.2"; /* server speaks only 1.2 */
    cc.protocols = "TLSv1.2, TLSv1.3";
    cc.mandatory_protocols = ">=TLSv1.3"; /* mandatory TLS wants 1.3 */
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
    tls_client_opts o = {.level = TLS_LEV_VERIFY,
                         .servername = "localhost",
                         .match = localhost,
                         .cache_key = "[localhost]:25",
                         .peer = "localhost[127.0.0.1]:25"};

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
        exchange(&c); /* the client reads the ticket */
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
    resume_twice(">=TLSv1.3", s, c); /* TLS 1.3 tickets */
    assert_int_equal(s[0], 0);
    assert_int_equal(c[0], 0);
    assert_int_equal(s[1], 1);
    assert_int_equal(c[1], 1);
    resume_twice("TLSv1.2", s, c); /* TLS 1.2 tickets */
    assert_int_equal(s[1], 1);
    assert_int_equal(c[1], 1);
}

static void test_tls_no_resumption_without_cache_key_or_timeout(void **state)
{
    tls_server_config sc = server_cfg();
    tls_client_config cc = client_cfg();
    tls_ctx *sctx, *cctx;
    tls_client_opts o = {.level = TLS_LEV_MAY, .servername = "localhost", .peer = "peer"};

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
    tls_client_opts o = {.level = TLS_LEV_ENCRYPT, .servername = "localhost", .peer = "peer"};
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
    tls_client_opts o = {.level = TLS_LEV_ENCRYPT, .servername = "localhost", .peer = "peer"};
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
        tls_client_opts o = {.level = TLS_LEV_SECURE,
                             .servername = "localhost",
                             .match = localhost,
                             .cache_key = "[localhost]",
                             .peer = "server"};
        stream *cs;
        int ok;

        close(sv[0]);
        cs = stream_open(sv[1]);
        stream_set_timeout(cs, 5);
        vbuf_init(&line, 0);
        ok = cctx != NULL && tls_client_start(cctx, cs, &o, 5) != NULL &&
             tls_get_info(cs)->trust == TLS_TRUST_VERIFIED && stream_getline(cs, &line, 512, &flags) > 0 &&
             strcmp(vbuf_str(&line), "hello") == 0 && stream_puts(cs, "bye\r\n") == 0 && stream_flush(cs) == 0;
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
    /* the child said close_notify: a clean end of stream */
    assert_int_equal(stream_getline(s, &line, 512, &flags), STREAM_EOF);
    tls_detach(s);
    assert_null(tls_get_info(s));
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
    assert_null(tls_server_start(sctx, s, "silent", 1)); /* the peer says nothing */
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
    tls_client_opts o = {.level = TLS_LEV_VERIFY, .servername = "localhost", .match = localhost, .peer = "peer"};
    struct conn c;

    (void) state;
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/main.cf", dir);
    fp = fopen(file, "w");
    assert_non_null(fp);
    fprintf(fp,
            "smtpd_tls_security_level = encrypt\n"
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

static void test_tls_policy_parse_accepts_postfix_forms_and_rejects_junk(void **state)
{
    static const struct {
        const char *text;
        int ok, level;
        const char *match, *protocols, *ciphers, *exclude, *servername;
    } rows[] = {
        {"may", 0, TLS_LEV_MAY, NULL, NULL, NULL, NULL, NULL},
        {"  none  ", 0, TLS_LEV_NONE, NULL, NULL, NULL, NULL, NULL},
        {"verify match=hostname:nexthop", 0, TLS_LEV_VERIFY, "hostname:nexthop", NULL, NULL, NULL, NULL},
        {"secure match=.example.org protocols=!SSLv2:!SSLv3:!TLSv1 ciphers=high", 0, TLS_LEV_SECURE, ".example.org",
         "!SSLv2:!SSLv3:!TLSv1", "high", NULL, NULL},
        {"encrypt exclude=aNULL:MD5 servername=mx.example.org", 0, TLS_LEV_ENCRYPT, NULL, NULL, NULL, "aNULL:MD5",
         "mx.example.org"},
        {"", -1, 0, NULL, NULL, NULL, NULL, NULL},
        {"   ", -1, 0, NULL, NULL, NULL, NULL, NULL},
        {"dane", -1, 0, NULL, NULL, NULL, NULL, NULL},
        {"match=x", -1, 0, NULL, NULL, NULL, NULL, NULL},
        {"verify bogus=1", -1, 0, NULL, NULL, NULL, NULL, NULL},
        {"verify match", -1, 0, NULL, NULL, NULL, NULL, NULL},
        {"verify match=", -1, 0, NULL, NULL, NULL, NULL, NULL},
        {"verify match=a match=b", -1, 0, NULL, NULL, NULL, NULL, NULL},
        {"may protocols=TLSv9", -1, 0, NULL, NULL, NULL, NULL, NULL},
        {"may ciphers=superb", -1, 0, NULL, NULL, NULL, NULL, NULL},
        {"may =x", -1, 0, NULL, NULL, NULL, NULL, NULL},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        tls_policy p;

        clear_logs();
        if (tls_policy_parse(rows[i].text, &p) != rows[i].ok)
            fail_msg("\"%s\": wrong verdict", rows[i].text);
        if (rows[i].ok < 0) {
            assert_true(warnings[0] != 0);
            assert_null(p.match);
            continue;
        }
        assert_int_equal(p.level, rows[i].level);
#define SAME(a, b) ((a) == NULL ? (b) == NULL : (b) != NULL && strcmp((a), (b)) == 0)
        if (!SAME(rows[i].match, p.match) || !SAME(rows[i].protocols, p.protocols) ||
            !SAME(rows[i].ciphers, p.ciphers) || !SAME(rows[i].exclude, p.exclude) ||
            !SAME(rows[i].servername, p.servername))
            fail_msg("\"%s\": attributes differ", rows[i].text);
#undef SAME
        tls_policy_free(&p);
    }
}

static void test_tls_match_names_and_servername_expand(void **state)
{
    char **n;

    (void) state;
    n = tls_match_names("nexthop, dot-nexthop", "mx1.example.org", "example.org");
    assert_string_equal(n[0], "example.org");
    assert_string_equal(n[1], ".example.org");
    assert_null(n[2]);
    tls_names_free(n);
    n = tls_match_names("hostname:mail.example.net", "mx1.example.org", "example.org");
    assert_string_equal(n[0], "mx1.example.org");
    assert_string_equal(n[1], "mail.example.net");
    assert_null(n[2]);
    tls_names_free(n);
    n = tls_match_names("hostname", NULL, "example.org");
    assert_null(n[0]);
    tls_names_free(n);
    assert_null(tls_servername("", "mx", "nh"));
    assert_null(tls_servername(NULL, "mx", "nh"));
    assert_string_equal(tls_servername("hostname", "mx", "nh"), "mx");
    assert_string_equal(tls_servername("nexthop", "mx", "nh"), "nh");
    assert_string_equal(tls_servername("mail.example.org", "mx", "nh"), "mail.example.org");
}

/* A policy's protocols and names take effect on the connection. */
static void test_tls_policy_overrides_apply_per_connection(void **state)
{
    tls_server_config sc = server_cfg();
    tls_client_config cc = client_cfg();
    tls_ctx *sctx = tls_server_init_config(&sc), *cctx = tls_client_init_config(&cc);
    tls_policy p;
    char **names;
    struct conn c;

    (void) state;
    assert_int_equal(tls_policy_parse("secure match=nexthop protocols=TLSv1.2 ciphers=high", &p), 0);
    names = tls_match_names(p.match, "mx.example.org", "localhost");
    {
        tls_client_opts o = {.level = p.level,
                             .servername = "localhost",
                             .match = (const char *const *) names,
                             .peer = "peer",
                             .protocols = p.protocols,
                             .ciphers = p.ciphers,
                             .exclude_ciphers = p.exclude};

        conn_open(&c);
        handshake(&c, sctx, cctx, &o);
        assert_int_equal(c.rc, TLS_HS_DONE);
        assert_string_equal(tls_get_info(c.cli)->protocol, "TLSv1.2");
        assert_int_equal(tls_get_info(c.cli)->trust, TLS_TRUST_VERIFIED);
        conn_close(&c);
    }
    tls_names_free(names);
    tls_policy_free(&p);
    /* the same policy naming the MX host instead fails verification */
    assert_int_equal(tls_policy_parse("verify match=hostname", &p), 0);
    names = tls_match_names(p.match, "mx.example.org", "localhost");
    {
        tls_client_opts o = {
            .level = p.level, .servername = "localhost", .match = (const char *const *) names, .peer = "peer"};

        conn_open(&c);
        handshake(&c, sctx, cctx, &o);
        assert_int_equal(c.rc, TLS_HS_ERROR);
        conn_close(&c);
    }
    tls_names_free(names);
    tls_policy_free(&p);
    tls_ctx_free(sctx);
    tls_ctx_free(cctx);
}

/* The server's in-process session cache resumes clients without tickets. */
static void test_tls_server_session_cache_resumes_without_tickets(void **state)
{
    tls_server_config sc = server_cfg();
    tls_ctx *sctx;
    SSL_CTX *rctx;
    SSL_SESSION *saved = NULL;

    (void) state;
    sc.protocols = "TLSv1.2";
    sctx = tls_server_init_config(&sc);
    assert_non_null(sctx);
    for (int round = 0; round < 2; round++) {
        struct conn c;
        SSL *cl;
        char buf[16];

        conn_open(&c);
        c.ss = tls_server_begin(sctx, c.srv, "nt[127.0.0.1]");
        if (round == 0) {
            cl = raw_client(&rctx, stream_fd(c.cli), TLS1_2_VERSION);
            SSL_CTX_set_options(rctx, SSL_OP_NO_TICKET);
            SSL_set_options(cl, SSL_OP_NO_TICKET);
        } else {
            cl = SSL_new(rctx);
            SSL_set_fd(cl, stream_fd(c.cli));
            SSL_set_connect_state(cl);
            assert_int_equal(SSL_set_session(cl, saved), 1);
        }
        assert_true(raw_handshake(cl, &c));
        assert_int_equal(tls_get_info(c.srv)->reused, round);
        assert_int_equal(SSL_session_reused(cl), round);
        /* a session ID, not a ticket, carried the resumption */
        assert_int_equal(SSL_SESSION_has_ticket(SSL_get0_session(cl)), 0);
        assert_int_equal(stream_puts(c.srv, "ok\r\n"), 0);
        assert_int_equal(stream_flush(c.srv), 0);
        assert_int_equal(SSL_read(cl, buf, sizeof(buf)), 4);
        if (round == 0)
            saved = SSL_get1_session(cl);
        (void) SSL_shutdown(cl); /* else the session is dropped */
        SSL_free(cl);
        conn_close(&c);
    }
    SSL_SESSION_free(saved);
    SSL_CTX_free(rctx);
    tls_ctx_free(sctx);
}

/* smtp_tls_CApath: a hashed directory of trust anchors works like CAfile. */
static void test_tls_client_trusts_capath(void **state)
{
    tls_server_config sc = server_cfg();
    tls_client_config cc = client_cfg();
    tls_ctx *sctx, *cctx;
    tls_client_opts o = {.level = TLS_LEV_VERIFY, .servername = "localhost", .match = localhost, .peer = "peer"};
    struct conn c;

    (void) state;
    cc.CAfile = NULL;
    cc.CApath = path("capath");
    sctx = tls_server_init_config(&sc);
    cctx = tls_client_init_config(&cc);
    assert_non_null(cctx);
    conn_open(&c);
    handshake(&c, sctx, cctx, &o);
    assert_int_equal(c.rc, TLS_HS_DONE);
    assert_int_equal(tls_get_info(c.cli)->trust, TLS_TRUST_VERIFIED);
    conn_close(&c);
    tls_ctx_free(cctx);
    /* without any trust anchors, verify fails */
    cc.CApath = NULL;
    cctx = tls_client_init_config(&cc);
    conn_open(&c);
    clear_logs();
    handshake(&c, sctx, cctx, &o);
    assert_int_equal(c.rc, TLS_HS_ERROR);
    assert_non_null(strstr(warnings, "verification failed"));
    conn_close(&c);
    tls_ctx_free(cctx);
    tls_ctx_free(sctx);
}

/* spawn - fork/execve argv with stdin from *in_w and stdout+stderr to *out_r */
static pid_t spawn(char *const argv[], int *in_w, int *out_r)
{
    int in[2], out[2];
    pid_t pid;

    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *envp[] = {"PATH=/usr/bin:/bin", NULL};

        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    *in_w = in[1];
    *out_r = out[0];
    return pid;
}

/* slurp - read all of fd into a buffer (bounded) */
static void slurp(int fd, char *buf, size_t size)
{
    size_t len = 0;
    ssize_t n;

    while (len + 1 < size && (n = read(fd, buf + len, size - len - 1)) > 0)
        len += (size_t) n;
    buf[len] = 0;
}

/* listen_local - a TCP listener on 127.0.0.1 with a free port */
static int listen_local(int *port)
{
    struct sockaddr_in sin;
    socklen_t slen = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *) &sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, 5), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *) &sin, &slen), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

/*
 * Interoperation with another client: "openssl s_client -starttls smtp"
 * speaks SMTP up to STARTTLS, then verifies our certificate and name.
 */
static void test_tls_server_interoperates_with_openssl_s_client_starttls(void **state)
{
    tls_server_config sc = server_cfg();
    tls_ctx *sctx = tls_server_init_config(&sc);
    int port, lfd, cfd, in_w, out_r, status, flags;
    char connect[64], out[16384];
    char *argv[] = {"/usr/bin/openssl",
                    "s_client",
                    "-connect",
                    connect,
                    "-starttls",
                    "smtp",
                    "-CAfile",
                    (char *) path("ca.pem"),
                    "-verify_hostname",
                    "localhost",
                    "-verify_return_error",
                    "-servername",
                    "localhost",
                    "-brief",
                    "-nocommands",
                    NULL};
    stream *s;
    vbuf line;
    pid_t pid;

    (void) state;
    if (access(argv[0], X_OK) != 0)
        skip();
    lfd = listen_local(&port);
    snprintf(connect, sizeof(connect), "127.0.0.1:%d", port);
    pid = spawn(argv, &in_w, &out_r);
    cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(cfd >= 0);
    s = stream_open(cfd);
    stream_set_timeout(s, 10);
    vbuf_init(&line, 0);
    assert_int_equal(stream_puts(s, "220 localhost ESMTP\r\n"), 0);
    assert_int_equal(stream_flush(s), 0);
    assert_true(stream_getline(s, &line, 512, &flags) > 0);
    assert_true(strncasecmp(vbuf_str(&line), "EHLO ", 5) == 0);
    assert_int_equal(stream_puts(s, "250-localhost\r\n250 STARTTLS\r\n"), 0);
    assert_int_equal(stream_flush(s), 0);
    assert_true(stream_getline(s, &line, 512, &flags) > 0);
    assert_string_equal(vbuf_str(&line), "STARTTLS");
    assert_int_equal(stream_puts(s, "220 2.0.0 Ready to start TLS\r\n"), 0);
    assert_non_null(tls_server_start(sctx, s, "s_client[127.0.0.1]", 10));
    /* over TLS: a line from us to its stdout, and one from its stdin to us */
    assert_int_equal(stream_puts(s, "250 hello over TLS\r\n"), 0);
    assert_int_equal(stream_flush(s), 0);
    assert_int_equal(write(in_w, "NOOP\r\n", 6), 6);
    assert_true(stream_getline(s, &line, 512, &flags) > 0);
    assert_string_equal(vbuf_str(&line), "NOOP");
    assert_int_equal(tls_get_info(s)->trust, TLS_TRUST_ANONYMOUS);
    tls_shutdown(s);
    stream_close(s);
    close(in_w);
    slurp(out_r, out, sizeof(out));
    close(out_r);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (strstr(out, "Verification: OK") == NULL || strstr(out, "250 hello over TLS") == NULL)
        fail_msg("s_client output: %s", out);
    assert_non_null(strstr(out, "TLSv1.3"));
    vbuf_release(&line);
    close(lfd);
    tls_ctx_free(sctx);
}

/* And our client against "openssl s_server": SNI sent, name verified. */
static void test_tls_client_interoperates_with_openssl_s_server(void **state)
{
    tls_client_config cc = client_cfg();
    tls_ctx *cctx = tls_client_init_config(&cc);
    tls_client_opts o = {.level = TLS_LEV_VERIFY, .servername = "localhost", .match = localhost, .peer = "s_server"};
    char port_s[16], out[16384];
    int in_w, out_r, status, fd = -1, port = 0;
    char *argv[] = {"/usr/bin/openssl",
                    "s_server",
                    "-accept",
                    port_s,
                    "-cert",
                    (char *) path("other-server.pem"),
                    "-key",
                    (char *) path("other-server.key"),
                    "-naccept",
                    "1",
                    "-servername",
                    "localhost",
                    "-cert2",
                    (char *) path("server.pem"),
                    "-key2",
                    (char *) path("server.key"),
                    "-quiet",
                    NULL};
    pid_t pid;
    stream *s;
    vbuf line;
    int flags;

    (void) state;
    if (access(argv[0], X_OK) != 0)
        skip();
    /* pick a free port, release it, let s_server take it */
    close(listen_local(&port));
    snprintf(port_s, sizeof(port_s), "%d", port);
    pid = spawn(argv, &in_w, &out_r);
    for (int i = 0; i < 100 && fd < 0; i++) {
        struct sockaddr_in sin;

        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sin.sin_port = htons((uint16_t) port);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(fd, (struct sockaddr *) &sin, sizeof(sin)) < 0) {
            close(fd);
            fd = -1;
            usleep(50000);
        }
    }
    assert_true(fd >= 0);
    s = stream_open(fd);
    stream_set_timeout(s, 10);
    /* SNI "localhost" selects the test CA's certificate; without it s_server
     * would present other-server (unknown CA) and verification would fail */
    clear_logs();
    if (tls_client_start(cctx, s, &o, 10) == NULL)
        fail_msg("handshake with s_server failed: %s", warnings);
    assert_int_equal(tls_get_info(s)->trust, TLS_TRUST_VERIFIED);
    assert_int_equal(stream_puts(s, "ping over TLS\r\n"), 0);
    assert_int_equal(stream_flush(s), 0);
    assert_int_equal(write(in_w, "pong over TLS\n", 14), 14);
    vbuf_init(&line, 0);
    assert_true(stream_getline(s, &line, 512, &flags) > 0);
    assert_string_equal(vbuf_str(&line), "pong over TLS");
    tls_shutdown(s);
    stream_close(s);
    close(in_w);
    slurp(out_r, out, sizeof(out));
    close(out_r);
    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (strstr(out, "ping over TLS") == NULL)
        fail_msg("s_server output: %s", out);
    vbuf_release(&line);
    tls_ctx_free(cctx);
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
        cmocka_unit_test(test_tls_policy_parse_accepts_postfix_forms_and_rejects_junk),
        cmocka_unit_test(test_tls_match_names_and_servername_expand),
        cmocka_unit_test(test_tls_policy_overrides_apply_per_connection),
        cmocka_unit_test(test_tls_server_session_cache_resumes_without_tickets),
        cmocka_unit_test(test_tls_client_trusts_capath),
        cmocka_unit_test(test_tls_server_interoperates_with_openssl_s_client_starttls),
        cmocka_unit_test(test_tls_client_interoperates_with_openssl_s_server),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
