/*
 * privs - every delivery runs in a child process with the privileges of
 * the user it delivers for. The child may first do a step as root (open a
 * mailbox in a spool directory only root may write), then sets groups,
 * gid and uid, checks that all of them took, and delivers. Its outcome
 * comes back over a pipe as one attr frame; the parent trusts only a
 * well-formed frame and treats anything else (crash, timeout) as a
 * temporary failure.
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
#include "stream.h"

/* local_privileged - whether this process can change to other users */
int local_privileged(void)
{
    return geteuid() == 0;
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

/* local_run_as - run a delivery in a child as U; its outcome in st */
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
