/* Unit tests for mail_queue: hashed paths, moves, scans, layout setup and repair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "mail_queue.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "vbuf.h"

static char topdir[64];
static char saved_cwd[4096];

/* setup - a fresh queue directory as the current directory */
static int setup(void **state)
{
    vbuf why;

    (void) state;
    snprintf(topdir, sizeof(topdir), "/tmp/test_mail_queue_XXXXXX");
    if (mkdtemp(topdir) == NULL || getcwd(saved_cwd, sizeof(saved_cwd)) == NULL)
        return -1;
    xfree(var_hash_queue_names);
    var_hash_queue_names = xstrdup("deferred, defer");
    var_hash_queue_depth = 2;
    vbuf_init(&why, 0);
    {
        char q[128];

        snprintf(q, sizeof(q), "%s/q", topdir);
        if (mail_queue_setup(q, geteuid(), getegid(), getegid(), &why) < 0) {
            fprintf(stderr, "setup: %s\n", vbuf_str(&why));
            vbuf_release(&why);
            return -1;
        }
        vbuf_release(&why);
        if (chdir(q) < 0)
            return -1;
    }
    return 0;
}

/* rm_entry - nftw callback: remove one entry (depth first, links not followed) */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove(path);
}

/* teardown - remove the tree */
static int teardown(void **state)
{
    (void) state;
    if (chdir(saved_cwd) < 0)
        return -1;
    return nftw(topdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* touch - create an empty file */
static void touch(const char *path)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fclose(fp);
}

static void test_mail_queue_path_hashes_only_listed_queues_from_the_end(void **state)
{
    static const struct {
        const char *queue, *id, *expect;
        long depth;
    } rows[] = {
        {"incoming", "4Xb2kQ9zT1", "incoming/4Xb2kQ9zT1", 2},
        {"deferred", "4Xb2kQ9zT1", "deferred/1/T/4Xb2kQ9zT1", 2},
        {"defer", "ABC", "defer/C/B/ABC", 2},
        {"deferred", "ABC", "deferred/C/ABC", 1},
        {"deferred", "A", "deferred/A/A", 2},
        {"hold", "ABC", "hold/ABC", 3},
    };
    vbuf out;

    (void) state;
    vbuf_init(&out, 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        var_hash_queue_depth = rows[i].depth;
        mail_queue_path(&out, rows[i].queue, rows[i].id);
        assert_string_equal(vbuf_str(&out), rows[i].expect);
    }
    var_hash_queue_depth = 2;
    vbuf_release(&out);
}

static void test_mail_queue_id_ok_rejects_path_tricks(void **state)
{
    static const struct {
        const char *id;
        int ok;
    } rows[] = {
        {"4Xb2kQ9zT1", 1},
        {"A.B-c_d", 1},
        {"", 0},
        {".", 0},
        {"..", 0},
        {"../etc", 0},
        {"a/b", 0},
        {".hidden", 0},
        {"a b", 0},
        {"a\nb", 0},
        {"0123456789012345678901234567890123456789012345678901234567890123456789", 0},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        assert_int_equal(mail_queue_id_ok(rows[i].id), rows[i].ok);
}

static void test_mail_queue_move_creates_hash_dirs_and_renames(void **state)
{
    struct stat st;

    (void) state;
    touch("incoming/QID7");
    assert_int_equal(mail_queue_move("QID7", "incoming", "active"), 0);
    assert_int_equal(stat("active/QID7", &st), 0);
    assert_int_equal(mail_queue_move("QID7", "active", "deferred"), 0);
    assert_int_equal(stat("deferred/7/D/QID7", &st), 0);
    assert_int_equal(stat("active/QID7", &st), -1);
    assert_int_equal(mail_queue_move("QID7", "deferred", "active"), 0);
    assert_int_equal(stat("active/QID7", &st), 0);
    /* Missing source and bad IDs fail without touching anything. */
    assert_int_equal(mail_queue_move("NOPE", "incoming", "active"), -1);
    assert_int_equal(mail_queue_move("../QID7", "active", "hold"), -1);
    assert_int_equal(stat("active/QID7", &st), 0);
}

static void test_mail_queue_move_recoverable_renames_like_the_durable_move(void **state)
{
    struct stat st;

    (void) state;
    touch("incoming/QID8");
    assert_int_equal(mail_queue_move_recoverable("QID8", "incoming", "active"), 0);
    assert_int_equal(stat("active/QID8", &st), 0);
    assert_int_equal(stat("incoming/QID8", &st), -1);
    /* Hash levels are created on demand, as by the durable move. */
    assert_int_equal(mail_queue_move_recoverable("QID8", "active", "deferred"), 0);
    assert_int_equal(stat("deferred/8/D/QID8", &st), 0);
    assert_int_equal(mail_queue_move_recoverable("QID8", "deferred", "active"), 0);
    assert_int_equal(stat("active/QID8", &st), 0);
    /* Missing source, bad IDs: -1, nothing moved. */
    assert_int_equal(mail_queue_move_recoverable("NOPE", "incoming", "active"), -1);
    assert_int_equal(mail_queue_move_recoverable("../QID8", "active", "hold"), -1);
    assert_int_equal(mail_queue_move_recoverable(".QID8", "active", "hold"), -1);
    assert_int_equal(stat("active/QID8", &st), 0);
}

/* collect - scan callback: append "queue:id," */
static void collect(const char *queue, const char *id, void *ctx)
{
    vbuf *out = ctx;

    vbuf_printf(out, "%s:%s,", queue, id);
}

/* remove_it - scan callback that removes what it sees (allowed during a scan) */
static void remove_it(const char *queue, const char *id, void *ctx)
{
    vbuf path;

    (void) ctx;
    vbuf_init(&path, 0);
    mail_queue_path(&path, queue, id);
    assert_int_equal(unlink(vbuf_str(&path)), 0);
    vbuf_release(&path);
}

static void test_mail_queue_scan_walks_hash_levels_and_skips_junk(void **state)
{
    vbuf out;

    (void) state;
    vbuf_init(&out, 0);
    touch("incoming/AAA1");
    assert_int_equal(mail_queue_move("AAA1", "incoming", "deferred"), 0);
    touch("incoming/BBB2");
    assert_int_equal(mail_queue_move("BBB2", "incoming", "deferred"), 0);
    touch("deferred/.tmpfile");
    assert_int_equal(mail_queue_scan("deferred", collect, &out), 2);
    assert_non_null(strstr(vbuf_str(&out), "deferred:AAA1,"));
    assert_non_null(strstr(vbuf_str(&out), "deferred:BBB2,"));
    assert_int_equal(mail_queue_scan("deferred", remove_it, NULL), 2);
    vbuf_reset(&out);
    assert_int_equal(mail_queue_scan("deferred", collect, &out), 0);
    assert_int_equal(mail_queue_scan("no-such-queue", collect, &out), -1);
    vbuf_release(&out);
}

static void test_mail_queue_setup_modes_and_repair(void **state)
{
    static const struct {
        const char *dir;
        mode_t mode;
    } rows[] = {
        {"maildrop", 01730}, {"incoming", 0700}, {"active", 0700}, {"deferred", 0700},
        {"hold", 0700},      {"corrupt", 0700},  {"bounce", 0700}, {"defer", 0700},
        {"trace", 0700},     {"private", 0700},  {"public", 0710},
    };
    struct stat st;
    vbuf why;
    char q[128];

    (void) state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_int_equal(lstat(rows[i].dir, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, rows[i].mode);
    }
    /* Repair a wrong mode, recreate a missing directory. */
    assert_int_equal(chmod("incoming", 0777), 0);
    assert_int_equal(rmdir("hold"), 0);
    vbuf_init(&why, 0);
    snprintf(q, sizeof(q), "%s/q", topdir);
    assert_int_equal(mail_queue_setup(q, geteuid(), getegid(), getegid(), &why), 0);
    assert_int_equal(lstat("incoming", &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(lstat("hold", &st), 0);
    /* A symlink or a file where a queue should be is reported, never followed. */
    assert_int_equal(rmdir("corrupt"), 0);
    assert_int_equal(symlink("/tmp", "corrupt"), 0);
    touch("trace.tmp");
    assert_int_equal(rmdir("trace"), 0);
    assert_int_equal(rename("trace.tmp", "trace"), 0);
    assert_int_equal(mail_queue_setup(q, geteuid(), getegid(), getegid(), &why), -1);
    assert_non_null(strstr(vbuf_str(&why), "corrupt exists and is not a directory"));
    assert_non_null(strstr(vbuf_str(&why), "trace exists and is not a directory"));
    assert_int_equal(lstat("/tmp", &st), 0);
    assert_int_equal(st.st_mode & 07777, 01777); /* untouched */
    vbuf_release(&why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mail_queue_path_hashes_only_listed_queues_from_the_end, setup, teardown),
        cmocka_unit_test(test_mail_queue_id_ok_rejects_path_tricks),
        cmocka_unit_test_setup_teardown(test_mail_queue_move_creates_hash_dirs_and_renames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_queue_move_recoverable_renames_like_the_durable_move, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mail_queue_scan_walks_hash_levels_and_skips_junk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_queue_setup_modes_and_repair, setup, teardown),
    };

    msg_stderr(0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
