/* Unit tests for safe_open and safe_dir_check against a real file system. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "safe_open.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void) state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_safe_open.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    static const char *const names[] = {"plain", "new",   "link", "hard",   "hard2", "dangling",
                                        "fifo",  "dir/x", "dir",  "sticky", "open",  "excl"};
    char path[512];

    (void) state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        (void) unlink(path);
        (void) rmdir(path);
    }
    return rmdir(tmpdir);
}

static const char *in_tmp(const char *name)
{
    static char path[4][512];
    static int n;

    n = (n + 1) % 4;
    snprintf(path[n], sizeof(path[n]), "%s/%s", tmpdir, name);
    return path[n];
}

static void make_file(const char *name, const char *content)
{
    int fd = open(in_tmp(name), O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t) strlen(content));
    close(fd);
}

static void test_safe_open_existing_regular_file(void **state)
{
    vbuf why;
    struct stat st;
    char buf[16] = {0};
    int fd;

    (void) state;
    vbuf_init(&why, 0);
    make_file("plain", "hello");
    fd = safe_open(in_tmp("plain"), O_RDONLY, 0, 0, getuid(), (gid_t) -1, &st, &why);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof(buf) - 1), 5);
    assert_string_equal(buf, "hello");
    assert_true(S_ISREG(st.st_mode));
    close(fd);
    /* uid -1 skips the owner check */
    fd = safe_open(in_tmp("plain"), O_RDWR | O_APPEND, 0, 0, (uid_t) -1, (gid_t) -1, NULL, &why);
    assert_true(fd >= 0);
    close(fd);
    vbuf_release(&why);
}

static void test_safe_open_refuses_wrong_owner(void **state)
{
    vbuf why;

    (void) state;
    vbuf_init(&why, 0);
    make_file("plain", "x");
    assert_int_equal(safe_open(in_tmp("plain"), O_RDONLY, 0, 0, getuid() + 1, (gid_t) -1, NULL, &why), -1);
    assert_non_null(strstr(vbuf_str(&why), "owned by"));
    vbuf_release(&why);
}

static void test_safe_open_refuses_symlinks(void **state)
{
    vbuf why;

    (void) state;
    vbuf_init(&why, 0);
    make_file("plain", "target");
    assert_int_equal(symlink(in_tmp("plain"), in_tmp("link")), 0);
    assert_int_equal(safe_open(in_tmp("link"), O_RDONLY, 0, 0, (uid_t) -1, (gid_t) -1, NULL, &why), -1);
    assert_non_null(strstr(vbuf_str(&why), "symbolic link"));
    /* not even with create: the link is not followed, its target untouched */
    assert_int_equal(
        safe_open(in_tmp("link"), O_WRONLY | O_TRUNC, SAFE_OPEN_CREATE, 0600, (uid_t) -1, (gid_t) -1, NULL, &why), -1);
    {
        struct stat st;

        assert_int_equal(stat(in_tmp("plain"), &st), 0);
        assert_int_equal(st.st_size, 6);
    }
    /* a dangling link must not lead to a file being created at its target */
    assert_int_equal(symlink(in_tmp("new"), in_tmp("dangling")), 0);
    assert_int_equal(
        safe_open(in_tmp("dangling"), O_WRONLY, SAFE_OPEN_CREATE, 0600, (uid_t) -1, (gid_t) -1, NULL, &why), -1);
    assert_int_equal(access(in_tmp("new"), F_OK), -1);
    vbuf_release(&why);
}

static void test_safe_open_refuses_hard_links(void **state)
{
    vbuf why;

    (void) state;
    vbuf_init(&why, 0);
    make_file("hard", "x");
    assert_int_equal(link(in_tmp("hard"), in_tmp("hard2")), 0);
    assert_int_equal(safe_open(in_tmp("hard"), O_RDONLY, 0, 0, (uid_t) -1, (gid_t) -1, NULL, &why), -1);
    assert_non_null(strstr(vbuf_str(&why), "hard links"));
    /* O_TRUNC must not empty the other name's file before the check */
    assert_int_equal(
        safe_open(in_tmp("hard"), O_WRONLY | O_TRUNC, SAFE_OPEN_CREATE, 0600, (uid_t) -1, (gid_t) -1, NULL, &why), -1);
    {
        struct stat st;

        assert_int_equal(stat(in_tmp("hard2"), &st), 0);
        assert_int_equal(st.st_size, 1);
    }
    vbuf_release(&why);
}

static void test_safe_open_refuses_non_regular_files(void **state)
{
    vbuf why;

    (void) state;
    vbuf_init(&why, 0);
    assert_int_equal(mkfifo(in_tmp("fifo"), 0600), 0);
    /* refused before open(): a FIFO without a writer would block it */
    assert_int_equal(safe_open(in_tmp("fifo"), O_RDONLY, 0, 0, (uid_t) -1, (gid_t) -1, NULL, &why), -1);
    assert_non_null(strstr(vbuf_str(&why), "not a regular file"));
    assert_int_equal(mkdir(in_tmp("dir"), 0700), 0);
    assert_int_equal(safe_open(in_tmp("dir"), O_RDONLY, 0, 0, (uid_t) -1, (gid_t) -1, NULL, &why), -1);
    vbuf_release(&why);
}

static void test_safe_open_creates_missing_file(void **state)
{
    vbuf why;
    struct stat st;
    int fd;

    (void) state;
    vbuf_init(&why, 0);
    assert_int_equal(safe_open(in_tmp("open"), O_WRONLY, 0, 0600, (uid_t) -1, (gid_t) -1, NULL, &why), -1);
    assert_non_null(strstr(vbuf_str(&why), "cannot find"));
    fd = safe_open(in_tmp("open"), O_WRONLY, SAFE_OPEN_CREATE, 0640, (uid_t) -1, (gid_t) -1, &st, &why);
    assert_true(fd >= 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_nlink, 1);
    assert_int_equal(write(fd, "abc", 3), 3);
    close(fd);
    /* second time: the existing file is opened, and O_TRUNC still works */
    fd = safe_open(in_tmp("open"), O_WRONLY | O_TRUNC, SAFE_OPEN_CREATE, 0640, getuid(), (gid_t) -1, &st, &why);
    assert_true(fd >= 0);
    assert_int_equal(st.st_size, 0);
    close(fd);
    assert_int_equal(stat(in_tmp("open"), &st), 0);
    assert_int_equal(st.st_size, 0);
    vbuf_release(&why);
}

static void test_safe_open_excl_refuses_existing_file(void **state)
{
    vbuf why;
    int fd;

    (void) state;
    vbuf_init(&why, 0);
    fd = safe_open(in_tmp("excl"), O_WRONLY, SAFE_OPEN_CREATE | SAFE_OPEN_EXCL, 0600, (uid_t) -1, (gid_t) -1, NULL,
                   &why);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(safe_open(in_tmp("excl"), O_WRONLY, SAFE_OPEN_CREATE | SAFE_OPEN_EXCL, 0600, (uid_t) -1,
                               (gid_t) -1, NULL, &why),
                     -1);
    assert_non_null(strstr(vbuf_str(&why), "exists"));
    vbuf_release(&why);
}

static void test_safe_dir_check_modes(void **state)
{
    vbuf why;

    (void) state;
    vbuf_init(&why, 0);
    assert_int_equal(mkdir(in_tmp("dir"), 0700), 0);
    assert_int_equal(safe_dir_check(in_tmp("dir"), getuid(), &why), 0);
    assert_int_equal(safe_dir_check(in_tmp("dir"), (uid_t) -1, &why), 0);
    assert_int_equal(safe_dir_check(in_tmp("dir"), getuid() + 1, &why), -1);
    assert_int_equal(chmod(in_tmp("dir"), 0777), 0);
    assert_int_equal(safe_dir_check(in_tmp("dir"), getuid(), &why), -1);
    assert_non_null(strstr(vbuf_str(&why), "writable"));
    assert_int_equal(chmod(in_tmp("dir"), 01777), 0);
    assert_int_equal(safe_dir_check(in_tmp("dir"), getuid(), &why), 0);
    assert_int_equal(chmod(in_tmp("dir"), 0720), 0);
    assert_int_equal(safe_dir_check(in_tmp("dir"), getuid(), &why), -1);
    assert_int_equal(symlink(in_tmp("dir"), in_tmp("link")), 0);
    assert_int_equal(chmod(in_tmp("dir"), 0700), 0);
    assert_int_equal(safe_dir_check(in_tmp("link"), getuid(), &why), -1);
    make_file("plain", "x");
    assert_int_equal(safe_dir_check(in_tmp("plain"), getuid(), &why), -1);
    assert_int_equal(safe_dir_check(in_tmp("missing"), getuid(), &why), -1);
    vbuf_release(&why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_safe_open_existing_regular_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_safe_open_refuses_wrong_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_safe_open_refuses_symlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_safe_open_refuses_hard_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_safe_open_refuses_non_regular_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_safe_open_creates_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_safe_open_excl_refuses_existing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_safe_dir_check_modes, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
