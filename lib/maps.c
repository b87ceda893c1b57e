/*
 * maps - lookup tables "type:name" behind one interface.
 *
 * Offers map_open/map_lookup/map_close (one table), maps_open/maps_find/
 * maps_find_addr (a parameter's list of tables, with Postfix's address
 * lookup order), and the source-text readers every text format shares:
 * logical lines (comments, continuation lines) and postmap/aliases(5)
 * entries. The table types live in lib/map_*.c.
 *
 * Trusts nothing it reads: table files are parsed strictly, and any
 * problem is reported as "file:line: why". A table that can't be opened
 * makes lookups fail with MAP_ERROR, never "not found".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "map_impl.h"
#include "maps.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "vbuf.h"

/* map_seterr - replace err's content with a formatted message */
void map_seterr(vbuf *err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    vbuf_reset(err);
    va_start(ap, fmt);
    if (vbuf_vprintf(err, fmt, ap) < 0)
        vbuf_set(err, "lookup table error (message too long)");
    va_end(ap);
}

/* map_alloc - a new map with its common fields set */
map *map_alloc(const char *spec, int flags)
{
    map *m = xcalloc(1, sizeof(*m));

    m->spec = xstrdup(spec);
    m->flags = flags;
    m->fold = !(flags & MAP_KEEP_CASE);
    vbuf_init(&m->result, 0);
    vbuf_init(&m->key, 0);
    return m;
}

/* map_free_common - free the common fields and the map itself */
void map_free_common(map *m)
{
    xfree(m->spec);
    vbuf_release(&m->result);
    vbuf_release(&m->key);
    xfree(m);
}

/* map_read_file - read a whole (regular) file into buf */
int map_read_file(const char *path, vbuf *buf, vbuf *err)
{
    struct stat st;
    char chunk[65536];
    ssize_t n;
    int fd;

    vbuf_reset(buf);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
        map_seterr(err, "open %s: %m", path);
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        map_seterr(err, "fstat %s: %m", path);
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        map_seterr(err, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    for (;;) {
        n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            map_seterr(err, "read %s: %m", path);
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        if (buf->len + (size_t) n > (size_t) MAP_FILE_MAX || vbuf_append(buf, chunk, (size_t) n) < 0) {
            map_seterr(err, "%s: file too large (over %ld bytes)", path, (long) MAP_FILE_MAX);
            close(fd);
            return -1;
        }
    }
    close(fd);
    return 0;
}

/* ---- logical lines -------------------------------------------------------- */

/* map_lines_init - start reading logical lines from text */
void map_lines_init(map_lines *ml, const char *name, const char *text, size_t len)
{
    ml->name = name;
    ml->p = text;
    ml->end = text + len;
    ml->lineno = 0;
    ml->line = 0;
    vbuf_init(&ml->buf, 0);
}

/* map_lines_release - free the line buffer */
void map_lines_release(map_lines *ml)
{
    vbuf_release(&ml->buf);
}

/* is_blank - space or tab */
static int is_blank(int ch)
{
    return ch == ' ' || ch == '\t';
}

/* map_lines_next - the next logical line into ml->buf */
int map_lines_next(map_lines *ml, vbuf *err)
{
    int have = 0;

    vbuf_reset(&ml->buf);
    while (ml->p < ml->end) {
        const char *nl = memchr(ml->p, '\n', (size_t) (ml->end - ml->p));
        const char *start = ml->p, *stop = nl ? nl : ml->end, *next = nl ? nl + 1 : ml->end;
        size_t linelen = (size_t) (stop - start);
        const char *q;
        int lineno = ml->lineno + 1;

        if (stop > start && stop[-1] == '\r')
            stop--;
        for (q = start; q < stop && is_blank(*q); q++)
            ;
        /* A new logical line starts here: leave it for the next call. */
        if (have && q == start && q < stop && *q != '#')
            break;
        ml->lineno = lineno;
        ml->p = next;
        if (memchr(start, 0, linelen) != NULL) {
            map_seterr(err, "%s:%d: NUL byte in line", ml->name, lineno);
            return -1;
        }
        while (stop > q && (is_blank(stop[-1]) || stop[-1] == '\r'))
            stop--;
        if (q == stop || *q == '#')
            continue; /* blank or comment line */
        if (q != start && !have) {
            map_seterr(err, "%s:%d: continuation line without a line to continue", ml->name, lineno);
            return -1;
        }
        if (ml->buf.len + (size_t) (stop - q) + 1 > MAP_LINE_MAX) {
            map_seterr(err, "%s:%d: line too long (over %d bytes)", ml->name, have ? ml->line : lineno, MAP_LINE_MAX);
            return -1;
        }
        if (have)
            vbuf_putc(&ml->buf, ' ');
        else
            ml->line = lineno;
        vbuf_append(&ml->buf, q, (size_t) (stop - q));
        have = 1;
    }
    return have;
}

/* ---- postmap and aliases(5) source entries ---------------------------------- */

/* lower_ascii - ASCII lowercase in place */
static void lower_ascii(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char) (*s + ('a' - 'A'));
}

/* parse_alias_line - split "name: value" (name may be "quoted") */
static int parse_alias_line(map_lines *ml, char *s, char **key, char **value, vbuf *err)
{
    char *p, *k;

    if (*s == '"') {
        /* Quoted name: backslash escapes the next character. */
        char *w = s;

        for (p = s + 1; *p && *p != '"'; p++) {
            if (*p == '\\' && p[1])
                p++;
            *w++ = *p;
        }
        if (*p != '"') {
            map_seterr(err, "%s:%d: unterminated quoted alias name", ml->name, ml->line);
            return -1;
        }
        *w = 0;
        k = s;
        p++;
        while (is_blank(*p))
            p++;
        if (*p != ':') {
            map_seterr(err, "%s:%d: expected \"name: value\"", ml->name, ml->line);
            return -1;
        }
    } else {
        if ((p = strchr(s, ':')) == NULL) {
            map_seterr(err, "%s:%d: expected \"name: value\" (no colon)", ml->name, ml->line);
            return -1;
        }
        *p = 0;
        k = s;
        for (char *e = p; e > k && is_blank(e[-1]); e--)
            e[-1] = 0;
        if (strpbrk(k, " \t\"") != NULL) {
            map_seterr(err, "%s:%d: alias name \"%s\" must be quoted to contain blanks or quotes", ml->name, ml->line,
                       k);
            return -1;
        }
    }
    *p++ = 0;
    while (is_blank(*p))
        p++;
    if (*k == 0) {
        map_seterr(err, "%s:%d: empty alias name", ml->name, ml->line);
        return -1;
    }
    if (*p == 0) {
        map_seterr(err, "%s:%d: alias \"%s\" has no value", ml->name, ml->line, k);
        return -1;
    }
    *key = k;
    *value = p;
    return 0;
}

/* map_source_parse - split source text into key/value entries */
int map_source_parse(const char *name, const char *text, size_t len, int flags, map_source_fn fn, void *ctx, vbuf *err)
{
    map_lines ml;
    char *key, *value, *p;
    int r;

    map_lines_init(&ml, name, text, len);
    while ((r = map_lines_next(&ml, err)) == 1) {
        char *s = ml.buf.data;

        if (flags & MAP_BUILD_ALIASES) {
            if (parse_alias_line(&ml, s, &key, &value, err) < 0) {
                r = -1;
                break;
            }
        } else {
            key = s;
            for (p = s; *p && !is_blank(*p); p++)
                ;
            if (*p == 0) {
                map_seterr(err, "%s:%d: expected format: key whitespace value", name, ml.line);
                r = -1;
                break;
            }
            *p++ = 0;
            while (is_blank(*p))
                p++;
            if (*p == 0) {
                map_seterr(err, "%s:%d: expected format: key whitespace value", name, ml.line);
                r = -1;
                break;
            }
            value = p;
        }
        if (!(flags & MAP_KEEP_CASE))
            lower_ascii(key);
        if (fn(ctx, key, value, ml.line, err) < 0) {
            r = -1;
            break;
        }
    }
    map_lines_release(&ml);
    return r < 0 ? -1 : 0;
}

/* ---- one table ---------------------------------------------------------- */

/* split_spec - "type:name" into its parts; -1 when there is no type */
static int split_spec(const char *spec, vbuf *type, const char **name)
{
    const char *colon = strchr(spec, ':');

    if (colon == NULL || colon == spec)
        return -1;
    vbuf_setn(type, spec, (size_t) (colon - spec));
    *name = colon + 1;
    return 0;
}

/* open_file_type - read a text table file and build it in memory */
static map *open_file_type(const char *spec, const char *type, const char *name, int flags, vbuf *err)
{
    vbuf text;
    map *m;

    if (*name == 0) {
        map_seterr(err, "%s: missing file name", spec);
        return NULL;
    }
    vbuf_init(&text, 0);
    if (map_read_file(name, &text, err) < 0) {
        vbuf_release(&text);
        return NULL;
    }
    m = map_open_text(type, name, text.data, text.len, flags, err);
    vbuf_release(&text);
    return m;
}

/* map_open_text - a text-format table from memory */
map *map_open_text(const char *type, const char *name, const char *text, size_t len, int flags, vbuf *err)
{
    vbuf spec;
    map *m = NULL;

    vbuf_init(&spec, 0);
    vbuf_printf(&spec, "%s:%s", type, name);
    if (strcmp(type, "pcre") == 0)
        m = map_pcre_open_text(vbuf_str(&spec), name, text, len, flags, err);
    else if (strcmp(type, "cidr") == 0)
        m = map_cidr_open_text(vbuf_str(&spec), name, text, len, flags, err);
    else if (strcmp(type, "texthash") == 0)
        m = map_texthash_open_text(vbuf_str(&spec), name, text, len, flags, err);
    else
        map_seterr(err, "%s: table type \"%s\" can't be read from text", vbuf_str(&spec), type);
    vbuf_release(&spec);
    return m;
}

/* map_open - open one table "type:name" */
map *map_open(const char *spec, int flags, vbuf *err)
{
    vbuf type;
    const char *name;
    map *m = NULL;
    const char *t;

    vbuf_init(&type, 0);
    if (split_spec(spec, &type, &name) < 0) {
        map_seterr(err, "%s: lookup table needs the form type:name", spec);
        vbuf_release(&type);
        return NULL;
    }
    t = vbuf_str(&type);
    if (strcmp(t, "hash") == 0 || strcmp(t, "btree") == 0)
        m = map_db_open(spec, t, name, flags, err);
    else if (strcmp(t, "pcre") == 0 || strcmp(t, "cidr") == 0 || strcmp(t, "texthash") == 0)
        m = open_file_type(spec, t, name, flags, err);
    else if (strcmp(t, "static") == 0)
        m = map_static_open(spec, name, flags, err);
    else if (strcmp(t, "inline") == 0)
        m = map_inline_open(spec, name, flags, err);
    else
        map_seterr(err, "%s: unsupported lookup table type \"%s\"", spec, t);
    vbuf_release(&type);
    return m;
}

/* map_lookup - look key up; the result lives until the next lookup */
const char *map_lookup(map *m, const char *key, int *status)
{
    if (m->fold && !m->pattern) {
        vbuf_set(&m->key, key);
        vbuf_lower(&m->key);
        key = vbuf_str(&m->key);
    }
    return m->lookup(m, key, status);
}

/* map_spec - the "type:name" the table was opened as */
const char *map_spec(const map *m)
{
    return m->spec;
}

/* map_close - release a table */
void map_close(map *m)
{
    if (m == NULL)
        return;
    if (m->close)
        m->close(m);
    map_free_common(m);
}

/* map_iterate - every entry of a table that can list itself */
int map_iterate(map *m, map_iter_fn fn, void *ctx, vbuf *err)
{
    if (m->iterate == NULL) {
        map_seterr(err, "%s: table type does not support listing its entries", m->spec);
        return -1;
    }
    return m->iterate(m, fn, ctx, err);
}

/* ---- lists of tables ------------------------------------------------------ */

typedef struct maps_entry {
    char *spec;
    map *m;          /* NULL: failed to open */
    time_t last_try; /* when opening was last tried */
} maps_entry;

struct maps {
    char *param;
    int flags;
    size_t count;
    maps_entry *entries;
};

/* next_spec - the next table spec in a list, honouring {...} groups */
static int next_spec(const char **cursor, vbuf *out)
{
    const char *p = *cursor;
    int depth = 0;

    while (*p && strchr(", \t\r\n", *p))
        p++;
    if (*p == 0) {
        *cursor = p;
        return 0;
    }
    vbuf_reset(out);
    for (; *p; p++) {
        if (*p == '{')
            depth++;
        else if (*p == '}' && depth > 0)
            depth--;
        else if (depth == 0 && strchr(", \t\r\n", *p))
            break;
        vbuf_putc(out, *p);
    }
    *cursor = p;
    return 1;
}

/* entry_open - (re)try opening one entry of a list */
static void entry_open(maps *ms, maps_entry *e)
{
    vbuf err;

    vbuf_init(&err, 0);
    e->last_try = time(NULL);
    if ((e->m = map_open(e->spec, ms->flags, &err)) == NULL)
        msg_warn("%s: %s: %s", ms->param, e->spec, vbuf_str(&err));
    vbuf_release(&err);
}

/* maps_open - the tables named by a parameter value */
maps *maps_open(const char *param_name, const char *value, int flags)
{
    maps *ms = xcalloc(1, sizeof(*ms));
    const char *cursor = value ? value : "";
    vbuf spec;

    ms->param = xstrdup(param_name ? param_name : "lookup tables");
    ms->flags = flags;
    vbuf_init(&spec, 0);
    while (next_spec(&cursor, &spec)) {
        maps_entry *e;

        ms->entries = xreallocarray(ms->entries, ms->count + 1, sizeof(*ms->entries));
        e = &ms->entries[ms->count++];
        e->spec = xstrdup(vbuf_str(&spec));
        e->m = NULL;
        entry_open(ms, e);
    }
    vbuf_release(&spec);
    return ms;
}

/* maps_ready - every table open (retrying failed ones once a second) */
static int maps_ready(maps *ms)
{
    int ok = 1;

    for (size_t i = 0; i < ms->count; i++) {
        maps_entry *e = &ms->entries[i];

        if (e->m == NULL && time(NULL) != e->last_try)
            entry_open(ms, e);
        if (e->m == NULL)
            ok = 0;
    }
    return ok;
}

/* find - look key up in each table in turn; fixed_only skips pattern tables */
static const char *find(maps *ms, const char *key, int fixed_only, int *status)
{
    for (size_t i = 0; i < ms->count; i++) {
        map *m = ms->entries[i].m;
        const char *r;

        if (fixed_only && m->pattern)
            continue;
        r = map_lookup(m, key, status);
        if (*status != MAP_NOTFOUND)
            return *status == MAP_FOUND ? r : NULL;
    }
    *status = MAP_NOTFOUND;
    return NULL;
}

/* maps_find - first table that has key */
const char *maps_find(maps *ms, const char *key, int *status)
{
    if (!maps_ready(ms)) {
        *status = MAP_ERROR;
        return NULL;
    }
    return find(ms, key, 0, status);
}

/* maps_empty - no tables at all */
int maps_empty(const maps *ms)
{
    return ms->count == 0;
}

/* maps_close - release the list and its tables */
void maps_close(maps *ms)
{
    if (ms == NULL)
        return;
    for (size_t i = 0; i < ms->count; i++) {
        map_close(ms->entries[i].m);
        xfree(ms->entries[i].spec);
    }
    xfree(ms->entries);
    xfree(ms->param);
    xfree(ms);
}

/* ext_split - length of the local part without its extension, or 0 */
static size_t ext_split(const char *local, size_t len)
{
    const char *delims = var_recipient_delimiter;
    size_t i;

    if (delims == NULL || *delims == 0)
        return 0;
    for (i = 0; i < len; i++)
        if (strchr(delims, local[i]) != NULL)
            break;
    if (i == 0 || i == len)
        return 0;
    /* As Postfix: owner-list and list-request keep their names. */
    if (local[i] == '-') {
        if (len - i == sizeof("-request") - 1 && strncasecmp(local + i, "-request", len - i) == 0)
            return 0;
        if (i == sizeof("owner") - 1 && strncasecmp(local, "owner", i) == 0)
            return 0;
    }
    return i;
}

/* maps_find_addr - user+ext@domain, user@domain, user+ext, user, @domain */
const char *maps_find_addr(maps *ms, const char *addr, int flags, int *status)
{
    const char *at = strrchr(addr, '@');
    size_t local_len = at ? (size_t) (at - addr) : strlen(addr);
    size_t base = ext_split(addr, local_len);
    const char *r;
    vbuf key;

    if (!maps_ready(ms)) {
        *status = MAP_ERROR;
        return NULL;
    }
    /* 1: the address as given (the only form pattern tables see). */
    if ((r = find(ms, addr, 0, status)) != NULL || *status == MAP_ERROR)
        return r;
    vbuf_init(&key, 0);
    /* 2: without the extension. */
    if (base) {
        vbuf_setn(&key, addr, base);
        if (at)
            vbuf_puts(&key, at);
        if ((r = find(ms, vbuf_str(&key), 1, status)) != NULL || *status == MAP_ERROR)
            goto done;
    }
    /* 3: the local part alone, only for local domains. */
    if (at && (flags & MAPS_ADDR_LOCAL)) {
        vbuf_setn(&key, addr, local_len);
        if ((r = find(ms, vbuf_str(&key), 1, status)) != NULL || *status == MAP_ERROR)
            goto done;
        if (base) {
            vbuf_setn(&key, addr, base);
            if ((r = find(ms, vbuf_str(&key), 1, status)) != NULL || *status == MAP_ERROR)
                goto done;
        }
    }
    /* 4: the domain as "@domain". */
    if (at && at[1]) {
        vbuf_set(&key, at);
        if ((r = find(ms, vbuf_str(&key), 1, status)) != NULL || *status == MAP_ERROR)
            goto done;
    }
    r = NULL;
    *status = MAP_NOTFOUND;
done:
    vbuf_release(&key);
    return r;
}

/* map_nest_if - open an "if" at rule index; -1 when nested too deeply */
int map_nest_if(map_nest *n, size_t index, const char *name, int line, vbuf *err)
{
    if (n->depth == n->max) {
        map_seterr(err, "%s:%d: \"if\" nested too deeply", name, line);
        return -1;
    }
    if (n->depth == n->space) {
        n->space = n->space ? n->space * 2 : 8;
        n->open = xreallocarray(n->open, n->space, sizeof(*n->open));
    }
    n->open[n->depth].index = index;
    n->open[n->depth].line = line;
    n->depth++;
    return 0;
}

/* map_nest_endif - close the innermost "if"; its rule index, or -1 */
long map_nest_endif(map_nest *n, const char *name, int line, vbuf *err)
{
    if (n->depth == 0) {
        map_seterr(err, "%s:%d: \"endif\" without \"if\"", name, line);
        return -1;
    }
    return (long) n->open[--n->depth].index;
}

/* map_nest_finish - every "if" must be closed; frees n */
int map_nest_finish(map_nest *n, const char *name, vbuf *err)
{
    int r = 0;

    if (n->depth > 0) {
        map_seterr(err, "%s:%d: \"if\" without \"endif\"", name, n->open[n->depth - 1].line);
        r = -1;
    }
    map_nest_release(n);
    return r;
}

/* map_nest_release - free n's storage */
void map_nest_release(map_nest *n)
{
    xfree(n->open);
    n->open = NULL;
    n->depth = n->space = 0;
}
