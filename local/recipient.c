/*
 * recipient - where one address goes: loop and depth checks, then (for a
 * local domain) aliases, the user's ~/.forward and mailbox; virtual mailbox
 * domains to virtual.c; anything else is forwarded through cleanup.
 *
 * Trusts: the address came from qmgr or from an alias/forward list that
 * alias_parse checked; lookups that fail defer, never guess.
 */
#include <string.h>
#include <unistd.h>

#include "deliver.h"
#include "local.h"
#include "maps.h"
#include "mymalloc.h"
#include "params.h"
#include "strutil.h"
#include "vbuf.h"

/* local_domain_in_list - DOMAIN matches a name in LIST or is a key of a table in it */
static int local_domain_in_list(const char *param, const char *list, const char *domain)
{
    char *copy = xstrdup(list), *cur = copy, *tok;
    int found = 0;

    while (!found && (tok = str_token(&cur, CHARS_COMMA_SPACE)) != NULL) {
        if (strchr(tok, ':') && tok[0] != '[') {
            maps *m = maps_open(param, tok, 0);
            int status;

            found = maps_find(m, domain, &status) != NULL && status == MAP_FOUND;
            maps_close(m);
        } else {
            found = str_case_eq(tok, domain);
        }
    }
    xfree(copy);
    return found;
}

/* local_domain_is_local - DOMAIN is one of mydestination */
int local_domain_is_local(const char *domain)
{
    return local_domain_in_list("mydestination", var_mydestination, domain);
}

/* local_virtual_domain - DOMAIN is one of virtual_mailbox_domains */
int local_virtual_domain(const char *domain)
{
    return local_domain_in_list("virtual_mailbox_domains", var_virtual_mailbox_domains, domain);
}

/* local_bounce - a target that failed before any delivery was tried */
static void local_fail(local_ctx *c, int status, const char *dsn, const char *text)
{
    local_status st;

    local_status_init(&st);
    local_status_set(&st, status, dsn, "%s", text);
    local_result(c, c->address, &st);
    local_status_free(&st);
}

/* local_in_chain - ADDR was already expanded higher up in this chain */
static int local_in_chain(const local_ctx *c)
{
    for (const local_ctx *p = c->parent; p; p = p->parent)
        if (str_case_eq(p->address, c->address))
            return 1;
    return 0;
}

/* local_recipient - deliver to c->address */
void local_recipient(local_ctx *c)
{
    const char *at = strrchr(c->address, '@');
    char *localpart, *base, *ext = NULL;
    local_user *u;
    vbuf why, text;
    int in_chain;

    vbuf_init(&why, 0);
    vbuf_init(&text, 0);
    if (c->depth > LOCAL_MAX_DEPTH) {
        (void) vbuf_printf(&text, "mail forwarding loop for %s: expansion too deep", c->address);
        local_fail(c, DELIVER_BOUNCE, "5.4.6", vbuf_str(&text));
        goto out_plain;
    }
    /* A message that already went through this address is in a loop. */
    if (local_delivered_to_seen(c->msg, c->address)) {
        (void) vbuf_printf(&text, "mail forwarding loop for %s", c->address);
        local_fail(c, DELIVER_BOUNCE, "5.4.6", vbuf_str(&text));
        goto out_plain;
    }
    if (at && !local_domain_is_local(at + 1)) {
        if (c->depth == 0 && local_virtual_domain(at + 1)) {
            local_virtual(c);
            goto out_plain;
        }
        /* List members elsewhere go on through the queue (Delivered-To stops loops). */
        if (c->depth > 0) {
            local_forward_add(c, c->address);
            goto out_plain;
        }
        /* The request's own recipient in a domain routed here (transport_maps): the local part decides. */
    }
    localpart = at ? xstrndup(c->address, (size_t) (at - c->address)) : xstrdup(c->address);
    str_lower(localpart);
    base = xstrdup(localpart);
    if (*var_recipient_delimiter) {
        char *d = strpbrk(base, var_recipient_delimiter);

        if (d && d != base) {
            ext = xstrdup(d + 1);
            *d = 0;
        }
    }
    c->extension = ext;
    c->delivered_to = c->address;
    in_chain = local_in_chain(c);
    if (!in_chain && !c->no_expand && (local_alias(c, localpart) || (ext && local_alias(c, base))))
        goto out;
    u = local_user_byname(base, &why);
    if (u == NULL) {
        if (why.len) {
            local_fail(c, DELIVER_DEFER, "4.3.0", vbuf_str(&why));
        } else {
            (void) vbuf_printf(&text, "unknown user: \"%s\"", base);
            local_fail(c, DELIVER_BOUNCE, "5.1.1", vbuf_str(&text));
        }
        goto out;
    }
    c->user = u;
    if (in_chain || c->no_expand || !local_forward(c, u)) {
        local_ctx mc = *c;

        mc.owner = u;
        local_mailbox(&mc, u);
    }
    c->user = NULL;
    local_user_free(u);
out:
    xfree(localpart);
    xfree(base);
    xfree(ext);
    c->extension = NULL;
out_plain:
    vbuf_release(&why);
    vbuf_release(&text);
}
