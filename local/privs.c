/*
 * privs - whose privileges a delivery runs with.
 *
 * Two ways, both ending with exactly the recipient's uid, gid and one
 * group (the user's primary group, as Postfix's local does):
 *
 *   local_as_user - mailbox and Maildir deliveries: this process
 *       switches its effective identity (setgroups, setegid, seteuid; the
 *       real and saved ids stay root), delivers, and becomes root again.
 *       Each switch is checked (ids, groups); a failure to become root
 *       again is fatal. A time limit (alarm, default action: the kernel
 *       kills the process, even out of a killable NFS wait) stands in for
 *       the parent that killed a hung child.
 *   local_run_as - commands, and files named in aliases or .forward
 *       (file.c says why): a child process that becomes the user for
 *       good (real, effective and saved ids) before it runs anything; its
 *       outcome comes back over a pipe as one attr frame, and the parent
 *       treats anything but a well-formed frame (crash, timeout) as a
 *       temporary failure.
 *
 * Why in-process is safe for mailboxes: nothing but Kite's own code runs
 * while the identity is the user's - open (O_NOFOLLOW, safe_open), lock,
 * write, fsync, rename/link, unlink - and every one of those
 * file-system operations is checked by the kernel against the user's
 * fsuid/fsgid/groups exactly as in a child. The user cannot signal or
 * ptrace the process meanwhile (its real and saved uid are root; the
 * kernel also marks it non-dumpable). Code the user controls (a command)
 * never runs in this process: pipes keep forking.
 *
 * An instance that does not run as root delivers only as itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "deliver.h"
#include "local.h"
#include "msg.h"
#include "mymalloc.h"
#include "stream.h"

/* local_privileged - whether this process can change to other users */
int local_privileged(void)
{
    return geteuid() == 0;
}

/* Root's own ids and groups, recorded before the first switch, restored after each. */
static gid_t *privs_root_groups;
static int privs_root_ngroups = -1;
static gid_t privs_root_rgid, privs_root_egid, privs_root_sgid;

#define PRIVS_GROUPS_STACK 64 /* group lists this long need no allocation */

/* privs_groups_are - the supplementary groups are exactly LIST[0..N) (any order) */
static int privs_groups_are(const gid_t *list, int n)
{
    gid_t stack[PRIVS_GROUPS_STACK], *now = stack;
    int have, ok = 1;

    /* One call in the common case: a buffer larger than the list we expect. */
    if (n >= PRIVS_GROUPS_STACK)
        now = xreallocarray(NULL, (size_t) n + 1, sizeof(*now));
    have = getgroups(n >= PRIVS_GROUPS_STACK ? n + 1 : PRIVS_GROUPS_STACK, now);
    if (have != n) {
        ok = 0; /* a different count, or an error (EINVAL: even more groups) */
    } else {
        for (int i = 0; i < n && ok; i++) {
            int found = 0;

            for (int k = 0; k < n && !found; k++)
                found = now[i] == list[k];
            ok = found;
        }
    }
    if (now != stack)
        xfree(now);
    return ok;
}

/* privs_record_root - remember root's gids and groups (once, while root) */
static void privs_record_root(void)
{
    uid_t r, e, s;
    int n;

    if (privs_root_ngroups >= 0)
        return;
    if (getresuid(&r, &e, &s) < 0 || r != 0 || e != 0 || s != 0)
        msg_panic("privs_record_root: not root in every uid");
    if (getresgid(&privs_root_rgid, &privs_root_egid, &privs_root_sgid) < 0)
        msg_fatal("getresgid: %m");
    if ((n = getgroups(0, NULL)) < 0)
        msg_fatal("getgroups: %m");
    privs_root_groups = xreallocarray(NULL, (size_t) n + 1, sizeof(gid_t));
    if (getgroups(n, privs_root_groups) != n)
        msg_fatal("getgroups: %m");
    privs_root_ngroups = n;
}

/* local_restore_root - become root again after local_set_eugid; fatal when it does not take */
void local_restore_root(void)
{
    uid_t r, e, s;
    gid_t rg, eg, sg;

    if (privs_root_ngroups < 0)
        msg_panic("local_restore_root: no identity switch was made");
    /* The uid first: only root may change gids and groups. */
    if (seteuid(0) < 0)
        msg_fatal("local_restore_root: seteuid(0): %m");
    if (setegid(privs_root_egid) < 0)
        msg_fatal("local_restore_root: setegid(%ld): %m", (long) privs_root_egid);
    if (setgroups((size_t) privs_root_ngroups, privs_root_groups) < 0)
        msg_fatal("local_restore_root: setgroups: %m");
    if (getresuid(&r, &e, &s) < 0 || getresgid(&rg, &eg, &sg) < 0)
        msg_fatal("local_restore_root: getresuid/getresgid: %m");
    if (r != 0 || e != 0 || s != 0 || rg != privs_root_rgid || eg != privs_root_egid || sg != privs_root_sgid ||
        !privs_groups_are(privs_root_groups, privs_root_ngroups))
        msg_fatal("local_restore_root: did not become root again (uids %ld/%ld/%ld, gids %ld/%ld/%ld)", (long) r,
                  (long) e, (long) s, (long) rg, (long) eg, (long) sg);
}

/* local_set_eugid - take UID/GID (and GID as the only group) as effective identity; 0, or -1 (why) as root */
int local_set_eugid(uid_t uid, gid_t gid, vbuf *why)
{
    uid_t r, e, s;
    gid_t rg, eg, sg;

    privs_record_root();
    if (geteuid() != 0)
        msg_panic("local_set_eugid: euid is %ld, not root", (long) geteuid());
    /* Groups and gid while still root; the uid last. Real and saved ids stay root for the way back. */
    if (setgroups(1, &gid) < 0 || setegid(gid) < 0 || seteuid(uid) < 0) {
        (void) vbuf_printf(why, "cannot change to uid %ld gid %ld: %s", (long) uid, (long) gid, strerror(errno));
        local_restore_root();
        return -1;
    }
    /* Don't assume: check every id and the group list. */
    if (getresuid(&r, &e, &s) < 0 || getresgid(&rg, &eg, &sg) < 0 || e != uid || r != 0 || s != 0 || eg != gid ||
        rg != privs_root_rgid || sg != privs_root_sgid || !privs_groups_are(&gid, 1)) {
        (void) vbuf_printf(why, "change to uid %ld gid %ld did not take", (long) uid, (long) gid);
        local_restore_root();
        return -1;
    }
    return 0;
}

/* local_as_user - run FN in this process as U (PRE_ROOT first, as root), then root again; outcome in st */
void local_as_user(const local_user *u, local_child_fn pre_root, local_child_fn fn, void *ctx, int timeout,
                   local_status *st)
{
    struct sigaction dfl, old_act;
    sigset_t alrm, old_mask;
    int privileged = local_privileged();
    local_status res; /* a fresh outcome, as a child would start with */
    vbuf why;

    if (!privileged && u->uid != getuid()) {
        /* Everything runs as this one user: no switch, and no other user. */
        local_status_set(st, DELIVER_DEFER, "4.3.0",
                         "an unprivileged mail system cannot deliver as user \"%s\" (uid %ld)", u->name, (long) u->uid);
        return;
    }
    /*
     * The time limit: SIGALRM with its default action ends the process
     * (qmgr defers what this request had left, master logs the signal).
     * A handler could not interrupt a write stuck on a network file
     * system; a fatal signal does.
     */
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    (void) sigemptyset(&dfl.sa_mask);
    (void) sigemptyset(&alrm);
    (void) sigaddset(&alrm, SIGALRM);
    if (sigaction(SIGALRM, &dfl, &old_act) < 0 || sigprocmask(SIG_UNBLOCK, &alrm, &old_mask) < 0)
        msg_fatal("local_as_user: SIGALRM setup: %m");
    (void) alarm(timeout > 0 ? (unsigned) timeout : 0);
    vbuf_init(&why, 0);
    local_status_init(&res);
    if (pre_root)
        pre_root(ctx, &res);
    if (res.status == DELIVER_OK) {
        if (!privileged) {
            fn(ctx, &res); /* already the user */
        } else if (local_set_eugid(u->uid, u->gid, &why) < 0) {
            local_status_set(&res, DELIVER_DEFER, "4.3.0", "%s", vbuf_str(&why));
        } else {
            fn(ctx, &res);
            local_restore_root();
        }
    }
    (void) alarm(0);
    if (sigprocmask(SIG_SETMASK, &old_mask, NULL) < 0 || sigaction(SIGALRM, &old_act, NULL) < 0)
        msg_fatal("local_as_user: SIGALRM restore: %m");
    local_status_set(st, res.status, res.dsn, "%s", vbuf_str(&res.reason));
    local_status_free(&res);
    vbuf_release(&why);
}

/* privs_drop - become U for good; 0 or -1 with the reason in st */
static int privs_drop(const local_user *u, local_status *st)
{
    if (!local_privileged()) {
        if (u->uid != getuid()) {
            local_status_set(st, DELIVER_DEFER, "4.3.0",
                             "an unprivileged mail system cannot deliver as user \"%s\" (uid %ld)", u->name,
                             (long) u->uid);
            return -1;
        }
        return 0;
    }
    if (setgroups(1, &u->gid) < 0 || setgid(u->gid) < 0 || setuid(u->uid) < 0) {
        local_status_set(st, DELIVER_DEFER, "4.3.0", "cannot change to uid %ld gid %ld: %s", (long) u->uid,
                         (long) u->gid, strerror(errno));
        return -1;
    }
    /* Don't assume: check that real and effective ids changed, and root is gone. */
    if (getuid() != u->uid || geteuid() != u->uid || getgid() != u->gid || getegid() != u->gid ||
        (u->uid != 0 && setuid(0) == 0)) {
        local_status_set(st, DELIVER_DEFER, "4.3.0", "privilege drop to uid %ld did not take", (long) u->uid);
        return -1;
    }
    return 0;
}

/* privs_child - the child's side: deliver and report */
static void privs_child(int fd, const local_user *u, local_child_fn pre_root, local_child_fn fn, void *ctx)
    __attribute__((noreturn));
static void privs_child(int fd, const local_user *u, local_child_fn pre_root, local_child_fn fn, void *ctx)
{
    local_status st;
    attr_list *l = attr_new();
    stream *s;

    local_status_init(&st);
    (void) signal(SIGPIPE, SIG_IGN);
    if (pre_root && local_privileged())
        pre_root(ctx, &st);
    else if (pre_root && u->uid == getuid())
        pre_root(ctx, &st);
    if (st.status == DELIVER_OK && privs_drop(u, &st) == 0)
        fn(ctx, &st);
    attr_put_int(l, "status", st.status);
    attr_put_str(l, "dsn", st.dsn);
    attr_put_str(l, "reason", vbuf_str(&st.reason));
    s = stream_open(fd);
    stream_set_timeout(s, 60);
    (void) attr_write(s, l);
    (void) stream_flush(s);
    _exit(0);
}

/* local_run_as - run a delivery in a child that becomes U for good; its outcome in st */
void local_run_as(const local_user *u, local_child_fn pre_root, local_child_fn fn, void *ctx, int timeout,
                  local_status *st)
{
    int fds[2], wstatus;
    pid_t pid;
    attr_list *l;
    stream *s;
    long long status = -1;
    const char *dsn = NULL, *reason = NULL;
    attr_spec specs[] = {
        ATTR_SPEC_INT("status", ATTR_REQUIRED, &status),
        ATTR_SPEC_STR("dsn", ATTR_REQUIRED, &dsn),
        ATTR_SPEC_STR("reason", ATTR_REQUIRED, &reason),
        ATTR_SPEC_END,
    };
    int rc;

    if (pipe2(fds, O_CLOEXEC) < 0) {
        local_status_set(st, DELIVER_DEFER, "4.3.0", "cannot create pipe: %s", strerror(errno));
        return;
    }
    if ((pid = fork()) < 0) {
        local_status_set(st, DELIVER_DEFER, "4.3.0", "cannot fork: %s", strerror(errno));
        (void) close(fds[0]);
        (void) close(fds[1]);
        return;
    }
    if (pid == 0) {
        (void) close(fds[0]);
        privs_child(fds[1], u, pre_root, fn, ctx);
    }
    (void) close(fds[1]);
    s = stream_open(fds[0]);
    stream_set_timeout(s, timeout);
    l = attr_new();
    rc = attr_read(s, l, 64 * 1024);
    if (rc != 0)
        (void) kill(pid, SIGKILL);
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
        ;
    if (rc != 0 || attr_scan(l, specs) != 0 || status < DELIVER_OK || status > DELIVER_BOUNCE ||
        strlen(dsn) >= sizeof(st->dsn) || (dsn[0] != '2' && dsn[0] != '4' && dsn[0] != '5')) {
        local_status_set(st, DELIVER_DEFER, "4.3.0", "delivery process failed%s",
                         rc == STREAM_TIMEOUT ? ": time limit exceeded" : "");
    } else {
        local_status_set(st, (int) status, dsn, "%s", reason);
    }
    attr_free(l);
    stream_close(s);
}
