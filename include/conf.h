/*
 * conf - main.cf: reading, $name expansion, typed parameters.
 *
 * main.cf syntax is Postfix's: "name = value"; a line that starts with white
 * space continues the previous one; lines whose first non-blank character is
 * '#' are comments; $name, ${name} and $(name) expand, as do ${name?text}
 * (text when name is not empty) and ${name:text} (text when it is empty);
 * $$ is a literal '$'. Expansion happens once all input (file and -o
 * overrides) is in, with loop detection.
 *
 * The parameter table (include/params/ *.def) gives each parameter's type,
 * default and range. Problems are reported as "FILE:LINE: ...".
 */
#ifndef KITE_CONF_H
#define KITE_CONF_H

#include <stddef.h>

enum conf_type { CONF_STR, CONF_BOOL, CONF_INT, CONF_TIME, CONF_SIZE };

typedef struct conf_param {
    const char *name;
    enum conf_type type;
    const char *def;                    /* default, as main.cf text */
    long min, max;                      /* numeric range; max 0 = none */
    void *var;                          /* char ** / int * / long * */
} conf_param;

extern const conf_param conf_params[];
extern const size_t conf_params_count;

const conf_param *conf_param_find(const char *name);

/* The configuration directory: -c, else $KITE_CONFIG_DIR, else built in. */
const char *conf_dir_default(void);

/*
 * conf_load - read CONFDIR/main.cf, apply overrides made with conf_override,
 * and fill every var_*. Errors (unreadable file, syntax, bad value) are
 * logged with file:line; returns the number of errors (0 = fine).
 * A missing main.cf is not an error: defaults apply.
 */
int conf_load(const char *confdir);
void conf_load_or_die(const char *confdir);

/*
 * conf_dir_allowed_setgid - may a set-gid program (kitedrop, kitequeue) run
 * by an ordinary user use CONFDIR? Yes for the built-in directory, and for
 * one listed in alternate_config_directories or multi_instance_directories
 * of the built-in directory's main.cf (Postfix's rule). Leaves no
 * configuration loaded: the caller loads the one it may use.
 */
int conf_dir_allowed_setgid(const char *confdir);

/* conf_override - like a main.cf line, wins over the file (-o name=value) */
void conf_override(const char *name, const char *value);
int conf_override_arg(const char *arg);     /* "name=value"; -1 if malformed */

/* conf_lookup - expanded value of any parameter, table or not; NULL if unset */
const char *conf_lookup(const char *name);
const char *conf_lookup_raw(const char *name);  /* unexpanded */
int conf_is_set(const char *name);              /* given in main.cf or -o */

/* Typed lookups of parameters not in the table (e.g. per-transport). */
long conf_lookup_int(const char *name, long def);
long conf_lookup_time(const char *name, long def, int unit);
int conf_lookup_bool(const char *name, int def);

/* conf_expand - expand $name references in text; NULL on a loop/error */
char *conf_expand(const char *text);

/* conf_check_unknown - warn (file:line) about unknown names; returns count */
int conf_check_unknown(void);

/* Value parsers shared with kiteconf. 0 on success, -1 on bad input. */
int conf_parse_bool(const char *text, int *out);
int conf_parse_time(const char *text, int default_unit, long *out);
int conf_parse_long(const char *text, long *out);

/* conf_source - where a parameter was set ("FILE:LINE" or "-o"), or NULL */
const char *conf_source(const char *name);

/* conf_format_value - the typed value of a table parameter as text (kiteconf) */
char *conf_format_value(const conf_param *p);

/* Iterate over names given in main.cf/-o, in file order. */
size_t conf_raw_count(void);
const char *conf_raw_name(size_t i);

/* conf_reset - forget everything read (reload, tests) */
void conf_reset(void);

#endif
