/*
 * cleanup.h - the state of one message passing through cleanup.
 *
 * main.c speaks the protocol of cleanup_client.h and owns the queue file;
 * message.c turns the content into what is queued (header fixes, Bcc
 * removal, recipient extraction, header_checks/body_checks, limits);
 * rewrite.c rewrites the envelope (canonical and virtual alias maps).
 * Output goes through two callbacks so the processing can be tested
 * without a queue.
 */
#ifndef KITE_CLEANUP_H
#define KITE_CLEANUP_H

#include <stddef.h>

#include "cleanup_client.h"
#include "maps.h"
#include "vbuf.h"

/* The tables cleanup uses; an empty parameter gives an empty list. */
typedef struct cleanup_maps {
    maps *canonical;
    maps *sender_canonical;
    maps *recipient_canonical;
    maps *virtual_alias;
    maps *header_checks;
    maps *body_checks;
} cleanup_maps;

typedef struct cleanup_recipient {
    char *addr;
    char *orcpt; /* NULL: none */
    char *orig;  /* as the client gave it */
    int notify;
} cleanup_recipient;

typedef struct cleanup_rcpt_list {
    cleanup_recipient *v;
    size_t n, cap;
} cleanup_rcpt_list;

enum cleanup_phase { CLEANUP_PHASE_HEADERS, CLEANUP_PHASE_BODY };

typedef struct cleanup_state cleanup_state;

typedef struct cleanup_output {
    /* envelope - called once, before the first content byte */
    int (*envelope)(cleanup_state *st, void *ctx);
    int (*content)(cleanup_state *st, const char *data, size_t len, void *ctx);
    void *ctx;
} cleanup_output;

struct cleanup_state {
    char queue_id[32];
    int flags; /* CLEANUP_FLAG_* */
    const cleanup_maps *maps;
    cleanup_output out;

    /* Envelope as received (attrs are "name", "value" pairs). */
    char **attr_names, **attr_values;
    size_t nattr;
    char *sender; /* rewritten before the content is processed */
    int sender_done;
    cleanup_rcpt_list in_rcpts; /* as given */
    cleanup_rcpt_list rcpts;    /* final, after rewriting and expansion */
    int binary_body;            /* body=binarymime: body passes verbatim */

    /* Verdict. */
    int status; /* CLEANUP_OK / DEFER / REJECT */
    vbuf reason;
    int discard, hold;

    /* Content processing. */
    enum cleanup_phase phase;
    vbuf line;          /* input not yet ending in LF */
    int line_continued; /* the current line was split (too long) */
    vbuf header;        /* the logical header being collected */
    int header_truncated;
    vbuf headers; /* header section as it will be queued */
    int envelope_done;
    int body_pending, saw_8bit; /* no declared body type: content held back in pending */
    vbuf pending;
    long long out_size;
    long long body_checked;
    int hops;
    int seen_message_id, seen_date, seen_from, seen_dest, seen_resent_dest;
    char *message_id;
    cleanup_rcpt_list extracted;        /* -t: To/Cc/Bcc */
    cleanup_rcpt_list extracted_resent; /* -t: Resent-To/Cc/Bcc */
};

/* message.c */
void cleanup_state_init(cleanup_state *st, const char *queue_id, int flags, const cleanup_maps *maps,
                        const cleanup_output *out);
void cleanup_state_free(cleanup_state *st);
void cleanup_add_attr(cleanup_state *st, const char *name, const char *value);
const char *cleanup_get_attr(const cleanup_state *st, const char *name);
void cleanup_add_rcpt(cleanup_state *st, const char *addr, const char *orcpt, int notify);
void cleanup_feed(cleanup_state *st, const char *data, size_t len);
void cleanup_end(cleanup_state *st);
void cleanup_set_status(cleanup_state *st, int status, const char *reason);
void cleanup_log_action(cleanup_state *st, const char *action, const char *where, const char *text, const char *detail);

/* rewrite.c */
void cleanup_rcpt_list_add(cleanup_rcpt_list *l, const char *addr, const char *orcpt, const char *orig, int notify);
void cleanup_rcpt_list_free(cleanup_rcpt_list *l);
int cleanup_is_local_domain(const char *domain);
void cleanup_qualify(vbuf *out, const char *addr);
int cleanup_rewrite_sender(cleanup_state *st, const char *addr, vbuf *out);
int cleanup_rewrite_recipient(cleanup_state *st, const char *addr, vbuf *out);
int cleanup_rewrite_header(cleanup_state *st, const char *hdr, size_t name_len, vbuf *out);
int cleanup_expand_recipient(cleanup_state *st, const cleanup_recipient *in);
void cleanup_maps_open(cleanup_maps *m);
void cleanup_maps_close(cleanup_maps *m);

#endif
