/*
 * Unit tests for local's identity switching (local/privs.c) and the Maildir
 * writer (local/maildir.c) it runs.
 *
 * As root: local_set_eugid takes exactly the user's effective uid, gid and
 * one group, keeps real and saved uid root and drops the effective
 * capabilities; local_restore_root brings back root's ids and its own group
 * list; local_as_user runs the pre-root step as root and the delivery as
 * the user (files it creates are the user's), and is root again afterwards
 * whether the delivery worked, failed, or never started. Everywhere: an
 * unprivileged process delivers only as itself, the time limit ends the
 * process, and a Maildir is created when missing and left alone when it
 * exists.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../local/local.h"
#include "conf.h"
#include "deliver.h"
#include "mymalloc.h"
#include "qfile.h"
#include "vbuf.h"

#define USER_ID 65534 /* nobody / nogroup on Debian */

static char dir[] = "/tmp/kite-local-privs-XXXXXX";
static const gid_t root_groups[] = {0, 4, 27}; /* root, adm, sudo: a list worth restoring */
static local_user user = {"nobody", "/nonexistent", "/bin/sh", USER_ID, USER_ID};

/* The ids seen by a delivery step. */
typedef struct seen {
    int called;
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    int ngroups;
    gid_t groups[64];
    char capeff[64];
    const char *create; /* a file to create, or NULL */
    int create_errno;
    int fail; /* set DELIVER_DEFER */
} seen;

/* cap_eff - the CapEff line of /proc/self/status */
static void cap_eff(char *out, size_t len)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];

    (void) snprintf(out, len, "?");
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "CapEff:", 7) == 0) {
            line[strcspn(line, "\n")] = 0;
            (void) snprintf(out, len, "%s", line + 7 + strspn(line + 7, " \t"));
        }
    (void) fclose(f);
}

/* proc_ids - the Uid: or Gid: line of /proc/self/status ("0\t0\t0\t0") */
static void proc_ids(const char *key, char *out, size_t len)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];

    (void) snprintf(out, len, "?");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, strlen(key)) == 0) {
            line[strcspn(line, "\n")] = 0;
            (void) snprintf(out, len, "%s", line + strlen(key) + strspn(line + strlen(key), " \t"));
        }
    (void) fclose(f);
}

/* record - a delivery step that notes who it ran as (and may create a file or fail) */
static void record(void *ctx, local_status *st)
{
    seen *s = ctx;

    s->called++;
    assert_int_equal(getresuid(&s->ruid, &s->euid, &s->suid), 0);
    assert_int_equal(getresgid(&s->rgid, &s->egid, &s->sgid), 0);
    s->ngroups = getgroups(64, s->groups);
    cap_eff(s->capeff, sizeof(s->capeff));
    if (s->create) {
        int fd = open(s->create, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

        s->create_errno = fd < 0 ? errno : 0;
        if (fd >= 0)
            (void) close(fd);
    }
    if (s->fail || (s->create && s->create_errno))
        local_status_set(st, DELIVER_DEFER, "4.2.0", "delivery step failed");
}

/* assert_root_again - this process is root in every id, with root's groups */
static void assert_root_again(void)
{
    uid_t r, e, s;
    gid_t rg, eg, sg;
    gid_t groups[64];
    int n = getgroups(64, groups);
    char ids[64];

    assert_int_equal(getresuid(&r, &e, &s), 0);
    assert_int_equal(getresgid(&rg, &eg, &sg), 0);
    assert_int_equal(r, 0);
    assert_int_equal(e, 0);
    assert_int_equal(s, 0);
    assert_int_equal(rg, 0);
    assert_int_equal(eg, 0);
    assert_int_equal(sg, 0);
    proc_ids("Uid:", ids, sizeof(ids));
    assert_string_equal(ids, "0\t0\t0\t0");
    proc_ids("Gid:", ids, sizeof(ids));
    assert_string_equal(ids, "0\t0\t0\t0");
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(groups[i], root_groups[i]);
}

static int setup(void **state)
{
    char p[256];

    (void) state;
    if (mkdtemp(dir) == NULL || chmod(dir, 0755) != 0)
        return -1;
    (void) snprintf(p, sizeof(p), "%s/public", dir);
    if (mkdir(p, 0755) != 0 || chmod(p, 01777) != 0)
        return -1;
    (void) snprintf(p, sizeof(p), "%s/rootonly", dir);
    if (mkdir(p, 0755) != 0)
        return -1;
    (void) snprintf(p, sizeof(p), "%s/incoming", dir);
    if (mkdir(p, 0700) != 0)
        return -1;
    {
        static const char cf[] = "myhostname = kite.test\n";
        int fd;

        (void) snprintf(p, sizeof(p), "%s/etc", dir);
        if (mkdir(p, 0755) != 0)
            return -1;
        (void) snprintf(p, sizeof(p), "%s/etc/main.cf", dir);
        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, cf, sizeof(cf) - 1) != (ssize_t) sizeof(cf) - 1 || close(fd) != 0)
            return -1;
        (void) snprintf(p, sizeof(p), "%s/etc", dir);
        conf_reset();
        if (conf_load(p) != 0)
            return -1;
    }
    if (geteuid() == 0 && setgroups(3, root_groups) != 0)
        return -1;
    return chdir(dir);
}

static int teardown(void **state)
{
    pid_t pid;

    (void) state;
    if (chdir("/") != 0)
        return -1;
    if ((pid = fork()) == 0) {
        char *argv[] = {"rm", "-rf", dir, NULL};

        execv("/bin/rm", argv);
        _exit(1);
    }
    return waitpid(pid, NULL, 0) == pid ? 0 : -1;
}

static void test_set_eugid_takes_user_ids_and_restore_brings_root_back(void **state)
{
    vbuf why;
    seen s;

    (void) state;
    if (geteuid() != 0)
        skip();
    memset(&s, 0, sizeof(s));
    vbuf_init(&why, 0);
    assert_int_equal(local_set_eugid(USER_ID, USER_ID, &why), 0);
    record(&s, NULL);
    /* Effective: the user. Real and saved: root, for the way back. One group: the user's. */
    assert_int_equal(s.euid, USER_ID);
    assert_int_equal(s.egid, USER_ID);
    assert_int_equal(s.ruid, 0);
    assert_int_equal(s.suid, 0);
    assert_int_equal(s.ngroups, 1);
    assert_int_equal(s.groups[0], USER_ID);
    /* No root powers while switched. */
    assert_string_equal(s.capeff, "0000000000000000");
    local_restore_root();
    assert_root_again();
    vbuf_release(&why);
}

static void test_as_user_delivers_as_the_user_and_returns_to_root(void **state)
{
    char p[256];
    struct stat sb;
    local_status st;
    seen s;

    (void) state;
    if (geteuid() != 0)
        skip();
    memset(&s, 0, sizeof(s));
    (void) snprintf(p, sizeof(p), "%s/public/made-by-user", dir);
    s.create = p;
    local_status_init(&st);
    local_as_user(&user, NULL, record, &s, 60, &st);
    assert_int_equal(st.status, DELIVER_OK);
    assert_int_equal(s.called, 1);
    assert_int_equal(s.euid, USER_ID);
    assert_int_equal(s.egid, USER_ID);
    assert_int_equal(s.create_errno, 0);
    /* The file is the user's, with the mode asked for. */
    assert_int_equal(lstat(p, &sb), 0);
    assert_int_equal(sb.st_uid, USER_ID);
    assert_int_equal(sb.st_gid, USER_ID);
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_root_again();
    local_status_free(&st);
}

static void test_as_user_failed_delivery_still_returns_to_root(void **state)
{
    char p[256];
    local_status st;
    seen s, t;

    (void) state;
    if (geteuid() != 0)
        skip();
    /* The user may not write in root's directory: the step fails with EACCES... */
    memset(&s, 0, sizeof(s));
    (void) snprintf(p, sizeof(p), "%s/rootonly/not-allowed", dir);
    s.create = p;
    local_status_init(&st);
    local_as_user(&user, NULL, record, &s, 60, &st);
    assert_int_equal(st.status, DELIVER_DEFER);
    assert_int_equal(s.create_errno, EACCES);
    assert_int_equal(access(p, F_OK), -1);
    assert_root_again();
    /* ...and the next delivery, for another user, runs as that user. */
    {
        local_user other = {"daemon", "/", "/bin/sh", 1, 1};

        memset(&t, 0, sizeof(t));
        local_status_free(&st);
        local_status_init(&st);
        local_as_user(&other, NULL, record, &t, 60, &st);
        assert_int_equal(st.status, DELIVER_OK);
        assert_int_equal(t.euid, 1);
        assert_int_equal(t.egid, 1);
        assert_int_equal(t.ngroups, 1);
        assert_int_equal(t.groups[0], 1);
    }
    assert_root_again();
    local_status_free(&st);
}

static void test_as_user_pre_root_runs_as_root_and_its_failure_skips_delivery(void **state)
{
    local_status st;
    seen pre, s;

    (void) state;
    if (geteuid() != 0)
        skip();
    memset(&pre, 0, sizeof(pre));
    memset(&s, 0, sizeof(s));
    local_status_init(&st);
    local_as_user(&user, record, record, &pre, 60, &st);
    /* Both steps got the same record: first as root, then as the user. */
    assert_int_equal(pre.called, 2);
    assert_int_equal(pre.euid, USER_ID);
    pre.called = 0;
    pre.fail = 1;
    local_status_free(&st);
    local_status_init(&st);
    local_as_user(&user, record, record, &pre, 60, &st);
    assert_int_equal(pre.called, 1);
    assert_int_equal(pre.euid, 0); /* only the root step ran */
    assert_int_equal(st.status, DELIVER_DEFER);
    assert_root_again();
    local_status_free(&st);
}

/* unpriv_child - as an ordinary user: deliver as yourself, refuse anyone else; exit 0 when right */
static void unpriv_child(void)
{
    local_user self = {"me", "/", "/bin/sh", getuid(), getgid()};
    local_user other = {"somebody", "/", "/bin/sh", getuid() + 1, getgid()};
    local_status st;
    seen s;

    memset(&s, 0, sizeof(s));
    local_status_init(&st);
    local_as_user(&self, NULL, record, &s, 60, &st);
    if (st.status != DELIVER_OK || s.called != 1 || s.euid != getuid())
        _exit(1);
    local_as_user(&other, NULL, record, &s, 60, &st);
    if (st.status != DELIVER_DEFER || s.called != 1 || strcmp(st.dsn, "4.3.0") != 0 ||
        strstr(vbuf_str(&st.reason), "an unprivileged mail system cannot deliver as user \"somebody\"") == NULL)
        _exit(2);
    local_status_free(&st);
    _exit(0);
}

static void test_unprivileged_process_delivers_only_as_itself(void **state)
{
    pid_t pid;
    int ws;

    (void) state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        gid_t g = USER_ID;

        if (geteuid() == 0 &&
            (setgroups(1, &g) != 0 || setresgid(g, g, g) != 0 || setresuid(USER_ID, USER_ID, USER_ID) != 0))
            _exit(3);
        unpriv_child();
    }
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
}

/* slow - a delivery that never finishes */
static void slow(void *ctx, local_status *st)
{
    (void) ctx;
    (void) st;
    for (;;)
        (void) pause();
}

static void test_time_limit_ends_a_hung_delivery(void **state)
{
    pid_t pid;
    int ws;

    (void) state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        local_user self = {"me", "/", "/bin/sh", getuid(), getgid()};
        local_status st;
        sigset_t all;

        /* Even with SIGALRM blocked and ignored before, the limit holds. */
        (void) sigemptyset(&all);
        (void) sigaddset(&all, SIGALRM);
        (void) sigprocmask(SIG_BLOCK, &all, NULL);
        (void) signal(SIGALRM, SIG_IGN);
        local_status_init(&st);
        local_as_user(geteuid() == 0 ? &user : &self, NULL, slow, NULL, 1, &st);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFSIGNALED(ws));
    assert_int_equal(WTERMSIG(ws), SIGALRM);
}

/* on_alarm - a handler the test installs, to see it put back */
static void on_alarm(int sig)
{
    (void) sig;
}

static void test_as_user_puts_back_the_alarm_state(void **state)
{
    local_user self = {"me", "/", "/bin/sh", getuid(), getgid()};
    struct sigaction sa, now;
    local_status st;
    seen s;

    (void) state;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
    memset(&s, 0, sizeof(s));
    local_status_init(&st);
    local_as_user(geteuid() == 0 ? &user : &self, NULL, record, &s, 60, &st);
    assert_int_equal(st.status, DELIVER_OK);
    assert_int_equal(alarm(0), 0); /* no limit left running */
    assert_int_equal(sigaction(SIGALRM, NULL, &now), 0);
    assert_ptr_equal(now.sa_handler, on_alarm);
    (void) signal(SIGALRM, SIG_DFL);
    local_status_free(&st);
}

static void test_as_user_outcome_is_the_delivery_s_alone(void **state)
{
    local_user self = {"me", "/", "/bin/sh", getuid(), getgid()};
    local_status st;
    seen s;

    (void) state;
    memset(&s, 0, sizeof(s));
    local_status_init(&st);
    /* Whatever the caller's status held before, the delivery starts afresh (as a child did). */
    local_status_set(&st, DELIVER_BOUNCE, "5.0.0", "left over");
    local_as_user(geteuid() == 0 ? &user : &self, NULL, record, &s, 60, &st);
    assert_int_equal(s.called, 1);
    assert_int_equal(st.status, DELIVER_OK);
    assert_string_equal(st.dsn, "2.0.0");
    assert_string_equal(vbuf_str(&st.reason), "");
    local_status_free(&st);
}

/* A one-message queue file to deliver from. */
static qfile *queue_file(void)
{
    static const char content[] = "Subject: privs\r\n\r\nbody line\r\n";
    vbuf err, path;
    qfile_writer *w;
    qfile *q;

    vbuf_init(&err, 0);
    vbuf_init(&path, 0);
    w = qfile_create("incoming", &err);
    assert_non_null(w);
    (void) vbuf_printf(&path, "incoming/%s", qfile_writer_id(w));
    assert_int_equal(qfile_put_attr(w, "arrival", "1800000000.000000"), 0);
    assert_int_equal(qfile_put_attr(w, "sender", "alice@example.org"), 0);
    assert_int_equal(qfile_put_rcpt(w, "bob@example.org", NULL, NULL, 0), 0);
    assert_int_equal(qfile_put_content(w, content, sizeof(content) - 1), 0);
    assert_int_equal(qfile_finish(w, &err), 0);
    q = qfile_open(vbuf_str(&path), 0, &err);
    assert_non_null(q);
    vbuf_release(&err);
    vbuf_release(&path);
    return q;
}

/* count_new - files in MD/new */
static int count_new(const char *md)
{
    char p[512];
    DIR *d;
    struct dirent *e;
    int n = 0;

    (void) snprintf(p, sizeof(p), "%s/new", md);
    if ((d = opendir(p)) == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    (void) closedir(d);
    return n;
}

/* is_dir_0700 - PATH is a directory with mode 0700 */
static int is_dir_0700(const char *md, const char *sub)
{
    char p[512];
    struct stat sb;

    (void) snprintf(p, sizeof(p), "%s/%s", md, sub);
    return lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode) && (sb.st_mode & 07777) == 0700;
}

static void test_maildir_is_created_when_missing(void **state)
{
    local_msg m;
    local_status st;
    char md[256];

    (void) state;
    memset(&m, 0, sizeof(m));
    m.q = queue_file();
    /* Two missing levels: the parent and the Maildir itself. */
    (void) snprintf(md, sizeof(md), "%s/box/parent/Maildir", dir);
    local_status_init(&st);
    local_maildir_deliver(&m, md, "alice@example.org", "bob@example.org", 0, &st);
    assert_int_equal(st.status, DELIVER_OK);
    assert_string_equal(vbuf_str(&st.reason), "delivered to maildir");
    assert_true(is_dir_0700(md, "tmp"));
    assert_true(is_dir_0700(md, "new"));
    assert_true(is_dir_0700(md, "cur"));
    assert_int_equal(count_new(md), 1);
    /* The second delivery finds everything in place. */
    local_maildir_deliver(&m, md, "alice@example.org", "bob@example.org", 0, &st);
    assert_int_equal(st.status, DELIVER_OK);
    assert_int_equal(count_new(md), 2);
    local_status_free(&st);
    qfile_close(m.q);
}

static void test_maildir_missing_new_is_made_at_link_time(void **state)
{
    local_msg m;
    local_status st;
    char md[256], p[300];

    (void) state;
    memset(&m, 0, sizeof(m));
    m.q = queue_file();
    (void) snprintf(md, sizeof(md), "%s/box/nonew", dir);
    assert_int_equal(mkdir(md, 0700), 0);
    (void) snprintf(p, sizeof(p), "%s/tmp", md);
    assert_int_equal(mkdir(p, 0700), 0);
    local_status_init(&st);
    local_maildir_deliver(&m, md, "alice@example.org", "bob@example.org", 0, &st);
    assert_int_equal(st.status, DELIVER_OK);
    assert_int_equal(count_new(md), 1);
    assert_true(is_dir_0700(md, "cur"));
    (void) snprintf(p, sizeof(p), "%s/tmp", md);
    assert_int_equal(rmdir(p), 0); /* and nothing left behind in tmp/ */
    local_status_free(&st);
    qfile_close(m.q);
}

static void test_maildir_that_exists_is_left_as_it_is(void **state)
{
    local_msg m;
    local_status st;
    char md[256], p[300];

    (void) state;
    memset(&m, 0, sizeof(m));
    m.q = queue_file();
    /* tmp/ and new/ only: a delivery that needs no directory call makes none (no cur/ appears). */
    (void) snprintf(md, sizeof(md), "%s/box/nocur", dir);
    assert_int_equal(mkdir(md, 0700), 0);
    (void) snprintf(p, sizeof(p), "%s/tmp", md);
    assert_int_equal(mkdir(p, 0700), 0);
    (void) snprintf(p, sizeof(p), "%s/new", md);
    assert_int_equal(mkdir(p, 0700), 0);
    local_status_init(&st);
    local_maildir_deliver(&m, md, "alice@example.org", "bob@example.org", 0, &st);
    assert_int_equal(st.status, DELIVER_OK);
    assert_int_equal(count_new(md), 1);
    (void) snprintf(p, sizeof(p), "%s/cur", md);
    assert_int_equal(access(p, F_OK), -1);
    local_status_free(&st);
    qfile_close(m.q);
}

static void test_maildir_move_never_replaces_a_message(void **state)
{
    char a[256], b[256], c[256];
    struct stat sb;
    int fd;

    (void) state;
    (void) snprintf(a, sizeof(a), "%s/move-a", dir);
    (void) snprintf(b, sizeof(b), "%s/move-b", dir);
    (void) snprintf(c, sizeof(c), "%s/move-c", dir);
    fd = open(a, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0 && write(fd, "aa", 2) == 2 && close(fd) == 0);
    fd = open(b, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0 && write(fd, "b", 1) == 1 && close(fd) == 0);
    /* The target exists: refused, both files as they were. */
    assert_int_equal(local_maildir_move(a, b), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(stat(a, &sb), 0);
    assert_int_equal(sb.st_size, 2);
    assert_int_equal(stat(b, &sb), 0);
    assert_int_equal(sb.st_size, 1);
    /* A free name: moved, the old name gone, one link. */
    assert_int_equal(local_maildir_move(a, c), 0);
    assert_int_equal(access(a, F_OK), -1);
    assert_int_equal(stat(c, &sb), 0);
    assert_int_equal(sb.st_size, 2);
    assert_int_equal(sb.st_nlink, 1);
    /* A missing directory is reported as such (the caller makes the Maildir then). */
    (void) snprintf(a, sizeof(a), "%s/no-such-dir/x", dir);
    assert_int_equal(local_maildir_move(c, a), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(unlink(b), 0);
    assert_int_equal(unlink(c), 0);
}

static void test_virtual_mailbox_owner_comes_from_the_ids_alone(void **state)
{
    /* An id with no password entry at all works: nothing is looked up. */
    local_user *u = local_user_virtual(4000000001u, 4000000002u);

    (void) state;
    assert_string_equal(u->name, "uid 4000000001");
    assert_int_equal(u->uid, 4000000001u);
    assert_int_equal(u->gid, 4000000002u);
    assert_string_equal(u->home, "/");
    local_user_free(u);
}

/* maildir_job_ctx - local_maildir_deliver as a delivery step */
typedef struct md_job {
    local_msg *m;
    const char *dir;
    long long limit;
} md_job;

static void md_step(void *ctx, local_status *st)
{
    md_job *j = ctx;

    local_maildir_deliver(j->m, j->dir, "alice@example.org", "bob@example.org", j->limit, st);
}

static void test_maildir_unwritable_or_over_limit_fails_and_root_returns(void **state)
{
    local_msg m;
    local_status st;
    char md[256], p[300];
    md_job j;

    (void) state;
    if (geteuid() != 0)
        skip();
    memset(&m, 0, sizeof(m));
    m.q = queue_file();
    /* A Maildir that belongs to root: the user cannot write there. */
    (void) snprintf(md, sizeof(md), "%s/rootonly/Maildir", dir);
    local_status_init(&st);
    local_maildir_deliver(&m, md, "alice@example.org", "bob@example.org", 0, &st); /* made by root */
    assert_int_equal(st.status, DELIVER_OK);
    (void) snprintf(p, sizeof(p), "%s/rootonly", dir);
    assert_int_equal(chmod(md, 0755), 0);
    j.m = &m;
    j.dir = md;
    j.limit = 0;
    local_as_user(&user, NULL, md_step, &j, 60, &st);
    assert_int_equal(st.status, DELIVER_DEFER);
    assert_string_equal(st.dsn, "4.2.0");
    assert_non_null(strstr(vbuf_str(&st.reason), "Permission denied"));
    assert_int_equal(count_new(md), 1);
    assert_root_again();
    /* Over the size limit: bounced, nothing left, root again. */
    (void) snprintf(md, sizeof(md), "%s/public/Maildir", dir);
    j.dir = md;
    j.limit = 10;
    local_status_free(&st);
    local_status_init(&st);
    local_as_user(&user, NULL, md_step, &j, 60, &st);
    assert_int_equal(st.status, DELIVER_BOUNCE);
    assert_string_equal(st.dsn, "5.2.2");
    assert_int_equal(count_new(md), 0);
    assert_root_again();
    /* The same Maildir, no limit: delivered, owned by the user. */
    j.limit = 0;
    local_status_free(&st);
    local_status_init(&st);
    local_as_user(&user, NULL, md_step, &j, 60, &st);
    assert_int_equal(st.status, DELIVER_OK);
    assert_int_equal(count_new(md), 1);
    {
        struct stat sb;

        assert_int_equal(stat(md, &sb), 0);
        assert_int_equal(sb.st_uid, USER_ID);
        assert_int_equal(sb.st_mode & 07777, 0700);
    }
    assert_root_again();
    local_status_free(&st);
    qfile_close(m.q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_eugid_takes_user_ids_and_restore_brings_root_back),
        cmocka_unit_test(test_as_user_delivers_as_the_user_and_returns_to_root),
        cmocka_unit_test(test_as_user_failed_delivery_still_returns_to_root),
        cmocka_unit_test(test_as_user_pre_root_runs_as_root_and_its_failure_skips_delivery),
        cmocka_unit_test(test_unprivileged_process_delivers_only_as_itself),
        cmocka_unit_test(test_time_limit_ends_a_hung_delivery),
        cmocka_unit_test(test_as_user_puts_back_the_alarm_state),
        cmocka_unit_test(test_as_user_outcome_is_the_delivery_s_alone),
        cmocka_unit_test(test_maildir_is_created_when_missing),
        cmocka_unit_test(test_maildir_missing_new_is_made_at_link_time),
        cmocka_unit_test(test_maildir_that_exists_is_left_as_it_is),
        cmocka_unit_test(test_maildir_move_never_replaces_a_message),
        cmocka_unit_test(test_virtual_mailbox_owner_comes_from_the_ids_alone),
        cmocka_unit_test(test_maildir_unwritable_or_over_limit_fails_and_root_returns),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
