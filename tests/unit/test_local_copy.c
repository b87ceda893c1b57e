/*
 * Unit tests for the local agent's building blocks: the message copy
 * (mbox "From " line, >From quoting, CRLF -> LF, prepended headers) across
 * every chunk split, Delivered-To scanning, Maildir names, command exit
 * status mapping, and the ownership/permission checks on .forward and
 * :include: files (hostile files: symlinks, foreign owners, writable,
 * oversized, NUL bytes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../local/local.h"
#include "deliver.h"
#include "mymalloc.h"
#include "vbuf.h"

typedef struct src {
    const char *data;
    size_t len, pos, step;
} src;

static ssize_t src_next(void *ctx, const char **data)
{
    src *s = ctx;
    size_t n = s->len - s->pos;

    if (n > s->step)
        n = s->step;
    *data = s->data + s->pos;
    s->pos += n;
    return (ssize_t) n;
}

static int to_vbuf(void *ctx, const void *data, size_t len)
{
    return vbuf_append((vbuf *) ctx, data, len);
}

static const char msg_in[] = "Subject: hi\r\n"
                             "Delivered-To: Old@Example.org\r\n"
                             "\r\n"
                             "From the top\r\n"
                             ">From quoted already\r\n"
                             "bare\rcr stays\r\n"
                             "8bit \xc3\xa9\r\n"
                             "From ";

static void test_copy_mbox_format_for_every_chunk_size(void **state)
{
    static const char want[] = "From alice@example.org  Fri Jan 15 08:00:00 2027\n"
                               "Return-Path: <alice@example.org>\n"
                               "Delivered-To: bob@kite.test\n"
                               "Subject: hi\n"
                               "Delivered-To: Old@Example.org\n"
                               "\n"
                               ">From the top\n"
                               ">From quoted already\n"
                               "bare\rcr stays\n"
                               "8bit \xc3\xa9\n"
                               ">From \n"
                               "\n";
    vbuf out;

    (void) state;
    vbuf_init(&out, 0);
    for (size_t step = 1; step <= sizeof(msg_in); step++) {
        src s = {msg_in, sizeof(msg_in) - 1, 0, step};

        vbuf_reset(&out);
        assert_int_equal(
            local_copy(src_next, &s, "alice@example.org", "bob@kite.test", 1800000000,
                       LOCAL_COPY_LF | LOCAL_COPY_FROM_LINE | LOCAL_COPY_RETURN_PATH | LOCAL_COPY_DELIVERED, to_vbuf,
                       &out),
            0);
        assert_string_equal(vbuf_str(&out), want);
    }
    vbuf_release(&out);
}

static void test_copy_maildir_keeps_body_bytes(void **state)
{
    static const char want_tail[] = "Subject: hi\n"
                                    "Delivered-To: Old@Example.org\n"
                                    "\n"
                                    "From the top\n"
                                    ">From quoted already\n"
                                    "bare\rcr stays\n"
                                    "8bit \xc3\xa9\n"
                                    "From \n";
    src s = {msg_in, sizeof(msg_in) - 1, 0, 3};
    vbuf out;

    (void) state;
    vbuf_init(&out, 0);
    assert_int_equal(local_copy(src_next, &s, "", "bob@kite.test", 0,
                                LOCAL_COPY_LF | LOCAL_COPY_RETURN_PATH | LOCAL_COPY_DELIVERED, to_vbuf, &out),
                     0);
    assert_string_equal(vbuf_str(&out), "Return-Path: <>\nDelivered-To: bob@kite.test\n"
                                        "Subject: hi\n"
                                        "Delivered-To: Old@Example.org\n\nFrom the top\n>From quoted already\n"
                                        "bare\rcr stays\n8bit \xc3\xa9\nFrom \n");
    assert_non_null(strstr(vbuf_str(&out), want_tail));
    vbuf_release(&out);
}

static void test_copy_forward_keeps_crlf(void **state)
{
    src s = {msg_in, sizeof(msg_in) - 1, 0, 5};
    vbuf out;

    (void) state;
    vbuf_init(&out, 0);
    assert_int_equal(local_copy(src_next, &s, "a@b", "list@kite.test", 0, LOCAL_COPY_DELIVERED, to_vbuf, &out), 0);
    assert_memory_equal(out.data, "Delivered-To: list@kite.test\r\nSubject: hi\r\n", 43);
    /* The rest is the original, byte for byte (the final line gains its CRLF). */
    assert_memory_equal(out.data + 30, msg_in, sizeof(msg_in) - 1);
    assert_int_equal(out.len, 30 + sizeof(msg_in) - 1 + 2);
    vbuf_release(&out);
}

static int fail_after(void *ctx, const void *data, size_t len)
{
    int *left = ctx;

    (void) data;
    (void) len;
    return --*left < 0 ? -1 : 0;
}

static void test_copy_reports_writer_failure(void **state)
{
    (void) state;
    for (int n = 0; n < 8; n++) {
        src s = {msg_in, sizeof(msg_in) - 1, 0, 4};
        int left = n;

        assert_int_equal(
            local_copy(src_next, &s, "a@b", "c@d", 0, LOCAL_COPY_LF | LOCAL_COPY_FROM_LINE, fail_after, &left), -1);
    }
}

static void test_scan_delivered_to_stops_at_body(void **state)
{
    static const char text[] = "Received: x\r\n"
                               "delivered-to:  Bob@Kite.Test \r\n"
                               "Delivered-To:\r\n folded@kite.test\r\n"
                               "Subject: y\r\n"
                               "\r\n"
                               "Delivered-To: body@kite.test\r\n";
    char **list;
    size_t n;

    (void) state;
    for (size_t step = 1; step < sizeof(text); step++) {
        src s = {text, sizeof(text) - 1, 0, step};

        assert_int_equal(local_scan_delivered_to(src_next, &s, &list, &n), 2);
        assert_string_equal(list[0], "bob@kite.test");
        assert_string_equal(list[1], "folded@kite.test");
        for (size_t i = 0; i < n; i++)
            xfree(list[i]);
        xfree(list);
    }
}

static void test_maildir_name_is_unique_and_escaped(void **state)
{
    vbuf a, b;

    (void) state;
    vbuf_init(&a, 0);
    vbuf_init(&b, 0);
    local_maildir_name(&a, 1800000000, 42, 1234, 0xabcdefULL, "mx/1:kite.test");
    assert_string_equal(vbuf_str(&a), "1800000000.M000042P1234_R0000000000abcdef.mx\\0571\\072kite.test");
    local_maildir_name(&b, 1800000000, 42, 1234, 0xabcdeeULL, "mx/1:kite.test");
    assert_string_not_equal(vbuf_str(&a), vbuf_str(&b));
    assert_null(strchr(vbuf_str(&a), '/'));
    vbuf_release(&a);
    vbuf_release(&b);
}

static void test_pipe_exit_status_maps_sysexits(void **state)
{
    static const struct {
        int wstatus, timed_out, status;
        const char *dsn, *reason;
    } rows[] = {
        {0 << 8, 0, DELIVER_OK, "2.0.0", "delivered to command: /bin/x"},
        {75 << 8, 0, DELIVER_DEFER, "4.3.0", "Command died with status 75: \"/bin/x\". Command output: out put"},
        {67 << 8, 0, DELIVER_BOUNCE, "5.1.1", "Command died with status 67: \"/bin/x\". Command output: out put"},
        {77 << 8, 0, DELIVER_BOUNCE, "5.7.0", "Command died with status 77: \"/bin/x\". Command output: out put"},
        {1 << 8, 0, DELIVER_BOUNCE, "5.3.0", "Command died with status 1: \"/bin/x\". Command output: out put"},
        {71 << 8, 0, DELIVER_DEFER, "4.3.0", "Command died with status 71: \"/bin/x\". Command output: out put"},
        {9, 0, DELIVER_DEFER, "4.3.0", "Command died with signal 9: \"/bin/x\". Command output: out put"},
        {9, 1, DELIVER_BOUNCE, "5.3.0", "command time limit exceeded: \"/bin/x\". Command output: out put"},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        local_status st;

        local_status_init(&st);
        local_pipe_exit_status(rows[i].wstatus, rows[i].timed_out, "/bin/x", "out\nput", &st);
        assert_int_equal(st.status, rows[i].status);
        assert_string_equal(st.dsn, rows[i].dsn);
        assert_string_equal(vbuf_str(&st.reason), rows[i].reason);
        local_status_free(&st);
    }
}

static char tmpdir[] = "/tmp/kite-local-test-XXXXXX";

static void write_file(const char *name, const char *text, mode_t mode)
{
    char path[256];
    int fd;

    (void) snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    (void) unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void test_trusted_file_checks(void **state)
{
    local_user me = {"me", "/", "/bin/sh", 0, 0};
    local_user other = {"other", "/", "/bin/sh", 0, 0};
    char path[256];
    vbuf out, why;
    char *big;

    (void) state;
    me.uid = geteuid();
    me.gid = getegid();
    other.uid = geteuid() + 4242;
    vbuf_init(&out, 0);
    vbuf_init(&why, 0);
    assert_non_null(mkdtemp(tmpdir));

    write_file("good", "bob\n", 0644);
    (void) snprintf(path, sizeof(path), "%s/good", tmpdir);
    assert_int_equal(local_read_trusted_file(path, &me, &out, &why), 1);
    assert_string_equal(vbuf_str(&out), "bob\n");

    (void) snprintf(path, sizeof(path), "%s/missing", tmpdir);
    assert_int_equal(local_read_trusted_file(path, &me, &out, &why), 0);

    write_file("gw", "bob\n", 0664);
    (void) snprintf(path, sizeof(path), "%s/gw", tmpdir);
    assert_int_equal(local_read_trusted_file(path, &me, &out, &why), -1);
    assert_non_null(strstr(vbuf_str(&why), "group or world writable"));

    write_file("ww", "bob\n", 0602);
    (void) snprintf(path, sizeof(path), "%s/ww", tmpdir);
    assert_int_equal(local_read_trusted_file(path, &me, &out, &why), -1);

    /* A file owned by someone else (unless root owns it) is refused. */
    (void) snprintf(path, sizeof(path), "%s/good", tmpdir);
    if (geteuid() != 0) {
        assert_int_equal(local_read_trusted_file(path, &other, &out, &why), -1);
        assert_non_null(strstr(vbuf_str(&why), "owned by uid"));
    } else {
        assert_int_equal(chown(path, other.uid + 1, 0), 0);
        assert_int_equal(local_read_trusted_file(path, &other, &out, &why), -1);
        assert_non_null(strstr(vbuf_str(&why), "owned by uid"));
        assert_int_equal(chown(path, 0, 0), 0);
        assert_int_equal(local_read_trusted_file(path, &other, &out, &why), 1);
    }

    /* Symbolic links are never followed. */
    (void) snprintf(path, sizeof(path), "%s/link", tmpdir);
    assert_int_equal(symlink("good", path), 0);
    assert_int_equal(local_read_trusted_file(path, &me, &out, &why), -1);
    assert_non_null(strstr(vbuf_str(&why), "symbolic link"));

    /* A directory, a NUL byte, an oversized file. */
    (void) snprintf(path, sizeof(path), "%s", tmpdir);
    assert_int_equal(local_read_trusted_file(path, &me, &out, &why), -1);
    (void) snprintf(path, sizeof(path), "%s/nul", tmpdir);
    {
        int fd = open(path, O_WRONLY | O_CREAT, 0600);

        assert_int_equal(write(fd, "bob\0evil\n", 9), 9);
        close(fd);
    }
    assert_int_equal(local_read_trusted_file(path, &me, &out, &why), -1);
    big = xmalloc(2 * 1024 * 1024 + 1);
    memset(big, 'a', 2 * 1024 * 1024);
    big[2 * 1024 * 1024] = 0;
    write_file("big", big, 0600);
    xfree(big);
    (void) snprintf(path, sizeof(path), "%s/big", tmpdir);
    assert_int_equal(local_read_trusted_file(path, &me, &out, &why), -1);
    vbuf_release(&out);
    vbuf_release(&why);
}

static void test_mbox_lock_excludes_second_locker(void **state)
{
    char path[256];
    int fd, dot = 0;
    vbuf why;
    struct stat st;

    (void) state;
    vbuf_init(&why, 0);
    (void) snprintf(path, sizeof(path), "%s/mbox", tmpdir);
    fd = open(path, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(local_mbox_lock(fd, path, &dot, &why), 0);
    assert_int_equal(dot, 1);
    (void) snprintf(path, sizeof(path), "%s/mbox.lock", tmpdir);
    assert_int_equal(stat(path, &st), 0);
    /* Another process cannot take the fcntl lock while we hold it. */
    pid_t pid = fork();
    if (pid == 0) {
        struct flock fl = {0};

        fl.l_type = F_WRLCK;
        _exit(fcntl(fd, F_SETLK, &fl) < 0 ? 0 : 1);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_int_equal(WEXITSTATUS(ws), 0);
    (void) snprintf(path, sizeof(path), "%s/mbox", tmpdir);
    local_mbox_unlock(path, dot);
    (void) snprintf(path, sizeof(path), "%s/mbox.lock", tmpdir);
    assert_int_equal(stat(path, &st), -1);
    close(fd);
    vbuf_release(&why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_mbox_format_for_every_chunk_size),
        cmocka_unit_test(test_copy_maildir_keeps_body_bytes),
        cmocka_unit_test(test_copy_forward_keeps_crlf),
        cmocka_unit_test(test_copy_reports_writer_failure),
        cmocka_unit_test(test_scan_delivered_to_stops_at_body),
        cmocka_unit_test(test_maildir_name_is_unique_and_escaped),
        cmocka_unit_test(test_pipe_exit_status_maps_sysexits),
        cmocka_unit_test(test_trusted_file_checks),
        cmocka_unit_test(test_mbox_lock_excludes_second_locker),
    };
    int rc;

    (void) setenv("TZ", "UTC", 1);
    tzset();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (tmpdir[sizeof(tmpdir) - 2] != 'X') {
        char cmd[300];
        pid_t pid;

        (void) snprintf(cmd, sizeof(cmd), "%s", tmpdir);
        if ((pid = fork()) == 0) {
            char *argv[] = {"rm", "-rf", cmd, NULL};

            execv("/bin/rm", argv);
            _exit(1);
        }
        (void) waitpid(pid, NULL, 0);
    }
    return rc;
}
