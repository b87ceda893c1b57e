/*
 * maps - lookup tables "type:name" behind one interface.
 *
 * Types: hash: and btree: (Berkeley DB files NAME.db built by kitemap),
 * pcre: (PCRE2 pattern files: /re/flags result, $1 substitution,
 * if/endif), cidr:, static:, inline:{k=v, ...}, texthash: (the source file
 * read into memory). Keys are folded to lowercase unless the table is
 * opened with MAP_KEEP_CASE (pcre: tables match case-insensitively unless
 * the pattern's flags say otherwise, as in Postfix).
 *
 * A lookup result is valid until the next lookup on the same table.
 */
#ifndef KITE_MAPS_H
#define KITE_MAPS_H

#include "vbuf.h"

#define MAP_FOUND     1
#define MAP_NOTFOUND  0
#define MAP_ERROR    (-1)               /* table unreadable: defer, never guess */

#define MAP_KEEP_CASE (1 << 0)

typedef struct map map;
typedef struct maps maps;

/* map_open - open one table; NULL with the reason in err */
map *map_open(const char *spec, int flags, vbuf *err);
const char *map_lookup(map *m, const char *key, int *status);
const char *map_spec(const map *m);
void map_close(map *m);

/*
 * maps_open - a list of tables from a parameter value ("hash:/a, pcre:/b");
 * an empty value gives an empty list (every lookup: not found). A table
 * that can't be opened is logged (naming the parameter) and makes every
 * lookup return MAP_ERROR, so mail is deferred rather than misrouted.
 */
maps *maps_open(const char *param_name, const char *value, int flags);
const char *maps_find(maps *m, const char *key, int *status);
int maps_empty(const maps *m);
void maps_close(maps *m);

/*
 * maps_find_addr - Postfix's address lookup order: "user+ext@domain",
 * "user@domain", then "user" (only when the domain is local, flag
 * MAPS_ADDR_LOCAL), then "@domain". With recipient_delimiter set, the
 * form without the extension is tried after each form with it.
 */
#define MAPS_ADDR_LOCAL (1 << 0)
const char *maps_find_addr(maps *m, const char *addr, int flags, int *status);

/* Berkeley DB files, for kitemap and newaliases. */
#define MAP_BUILD_ALIASES (1 << 1)      /* "name: a, b" source syntax (distinct from MAP_KEEP_CASE) */
/* map_build - (re)build TYPE:NAME.db from the source NAME; 0 or -1 (err) */
int map_build(const char *spec, int flags, vbuf *err);

/*
 * Additions for kitemap, newaliases and the fuzz targets.
 */

/* map_iterate - call fn for every entry (hash, btree, texthash, inline,
 * static); fn returns non-zero to stop. 0, or -1 (err) when the table type
 * can't be listed or reading fails. */
typedef int (*map_iter_fn)(void *ctx, const char *key, const char *value);
int map_iterate(map *m, map_iter_fn fn, void *ctx, vbuf *err);

/* map_delete - remove key from TYPE:NAME.db (atomically rewritten);
 * 1 removed, 0 not there, -1 error (err) */
int map_delete(const char *spec, const char *key, int flags, vbuf *err);

/* map_open_text - a pcre:, cidr: or texthash: table from text in memory;
 * name is used in file:line messages. NULL with the reason in err. */
map *map_open_text(const char *type, const char *name, const char *text, size_t len, int flags, vbuf *err);

/*
 * map_source_parse - split postmap-style source text (or aliases(5) text
 * with MAP_BUILD_ALIASES) into entries: fn gets each key (folded unless
 * MAP_KEEP_CASE), value and first line number, and returns 0 to go on or
 * -1 to stop (with err set). Returns 0, or -1 with "name:line: why" in err.
 */
typedef int (*map_source_fn)(void *ctx, const char *key, const char *value, int line, vbuf *err);
int map_source_parse(const char *name, const char *text, size_t len, int flags, map_source_fn fn, void *ctx,
                     vbuf *err);

#define MAP_LINE_MAX  (1024 * 1024)     /* longest logical source line */
#define MAP_FILE_MAX  (512L * 1024 * 1024)      /* largest source file */

#endif
