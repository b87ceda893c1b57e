/*
 * map_mem - tables that live in memory: static:, inline:{...}, texthash:.
 *
 * Offers the in-memory key/value table (insertion order kept for listing,
 * a hash index for lookups, the first of duplicate keys wins) and the
 * three table types built on it. Trusts nothing in the inline text or the
 * texthash source: both are parsed strictly with clear errors.
 */
#include <stdint.h>
#include <string.h>

#include "map_impl.h"
#include "maps.h"
#include "msg.h"
#include "mymalloc.h"
#include "vbuf.h"

/* ---- the in-memory table -------------------------------------------------- */

typedef struct mem_entry {
    char *key;
    char *value;
} mem_entry;

struct map_mem {
    mem_entry *entries; /* insertion order */
    size_t count, space;
    size_t *index;     /* open addressing: entry number + 1, 0 = free */
    size_t index_size; /* power of two */
};

/* hash_key - FNV-1a over the key */
static uint64_t hash_key(const char *key)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *key; key++) {
        h ^= (unsigned char) *key;
        h *= 1099511628211ULL;
    }
    return h;
}

/* slot_of - the index slot holding key, or the free slot where it goes */
static size_t slot_of(const map_mem *t, const char *key)
{
    size_t mask = t->index_size - 1, i = (size_t) hash_key(key) & mask;

    while (t->index[i] != 0 && strcmp(t->entries[t->index[i] - 1].key, key) != 0)
        i = (i + 1) & mask;
    return i;
}

/* grow_index - double the index and rehash every entry */
static void grow_index(map_mem *t)
{
    size_t n = t->index_size ? size_mul(t->index_size, 2) : 64;

    xfree(t->index);
    t->index = xcalloc(n, sizeof(*t->index));
    t->index_size = n;
    for (size_t e = 0; e < t->count; e++)
        t->index[slot_of(t, t->entries[e].key)] = e + 1;
}

/* map_mem_new - an empty table */
map_mem *map_mem_new(void)
{
    map_mem *t = xcalloc(1, sizeof(*t));

    grow_index(t);
    return t;
}

/* map_mem_add - add key=value unless key is there already */
int map_mem_add(map_mem *t, const char *key, const char *value)
{
    size_t slot;

    if (t->index[slot_of(t, key)] != 0)
        return 0;
    if ((t->count + 1) * 2 > t->index_size)
        grow_index(t);
    if (t->count == t->space) {
        t->space = t->space ? size_mul(t->space, 2) : 16;
        t->entries = xreallocarray(t->entries, t->space, sizeof(*t->entries));
    }
    t->entries[t->count].key = xstrdup(key);
    t->entries[t->count].value = xstrdup(value);
    slot = slot_of(t, key);
    t->index[slot] = ++t->count;
    return 1;
}

/* map_mem_seal - nothing to do for a hash index; kept for symmetry */
void map_mem_seal(map_mem *t)
{
    (void) t;
}

/* map_mem_get - the value for key, or NULL */
const char *map_mem_get(const map_mem *t, const char *key)
{
    size_t e = t->index[slot_of(t, key)];

    return e ? t->entries[e - 1].value : NULL;
}

/* map_mem_count - number of entries */
size_t map_mem_count(const map_mem *t)
{
    return t->count;
}

/* map_mem_entry - entry i in insertion order */
void map_mem_entry(const map_mem *t, size_t i, const char **key, const char **value)
{
    *key = t->entries[i].key;
    *value = t->entries[i].value;
}

/* map_mem_free - release the table */
void map_mem_free(map_mem *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->count; i++) {
        xfree(t->entries[i].key);
        xfree(t->entries[i].value);
    }
    xfree(t->entries);
    xfree(t->index);
    xfree(t);
}

/* ---- texthash: and inline: ------------------------------------------------ */

/* mem_lookup - lookup in the map's memory table */
static const char *mem_lookup(map *m, const char *key, int *status)
{
    const char *v = map_mem_get(m->impl, key);

    if (v == NULL) {
        *status = MAP_NOTFOUND;
        return NULL;
    }
    vbuf_set(&m->result, v);
    *status = MAP_FOUND;
    return vbuf_str(&m->result);
}

/* mem_iterate - every entry in insertion order */
static int mem_iterate(map *m, map_iter_fn fn, void *ctx, vbuf *err)
{
    const map_mem *t = m->impl;

    (void) err;
    for (size_t i = 0; i < t->count; i++)
        if (fn(ctx, t->entries[i].key, t->entries[i].value))
            break;
    return 0;
}

/* mem_close - free the memory table */
static void mem_close(map *m)
{
    map_mem_free(m->impl);
}

/* mem_map - a map around a memory table */
static map *mem_map(const char *spec, int flags, map_mem *t)
{
    map *m = map_alloc(spec, flags);

    m->impl = t;
    m->lookup = mem_lookup;
    m->iterate = mem_iterate;
    m->close = mem_close;
    return m;
}

typedef struct texthash_ctx {
    map_mem *t;
    const char *name;
} texthash_ctx;

/* texthash_add - one source entry; duplicates are warned about */
static int texthash_add(void *ctx, const char *key, const char *value, int line, vbuf *err)
{
    texthash_ctx *tc = ctx;

    (void) err;
    if (!map_mem_add(tc->t, key, value))
        msg_warn("%s:%d: duplicate entry \"%s\", keeping the first", tc->name, line, key);
    return 0;
}

/* map_texthash_open_text - a postmap-format source read into memory */
map *map_texthash_open_text(const char *spec, const char *name, const char *text, size_t len, int flags, vbuf *err)
{
    texthash_ctx tc;

    tc.t = map_mem_new();
    tc.name = name;
    if (map_source_parse(name, text, len, flags & MAP_KEEP_CASE, texthash_add, &tc, err) < 0) {
        map_mem_free(tc.t);
        return NULL;
    }
    return mem_map(spec, flags, tc.t);
}

/* inline_element - add one "key=value" element */
static int inline_element(map_mem *t, const char *spec, const char *elem, size_t len, int flags, vbuf *err)
{
    const char *eq = memchr(elem, '=', len);
    vbuf key, value;
    int ret = 0;

    if (eq == NULL) {
        map_seterr(err, "%s: expected key=value, found \"%.*s\"", spec, (int) len, elem);
        return -1;
    }
    vbuf_init(&key, 0);
    vbuf_init(&value, 0);
    vbuf_setn(&key, elem, (size_t) (eq - elem));
    vbuf_setn(&value, eq + 1, len - (size_t) (eq - elem) - 1);
    vbuf_trim(&key);
    vbuf_trim(&value);
    if (key.len == 0) {
        map_seterr(err, "%s: empty key in \"%.*s\"", spec, (int) len, elem);
        ret = -1;
    } else {
        if (!(flags & MAP_KEEP_CASE))
            vbuf_lower(&key);
        map_mem_add(t, vbuf_str(&key), vbuf_str(&value));
    }
    vbuf_release(&key);
    vbuf_release(&value);
    return ret;
}

/* map_inline_open - inline:{key=value, { key = value with spaces }} */
map *map_inline_open(const char *spec, const char *body, int flags, vbuf *err)
{
    size_t len = strlen(body);
    const char *p, *end;
    map_mem *t;

    if (len < 2 || body[0] != '{' || body[len - 1] != '}') {
        map_seterr(err, "%s: expected inline:{key=value, ...}", spec);
        return NULL;
    }
    if (memchr(body, '\n', len) != NULL) {
        map_seterr(err, "%s: newline inside inline table", spec);
        return NULL;
    }
    t = map_mem_new();
    p = body + 1;
    end = body + len - 1;
    for (;;) {
        const char *start;

        while (p < end && strchr(", \t\r", *p))
            p++;
        if (p >= end)
            break;
        if (*p == '{') {
            int depth = 1;

            start = ++p;
            while (p < end && depth > 0) {
                if (*p == '{')
                    depth++;
                else if (*p == '}')
                    depth--;
                p++;
            }
            if (depth != 0) {
                map_seterr(err, "%s: missing '}'", spec);
                map_mem_free(t);
                return NULL;
            }
            if (inline_element(t, spec, start, (size_t) (p - 1 - start), flags, err) < 0) {
                map_mem_free(t);
                return NULL;
            }
            if (p < end && !strchr(", \t\r", *p)) {
                map_seterr(err, "%s: text after '}' in an element", spec);
                map_mem_free(t);
                return NULL;
            }
        } else {
            start = p;
            while (p < end && !strchr(", \t\r", *p)) {
                if (*p == '{' || *p == '}') {
                    map_seterr(err, "%s: unexpected '%c' inside an element", spec, *p);
                    map_mem_free(t);
                    return NULL;
                }
                p++;
            }
            if (inline_element(t, spec, start, (size_t) (p - start), flags, err) < 0) {
                map_mem_free(t);
                return NULL;
            }
        }
    }
    return mem_map(spec, flags, t);
}

/* ---- static: ------------------------------------------------------------- */

/* static_lookup - every key finds the same value */
static const char *static_lookup(map *m, const char *key, int *status)
{
    (void) key;
    *status = MAP_FOUND;
    return vbuf_str(&m->result);
}

/* map_static_open - static:value or static:{value with spaces} */
map *map_static_open(const char *spec, const char *value, int flags, vbuf *err)
{
    size_t len = strlen(value);
    map *m;

    if (len > 0 && value[0] == '{') {
        if (len < 2 || value[len - 1] != '}') {
            map_seterr(err, "%s: missing '}'", spec);
            return NULL;
        }
        value++;
        len -= 2;
    }
    m = map_alloc(spec, flags);
    m->lookup = static_lookup;
    vbuf_setn(&m->result, value, len);
    vbuf_trim(&m->result);
    return m;
}
