/*
 * Unit tests for qfile: writer/reader round trips, status slots, every
 * truncation, table-driven corruptions, writer refusals, the
 * fault-injection crash points (each on-disk state absent or complete),
 * and writers that reuse a retired file from recycle/ (old bytes gone,
 * hostile slot entries refused, the same crash points).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mail_queue.h"
#include "mymalloc.h"
#include "params.h"
#include "qfile.h"
#include "vbuf.h"

static char test_dir[256];

/* ---- helpers ---- */

static int setup_dir(void **state)
{
    (void) state;
    snprintf(test_dir, sizeof(test_dir), "/tmp/test_qfile.XXXXXX");
    assert_non_null(mkdtemp(test_dir));
    assert_int_equal(chdir(test_dir), 0);
    assert_int_equal(mkdir("incoming", 0700), 0);
    assert_int_equal(mkdir("hold", 0700), 0);
    return 0;
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        struct stat st;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(path);
        else
            (void) unlink(path);
    }
    closedir(d);
    (void) rmdir(dir);
}

static int teardown_dir(void **state)
{
    (void) state;
    assert_int_equal(chdir("/"), 0);
    remove_tree(test_dir);
    return 0;
}

/* count_entries - directory entries other than . and .. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void read_file(const char *path, vbuf *out)
{
    char buf[4096];
    int fd = open(path, O_RDONLY);
    ssize_t n;

    assert_true(fd >= 0);
    vbuf_reset(out);
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        assert_int_equal(vbuf_append(out, buf, (size_t) n), 0);
    close(fd);
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t) len);
    close(fd);
}

/* make_message - a typical file; returns its path in path */
static void make_message(vbuf *path, const char *content, size_t content_len)
{
    vbuf err;
    qfile_writer *w;

    vbuf_init(&err, 0);
    w = qfile_create("incoming", &err);
    assert_non_null(w);
    assert_int_equal(qfile_put_attr(w, "arrival", "1700000000.123456"), 0);
    assert_int_equal(qfile_put_attr(w, "sender", "alice@example.com"), 0);
    assert_int_equal(qfile_put_attr(w, "body", "8bitmime"), 0);
    assert_int_equal(qfile_put_rcpt(w, "bob@example.net", "rfc822;Bob@example.net", "bob-alias@example.net",
                                    QF_NOTIFY_SUCCESS | QF_NOTIFY_FAILURE),
                     0);
    assert_int_equal(qfile_put_rcpt(w, "carol@example.org", NULL, NULL, 0), 0);
    assert_int_equal(qfile_put_content(w, content, content_len), 0);
    assert_int_equal(qfile_put_rcpt(w, "late@example.com", NULL, "late@example.com", QF_NOTIFY_NEVER), 0);
    vbuf_init(path, 0);
    vbuf_printf(path, "incoming/%s", qfile_writer_id(w));
    assert_int_equal(qfile_finish(w, &err), 0);
    vbuf_release(&err);
}

/* ---- round trips ---- */

static void test_qfile_round_trip_keeps_envelope_and_recipients(void **state)
{
    const char *msg = "Subject: hi\r\n\r\nbody\r\n";
    vbuf path, err;
    qfile *q;

    (void) state;
    make_message(&path, msg, strlen(msg));
    vbuf_init(&err, 0);
    q = qfile_open(path.data, 0, &err);
    assert_non_null(q);
    assert_string_equal(qfile_attr(q, "sender"), "alice@example.com");
    assert_string_equal(qfile_attr(q, "arrival"), "1700000000.123456");
    assert_string_equal(qfile_attr(q, "body"), "8bitmime");
    assert_null(qfile_attr(q, "envid"));
    assert_int_equal(q->size, (long long) strlen(msg));
    assert_int_equal(q->warn_time, 0);
    assert_int_equal(q->nrcpt, 3);
    assert_string_equal(q->rcpts[0].address, "bob@example.net");
    assert_string_equal(q->rcpts[0].orcpt, "rfc822;Bob@example.net");
    assert_string_equal(q->rcpts[0].orig, "bob-alias@example.net");
    assert_int_equal(q->rcpts[0].notify, QF_NOTIFY_SUCCESS | QF_NOTIFY_FAILURE);
    assert_false(q->rcpts[0].done);
    assert_string_equal(q->rcpts[1].address, "carol@example.org");
    assert_null(q->rcpts[1].orcpt);
    assert_null(q->rcpts[1].orig);
    assert_int_equal(q->rcpts[1].notify, 0);
    assert_string_equal(q->rcpts[2].address, "late@example.com");
    assert_null(q->rcpts[2].orig); /* same as address: not stored */
    assert_int_equal(q->rcpts[2].notify, QF_NOTIFY_NEVER);
    assert_string_equal(q->id, path.data + strlen("incoming/"));
    assert_true(queue_id_valid(q->id));
    qfile_close(q);
    vbuf_release(&path);
    vbuf_release(&err);
}

static void test_qfile_round_trip_large_content_in_chunks(void **state)
{
    size_t len = 300 * 1024 + 17;
    char *msg = xmalloc(len);
    vbuf path, err, got;
    qfile_content it;
    const char *data;
    ssize_t n;
    qfile *q;
    int chunks = 0;

    (void) state;
    for (size_t i = 0; i < len; i++)
        msg[i] = (char) ('a' + i % 26);
    make_message(&path, msg, len);
    vbuf_init(&err, 0);
    vbuf_init(&got, 0);
    q = qfile_open(path.data, 0, &err);
    assert_non_null(q);
    assert_int_equal(q->size, (long long) len);
    qfile_content_begin(q, &it);
    while ((n = qfile_content_next(&it, &data)) > 0) {
        assert_true(n <= QFILE_MAX_RECORD);
        assert_int_equal(vbuf_append(&got, data, (size_t) n), 0);
        chunks++;
    }
    assert_int_equal(n, 0);
    assert_int_equal(qfile_content_next(&it, &data), 0);
    qfile_content_end(&it);
    assert_true(chunks > 1);
    assert_int_equal(got.len, len);
    assert_memory_equal(got.data, msg, len);
    qfile_close(q);
    xfree(msg);
    vbuf_release(&path);
    vbuf_release(&err);
    vbuf_release(&got);
}

static void test_qfile_empty_content_and_no_recipients_is_valid(void **state)
{
    vbuf err, path;
    qfile_writer *w;
    qfile_content it;
    const char *data;
    qfile *q;

    (void) state;
    vbuf_init(&err, 0);
    vbuf_init(&path, 0);
    w = qfile_create("incoming", &err);
    assert_non_null(w);
    vbuf_printf(&path, "incoming/%s", qfile_writer_id(w));
    assert_int_equal(qfile_finish(w, &err), 0);
    q = qfile_open(path.data, 0, &err);
    assert_non_null(q);
    assert_int_equal(q->nrcpt, 0);
    assert_int_equal(q->size, 0);
    qfile_content_begin(q, &it);
    assert_int_equal(qfile_content_next(&it, &data), 0);
    qfile_content_end(&it);
    qfile_close(q);
    vbuf_release(&err);
    vbuf_release(&path);
}

static void test_qfile_finish_renames_only_complete_file(void **state)
{
    vbuf err, path;
    qfile_writer *w;
    struct stat st;

    (void) state;
    vbuf_init(&err, 0);
    vbuf_init(&path, 0);
    w = qfile_create("incoming", &err);
    assert_non_null(w);
    vbuf_printf(&path, "incoming/%s", qfile_writer_id(w));
    assert_int_equal(qfile_put_attr(w, "sender", ""), 0);
    assert_int_equal(qfile_put_rcpt(w, "x@y", NULL, NULL, 0), 0);
    assert_int_equal(qfile_put_content(w, "a\r\n", 3), 0);
    /* Before finish: only a temporary file that is no queue ID. */
    assert_int_equal(stat(path.data, &st), -1);
    assert_int_equal(count_entries("incoming"), 1);
    assert_int_equal(qfile_finish(w, &err), 0);
    assert_int_equal(stat(path.data, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(count_entries("incoming"), 1);
    vbuf_release(&err);
    vbuf_release(&path);
}

static void test_qfile_abort_leaves_nothing(void **state)
{
    vbuf err;
    qfile_writer *w;

    (void) state;
    vbuf_init(&err, 0);
    w = qfile_create("incoming", &err);
    assert_non_null(w);
    assert_int_equal(qfile_put_attr(w, "sender", "a@b"), 0);
    assert_int_equal(qfile_put_content(w, "x", 1), 0);
    qfile_abort(w);
    assert_int_equal(count_entries("incoming"), 0);
    vbuf_release(&err);
}

static void test_qfile_set_queue_finishes_into_hold(void **state)
{
    vbuf err, path;
    qfile_writer *w;
    struct stat st;

    (void) state;
    vbuf_init(&err, 0);
    vbuf_init(&path, 0);
    w = qfile_create("incoming", &err);
    assert_non_null(w);
    qfile_writer_set_queue(w, "hold");
    vbuf_printf(&path, "hold/%s", qfile_writer_id(w));
    assert_int_equal(qfile_finish(w, &err), 0);
    assert_int_equal(stat(path.data, &st), 0);
    assert_int_equal(count_entries("incoming"), 0);
    vbuf_release(&err);
    vbuf_release(&path);
}

static void test_qfile_create_in_missing_queue_fails_with_reason(void **state)
{
    vbuf err;

    (void) state;
    vbuf_init(&err, 0);
    assert_null(qfile_create("nonexistent", &err));
    assert_non_null(strstr(err.data, "nonexistent"));
    vbuf_release(&err);
}

static void test_qfile_ids_are_unique(void **state)
{
    vbuf err;
    char ids[50][QUEUE_ID_SIZE];

    (void) state;
    vbuf_init(&err, 0);
    for (int i = 0; i < 50; i++) {
        qfile_writer *w = qfile_create("incoming", &err);

        assert_non_null(w);
        snprintf(ids[i], sizeof(ids[i]), "%s", qfile_writer_id(w));
        assert_int_equal(qfile_finish(w, &err), 0);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    }
    assert_int_equal(count_entries("incoming"), 50);
    vbuf_release(&err);
}

static void test_qfile_finish_into_hashed_queue_creates_the_level(void **state)
{
    char *saved_names = var_hash_queue_names;
    long saved_depth = var_hash_queue_depth;
    vbuf err, path;
    qfile_writer *w;
    struct stat st;
    qfile *q;

    (void) state;
    var_hash_queue_names = "incoming";
    var_hash_queue_depth = 1;
    vbuf_init(&err, 0);
    vbuf_init(&path, 0);
    w = qfile_create("incoming", &err);
    assert_non_null(w);
    mail_queue_path(&path, "incoming", qfile_writer_id(w));
    assert_non_null(strchr(path.data + strlen("incoming/"), '/'));
    assert_int_equal(qfile_finish(w, &err), 0);
    assert_int_equal(stat(path.data, &st), 0);
    q = qfile_open(path.data, 0, &err);
    assert_non_null(q);
    qfile_close(q);
    var_hash_queue_names = saved_names;
    var_hash_queue_depth = saved_depth;
    vbuf_release(&err);
    vbuf_release(&path);
}

/* ---- slots ---- */

static void test_qfile_mark_done_persists(void **state)
{
    vbuf path, err;
    qfile *q;

    (void) state;
    make_message(&path, "x\r\n", 3);
    vbuf_init(&err, 0);
    q = qfile_open(path.data, QFILE_RDWR, &err);
    assert_non_null(q);
    assert_int_equal(qfile_mark_done(q, 1, 1), 0);
    assert_int_equal(qfile_mark_done(q, 2, 0), 0);
    assert_int_equal(qfile_mark_done(q, 3, 0), -1);
    assert_int_equal(qfile_set_warn_time(q, 1700003600), 0);
    assert_int_equal(qfile_sync(q), 0);
    qfile_close(q);
    q = qfile_open(path.data, 0, &err);
    assert_non_null(q);
    assert_false(q->rcpts[0].done);
    assert_true(q->rcpts[1].done);
    assert_true(q->rcpts[2].done);
    assert_int_equal(q->warn_time, 1700003600);
    qfile_close(q);
    vbuf_release(&path);
    vbuf_release(&err);
}

static void test_qfile_mark_done_needs_rdwr(void **state)
{
    vbuf path, err;
    qfile *q;

    (void) state;
    make_message(&path, "x\r\n", 3);
    vbuf_init(&err, 0);
    q = qfile_open(path.data, 0, &err);
    assert_non_null(q);
    assert_int_equal(qfile_mark_done(q, 0, 1), -1);
    qfile_close(q);
    vbuf_release(&path);
    vbuf_release(&err);
}

static void test_qfile_writer_warn_time_is_stored(void **state)
{
    vbuf err, path;
    qfile_writer *w;
    qfile *q;

    (void) state;
    vbuf_init(&err, 0);
    vbuf_init(&path, 0);
    w = qfile_create("incoming", &err);
    assert_non_null(w);
    assert_int_equal(qfile_put_warn_time(w, 1234567890123LL), 0);
    assert_int_equal(qfile_put_rcpt(w, "x@y", NULL, NULL, 0), 0);
    vbuf_printf(&path, "incoming/%s", qfile_writer_id(w));
    assert_int_equal(qfile_finish(w, &err), 0);
    q = qfile_open(path.data, 0, &err);
    assert_non_null(q);
    assert_int_equal(q->warn_time, 1234567890123LL);
    qfile_close(q);
    vbuf_release(&err);
    vbuf_release(&path);
}

/* ---- writer refusals ---- */

static void test_qfile_writer_refuses_bad_input(void **state)
{
    vbuf err;
    qfile_writer *w;

    (void) state;
    vbuf_init(&err, 0);
    w = qfile_create("incoming", &err);
    assert_non_null(w);
    assert_int_equal(qfile_put_attr(w, "Bad-Name", "x"), -1);
    assert_int_equal(qfile_put_attr(w, "", "x"), -1);
    assert_int_equal(qfile_put_attr(w, "ok", "line\r\nbreak"), -1);
    assert_int_equal(qfile_put_rcpt(w, "", NULL, NULL, 0), -1);
    assert_int_equal(qfile_put_rcpt(w, "a\nb@c", NULL, NULL, 0), -1);
    assert_int_equal(qfile_put_rcpt(w, "a@b", "", NULL, 0), -1);
    assert_int_equal(qfile_put_rcpt(w, "a@b", NULL, NULL, QF_NOTIFY_NEVER | QF_NOTIFY_SUCCESS), -1);
    assert_int_equal(qfile_put_rcpt(w, "a@b", NULL, NULL, 16), -1);
    assert_int_equal(qfile_put_warn_time(w, -1), -1);
    assert_int_equal(qfile_put_content(w, "x", 1), 0);
    assert_int_equal(qfile_put_attr(w, "late", "x"), -1); /* attributes precede content */
    assert_int_equal(qfile_put_rcpt(w, "a@b", NULL, NULL, 0), 0);
    assert_int_equal(qfile_put_content(w, "y", 1), -1); /* content is over */
    /* Refusals are not write failures: the file still finishes. */
    assert_int_equal(qfile_finish(w, &err), 0);
    vbuf_release(&err);
}

/* ---- hostile files ---- */

static void test_qfile_every_truncation_is_refused(void **state)
{
    vbuf path, err, data;
    qfile *q;

    (void) state;
    make_message(&path, "Subject: t\r\n\r\nhello\r\n", 21);
    vbuf_init(&err, 0);
    vbuf_init(&data, 0);
    read_file(path.data, &data);
    for (size_t len = 0; len < data.len; len++) {
        write_file("incoming/trunc", data.data, len);
        vbuf_reset(&err);
        q = qfile_open("incoming/trunc", 0, &err);
        if (q != NULL)
            fail_msg("truncation to %zu of %zu bytes accepted", len, data.len);
        assert_true(err.len > 0);
    }
    /* The full file is fine under any name. */
    write_file("incoming/trunc", data.data, data.len);
    q = qfile_open("incoming/trunc", 0, &err);
    assert_non_null(q);
    assert_string_equal(q->id, "");
    qfile_close(q);
    vbuf_release(&path);
    vbuf_release(&err);
    vbuf_release(&data);
}

/* A builder for hand-made files. */
static void rec(vbuf *b, int type, const char *data, size_t len)
{
    unsigned char h[5] = {(unsigned char) type, (unsigned char) (len >> 24), (unsigned char) (len >> 16),
                          (unsigned char) (len >> 8), (unsigned char) len};

    vbuf_append(b, h, 5);
    vbuf_append(b, data, len);
}

static void recs(vbuf *b, int type, const char *text)
{
    rec(b, type, text, strlen(text));
}

#define ZERO20 "00000000000000000000"

/* Each row is a program of records: "T:data" items separated by '|'. */
typedef struct corrupt_case {
    const char *name;
    const char *records;
    const char *expect; /* substring of the error */
} corrupt_case;

static const corrupt_case corrupt_cases[] = {
    {"valid_reference", "V:KITE1|Z:00000000000000000003|W:" ZERO20 "|A:sender=a@b|R:-x@y|M:|C:abc|E:", NULL},
    {"wrong_version", "V:KITE9|Z:" ZERO20 "|W:" ZERO20 "|M:|E:", "unsupported version"},
    {"version_not_first", "Z:" ZERO20 "|V:KITE1|W:" ZERO20 "|M:|E:", "out of place"},
    {"missing_warn", "V:KITE1|Z:" ZERO20 "|M:|E:", "out of place"},
    {"size_slot_short", "V:KITE1|Z:123|W:" ZERO20 "|M:|E:", "bad size slot"},
    {"size_slot_nondigit", "V:KITE1|Z:0000000000000000000x|W:" ZERO20 "|M:|E:", "bad size slot"},
    {"warn_slot_nondigit", "V:KITE1|Z:" ZERO20 "|W:-0000000000000000001|M:|E:", "bad warn slot"},
    {"size_mismatch", "V:KITE1|Z:00000000000000000009|W:" ZERO20 "|M:|C:abc|E:", "size slot says 9"},
    {"unknown_type", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|X:zz|M:|E:", "unknown record type"},
    {"status_byte_bad", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|R:Xx@y|M:|E:", "malformed recipient"},
    {"recipient_empty", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|R:-|M:|E:", "malformed recipient"},
    {"recipient_with_newline", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|R:-x\n@y|M:|E:", "malformed recipient"},
    {"orcpt_without_recipient", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|O:rfc822;a@b|M:|E:", "content marker out of place"},
    {"orcpt_at_end", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|M:|O:rfc822;a@b|E:", "end marker out of place"},
    {"group_order_wrong", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|N:2|O:rfc822;a@b|R:-a@b|M:|E:", "out of place"},
    {"notify_never_combined", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|N:3|R:-a@b|M:|E:", "bad notify"},
    {"notify_not_number", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|N:x|R:-a@b|M:|E:", "bad notify"},
    {"notify_too_big", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|N:16|R:-a@b|M:|E:", "bad notify"},
    {"attr_without_equals", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|A:sender|M:|E:", "malformed attribute"},
    {"attr_bad_name", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|A:Sen der=x|M:|E:", "malformed attribute"},
    {"attr_duplicate", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|A:sender=a|A:sender=b|M:|E:", "duplicate attribute"},
    {"attr_after_content", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|M:|A:sender=a|E:", "attribute record out of place"},
    {"content_before_marker", "V:KITE1|Z:00000000000000000001|W:" ZERO20 "|C:a|M:|E:", "content record out of place"},
    {"content_after_trailer",
     "V:KITE1|Z:00000000000000000002|W:" ZERO20 "|M:|C:a|R:-a@b|C:b|E:", "content record out of place"},
    {"empty_content_record", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|M:|C:|E:", "empty content record"},
    {"two_markers", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|M:|M:|E:", "content marker out of place"},
    {"marker_with_data", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|M:x|E:", "content marker out of place"},
    {"end_before_marker", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|E:", "end marker out of place"},
    {"end_with_data", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|M:|E:x", "end marker out of place"},
    {"data_after_end", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|M:|E:|E:", "data after the end marker"},
    {"no_end_marker", "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|M:", "missing end marker"},
    {"empty_file", "", "missing end marker"},
};

/* build_case - turn a record program into file bytes */
static void build_case(vbuf *b, const char *program)
{
    char *copy = xstrdup(program);
    char *cursor = copy, *item;

    vbuf_reset(b);
    while ((item = strsep(&cursor, "|")) != NULL) {
        if (*item == 0)
            continue;
        assert_true(item[1] == ':');
        recs(b, item[0], item + 2);
    }
    xfree(copy);
}

static void test_qfile_corruptions_are_refused_with_reason(void **state)
{
    vbuf b, err;

    (void) state;
    vbuf_init(&b, 0);
    vbuf_init(&err, 0);
    for (size_t i = 0; i < sizeof(corrupt_cases) / sizeof(corrupt_cases[0]); i++) {
        const corrupt_case *c = corrupt_cases + i;
        qfile *q;

        build_case(&b, c->records);
        write_file("incoming/case", b.data, b.len);
        vbuf_reset(&err);
        q = qfile_open("incoming/case", 0, &err);
        if (c->expect == NULL) {
            if (q == NULL)
                fail_msg("%s: refused: %s", c->name, err.data);
            qfile_close(q);
            continue;
        }
        if (q != NULL)
            fail_msg("%s: accepted", c->name);
        if (strstr(err.data, c->expect) == NULL)
            fail_msg("%s: error \"%s\" lacks \"%s\"", c->name, err.data, c->expect);
    }
    vbuf_release(&b);
    vbuf_release(&err);
}

static void test_qfile_oversized_and_lying_lengths_are_refused(void **state)
{
    vbuf b, err;
    qfile *q;
    unsigned char hdr[5] = {'A', 0x00, 0x10, 0x00, 0x01}; /* 1 MiB + 1 */
    unsigned char huge[5] = {'C', 0xff, 0xff, 0xff, 0xff};

    (void) state;
    vbuf_init(&b, 0);
    vbuf_init(&err, 0);
    build_case(&b, "V:KITE1|Z:" ZERO20 "|W:" ZERO20);
    vbuf_append(&b, hdr, 5);
    write_file("incoming/big", b.data, b.len);
    q = qfile_open("incoming/big", 0, &err);
    assert_null(q);
    assert_non_null(strstr(err.data, "exceeds"));

    build_case(&b, "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|M:");
    vbuf_append(&b, huge, 5);
    write_file("incoming/big", b.data, b.len);
    vbuf_reset(&err);
    assert_null(qfile_open("incoming/big", 0, &err));

    /* A length that claims more than the file holds. */
    build_case(&b, "V:KITE1|Z:" ZERO20 "|W:" ZERO20 "|M:");
    recs(&b, 'C', "abc");
    b.data[b.len - 4] = 9;
    write_file("incoming/big", b.data, b.len);
    vbuf_reset(&err);
    assert_null(qfile_open("incoming/big", 0, &err));
    assert_non_null(strstr(err.data, "truncated record"));
    vbuf_release(&b);
    vbuf_release(&err);
}

static void test_qfile_nul_in_recipient_is_refused(void **state)
{
    vbuf b, err;

    (void) state;
    vbuf_init(&b, 0);
    vbuf_init(&err, 0);
    build_case(&b, "V:KITE1|Z:" ZERO20 "|W:" ZERO20);
    rec(&b, 'R', "-a\0b@c", 6);
    recs(&b, 'M', "");
    recs(&b, 'E', "");
    write_file("incoming/nul", b.data, b.len);
    assert_null(qfile_open("incoming/nul", 0, &err));
    assert_non_null(strstr(err.data, "malformed recipient"));
    vbuf_release(&b);
    vbuf_release(&err);
}

static void test_qfile_open_refuses_symlink_and_directory(void **state)
{
    vbuf path, err;

    (void) state;
    make_message(&path, "x\r\n", 3);
    vbuf_init(&err, 0);
    assert_int_equal(symlink(path.data + strlen("incoming/"), "incoming/link"), 0);
    assert_null(qfile_open("incoming/link", 0, &err));
    vbuf_reset(&err);
    assert_null(qfile_open("incoming", 0, &err));
    vbuf_release(&path);
    vbuf_release(&err);
}

static void test_qfile_random_byte_flips_never_crash(void **state)
{
    vbuf path, err, data;
    unsigned seed = 12345;

    (void) state;
    make_message(&path, "Subject: t\r\n\r\nhello world\r\n", 27);
    vbuf_init(&err, 0);
    vbuf_init(&data, 0);
    read_file(path.data, &data);
    for (int round = 0; round < 2000; round++) {
        char *copy = xmemdup(data.data, data.len);
        int flips = 1 + (int) (rand_r(&seed) % 4);
        qfile *q;

        for (int f = 0; f < flips; f++)
            copy[rand_r(&seed) % data.len] = (char) rand_r(&seed);
        write_file("incoming/flip", copy, data.len);
        vbuf_reset(&err);
        q = qfile_open("incoming/flip", 0, &err);
        if (q != NULL) {
            qfile_content it;
            const char *chunk;

            qfile_content_begin(q, &it);
            while (qfile_content_next(&it, &chunk) > 0)
                ;
            qfile_content_end(&it);
            qfile_close(q);
        } else {
            assert_true(err.len > 0);
        }
        xfree(copy);
    }
    vbuf_release(&path);
    vbuf_release(&err);
    vbuf_release(&data);
}

/* ---- crash points ---- */

/* write_in_child_as - write a message with KITE_FAULT_WRITES=n (reuse: qfile_create_reuse); 1 if it aborted */
static int write_in_child_as(long n, int reuse)
{
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        char num[32];
        vbuf err;
        qfile_writer *w;
        char big[5000];

        snprintf(num, sizeof(num), "%ld", n);
        setenv("KITE_FAULT_WRITES", num, 1);
        memset(big, 'z', sizeof(big));
        vbuf_init(&err, 0);
        w = reuse ? qfile_create_reuse("incoming", &err) : qfile_create("incoming", &err);
        if (w == NULL)
            _exit(2);
        qfile_put_attr(w, "sender", "a@b");
        qfile_put_attr(w, "arrival", "1.0");
        qfile_put_rcpt(w, "r1@x", "rfc822;r1@x", NULL, QF_NOTIFY_DELAY);
        qfile_put_rcpt(w, "r2@x", NULL, "orig@x", 0);
        qfile_put_content(w, "Subject: x\r\n\r\n", 14);
        qfile_put_content(w, big, sizeof(big));
        qfile_put_rcpt(w, "r3@x", NULL, NULL, 0);
        qfile_put_warn_time(w, 99);
        _exit(qfile_finish(w, &err) == 0 ? 0 : 3);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) {
        assert_int_equal(WTERMSIG(status), SIGABRT);
        return 1;
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    return 0;
}

/* write_in_child - write_in_child_as for a fresh file */
static int write_in_child(long n)
{
    return write_in_child_as(n, 0);
}

static void test_qfile_every_crash_point_leaves_absent_or_complete(void **state)
{
    int aborted = 0;
    long n;

    (void) state;
    for (n = 0; n < 200; n++) {
        DIR *d;
        struct dirent *e;
        int complete = 0, partial = 0;

        remove_tree("incoming");
        assert_int_equal(mkdir("incoming", 0700), 0);
        if (!write_in_child(n)) {
            /* Finished: exactly one complete file with all recipients. */
            vbuf err;
            qfile *q;
            char path[512];

            d = opendir("incoming");
            while ((e = readdir(d)) != NULL)
                if (queue_id_valid(e->d_name))
                    snprintf(path, sizeof(path), "incoming/%s", e->d_name), complete++;
            closedir(d);
            assert_int_equal(complete, 1);
            vbuf_init(&err, 0);
            q = qfile_open(path, 0, &err);
            assert_non_null(q);
            assert_int_equal(q->nrcpt, 3);
            assert_int_equal(q->size, 5014);
            assert_int_equal(q->warn_time, 99);
            qfile_close(q);
            vbuf_release(&err);
            break;
        }
        aborted++;
        d = opendir("incoming");
        assert_non_null(d);
        while ((e = readdir(d)) != NULL) {
            char path[512];
            vbuf err;
            qfile *q;

            if (e->d_name[0] == '.' && (e->d_name[1] == 0 || strcmp(e->d_name, "..") == 0))
                continue;
            if (!queue_id_valid(e->d_name)) {
                partial++; /* a temporary name: not in the queue */
                continue;
            }
            /* Visible under its ID: must be complete. */
            snprintf(path, sizeof(path), "incoming/%s", e->d_name);
            vbuf_init(&err, 0);
            q = qfile_open(path, 0, &err);
            if (q == NULL)
                fail_msg("crash point %ld: incomplete file visible: %s", n, err.data);
            assert_int_equal(q->nrcpt, 3);
            qfile_close(q);
            vbuf_release(&err);
            complete++;
        }
        closedir(d);
        assert_true(complete + partial <= 1);
    }
    assert_true(n < 200);
    /* Every record piece is its own write: many distinct crash points. */
    assert_true(aborted > 20);
}

/* ---- reuse of retired files ---- */

#define OLD_MARKER "OLD-RETIRED-BYTES:"
#define SHORT_CONTENT "Subject: s\r\n\r\nshort\r\n"
#define SHORT_LEN (sizeof(SHORT_CONTENT) - 1)

/* recycle_on - recycle/ with a limit of slots (all claims try every slot when limit <= 4) */
static void recycle_on(long limit)
{
    struct stat st;

    if (lstat("recycle", &st) < 0)
        assert_int_equal(mkdir("recycle", 0700), 0);
    var_queue_recycle_limit = limit;
}

/* plant_marker_file - a long file full of the marker at path; returns its inode */
static ino_t plant_marker_file(const char *path, size_t len)
{
    vbuf b;
    struct stat st;

    vbuf_init(&b, 0);
    while (b.len < len)
        assert_int_equal(vbuf_append(&b, OLD_MARKER, strlen(OLD_MARKER)), 0);
    write_file(path, b.data, b.len);
    vbuf_release(&b);
    assert_int_equal(lstat(path, &st), 0);
    return st.st_ino;
}

/* has_marker - does the file hold any piece of the old bytes */
static int has_marker(const char *path)
{
    vbuf data;
    int found;

    vbuf_init(&data, 0);
    read_file(path, &data);
    found = memmem(data.data, data.len, OLD_MARKER, strlen(OLD_MARKER)) != NULL ||
            memmem(data.data, data.len, "RETIRED", 7) != NULL;
    vbuf_release(&data);
    return found;
}

/* write_short - a small message through the given writer; its final path */
static void write_short(qfile_writer *w, vbuf *path)
{
    vbuf err;

    vbuf_init(&err, 0);
    assert_non_null(w);
    assert_int_equal(qfile_put_attr(w, "arrival", "1700000000.5"), 0);
    assert_int_equal(qfile_put_attr(w, "sender", "short@example.com"), 0);
    assert_int_equal(qfile_put_rcpt(w, "r@example.net", NULL, NULL, 0), 0);
    assert_int_equal(qfile_put_content(w, SHORT_CONTENT, SHORT_LEN), 0);
    vbuf_init(path, 0);
    vbuf_printf(path, "incoming/%s", qfile_writer_id(w));
    assert_int_equal(qfile_finish(w, &err), 0);
    vbuf_release(&err);
}

static void test_qfile_create_reuse_overwrites_and_truncates_a_longer_retired_file(void **state)
{
    vbuf err, path, fresh_path, got, want;
    qfile_content it;
    const char *data;
    struct stat st, fresh_st;
    ino_t old_ino;
    ssize_t n;
    qfile *q;

    (void) state;
    recycle_on(1);
    old_ino = plant_marker_file("recycle/0", 200 * 1024);
    vbuf_init(&err, 0);
    write_short(qfile_create_reuse("incoming", &err), &path);
    /* The retired file itself, under the new ID. */
    assert_int_equal(lstat(path.data, &st), 0);
    assert_true(st.st_ino == old_ino);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(count_entries("recycle"), 0);
    assert_int_equal(count_entries("incoming"), 1);
    /* Exactly the bytes a fresh file of the same message has: nothing old follows. */
    write_short(qfile_create("incoming", &err), &fresh_path);
    assert_int_equal(lstat(fresh_path.data, &fresh_st), 0);
    assert_true(fresh_st.st_ino != old_ino);
    assert_int_equal(count_entries("incoming"), 2);
    vbuf_init(&got, 0);
    vbuf_init(&want, 0);
    read_file(path.data, &got);
    read_file(fresh_path.data, &want);
    assert_int_equal(st.st_size, (off_t) got.len);
    assert_int_equal(st.st_size, fresh_st.st_size);
    assert_false(has_marker(path.data));
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len);
    /* The strict reader takes it, content and all. */
    q = qfile_open(path.data, 0, &err);
    if (q == NULL)
        fail_msg("reused file refused: %s", err.data);
    assert_string_equal(qfile_attr(q, "sender"), "short@example.com");
    assert_int_equal(q->nrcpt, 1);
    assert_int_equal(q->size, (long long) SHORT_LEN);
    vbuf_reset(&got);
    qfile_content_begin(q, &it);
    while ((n = qfile_content_next(&it, &data)) > 0)
        assert_int_equal(vbuf_append(&got, data, (size_t) n), 0);
    qfile_content_end(&it);
    assert_int_equal(n, 0);
    assert_int_equal(got.len, SHORT_LEN);
    assert_memory_equal(got.data, SHORT_CONTENT, SHORT_LEN);
    qfile_close(q);
    var_queue_recycle_limit = 0;
    vbuf_release(&err);
    vbuf_release(&path);
    vbuf_release(&fresh_path);
    vbuf_release(&got);
    vbuf_release(&want);
}

static void test_qfile_create_reuse_takes_what_qmgr_retired(void **state)
{
    vbuf path, err, active;
    struct stat st;
    qfile *q;

    (void) state;
    recycle_on(4);
    assert_int_equal(mkdir("active", 0700), 0);
    /* A finished message, retired the way qmgr does it. */
    make_message(&path, "Subject: long\r\n\r\n" OLD_MARKER OLD_MARKER OLD_MARKER "\r\n", 17 + 3 * 18 + 2);
    assert_int_equal(lstat(path.data, &st), 0);
    assert_int_equal(mail_queue_move(path.data + strlen("incoming/"), "incoming", "active"), 0);
    assert_int_equal(mail_queue_retire("active", path.data + strlen("incoming/")), 0);
    assert_int_equal(count_entries("active"), 0);
    assert_int_equal(count_entries("recycle"), 1);
    vbuf_release(&path);
    vbuf_init(&err, 0);
    write_short(qfile_create_reuse("incoming", &err), &active);
    {
        struct stat now;

        assert_int_equal(lstat(active.data, &now), 0);
        assert_true(now.st_ino == st.st_ino);
        assert_true(now.st_size < st.st_size);
    }
    assert_false(has_marker(active.data));
    q = qfile_open(active.data, 0, &err);
    assert_non_null(q);
    assert_int_equal(q->nrcpt, 1); /* none of the old message's three */
    assert_string_equal(q->rcpts[0].address, "r@example.net");
    qfile_close(q);
    /* Nothing left to reuse: the next writer makes a new file. */
    vbuf_release(&active);
    write_short(qfile_create_reuse("incoming", &err), &active);
    assert_int_equal(lstat(active.data, &st), 0);
    assert_int_equal(count_entries("incoming"), 2);
    var_queue_recycle_limit = 0;
    vbuf_release(&err);
    vbuf_release(&active);
}

static void test_qfile_create_reuse_resets_the_mode(void **state)
{
    vbuf path, err;
    struct stat st;

    (void) state;
    recycle_on(1);
    (void) plant_marker_file("recycle/0", 100);
    assert_int_equal(chmod("recycle/0", 0644), 0);
    vbuf_init(&err, 0);
    write_short(qfile_create_reuse("incoming", &err), &path);
    assert_int_equal(lstat(path.data, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    var_queue_recycle_limit = 0;
    vbuf_release(&err);
    vbuf_release(&path);
}

typedef enum { HOSTILE_SYMLINK, HOSTILE_HARDLINK, HOSTILE_DIR, HOSTILE_FIFO } hostile_kind;

static void test_qfile_create_reuse_refuses_hostile_slots_and_writes_a_fresh_file(void **state)
{
    static const struct {
        const char *name;
        hostile_kind kind;
    } rows[] = {
        {"symlink to a file outside the queue", HOSTILE_SYMLINK},
        {"hard link to a file outside the queue", HOSTILE_HARDLINK},
        {"directory", HOSTILE_DIR},
        {"fifo", HOSTILE_FIFO},
    };
    char outside[512];
    vbuf err, path, before, after;

    (void) state;
    recycle_on(1);
    snprintf(outside, sizeof(outside), "%s/outside", test_dir);
    vbuf_init(&err, 0);
    vbuf_init(&before, 0);
    vbuf_init(&after, 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct stat st, out_st;
        qfile *q;

        remove_tree("incoming");
        assert_int_equal(mkdir("incoming", 0700), 0);
        (void) plant_marker_file(outside, 4096);
        read_file(outside, &before);
        assert_int_equal(lstat(outside, &out_st), 0);
        switch (rows[i].kind) {
        case HOSTILE_SYMLINK:
            assert_int_equal(symlink(outside, "recycle/0"), 0);
            break;
        case HOSTILE_HARDLINK:
            assert_int_equal(link(outside, "recycle/0"), 0);
            break;
        case HOSTILE_DIR:
            assert_int_equal(mkdir("recycle/0", 0700), 0);
            break;
        case HOSTILE_FIFO:
            assert_int_equal(mkfifo("recycle/0", 0600), 0);
            break;
        }
        write_short(qfile_create_reuse("incoming", &err), &path);
        /* A fresh file, complete; the entry is gone and nothing else is in incoming/. */
        assert_int_equal(lstat(path.data, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        if (st.st_ino == out_st.st_ino)
            fail_msg("%s: the outside file was used", rows[i].name);
        q = qfile_open(path.data, 0, &err);
        if (q == NULL)
            fail_msg("%s: %s", rows[i].name, err.data);
        qfile_close(q);
        if (count_entries("recycle") != 0)
            fail_msg("%s: still in recycle/", rows[i].name);
        if (count_entries("incoming") != 1)
            fail_msg("%s: %d entries in incoming/", rows[i].name, count_entries("incoming"));
        /* Not written through: the outside file is as it was, with one name again. */
        assert_int_equal(lstat(outside, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_nlink, 1);
        read_file(outside, &after);
        assert_int_equal(after.len, before.len);
        assert_memory_equal(after.data, before.data, before.len);
        assert_int_equal(unlink(outside), 0);
        vbuf_release(&path);
    }
    var_queue_recycle_limit = 0;
    vbuf_release(&err);
    vbuf_release(&before);
    vbuf_release(&after);
}

/* plant_retired_message - a complete, valid, longer queue file in recycle/0; its inode */
static ino_t plant_retired_message(void)
{
    vbuf path;
    struct stat st;
    vbuf big;

    vbuf_init(&big, 0);
    while (big.len < 20000)
        assert_int_equal(vbuf_append(&big, OLD_MARKER "\r\n", strlen(OLD_MARKER) + 2), 0);
    make_message(&path, big.data, big.len);
    assert_int_equal(rename(path.data, "recycle/0"), 0);
    assert_int_equal(lstat("recycle/0", &st), 0);
    vbuf_release(&path);
    vbuf_release(&big);
    return st.st_ino;
}

/* crash_points - run the writer at every fault point; count of aborted runs */
static long crash_points(int reuse)
{
    long aborted = 0, n;

    for (n = 0; n < 200; n++) {
        DIR *d;
        struct dirent *e;
        ino_t planted = 0;
        int complete = 0, partial = 0;

        remove_tree("incoming");
        assert_int_equal(mkdir("incoming", 0700), 0);
        if (reuse) {
            remove_tree("recycle");
            recycle_on(1);
            planted = plant_retired_message();
            remove_tree("incoming");
            assert_int_equal(mkdir("incoming", 0700), 0);
        }
        if (!write_in_child_as(n, reuse)) {
            vbuf err;
            qfile *q;
            char path[512];
            struct stat st;

            d = opendir("incoming");
            while ((e = readdir(d)) != NULL)
                if (queue_id_valid(e->d_name))
                    snprintf(path, sizeof(path), "incoming/%s", e->d_name), complete++;
            closedir(d);
            assert_int_equal(complete, 1);
            assert_int_equal(count_entries("incoming"), 1);
            vbuf_init(&err, 0);
            q = qfile_open(path, 0, &err);
            if (q == NULL)
                fail_msg("finished file refused: %s", err.data);
            assert_int_equal(q->nrcpt, 3);
            assert_int_equal(q->size, 5014);
            assert_int_equal(q->warn_time, 99);
            qfile_close(q);
            vbuf_release(&err);
            if (reuse) {
                assert_int_equal(lstat(path, &st), 0);
                assert_true(st.st_ino == planted);
                assert_false(has_marker(path));
            }
            return aborted;
        }
        aborted++;
        d = opendir("incoming");
        assert_non_null(d);
        while ((e = readdir(d)) != NULL) {
            char path[512];
            struct stat st;

            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof(path), "incoming/%s", e->d_name);
            if (queue_id_valid(e->d_name) || mail_queue_id_ok(e->d_name)) {
                /*
                 * Under an ID only after the rename (the crash came at the
                 * directory sync): then complete, the new message alone.
                 * The old message's bytes, or ours before the truncate,
                 * never are.
                 */
                vbuf err;
                qfile *q;

                vbuf_init(&err, 0);
                q = qfile_open(path, 0, &err);
                if (q == NULL)
                    fail_msg("crash point %ld (%s): incomplete %s in the queue: %s", n, reuse ? "reuse" : "fresh", path,
                             err.data);
                assert_int_equal(q->nrcpt, 3);
                assert_int_equal(q->size, 5014);
                qfile_close(q);
                vbuf_release(&err);
                assert_false(has_marker(path));
                complete++;
            } else {
                partial++; /* a temporary name: not in the queue */
            }
            if (reuse) {
                assert_int_equal(lstat(path, &st), 0);
                assert_true(st.st_ino == planted); /* the retired file was the one written */
            }
        }
        closedir(d);
        assert_true(complete + partial <= 1);
    }
    fail_msg("the writer never finished");
    return -1;
}

static void test_qfile_reuse_every_crash_point_leaves_no_file_under_an_id(void **state)
{
    long fresh, reused;

    (void) state;
    fresh = crash_points(0);
    reused = crash_points(1);
    var_queue_recycle_limit = 0;
    assert_true(fresh > 20);
    /* The same write steps, and one more: the truncate of the old bytes. */
    assert_int_equal(reused, fresh + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_qfile_round_trip_keeps_envelope_and_recipients, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_round_trip_large_content_in_chunks, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_empty_content_and_no_recipients_is_valid, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_finish_renames_only_complete_file, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_abort_leaves_nothing, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_set_queue_finishes_into_hold, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_create_in_missing_queue_fails_with_reason, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_ids_are_unique, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_finish_into_hashed_queue_creates_the_level, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_mark_done_persists, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_mark_done_needs_rdwr, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_writer_warn_time_is_stored, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_writer_refuses_bad_input, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_every_truncation_is_refused, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_corruptions_are_refused_with_reason, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_oversized_and_lying_lengths_are_refused, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_nul_in_recipient_is_refused, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_open_refuses_symlink_and_directory, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_random_byte_flips_never_crash, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_every_crash_point_leaves_absent_or_complete, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_create_reuse_overwrites_and_truncates_a_longer_retired_file,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_create_reuse_takes_what_qmgr_retired, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_create_reuse_resets_the_mode, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_create_reuse_refuses_hostile_slots_and_writes_a_fresh_file,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_qfile_reuse_every_crash_point_leaves_no_file_under_an_id, setup_dir,
                                        teardown_dir),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
