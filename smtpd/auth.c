/*
 * auth.c - SMTP AUTH (RFC 4954) with PLAIN (RFC 4616), LOGIN, CRAM-MD5
 * (RFC 2195) and SCRAM-SHA-256 (RFC 5802, RFC 7677), checked against
 * smtpd_sasl_password_maps.
 *
 * Offers the AUTH command, the SASL dialogue and the mechanism list. The
 * stored secret is a crypt(3) hash ("$6$...", "$y$...", optionally behind
 * "{CRYPT}") or "{PLAIN}secret". CRAM-MD5 and SCRAM-SHA-256 need the plain
 * secret, so they are offered only when every secret in the tables is
 * stored that way; a user whose secret isn't plain fails them.
 *
 * Trusts the password tables; trusts nothing the client sends: every
 * response is base64-decoded with a bound, parsed strictly, and compared
 * in constant time. Failures are answered 535 5.7.8 after a delay and
 * logged the way fail2ban expects.
 */
#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "base64.h"
#include "maps.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "smtpd.h"
#include "strutil.h"

#define MECH_PLAIN 1
#define MECH_LOGIN 2
#define MECH_CRAM 3
#define MECH_SCRAM 4

#define SCRAM_ITERATIONS 4096
#define SASL_MAX_DECODED 8192

struct smtpd_sasl {
    int mech;
    int step;
    vbuf user;
    vbuf challenge;         /* CRAM-MD5 challenge */
    vbuf client_first_bare; /* SCRAM */
    vbuf server_first;
    vbuf gs2_header;
    vbuf nonce;
    vbuf server_final;
    int ok; /* SCRAM proof verified, waiting for the empty reply */
};

static const struct {
    const char *name;
    int mech;
    int needs_plain;
} sasl_mechs[] = {
    {"PLAIN", MECH_PLAIN, 0},
    {"LOGIN", MECH_LOGIN, 0},
    {"CRAM-MD5", MECH_CRAM, 1},
    {"SCRAM-SHA-256", MECH_SCRAM, 1},
};
#define NMECHS (sizeof(sasl_mechs) / sizeof(sasl_mechs[0]))

static maps *password_maps;
static int secrets_all_plain;
static char mech_list[128];

/* value_plain - does a stored secret allow recovering the password */
static int value_plain(const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    return strncmp(v, "{PLAIN}", 7) == 0;
}

/* scan_source - check every value in a table's source file; 1 all plain, 0 not */
static int scan_source(const char *path)
{
    FILE *fp = fopen(path, "r");
    char buf[4096];
    int all = 1, any = 0;

    if (fp == NULL)
        return 0;
    while (fgets(buf, sizeof(buf), fp)) {
        char *p = buf + strspn(buf, " \t");
        char *v;

        if (*p == '#' || *p == '\n' || *p == 0)
            continue;
        v = p + strcspn(p, " \t:\n");
        v += strspn(v, " \t:");
        any = 1;
        if (!value_plain(v))
            all = 0;
    }
    fclose(fp);
    return all && any;
}

/* scan_inline - inline:{ user = {PLAIN}x, ... } */
static int scan_inline(const char *spec)
{
    char *copy = xstrdup(spec + 8), *cursor, *w;
    int all = 1, any = 0;

    cursor = copy;
    if (*cursor == '{')
        cursor++;
    while ((w = str_token(&cursor, ",}")) != NULL) {
        char *eq = strchr(w, '=');

        if (eq == NULL)
            continue;
        any = 1;
        if (!value_plain(eq + 1))
            all = 0;
    }
    xfree(copy);
    return all && any;
}

/*
 * secrets_plain - are all secrets in the password tables plain (so that
 * CRAM-MD5 and SCRAM can work)? Tables are read from their source files.
 */
static int secrets_plain(const char *value)
{
    char *copy, *cursor, *w;
    int all = 1, any = 0;

    if (strncmp(value, "inline:", 7) == 0)
        return scan_inline(value);
    copy = xstrdup(value);
    cursor = copy;
    while ((w = str_token(&cursor, CHARS_COMMA_SPACE)) != NULL) {
        any = 1;
        if (strncmp(w, "texthash:", 9) == 0)
            all &= scan_source(w + 9);
        else if (strncmp(w, "hash:", 5) == 0 || strncmp(w, "btree:", 6) == 0)
            all &= scan_source(strchr(w, ':') + 1);
        else if (strncmp(w, "static:", 7) == 0)
            all &= value_plain(w[7] == '{' ? w + 8 : w + 7); /* static:{value} */
        else
            all = 0;
    }
    xfree(copy);
    return all && any;
}

/* smtpd_sasl_init - open the password tables (before chroot) */
void smtpd_sasl_init(void)
{
    size_t i;

    mech_list[0] = 0;
    if (password_maps) {
        maps_close(password_maps);
        password_maps = NULL;
    }
    if (!var_smtpd_sasl_auth_enable)
        return;
    if (var_smtpd_sasl_password_maps == NULL || *var_smtpd_sasl_password_maps == 0) {
        msg_warn("smtpd_sasl_auth_enable is set but smtpd_sasl_password_maps is empty; AUTH disabled");
        return;
    }
    password_maps = maps_open("smtpd_sasl_password_maps", var_smtpd_sasl_password_maps, 0);
    secrets_all_plain = secrets_plain(var_smtpd_sasl_password_maps);
    for (i = 0; i < NMECHS; i++) {
        if (sasl_mechs[i].needs_plain && !secrets_all_plain)
            continue;
        if (mech_list[0])
            strncat(mech_list, " ", sizeof(mech_list) - strlen(mech_list) - 1);
        strncat(mech_list, sasl_mechs[i].name, sizeof(mech_list) - strlen(mech_list) - 1);
    }
}

/* smtpd_sasl_mechs - see smtpd.h: NULL when AUTH isn't available now */
const char *smtpd_sasl_mechs(const smtpd_session *s)
{
    if (!var_smtpd_sasl_auth_enable || password_maps == NULL || mech_list[0] == 0 || s->standalone)
        return NULL;
    if (var_smtpd_tls_auth_only && !s->tls_active)
        return NULL;
    return mech_list;
}

/* ---- secrets ---- */

/* const_eq - constant-time comparison of two strings */
static int const_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la != lb)
        return 0;
    return CRYPTO_memcmp(a, b, la) == 0;
}

/* smtpd_sasl_check_secret - password against "{PLAIN}x" or a crypt(3) hash: 1 or 0 */
int smtpd_sasl_check_secret(const char *stored, const char *password)
{
    struct crypt_data *cd;
    const char *h;
    int ok;

    while (*stored == ' ' || *stored == '\t')
        stored++;
    if (strncmp(stored, "{PLAIN}", 7) == 0)
        return const_eq(stored + 7, password);
    if (strncmp(stored, "{CRYPT}", 7) == 0)
        stored += 7;
    if (*stored == 0)
        return 0;
    cd = xcalloc(1, sizeof(*cd));
    h = crypt_r(password, stored, cd);
    ok = h != NULL && h[0] != '*' && const_eq(h, stored);
    xfree(cd);
    return ok;
}

/* plain_secret - the stored password if it is kept in plain, else NULL */
static const char *plain_secret(const char *stored)
{
    while (*stored == ' ' || *stored == '\t')
        stored++;
    return strncmp(stored, "{PLAIN}", 7) == 0 ? stored + 7 : NULL;
}

/* lookup_secret - the user's stored secret; NULL (status in *st) */
static const char *lookup_secret(const char *user, int *st)
{
    if (password_maps == NULL) {
        *st = MAP_NOTFOUND;
        return NULL;
    }
    return maps_find(password_maps, user, st);
}

/* ---- CRAM-MD5 ---- */

/* smtpd_cram_md5_digest - RFC 2195: hex HMAC-MD5(secret, challenge) */
void smtpd_cram_md5_digest(const char *secret, const char *challenge, char hex[33])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char digits[] = "0123456789abcdef";
    unsigned int i;

    HMAC(EVP_md5(), secret, (int) strlen(secret), (const unsigned char *) challenge, strlen(challenge), md, &mdlen);
    for (i = 0; i < 16 && i < mdlen; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[32] = 0;
}

/* ---- SCRAM-SHA-256 ---- */

/* scram_unescape - RFC 5802 §5.1 saslname: "=2C" and "=3D"; -1 if malformed */
static int scram_unescape(vbuf *out, const char *p, size_t len)
{
    size_t i;

    vbuf_reset(out);
    for (i = 0; i < len; i++) {
        if (p[i] == ',')
            return -1;
        if (p[i] == '=') {
            if (len - i >= 3 && strncmp(p + i, "=2C", 3) == 0)
                vbuf_putc(out, ',');
            else if (len - i >= 3 && strncmp(p + i, "=3D", 3) == 0)
                vbuf_putc(out, '=');
            else
                return -1;
            i += 2;
        } else {
            vbuf_putc(out, p[i]);
        }
    }
    return out->len ? 0 : -1;
}

/*
 * smtpd_scram_server_first - RFC 5802 §5.1: parse client-first-message,
 * build server-first-message (not base64). 0 or -1.
 */
int smtpd_scram_server_first(smtpd_sasl *x, const char *cf, const char *snonce, const unsigned char *salt,
                             size_t salt_len, vbuf *out)
{
    const char *p = cf, *bare, *n, *r, *end;
    vbuf salt64;

    /* gs2-header: "n,," or "y,," with an optional authzid; no channel binding. */
    if ((p[0] != 'n' && p[0] != 'y') || p[1] != ',')
        return -1;
    p += 2;
    if (strncmp(p, "a=", 2) == 0)
        p += strcspn(p, ",");
    if (*p != ',')
        return -1;
    p++;
    vbuf_setn(&x->gs2_header, cf, (size_t) (p - cf));
    bare = p;
    if (strncmp(bare, "m=", 2) == 0)
        return -1; /* RFC 5802: mandatory extensions unsupported */
    if (strncmp(bare, "n=", 2) != 0)
        return -1;
    n = bare + 2;
    end = strchr(n, ',');
    if (end == NULL || scram_unescape(&x->user, n, (size_t) (end - n)) < 0)
        return -1;
    if (strncmp(end, ",r=", 3) != 0)
        return -1;
    r = end + 3;
    end = r + strcspn(r, ",");
    if (end == r)
        return -1;
    for (p = r; p < end; p++)
        if (*p < 0x21 || *p > 0x7e)
            return -1;
    vbuf_set(&x->client_first_bare, bare);
    vbuf_setn(&x->nonce, r, (size_t) (end - r));
    vbuf_puts(&x->nonce, snonce);
    vbuf_init(&salt64, 0);
    base64_encode(&salt64, salt, salt_len);
    vbuf_reset(out);
    vbuf_printf(out, "r=%s,s=%s,i=%d", vbuf_str(&x->nonce), vbuf_str(&salt64), SCRAM_ITERATIONS);
    vbuf_set(&x->server_first, vbuf_str(out));
    vbuf_release(&salt64);
    return 0;
}

/* hmac256 - HMAC-SHA-256 */
static void hmac256(const unsigned char *key, size_t klen, const void *data, size_t dlen, unsigned char out[32])
{
    unsigned int len = 32;

    HMAC(EVP_sha256(), key, (int) klen, data, dlen, out, &len);
}

/*
 * smtpd_scram_server_final - RFC 5802 §3: verify client-final-message with
 * the plain secret; out gets server-final-message ("v=..."). 0 or -1.
 */
int smtpd_scram_server_final(smtpd_sasl *x, const char *secret, const char *cfinal, vbuf *out)
{
    const char *pp, *p;
    vbuf cbind, nonce_part, proof, salt, auth_msg, sig64;
    unsigned char salted[32], client_key[32], stored_key[32], client_sig[32], recovered[32], server_key[32],
        server_sig[32];
    int ok = -1;
    size_t i;
    const char *s_salt;

    vbuf_init(&cbind, 0);
    vbuf_init(&nonce_part, 0);
    vbuf_init(&proof, 0);
    vbuf_init(&salt, 0);
    vbuf_init(&auth_msg, 0);
    vbuf_init(&sig64, 0);
    if (strncmp(cfinal, "c=", 2) != 0)
        goto out;
    p = cfinal + 2;
    i = strcspn(p, ",");
    base64_encode(&cbind, vbuf_str(&x->gs2_header), x->gs2_header.len);
    if (i != cbind.len || strncmp(p, vbuf_str(&cbind), i) != 0)
        goto out;
    p += i;
    if (strncmp(p, ",r=", 3) != 0)
        goto out;
    p += 3;
    i = strcspn(p, ",");
    if (i != x->nonce.len || strncmp(p, vbuf_str(&x->nonce), i) != 0)
        goto out;
    pp = strstr(cfinal, ",p=");
    if (pp == NULL || strchr(pp + 3, ','))
        goto out;
    if (base64_decode(&proof, pp + 3, strlen(pp + 3)) < 0 || proof.len != 32)
        goto out;
    s_salt = strstr(vbuf_str(&x->server_first), ",s=");
    if (s_salt == NULL || base64_decode(&salt, s_salt + 3, strcspn(s_salt + 3, ",")) < 0)
        goto out;
    if (PKCS5_PBKDF2_HMAC(secret, (int) strlen(secret), (const unsigned char *) salt.data, (int) salt.len,
                          SCRAM_ITERATIONS, EVP_sha256(), 32, salted) != 1)
        goto out;
    hmac256(salted, 32, "Client Key", 10, client_key);
    SHA256(client_key, 32, stored_key);
    vbuf_printf(&auth_msg, "%s,%s,", vbuf_str(&x->client_first_bare), vbuf_str(&x->server_first));
    vbuf_append(&auth_msg, cfinal, (size_t) (pp - cfinal));
    hmac256(stored_key, 32, auth_msg.data, auth_msg.len, client_sig);
    for (i = 0; i < 32; i++)
        recovered[i] = (unsigned char) proof.data[i] ^ client_sig[i];
    SHA256(recovered, 32, client_key);
    if (CRYPTO_memcmp(client_key, stored_key, 32) != 0)
        goto out;
    hmac256(salted, 32, "Server Key", 10, server_key);
    hmac256(server_key, 32, auth_msg.data, auth_msg.len, server_sig);
    base64_encode(&sig64, server_sig, 32);
    vbuf_reset(out);
    vbuf_printf(out, "v=%s", vbuf_str(&sig64));
    ok = 0;
out:
    OPENSSL_cleanse(salted, sizeof(salted));
    vbuf_release(&cbind);
    vbuf_release(&nonce_part);
    vbuf_release(&proof);
    vbuf_release(&salt);
    vbuf_release(&auth_msg);
    vbuf_release(&sig64);
    return ok;
}

/* ---- dialogue state ---- */

/* smtpd_sasl_new - state for one AUTH exchange */
smtpd_sasl *smtpd_sasl_new(const char *mech)
{
    smtpd_sasl *x = xcalloc(1, sizeof(*x));
    size_t i;

    for (i = 0; i < NMECHS; i++)
        if (strcasecmp(mech, sasl_mechs[i].name) == 0)
            x->mech = sasl_mechs[i].mech;
    vbuf_init(&x->user, 1024);
    vbuf_init(&x->challenge, 0);
    vbuf_init(&x->client_first_bare, 0);
    vbuf_init(&x->server_first, 0);
    vbuf_init(&x->gs2_header, 0);
    vbuf_init(&x->nonce, 0);
    vbuf_init(&x->server_final, 0);
    return x;
}

/* smtpd_sasl_destroy - forget an exchange */
void smtpd_sasl_destroy(smtpd_sasl *x)
{
    vbuf_release(&x->user);
    vbuf_release(&x->challenge);
    vbuf_release(&x->client_first_bare);
    vbuf_release(&x->server_first);
    vbuf_release(&x->gs2_header);
    vbuf_release(&x->nonce);
    vbuf_release(&x->server_final);
    xfree(x);
}

/* smtpd_sasl_user - the user named in the exchange */
const char *smtpd_sasl_user(const smtpd_sasl *x)
{
    return vbuf_str(&x->user);
}

/* smtpd_sasl_free - end the session's exchange, if any */
void smtpd_sasl_free(smtpd_session *s)
{
    if (s->sasl) {
        smtpd_sasl_destroy(s->sasl);
        s->sasl = NULL;
    }
}

/* mech_name - the canonical name of a mechanism */
static const char *mech_name(int mech)
{
    size_t i;

    for (i = 0; i < NMECHS; i++)
        if (sasl_mechs[i].mech == mech)
            return sasl_mechs[i].name;
    return "unknown";
}

/* challenge - send a 334 with base64 data */
static void challenge(smtpd_session *s, const void *data, size_t len)
{
    vbuf b;

    vbuf_init(&b, 0);
    base64_encode(&b, data, len);
    smtpd_reply(s, "334 %s", vbuf_str(&b));
    vbuf_release(&b);
    s->mode = SMTPD_MODE_AUTH;
    s->flush_now = 1;
}

/* auth_fail - RFC 4954 §6: 535 5.7.8 after a delay; log for fail2ban */
static void auth_fail(smtpd_session *s, const char *why)
{
    int mech = s->sasl ? s->sasl->mech : 0;

    msg_warn("%s: SASL %s authentication failed: %s", s->namaddr, mech_name(mech), why);
    smtpd_sasl_free(s);
    s->mode = SMTPD_MODE_CMD;
    smtpd_reply(s, "535 5.7.8 Error: authentication failed: authentication failure");
    if (var_smtpd_sasl_failure_delay > 0 && s->sleep_ms < var_smtpd_sasl_failure_delay * 1000L)
        s->sleep_ms = var_smtpd_sasl_failure_delay * 1000L;
}

/* auth_ok - the client is who it says */
static void auth_ok(smtpd_session *s, const char *user)
{
    xfree(s->sasl_method);
    xfree(s->sasl_username);
    s->sasl_method = xstrdup(mech_name(s->sasl->mech));
    s->sasl_username = xstrdup(user);
    smtpd_sasl_free(s);
    s->mode = SMTPD_MODE_CMD;
    smtpd_reply(s, "235 2.7.0 Authentication successful");
}

/* verify_password - PLAIN and LOGIN: look up and check */
static void verify_password(smtpd_session *s, const char *user, const char *password)
{
    int st;
    const char *stored;

    if (*user == 0 || strlen(user) > 256) {
        auth_fail(s, "bad user name");
        return;
    }
    stored = lookup_secret(user, &st);
    if (stored == NULL && st == MAP_ERROR) {
        smtpd_sasl_free(s);
        s->mode = SMTPD_MODE_CMD;
        smtpd_reply(s, "454 4.7.0 Temporary authentication failure");
        return;
    }
    if (stored == NULL || !smtpd_sasl_check_secret(stored, password)) {
        auth_fail(s, "authentication failure");
        return;
    }
    auth_ok(s, user);
}

/* sasl_step - feed one decoded client response to the mechanism */
static void sasl_step(smtpd_session *s, const char *data, size_t len)
{
    smtpd_sasl *x = s->sasl;
    int st;

    switch (x->mech) {
    case MECH_PLAIN: {
        /* RFC 4616 §2: [authzid] NUL authcid NUL passwd */
        const char *n1 = memchr(data, 0, len), *n2;

        if (x->step++ == 0 && len == 0) {
            challenge(s, "", 0);
            return;
        }
        if (n1 == NULL || (n2 = memchr(n1 + 1, 0, len - (size_t) (n1 + 1 - data))) == NULL ||
            memchr(n2 + 1, 0, len - (size_t) (n2 + 1 - data))) {
            auth_fail(s, "malformed PLAIN response");
            return;
        }
        if (n1 != data && strcmp(data, n1 + 1) != 0) {
            auth_fail(s, "authorization identity differs from authentication identity");
            return;
        }
        verify_password(s, n1 + 1, n2 + 1);
        return;
    }
    case MECH_LOGIN:
        if (memchr(data, 0, len)) {
            auth_fail(s, "NUL in LOGIN response");
            return;
        }
        if (x->step == 0) {
            x->step = 1;
            challenge(s, "Username:", 9);
            return;
        }
        if (x->step == 1) {
            vbuf_setn(&x->user, data, len);
            x->step = 2;
            challenge(s, "Password:", 9);
            return;
        }
        verify_password(s, vbuf_str(&x->user), data);
        return;
    case MECH_CRAM: {
        const char *sp, *stored, *secret;
        char hex[33];

        if (x->step++ == 0) {
            unsigned char rnd[8];
            unsigned long long r = 0;

            if (RAND_bytes(rnd, sizeof(rnd)) != 1)
                msg_fatal("RAND_bytes failed");
            memcpy(&r, rnd, sizeof(r));
            vbuf_printf(&x->challenge, "<%llu.%ld@%s>", r, (long) time(NULL), var_myhostname);
            challenge(s, x->challenge.data, x->challenge.len);
            return;
        }
        sp = memchr(data, ' ', len);
        if (sp == NULL || memchr(data, 0, len) || len - (size_t) (sp + 1 - data) != 32) {
            auth_fail(s, "malformed CRAM-MD5 response");
            return;
        }
        vbuf_setn(&x->user, data, (size_t) (sp - data));
        stored = lookup_secret(vbuf_str(&x->user), &st);
        if (stored == NULL && st == MAP_ERROR) {
            smtpd_sasl_free(s);
            s->mode = SMTPD_MODE_CMD;
            smtpd_reply(s, "454 4.7.0 Temporary authentication failure");
            return;
        }
        if (stored == NULL || (secret = plain_secret(stored)) == NULL) {
            auth_fail(s, "authentication failure");
            return;
        }
        smtpd_cram_md5_digest(secret, vbuf_str(&x->challenge), hex);
        {
            char got[32];
            size_t k;

            for (k = 0; k < 32; k++)
                got[k] = (char) tolower((unsigned char) sp[1 + k]);
            st = CRYPTO_memcmp(got, hex, 32);
        }
        if (st != 0) {
            auth_fail(s, "authentication failure");
            return;
        }
        {
            char user[1024];

            snprintf(user, sizeof(user), "%s", vbuf_str(&x->user));
            auth_ok(s, user);
        }
        return;
    }
    case MECH_SCRAM: {
        vbuf out;
        const char *stored, *secret;

        if (memchr(data, 0, len)) {
            auth_fail(s, "NUL in SCRAM response");
            return;
        }
        vbuf_init(&out, 0);
        if (x->step == 0) {
            if (len == 0) {
                x->step = 0;
                vbuf_release(&out);
                challenge(s, "", 0);
                return;
            }
            unsigned char salt[16], rnd[18];
            vbuf snonce;

            if (RAND_bytes(salt, sizeof(salt)) != 1 || RAND_bytes(rnd, sizeof(rnd)) != 1)
                msg_fatal("RAND_bytes failed");
            vbuf_init(&snonce, 0);
            base64_encode(&snonce, rnd, sizeof(rnd));
            if (smtpd_scram_server_first(x, data, vbuf_str(&snonce), salt, sizeof(salt), &out) < 0) {
                vbuf_release(&snonce);
                vbuf_release(&out);
                auth_fail(s, "malformed SCRAM client-first-message");
                return;
            }
            vbuf_release(&snonce);
            x->step = 1;
            challenge(s, out.data, out.len);
        } else if (x->step == 1) {
            stored = lookup_secret(vbuf_str(&x->user), &st);
            if (stored == NULL && st == MAP_ERROR) {
                vbuf_release(&out);
                smtpd_sasl_free(s);
                s->mode = SMTPD_MODE_CMD;
                smtpd_reply(s, "454 4.7.0 Temporary authentication failure");
                return;
            }
            if (stored == NULL || (secret = plain_secret(stored)) == NULL ||
                smtpd_scram_server_final(x, secret, data, &out) < 0) {
                vbuf_release(&out);
                auth_fail(s, "authentication failure");
                return;
            }
            /* RFC 4954 §4: additional data on success travels in a 334. */
            x->step = 2;
            challenge(s, out.data, out.len);
        } else {
            vbuf_release(&out);
            if (len != 0) {
                auth_fail(s, "unexpected SCRAM data");
                return;
            }
            {
                char user[1024];

                snprintf(user, sizeof(user), "%s", vbuf_str(&x->user));
                auth_ok(s, user);
            }
            return;
        }
        vbuf_release(&out);
        return;
    }
    default:
        auth_fail(s, "unknown mechanism");
    }
}

/* decode_response - base64 of a client response ("=" is empty); 0 or -1 */
static int decode_response(const char *text, vbuf *out)
{
    vbuf_reset(out);
    if (strcmp(text, "=") == 0)
        return 0;
    if (strlen(text) > SASL_MAX_DECODED * 4 / 3 + 4)
        return -1;
    return base64_decode(out, text, strlen(text));
}

/* smtpd_auth_cmd - RFC 4954 §4: AUTH mechanism [initial-response] */
void smtpd_auth_cmd(smtpd_session *s, int argc, char **argv)
{
    const char *mechs = smtpd_sasl_mechs(s);
    vbuf dec;
    size_t i;
    int offered = 0;

    if (mechs == NULL) {
        smtpd_reply(s, "503 5.5.1 Error: authentication not enabled");
        return;
    }
    if (!s->esmtp) {
        smtpd_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
        return;
    }
    if (s->sasl_username) {
        smtpd_reply(s, "503 5.5.1 Error: already authenticated");
        return;
    }
    if (s->sender) {
        smtpd_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
        return;
    }
    if (argc < 1 || argc > 2) {
        smtpd_reply(s, "501 5.5.4 Syntax: AUTH mechanism");
        return;
    }
    for (i = 0; i < NMECHS; i++) {
        if (strcasecmp(argv[0], sasl_mechs[i].name) == 0 && (!sasl_mechs[i].needs_plain || secrets_all_plain))
            offered = 1;
    }
    if (!offered) {
        smtpd_reply(s, "504 5.5.4 Unsupported authentication mechanism");
        return;
    }
    smtpd_sasl_free(s);
    s->sasl = smtpd_sasl_new(argv[0]);
    vbuf_init(&dec, 0);
    if (argc == 2) {
        /* RFC 4954 §4: an initial response; CRAM-MD5 has none. */
        if (s->sasl->mech == MECH_CRAM || decode_response(argv[1], &dec) < 0) {
            smtpd_sasl_free(s);
            smtpd_reply(s, "501 5.5.2 Cannot decode response");
            vbuf_release(&dec);
            return;
        }
        if (s->sasl->mech == MECH_LOGIN) {
            /* The initial response is the user name. */
            vbuf_setn(&s->sasl->user, dec.data, dec.len);
            s->sasl->step = 2;
            challenge(s, "Password:", 9);
        } else {
            if (s->sasl->mech == MECH_PLAIN)
                s->sasl->step = 1;
            sasl_step(s, dec.data, dec.len);
        }
    } else {
        sasl_step(s, "", 0);
    }
    vbuf_release(&dec);
}

/* smtpd_auth_response - one line from the client during AUTH */
void smtpd_auth_response(smtpd_session *s, const char *line)
{
    vbuf dec;

    if (s->sasl == NULL) {
        s->mode = SMTPD_MODE_CMD;
        return;
    }
    /* RFC 4954 §4: "*" cancels the exchange. */
    if (strcmp(line, "*") == 0) {
        smtpd_sasl_free(s);
        s->mode = SMTPD_MODE_CMD;
        smtpd_reply(s, "501 5.7.0 Authentication aborted");
        return;
    }
    vbuf_init(&dec, 0);
    if (*line == 0) {
        sasl_step(s, "", 0);
    } else if (base64_decode(&dec, line, strlen(line)) < 0) {
        smtpd_sasl_free(s);
        s->mode = SMTPD_MODE_CMD;
        smtpd_reply(s, "501 5.5.2 Cannot decode response");
    } else {
        sasl_step(s, dec.data, dec.len);
    }
    vbuf_release(&dec);
}
