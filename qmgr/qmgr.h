/*
 * qmgr - the queue manager's shared state.
 *
 * One process on one event loop. Messages move incoming/ -> active/ (one
 * rename each), their pending recipients are grouped into destinations
 * (transport, next hop), and destinations are served round-robin within
 * their concurrency limits by connections to delivery agents on
 * private/<transport>. Results are recorded in the queue file (recipient
 * slot marked done - by the agent itself for plain deliveries, without a
 * sync) and the bounce/defer/trace logs; a finished message is removed in
 * a batch after one syncfs that makes all the marks durable (remove.c), an
 * unfinished one goes to deferred/ with its next attempt time as the
 * file's mtime.
 *
 *   main.c     trigger requests, timers, queue scans, startup recovery
 *   message.c  loading a queue file, recording results, finishing
 *   sched.c    destinations, round-robin scheduling, dead destinations
 *   agent.c    non-blocking delivery-agent connections
 *   remove.c   batched removal of finished messages (one syncfs each,
 *              in a worker thread beside the event loop)
 */
#ifndef KITE_QMGR_H
#define KITE_QMGR_H

#include <stddef.h>
#include <time.h>

#include "deliver.h"
#include "qfile.h"
#include "vbuf.h"

typedef struct qmgr_dest qmgr_dest;
typedef struct qmgr_message qmgr_message;

/* Recipient state within one active round. */
#define QMGR_RCPT_DONE     0            /* done before, or finished this round */
#define QMGR_RCPT_QUEUED     1            /* waiting in its destination */
#define QMGR_RCPT_BUSY     2            /* in a delivery */
#define QMGR_RCPT_DEFERRED 3            /* deferred this round */

typedef struct qmgr_rcpt {
    size_t index;                       /* position in the queue file */
    int state;
    deliver_rcpt dr;                    /* what the agent gets */
    qmgr_dest *dest;
    char last_dsn[16];                  /* of the last deferral */
    char *last_reason;
} qmgr_rcpt;

struct qmgr_message {
    char id[QUEUE_ID_SIZE + 8];
    deliver_request req;                /* envelope template for requests */
    qmgr_rcpt *rcpts;
    size_t nrcpt;
    size_t unfinished;                  /* QUEUED + BUSY */
    long long warn_time;
    int bounced;                        /* bounce/ID has records */
    int traced;                         /* trace/ID has records */
    int deferred;                       /* defer records this round */
    qmgr_message *next, *prev;
};

/* One destination: a (transport, next hop) pair with its queue of work. */
typedef struct qmgr_pending {
    qmgr_message *msg;
    size_t rcpt;                        /* index into msg->rcpts */
    struct qmgr_pending *next;
} qmgr_pending;

struct qmgr_dest {
    char *transport, *nexthop;
    qmgr_pending *head, *tail;
    size_t ntodo;
    int active;                         /* deliveries in flight */
    int limit;                          /* concurrency */
    int rcpt_limit;                     /* recipients per delivery */
    int failures;                       /* consecutive connection-level failures */
    time_t dead_until;
    char *dead_reason;
    char dead_dsn[16];
    qmgr_dest *next;
};

/* main.c */
extern int qmgr_stopped;                /* "stop": no new deliveries */
extern int qmgr_active_count;
void qmgr_kick(void);                   /* schedule soon */
void qmgr_scan_incoming_soon(void);

/* message.c */
qmgr_message *qmgr_message_load(const char *queue, const char *id);
void qmgr_message_result(qmgr_message *m, size_t rcpt, const deliver_result *res);
int qmgr_message_mark_done(qmgr_message *m, const size_t *rcpts, size_t n);
void qmgr_message_defer_rcpt(qmgr_message *m, size_t rcpt, const char *dsn, const char *reason, const char *relay);
void qmgr_message_check_done(qmgr_message *m);
qmgr_message *qmgr_message_find(const char *id);
#define QMGR_SITE_SUBDOMAINS (1 << 0) /* ETRN @domain: subdomains of the site too */
#define QMGR_SITE_REVIVE (1 << 1)     /* revive the destinations of matching recipients */
int qmgr_message_has_site(const qfile *q, const char *site, int flags);
int qmgr_site_match(const char *domain, const char *site, int subdomains);

/* remove.c */
#define QMGR_REMOVE_DELAY_MS 30         /* a batch waits at most this long */
#define QMGR_REMOVE_BATCH    128        /* ... or starts when this many wait */
void qmgr_remove_later(const char *id);
void qmgr_remove_soon(void);            /* start a batch now (no waiting) */
void qmgr_remove_flush(void);           /* wait, sync and remove all (exit) */
size_t qmgr_remove_pending(void);       /* waiting or in flight */
int qmgr_remove_in_flight(void);

/* sched.c */
qmgr_dest *qmgr_dest_get(const char *transport, const char *nexthop);
void qmgr_dest_add(qmgr_dest *d, qmgr_message *m, size_t rcpt);
void qmgr_schedule(void);
void qmgr_dest_delivery_done(qmgr_dest *d, int conn_failed, const char *dsn, const char *reason);
void qmgr_dest_revive(const char *site);    /* NULL: all */
void qmgr_dest_revive_dest(const char *transport, const char *nexthop);
int qmgr_dest_is_dead(qmgr_dest *d);

/* agent.c */
int qmgr_agent_start(qmgr_dest *d, qmgr_message *m, const size_t *rcpts, size_t n);
int qmgr_agent_count(void);

#endif
