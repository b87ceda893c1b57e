/*
 * anvil.h - the connection and rate counter service's internals: the
 * counting table (table.c) and the request protocol (proto.c); main.c is
 * the multi_server glue.
 *
 * An ident names a (service, client) pair, e.g. "smtp:192.0.2.1"; anvil
 * does not look inside it. Per ident the table keeps the number of
 * concurrent connections and three rates (connections, messages,
 * recipients), each counted in a fixed window of anvil_rate_time_unit
 * seconds that starts with the first event after the previous window
 * ended.
 *
 * Concurrent connections belong to the client ("owner") that registered
 * them: an owner can only release what it holds, and everything it holds
 * is released when its connection to anvil closes, so a dead smtpd
 * process never leaves counts behind.
 *
 * Trusts nothing in a request: idents are length- and character-checked,
 * the table has a size limit, frames are bounded before memory is taken.
 */
#ifndef KITE_ANVIL_H
#define KITE_ANVIL_H

#include <stddef.h>
#include <time.h>

#include "attr.h"
#include "vbuf.h"

#define ANVIL_PROTOCOL "anvil"
#define ANVIL_FRAME_MAX 1024     /* a request is a few dozen bytes */
#define ANVIL_IDENT_MAX 256      /* "service:address" */
#define ANVIL_MAX_ENTRIES 200000 /* distinct idents remembered at once */

/* Reply status (Postfix's values). */
#define ANVIL_STAT_OK 0
#define ANVIL_STAT_FAIL (-1)

typedef struct anvil_table anvil_table;
typedef struct anvil_owner anvil_owner;

/* The rates kept per ident. */
enum anvil_rate { ANVIL_RATE_CONN, ANVIL_RATE_MSG, ANVIL_RATE_RCPT, ANVIL_RATE_COUNT };

/* The largest values seen since the last statistics report. */
typedef struct anvil_max {
    long value;
    char ident[ANVIL_IDENT_MAX + 1];
    time_t when;
} anvil_max;

typedef struct anvil_stats {
    anvil_max count; /* concurrent connections */
    anvil_max rate[ANVIL_RATE_COUNT];
    anvil_max size; /* table entries (ident unused) */
} anvil_stats;

/* ---- table.c ---- */

/* anvil_table_new - an empty table; rates are per rate_unit seconds (>= 1) */
anvil_table *anvil_table_new(long rate_unit);
void anvil_table_free(anvil_table *t);
size_t anvil_table_size(const anvil_table *t);

/* anvil_ident_ok - printable ASCII, no space, 1..ANVIL_IDENT_MAX bytes */
int anvil_ident_ok(const char *ident);

/* anvil_owner_new - a client of the service; anvil_owner_free releases all it holds */
anvil_owner *anvil_owner_new(anvil_table *t);
void anvil_owner_free(anvil_table *t, anvil_owner *o);
/* anvil_owner_held - how many connections the owner holds in total */
long anvil_owner_held(const anvil_owner *o);

/*
 * Each returns ANVIL_STAT_OK or ANVIL_STAT_FAIL (bad ident, table full,
 * disconnect of something the owner does not hold).
 */
/* anvil_connect - one more connection: the new concurrent count and connection rate */
int anvil_connect(anvil_table *t, anvil_owner *o, const char *ident, time_t now, long *count, long *rate);
/* anvil_disconnect - the owner closed one of its connections for ident */
int anvil_disconnect(anvil_table *t, anvil_owner *o, const char *ident, time_t now);
/* anvil_event - count a message or recipient; the rate in the current window */
int anvil_event(anvil_table *t, const char *ident, enum anvil_rate which, time_t now, long *rate);

/* anvil_expire - forget idents with no connections whose windows have all ended */
size_t anvil_expire(anvil_table *t, time_t now);

/* anvil_stats_take - the maxima since the last call; resets them */
void anvil_stats_take(anvil_table *t, anvil_stats *out);
/* anvil_stats_log - the "statistics: max ..." lines (nothing when all is zero) */
void anvil_stats_log(const anvil_stats *st, long rate_unit);

/* ---- proto.c ---- */

/*
 * anvil_frame_take - cut one request frame off the front of in: 1 and the
 * decoded list, 0 when more bytes are needed, -1 on a malformed or
 * oversized frame (the client is dropped).
 */
int anvil_frame_take(vbuf *in, attr_list *req);
/* anvil_frame_put - append one reply frame (length prefix and payload) to out */
void anvil_frame_put(vbuf *out, const attr_list *reply);
/* anvil_request - serve one request from owner; fills reply (always answered) */
void anvil_request(anvil_table *t, anvil_owner *o, const attr_list *req, attr_list *reply, time_t now);

#endif
