/*
 * Unit tests for mymalloc: allocations never return NULL, sizes are checked
 * for overflow, and exhaustion or overflow ends the process through
 * msg_fatal (exit status 1) - tested in forked children.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "msg.h"
#include "mymalloc.h"

static void test_allocations_succeed_and_copy(void **state)
{
    char *p, *q;
    int *z;

    (void) state;
    p = xmalloc(0);
    assert_non_null(p);
    xfree(p);
    z = xcalloc(100, sizeof(int));
    for (int i = 0; i < 100; i++)
        assert_int_equal(z[i], 0);
    z = xreallocarray(z, 1000, sizeof(int));
    z[999] = 7;
    xfree(z);
    p = xcalloc(0, 10); /* never NULL, even for zero */
    assert_non_null(p);
    xfree(p);
    p = xstrdup("hello");
    assert_string_equal(p, "hello");
    q = xstrndup("hello world", 5);
    assert_string_equal(q, "hello");
    xfree(q);
    q = xstrndup("hi", 100); /* shorter than len: no over-read */
    assert_string_equal(q, "hi");
    xfree(q);
    q = xmemdup("a\0b", 3);
    assert_memory_equal(q, "a\0b", 3);
    xfree(q);
    p = xrealloc(p, 0);
    assert_non_null(p);
    xfree(p);
    xfree(NULL);
}

static void test_size_arithmetic_in_range(void **state)
{
    (void) state;
    assert_int_equal(size_add(1, 2), 3);
    assert_true(size_add(SIZE_MAX - 1, 1) == SIZE_MAX);
    assert_int_equal(size_mul(0, SIZE_MAX), 0);
    assert_int_equal(size_mul(SIZE_MAX, 0), 0);
    assert_true(size_mul(SIZE_MAX / 2, 2) == SIZE_MAX - 1);
}

enum fatal_case { ADD_OVERFLOW, MUL_OVERFLOW, CALLOC_OVERFLOW, REALLOCARRAY_OVERFLOW, MALLOC_HUGE, REALLOC_HUGE };

static int pipe_w = -1;

/* in the child: pass every message to the parent through the pipe */
static void to_parent(enum msg_level level, const char *text)
{
    char line[512];
    int n = snprintf(line, sizeof(line), "%d:%s\n", (int) level, text);

    if (n > 0 && write(pipe_w, line, (size_t) n) < 0)
        _exit(99);
}

static void cleanup_marker(void)
{
    if (write(pipe_w, "cleanup\n", 8) < 0)
        _exit(98);
}

/* run_fatal - the case in a child; returns its exit status, with messages in out */
static int run_fatal(enum fatal_case c, char *out, size_t outlen)
{
    int fds[2], status;
    pid_t pid;
    ssize_t n;
    size_t got = 0;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        volatile void *p = NULL;

        close(fds[0]);
        pipe_w = fds[1];
        msg_stderr(0);
        msg_set_capture(to_parent);
        msg_set_cleanup(cleanup_marker);
        switch (c) {
        case ADD_OVERFLOW:
            (void) size_add(SIZE_MAX, 1);
            break;
        case MUL_OVERFLOW:
            (void) size_mul(SIZE_MAX / 2 + 1, 2);
            break;
        case CALLOC_OVERFLOW:
            p = xcalloc(SIZE_MAX / 4, 8);
            break;
        case REALLOCARRAY_OVERFLOW:
            p = xreallocarray(NULL, SIZE_MAX / 2, 3);
            break;
        case MALLOC_HUGE:
            p = xmalloc(SIZE_MAX - 16);
            break;
        case REALLOC_HUGE:
            p = xrealloc(NULL, (size_t) PTRDIFF_MAX + 1);
            break;
        }
        (void) p;
        _exit(0); /* not reached if the case is fatal */
    }
    close(fds[1]);
    while (got + 1 < outlen && (n = read(fds[0], out + got, outlen - 1 - got)) > 0)
        got += (size_t) n;
    out[got] = 0;
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_overflow_and_exhaustion_are_fatal(void **state)
{
    static const struct {
        enum fatal_case c;
        const char *words;
    } cases[] = {
        {ADD_OVERFLOW, "size_add: size overflow"},
        {MUL_OVERFLOW, "size_mul: size overflow"},
        {CALLOC_OVERFLOW, "size overflow"},
        {REALLOCARRAY_OVERFLOW, "size overflow"},
        {MALLOC_HUGE, "xmalloc"},
        {REALLOC_HUGE, "xrealloc"},
    };
    char out[2048];

    (void) state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int status = run_fatal(cases[i].c, out, sizeof(out));

        if (status != 1)
            fail_msg("case %zu: exit status %d, messages:\n%s", i, status, out);
        if (strstr(out, cases[i].words) == NULL)
            fail_msg("case %zu: no \"%s\" in:\n%s", i, cases[i].words, out);
        /* msg_fatal level, and the cleanup hook ran after the message */
        assert_non_null(strstr(out, "3:"));
        assert_non_null(strstr(out, "cleanup\n"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allocations_succeed_and_copy),
        cmocka_unit_test(test_size_arithmetic_in_range),
        cmocka_unit_test(test_overflow_and_exhaustion_are_fatal),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
