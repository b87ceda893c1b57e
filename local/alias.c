/*
 * alias - alias expansion: alias_maps lookups, owner-NAME lists,
 * :include: files, and delivery of each item of a list (the list syntax
 * itself is in alias_parse.c).
 *
 * Trusts: the alias tables' owner (their commands and files run as that
 * user, or default_privs when root owns them); :include: files only after
 * the ownership and permission checks of local_read_trusted_file.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "deliver.h"
#include "local.h"
#include "maps.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "strutil.h"
#include "vbuf.h"

/* The alias tables and the user their commands and files run as (main.c opens them). */
maps *local_alias_maps;
local_user *local_alias_owner;

/* local_alias - expand LOCALPART if it is an alias; 1 handled, 0 not an alias */
int local_alias(local_ctx *c, const char *localpart)
{
    const char *value, *at = strrchr(c->address, '@');
    local_status st;
    alias_item *items;
    size_t count;
    vbuf why, owner_key, owner_addr;
    local_ctx list = *c;
    int status;

    if (local_alias_maps == NULL)
        return 0;
    value = maps_find(local_alias_maps, localpart, &status);
    local_status_init(&st);
    vbuf_init(&why, 0);
    vbuf_init(&owner_key, 0);
    vbuf_init(&owner_addr, 0);
    if (status == MAP_ERROR) {
        local_status_set(&st, DELIVER_DEFER, "4.3.0", "alias database unavailable");
        local_result(c, c->address, &st);
        goto done;
    }
    if (status != MAP_FOUND) {
        local_status_free(&st);
        vbuf_release(&why);
        vbuf_release(&owner_key);
        vbuf_release(&owner_addr);
        return 0;
    }
    if (alias_parse(value, 0, &items, &count, &why) != 0) {
        msg_warn("alias %s: %s", localpart, vbuf_str(&why));
        local_status_set(&st, DELIVER_DEFER, "4.3.0", "alias database syntax error for \"%s\"", localpart);
        local_result(c, c->address, &st);
        goto done;
    }
    /* A list "name" with an alias "owner-name": errors go to the owner (new envelope sender). */
    if (strncmp(localpart, "owner-", 6) != 0) {
        (void) vbuf_printf(&owner_key, "owner-%s", localpart);
        const char *owner = maps_find(local_alias_maps, vbuf_str(&owner_key), &status);
        alias_item *oi;
        size_t on;

        if (owner != NULL && status == MAP_FOUND) {
            /* expand_owner_alias: the owner's own address (when it is one) rather than owner-NAME. */
            if (var_expand_owner_alias && alias_parse(owner, 0, &oi, &on, &why) == 0) {
                if (on == 1 && oi[0].type == ALIAS_ADDR)
                    (void) vbuf_printf(&owner_addr, "%s%s%s", oi[0].value, strchr(oi[0].value, '@') ? "" : "@",
                                       strchr(oi[0].value, '@') ? "" : (at ? at + 1 : var_myorigin));
                alias_free(oi, on);
            }
            if (owner_addr.len == 0)
                (void) vbuf_printf(&owner_addr, "%s@%s", vbuf_str(&owner_key), at ? at + 1 : var_myorigin);
            list.sender = vbuf_str(&owner_addr);
        }
    }
    local_expand(&list, items, count, LOCAL_CLASS_ALIAS, local_alias_owner);
    alias_free(items, count);
done:
    local_status_free(&st);
    vbuf_release(&why);
    vbuf_release(&owner_key);
    vbuf_release(&owner_addr);
    return 1;
}

/* local_include - expand the items of an :include: file */
static void local_include(local_ctx *c, const char *path, int cls)
{
    local_status st;
    vbuf text, why;
    alias_item *items;
    size_t count;
    /* Files reached through a user's .forward must be that user's; alias includes root's or anyone's. */
    const local_user *must_own = (cls & LOCAL_CLASS_FORWARD) ? c->owner : NULL;
    int rc;

    local_status_init(&st);
    vbuf_init(&text, 0);
    vbuf_init(&why, 0);
    if ((rc = local_read_trusted_file(path, must_own, &text, &why)) <= 0) {
        local_status_set(&st, rc == 0 ? DELIVER_BOUNCE : DELIVER_DEFER, rc == 0 ? "5.3.5" : "4.3.5",
                         "cannot use :include: file %s: %s", path, rc == 0 ? "no such file" : vbuf_str(&why));
        local_result(c, c->address, &st);
    } else if (alias_parse(vbuf_str(&text), 1, &items, &count, &why) != 0) {
        msg_warn(":include: file %s: %s", path, vbuf_str(&why));
        local_status_set(&st, DELIVER_DEFER, "4.3.5", "syntax error in :include: file %s", path);
        local_result(c, c->address, &st);
    } else {
        struct stat sb;
        local_user *owner = NULL;

        /* Commands and files in the include run as its owner (unless that is root). */
        if (stat(path, &sb) == 0 && sb.st_uid != 0 && local_privileged())
            owner = local_user_byuid(sb.st_uid, sb.st_gid);
        local_expand(c, items, count, cls | LOCAL_CLASS_INCLUDE, owner ? owner : c->owner);
        local_user_free(owner);
        alias_free(items, count);
    }
    local_status_free(&st);
    vbuf_release(&text);
    vbuf_release(&why);
}

/* local_expand - deliver each item of a list reached through class CLS */
void local_expand(local_ctx *c, const alias_item *items, size_t count, int cls, const local_user *owner)
{
    const char *at = strrchr(c->address, '@');

    for (size_t i = 0; i < count; i++) {
        local_ctx sub = *c;
        vbuf addr;

        vbuf_init(&addr, 0);
        sub.parent = c;
        sub.depth = c->depth + 1;
        sub.cls = c->cls | cls;
        sub.owner = owner;
        sub.no_expand = 0;
        switch (items[i].type) {
        case ALIAS_ADDR:
        case ALIAS_SELF:
            /* A bare name is a user in the domain of the list. */
            if (strchr(items[i].value, '@') == NULL && at)
                (void) vbuf_printf(&addr, "%s%s", items[i].value, at);
            else
                (void) vbuf_set(&addr, items[i].value);
            sub.address = vbuf_str(&addr);
            sub.no_expand = items[i].type == ALIAS_SELF;
            sub.extension = NULL;
            local_recipient(&sub);
            break;
        case ALIAS_COMMAND:
            local_pipe(&sub, items[i].value);
            break;
        case ALIAS_FILE:
            local_file(&sub, items[i].value);
            break;
        case ALIAS_INCLUDE:
            if (sub.depth > LOCAL_MAX_DEPTH) {
                local_status st;

                local_status_init(&st);
                local_status_set(&st, DELIVER_BOUNCE, "5.4.6", "include nesting too deep for %s", items[i].value);
                local_result(c, c->address, &st);
                local_status_free(&st);
            } else {
                local_include(&sub, items[i].value, sub.cls);
            }
            break;
        }
        vbuf_release(&addr);
    }
}
