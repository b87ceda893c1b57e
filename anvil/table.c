/*
 * table - anvil's counting table: idents in a seeded hash table, the
 * connections each owner holds, fixed-window rates, and the maxima for the
 * periodic statistics lines (see anvil.h).
 *
 * Invariant: an entry's count is the sum of what its owners hold, so an
 * entry with connections is never expired and releasing an owner can only
 * take back what that owner added.
 *
 * Trusts: nothing about idents beyond anvil_ident_ok(); the table size is
 * bounded by ANVIL_MAX_ENTRIES.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "anvil.h"
#include "msg.h"
#include "mymalloc.h"

typedef struct anvil_entry {
    char *ident;
    uint64_t hash;
    long count;                     /* concurrent connections */
    long rate[ANVIL_RATE_COUNT];    /* events in the current window */
    time_t start[ANVIL_RATE_COUNT]; /* when that window began */
    struct anvil_entry *next;       /* hash chain */
} anvil_entry;

typedef struct anvil_hold {
    anvil_entry *entry;
    long n; /* connections this owner holds there */
    struct anvil_hold *next;
} anvil_hold;

struct anvil_owner {
    anvil_hold *held;
    long total;
};

struct anvil_table {
    anvil_entry **bucket;
    size_t nbucket; /* a power of two */
    size_t size;
    long rate_unit;
    uint64_t seed;
    anvil_stats stats;
};

#define ANVIL_INITIAL_BUCKETS 64

/* anvil_hash - FNV-1a over the ident, keyed with a per-process random seed */
static uint64_t anvil_hash(const anvil_table *t, const char *ident)
{
    uint64_t h = 14695981039346656037ULL ^ t->seed;

    for (const unsigned char *p = (const unsigned char *) ident; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    /* Mix the seed in again so that equal-prefix idents spread out. */
    h ^= h >> 29;
    h *= (0xbf58476d1ce4e5b9ULL ^ t->seed) | 1; /* odd: keeps the low bits alive */
    h ^= h >> 32;
    return h;
}

/* anvil_table_new - an empty table */
anvil_table *anvil_table_new(long rate_unit)
{
    anvil_table *t = xcalloc(1, sizeof(*t));

    t->nbucket = ANVIL_INITIAL_BUCKETS;
    t->bucket = xcalloc(t->nbucket, sizeof(*t->bucket));
    t->rate_unit = rate_unit < 1 ? 1 : rate_unit;
    if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != (ssize_t) sizeof(t->seed))
        t->seed = (uint64_t) time(NULL) * 0x9e3779b97f4a7c15ULL; /* still differs per start */
    return t;
}

/* anvil_entry_free - one entry's memory */
static void anvil_entry_free(anvil_entry *e)
{
    xfree(e->ident);
    xfree(e);
}

/* anvil_table_free - the table and every entry (owners must be freed first) */
void anvil_table_free(anvil_table *t)
{
    for (size_t i = 0; i < t->nbucket; i++) {
        anvil_entry *e, *next;

        for (e = t->bucket[i]; e; e = next) {
            next = e->next;
            anvil_entry_free(e);
        }
    }
    xfree(t->bucket);
    xfree(t);
}

/* anvil_table_size - number of idents remembered */
size_t anvil_table_size(const anvil_table *t)
{
    return t->size;
}

/* anvil_ident_ok - printable ASCII, no white space, bounded length */
int anvil_ident_ok(const char *ident)
{
    size_t n = 0;

    if (ident == NULL)
        return 0;
    for (const unsigned char *p = (const unsigned char *) ident; *p; p++, n++)
        if (*p <= ' ' || *p >= 0x7f || n >= ANVIL_IDENT_MAX)
            return 0;
    return n > 0;
}

/* anvil_find - the entry for ident, or NULL */
static anvil_entry *anvil_find(const anvil_table *t, const char *ident, uint64_t h)
{
    for (anvil_entry *e = t->bucket[h & (t->nbucket - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->ident, ident) == 0)
            return e;
    return NULL;
}

/* anvil_grow - double the bucket array when chains get long */
static void anvil_grow(anvil_table *t)
{
    size_t n = t->nbucket * 2;
    anvil_entry **b;

    if (t->size <= t->nbucket * 2 || n > ((size_t) 1 << 24))
        return;
    b = xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < t->nbucket; i++) {
        anvil_entry *e, *next;

        for (e = t->bucket[i]; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    xfree(t->bucket);
    t->bucket = b;
    t->nbucket = n;
}

/* anvil_note_max - remember a new maximum */
static void anvil_note_max(anvil_max *m, long value, const char *ident, time_t now)
{
    if (value <= m->value)
        return;
    m->value = value;
    m->when = now;
    if (ident) {
        size_t n = strlen(ident);

        if (n > ANVIL_IDENT_MAX)
            n = ANVIL_IDENT_MAX;
        memcpy(m->ident, ident, n);
        m->ident[n] = 0;
    }
}

/* anvil_get - the entry for ident, created when missing; NULL when bad or full */
static anvil_entry *anvil_get(anvil_table *t, const char *ident, time_t now)
{
    uint64_t h;
    anvil_entry *e;

    if (!anvil_ident_ok(ident))
        return NULL;
    h = anvil_hash(t, ident);
    if ((e = anvil_find(t, ident, h)) != NULL)
        return e;
    if (t->size >= ANVIL_MAX_ENTRIES && anvil_expire(t, now) == 0 && t->size >= ANVIL_MAX_ENTRIES) {
        msg_warn("anvil: table full (%d idents); not counting %s", ANVIL_MAX_ENTRIES, ident);
        return NULL;
    }
    e = xcalloc(1, sizeof(*e));
    e->ident = xstrdup(ident);
    e->hash = h;
    e->next = t->bucket[h & (t->nbucket - 1)];
    t->bucket[h & (t->nbucket - 1)] = e;
    t->size++;
    anvil_note_max(&t->stats.size, (long) t->size, NULL, now);
    anvil_grow(t);
    return e;
}

/* anvil_window_done - has this rate's window ended? */
static int anvil_window_done(const anvil_table *t, const anvil_entry *e, int i, time_t now)
{
    /* A clock that went backwards also ends the window. */
    return e->rate[i] == 0 || now < e->start[i] || now - e->start[i] >= t->rate_unit;
}

/* anvil_bump - count one event in a rate window; the new rate */
static long anvil_bump(anvil_table *t, anvil_entry *e, int i, time_t now)
{
    if (anvil_window_done(t, e, i, now)) {
        e->start[i] = now;
        e->rate[i] = 0;
    }
    if (e->rate[i] < LONG_MAX)
        e->rate[i]++;
    anvil_note_max(&t->stats.rate[i], e->rate[i], e->ident, now);
    return e->rate[i];
}

/* anvil_owner_new - a client with nothing held */
anvil_owner *anvil_owner_new(anvil_table *t)
{
    (void) t;
    return xcalloc(1, sizeof(anvil_owner));
}

/* anvil_owner_free - give back every connection the owner holds */
void anvil_owner_free(anvil_table *t, anvil_owner *o)
{
    anvil_hold *h, *next;

    (void) t;
    for (h = o->held; h; h = next) {
        next = h->next;
        h->entry->count -= h->n;
        if (h->entry->count < 0)
            msg_panic("anvil_owner_free: negative count for %s", h->entry->ident);
        xfree(h);
    }
    xfree(o);
}

/* anvil_owner_held - connections held in total */
long anvil_owner_held(const anvil_owner *o)
{
    return o->total;
}

/* anvil_connect - register a connection; count and connection rate after it */
int anvil_connect(anvil_table *t, anvil_owner *o, const char *ident, time_t now, long *count, long *rate)
{
    anvil_entry *e = anvil_get(t, ident, now);
    anvil_hold *h;

    if (e == NULL)
        return ANVIL_STAT_FAIL;
    for (h = o->held; h && h->entry != e; h = h->next)
        ;
    if (h == NULL) {
        h = xcalloc(1, sizeof(*h));
        h->entry = e;
        h->next = o->held;
        o->held = h;
    }
    h->n++;
    o->total++;
    e->count++;
    anvil_note_max(&t->stats.count, e->count, e->ident, now);
    *count = e->count;
    *rate = anvil_bump(t, e, ANVIL_RATE_CONN, now);
    return ANVIL_STAT_OK;
}

/* anvil_disconnect - release one of the owner's connections for ident */
int anvil_disconnect(anvil_table *t, anvil_owner *o, const char *ident, time_t now)
{
    anvil_hold **hp, *h;
    anvil_entry *e;

    (void) now;
    if (!anvil_ident_ok(ident) || (e = anvil_find(t, ident, anvil_hash(t, ident))) == NULL)
        return ANVIL_STAT_FAIL;
    for (hp = &o->held; (h = *hp) != NULL; hp = &h->next)
        if (h->entry == e)
            break;
    if (h == NULL)
        return ANVIL_STAT_FAIL; /* not this owner's to release */
    e->count--;
    o->total--;
    if (--h->n == 0) {
        *hp = h->next;
        xfree(h);
    }
    return ANVIL_STAT_OK;
}

/* anvil_event - a message or recipient from ident */
int anvil_event(anvil_table *t, const char *ident, enum anvil_rate which, time_t now, long *rate)
{
    anvil_entry *e;

    if (which != ANVIL_RATE_MSG && which != ANVIL_RATE_RCPT)
        return ANVIL_STAT_FAIL;
    if ((e = anvil_get(t, ident, now)) == NULL)
        return ANVIL_STAT_FAIL;
    *rate = anvil_bump(t, e, which, now);
    return ANVIL_STAT_OK;
}

/* anvil_expire - drop idle idents; how many went */
size_t anvil_expire(anvil_table *t, time_t now)
{
    size_t gone = 0;

    for (size_t i = 0; i < t->nbucket; i++) {
        anvil_entry **ep = &t->bucket[i], *e;

        while ((e = *ep) != NULL) {
            int idle = e->count == 0;

            for (int r = 0; r < ANVIL_RATE_COUNT && idle; r++)
                idle = anvil_window_done(t, e, r, now);
            if (idle) {
                *ep = e->next;
                anvil_entry_free(e);
                t->size--;
                gone++;
            } else {
                ep = &e->next;
            }
        }
    }
    return gone;
}

/* anvil_stats_take - hand out the maxima and start over */
void anvil_stats_take(anvil_table *t, anvil_stats *out)
{
    *out = t->stats;
    memset(&t->stats, 0, sizeof(t->stats));
}

/* anvil_when - "Nov  6 00:43:17" in local time (ctime's month, day and time) */
static void anvil_when(time_t when, char *buf, size_t len)
{
    struct tm tm;

    if (localtime_r(&when, &tm) == NULL || strftime(buf, len, "%b %e %H:%M:%S", &tm) == 0)
        snprintf(buf, len, "%lld", (long long) when);
}

/* anvil_stats_log - Postfix's anvil statistics lines, for the maxima that are not zero */
void anvil_stats_log(const anvil_stats *st, long rate_unit)
{
    static const char *const rate_name[ANVIL_RATE_COUNT] = {"connection", "message", "recipient"};
    char when[64];

    if (st->rate[ANVIL_RATE_CONN].value > 0) {
        anvil_when(st->rate[ANVIL_RATE_CONN].when, when, sizeof(when));
        msg_info("statistics: max %s rate %ld/%lds for (%s) at %s", rate_name[ANVIL_RATE_CONN],
                 st->rate[ANVIL_RATE_CONN].value, rate_unit, st->rate[ANVIL_RATE_CONN].ident, when);
    }
    if (st->count.value > 0) {
        anvil_when(st->count.when, when, sizeof(when));
        msg_info("statistics: max connection count %ld for (%s) at %s", st->count.value, st->count.ident, when);
    }
    for (int r = ANVIL_RATE_MSG; r < ANVIL_RATE_COUNT; r++) {
        if (st->rate[r].value > 0) {
            anvil_when(st->rate[r].when, when, sizeof(when));
            msg_info("statistics: max %s rate %ld/%lds for (%s) at %s", rate_name[r], st->rate[r].value, rate_unit,
                     st->rate[r].ident, when);
        }
    }
    if (st->size.value > 0) {
        anvil_when(st->size.when, when, sizeof(when));
        msg_info("statistics: max cache size %ld at %s", st->size.value, when);
    }
}
