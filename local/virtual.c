/*
 * virtual - virtual mailbox domains: virtual_mailbox_maps gives each
 * address a mailbox path under virtual_mailbox_base ('/' at the end: a
 * Maildir), virtual_uid_maps and virtual_gid_maps the owner (static: or
 * per-address tables). An unprivileged instance delivers as itself.
 *
 * Trusts: nothing in the tables: paths must be relative without "..",
 * uids below virtual_minimum_uid are refused, and lookup errors defer.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deliver.h"
#include "local.h"
#include "maps.h"
#include "params.h"
#include "strutil.h"
#include "vbuf.h"

static maps *virtual_mailboxes, *virtual_uids, *virtual_gids;

/* virtual_open - the tables, opened on first use and kept */
static void virtual_open(void)
{
    if (virtual_mailboxes == NULL) {
        virtual_mailboxes = maps_open("virtual_mailbox_maps", var_virtual_mailbox_maps, 0);
        virtual_uids = maps_open("virtual_uid_maps", var_virtual_uid_maps, 0);
        virtual_gids = maps_open("virtual_gid_maps", var_virtual_gid_maps, 0);
    }
}

/* local_virtual_open - open the tables now (before any privilege change) */
void local_virtual_open(void)
{
    virtual_open();
}

/* local_virtual_close - release the tables */
void local_virtual_close(void)
{
    if (virtual_mailboxes) {
        maps_close(virtual_mailboxes);
        maps_close(virtual_uids);
        maps_close(virtual_gids);
    }
    virtual_mailboxes = virtual_uids = virtual_gids = NULL;
}

/* virtual_path_ok - a relative path with no ".." component */
static int virtual_path_ok(const char *p)
{
    if (*p == 0 || *p == '/')
        return 0;
    for (const char *s = p; *s; s++)
        if ((unsigned char) *s < 0x20)
            return 0;
    for (const char *s = p; (s = strstr(s, "..")) != NULL; s += 2)
        if ((s == p || s[-1] == '/') && (s[2] == 0 || s[2] == '/'))
            return 0;
    return 1;
}

/* virtual_id - a numeric id from a table; 1 found, 0 none, -1 error or junk */
static int virtual_id(maps *m, const char *addr, long *out)
{
    int status;
    const char *v = maps_find_addr(m, addr, 0, &status);

    if (status == MAP_ERROR)
        return -1;
    if (v == NULL || status != MAP_FOUND)
        return 0;
    return str_to_long(v, out) == 0 && *out >= 0 ? 1 : -1;
}

/* local_virtual - deliver to a virtual mailbox */
void local_virtual(local_ctx *c)
{
    local_status st;
    vbuf path;
    const char *mbox;
    long uid = -1, gid = -1;
    int status, ru, rg;
    local_user *u = NULL;

    local_status_init(&st);
    vbuf_init(&path, 0);
    virtual_open();
    c->delivered_to = c->address;
    mbox = maps_find_addr(virtual_mailboxes, c->address, 0, &status);
    if (status == MAP_ERROR) {
        local_status_set(&st, DELIVER_DEFER, "4.3.0", "virtual_mailbox_maps lookup failure");
        goto done;
    }
    if (mbox == NULL || status != MAP_FOUND) {
        local_status_set(&st, DELIVER_BOUNCE, "5.1.1", "unknown user: \"%s\"", c->address);
        goto done;
    }
    if (*var_virtual_mailbox_base == 0 || !virtual_path_ok(mbox)) {
        local_status_set(&st, DELIVER_DEFER, "4.3.5", "bad virtual mailbox path for %s", c->address);
        goto done;
    }
    ru = virtual_id(virtual_uids, c->address, &uid);
    rg = virtual_id(virtual_gids, c->address, &gid);
    if (ru < 0 || rg < 0) {
        local_status_set(&st, DELIVER_DEFER, "4.3.0", "virtual uid/gid lookup failure for %s", c->address);
        goto done;
    }
    if (!local_privileged()) {
        /* An unprivileged instance owns its mailboxes itself. */
        uid = (long) getuid();
        gid = (long) getgid();
    } else if (ru == 0 || rg == 0 || uid < var_virtual_minimum_uid) {
        local_status_set(&st, DELIVER_DEFER, "4.3.5", "no valid virtual uid/gid for %s", c->address);
        goto done;
    }
    (void) vbuf_printf(&path, "%s/%s", var_virtual_mailbox_base, mbox);
    /* The tables give the ids; a virtual mailbox needs no password entry (none is read per message). */
    u = local_user_virtual((uid_t) uid, (gid_t) gid);
    local_mailbox_at(c, u, vbuf_str(&path), 0, var_virtual_mailbox_limit, &st);
done:
    local_result(c, c->address, &st);
    local_user_free(u);
    local_status_free(&st);
    vbuf_release(&path);
}
