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
#define MAP_BUILD_ALIASES (1 << 0)      /* "name: a, b" source syntax */
/* map_build - (re)build TYPE:NAME.db from the source NAME; 0 or -1 (err) */
int map_build(const char *spec, int flags, vbuf *err);

#endif
