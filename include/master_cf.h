/*
 * master_cf - parsing master.cf, Postfix's column format:
 *
 *     service type private unpriv chroot wakeup maxproc command [args...]
 *
 * '#' starts a comment line; a line that starts with white space continues
 * the previous entry. "-" in a column means its default (private y, but n
 * for inet; unpriv y; chroot n; wakeup 0; maxproc default_process_limit).
 * wakeup may end in '?' ("only when the service was used"; treated like a
 * plain wakeup here). Arguments are split at white space; "{ text }" is
 * one argument with the braces and surrounding blanks removed, so
 * "-o { name = value with spaces }" works as in Postfix 3. "-o name=value"
 * pairs are collected as overrides, "-v" sets verbose; the rest are passed
 * to the daemon unchanged.
 *
 * The parser trusts nothing in its input: every problem is reported as
 * "FILE:LINE: text" in the error list and the entry is dropped; parsing
 * goes on so that one run reports every problem.
 */
#ifndef KITE_MASTER_CF_H
#define KITE_MASTER_CF_H

#include <stddef.h>

#define MASTER_CF_LINE_MAX     (64 * 1024)   /* one logical entry */
#define MASTER_CF_MAX_ENTRIES  1000
#define MASTER_CF_MAX_ARGS     256
#define MASTER_CF_MAX_ERRORS   100

enum master_cf_type { MASTER_CF_INET = 1, MASTER_CF_UNIX };

typedef struct master_cf_entry {
    char *name;                         /* "smtp", "127.0.0.1:2525", "cleanup" */
    enum master_cf_type type;
    int private_;                       /* unix: private/ (1) or public/ (0) */
    int unpriv;                         /* drop to mail_owner */
    int chroot;                         /* chroot to queue_directory */
    int wakeup;                         /* seconds; 0 = none */
    int maxproc;                        /* -1 = default_process_limit; 0 = no limit */
    char *command;                      /* program name in daemon_directory */
    char **args;                        /* everything after the command, NULL-terminated */
    size_t nargs;
    char **overrides;                   /* "name=value" from -o, NULL-terminated */
    size_t noverrides;
    int verbose;                        /* -v given */
    char *host;                         /* inet: host part or NULL (all interfaces) */
    char *port;                         /* inet: port or service name */
    char *source;                       /* "FILE:LINE" of the entry */
} master_cf_entry;

typedef struct master_cf {
    master_cf_entry *entries;
    size_t count;
    char **errors;                      /* "FILE:LINE: problem" */
    size_t nerrors;
} master_cf;

/* master_cf_init - an empty table */
void master_cf_init(master_cf *cf);
/* master_cf_parse - parse text (not NUL-terminated); returns the error count */
int master_cf_parse(master_cf *cf, const char *path, const char *text, size_t len);
/* master_cf_read - read and parse a file; a missing file is an error */
int master_cf_read(master_cf *cf, const char *path);
/* master_cf_free - release everything parsed */
void master_cf_free(master_cf *cf);

/* master_cf_type_name - "inet" / "unix" */
const char *master_cf_type_name(enum master_cf_type type);
/* master_cf_find - the entry with this name and type, or NULL */
const master_cf_entry *master_cf_find(const master_cf *cf, const char *name, enum master_cf_type type);
/* master_cf_same - do two entries describe the same running service (all columns and args)? */
int master_cf_same(const master_cf_entry *a, const master_cf_entry *b);

#endif
