/*
 * The bounce service as a whole: the real build/libexec/bounce run
 * stand-alone (-S) on a socketpair. Hostile requests (unknown kind, bad
 * queue ID or queue name, unexpected attributes) get no reply; a request
 * with nothing owed succeeds; a damaged status log, or no cleanup service
 * to take the notice, means "try again later" and the log is kept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <libgen.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "attr.h"
#include "bounce_log.h"
#include "conf.h"
#include "mymalloc.h"
#include "qfile.h"
#include "stream.h"
#include "vbuf.h"

static char dir[] = "/tmp/kite-bounce-service-XXXXXX";
static char bounce_path[4096];

/* own - when root runs the tests, the service runs as mail_owner nobody: give it the tree */
static void own(const char *path)
{
    if (geteuid() == 0 && chown(path, 65534, 65534) != 0)
        fail_msg("chown %s", path);
}

static int setup(void **state)
{
    char p[4200], text[1024];
    int fd;

    (void) state;
    if (mkdtemp(dir) == NULL)
        return -1;
    (void) snprintf(p, sizeof(p), "%s/queue", dir);
    if (mkdir(p, 0700) || chdir(p) || mkdir("incoming", 0700) || mkdir("active", 0700) || mkdir("bounce", 0700) ||
        mkdir("defer", 0700) || mkdir("trace", 0700) || mkdir("public", 0700))
        return -1;
    (void) snprintf(text, sizeof(text),
                    "queue_directory = %s/queue\nmaillog_file = %s/maillog\n"
                    "myhostname = kite.test\nmail_owner = nobody\n",
                    dir, dir);
    if (geteuid() == 0) {
        static const char *const sub[] = {".", "incoming", "active", "bounce", "defer", "trace", "public"};

        for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++)
            if (chown(sub[i], 65534, 65534) != 0)
                return -1;
        if (chmod(dir, 0755) != 0)
            return -1;
    }
    (void) snprintf(p, sizeof(p), "%s/main.cf", dir);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t) strlen(text) || close(fd) != 0)
        return -1;
    conf_reset();
    return conf_load(dir) == 0 ? 0 : -1;
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

/* ask - one request to the real service; the reply status, or -1 when none came */
static long long ask(attr_list *req)
{
    int sv[2], ws;
    pid_t pid;
    stream *s;
    attr_list *reply = attr_new();
    long long status = -1;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = {"bounce", "-S", "-c", dir, "-n", "bounce", "-t", "unix", NULL};

        (void) dup2(sv[1], 0);
        (void) dup2(sv[1], 1);
        close(sv[0]);
        close(sv[1]);
        execv(bounce_path, argv);
        _exit(127);
    }
    close(sv[1]);
    s = stream_open(sv[0]);
    stream_set_timeout(s, 30);
    assert_int_equal(attr_expect_greeting(s, "bounce"), 0);
    assert_int_equal(attr_write(s, req), 0);
    if (attr_read(s, reply, 4096) == 0)
        assert_int_equal(attr_get_int(reply, "status", &status), 0);
    attr_free(reply);
    attr_free(req);
    stream_close(s);
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    return status;
}

static attr_list *request(const char *kind, const char *id, const char *queue)
{
    attr_list *l = attr_new();

    attr_put_str(l, "request", kind);
    attr_put_str(l, "queue_id", id);
    attr_put_str(l, "queue_name", queue);
    return l;
}

static void test_hostile_requests_get_no_reply(void **state)
{
    attr_list *l;

    (void) state;
    assert_int_equal(ask(request("explode", "00000ABCDEFGHIJKLM", "active")), -1);
    assert_int_equal(ask(request("bounce", "../../etc/passwd", "active")), -1);
    assert_int_equal(ask(request("bounce", "00000ABCDEFGHIJKLM", "../etc")), -1);
    assert_int_equal(ask(request("bounce", "00000ABCDEFGHIJKLM", "maildrop")), -1);
    l = request("bounce", "00000ABCDEFGHIJKLM", "active");
    attr_put_str(l, "extra", "x");
    assert_int_equal(ask(l), -1);
    l = attr_new();
    attr_put_str(l, "request", "bounce");
    assert_int_equal(ask(l), -1);
}

static void test_nothing_owed_is_done(void **state)
{
    (void) state;
    assert_int_equal(ask(request("bounce", "00000ABCDEFGHIJKLM", "active")), 0);
    assert_int_equal(ask(request("delay", "00000ABCDEFGHIJKLM", "deferred")), 0);
    assert_int_equal(ask(request("success", "00000ABCDEFGHIJKLM", "active")), 0);
}

/* queue_message - a real queue file in active/ */
static char *queue_message(void)
{
    static const char content[] = "Subject: x\r\n\r\nbody\r\n";
    vbuf err;
    qfile_writer *w;
    char *id, from[200], to[200];

    vbuf_init(&err, 0);
    w = qfile_create("incoming", &err);
    assert_non_null(w);
    id = xstrdup(qfile_writer_id(w));
    assert_int_equal(qfile_put_attr(w, "arrival", "1800000000.000000"), 0);
    assert_int_equal(qfile_put_attr(w, "sender", "alice@example.org"), 0);
    assert_int_equal(qfile_put_rcpt(w, "bob@kite.test", NULL, NULL, 0), 0);
    assert_int_equal(qfile_put_content(w, content, sizeof(content) - 1), 0);
    assert_int_equal(qfile_finish(w, &err), 0);
    (void) snprintf(from, sizeof(from), "incoming/%s", id);
    (void) snprintf(to, sizeof(to), "active/%s", id);
    assert_int_equal(rename(from, to), 0);
    own(to);
    vbuf_release(&err);
    return id;
}

static void test_undeliverable_notice_is_retried_later(void **state)
{
    deliver_rcpt r = {0, "bob@kite.test", NULL, NULL, 0};
    deliver_result res = {0, DELIVER_BOUNCE, "5.1.1", "failed", "unknown user: \"bob\"", "local", NULL, NULL, 0, 0};
    char *id = queue_message();
    char path[200];
    struct stat st;
    int fd;

    (void) state;
    assert_int_equal(bounce_log_append("bounce", id, &r, &res), 0);
    (void) snprintf(path, sizeof(path), "bounce/%s", id);
    own(path);
    /* No cleanup service listening: the notice cannot be queued; the log stays. */
    assert_int_equal(ask(request("bounce", id, "active")), 1);
    (void) snprintf(path, sizeof(path), "bounce/%s", id);
    assert_int_equal(stat(path, &st), 0);
    /* A damaged log is never half-trusted: try later, keep it for inspection. */
    fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\0\0\0\7garbage", 11), 11);
    close(fd);
    assert_int_equal(ask(request("bounce", id, "active")), 1);
    assert_int_equal(stat(path, &st), 0);
    xfree(id);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_requests_get_no_reply),
        cmocka_unit_test(test_nothing_owed_is_done),
        cmocka_unit_test(test_undeliverable_notice_is_retried_later),
    };
    char self[4096];

    (void) argc;
    if (realpath(argv[0], self) == NULL)
        return 1;
    (void) snprintf(bounce_path, sizeof(bounce_path), "%s/../libexec/bounce", dirname(self));
    if (access(bounce_path, X_OK) != 0) {
        fprintf(stderr, "%s: not built\n", bounce_path);
        return 1;
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
