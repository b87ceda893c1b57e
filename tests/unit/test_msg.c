/*
 * Unit tests for msg: the capture hook, levels and their prefixes, the
 * error counter, %m, the log file line format, log-injection safety, and
 * the fatal/panic paths (in forked children).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "msg.h"
#include "vbuf.h"

static vbuf captured;
static char logpath[256];

static void capture(enum msg_level level, const char *text)
{
    vbuf_printf(&captured, "%d:%s\n", (int) level, text);
}

static int setup(void **state)
{
    (void) state;
    vbuf_init(&captured, 0);
    msg_init("kite/test");
    msg_stderr(0);
    msg_set_capture(capture);
    snprintf(logpath, sizeof(logpath), "/tmp/test_msg.%ld.log", (long) getpid());
    (void) unlink(logpath);
    return 0;
}

static int teardown(void **state)
{
    (void) state;
    msg_logfile_close();
    msg_set_capture(NULL);
    vbuf_release(&captured);
    (void) unlink(logpath);
    return 0;
}

/* read_log - the log file's content */
static void read_log(char *buf, size_t size)
{
    FILE *fp = fopen(logpath, "r");
    size_t n;

    assert_non_null(fp);
    n = fread(buf, 1, size - 1, fp);
    buf[n] = 0;
    fclose(fp);
}

static void test_msg_capture_sees_level_and_text(void **state)
{
    int before = msg_error_count();

    (void) state;
    msg_info("info %d", 1);
    msg_warn("warn %s", "two");
    msg_error("error %c", '3');
    assert_string_equal(captured.data, "0:info 1\n1:warn two\n2:error 3\n");
    assert_int_equal(msg_error_count(), before + 1);
    msg_warn("not an error");
    assert_int_equal(msg_error_count(), before + 1);
    assert_string_equal(msg_tag(), "kite/test");
}

static void test_msg_percent_m_and_errno_preserved(void **state)
{
    (void) state;
    errno = ENOENT;
    msg_info("open x: %m");
    assert_int_equal(errno, ENOENT);
    assert_string_equal(captured.data, "0:open x: No such file or directory\n");
}

static void test_msg_logfile_line_format(void **state)
{
    char buf[8192], pattern[256];
    regex_t re;

    (void) state;
    assert_int_equal(msg_logfile_open(logpath), 0);
    msg_info("connect from host[192.0.2.1]");
    msg_warn("something odd");
    msg_error("something bad");
    read_log(buf, sizeof(buf));
    snprintf(pattern, sizeof(pattern),
             "^[A-Z][a-z][a-z] [ 123][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] [^ ]+ kite/test\\[%ld\\]: (.*)$",
             (long) getpid());
    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE), 0);
    {
        static const char *const want[] = {"connect from host[192.0.2.1]", "warning: something odd",
                                           "error: something bad"};
        char *line = buf;

        for (size_t i = 0; i < 3; i++) {
            char *nl = strchr(line, '\n');
            regmatch_t m[2];

            assert_non_null(nl);
            *nl = 0;
            if (regexec(&re, line, 2, m, 0) != 0)
                fail_msg("bad log line \"%s\"", line);
            assert_string_equal(line + m[1].rm_so, want[i]);
            line = nl + 1;
        }
        assert_string_equal(line, "");
    }
    regfree(&re);
    /* appends, and refuses to follow a symlink */
    msg_logfile_close();
    {
        char linkpath[300];

        snprintf(linkpath, sizeof(linkpath), "%s.link", logpath);
        (void) unlink(linkpath);
        assert_int_equal(symlink(logpath, linkpath), 0);
        assert_int_equal(msg_logfile_open(linkpath), -1);
        assert_int_equal(unlink(linkpath), 0);
    }
}

static void test_msg_control_characters_cannot_forge_log_lines(void **state)
{
    char buf[8192];

    (void) state;
    assert_int_equal(msg_logfile_open(logpath), 0);
    msg_info("client said: %s", "HELO x\r\nJan  1 00:00:00 host kite/smtpd[1]: forged\x1b[0m");
    read_log(buf, sizeof(buf));
    /* one line only: CR, LF and ESC are replaced */
    assert_non_null(strchr(buf, '\n'));
    assert_string_equal(strchr(buf, '\n'), "\n");
    assert_null(strchr(buf, '\r'));
    assert_null(strchr(buf, '\x1b'));
    assert_non_null(strstr(buf, "HELO x??Jan  1"));
    /* UTF-8 text is left alone */
    vbuf_reset(&captured);
    msg_info("J\xc3\xb6rg");
    assert_string_equal(captured.data, "0:J\xc3\xb6rg\n");
}

static void test_msg_long_message_is_truncated_to_one_line(void **state)
{
    static char big[20000];
    char buf[16384];

    (void) state;
    memset(big, 'x', sizeof(big) - 1);
    assert_int_equal(msg_logfile_open(logpath), 0);
    msg_info("%s", big);
    msg_info("next");
    read_log(buf, sizeof(buf));
    {
        char *nl = strchr(buf, '\n');

        assert_non_null(nl);
        assert_true(nl - buf < 8192);
        assert_non_null(strstr(nl + 1, "kite/test["));
        assert_non_null(strstr(nl + 1, "]: next\n"));
    }
}

/* run_child - fork, call fn, return the wait status; messages go to the pipe */
static int child_pipe = -1;

static void child_capture(enum msg_level level, const char *text)
{
    char line[256];
    int n = snprintf(line, sizeof(line), "%d:%s\n", (int) level, text);

    if (n > 0 && write(child_pipe, line, (size_t) n) < 0)
        _exit(99);
}

static void child_cleanup(void)
{
    if (write(child_pipe, "cleanup\n", 8) < 0)
        _exit(98);
}

static int run_child(void (*fn)(void), char *out, size_t outlen)
{
    int fds[2], status;
    pid_t pid;
    size_t got = 0;
    ssize_t n;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        child_pipe = fds[1];
        msg_set_capture(child_capture);
        msg_set_cleanup(child_cleanup);
        signal(SIGABRT, SIG_DFL);
        fn();
        _exit(0);
    }
    close(fds[1]);
    while (got + 1 < outlen && (n = read(fds[0], out + got, outlen - 1 - got)) > 0)
        got += (size_t) n;
    out[got] = 0;
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void do_fatal(void)
{
    msg_fatal("cannot go on: %s", "reason");
}

static void do_panic(void)
{
    msg_panic("bug: %d", 42);
}

static void test_msg_fatal_runs_cleanup_and_exits_1(void **state)
{
    char out[1024];
    int status;

    (void) state;
    status = run_child(do_fatal, out, sizeof(out));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_string_equal(out, "3:cannot go on: reason\ncleanup\n");
}

static void test_msg_panic_aborts(void **state)
{
    char out[1024];
    int status;

    (void) state;
    status = run_child(do_panic, out, sizeof(out));
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_string_equal(out, "4:bug: 42\n");
}

/* The pid in log lines is looked up once per process: a forked child still logs its own. */
static void test_msg_logfile_pid_is_the_childs_after_fork(void **state)
{
    char buf[8192], want_parent[64], want_child[64];
    pid_t child;
    int status;

    (void) state;
    assert_int_equal(msg_logfile_open(logpath), 0);
    msg_info("parent before fork");
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        msg_info("child line");
        _exit(0);
    }
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    msg_info("parent after fork");
    read_log(buf, sizeof(buf));
    snprintf(want_parent, sizeof(want_parent), "kite/test[%ld]: parent", (long) getpid());
    snprintf(want_child, sizeof(want_child), "kite/test[%ld]: child line", (long) child);
    assert_non_null(strstr(buf, want_child));
    {
        char *first = strstr(buf, want_parent);

        assert_non_null(first);
        assert_non_null(strstr(first + 1, want_parent)); /* both parent lines */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_msg_capture_sees_level_and_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msg_percent_m_and_errno_preserved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msg_logfile_line_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msg_logfile_pid_is_the_childs_after_fork, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msg_control_characters_cannot_forge_log_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msg_long_message_is_truncated_to_one_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msg_fatal_runs_cleanup_and_exits_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msg_panic_aborts, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
