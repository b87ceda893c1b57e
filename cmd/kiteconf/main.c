/*
 * kiteconf - show and change the Kite configuration, like postconf(1).
 *
 *   kiteconf [-c dir] [-d|-n] [-h] [-x] [name ...]   show parameters
 *   kiteconf [-c dir] [-e] name=value ...            set in main.cf
 *   kiteconf [-c dir] -X name ...                    remove from main.cf
 *   kiteconf [-c dir] -M [service[/type] ...]        show master.cf entries
 *
 * Values are shown as written (unexpanded) unless -x is given; -d shows the
 * built-in defaults, -n only what main.cf sets, -h values without "name = ".
 * Parameters come from the one table (conf_params). Edits keep comments and
 * every other line of main.cf, and replace the file atomically (temporary
 * file, fsync, rename, fsync of the directory).
 *
 * Trusts: the command line (run by the administrator); main.cf and
 * master.cf are parsed by the strict library parsers, and the edit code
 * bounds the file size and never follows a link when creating the
 * temporary file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "kiteconf.h"
#include "msg.h"
#include "mymalloc.h"
#include "strutil.h"
#include "vbuf.h"

#define KITECONF_SHOW_DEFAULTS (1 << 0) /* -d */
#define KITECONF_SHOW_NONDEF (1 << 1)   /* -n */
#define KITECONF_VALUE_ONLY (1 << 2)    /* -h */
#define KITECONF_EXPAND (1 << 3)        /* -x */

/* usage - print the synopsis and exit */
static void usage(void)
{
    msg_fatal("usage: kiteconf [-c config_dir] [-d|-n] [-h] [-x] [name ...] | [-e] name=value ... | -X name ... | "
              "-M [service[/type] ...]");
}

/* set_in_file - was this name given in main.cf (not the built-in -o config_directory)? */
static int set_in_file(const char *name)
{
    const char *src = conf_source(name);

    return src != NULL && strcmp(src, "-o") != 0;
}

/* print_param - one "name = value" (or value only) line */
static void print_param(const char *name, int flags)
{
    const char *value;

    if (flags & KITECONF_EXPAND) {
        value = conf_lookup(name);
        if (value == NULL)
            value = ""; /* the loop was reported by conf_lookup */
    } else {
        value = conf_lookup_raw(name);
        if (value == NULL)
            value = "";
        /* The host identity defaults are computed, as with postconf. */
        if (*value == 0 && !conf_is_set(name) && (strcmp(name, "myhostname") == 0 || strcmp(name, "mydomain") == 0)) {
            value = conf_lookup(name);
            if (value == NULL)
                value = "";
        }
    }
    if (flags & KITECONF_VALUE_ONLY)
        printf("%s\n", value);
    else if (*value)
        printf("%s = %s\n", name, value);
    else
        printf("%s =\n", name);
}

/* name_cmp - qsort order for parameter names */
static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* show_all - every table parameter (or, with -n, every name set in main.cf), sorted */
static void show_all(int flags)
{
    const char **names;
    size_t n = 0;

    if (flags & KITECONF_SHOW_NONDEF) {
        names = xcalloc(conf_raw_count() + 1, sizeof(*names));
        for (size_t i = 0; i < conf_raw_count(); i++)
            if (set_in_file(conf_raw_name(i)))
                names[n++] = conf_raw_name(i);
    } else {
        names = xcalloc(conf_params_count + 1, sizeof(*names));
        for (size_t i = 0; i < conf_params_count; i++)
            names[n++] = conf_params[i].name;
    }
    qsort(names, n, sizeof(*names), name_cmp);
    for (size_t i = 0; i < n; i++)
        print_param(names[i], flags);
    xfree(names);
}

/* show_named - the named parameters; unknown ones are warned about; returns the error count */
static int show_named(char **names, int count, int flags)
{
    int errors = 0;

    for (int i = 0; i < count; i++) {
        int known = conf_param_find(names[i]) != NULL || set_in_file(names[i]);

        if (!known || ((flags & KITECONF_SHOW_NONDEF) && !set_in_file(names[i]))) {
            if (!known) {
                msg_warn("unknown parameter: %s", names[i]);
                errors++;
            }
            continue;
        }
        print_param(names[i], flags);
    }
    return errors;
}

int main(int argc, char **argv)
{
    const char *confdir = NULL;
    int flags = 0, edit = 0, remove = 0, master = 0;
    int ch, errors = 0;

    msg_init("kiteconf");
    while ((ch = getopt(argc, argv, "c:dehnxMX")) != -1) {
        switch (ch) {
        case 'c':
            confdir = optarg;
            break;
        case 'd':
            flags |= KITECONF_SHOW_DEFAULTS;
            break;
        case 'e':
            edit = 1;
            break;
        case 'h':
            flags |= KITECONF_VALUE_ONLY;
            break;
        case 'n':
            flags |= KITECONF_SHOW_NONDEF;
            break;
        case 'x':
            flags |= KITECONF_EXPAND;
            break;
        case 'M':
            master = 1;
            break;
        case 'X':
            remove = 1;
            break;
        default:
            usage();
        }
    }
    if ((flags & KITECONF_SHOW_DEFAULTS) && (flags & KITECONF_SHOW_NONDEF))
        msg_fatal("specify -d or -n, not both");
    if (master + remove + edit > 1)
        msg_fatal("specify only one of -e, -M and -X");
    if (confdir == NULL)
        confdir = conf_dir_default();

    if (master)
        return kiteconf_show_master(confdir, argv + optind, argc - optind) == 0 ? 0 : 1;
    if (remove) {
        if (optind == argc)
            usage();
        return kiteconf_edit(confdir, argv + optind, argc - optind, KITECONF_EDIT_REMOVE) == 0 ? 0 : 1;
    }
    /* name=value arguments mean an edit, with or without -e */
    if (optind < argc && (edit || strchr(argv[optind], '=') != NULL)) {
        for (int i = optind; i < argc; i++)
            if (strchr(argv[i], '=') == NULL)
                msg_fatal("expected name=value, not \"%s\"", argv[i]);
        return kiteconf_edit(confdir, argv + optind, argc - optind, KITECONF_EDIT_SET) == 0 ? 0 : 1;
    }
    if (edit)
        usage();

    /* -d: the table alone; otherwise main.cf on top of it */
    if (flags & KITECONF_SHOW_DEFAULTS)
        conf_reset();
    else if (conf_load(confdir) >= 0)
        (void) conf_check_unknown(); /* warnings with file:line, as postconf does */
    if (optind == argc)
        show_all(flags);
    else
        errors = show_named(argv + optind, argc - optind, flags);
    if (fflush(stdout) != 0 || ferror(stdout))
        msg_fatal("write error on standard output: %m");
    return errors ? 1 : 0;
}
