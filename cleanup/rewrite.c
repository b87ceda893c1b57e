/*
 * rewrite.c - cleanup's envelope rewriting: qualification with myorigin,
 * canonical_maps / sender_canonical_maps / recipient_canonical_maps, and
 * virtual_alias_maps expansion with recursion and size limits, loop
 * detection and duplicate removal. The address as the client gave it is
 * kept as the original recipient.
 *
 * Trusts: table contents only as addresses to be checked again; a table
 * that cannot be read defers the message rather than guessing.
 */
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "cleanup.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "strutil.h"

/* cleanup_rcpt_list_add - append a recipient (strings copied) */
void cleanup_rcpt_list_add(cleanup_rcpt_list *l, const char *addr, const char *orcpt, const char *orig, int notify)
{
    cleanup_recipient *r;

    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
    }
    r = l->v + l->n++;
    r->addr = xstrdup(addr);
    r->orcpt = orcpt && *orcpt ? xstrdup(orcpt) : NULL;
    r->orig = orig ? xstrdup(orig) : NULL;
    r->notify = notify;
}

/* cleanup_rcpt_list_free - release all recipients */
void cleanup_rcpt_list_free(cleanup_rcpt_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        xfree(l->v[i].addr);
        xfree(l->v[i].orcpt);
        xfree(l->v[i].orig);
    }
    xfree(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* cleanup_is_local_domain - is the domain listed in mydestination (or myhostname) */
int cleanup_is_local_domain(const char *domain)
{
    char *copy, *cursor, *tok;
    int found = 0;

    if (domain == NULL || *domain == 0)
        return 1;
    if (var_myhostname && str_case_eq(domain, var_myhostname))
        return 1;
    copy = xstrdup(var_mydestination ? var_mydestination : "");
    cursor = copy;
    while (!found && (tok = str_token(&cursor, CHARS_COMMA_SPACE)) != NULL)
        found = strchr(tok, ':') == NULL && str_case_eq(tok, domain);
    xfree(copy);
    return found;
}

/* cleanup_qualify - append @myorigin to an address without a domain */
void cleanup_qualify(vbuf *out, const char *addr)
{
    vbuf_set(out, addr);
    if (*addr && strchr(addr, '@') == NULL) {
        const char *origin = var_myorigin && *var_myorigin ? var_myorigin : var_myhostname;

        if (origin && *origin)
            vbuf_printf(out, "@%s", origin);
    }
}

/* cr_apply_canonical - one canonical table on addr (in place); 0, or -1 on a table error */
static int cr_apply_canonical(maps *m, vbuf *addr)
{
    const char *dom, *res;
    int status;
    vbuf tmp;

    if (m == NULL || maps_empty(m) || addr->len == 0)
        return 0;
    dom = addr_domain(addr->data);
    res = maps_find_addr(m, addr->data, cleanup_is_local_domain(dom) ? MAPS_ADDR_LOCAL : 0, &status);
    if (status == MAP_ERROR)
        return -1;
    if (status != MAP_FOUND || res == NULL || *res == 0)
        return 0;
    vbuf_init(&tmp, 0);
    /* Only the first address of a result counts; "@domain" replaces the domain. */
    {
        char *copy = xstrdup(res), *cursor = copy, *first = str_token(&cursor, CHARS_COMMA_SPACE);

        if (first != NULL && first[0] == '@') {
            const char *at = strrchr(addr->data, '@');
            size_t local_len = at ? (size_t) (at - addr->data) : addr->len;

            vbuf_setn(&tmp, addr->data, local_len);
            vbuf_puts(&tmp, first);
        } else if (first != NULL) {
            cleanup_qualify(&tmp, first);
        } else {
            vbuf_set(&tmp, addr->data);
        }
        xfree(copy);
    }
    vbuf_set(addr, tmp.data);
    vbuf_release(&tmp);
    return 0;
}

/* cleanup_rewrite_sender - qualify, then sender_canonical_maps, then canonical_maps */
int cleanup_rewrite_sender(cleanup_state *st, const char *addr, vbuf *out)
{
    cleanup_qualify(out, addr);
    if (st->flags & CLEANUP_FLAG_NO_REWRITE)
        return 0;
    if (cr_apply_canonical(st->maps->sender_canonical, out) < 0 || cr_apply_canonical(st->maps->canonical, out) < 0)
        return -1;
    return 0;
}

/* cleanup_rewrite_recipient - qualify, then recipient_canonical_maps, then canonical_maps */
int cleanup_rewrite_recipient(cleanup_state *st, const char *addr, vbuf *out)
{
    cleanup_qualify(out, addr);
    if (st->flags & CLEANUP_FLAG_NO_REWRITE)
        return 0;
    if (cr_apply_canonical(st->maps->recipient_canonical, out) < 0 || cr_apply_canonical(st->maps->canonical, out) < 0)
        return -1;
    return 0;
}

/* cr_add_final - add a final recipient unless it is a duplicate */
static void cr_add_final(cleanup_state *st, const char *addr, const cleanup_recipient *in)
{
    size_t limit = var_duplicate_filter_limit > 0 ? (size_t) var_duplicate_filter_limit : 0;

    for (size_t i = 0; i < st->rcpts.n && i < limit; i++)
        if (strcmp(st->rcpts.v[i].addr, addr) == 0)
            return;
    cleanup_rcpt_list_add(&st->rcpts, addr, in->orcpt, var_enable_original_recipient ? in->orig : NULL, in->notify);
}

typedef struct cr_expand {
    cleanup_state *st;
    const cleanup_recipient *in;
    const char **path; /* addresses being expanded, outermost first */
    size_t depth;
    long produced;
    int failed; /* 0, or CLEANUP_DEFER */
} cr_expand;

/* cr_expand_one - expand addr through virtual_alias_maps, recursively */
static void cr_expand_one(cr_expand *x, const char *addr)
{
    maps *m = x->st->maps->virtual_alias;
    const char *res, *dom;
    char *copy, *cursor, *tok;
    int status, self = 0;

    if (x->failed)
        return;
    for (size_t i = 0; i < x->depth; i++) {
        /* An address that comes back in its own expansion is delivered as is. */
        if (strcmp(x->path[i], addr) == 0) {
            cr_add_final(x->st, addr, x->in);
            x->produced++;
            return;
        }
    }
    if (m == NULL || maps_empty(m) || (x->st->flags & CLEANUP_FLAG_NO_REWRITE)) {
        cr_add_final(x->st, addr, x->in);
        x->produced++;
        return;
    }
    dom = addr_domain(addr);
    res = maps_find_addr(m, addr, cleanup_is_local_domain(dom) ? MAPS_ADDR_LOCAL : 0, &status);
    if (status == MAP_ERROR) {
        msg_warn("%s: virtual_alias_maps lookup of %s failed", x->st->queue_id, addr);
        x->failed = CLEANUP_DEFER;
        cleanup_set_status(x->st, CLEANUP_DEFER, "4.3.0 virtual_alias_maps lookup failure");
        return;
    }
    if (status != MAP_FOUND || res == NULL || *res == 0) {
        cr_add_final(x->st, addr, x->in);
        x->produced++;
        return;
    }
    if (x->depth >= (size_t) var_virtual_alias_recursion_limit) {
        msg_warn("%s: unreasonable virtual_alias_maps map nesting for %s -- message not accepted, try again later",
                 x->st->queue_id, x->path[0]);
        x->failed = CLEANUP_DEFER;
        cleanup_set_status(x->st, CLEANUP_DEFER, "4.6.0 virtual alias recursion limit exceeded");
        return;
    }
    copy = xstrdup(res);
    cursor = copy;
    x->path[x->depth++] = addr;
    while (!x->failed && (tok = str_token(&cursor, CHARS_COMMA_SPACE)) != NULL) {
        vbuf q;

        vbuf_init(&q, 0);
        cleanup_qualify(&q, tok);
        if (strcmp(q.data, addr) == 0) {
            self = 1; /* "a -> a, b": a is delivered too */
        } else {
            cr_expand_one(x, q.data);
        }
        vbuf_release(&q);
        if (x->produced > var_virtual_alias_expansion_limit) {
            msg_warn("%s: unreasonable virtual_alias_maps map expansion size for %s -- message not accepted, try "
                     "again later",
                     x->st->queue_id, x->path[0]);
            x->failed = CLEANUP_DEFER;
            cleanup_set_status(x->st, CLEANUP_DEFER, "4.6.0 virtual alias expansion limit exceeded");
        }
    }
    x->depth--;
    xfree(copy);
    if (self && !x->failed) {
        cr_add_final(x->st, addr, x->in);
        x->produced++;
    }
}

/* cleanup_expand_recipient - rewrite and expand one recipient into st->rcpts; 0 or -1 */
int cleanup_expand_recipient(cleanup_state *st, const cleanup_recipient *in)
{
    cr_expand x;
    vbuf addr;
    int ret = 0;

    vbuf_init(&addr, 0);
    if (cleanup_rewrite_recipient(st, in->addr, &addr) < 0) {
        msg_warn("%s: canonical_maps lookup of %s failed", st->queue_id, in->addr);
        cleanup_set_status(st, CLEANUP_DEFER, "4.3.0 canonical_maps lookup failure");
        vbuf_release(&addr);
        return -1;
    }
    memset(&x, 0, sizeof(x));
    x.st = st;
    x.in = in;
    x.path = xcalloc((size_t) var_virtual_alias_recursion_limit + 1, sizeof(char *));
    cr_expand_one(&x, addr.data);
    if (x.failed)
        ret = -1;
    xfree(x.path);
    vbuf_release(&addr);
    return ret;
}

/* cleanup_maps_open - open the tables named by the parameters */
void cleanup_maps_open(cleanup_maps *m)
{
    m->canonical = maps_open("canonical_maps", var_canonical_maps, 0);
    m->sender_canonical = maps_open("sender_canonical_maps", var_sender_canonical_maps, 0);
    m->recipient_canonical = maps_open("recipient_canonical_maps", var_recipient_canonical_maps, 0);
    m->virtual_alias = maps_open("virtual_alias_maps", var_virtual_alias_maps, 0);
    m->header_checks = maps_open("header_checks", var_header_checks, MAP_KEEP_CASE);
    m->body_checks = maps_open("body_checks", var_body_checks, MAP_KEEP_CASE);
}

/* cleanup_maps_close - close every table */
void cleanup_maps_close(cleanup_maps *m)
{
    maps **all[] = {&m->canonical,     &m->sender_canonical, &m->recipient_canonical,
                    &m->virtual_alias, &m->header_checks,    &m->body_checks};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (*all[i])
            maps_close(*all[i]);
        *all[i] = NULL;
    }
}

/* Headers whose addresses are rewritten for local submissions, and how. */
static const char *const cr_sender_headers[] = {
    "From",        "Sender",        "Reply-To",        "Errors-To", "Return-Receipt-To",
    "Resent-From", "Resent-Sender", "Resent-Reply-To", NULL};
static const char *const cr_rcpt_headers[] = {"To",        "Cc",        "Bcc",        "Apparently-To",
                                              "Resent-To", "Resent-Cc", "Resent-Bcc", NULL};

/* cr_header_kind - 1 sender header, 2 recipient header, 0 other */
static int cr_header_kind(const char *hdr, size_t name_len)
{
    for (int i = 0; cr_sender_headers[i]; i++)
        if (strlen(cr_sender_headers[i]) == name_len && strncasecmp(hdr, cr_sender_headers[i], name_len) == 0)
            return 1;
    for (int i = 0; cr_rcpt_headers[i]; i++)
        if (strlen(cr_rcpt_headers[i]) == name_len && strncasecmp(hdr, cr_rcpt_headers[i], name_len) == 0)
            return 2;
    return 0;
}

/* cr_space - white space inside a (folded) header value */
static int cr_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * cleanup_rewrite_header - rewrite the addresses in an address header
 * (RFC 5322 §3.4 address lists: display names, angle addresses, groups,
 * quoted strings and comments are kept as they are). Returns 1 with the new
 * header in out, 0 when nothing changed, -1 on a table error.
 */
int cleanup_rewrite_header(cleanup_state *st, const char *hdr, size_t name_len, vbuf *out)
{
    int kind = cr_header_kind(hdr, name_len);
    const char *p, *colon = strchr(hdr, ':');
    const char *done; /* copied to out up to here */
    int changed = 0, failed = 0;
    vbuf addr, new_addr;

    if (kind == 0 || colon == NULL || (st->flags & CLEANUP_FLAG_NO_REWRITE))
        return 0;
    vbuf_init(&addr, 0);
    vbuf_init(&new_addr, 0);
    vbuf_reset(out);
    done = hdr;
    p = colon + 1;
    while (*p && !failed) {
        const char *elem = p, *angle_open = NULL, *angle_close = NULL, *span = NULL, *span_end = NULL;
        int depth = 0, quote = 0;
        char sep = 0;

        /* One list element: up to a top-level ',', ';' or ':'. */
        for (; *p; p++) {
            if (quote) {
                if (*p == '\\' && p[1])
                    p++;
                else if (*p == '"')
                    quote = 0;
            } else if (depth) {
                if (*p == '\\' && p[1])
                    p++;
                else if (*p == '(')
                    depth++;
                else if (*p == ')')
                    depth--;
            } else if (*p == '"') {
                quote = 1;
            } else if (*p == '(') {
                depth = 1;
            } else if (*p == '<' && angle_open == NULL) {
                angle_open = p;
            } else if (*p == '>' && angle_open && angle_close == NULL) {
                angle_close = p;
            } else if ((*p == ',' || *p == ';' || *p == ':') && (angle_open == NULL || angle_close != NULL)) {
                sep = *p;
                break;
            }
        }
        if (sep == ':') {
            p++; /* a group's display name, not an address */
            continue;
        }
        if (angle_open && angle_close) {
            span = angle_open + 1;
            span_end = angle_close;
        } else if (angle_open == NULL) {
            /* A bare addr-spec: the first word outside comments. */
            const char *q = elem;

            for (;;) {
                while (q < p && cr_space(*q))
                    q++;
                if (q < p && *q == '(') {
                    int d = 0;

                    for (; q < p; q++) {
                        if (*q == '\\' && q + 1 < p)
                            q++;
                        else if (*q == '(')
                            d++;
                        else if (*q == ')' && --d == 0) {
                            q++;
                            break;
                        }
                    }
                    continue;
                }
                break;
            }
            span = q;
            while (q < p && !cr_space(*q) && *q != '(')
                q++;
            span_end = q;
        }
        if (span && span_end > span) {
            vbuf_setn(&addr, span, (size_t) (span_end - span));
            /* Only plain addresses: quoted local parts and source routes stay as written. */
            if (strpbrk(addr.data, "\"\\()<>,;: \t\n[") == NULL && addr.data[0] != '@') {
                int r = kind == 1 ? cleanup_rewrite_sender(st, addr.data, &new_addr)
                                  : cleanup_rewrite_recipient(st, addr.data, &new_addr);

                if (r < 0) {
                    failed = 1;
                } else if (strcmp(new_addr.data, addr.data) != 0) {
                    vbuf_append(out, done, (size_t) (span - done));
                    vbuf_puts(out, new_addr.data);
                    done = span_end;
                    changed = 1;
                }
            }
        }
        if (*p)
            p++;
    }
    if (changed && !failed)
        vbuf_puts(out, done);
    vbuf_release(&addr);
    vbuf_release(&new_addr);
    if (failed)
        return -1;
    return changed;
}
