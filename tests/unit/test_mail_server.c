/* Unit tests for the client side of mail_server: mail_server_connect and mail_trigger. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "attr.h"
#include "mail_server.h"
#include "msg.h"
#include "stream.h"

static char dir[64];
static char saved_cwd[4096];

/* setup - work in a fresh directory, like a daemon in queue_directory */
static int setup(void **state)
{
    (void) state;
    snprintf(dir, sizeof(dir), "/tmp/test_mail_server_XXXXXX");
    if (mkdtemp(dir) == NULL || getcwd(saved_cwd, sizeof(saved_cwd)) == NULL || chdir(dir) < 0)
        return -1;
    return mkdir("public", 0700);
}

static int teardown(void **state)
{
    (void) state;
    unlink("public/svc");
    rmdir("public");
    if (chdir(saved_cwd) < 0)
        return -1;
    return rmdir(dir);
}

/* listener - a unix socket at path */
static int listener(const char *path)
{
    struct sockaddr_un sun;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *) &sun, sizeof(sun)), 0);
    assert_int_equal(listen(fd, 5), 0);
    return fd;
}

static void test_mail_trigger_sends_one_request_frame(void **state)
{
    int lfd = listener("public/svc");
    int cfd;
    stream *s;
    attr_list *req = attr_new();
    const char *request = NULL;
    attr_spec specs[] = {ATTR_SPEC_STR("request", ATTR_REQUIRED, &request), ATTR_SPEC_END};

    (void) state;
    assert_int_equal(mail_trigger("public/svc", "wakeup"), 0);
    cfd = accept(lfd, NULL, NULL);
    assert_true(cfd >= 0);
    s = stream_open(cfd);
    stream_set_timeout(s, 5);
    assert_int_equal(attr_read(s, req, 1024), 0);
    assert_int_equal(attr_scan(req, specs), 0);
    assert_string_equal(request, "wakeup");
    attr_clear(req);
    assert_int_equal(attr_read(s, req, 1024), STREAM_EOF); /* exactly one frame */
    attr_free(req);
    stream_close(s);
    close(lfd);
}

/* The fd comes non-blocking and close-on-exec: callers wrap it in a stream, which wants it so. */
static void test_mail_server_connect_gives_a_non_blocking_connected_socket(void **state)
{
    int lfd = listener("public/svc");
    int fd = mail_server_connect("public/svc", 5);
    int flags;

    (void) state;
    assert_true(fd >= 0);
    flags = fcntl(fd, F_GETFL);
    assert_int_not_equal(flags & O_NONBLOCK, 0);
    assert_true((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    close(fd);
    close(lfd);
}

/* A trigger is a hint: to a service whose listen queue is full it fails at once, without retrying. */
static void test_mail_trigger_to_a_full_listen_queue_fails_at_once(void **state)
{
    struct sockaddr_un sun;
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    int filler[4], nfill = 0;
    time_t start;

    (void) state;
    assert_true(lfd >= 0);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "public/svc");
    assert_int_equal(bind(lfd, (struct sockaddr *) &sun, sizeof(sun)), 0);
    assert_int_equal(listen(lfd, 0), 0);
    /* Fill the queue: non-blocking connects until one says EAGAIN. */
    for (; nfill < 4; nfill++) {
        filler[nfill] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        assert_true(filler[nfill] >= 0);
        if (connect(filler[nfill], (struct sockaddr *) &sun, sizeof(sun)) < 0) {
            assert_int_equal(errno, EAGAIN);
            close(filler[nfill]);
            break;
        }
    }
    assert_true(nfill < 4);
    start = time(NULL);
    errno = 0;
    assert_int_equal(mail_trigger("public/svc", "wakeup"), -1);
    assert_int_equal(errno, EAGAIN);
    assert_true(time(NULL) - start <= 1); /* no 20 ms retries for seconds */
    for (int i = 0; i < nfill; i++)
        close(filler[i]);
    close(lfd);
}

static void test_mail_server_connect_failures(void **state)
{
    char longpath[300];

    (void) state;
    errno = 0;
    assert_int_equal(mail_server_connect("public/nothing", 1), -1);
    assert_int_equal(errno, ENOENT);
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = 0;
    assert_int_equal(mail_server_connect(longpath, 1), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    assert_int_equal(mail_trigger("public/nothing", "wakeup"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mail_trigger_sends_one_request_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_server_connect_gives_a_non_blocking_connected_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_trigger_to_a_full_listen_queue_fails_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_server_connect_failures, setup, teardown),
    };

    msg_stderr(0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
