/*
 * Unit tests for mail_queue: hashed paths, moves, scans, layout setup and
 * repair, retiring finished files into recycle/ and claiming them back
 * (free and taken slots, recycling off, hostile slot entries).
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
#include <ftw.h>
#include <sys/stat.h>
#include <time.h>
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
        {"maildrop", 01730}, {"incoming", 0700}, {"active", 0700},  {"deferred", 0700},
        {"hold", 0700},      {"corrupt", 0700},  {"bounce", 0700},  {"defer", 0700},
        {"trace", 0700},     {"recycle", 0700},  {"private", 0700}, {"public", 0710},
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

/* ---- recycle/: retire and reuse ---- */

/* put_file - create path with the given text; returns its inode */
static ino_t put_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    struct stat st;

    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(lstat(path, &st), 0);
    return st.st_ino;
}

/* file_text - the contents of path (up to 4 KB) into buf */
static void file_text(const char *path, char *buf, size_t size)
{
    FILE *fp = fopen(path, "r");
    size_t n;

    assert_non_null(fp);
    n = fread(buf, 1, size - 1, fp);
    buf[n] = 0;
    fclose(fp);
}

/* recycle_entries - names in recycle/ (other than . and ..), with their inodes */
static int recycle_entries(char names[][260], ino_t *inos, int max)
{
    DIR *d = opendir(MAIL_QUEUE_RECYCLE);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n < max) {
            char path[300];
            struct stat st;

            snprintf(names[n], 260, "%s", e->d_name);
            snprintf(path, sizeof(path), "%s/%s", MAIL_QUEUE_RECYCLE, e->d_name);
            assert_int_equal(lstat(path, &st), 0);
            inos[n] = st.st_ino;
        }
        n++;
    }
    closedir(d);
    return n;
}

/* slot_number - a recycle/ name as a number below limit, or -1 */
static long slot_number(const char *name, long limit)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(name, &end, 10);
    if (*name == 0 || *end != 0 || errno != 0 || n < 0 || n >= limit)
        return -1;
    return n;
}

static void test_mail_queue_retire_moves_the_file_into_a_recycle_slot(void **state)
{
    char names[8][260];
    ino_t inos[8], ino;
    struct stat st;

    (void) state;
    var_queue_recycle_limit = 4;
    ino = put_file("active/RETIRE1", "old message");
    assert_int_equal(mail_queue_retire(MAIL_QUEUE_ACTIVE, "RETIRE1"), 0);
    assert_int_equal(lstat("active/RETIRE1", &st), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(recycle_entries(names, inos, 8), 1);
    assert_true(slot_number(names[0], 4) >= 0);
    assert_true(inos[0] == ino); /* the same file, renamed, not a copy */
    /* A file already gone is reported as such and changes nothing. */
    assert_int_equal(mail_queue_retire(MAIL_QUEUE_ACTIVE, "RETIRE1"), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(recycle_entries(names, inos, 8), 1);
    var_queue_recycle_limit = 0;
}

static void test_mail_queue_retire_fills_every_slot_then_unlinks(void **state)
{
    char names[8][260], id[16];
    ino_t inos[8];
    int seen[4] = {0, 0, 0, 0};
    struct stat st;

    (void) state;
    var_queue_recycle_limit = 4;
    for (int i = 0; i < 4; i++) {
        snprintf(id, sizeof(id), "FILL%d", i);
        char path[64];

        snprintf(path, sizeof(path), "active/%s", id);
        (void) put_file(path, "x");
        assert_int_equal(mail_queue_retire(MAIL_QUEUE_ACTIVE, id), 0);
        assert_int_equal(lstat(path, &st), -1);
    }
    assert_int_equal(recycle_entries(names, inos, 8), 4);
    for (int i = 0; i < 4; i++) {
        long n = slot_number(names[i], 4);

        assert_true(n >= 0);
        seen[n]++;
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(seen[i], 1); /* never two files for one slot: nothing replaced */
    /* All slots taken: the fifth is removed. */
    (void) put_file("active/FILL4", "x");
    assert_int_equal(mail_queue_retire(MAIL_QUEUE_ACTIVE, "FILL4"), 0);
    assert_int_equal(lstat("active/FILL4", &st), -1);
    assert_int_equal(recycle_entries(names, inos, 8), 4);
    var_queue_recycle_limit = 0;
}

static void test_mail_queue_retire_with_taken_slots_unlinks_and_leaves_slots_alone(void **state)
{
    char names[8][260], text[64];
    ino_t inos[8], ino0, ino1;
    struct stat st;

    (void) state;
    var_queue_recycle_limit = 2;
    ino0 = put_file("recycle/0", "slot zero");
    ino1 = put_file("recycle/1", "slot one");
    (void) put_file("active/TAKEN1", "the finished message");
    assert_int_equal(mail_queue_retire(MAIL_QUEUE_ACTIVE, "TAKEN1"), 0);
    assert_int_equal(lstat("active/TAKEN1", &st), -1);
    assert_int_equal(recycle_entries(names, inos, 8), 2);
    assert_int_equal(lstat("recycle/0", &st), 0);
    assert_true(st.st_ino == ino0);
    assert_int_equal(lstat("recycle/1", &st), 0);
    assert_true(st.st_ino == ino1);
    file_text("recycle/0", text, sizeof(text));
    assert_string_equal(text, "slot zero");
    file_text("recycle/1", text, sizeof(text));
    assert_string_equal(text, "slot one");
    var_queue_recycle_limit = 0;
}

static void test_mail_queue_retire_with_recycling_off_unlinks(void **state)
{
    char names[8][260];
    ino_t inos[8];
    struct stat st;

    (void) state;
    var_queue_recycle_limit = 0;
    (void) put_file("active/OFF1", "x");
    assert_int_equal(mail_queue_retire(MAIL_QUEUE_ACTIVE, "OFF1"), 0);
    assert_int_equal(lstat("active/OFF1", &st), -1);
    assert_int_equal(recycle_entries(names, inos, 8), 0);
    /* ...and nothing is claimed either. */
    (void) put_file("recycle/0", "x");
    assert_int_equal(mail_queue_reuse("incoming/.tmp.off"), -1);
    assert_int_equal(lstat("incoming/.tmp.off", &st), -1);
    assert_int_equal(lstat("recycle/0", &st), 0);
}

static void test_mail_queue_retire_without_recycle_dir_unlinks(void **state)
{
    struct stat st;

    (void) state;
    var_queue_recycle_limit = 64;
    assert_int_equal(rmdir(MAIL_QUEUE_RECYCLE), 0);
    (void) put_file("active/NODIR1", "x");
    assert_int_equal(mail_queue_retire(MAIL_QUEUE_ACTIVE, "NODIR1"), 0);
    assert_int_equal(lstat("active/NODIR1", &st), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(lstat(MAIL_QUEUE_RECYCLE, &st), -1); /* not created behind setup's back */
    assert_int_equal(mail_queue_reuse("incoming/.tmp.nodir"), -1);
    assert_int_equal(lstat("incoming/.tmp.nodir", &st), -1);
    var_queue_recycle_limit = 0;
}

static void test_mail_queue_retire_refuses_invalid_ids(void **state)
{
    static const char *const bad[] = {"", ".", "..", "../active/KEEP1", "a/b", ".hidden", "x y"};
    char names[8][260];
    ino_t inos[8];
    struct stat st;

    (void) state;
    var_queue_recycle_limit = 4;
    (void) put_file("active/KEEP1", "x");
    (void) put_file("active/.hidden", "x");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        assert_int_equal(mail_queue_retire(MAIL_QUEUE_ACTIVE, bad[i]), -1);
        assert_int_equal(errno, EINVAL);
    }
    assert_int_equal(lstat("active/KEEP1", &st), 0);
    assert_int_equal(lstat("active/.hidden", &st), 0);
    assert_int_equal(recycle_entries(names, inos, 8), 0);
    var_queue_recycle_limit = 0;
}

static void test_mail_queue_reuse_claims_a_retired_file(void **state)
{
    char names[8][260], text[64];
    ino_t inos[8], ino;
    struct stat st;
    int fd;

    (void) state;
    var_queue_recycle_limit = 4;
    /* Nothing to take: -1, and nothing appears under the name. */
    assert_int_equal(mail_queue_reuse("incoming/.tmp.a"), -1);
    assert_int_equal(lstat("incoming/.tmp.a", &st), -1);

    ino = put_file("active/CLAIM1", "retired bytes");
    assert_int_equal(mail_queue_retire(MAIL_QUEUE_ACTIVE, "CLAIM1"), 0);
    fd = mail_queue_reuse("incoming/.tmp.a");
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(st.st_ino == ino);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_nlink, 1);
    assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    assert_true((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
    assert_int_equal(lstat("incoming/.tmp.a", &st), 0);
    assert_true(st.st_ino == ino);
    assert_int_equal(recycle_entries(names, inos, 8), 0);
    /* The caller overwrites and truncates; the claim itself changes no byte. */
    file_text("incoming/.tmp.a", text, sizeof(text));
    assert_string_equal(text, "retired bytes");
    assert_int_equal(close(fd), 0);
    /* The slot is empty now: a second claim finds nothing. */
    assert_int_equal(mail_queue_reuse("incoming/.tmp.b"), -1);
    assert_int_equal(lstat("incoming/.tmp.b", &st), -1);
    var_queue_recycle_limit = 0;
}

static void test_mail_queue_reuse_gives_the_claimed_file_fresh_times(void **state)
{
    struct timespec old[2];
    struct stat st;
    time_t now = time(NULL);
    int fd;

    (void) state;
    var_queue_recycle_limit = 1;
    (void) put_file("recycle/0", "retired two hours ago");
    old[0].tv_sec = old[1].tv_sec = now - 7200;
    old[0].tv_nsec = old[1].tv_nsec = 0;
    assert_int_equal(utimensat(AT_FDCWD, "recycle/0", old, AT_SYMLINK_NOFOLLOW), 0);
    fd = mail_queue_reuse("incoming/.tmp.t");
    assert_true(fd >= 0);
    /*
     * Under its temporary name the file must look new: kitesuper -s removes
     * .tmp files whose mtime is an hour old, and a writer may take long to
     * write its first byte.
     */
    assert_int_equal(lstat("incoming/.tmp.t", &st), 0);
    assert_true(st.st_mtime >= now - 5);
    assert_true(st.st_atime >= now - 5);
    assert_int_equal(close(fd), 0);
    var_queue_recycle_limit = 0;
}

static void test_mail_queue_reuse_refuses_a_file_still_open_elsewhere(void **state)
{
    char text[64];
    struct stat st;
    int reader;

    (void) state;
    var_queue_recycle_limit = 1;
    (void) put_file("active/OPEN1", "a reader still has me");
    reader = open("active/OPEN1", O_RDONLY);
    assert_true(reader >= 0);
    assert_int_equal(mail_queue_retire(MAIL_QUEUE_ACTIVE, "OPEN1"), 0);
    /*
     * A process that opened the message before it was retired (a delivery
     * agent qmgr gave up on, mailq, kitecat) must never see another
     * message's bytes through its descriptor: the file is removed instead.
     */
    assert_int_equal(mail_queue_reuse("incoming/.tmp.o"), -1);
    assert_int_equal(lstat("incoming/.tmp.o", &st), -1);
    assert_int_equal(lstat("recycle/0", &st), -1);
    assert_int_equal(fstat(reader, &st), 0);
    assert_int_equal(st.st_nlink, 0);
    assert_int_equal(pread(reader, text, sizeof(text) - 1, 0), (ssize_t) strlen("a reader still has me"));
    text[strlen("a reader still has me")] = 0;
    assert_string_equal(text, "a reader still has me");
    assert_int_equal(close(reader), 0);
    /* Once nobody holds it, a retired file is taken. */
    (void) put_file("active/OPEN2", "x");
    assert_int_equal(mail_queue_retire(MAIL_QUEUE_ACTIVE, "OPEN2"), 0);
    reader = mail_queue_reuse("incoming/.tmp.p");
    assert_true(reader >= 0);
    assert_int_equal(close(reader), 0);
    var_queue_recycle_limit = 0;
}

/* A hostile slot entry: what to plant, and whether something outside must survive. */
typedef enum { PLANT_SYMLINK, PLANT_HARDLINK, PLANT_DIR, PLANT_FULL_DIR, PLANT_FIFO } plant_kind;

static void test_mail_queue_reuse_removes_hostile_slot_entries(void **state)
{
    static const struct {
        const char *name;
        plant_kind kind;
    } rows[] = {
        {"symlink to a file outside", PLANT_SYMLINK},
        {"hard link (two names)", PLANT_HARDLINK},
        {"directory", PLANT_DIR},
        {"directory with a file in it", PLANT_FULL_DIR},
        {"fifo", PLANT_FIFO},
    };
    char outside[160], names[8][260], text[64];
    ino_t inos[8];
    struct stat st;

    (void) state;
    var_queue_recycle_limit = 1;
    snprintf(outside, sizeof(outside), "%s/outside", topdir);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int fd;

        (void) put_file(outside, "precious");
        switch (rows[i].kind) {
        case PLANT_SYMLINK:
            assert_int_equal(symlink(outside, "recycle/0"), 0);
            break;
        case PLANT_HARDLINK:
            assert_int_equal(link(outside, "recycle/0"), 0);
            break;
        case PLANT_DIR:
            assert_int_equal(mkdir("recycle/0", 0700), 0);
            break;
        case PLANT_FULL_DIR:
            assert_int_equal(mkdir("recycle/0", 0700), 0);
            (void) put_file("recycle/0/inner", "x");
            break;
        case PLANT_FIFO:
            assert_int_equal(mkfifo("recycle/0", 0600), 0);
            break;
        }
        fd = mail_queue_reuse("incoming/.tmp.h");
        if (fd >= 0)
            fail_msg("%s: claimed and opened", rows[i].name);
        /* Gone from recycle/, and not left under the temporary name either. */
        if (recycle_entries(names, inos, 8) != 0)
            fail_msg("%s: still in recycle/", rows[i].name);
        if (rows[i].kind != PLANT_FULL_DIR) {
            if (lstat("incoming/.tmp.h", &st) == 0)
                fail_msg("%s: left behind under the temporary name", rows[i].name);
        } else {
            /* A directory that cannot be removed stays (reported), never used: a name no scan reads. */
            assert_int_equal(lstat("incoming/.tmp.h", &st), 0);
            assert_true(S_ISDIR(st.st_mode));
            assert_int_equal(unlink("incoming/.tmp.h/inner"), 0);
            assert_int_equal(rmdir("incoming/.tmp.h"), 0);
        }
        /* The file outside is untouched, with its one name again. */
        assert_int_equal(lstat(outside, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_nlink, 1);
        file_text(outside, text, sizeof(text));
        assert_string_equal(text, "precious");
        assert_int_equal(unlink(outside), 0);
    }
    var_queue_recycle_limit = 0;
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
        cmocka_unit_test_setup_teardown(test_mail_queue_retire_moves_the_file_into_a_recycle_slot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_queue_retire_fills_every_slot_then_unlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_queue_retire_with_taken_slots_unlinks_and_leaves_slots_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mail_queue_retire_with_recycling_off_unlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_queue_retire_without_recycle_dir_unlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_queue_retire_refuses_invalid_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_queue_reuse_claims_a_retired_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_queue_reuse_gives_the_claimed_file_fresh_times, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_queue_reuse_refuses_a_file_still_open_elsewhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_queue_reuse_removes_hostile_slot_entries, setup, teardown),
    };

    msg_stderr(0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
