/*
 * map_impl - what the lookup table types share inside lib/ (not public).
 *
 * Each table type fills in a struct map: its lookup, optional iterate and
 * close methods, and private state. lib/maps.c dispatches on the type name,
 * folds keys, and offers the logical-line reader every text format uses.
 */
#ifndef KITE_MAP_IMPL_H
#define KITE_MAP_IMPL_H

#include <stddef.h>

#include "maps.h"
#include "vbuf.h"

struct map {
    char *spec;  /* "type:name" as opened */
    int flags;   /* MAP_KEEP_CASE */
    int pattern; /* pcre:/cidr: full-key lookups only */
    int fold;    /* fold keys to lowercase before lookup */
    const char *(*lookup)(map *m, const char *key, int *status);
    int (*iterate)(map *m, map_iter_fn fn, void *ctx, vbuf *err);
    void (*close)(map *m);
    vbuf result; /* the last lookup's result */
    vbuf key;    /* folded key */
    void *impl;  /* the type's state */
};

/* map_alloc - a map with spec and flags set, methods left to the caller */
map *map_alloc(const char *spec, int flags);
/* map_free_common - free what map_alloc made (after the type's close) */
void map_free_common(map *m);

/* map_seterr - replace err's content with a message (err may be NULL) */
void map_seterr(vbuf *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* map_read_file - whole file into buf (limit MAP_FILE_MAX); 0 or -1 (err) */
int map_read_file(const char *path, vbuf *buf, vbuf *err);

/*
 * Logical lines: "#" comment lines and blank lines are skipped, a line that
 * starts with white space continues the previous one (joined with one
 * space), NUL bytes and lines over MAP_LINE_MAX are errors.
 */
typedef struct map_lines {
    const char *name;    /* for messages */
    const char *p, *end; /* unread text */
    int lineno;          /* physical lines consumed */
    int line;            /* first line of the current logical line */
    vbuf buf;            /* the current logical line */
} map_lines;

void map_lines_init(map_lines *ml, const char *name, const char *text, size_t len);
/* map_lines_next - 1: a line in ml->buf; 0: end; -1: error in err */
int map_lines_next(map_lines *ml, vbuf *err);
void map_lines_release(map_lines *ml);

/*
 * map_nest - if/endif nesting of pattern tables (pcre:, cidr:). Each open
 * "if" is remembered with its rule index and line; errors name file:line.
 */
typedef struct map_nest {
    struct map_nest_if {
        size_t index;
        int line;
    } *open;
    size_t depth, space, max;
} map_nest;

int map_nest_if(map_nest *n, size_t index, const char *name, int line, vbuf *err);
/* map_nest_endif - the index of the matching "if", or -1 (err set) */
long map_nest_endif(map_nest *n, const char *name, int line, vbuf *err);
/* map_nest_finish - 0, or -1 (err set) when an "if" is still open; frees n */
int map_nest_finish(map_nest *n, const char *name, vbuf *err);
void map_nest_release(map_nest *n);

/* Type constructors (name is what follows "type:"). */
map *map_db_open(const char *spec, const char *type, const char *name, int flags, vbuf *err);
map *map_pcre_open_text(const char *spec, const char *name, const char *text, size_t len, int flags, vbuf *err);
map *map_cidr_open_text(const char *spec, const char *name, const char *text, size_t len, int flags, vbuf *err);
map *map_texthash_open_text(const char *spec, const char *name, const char *text, size_t len, int flags, vbuf *err);
map *map_inline_open(const char *spec, const char *body, int flags, vbuf *err);
map *map_static_open(const char *spec, const char *value, int flags, vbuf *err);

/* In-memory key/value table (texthash:, inline:), first duplicate wins. */
typedef struct map_mem map_mem;
map_mem *map_mem_new(void);
/* map_mem_add - 1 added, 0 duplicate key (ignored) */
int map_mem_add(map_mem *t, const char *key, const char *value);
const char *map_mem_get(const map_mem *t, const char *key);
size_t map_mem_count(const map_mem *t);
void map_mem_entry(const map_mem *t, size_t i, const char **key, const char **value);
void map_mem_free(map_mem *t);

#endif
