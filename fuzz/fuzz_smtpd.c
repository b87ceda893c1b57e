/*
 * fuzz_smtpd - libFuzzer target: arbitrary bytes from a client, fed to the
 * whole smtpd state machine (command parser, DATA/BDAT, AUTH dialogue,
 * restrictions, ETRN) over a real socketpair. cleanup is replaced by an
 * in-memory stand-in (this is the only place smtpd uses one), which checks
 * that nothing is ever handed over after a content error; so is the
 * queue manager's flush_site request, which checks that ETRN only ever
 * passes on a well-formed, eligible name.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../smtpd/anvil_client.c"
#include "../smtpd/auth.c"
#include "../smtpd/bdat.c"
#include "../smtpd/check.c"
#include "../smtpd/data.c"
#include "../smtpd/etrn.c"
#include "../smtpd/proto.c"
#include "../smtpd/tls.c"
#include "conf.h"

/* ---- the cleanup stand-in ---- */

struct fake_queue {
    size_t content;
    int nrcpt;
};

/* smtpd_queue_open - a fixed queue ID */
int smtpd_queue_open(smtpd_session *s, vbuf *err)
{
    s->queue = (smtpd_queue *) xcalloc(1, sizeof(struct fake_queue));
    snprintf(s->queue_id, sizeof(s->queue_id), "FUZZ00000000000001");
    return 0;
}

void smtpd_queue_attr(smtpd_session *s, const char *name, const char *value)
{
    if (s->queue == NULL || name == NULL || value == NULL)
        abort();
}

void smtpd_queue_rcpt(smtpd_session *s, const char *addr, const char *orcpt, int notify)
{
    if (s->queue == NULL || *addr == 0)
        abort();
    ((struct fake_queue *) s->queue)->nrcpt++;
}

int smtpd_queue_content(smtpd_session *s, const void *data, size_t len)
{
    if (s->queue == NULL)
        return -1;
    ((struct fake_queue *) s->queue)->content += len;
    return 0;
}

int smtpd_queue_send_end(smtpd_session *s)
{
    return -1; /* the verdict is ready at once */
}

int smtpd_queue_verdict(smtpd_session *s, vbuf *reason)
{
    struct fake_queue *q = (struct fake_queue *) s->queue;

    /* Invariant: a message with a content error is never finished. */
    if (q == NULL || s->data_errors || q->nrcpt == 0)
        abort();
    xfree(q);
    s->queue = NULL;
    vbuf_set(reason, s->queue_id);
    return CLEANUP_OK;
}

void smtpd_queue_abort(smtpd_session *s)
{
    xfree(s->queue);
    s->queue = NULL;
}

/* ---- the qmgr stand-in ---- */

/* smtpd_flush_site - ETRN's request: only a checked name of a fast-flush domain gets here */
int smtpd_flush_site(const char *site, int subdomains, vbuf *why)
{
    vbuf name;
    int kind;

    vbuf_init(&name, 0);
    if (smtpd_etrn_parse(site, &name, &kind) != 0 || kind != SMTPD_ETRN_DOMAIN || strcmp(vbuf_str(&name), site) != 0 ||
        smtpd_check_fast_flush(site) != 1 || (subdomains != 0 && subdomains != 1))
        abort();
    vbuf_release(&name);
    /* Every outcome a real qmgr can give. */
    vbuf_set(why, "stand-in");
    return (int) (strlen(site) % 3) - 1;
}

static int initialized;

/* setup - a configuration that exercises most paths */
static void setup(void)
{
    conf_override("myhostname", "fuzz.example");
    conf_override("mydestination", "fuzz.example localhost");
    conf_override("local_recipient_maps", "");
    conf_override("mynetworks", "127.0.0.0/8");
    conf_override("message_size_limit", "100000");
    conf_override("smtpd_greet_pause_ms", "0");
    conf_override("smtpd_error_sleep_time", "0");
    conf_override("smtpd_sasl_failure_delay", "0");
    conf_override("smtpd_sasl_auth_enable", "yes");
    conf_override("smtpd_tls_auth_only", "no");
    conf_override("smtpd_sasl_password_maps", "static:{{PLAIN}secret}");
    conf_override("smtpd_peername_lookup", "no");
    conf_override("smtpd_max_line_length", "200");
    conf_override("relay_domains", "relay.example");
    conf_override("smtpd_etrn_restrictions", "check_etrn_access inline:{blocked.relay.example=REJECT}, permit");
    if (conf_load("/nonexistent") != 0)
        abort();
    msg_stderr(0);
    smtpd_check_init();
    smtpd_sasl_init();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    size_t off = 0;
    char sink[65536];
    smtpd_session *s;
    int r, rounds = 0;

    if (!initialized) {
        setup();
        initialized = 1;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        abort();
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    /* Alternate: push client bytes, let the server run, drain its replies. */
    s = smtpd_session_new(sv[1], 0, "client.example", size & 1 ? "127.0.0.1" : "192.0.2.7", "1234");
    s->sleep_ms = 0;
    s->mode = SMTPD_MODE_CMD;
    for (;;) {
        if (off < size) {
            ssize_t n = write(sv[0], data + off, size - off);

            if (n > 0)
                off += (size_t) n;
            if (off == size)
                shutdown(sv[0], SHUT_WR);
        } else if (size == 0) {
            shutdown(sv[0], SHUT_WR);
        }
        s->sleep_ms = 0;
        r = smtpd_run(s);
        while (read(sv[0], sink, sizeof(sink)) > 0)
            ;
        if (r == SMTPD_WANT_CLOSE || ++rounds > 100000)
            break;
    }
    smtpd_session_free(s);
    close(sv[0]);
    close(sv[1]);
    return 0;
}
