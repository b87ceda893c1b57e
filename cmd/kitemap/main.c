/*
 * kitemap - build, query and edit lookup tables (Postfix's postmap):
 *
 *     kitemap [-c confdir] [-A] [-f] [-v] [type:]name ...     build NAME.db
 *     kitemap [-c confdir] [-A] [-f] -q KEY|- type:name ...   query
 *     kitemap [-c confdir] [-A] [-f] -d KEY type:name ...     delete
 *     kitemap [-c confdir] [-A] -s type:name ...              list entries
 *
 * A name without a type means hash:. -A reads aliases(5) syntax (as
 * newaliases does); with -A and no table, alias_database is built. -f keeps
 * the case of keys. -q - reads keys from standard input and prints
 * "key<TAB>value" for each one found.
 *
 * Exit status for -q and -d: 0 found, 1 not found, 2 error (as postmap's).
 * Building exits 1 on any error, leaving the old .db file in place.
 * Trusts the source files only through the maps module's strict parsers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "maps.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "vbuf.h"

#define EXIT_FOUND 0
#define EXIT_NOTFOUND 1
#define EXIT_TROUBLE 2

/* usage - the command line, then exit */
static void usage(void) __attribute__((noreturn));
static void usage(void)
{
    fprintf(stderr, "usage: kitemap [-c confdir] [-A] [-f] [-v] [-q key | -d key | -s] [type:]name ...\n");
    exit(EXIT_TROUBLE);
}

/* table_spec - "type:name", with hash: for a bare name */
static void table_spec(const char *arg, vbuf *out)
{
    vbuf_reset(out);
    if (strchr(arg, ':') == NULL)
        vbuf_puts(out, "hash:");
    vbuf_puts(out, arg);
}

/* build - rebuild each table; 0 or 1 */
static int build(char **tables, int count, int flags)
{
    vbuf spec, err;
    int status = 0;

    vbuf_init(&spec, 0);
    vbuf_init(&err, 0);
    for (int i = 0; i < count; i++) {
        table_spec(tables[i], &spec);
        if (map_build(vbuf_str(&spec), flags, &err) < 0) {
            msg_error("%s", vbuf_str(&err));
            status = 1;
        }
    }
    vbuf_release(&spec);
    vbuf_release(&err);
    return status;
}

/* open_all - open the tables named on the command line; NULL entries fail */
static map **open_all(char **tables, int count, int flags, int *failed)
{
    map **tabs = xcalloc((size_t) count, sizeof(*tabs));
    vbuf spec, err;

    *failed = 0;
    vbuf_init(&spec, 0);
    vbuf_init(&err, 0);
    for (int i = 0; i < count; i++) {
        table_spec(tables[i], &spec);
        if ((tabs[i] = map_open(vbuf_str(&spec), flags, &err)) == NULL) {
            msg_error("%s", vbuf_str(&err));
            *failed = 1;
        }
    }
    vbuf_release(&spec);
    vbuf_release(&err);
    return tabs;
}

/* close_all - close what open_all opened */
static void close_all(map **tabs, int count)
{
    for (int i = 0; i < count; i++)
        map_close(tabs[i]);
    xfree(tabs);
}

/* query_one - first table that has key; 0 found, 1 not, 2 error */
static int query_one(map **tabs, int count, const char *key, const char **value)
{
    for (int i = 0; i < count; i++) {
        int status;
        const char *v = map_lookup(tabs[i], key, &status);

        if (status == MAP_FOUND) {
            *value = v;
            return EXIT_FOUND;
        }
        if (status == MAP_ERROR) {
            msg_error("%s: lookup of \"%s\" failed", map_spec(tabs[i]), key);
            return EXIT_TROUBLE;
        }
    }
    return EXIT_NOTFOUND;
}

/* query - -q KEY, or -q - for keys on standard input */
static int query(const char *key, char **tables, int count, int flags)
{
    const char *value;
    int failed, ret;
    map **tabs = open_all(tables, count, flags, &failed);

    if (failed) {
        close_all(tabs, count);
        return EXIT_TROUBLE;
    }
    if (strcmp(key, "-") != 0) {
        if ((ret = query_one(tabs, count, key, &value)) == EXIT_FOUND)
            printf("%s\n", value);
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        int any = 0;

        ret = EXIT_NOTFOUND;
        while ((n = getline(&line, &cap, stdin)) > 0) {
            int r;

            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                line[--n] = 0;
            if (n == 0)
                continue;
            r = query_one(tabs, count, line, &value);
            if (r == EXIT_FOUND) {
                printf("%s\t%s\n", line, value);
                any = 1;
            } else if (r == EXIT_TROUBLE) {
                ret = EXIT_TROUBLE;
                break;
            }
        }
        free(line);
        if (ret != EXIT_TROUBLE && any)
            ret = EXIT_FOUND;
    }
    close_all(tabs, count);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        msg_error("write to standard output: %m");
        return EXIT_TROUBLE;
    }
    return ret;
}

/* delete - -d KEY from each table; 0 removed somewhere, 1 not, 2 error */
static int delete (const char *key, char **tables, int count, int flags)
{
    vbuf spec, err;
    int ret = EXIT_NOTFOUND;

    vbuf_init(&spec, 0);
    vbuf_init(&err, 0);
    for (int i = 0; i < count; i++) {
        int r;

        table_spec(tables[i], &spec);
        r = map_delete(vbuf_str(&spec), key, flags, &err);
        if (r < 0) {
            msg_error("%s", vbuf_str(&err));
            ret = EXIT_TROUBLE;
        } else if (r > 0 && ret != EXIT_TROUBLE) {
            ret = EXIT_FOUND;
        }
    }
    vbuf_release(&spec);
    vbuf_release(&err);
    return ret;
}

/* print_entry - one "key value" line */
static int print_entry(void *ctx, const char *key, const char *value)
{
    int *aliases = ctx;

    printf(*aliases ? "%s: %s\n" : "%s %s\n", key, value);
    return 0;
}

/* dump - -s: every entry of each table */
static int dump(char **tables, int count, int flags)
{
    int failed, ret = 0, aliases = (flags & MAP_BUILD_ALIASES) != 0;
    map **tabs = open_all(tables, count, flags & MAP_KEEP_CASE, &failed);
    vbuf err;

    vbuf_init(&err, 0);
    for (int i = 0; i < count; i++) {
        if (tabs[i] == NULL)
            continue;
        if (map_iterate(tabs[i], print_entry, &aliases, &err) < 0) {
            msg_error("%s", vbuf_str(&err));
            ret = EXIT_TROUBLE;
        }
    }
    vbuf_release(&err);
    close_all(tabs, count);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        msg_error("write to standard output: %m");
        return EXIT_TROUBLE;
    }
    return failed ? EXIT_TROUBLE : ret;
}

/* alias_tables - the tables in alias_database (for newaliases) */
static char **alias_tables(int *count)
{
    char *copy = xstrdup(var_alias_database ? var_alias_database : "");
    char **list = NULL;
    char *cursor = copy, *tok;

    *count = 0;
    while ((tok = strsep(&cursor, ", \t\r\n")) != NULL) {
        if (*tok == 0)
            continue;
        list = xreallocarray(list, (size_t) *count + 1, sizeof(*list));
        list[(*count)++] = xstrdup(tok);
    }
    xfree(copy);
    return list;
}

int main(int argc, char **argv)
{
    const char *confdir = NULL, *qkey = NULL, *dkey = NULL;
    int ch, flags = 0, list = 0, count, ret;
    char **tables;

    msg_init("kitemap");
    while ((ch = getopt(argc, argv, "Ac:d:fq:sv")) != -1) {
        switch (ch) {
        case 'A':
            flags |= MAP_BUILD_ALIASES;
            break;
        case 'c':
            confdir = optarg;
            break;
        case 'd':
            dkey = optarg;
            break;
        case 'f':
            flags |= MAP_KEEP_CASE;
            break;
        case 'q':
            qkey = optarg;
            break;
        case 's':
            list = 1;
            break;
        case 'v':
            msg_verbose++;
            break;
        default:
            usage();
        }
    }
    if ((qkey != NULL) + (dkey != NULL) + list > 1)
        usage();
    if (confdir == NULL)
        confdir = conf_dir_default();
    conf_load_or_die(confdir);

    tables = argv + optind;
    count = argc - optind;
    if (count == 0 && (flags & MAP_BUILD_ALIASES) && qkey == NULL && dkey == NULL && !list) {
        char **aliases = alias_tables(&count);

        if (count == 0)
            msg_fatal("alias_database is empty: nothing to build");
        ret = build(aliases, count, flags);
        for (int i = 0; i < count; i++)
            xfree(aliases[i]);
        xfree(aliases);
        return ret;
    }
    if (count == 0)
        usage();
    if (qkey != NULL)
        return query(qkey, tables, count, flags & MAP_KEEP_CASE);
    if (dkey != NULL)
        return delete (dkey, tables, count, flags & MAP_KEEP_CASE);
    if (list)
        return dump(tables, count, flags);
    return build(tables, count, flags);
}
