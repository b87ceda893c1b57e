/*
 * map_db - hash: and btree: tables in Berkeley DB files (NAME.db).
 *
 * Offers lookups that notice a rebuilt file (the file is stat'ed at most
 * once a second and reopened when it changed), listing, and the writers:
 * map_build (NAME.db from the source NAME, atomically: a temporary file in
 * the same directory, fsync, rename) and map_delete (the same, minus a key).
 *
 * Keys and values are stored with a trailing NUL, as Postfix's postmap
 * does, so files built by either work with both; lookups also try the key
 * without the NUL. Trusts the .db file only as far as Berkeley DB's checks
 * go; a file it can't read makes lookups return MAP_ERROR.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <db.h>

#include "map_impl.h"
#include "maps.h"
#include "msg.h"
#include "mymalloc.h"
#include "vbuf.h"

typedef struct db_map {
    DB *db; /* NULL after a failed reopen */
    DBTYPE type;
    char *path;        /* NAME.db */
    struct stat st;    /* of the file that is open */
    time_t last_check; /* last stat() of path */
} db_map;

/* Berkeley DB reports details through a callback without context. */
static vbuf db_errtext;
static int db_errtext_ready;

/* db_errcall - keep Berkeley DB's last message for our error reports */
static void db_errcall(const DB_ENV *env, const char *prefix, const char *text)
{
    (void) env;
    (void) prefix;
    if (!db_errtext_ready) {
        vbuf_init(&db_errtext, 1024);
        db_errtext_ready = 1;
    }
    vbuf_reset(&db_errtext);
    if (vbuf_puts(&db_errtext, text) < 0)
        vbuf_set(&db_errtext, "(long message)");
}

/* db_error - text for a Berkeley DB return code, with its last message */
static const char *db_error(int ret, vbuf *out)
{
    vbuf_reset(out);
    vbuf_puts(out, db_strerror(ret));
    if (db_errtext_ready && db_errtext.len > 0) {
        vbuf_printf(out, " (%s)", vbuf_str(&db_errtext));
        vbuf_reset(&db_errtext);
    }
    return vbuf_str(out);
}

/* db_type_of - DB_HASH or DB_BTREE for a type name; -1 for others */
static int db_type_of(const char *type, DBTYPE *out)
{
    if (strcmp(type, "hash") == 0)
        *out = DB_HASH;
    else if (strcmp(type, "btree") == 0)
        *out = DB_BTREE;
    else
        return -1;
    return 0;
}

/* db_open_file - open path read-only; st describes the file opened */
static DB *db_open_file(const char *path, DBTYPE type, struct stat *st, vbuf *err)
{
    vbuf why;
    DB *db;
    int ret, fd;

    vbuf_init(&why, 0);
    if ((ret = db_create(&db, NULL, 0)) != 0) {
        map_seterr(err, "open %s: %s", path, db_error(ret, &why));
        vbuf_release(&why);
        return NULL;
    }
    db->set_errcall(db, db_errcall);
    if ((ret = db->open(db, NULL, path, NULL, type, DB_RDONLY, 0)) != 0) {
        map_seterr(err, "open %s: %s", path, db_error(ret, &why));
        db->close(db, 0);
        vbuf_release(&why);
        return NULL;
    }
    if ((ret = db->fd(db, &fd)) != 0 || fstat(fd, st) < 0) {
        map_seterr(err, "open %s: can't find the file's status", path);
        db->close(db, 0);
        vbuf_release(&why);
        return NULL;
    }
    vbuf_release(&why);
    return db;
}

/* db_changed - whether path now names another file than the one open */
static int db_changed(const db_map *d, const struct stat *now)
{
    return now->st_dev != d->st.st_dev || now->st_ino != d->st.st_ino || now->st_size != d->st.st_size ||
           now->st_mtim.tv_sec != d->st.st_mtim.tv_sec || now->st_mtim.tv_nsec != d->st.st_mtim.tv_nsec;
}

/* db_refresh - reopen the file when it was rebuilt (checked once a second) */
static void db_refresh(map *m)
{
    db_map *d = m->impl;
    struct stat now;
    time_t t = time(NULL);
    vbuf err;
    DB *db;

    if (t == d->last_check)
        return;
    d->last_check = t;
    if (stat(d->path, &now) < 0) {
        /* Gone for now (or unreadable): keep what is open. */
        return;
    }
    if (d->db != NULL && !db_changed(d, &now))
        return;
    vbuf_init(&err, 0);
    if ((db = db_open_file(d->path, d->type, &now, &err)) == NULL) {
        msg_warn("%s: reopen after change: %s", m->spec, vbuf_str(&err));
        if (d->db != NULL)
            d->db->close(d->db, 0);
        d->db = NULL;
    } else {
        if (d->db != NULL)
            d->db->close(d->db, 0);
        d->db = db;
        d->st = now;
    }
    vbuf_release(&err);
}

/* db_get - one get; 0 found, DB_NOTFOUND, or another error code */
static int db_get(DB *db, const char *key, size_t len, DBT *val)
{
    DBT k;

    memset(&k, 0, sizeof(k));
    memset(val, 0, sizeof(*val));
    k.data = (void *) key;
    k.size = (u_int32_t) len;
    return db->get(db, NULL, &k, val, 0);
}

/* set_text - a stored value as a C string (stops at the first NUL) */
static void set_text(vbuf *out, const void *data, size_t size)
{
    const char *nul = memchr(data, 0, size);

    vbuf_setn(out, data, nul ? (size_t) (nul - (const char *) data) : size);
}

/* db_lookup - key with its trailing NUL first, then without */
static const char *db_lookup(map *m, const char *key, int *status)
{
    db_map *d = m->impl;
    size_t len = strlen(key);
    vbuf why;
    DBT val;
    int ret;

    db_refresh(m);
    if (d->db == NULL) {
        *status = MAP_ERROR;
        return NULL;
    }
    if (len >= UINT32_MAX) {
        *status = MAP_NOTFOUND;
        return NULL;
    }
    ret = db_get(d->db, key, len + 1, &val);
    if (ret == DB_NOTFOUND)
        ret = db_get(d->db, key, len, &val);
    if (ret == 0) {
        set_text(&m->result, val.data, val.size);
        *status = MAP_FOUND;
        return vbuf_str(&m->result);
    }
    if (ret == DB_NOTFOUND) {
        *status = MAP_NOTFOUND;
        return NULL;
    }
    vbuf_init(&why, 0);
    msg_warn("%s: lookup of \"%s\": %s", m->spec, key, db_error(ret, &why));
    vbuf_release(&why);
    *status = MAP_ERROR;
    return NULL;
}

/* db_walk - call fn for each entry of an open database */
static int db_walk(DB *db, const char *what, int (*fn)(void *, const char *, const char *), void *ctx, vbuf *err)
{
    vbuf key, value, why;
    DBC *cur;
    DBT k, v;
    int ret;

    vbuf_init(&why, 0);
    if ((ret = db->cursor(db, NULL, &cur, 0)) != 0) {
        map_seterr(err, "%s: cursor: %s", what, db_error(ret, &why));
        vbuf_release(&why);
        return -1;
    }
    vbuf_init(&key, 0);
    vbuf_init(&value, 0);
    for (;;) {
        memset(&k, 0, sizeof(k));
        memset(&v, 0, sizeof(v));
        if ((ret = cur->get(cur, &k, &v, DB_NEXT)) != 0)
            break;
        set_text(&key, k.data, k.size);
        set_text(&value, v.data, v.size);
        if (fn(ctx, vbuf_str(&key), vbuf_str(&value)))
            break;
    }
    cur->close(cur);
    vbuf_release(&key);
    vbuf_release(&value);
    if (ret != 0 && ret != DB_NOTFOUND) {
        map_seterr(err, "%s: read: %s", what, db_error(ret, &why));
        vbuf_release(&why);
        return -1;
    }
    vbuf_release(&why);
    return 0;
}

/* db_iterate - every entry, in the database's order */
static int db_iterate(map *m, map_iter_fn fn, void *ctx, vbuf *err)
{
    db_map *d = m->impl;

    db_refresh(m);
    if (d->db == NULL) {
        map_seterr(err, "%s: table is not readable", m->spec);
        return -1;
    }
    return db_walk(d->db, m->spec, fn, ctx, err);
}

/* db_close - close the database */
static void db_close(map *m)
{
    db_map *d = m->impl;

    if (d->db != NULL)
        d->db->close(d->db, 0);
    xfree(d->path);
    xfree(d);
}

/* map_db_open - hash:NAME or btree:NAME, the file NAME.db */
map *map_db_open(const char *spec, const char *type, const char *name, int flags, vbuf *err)
{
    db_map *d;
    DBTYPE t;
    map *m;

    if (db_type_of(type, &t) < 0 || *name == 0) {
        map_seterr(err, "%s: expected hash:NAME or btree:NAME", spec);
        return NULL;
    }
    d = xcalloc(1, sizeof(*d));
    d->type = t;
    d->path = xmalloc(size_add(strlen(name), sizeof(".db")));
    memcpy(d->path, name, strlen(name));
    memcpy(d->path + strlen(name), ".db", sizeof(".db"));
    if ((d->db = db_open_file(d->path, t, &d->st, err)) == NULL) {
        xfree(d->path);
        xfree(d);
        return NULL;
    }
    d->last_check = time(NULL);
    m = map_alloc(spec, flags);
    m->impl = d;
    m->lookup = db_lookup;
    m->iterate = db_iterate;
    m->close = db_close;
    return m;
}

/* ---- writing: build and delete -------------------------------------------- */

typedef struct db_writer {
    DB *db;
    vbuf dir;           /* private temporary directory */
    vbuf tmp;           /* the database file inside it */
    vbuf final;         /* NAME.db */
    const char *source; /* for duplicate warnings */
    long count;
} db_writer;

/* remove_tmpdir - remove the private directory and what Berkeley DB left in it */
static void remove_tmpdir(db_writer *w)
{
    DIR *d = opendir(vbuf_str(&w->dir));
    struct dirent *e;
    vbuf path;

    vbuf_init(&path, 0);
    if (d != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            vbuf_reset(&path);
            vbuf_printf(&path, "%s/%s", vbuf_str(&w->dir), e->d_name);
            if (unlink(vbuf_str(&path)) < 0)
                msg_warn("remove %s: %m", vbuf_str(&path));
        }
        closedir(d);
    }
    if (rmdir(vbuf_str(&w->dir)) < 0 && errno != ENOENT)
        msg_warn("remove %s: %m", vbuf_str(&w->dir));
    vbuf_release(&path);
}

/* dir_of - the directory part of path ("." when there is none) */
static void dir_of(const char *path, vbuf *out)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        vbuf_set(out, ".");
    else if (slash == path)
        vbuf_set(out, "/");
    else
        vbuf_setn(out, path, (size_t) (slash - path));
}

/*
 * writer_create - a new empty database in a private (mode 0700) directory
 * made beside final, so nobody can plant a link where Berkeley DB creates,
 * renames and reopens its file, and the final rename stays on one file
 * system.
 */
static int writer_create(db_writer *w, const char *final, DBTYPE type, mode_t mode, vbuf *err)
{
    vbuf why;
    int ret;

    vbuf_init(&w->tmp, 0);
    vbuf_init(&w->dir, 0);
    vbuf_init(&w->final, 0);
    vbuf_init(&why, 0);
    vbuf_set(&w->final, final);
    w->db = NULL;
    w->count = 0;
    dir_of(final, &w->dir);
    vbuf_puts(&w->dir, "/.kitemap.XXXXXX");
    if (mkdtemp(w->dir.data) == NULL) {
        map_seterr(err, "create a temporary directory beside %s: %m", final);
        goto fail;
    }
    vbuf_printf(&w->tmp, "%s/new.db", vbuf_str(&w->dir));
    if ((ret = db_create(&w->db, NULL, 0)) != 0) {
        map_seterr(err, "create %s: %s", vbuf_str(&w->tmp), db_error(ret, &why));
        goto fail_dir;
    }
    w->db->set_errcall(w->db, db_errcall);
    ret = w->db->open(w->db, NULL, vbuf_str(&w->tmp), NULL, type, DB_CREATE | DB_EXCL, (int) mode);
    if (ret != 0) {
        map_seterr(err, "create %s: %s", vbuf_str(&w->tmp), db_error(ret, &why));
        w->db->close(w->db, 0);
        w->db = NULL;
        goto fail_dir;
    }
    vbuf_release(&why);
    return 0;
fail_dir:
    remove_tmpdir(w);
fail:
    vbuf_release(&why);
    vbuf_release(&w->tmp);
    vbuf_release(&w->dir);
    vbuf_release(&w->final);
    return -1;
}

/* writer_abort - drop the temporary database; the old one stays */
static void writer_abort(db_writer *w)
{
    if (w->db != NULL)
        w->db->close(w->db, DB_NOSYNC);
    w->db = NULL;
    remove_tmpdir(w);
    vbuf_release(&w->tmp);
    vbuf_release(&w->dir);
    vbuf_release(&w->final);
}

/* writer_put - store key and value with their NULs; 1 new, 0 duplicate, -1 error */
static int writer_put(db_writer *w, const char *key, const char *value, vbuf *err)
{
    size_t klen = strlen(key) + 1, vlen = strlen(value) + 1;
    vbuf why;
    DBT k, v;
    int ret;

    if (klen >= UINT32_MAX || vlen >= UINT32_MAX) {
        map_seterr(err, "%s: entry too large", vbuf_str(&w->final));
        return -1;
    }
    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    k.data = (void *) key;
    k.size = (u_int32_t) klen;
    v.data = (void *) value;
    v.size = (u_int32_t) vlen;
    ret = w->db->put(w->db, NULL, &k, &v, DB_NOOVERWRITE);
    if (ret == DB_KEYEXIST)
        return 0;
    if (ret != 0) {
        vbuf_init(&why, 0);
        map_seterr(err, "write %s: %s", vbuf_str(&w->tmp), db_error(ret, &why));
        vbuf_release(&why);
        return -1;
    }
    w->count++;
    return 1;
}

/* sync_dir - fsync the directory holding path, so a rename is durable */
static int sync_dir(const char *path, vbuf *err)
{
    char *copy = xstrdup(path);
    const char *dir = dirname(copy);
    int fd, ret = 0;

    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(fd) < 0) {
        map_seterr(err, "fsync directory %s: %m", dir);
        ret = -1;
    }
    if (fd >= 0)
        close(fd);
    xfree(copy);
    return ret;
}

/* writer_commit - set mode/owner, flush, fsync, and rename into place */
static int writer_commit(db_writer *w, mode_t mode, uid_t uid, gid_t gid, vbuf *err)
{
    vbuf why;
    int fd, ret;

    vbuf_init(&why, 0);
    if ((ret = w->db->fd(w->db, &fd)) != 0) {
        map_seterr(err, "%s: %s", vbuf_str(&w->tmp), db_error(ret, &why));
        goto fail;
    }
    if (fchmod(fd, mode) < 0) {
        map_seterr(err, "chmod %s: %m", vbuf_str(&w->tmp));
        goto fail;
    }
    if (geteuid() == 0 && fchown(fd, uid, gid) < 0) {
        map_seterr(err, "chown %s: %m", vbuf_str(&w->tmp));
        goto fail;
    }
    ret = w->db->close(w->db, 0);
    w->db = NULL;
    if (ret != 0) {
        map_seterr(err, "close %s: %s", vbuf_str(&w->tmp), db_error(ret, &why));
        goto fail;
    }
    if ((fd = open(vbuf_str(&w->tmp), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        map_seterr(err, "open %s: %m", vbuf_str(&w->tmp));
        goto fail;
    }
    if (fsync(fd) < 0) {
        map_seterr(err, "fsync %s: %m", vbuf_str(&w->tmp));
        close(fd);
        goto fail;
    }
    close(fd);
    if (rename(vbuf_str(&w->tmp), vbuf_str(&w->final)) < 0) {
        map_seterr(err, "rename %s to %s: %m", vbuf_str(&w->tmp), vbuf_str(&w->final));
        goto fail;
    }
    ret = sync_dir(vbuf_str(&w->final), err);
    if (rmdir(vbuf_str(&w->dir)) < 0)
        remove_tmpdir(w);
    vbuf_release(&w->tmp);
    vbuf_release(&w->dir);
    vbuf_release(&w->final);
    vbuf_release(&why);
    return ret;
fail:
    vbuf_release(&why);
    writer_abort(w);
    return -1;
}

/* build_entry - one source entry into the new database */
static int build_entry(void *ctx, const char *key, const char *value, int line, vbuf *err)
{
    db_writer *w = ctx;
    int r = writer_put(w, key, value, err);

    if (r == 0)
        msg_warn("%s:%d: duplicate entry \"%s\", keeping the first", w->source, line, key);
    return r < 0 ? -1 : 0;
}

/* writer_target - type and file names from "type:NAME" */
static int writer_target(const char *spec, DBTYPE *type, const char **name, vbuf *final, vbuf *err)
{
    const char *colon = strchr(spec, ':');
    vbuf t;
    int ret;

    if (colon == NULL) {
        map_seterr(err, "%s: expected hash:NAME or btree:NAME", spec);
        return -1;
    }
    vbuf_init(&t, 0);
    vbuf_setn(&t, spec, (size_t) (colon - spec));
    ret = db_type_of(vbuf_str(&t), type);
    vbuf_release(&t);
    *name = colon + 1;
    if (ret < 0 || **name == 0) {
        map_seterr(err, "%s: only hash:NAME and btree:NAME tables are built from a source file", spec);
        return -1;
    }
    vbuf_set(final, *name);
    vbuf_puts(final, ".db");
    return 0;
}

/* map_build - NAME.db from the source NAME; the old file stays on error */
int map_build(const char *spec, int flags, vbuf *err)
{
    const char *name;
    struct stat st;
    vbuf final, text;
    db_writer w;
    DBTYPE type;
    int ret = -1;

    vbuf_init(&final, 0);
    vbuf_init(&text, 0);
    if (writer_target(spec, &type, &name, &final, err) < 0)
        goto out;
    if (map_read_file(name, &text, err) < 0)
        goto out;
    if (stat(name, &st) < 0) {
        map_seterr(err, "stat %s: %m", name);
        goto out;
    }
    if (writer_create(&w, vbuf_str(&final), type, st.st_mode & 0666, err) < 0)
        goto out;
    w.source = name;
    if (map_source_parse(name, text.data, text.len, flags & (MAP_KEEP_CASE | MAP_BUILD_ALIASES), build_entry, &w, err) <
        0) {
        writer_abort(&w);
        goto out;
    }
    ret = writer_commit(&w, st.st_mode & 0666, st.st_uid, st.st_gid, err);
out:
    vbuf_release(&final);
    vbuf_release(&text);
    return ret;
}

typedef struct copy_ctx {
    db_writer *w;
    const char *skip; /* the key being deleted */
    int removed;
    int failed;
    vbuf *err;
} copy_ctx;

/* copy_entry - copy one entry unless it is the deleted key */
static int copy_entry(void *ctx, const char *key, const char *value)
{
    copy_ctx *c = ctx;

    if (strcmp(key, c->skip) == 0) {
        c->removed = 1;
        return 0;
    }
    if (writer_put(c->w, key, value, c->err) < 0) {
        c->failed = 1;
        return 1;
    }
    return 0;
}

/* map_delete - rewrite NAME.db without key */
int map_delete(const char *spec, const char *key, int flags, vbuf *err)
{
    const char *name;
    struct stat st;
    vbuf final, folded;
    db_writer w;
    copy_ctx c;
    DBTYPE type;
    DB *old;
    int ret = -1;

    vbuf_init(&final, 0);
    vbuf_init(&folded, 0);
    if (writer_target(spec, &type, &name, &final, err) < 0)
        goto out;
    vbuf_set(&folded, key);
    if (!(flags & MAP_KEEP_CASE))
        vbuf_lower(&folded);
    if ((old = db_open_file(vbuf_str(&final), type, &st, err)) == NULL)
        goto out;
    if (writer_create(&w, vbuf_str(&final), type, st.st_mode & 07777, err) < 0) {
        old->close(old, 0);
        goto out;
    }
    c.w = &w;
    c.skip = vbuf_str(&folded);
    c.removed = 0;
    c.failed = 0;
    c.err = err;
    if (db_walk(old, vbuf_str(&final), copy_entry, &c, err) < 0 || c.failed) {
        old->close(old, 0);
        writer_abort(&w);
        goto out;
    }
    old->close(old, 0);
    if (!c.removed) {
        writer_abort(&w);
        ret = 0;
        goto out;
    }
    ret = writer_commit(&w, st.st_mode & 07777, st.st_uid, st.st_gid, err) < 0 ? -1 : 1;
out:
    vbuf_release(&final);
    vbuf_release(&folded);
    return ret;
}
