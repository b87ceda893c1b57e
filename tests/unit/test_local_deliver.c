/*
 * The local delivery agent as a whole: the real build/libexec/local run
 * stand-alone (-S) on a socketpair, fed real queue files (qfile writer) and
 * real delivery requests (deliver.h), delivering into a temporary tree.
 * Covers Maildir (virtual), mbox (the spool), .forward with a command, an
 * alias list with a file and a command, sysexits 75 then 0, unknown users,
 * a Delivered-To loop, and a refused group-writable .forward.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "attr.h"
#include "conf.h"
#include "deliver.h"
#include "maps.h"
#include "mymalloc.h"
#include "qfile.h"
#include "stream.h"
#include "vbuf.h"

static char dir[] = "/tmp/kite-local-deliver-XXXXXX";
static char local_path[4096];
static char user[256];

static void path(char *buf, size_t len, const char *rel)
{
    (void) snprintf(buf, len, "%s/%s", dir, rel);
}

static void put(const char *rel, const char *text, mode_t mode)
{
    char p[4200];
    int fd;

    path(p, sizeof(p), rel);
    (void) unlink(p);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static char *slurp(const char *rel)
{
    char p[4200];
    vbuf b;
    char buf[4096];
    ssize_t n;
    int fd;

    path(p, sizeof(p), rel);
    fd = open(p, O_RDONLY);
    if (fd < 0)
        return NULL;
    vbuf_init(&b, 0);
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        (void) vbuf_append(&b, buf, (size_t) n);
    close(fd);
    {
        char *copy = vbuf_steal(&b);

        vbuf_release(&b);
        return copy;
    }
}

/* maildir_one - the content of the single message in REL/new */
static char *maildir_one(const char *rel)
{
    char p[4200], name[4400];
    DIR *d;
    struct dirent *e;
    char *found = NULL;
    int count = 0;

    (void) snprintf(p, sizeof(p), "%s/%s/new", dir, rel);
    d = opendir(p);
    if (d == NULL)
        return NULL;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        count++;
        (void) snprintf(name, sizeof(name), "%s/new/%s", rel, e->d_name);
        found = slurp(name);
    }
    closedir(d);
    assert_int_equal(count, 1);
    return found;
}

static int mk(const char *rel)
{
    char p[4200];

    path(p, sizeof(p), rel);
    return mkdir(p, 0755);
}

static int setup(void **state)
{
    char text[8192], p[4200];
    struct passwd *pw = getpwuid(geteuid());
    vbuf err;
    int fd;

    (void) state;
    if (pw == NULL || mkdtemp(dir) == NULL || chmod(dir, 0755) != 0)
        return -1;
    (void) snprintf(user, sizeof(user), "%s", pw->pw_name);
    if (mk("etc") || mk("queue") || mk("queue/incoming") || mk("mail") || mk("spool") || mk("fwd") || mk("out"))
        return -1;
    (void) snprintf(text, sizeof(text),
                    "queue_directory = %s/queue\n"
                    "maillog_file = %s/maillog\n"
                    "myhostname = kite.test\n"
                    "mydestination = kite.test, localhost\n"
                    "virtual_mailbox_domains = sandbox.test\n"
                    "virtual_mailbox_base = %s/mail\n"
                    "virtual_mailbox_maps = inline:{bob@sandbox.test=bob/, carol@sandbox.test=carol.mbox, "
                    "dan@sandbox.test=dan/, full@sandbox.test=full.mbox}\n"
                    "virtual_mailbox_limit = 100000\n"
                    "virtual_uid_maps = inline:{dan@sandbox.test=65534}, static:%ld\n"
                    "virtual_gid_maps = inline:{dan@sandbox.test=65534}, static:%ld\n"
                    "virtual_minimum_uid = 0\n"
                    "mail_spool_directory = %s/spool\n"
                    "forward_path = %s/fwd/$user\n"
                    "alias_maps = hash:%s/etc/aliases\n"
                    "default_privs = nobody\n"
                    "command_time_limit = 20s\n",
                    dir, dir, dir, (long) geteuid(), (long) getegid(), dir, dir, dir);
    path(p, sizeof(p), "etc/main.cf");
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t) strlen(text) || close(fd) != 0)
        return -1;
    /* Alias commands run as default_privs when root runs the tests. */
    path(p, sizeof(p), "out");
    if (chmod(p, 01777) != 0)
        return -1;
    path(p, sizeof(p), "mail");
    if (chmod(p, 01777) != 0)
        return -1;
    (void) snprintf(text, sizeof(text),
                    "# the team\n"
                    "team: bob@sandbox.test, \"|/bin/cat > %s/out/team.piped\", %s/out/team.archive\n"
                    "owner-team: %s\n"
                    "flaky: \"|%s/etc/flaky.sh\"\n"
                    "nouser: \"|exit 67\"\n"
                    "linky: %s/out/link\n",
                    dir, dir, user, dir, dir);
    put("etc/aliases", text, 0644);
    (void) snprintf(text, sizeof(text),
                    "#!/bin/sh\n"
                    "if [ ! -e %s/out/flaky.seen ]; then touch %s/out/flaky.seen; echo not now; exit 75; fi\n"
                    "cat > %s/out/flaky.out\n",
                    dir, dir, dir);
    put("etc/flaky.sh", text, 0755);
    conf_reset();
    if (conf_load(p[0] ? dirname(p) : p) != 0)
        return -1;
    vbuf_init(&err, 0);
    path(p, sizeof(p), "etc/aliases");
    (void) snprintf(text, sizeof(text), "hash:%s", p);
    if (map_build(text, MAP_BUILD_ALIASES, &err) != 0) {
        fprintf(stderr, "map_build: %s\n", vbuf_str(&err));
        return -1;
    }
    vbuf_release(&err);
    path(p, sizeof(p), "queue");
    return chdir(p);
}

static int teardown(void **state)
{
    pid_t pid;

    (void) state;
    if (chdir("/") != 0)
        return -1;
    if (getenv("KITE_KEEP_TEST_DIR"))
        return 0;
    if ((pid = fork()) == 0) {
        char *argv[] = {"rm", "-rf", dir, NULL};

        execv("/bin/rm", argv);
        _exit(1);
    }
    return waitpid(pid, NULL, 0) == pid ? 0 : -1;
}

static const char content[] = "From: Alice <alice@example.org>\r\n"
                              "Subject: test\r\n"
                              "\r\n"
                              "From the body\r\n"
                              "8-bit \xc3\xa9\r\n";

/* queue_message - a real queue file in incoming/; returns its ID */
static char *queue_message(const char *sender, const char *extra_header, const char *const *rcpts)
{
    vbuf err;
    qfile_writer *w;
    char *id;

    vbuf_init(&err, 0);
    w = qfile_create("incoming", &err);
    assert_non_null(w);
    id = xstrdup(qfile_writer_id(w));
    assert_int_equal(qfile_put_attr(w, "arrival", "1800000000.000000"), 0);
    assert_int_equal(qfile_put_attr(w, "sender", sender), 0);
    assert_int_equal(qfile_put_attr(w, "body", "8bitmime"), 0);
    for (size_t i = 0; rcpts[i]; i++)
        assert_int_equal(qfile_put_rcpt(w, rcpts[i], NULL, NULL, 0), 0);
    if (extra_header)
        assert_int_equal(qfile_put_content(w, extra_header, strlen(extra_header)), 0);
    assert_int_equal(qfile_put_content(w, content, sizeof(content) - 1), 0);
    assert_int_equal(qfile_finish(w, &err), 0);
    vbuf_release(&err);
    return id;
}

typedef struct outcome {
    int status;
    char dsn[16];
    char reason[1024];
} outcome;

/* run_local - one request to the real agent; fills out[] per recipient */
static void run_local(const char *transport, const char *id, const char *sender, const char *const *rcpts, outcome *out)
{
    int sv[2], ws;
    pid_t pid;
    char etc[4200];
    stream *s;
    deliver_request req;
    deliver_rcpt r[8];
    size_t n = 0;

    path(etc, sizeof(etc), "etc");
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = {"local", "-S", "-c", etc, "-n", (char *) transport, "-t", "unix", NULL};

        (void) dup2(sv[1], 0);
        (void) dup2(sv[1], 1);
        close(sv[0]);
        close(sv[1]);
        execv(local_path, argv);
        _exit(127);
    }
    close(sv[1]);
    s = stream_open(sv[0]);
    stream_set_timeout(s, 60);
    assert_int_equal(attr_expect_greeting(s, "delivery"), 0);
    memset(&req, 0, sizeof(req));
    memset(r, 0, sizeof(r));
    for (n = 0; rcpts[n]; n++) {
        r[n].index = (long) n;
        r[n].address = (char *) rcpts[n];
    }
    req.queue_name = "incoming";
    req.queue_id = (char *) id;
    req.transport = (char *) transport;
    req.nexthop = "kite.test";
    req.sender = (char *) sender;
    req.size = (long long) sizeof(content) - 1;
    req.arrival = 1800000000;
    req.active = 1800000001;
    req.rcpts = r;
    req.nrcpt = n;
    assert_int_equal(deliver_request_write(s, &req), 0);
    for (size_t i = 0;; i++) {
        deliver_result res;
        int rc;

        memset(&res, 0, sizeof(res));
        rc = deliver_result_read(s, &res);
        assert_true(rc >= 0);
        if (rc == 0) {
            assert_int_equal(i, n);
            break;
        }
        assert_true(i < n);
        assert_int_equal(res.index, (long) i);
        out[i].status = res.status;
        (void) snprintf(out[i].dsn, sizeof(out[i].dsn), "%s", res.dsn);
        (void) snprintf(out[i].reason, sizeof(out[i].reason), "%s", res.reason ? res.reason : "");
        deliver_result_free(&res);
    }
    stream_close(s);
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
}

static void test_virtual_maildir_and_mbox(void **state)
{
    const char *rcpts[] = {"bob@sandbox.test", "carol@sandbox.test", "nobody@sandbox.test", NULL};
    char *id = queue_message("alice@example.org", NULL, rcpts);
    outcome o[3];
    char *got;

    (void) state;
    run_local("virtual", id, "alice@example.org", rcpts, o);
    assert_int_equal(o[0].status, DELIVER_OK);
    assert_string_equal(o[0].reason, "delivered to maildir");
    assert_int_equal(o[1].status, DELIVER_OK);
    assert_string_equal(o[1].reason, "delivered to mailbox");
    assert_int_equal(o[2].status, DELIVER_BOUNCE);
    assert_string_equal(o[2].dsn, "5.1.1");
    assert_string_equal(o[2].reason, "unknown user: \"nobody@sandbox.test\"");
    got = maildir_one("mail/bob");
    assert_non_null(got);
    assert_string_equal(got, "Return-Path: <alice@example.org>\nDelivered-To: bob@sandbox.test\n"
                             "From: Alice <alice@example.org>\nSubject: test\n\nFrom the body\n8-bit \xc3\xa9\n");
    xfree(got);
    got = slurp("mail/carol.mbox");
    assert_non_null(got);
    assert_non_null(strstr(got,
                           "\nReturn-Path: <alice@example.org>\nDelivered-To: carol@sandbox.test\n"
                           "From: Alice <alice@example.org>\nSubject: test\n\n>From the body\n8-bit \xc3\xa9\n\n"));
    assert_memory_equal(got, "From alice@example.org  ", 24);
    xfree(got);
    got = slurp("maillog");
    assert_non_null(strstr(got, ": to=<bob@sandbox.test>, relay=virtual, delay="));
    assert_non_null(strstr(got, ", dsn=2.0.0, status=sent (delivered to maildir)"));
    assert_non_null(strstr(got, "to=<nobody@sandbox.test>, relay=virtual, delay="));
    xfree(got);
    xfree(id);
}

static void test_delivery_runs_as_the_mailbox_owner(void **state)
{
    const char *rcpts[] = {"dan@sandbox.test", NULL};
    char *id, p[4200];
    outcome o[1];
    struct dirent *e;
    struct stat st;
    DIR *d;

    (void) state;
    if (geteuid() != 0)
        skip();
    id = queue_message("alice@example.org", NULL, rcpts);
    run_local("virtual", id, "alice@example.org", rcpts, o);
    assert_int_equal(o[0].status, DELIVER_OK);
    path(p, sizeof(p), "mail/dan/new");
    d = opendir(p);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            break;
    assert_non_null(e);
    assert_int_equal(fstatat(dirfd(d), e->d_name, &st, 0), 0);
    /* Written by a child that had become uid/gid 65534, not by root. */
    assert_int_equal(st.st_uid, 65534);
    assert_int_equal(st.st_gid, 65534);
    closedir(d);
    path(p, sizeof(p), "mail/dan");
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_uid, 65534);
    xfree(id);
}

static void test_mailbox_size_limit_bounces_and_leaves_mailbox_intact(void **state)
{
    const char *rcpts[] = {"full@sandbox.test", NULL};
    char *id, *filler, p[4200];
    outcome o[1];
    struct stat st;

    (void) state;
    filler = xmalloc(99990 + 1);
    memset(filler, 'x', 99990);
    filler[99989] = '\n';
    filler[99990] = 0;
    put("mail/full.mbox", filler, 0600);
    xfree(filler);
    id = queue_message("alice@example.org", NULL, rcpts);
    run_local("virtual", id, "alice@example.org", rcpts, o);
    assert_int_equal(o[0].status, DELIVER_BOUNCE);
    assert_string_equal(o[0].dsn, "5.2.2");
    assert_non_null(strstr(o[0].reason, "mailbox size limit exceeded"));
    path(p, sizeof(p), "mail/full.mbox");
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, 99990);
    assert_int_equal(truncate(p, 0), 0);
    run_local("virtual", id, "alice@example.org", rcpts, o);
    assert_int_equal(o[0].status, DELIVER_OK);
    xfree(id);
}

static void test_spool_mailbox_of_another_user(void **state)
{
    const char *rcpts[] = {"nobody@kite.test", NULL};
    char *id, p[4200], *got;
    outcome o[1];
    struct stat st;

    (void) state;
    if (geteuid() != 0 || getpwnam("nobody") == NULL)
        skip();
    id = queue_message("alice@example.org", NULL, rcpts);
    run_local("local", id, "alice@example.org", rcpts, o);
    assert_int_equal(o[0].status, DELIVER_OK);
    assert_string_equal(o[0].reason, "delivered to mailbox");
    /* Created by root in root's spool directory, handed to the user, written as the user. */
    path(p, sizeof(p), "spool/nobody");
    assert_int_equal(lstat(p, &st), 0);
    assert_int_equal(st.st_uid, getpwnam("nobody")->pw_uid);
    assert_int_equal(st.st_mode & 0777, 0600);
    path(p, sizeof(p), "spool/nobody.lock");
    assert_int_equal(lstat(p, &st), -1);
    got = slurp("spool/nobody");
    assert_non_null(strstr(got, "\nDelivered-To: nobody@kite.test\n"));
    xfree(got);
    xfree(id);
}

static void test_domain_routed_here_is_delivered_by_local_part(void **state)
{
    char rcpt[300];
    const char *rcpts[] = {rcpt, "nosuchuser@elsewhere.example", NULL};
    outcome o[2];
    char *id;

    (void) state;
    (void) snprintf(rcpt, sizeof(rcpt), "%s@elsewhere.example", user);
    id = queue_message("alice@example.org", NULL, rcpts);
    run_local("local", id, "alice@example.org", rcpts, o);
    assert_int_equal(o[0].status, DELIVER_OK);
    assert_string_equal(o[0].reason, "delivered to mailbox");
    assert_int_equal(o[1].status, DELIVER_BOUNCE);
    assert_string_equal(o[1].reason, "unknown user: \"nosuchuser\"");
    xfree(id);
}

static void test_spool_mbox_and_loop(void **state)
{
    char rcpt[300], spool[300];
    const char *rcpts[] = {rcpt, NULL};
    char *id, *got;
    outcome o[1];

    (void) state;
    (void) snprintf(rcpt, sizeof(rcpt), "%s@kite.test", user);
    id = queue_message("", NULL, rcpts);
    run_local("local", id, "", rcpts, o);
    assert_int_equal(o[0].status, DELIVER_OK);
    assert_string_equal(o[0].reason, "delivered to mailbox");
    (void) snprintf(spool, sizeof(spool), "spool/%s", user);
    got = slurp(spool);
    assert_non_null(got);
    assert_memory_equal(got, "From MAILER-DAEMON  ", 20);
    assert_non_null(strstr(got, "\nReturn-Path: <>\n"));
    xfree(got);
    xfree(id);
    /* The same message again, now marked as already delivered here: a loop. */
    {
        char hdr[400];

        (void) snprintf(hdr, sizeof(hdr), "Delivered-To: %s\r\n", rcpt);
        id = queue_message("a@b.example", hdr, rcpts);
        run_local("local", id, "a@b.example", rcpts, o);
        assert_int_equal(o[0].status, DELIVER_BOUNCE);
        assert_string_equal(o[0].dsn, "5.4.6");
        xfree(id);
    }
}

static void test_alias_list_with_file_and_command(void **state)
{
    const char *rcpts[] = {"team@kite.test", "nouser@kite.test", NULL};
    char *id = queue_message("alice@example.org", NULL, rcpts);
    outcome o[2];
    char *got;

    (void) state;
    run_local("local", id, "alice@example.org", rcpts, o);
    /* The list member in the virtual domain goes on through the queue: no cleanup here. */
    assert_int_equal(o[0].status, DELIVER_DEFER);
    assert_non_null(strstr(o[0].reason, "cannot forward"));
    got = slurp("out/team.piped");
    assert_non_null(got);
    assert_string_equal(got, "Return-Path: <owner-team@kite.test>\nDelivered-To: team@kite.test\n"
                             "From: Alice <alice@example.org>\nSubject: test\n\nFrom the body\n8-bit \xc3\xa9\n");
    xfree(got);
    got = slurp("out/team.archive");
    assert_non_null(got);
    assert_memory_equal(got, "From owner-team@kite.test  ", 27);
    assert_non_null(strstr(got, "\n>From the body\n"));
    xfree(got);
    assert_int_equal(o[1].status, DELIVER_BOUNCE);
    assert_string_equal(o[1].dsn, "5.1.1");
    assert_string_equal(o[1].reason, "Command died with status 67: \"exit 67\"");
    got = slurp("maillog");
    assert_non_null(strstr(got, "to=<team@kite.test>, relay=local, delay="));
    assert_non_null(strstr(got, "status=sent (delivered to command: /bin/cat > "));
    assert_non_null(strstr(got, "/out/team.archive)"));
    xfree(got);
    xfree(id);
}

static void test_file_target_symlink_is_refused(void **state)
{
    const char *rcpts[] = {"linky@kite.test", NULL};
    char *id, link_path[4200], *got;
    outcome o[1];

    (void) state;
    put("out/victim", "precious\n", 0666);
    path(link_path, sizeof(link_path), "out/link");
    assert_int_equal(symlink("victim", link_path), 0);
    id = queue_message("alice@example.org", NULL, rcpts);
    run_local("local", id, "alice@example.org", rcpts, o);
    assert_int_not_equal(o[0].status, DELIVER_OK);
    got = slurp("out/victim");
    assert_string_equal(got, "precious\n");
    xfree(got);
    xfree(id);
}

static void test_command_defers_on_75_then_delivers(void **state)
{
    const char *rcpts[] = {"flaky@kite.test", NULL};
    char *id = queue_message("alice@example.org", NULL, rcpts);
    outcome o[1];
    char *got;

    (void) state;
    run_local("local", id, "alice@example.org", rcpts, o);
    assert_int_equal(o[0].status, DELIVER_DEFER);
    assert_string_equal(o[0].dsn, "4.3.0");
    assert_non_null(strstr(o[0].reason, "Command died with status 75: "));
    assert_non_null(strstr(o[0].reason, "Command output: not now"));
    run_local("local", id, "alice@example.org", rcpts, o);
    assert_int_equal(o[0].status, DELIVER_OK);
    got = slurp("out/flaky.out");
    assert_non_null(got);
    assert_non_null(strstr(got, "\n\nFrom the body\n"));
    xfree(got);
    xfree(id);
}

static void test_forward_file_checks(void **state)
{
    char rcpt[300], fwd[300], text[600];
    const char *rcpts[] = {rcpt, NULL};
    outcome o[1];
    char *id, *got;

    (void) state;
    (void) snprintf(rcpt, sizeof(rcpt), "%s@kite.test", user);
    (void) snprintf(fwd, sizeof(fwd), "fwd/%s", user);
    (void) snprintf(text, sizeof(text), "\"|/bin/cat > %s/out/fwd.out\"\n", dir);
    put(fwd, text, 0644);
    id = queue_message("alice@example.org", NULL, rcpts);
    run_local("local", id, "alice@example.org", rcpts, o);
    assert_int_equal(o[0].status, DELIVER_OK);
    assert_non_null(strstr(o[0].reason, "delivered to command: /bin/cat"));
    got = slurp("out/fwd.out");
    assert_non_null(got);
    xfree(got);
    /* Group-writable: refused (logged), the mailbox gets the mail instead. */
    put(fwd, text, 0664);
    run_local("local", id, "alice@example.org", rcpts, o);
    assert_int_equal(o[0].status, DELIVER_OK);
    assert_string_equal(o[0].reason, "delivered to mailbox");
    got = slurp("maillog");
    assert_non_null(strstr(got, "is group or world writable"));
    xfree(got);
    xfree(id);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_virtual_maildir_and_mbox),
        cmocka_unit_test(test_delivery_runs_as_the_mailbox_owner),
        cmocka_unit_test(test_mailbox_size_limit_bounces_and_leaves_mailbox_intact),
        cmocka_unit_test(test_spool_mbox_and_loop),
        cmocka_unit_test(test_domain_routed_here_is_delivered_by_local_part),
        cmocka_unit_test(test_spool_mailbox_of_another_user),
        cmocka_unit_test(test_alias_list_with_file_and_command),
        cmocka_unit_test(test_file_target_symlink_is_refused),
        cmocka_unit_test(test_command_defers_on_75_then_delivers),
        cmocka_unit_test(test_forward_file_checks),
    };
    char self[4096];

    (void) argc;
    /* build/tests/test_local_deliver -> build/libexec/local */
    if (realpath(argv[0], self) == NULL)
        return 1;
    (void) snprintf(local_path, sizeof(local_path), "%s/../libexec/local", dirname(self));
    if (access(local_path, X_OK) != 0) {
        fprintf(stderr, "%s: not built\n", local_path);
        return 1;
    }
    (void) setenv("TZ", "UTC", 1);
    return cmocka_run_group_tests(tests, setup, teardown);
}
