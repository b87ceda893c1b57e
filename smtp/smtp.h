/*
 * smtp.h - the SMTP/LMTP client: shared state of one delivery attempt.
 *
 * The client takes one delivery request from qmgr (deliver.h), finds the
 * next-hop servers (connect.c), speaks ESMTP or LMTP to them (proto.c),
 * converts 8-bit MIME to quoted-printable for 7-bit hops (mime.c), and
 * reports one result per recipient. It trusts nothing the remote server
 * says: replies are length-limited and parsed strictly.
 */
#ifndef KITE_SMTP_H
#define KITE_SMTP_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include "deliver.h"
#include "stream.h"
#include "vbuf.h"

/* ESMTP features the server offered (EHLO/LHLO keywords). */
#define SMTP_FEAT_ESMTP        (1 << 0)
#define SMTP_FEAT_PIPELINING   (1 << 1)
#define SMTP_FEAT_SIZE         (1 << 2)
#define SMTP_FEAT_8BITMIME     (1 << 3)
#define SMTP_FEAT_CHUNKING     (1 << 4)
#define SMTP_FEAT_BINARYMIME   (1 << 5)
#define SMTP_FEAT_SMTPUTF8     (1 << 6)
#define SMTP_FEAT_DSN          (1 << 7)
#define SMTP_FEAT_STARTTLS     (1 << 8)
#define SMTP_FEAT_AUTH         (1 << 9)
#define SMTP_FEAT_ENHANCED     (1 << 10)

/* One server address to try. */
typedef struct smtp_addr {
    char *host;                         /* the name, e.g. the MX host */
    struct sockaddr_storage sa;
    socklen_t salen;
    int pref;                           /* MX preference (for logging) */
} smtp_addr;

typedef struct smtp_addr_list {
    smtp_addr *addrs;
    size_t count;
} smtp_addr_list;

/* Outcome of resolving a destination. */
typedef struct smtp_dest_error {
    int status;                         /* DELIVER_DEFER or DELIVER_BOUNCE */
    char dsn[16];
    vbuf reason;
} smtp_dest_error;

/* A server reply. */
typedef struct smtp_reply {
    int code;                           /* 3 digits, 0 if none */
    char dsn[16];                       /* enhanced status or derived */
    vbuf text;                          /* all lines, joined with a space */
} smtp_reply;

/* One connection to one server. */
typedef struct smtp_session {
    stream *s;
    char *host;
    char addr[64];                      /* printable address */
    int port;
    char *cache_key;                    /* transport + nexthop */
    int lmtp;
    int features;
    long size_limit;                    /* 0 = none advertised */
    int auth_mechs;                     /* SMTP_AUTH_* the server offers */
    int tls;                            /* TLS is active */
    int authenticated;
    time_t connected;
    int reuse_count;
    int broken;                         /* do not reuse */
    vbuf relay;                         /* "host[addr]:port" */
} smtp_session;

#define SMTP_AUTH_PLAIN (1 << 0)
#define SMTP_AUTH_LOGIN (1 << 1)

/* connect.c */
int smtp_resolve(const char *nexthop, int lmtp, smtp_addr_list *out, int *port, smtp_dest_error *err);
void smtp_addr_list_free(smtp_addr_list *list);
int smtp_connect_addr(const smtp_addr *a, int port, int timeout, vbuf *why);
int smtp_connect_unix(const char *path, int timeout, vbuf *why);
void smtp_addr_print(const struct sockaddr_storage *sa, char *buf, size_t len);

/* reply.c */
void smtp_reply_init(smtp_reply *r);
void smtp_reply_free(smtp_reply *r);
int smtp_reply_read(stream *s, smtp_reply *r, vbuf *lines);
int smtp_reply_is_ehlo_keyword(const char *line, const char *kw, const char **arg);

/* mime.c */
int smtp_mime_needs_8bit(const char *data, size_t len);
int smtp_mime_to_7bit(const char *in, size_t len, vbuf *out);

/* proto.c */
void smtp_deliver(deliver_request *req, stream *qmgr);
void smtp_cache_close(void);

#endif
