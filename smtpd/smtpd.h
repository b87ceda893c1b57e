/*
 * smtpd.h - the SMTP server's session state and the interfaces between its
 * parts: proto.c (command table, dispatch, replies), data.c (DATA), bdat.c
 * (BDAT), check.c (restrictions), auth.c (SASL), tls.c (STARTTLS and
 * wrapper mode), queue.c (the hand-off to cleanup), etrn.c (ETRN) with
 * flush.c (its request to qmgr) and main.c (the event loop glue and the
 * server skeleton).
 *
 * A session is driven by smtpd_run(), which consumes whatever input is
 * available without blocking and says what it waits for next; main.c maps
 * that to the event loop. Everything read from the client is untrusted.
 */
#ifndef KITE_SMTPD_H
#define KITE_SMTPD_H

#include <stddef.h>
#include <sys/types.h>

#include "stream.h"
#include "vbuf.h"

/* What smtpd_run() wants next. */
#define SMTPD_WANT_READ 1
#define SMTPD_WANT_WRITE 2
#define SMTPD_WANT_SLEEP 3 /* sess->sleep_ms, then run again */
#define SMTPD_WANT_CLOSE 4
#define SMTPD_WANT_QUEUE 5 /* the verdict from cleanup, on queue_wait_fd */
#define SMTPD_WANT_QUEUE 5 /* the verdict from cleanup, on queue_wait_fd */

/* Input modes. */
enum smtpd_mode {
    SMTPD_MODE_GREET,      /* greeting not sent yet */
    SMTPD_MODE_TLS_WRAP,   /* wrapper-mode handshake before greeting */
    SMTPD_MODE_CMD,        /* reading commands */
    SMTPD_MODE_DATA,       /* reading DATA text */
    SMTPD_MODE_BDAT,       /* reading a BDAT chunk */
    SMTPD_MODE_AUTH,       /* reading a SASL response line */
    SMTPD_MODE_TLS,        /* STARTTLS handshake */
    SMTPD_MODE_QUEUE_WAIT, /* message ended; waiting for cleanup's verdict */
    SMTPD_MODE_QUIT        /* flush and close */
};

/* Per-verb counters for the "disconnect from" line. */
#define SMTPD_NCOUNT 32

/* Body types (RFC 6152, RFC 3030). */
#define SMTPD_BODY_NONE 0
#define SMTPD_BODY_7BIT 1
#define SMTPD_BODY_8BIT 2
#define SMTPD_BODY_BINARY 3

/* Data scanner error bits. */
#define SMTPD_DATA_BARE_LF (1 << 0)
#define SMTPD_DATA_BARE_CR (1 << 1)
#define SMTPD_DATA_TOO_BIG (1 << 2)
#define SMTPD_DATA_LONG_LINE (1 << 3)
#define SMTPD_DATA_NUL (1 << 4)
#define SMTPD_DATA_WRITE_ERR (1 << 5)

typedef struct smtpd_queue smtpd_queue;
typedef struct smtpd_sasl smtpd_sasl;
typedef struct smtpd_tls smtpd_tls;

typedef struct smtpd_session {
    int fd;     /* the client connection */
    stream *in; /* input and output: the same stream */
    stream *out;
    int standalone; /* -S: local submission (sendmail -bs) */
    enum smtpd_mode mode;

    /* Who the client is. */
    char *name; /* verified reverse name or "unknown" */
    char *addr; /* printable address */
    char *port;
    char *namaddr;           /* "name[addr]" for logs */
    int name_status;         /* enum smtpd_peer_status (lookup.h): the forward-confirmed name */
    int reverse_name_status; /* the same for the address->name mapping alone */
    int in_mynetworks;
    int anvil_exempt;   /* event limits: 0 not known yet, 1 exempt, -1 limited */
    unsigned anvil_gen; /* the anvil connection that counts this session; 0 none */

    /* Session state. */
    vbuf line; /* the current input line */
    vbuf helo; /* HELO/EHLO argument, empty if none */
    int esmtp; /* EHLO seen */
    int tls_active;
    smtpd_tls *tls;
    char *sasl_method; /* set once authenticated */
    char *sasl_username;
    smtpd_sasl *sasl; /* an AUTH dialogue in progress */
    int error_count;  /* soft/hard error limits */
    int junk_count;
    long sleep_ms;
    int closing;         /* close after the output is flushed */
    int rejected_client; /* delay_reject=no: client refused */
    char rejected_client_reply[256];
    const char *last_cmd; /* for "lost connection after X" */
    int last_failed;      /* the last reply was 4xx/5xx */
    int io_error;
    int flush_now; /* RFC 2920: reply must go out now */
    int swallow;   /* dropping the rest of a long line */
    int tls_started;

    /* The mail transaction. */
    char *sender; /* NULL: no MAIL yet; "" null sender */
    int rcpt_count;
    long declared_size;
    int body; /* SMTPD_BODY_* */
    int smtputf8;
    char *envid;             /* decoded ENVID */
    char *ret;               /* "full" / "hdrs" */
    char *first_rcpt;        /* for "for <...>" in Received: */
    smtpd_queue *queue;      /* cleanup connection */
    int queue_wait_fd;       /* where the verdict arrives (QUEUE_WAIT) */
    const char *finish_verb; /* "DATA" or "BDAT", for the log */
    char queue_id[32];

    /* DATA / BDAT. */
    int data_errors;    /* SMTPD_DATA_* */
    int data_prev_crlf; /* previous line ended in CRLF */
    int data_mid_line;  /* a long line continues */
    size_t data_line_len;
    long long msg_size;  /* octets received for the message */
    long long bdat_left; /* octets left in this chunk */
    int bdat_last;
    int bdat_active;  /* a BDAT transaction is running */
    int bdat_failed;  /* a chunk failed: discard the rest */
    int bdat_discard; /* this chunk is read and dropped */
    vbuf bdat_reply;  /* reply once the chunk is read */
    vbuf content;     /* content buffered for cleanup */

    /* Counters for the disconnect line. */
    int count_ok[SMTPD_NCOUNT];
    int count_all[SMTPD_NCOUNT];
    int count_commands_ok, count_commands_all;
} smtpd_session;

/* ---- proto.c ---- */
smtpd_session *smtpd_session_new(int fd, int standalone, const char *name, const char *addr, const char *port);
void smtpd_session_free(smtpd_session *s);
/* smtpd_run - process what input there is; returns SMTPD_WANT_* */
int smtpd_run(smtpd_session *s);
/* smtpd_timeout - the client was idle too long */
void smtpd_timeout(smtpd_session *s);
void smtpd_reply(smtpd_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void smtpd_reply_flush(smtpd_session *s);
void smtpd_reset(smtpd_session *s);
void smtpd_log_reject(smtpd_session *s, const char *verb, const char *reply, const char *rcpt);
void smtpd_count_line(smtpd_session *s, vbuf *out);
/* smtpd_error - count a client error; may set a delay or close */
void smtpd_error(smtpd_session *s);
const char *smtpd_protocol(const smtpd_session *s);
/* smtpd_ehlo_discarded - is this EHLO keyword listed in smtpd_discard_ehlo_keywords */
int smtpd_ehlo_discarded(const char *keyword);

/* ---- data.c / bdat.c ---- */
void smtpd_data_start(smtpd_session *s);
int smtpd_data_input(smtpd_session *s); /* returns SMTPD_WANT_* or 0 */
/* smtpd_data_line - one DATA line; 1 when it ended the data */
int smtpd_data_line(smtpd_session *s, const char *data, size_t len, int flags);
void smtpd_data_finish(smtpd_session *s, const char *verb);
/* smtpd_data_verdict - cleanup's verdict is there: answer the client */
void smtpd_data_verdict(smtpd_session *s);
/* smtpd_data_verdict - cleanup's verdict is there: answer the client */
void smtpd_data_verdict(smtpd_session *s);
void smtpd_content(smtpd_session *s, const void *data, size_t len);
void smtpd_quickack(smtpd_session *s);
void smtpd_received_header(smtpd_session *s);
void smtpd_bdat_cmd(smtpd_session *s, int argc, char **argv);
int smtpd_bdat_input(smtpd_session *s);
/* smtpd_bdat_parse - "n [LAST]"; 0 or -1 */
int smtpd_bdat_parse(int argc, char **argv, long long *size, int *last);

/* ---- check.c ---- */
void smtpd_check_init(void);
int smtpd_check_mynetworks(const char *addr);
/* Each returns NULL (accepted) or the reply text ("554 5.7.1 ..."). */
const char *smtpd_check_client(smtpd_session *s);
const char *smtpd_check_helo(smtpd_session *s, const char *helo);
const char *smtpd_check_mail(smtpd_session *s, const char *sender);
const char *smtpd_check_rcpt(smtpd_session *s, const char *rcpt);
const char *smtpd_check_data(smtpd_session *s);
/* smtpd_check_known_rcpt - VRFY/EXPN: 1 known, 0 unknown, -1 lookup error */
int smtpd_check_known_rcpt(const char *rcpt);
int smtpd_valid_hostname(const char *name);
int smtpd_cidr_match(const char *pattern, const char *addr);
/* smtpd_check_etrn - (delayed client and HELO lists, then) smtpd_etrn_restrictions */
const char *smtpd_check_etrn(smtpd_session *s, const char *domain);
/* smtpd_check_fast_flush - is domain in fast_flush_domains: 1, 0, -1 lookup error */
int smtpd_check_fast_flush(const char *domain);

/* ---- etrn.c ---- */
#define SMTPD_ETRN_DOMAIN 1     /* "domain": that destination (RFC 1985 §5) */
#define SMTPD_ETRN_SUBDOMAINS 2 /* "@domain": the domain and its subdomains */
#define SMTPD_ETRN_QUEUE 3      /* "#queue": a named queue (none here) */
/* smtpd_etrn_parse - the ETRN argument into *name and *kind; 0, or reply code 500/501 */
int smtpd_etrn_parse(const char *args, vbuf *name, int *kind);
void smtpd_etrn_cmd(smtpd_session *s, char *args);

/* ---- flush.c (replaced by a stand-in in the fuzzer) ---- */
/*
 * smtpd_flush_site - qmgr flush_site request: 0 started, 1 refused, 2 site not in
 * qmgr's fast_flush_domains, -1 qmgr unreachable; *why says why
 */
int smtpd_flush_site(const char *site, int subdomains, vbuf *why);

/* ---- anvil_client.c (per-client limits shared through the anvil service) ---- */
void smtpd_anvil_init(void);
/* smtpd_anvil_connect - register the session; 1 when it must be refused (421 written) */
int smtpd_anvil_connect(smtpd_session *s);
void smtpd_anvil_disconnect(smtpd_session *s);
/* smtpd_anvil_mail, smtpd_anvil_rcpt - 1 when a rate limit refuses the command (reply given) */
int smtpd_anvil_mail(smtpd_session *s);
int smtpd_anvil_rcpt(smtpd_session *s);

/* ---- auth.c ---- */
void smtpd_sasl_init(void);
/* smtpd_sasl_mechs - the mechanisms to offer now ("PLAIN LOGIN ..."), or NULL */
const char *smtpd_sasl_mechs(const smtpd_session *s);
void smtpd_auth_cmd(smtpd_session *s, int argc, char **argv);
void smtpd_auth_response(smtpd_session *s, const char *line);
void smtpd_sasl_free(smtpd_session *s);
/* Exposed for tests: SCRAM-SHA-256 and CRAM-MD5 math. */
int smtpd_sasl_check_secret(const char *stored, const char *password);
void smtpd_cram_md5_digest(const char *secret, const char *challenge, char hex[33]);
int smtpd_scram_server_first(smtpd_sasl *x, const char *client_first, const char *snonce, const unsigned char *salt,
                             size_t salt_len, vbuf *out);
int smtpd_scram_server_final(smtpd_sasl *x, const char *secret, const char *client_final, vbuf *out);
smtpd_sasl *smtpd_sasl_new(const char *mech);
void smtpd_sasl_destroy(smtpd_sasl *x);
const char *smtpd_sasl_user(const smtpd_sasl *x);

/* ---- tls.c ---- */
int smtpd_tls_init(void); /* 0, or -1 when TLS can't be offered */
int smtpd_tls_available(void);
/* smtpd_tls_start - begin the server handshake on the session's fd */
void smtpd_tls_start(smtpd_session *s);
/* smtpd_tls_step - continue the handshake: 1 done, 0 wants s->tls_want, -1 failed */
int smtpd_tls_step(smtpd_session *s, int *want);
void smtpd_tls_free(smtpd_session *s);
/* "TLSv1.3 with cipher X (256/256 bits)" */
const char *smtpd_tls_description(const smtpd_session *s);
const char *smtpd_tls_protocol(const smtpd_session *s);
const char *smtpd_tls_cipher(const smtpd_session *s);

/* ---- queue.c (replaced by a fake in the fuzzer) ---- */
int smtpd_queue_open(smtpd_session *s, vbuf *err);
void smtpd_queue_attr(smtpd_session *s, const char *name, const char *value);
void smtpd_queue_rcpt(smtpd_session *s, const char *addr, const char *orcpt, int notify);
int smtpd_queue_content(smtpd_session *s, const void *data, size_t len);
/* smtpd_queue_send_end - end the message; the fd the verdict comes on, or -1 if it is ready now */
int smtpd_queue_send_end(smtpd_session *s);
/* smtpd_queue_verdict - CLEANUP_* with the reason text; the queue is gone afterwards */
int smtpd_queue_verdict(smtpd_session *s, vbuf *reason);
void smtpd_queue_abort(smtpd_session *s);

#endif
