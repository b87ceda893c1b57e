/*
 * Unit tests for hash: and btree: tables on real Berkeley DB files: build
 * (atomic, old file untouched on errors), lookups, listing, delete, alias
 * syntax, reopening after a rebuild, and corrupt or truncated files.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <db.h>

#include "maps.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "vbuf.h"

static char tmpdir[] = "/tmp/test_maps_db.XXXXXX";
static int warnings;

/* capture - count warnings, keep test output quiet */
static void capture(enum msg_level level, const char *text)
{
    (void) text;
    if (level == MSG_WARN)
        warnings++;
}

/* path_of - tmpdir/name into a static-per-call buffer owned by the caller */
static void path_of(vbuf *out, const char *name)
{
    vbuf_reset(out);
    vbuf_printf(out, "%s/%s", tmpdir, name);
}

/* put_file - write len bytes to tmpdir/name */
static void put_file(const char *name, const char *text, size_t len)
{
    vbuf path;
    FILE *fp;

    vbuf_init(&path, 0);
    path_of(&path, name);
    assert_non_null(fp = fopen(vbuf_str(&path), "w"));
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    vbuf_release(&path);
}

/* put_text - write a C string to tmpdir/name */
static void put_text(const char *name, const char *text)
{
    put_file(name, text, strlen(text));
}

/* spec_of - "type:tmpdir/name" */
static void spec_of(vbuf *out, const char *type, const char *name)
{
    vbuf_reset(out);
    vbuf_printf(out, "%s:%s/%s", type, tmpdir, name);
}

/* build - map_build on tmpdir/name; returns its result, error text in err */
static int build(const char *type, const char *name, int flags, vbuf *err)
{
    vbuf spec;
    int r;

    vbuf_init(&spec, 0);
    spec_of(&spec, type, name);
    r = map_build(vbuf_str(&spec), flags, err);
    vbuf_release(&spec);
    return r;
}

/* open_table - map_open on type:tmpdir/name */
static map *open_table(const char *type, const char *name, int flags, vbuf *err)
{
    vbuf spec;
    map *m;

    vbuf_init(&spec, 0);
    spec_of(&spec, type, name);
    m = map_open(vbuf_str(&spec), flags, err);
    vbuf_release(&spec);
    return m;
}

/* count_files - entries in tmpdir other than . and .. */
static int count_files(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* expect - lookup result check */
static void expect(map *m, const char *key, const char *want)
{
    int status;
    const char *r = map_lookup(m, key, &status);

    if (want == NULL) {
        if (status != MAP_NOTFOUND)
            fail_msg("%s: status %d value %s", key, status, r ? r : "(null)");
    } else if (status != MAP_FOUND || strcmp(r, want) != 0) {
        fail_msg("%s: status %d got %s want %s", key, status, r ? r : "(null)", want);
    }
}

/* wipe - remove every file in tmpdir */
static void wipe(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    vbuf path;

    vbuf_init(&path, 0);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        path_of(&path, e->d_name);
        unlink(vbuf_str(&path));
    }
    closedir(d);
    vbuf_release(&path);
}

static const char *const db_types[] = {"hash", "btree"};

static void test_maps_db_build_and_lookup_both_types(void **state)
{
    vbuf err;

    (void) state;
    vbuf_init(&err, 0);
    for (size_t t = 0; t < 2; t++) {
        map *m;

        wipe();
        put_text("access", "# access table\nExample.COM   REJECT go away\n"
                           "10.1.2.3 OK\nlong value,\n  continued\nexample.com DUNNO\n");
        warnings = 0;
        if (build(db_types[t], "access", 0, &err) != 0)
            fail_msg("%s: %s", db_types[t], vbuf_str(&err));
        assert_int_equal(warnings, 1);      /* the duplicate key */
        assert_int_equal(count_files(), 2); /* source and .db, no leftovers */
        assert_non_null(m = open_table(db_types[t], "access", 0, &err));
        expect(m, "example.com", "REJECT go away");
        expect(m, "EXAMPLE.com", "REJECT go away");
        expect(m, "10.1.2.3", "OK");
        expect(m, "long", "value, continued");
        expect(m, "missing", NULL);
        expect(m, "", NULL);
        map_close(m);
    }
    vbuf_release(&err);
}

static void test_maps_db_keep_case_at_build_and_lookup(void **state)
{
    vbuf err;
    map *m;

    (void) state;
    vbuf_init(&err, 0);
    wipe();
    put_text("t", "MixedKey v\n");
    assert_int_equal(build("hash", "t", MAP_KEEP_CASE, &err), 0);
    assert_non_null(m = open_table("hash", "t", MAP_KEEP_CASE, &err));
    expect(m, "MixedKey", "v");
    expect(m, "mixedkey", NULL);
    map_close(m);
    assert_non_null(m = open_table("hash", "t", 0, &err));
    expect(m, "MixedKey", NULL); /* folded to "mixedkey" */
    map_close(m);
    vbuf_release(&err);
}

/* list_entries - collect "k=v;" */
static int list_entries(void *ctx, const char *key, const char *value)
{
    vbuf_printf(ctx, "%s=%s;", key, value);
    return 0;
}

static void test_maps_db_iterate_lists_every_entry(void **state)
{
    vbuf err, got;
    map *m;

    (void) state;
    vbuf_init(&err, 0);
    vbuf_init(&got, 0);
    wipe();
    put_text("t", "c 3\na 1\nb 2\n");
    assert_int_equal(build("btree", "t", 0, &err), 0);
    assert_non_null(m = open_table("btree", "t", 0, &err));
    assert_int_equal(map_iterate(m, list_entries, &got, &err), 0);
    assert_string_equal(vbuf_str(&got), "a=1;b=2;c=3;"); /* btree: sorted */
    map_close(m);
    vbuf_release(&err);
    vbuf_release(&got);
}

static const struct bad_source {
    const char *text;
    int flags;
    const char *error;
} bad_sources[] = {
    {"good one\nbad\n", 0, "/src:2: expected format: key whitespace value"},
    {"  leading value\n", 0, "/src:1: continuation line"},
    {"a b\n\n\nc \0d\n", 0, "/src:4: NUL byte"},
    {"root: x\nnocolon\n", MAP_BUILD_ALIASES, "/src:2: expected \"name: value\""},
    {"root:\n", MAP_BUILD_ALIASES, "/src:1: alias \"root\" has no value"},
};

static void test_maps_db_bad_source_leaves_old_db_untouched(void **state)
{
    struct stat before, after;
    vbuf err, dbpath;
    map *m;

    (void) state;
    vbuf_init(&err, 0);
    vbuf_init(&dbpath, 0);
    for (size_t i = 0; i < sizeof(bad_sources) / sizeof(bad_sources[0]); i++) {
        const struct bad_source *c = &bad_sources[i];
        size_t len = strlen(c->text);

        wipe();
        put_text("src", c->flags ? "old: value\n" : "old value\n");
        assert_int_equal(build("hash", "src", c->flags, &err), 0);
        path_of(&dbpath, "src.db");
        assert_int_equal(stat(vbuf_str(&dbpath), &before), 0);
        if (strstr(c->error, "NUL"))
            len = 12;
        put_file("src", c->text, len);
        assert_int_equal(build("hash", "src", c->flags, &err), -1);
        if (strstr(vbuf_str(&err), c->error) == NULL)
            fail_msg("case %zu: got %s want %s", i, vbuf_str(&err), c->error);
        assert_int_equal(stat(vbuf_str(&dbpath), &after), 0);
        assert_true(before.st_ino == after.st_ino);
        assert_int_equal(count_files(), 2); /* no temporary file left */
        assert_non_null(m = open_table("hash", "src", 0, &err));
        expect(m, "old", "value");
        map_close(m);
    }
    vbuf_release(&err);
    vbuf_release(&dbpath);
}

static void test_maps_db_build_errors(void **state)
{
    vbuf err, spec;

    (void) state;
    vbuf_init(&err, 0);
    vbuf_init(&spec, 0);
    wipe();
    assert_int_equal(build("hash", "nosource", 0, &err), -1);
    assert_non_null(strstr(vbuf_str(&err), "No such file"));
    assert_int_equal(count_files(), 0);
    assert_int_equal(build("texthash", "x", 0, &err), -1);
    assert_non_null(strstr(vbuf_str(&err), "only hash:NAME and btree:NAME"));
    assert_int_equal(map_build("hash:", 0, &err), -1);
    assert_int_equal(map_build("plain", 0, &err), -1);
    /* A directory where the source should be. */
    path_of(&spec, "adir");
    assert_int_equal(mkdir(vbuf_str(&spec), 0700), 0);
    assert_int_equal(build("hash", "adir", 0, &err), -1);
    assert_non_null(strstr(vbuf_str(&err), "not a regular file"));
    assert_int_equal(rmdir(vbuf_str(&spec)), 0);
    vbuf_release(&err);
    vbuf_release(&spec);
}

static void test_maps_db_takes_source_permissions(void **state)
{
    struct stat st;
    vbuf err, path;

    (void) state;
    vbuf_init(&err, 0);
    vbuf_init(&path, 0);
    wipe();
    put_text("secret", "k v\n");
    path_of(&path, "secret");
    assert_int_equal(chmod(vbuf_str(&path), 0640), 0);
    assert_int_equal(build("hash", "secret", 0, &err), 0);
    path_of(&path, "secret.db");
    assert_int_equal(stat(vbuf_str(&path), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    vbuf_release(&err);
    vbuf_release(&path);
}

static void test_maps_db_aliases_syntax(void **state)
{
    vbuf err;
    map *m;

    (void) state;
    vbuf_init(&err, 0);
    wipe();
    put_text("aliases", "# aliases\nPostmaster: root\nroot: admin@Example.com,\n  \"|/usr/bin/logger -t x\",\n"
                        "  /var/mail/archive, :include:/etc/kite/staff\n\"with space\": joe\n");
    if (build("hash", "aliases", MAP_BUILD_ALIASES, &err) != 0)
        fail_msg("%s", vbuf_str(&err));
    assert_non_null(m = open_table("hash", "aliases", 0, &err));
    expect(m, "postmaster", "root");
    expect(m, "root", "admin@Example.com, \"|/usr/bin/logger -t x\", /var/mail/archive, :include:/etc/kite/staff");
    expect(m, "with space", "joe");
    map_close(m);
    vbuf_release(&err);
}

static void test_maps_db_notices_rebuild(void **state)
{
    vbuf err, path;
    map *m;

    (void) state;
    vbuf_init(&err, 0);
    vbuf_init(&path, 0);
    wipe();
    put_text("t", "k one\n");
    assert_int_equal(build("hash", "t", 0, &err), 0);
    assert_non_null(m = open_table("hash", "t", 0, &err));
    expect(m, "k", "one");
    put_text("t", "k two\nnew yes\n");
    assert_int_equal(build("hash", "t", 0, &err), 0);
    sleep(1); /* stat happens at most once a second */
    expect(m, "k", "two");
    expect(m, "new", "yes");

    /* A garbage file in its place: errors, never "not found"; then recovery. */
    path_of(&path, "t.db");
    put_text("t.db.new", "this is not a database at all, not even close ................");
    {
        vbuf from;

        vbuf_init(&from, 0);
        path_of(&from, "t.db.new");
        assert_int_equal(rename(vbuf_str(&from), vbuf_str(&path)), 0);
        vbuf_release(&from);
    }
    sleep(1);
    warnings = 0;
    {
        int status;

        assert_null(map_lookup(m, "k", &status));
        assert_int_equal(status, MAP_ERROR);
        assert_true(warnings >= 1);
    }
    put_text("t", "k three\n");
    assert_int_equal(build("hash", "t", 0, &err), 0);
    sleep(1);
    expect(m, "k", "three");

    /* A removed file keeps the open table working. */
    assert_int_equal(unlink(vbuf_str(&path)), 0);
    sleep(1);
    expect(m, "k", "three");
    map_close(m);
    vbuf_release(&err);
    vbuf_release(&path);
}

static void test_maps_db_checks_file_at_most_once_a_second(void **state)
{
    vbuf err;
    time_t t0;
    map *m;

    (void) state;
    vbuf_init(&err, 0);
    wipe();
    put_text("t", "k one\n");
    assert_int_equal(build("hash", "t", 0, &err), 0);
    /* Start right after a second boundary so the rebuild fits in it. */
    t0 = time(NULL);
    while (time(NULL) == t0)
        usleep(1000);
    t0 = time(NULL);
    assert_non_null(m = open_table("hash", "t", 0, &err));
    put_text("t", "k two\n");
    assert_int_equal(build("hash", "t", 0, &err), 0);
    if (time(NULL) == t0)
        expect(m, "k", "one"); /* same second: no stat yet */
    while (time(NULL) == t0)
        usleep(1000);
    expect(m, "k", "two");
    map_close(m);
    vbuf_release(&err);
}

static void test_maps_db_corrupt_and_truncated_files(void **state)
{
    static const char garbage[] = "\x00\x06\x15\x61garbage-garbage-garbage-garbage-garbage";
    struct stat st;
    vbuf err, path, text;
    char *data;
    map *m;
    int fd;

    (void) state;
    vbuf_init(&err, 0);
    vbuf_init(&path, 0);
    vbuf_init(&text, 0);

    /* Random bytes, an empty file, the wrong type: the open fails. */
    wipe();
    put_file("g.db", garbage, sizeof(garbage) - 1);
    assert_null(open_table("hash", "g", 0, &err));
    assert_true(err.len > 0);
    put_file("e.db", "", 0);
    assert_null(open_table("hash", "e", 0, &err));
    put_text("b", "k v\n");
    assert_int_equal(build("btree", "b", 0, &err), 0);
    assert_null(open_table("hash", "b", 0, &err));
    assert_null(open_table("hash", "missing", 0, &err));
    assert_non_null(strstr(vbuf_str(&err), "No such file"));

    /* A real database cut short: never a crash, never a wrong answer. */
    for (int i = 0; i < 3000; i++)
        vbuf_printf(&text, "key%d value%d\n", i, i);
    put_text("big", vbuf_str(&text));
    assert_int_equal(build("hash", "big", 0, &err), 0);
    path_of(&path, "big.db");
    assert_int_equal(stat(vbuf_str(&path), &st), 0);
    for (off_t cut = st.st_size / 2; cut >= 512; cut /= 4) {
        assert_int_equal(truncate(vbuf_str(&path), cut), 0);
        m = open_table("hash", "big", 0, &err);
        if (m == NULL)
            continue;
        for (int i = 0; i < 3000; i += 97) {
            vbuf key, want;
            int status;
            const char *r;

            vbuf_init(&key, 0);
            vbuf_init(&want, 0);
            vbuf_printf(&key, "key%d", i);
            vbuf_printf(&want, "value%d", i);
            r = map_lookup(m, vbuf_str(&key), &status);
            assert_true(status == MAP_FOUND || status == MAP_NOTFOUND || status == MAP_ERROR);
            if (status == MAP_FOUND)
                assert_string_equal(r, vbuf_str(&want));
            vbuf_release(&key);
            vbuf_release(&want);
        }
        map_close(m);
    }

    /* Garbage in the middle of a real file. */
    assert_int_equal(build("hash", "big", 0, &err), 0);
    assert_int_equal(stat(vbuf_str(&path), &st), 0);
    data = xmalloc((size_t) st.st_size);
    assert_true((fd = open(vbuf_str(&path), O_RDWR)) >= 0);
    assert_int_equal(read(fd, data, (size_t) st.st_size), st.st_size);
    for (off_t o = 4096; o < st.st_size; o += 4096)
        memset(data + o + 16, 0xA5, 64);
    assert_int_equal(pwrite(fd, data, (size_t) st.st_size, 0), st.st_size);
    close(fd);
    xfree(data);
    /*
     * Berkeley DB "panics" on a damaged page and then keeps some of its
     * buffers when closed; that happens inside libdb. Run this part in a
     * child that exits without the leak check, so every other test here
     * stays leak-checked, and make the child report what it saw.
     */
    {
        pid_t pid = fork();
        int wstatus;

        assert_true(pid >= 0);
        if (pid == 0) {
            int code = 0;

            if ((m = open_table("hash", "big", 0, &err)) != NULL) {
                int status, errors = 0;

                for (int i = 0; i < 30; i++) {
                    const char *r = map_lookup(m, "key1", &status);

                    if (status == MAP_ERROR)
                        errors++;
                    else if (status == MAP_FOUND && strcmp(r, "value1") != 0)
                        code = 3;
                    else if (status != MAP_FOUND && status != MAP_NOTFOUND)
                        code = 4;
                }
                map_close(m);
                if (errors == 0 && code == 0)
                    code = 5; /* damage went unnoticed */
            }
            _exit(code);
        }
        assert_int_equal(waitpid(pid, &wstatus, 0), pid);
        assert_true(WIFEXITED(wstatus));
        assert_int_equal(WEXITSTATUS(wstatus), 0);
    }
    vbuf_release(&err);
    vbuf_release(&path);
    vbuf_release(&text);
}

static void test_maps_db_reads_keys_stored_without_nul(void **state)
{
    vbuf path, err;
    DB *db;
    DBT k, v;
    map *m;

    (void) state;
    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    wipe();
    path_of(&path, "raw.db");
    assert_int_equal(db_create(&db, NULL, 0), 0);
    assert_int_equal(db->open(db, NULL, vbuf_str(&path), NULL, DB_HASH, DB_CREATE, 0644), 0);
    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    k.data = "bare";
    k.size = 4;
    v.data = "no-nul";
    v.size = 6;
    assert_int_equal(db->put(db, NULL, &k, &v, 0), 0);
    k.data = "withnul";
    k.size = 8;
    v.data = "yes\0junk";
    v.size = 9;
    assert_int_equal(db->put(db, NULL, &k, &v, 0), 0);
    assert_int_equal(db->close(db, 0), 0);
    assert_non_null(m = open_table("hash", "raw", 0, &err));
    expect(m, "bare", "no-nul");
    expect(m, "withnul", "yes");
    map_close(m);
    vbuf_release(&path);
    vbuf_release(&err);
}

static void test_maps_db_delete_rewrites_without_key(void **state)
{
    struct stat before, after;
    vbuf err, spec, path;
    map *m;

    (void) state;
    vbuf_init(&err, 0);
    vbuf_init(&spec, 0);
    vbuf_init(&path, 0);
    wipe();
    put_text("t", "a 1\nb 2\nc 3\n");
    assert_int_equal(build("hash", "t", 0, &err), 0);
    spec_of(&spec, "hash", "t");
    path_of(&path, "t.db");
    assert_int_equal(map_delete(vbuf_str(&spec), "B", 0, &err), 1);
    assert_non_null(m = open_table("hash", "t", 0, &err));
    expect(m, "a", "1");
    expect(m, "b", NULL);
    expect(m, "c", "3");
    map_close(m);
    assert_int_equal(stat(vbuf_str(&path), &before), 0);
    assert_int_equal(map_delete(vbuf_str(&spec), "b", 0, &err), 0);
    assert_int_equal(stat(vbuf_str(&path), &after), 0);
    assert_true(before.st_ino == after.st_ino); /* nothing removed: file untouched */
    assert_int_equal(count_files(), 2);
    spec_of(&spec, "hash", "none");
    assert_int_equal(map_delete(vbuf_str(&spec), "a", 0, &err), -1);
    assert_non_null(strstr(vbuf_str(&err), "No such file"));
    assert_int_equal(map_delete("pcre:/x", "a", 0, &err), -1);
    vbuf_release(&err);
    vbuf_release(&spec);
    vbuf_release(&path);
}

static void test_maps_db_lists_and_addresses(void **state)
{
    char *saved = var_recipient_delimiter;
    vbuf err, value;
    maps *ms;
    int status;

    (void) state;
    vbuf_init(&err, 0);
    vbuf_init(&value, 0);
    wipe();
    put_text("virtual", "joe@example.com joe-box\n@example.com catchall\nann ann-local\n");
    assert_int_equal(build("hash", "virtual", 0, &err), 0);
    vbuf_printf(&value, "hash:%s/virtual", tmpdir);
    ms = maps_open("virtual_mailbox_maps", vbuf_str(&value), 0);
    var_recipient_delimiter = "+";
    assert_string_equal(maps_find_addr(ms, "Joe+Lists@Example.com", 0, &status), "joe-box");
    assert_string_equal(maps_find_addr(ms, "bob@example.com", 0, &status), "catchall");
    assert_string_equal(maps_find_addr(ms, "ann+x@other.test", MAPS_ADDR_LOCAL, &status), "ann-local");
    assert_null(maps_find_addr(ms, "ann@other.test", 0, &status));
    assert_int_equal(status, MAP_NOTFOUND);
    maps_close(ms);

    /* A hash table whose .db is missing: errors, never "not found". */
    vbuf_reset(&value);
    vbuf_printf(&value, "hash:%s/absent", tmpdir);
    warnings = 0;
    ms = maps_open("transport_maps", vbuf_str(&value), 0);
    assert_int_equal(warnings, 1);
    assert_null(maps_find(ms, "x", &status));
    assert_int_equal(status, MAP_ERROR);
    maps_close(ms);
    var_recipient_delimiter = saved;
    vbuf_release(&err);
    vbuf_release(&value);
}

/* setup - scratch directory, quiet diagnostics */
static int setup(void **state)
{
    (void) state;
    msg_set_capture(capture);
    msg_stderr(0);
    return mkdtemp(tmpdir) ? 0 : -1;
}

/* teardown - remove the scratch directory */
static int teardown(void **state)
{
    (void) state;
    wipe();
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maps_db_build_and_lookup_both_types),
        cmocka_unit_test(test_maps_db_keep_case_at_build_and_lookup),
        cmocka_unit_test(test_maps_db_iterate_lists_every_entry),
        cmocka_unit_test(test_maps_db_bad_source_leaves_old_db_untouched),
        cmocka_unit_test(test_maps_db_build_errors),
        cmocka_unit_test(test_maps_db_takes_source_permissions),
        cmocka_unit_test(test_maps_db_aliases_syntax),
        cmocka_unit_test(test_maps_db_notices_rebuild),
        cmocka_unit_test(test_maps_db_checks_file_at_most_once_a_second),
        cmocka_unit_test(test_maps_db_corrupt_and_truncated_files),
        cmocka_unit_test(test_maps_db_reads_keys_stored_without_nul),
        cmocka_unit_test(test_maps_db_delete_rewrites_without_key),
        cmocka_unit_test(test_maps_db_lists_and_addresses),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
