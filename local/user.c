/*
 * user - the users deliveries run as: looked up in the password database
 * (getpwnam_r/getpwuid_r), copied so nothing points into static storage;
 * or, for a virtual mailbox, made from the uid and gid its tables give.
 *
 * Nothing is cached: every message looks its user up again, so a changed
 * or removed account takes effect at once (as in Postfix).
 */
#include <errno.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "local.h"
#include "mymalloc.h"
#include "vbuf.h"

/* local_user_from_pw - copy the fields we need */
static local_user *local_user_from_pw(const struct passwd *pw)
{
    local_user *u = xcalloc(1, sizeof(*u));

    u->name = xstrdup(pw->pw_name);
    u->home = xstrdup(pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/");
    u->shell = xstrdup(pw->pw_shell && *pw->pw_shell ? pw->pw_shell : "/bin/sh");
    u->uid = pw->pw_uid;
    u->gid = pw->pw_gid;
    return u;
}

/* local_user_byname - a user by login name; NULL with why empty when unknown */
local_user *local_user_byname(const char *name, vbuf *why)
{
    struct passwd pw, *res = NULL;
    char buf[16384];
    int err;

    vbuf_reset(why);
    err = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
    if (res == NULL) {
        if (err != 0 && err != ENOENT && err != ESRCH && err != EBADF && err != EPERM)
            (void) vbuf_printf(why, "password database lookup of \"%s\": %s", name, strerror(err));
        return NULL;
    }
    return local_user_from_pw(res);
}

/* local_user_byuid - a user by uid (a placeholder entry when the uid has no name) */
local_user *local_user_byuid(uid_t uid, gid_t gid)
{
    struct passwd pw, *res = NULL;
    char buf[16384];
    local_user *u;

    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL) {
        u = local_user_from_pw(res);
        u->gid = gid;
        return u;
    }
    u = xcalloc(1, sizeof(*u));
    u->name = xstrdup("nobody");
    u->home = xstrdup("/");
    u->shell = xstrdup("/bin/sh");
    u->uid = uid;
    u->gid = gid;
    return u;
}

/* local_user_virtual - the owner of a virtual mailbox: ids from the tables, no password lookup */
local_user *local_user_virtual(uid_t uid, gid_t gid)
{
    local_user *u = xcalloc(1, sizeof(*u));
    vbuf name;

    vbuf_init(&name, 0);
    (void) vbuf_printf(&name, "uid %ld", (long) uid);
    u->name = vbuf_steal(&name);
    vbuf_release(&name);
    u->home = xstrdup("/");
    u->shell = xstrdup("/bin/sh");
    u->uid = uid;
    u->gid = gid;
    return u;
}

/* local_user_dup - a deep copy */
local_user *local_user_dup(const local_user *u)
{
    local_user *d = xcalloc(1, sizeof(*d));

    d->name = xstrdup(u->name);
    d->home = xstrdup(u->home);
    d->shell = xstrdup(u->shell);
    d->uid = u->uid;
    d->gid = u->gid;
    return d;
}

/* local_user_free - release a user (NULL is fine) */
void local_user_free(local_user *u)
{
    if (u == NULL)
        return;
    xfree(u->name);
    xfree(u->home);
    xfree(u->shell);
    xfree(u);
}
