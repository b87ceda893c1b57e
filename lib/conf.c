/*
 * conf - reading main.cf, expanding $name, filling the typed parameters
 * (see conf.h). Trusts nothing in the file: every line is checked, every
 * value parsed strictly and range-checked, and expansion is depth-limited.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "strutil.h"
#include "vbuf.h"

#define CONF_EXPAND_DEPTH 50
#define CONF_LINE_MAX     (64 * 1024)

typedef struct conf_raw {
    char *name;
    char *value;
    char *source;                       /* "FILE:LINE" or "-o" */
    int override;
    int busy;                           /* expansion in progress */
    int used;                           /* referenced by an expansion */
} conf_raw;

static conf_raw *raw_tab;
static size_t raw_count, raw_cap;
static int default_busy[1024];          /* expansion guard for table defaults */
static char *computed_myhostname;

/* conf_dir_default - $KITE_CONFIG_DIR or the built-in directory */
const char *conf_dir_default(void)
{
    const char *env = getenv("KITE_CONFIG_DIR");

    return (env && *env) ? env : KITE_DEF_CONFIG_DIR;
}

static conf_raw *raw_find(const char *name)
{
    for (size_t i = 0; i < raw_count; i++)
        if (strcmp(raw_tab[i].name, name) == 0)
            return &raw_tab[i];
    return NULL;
}

/* raw_set - record a name = value, later entries replace earlier ones */
static void raw_set(const char *name, const char *value, const char *source, int override)
{
    conf_raw *r = raw_find(name);

    if (r) {
        if (!override && !r->override)
            msg_warn("%s: overriding earlier entry for \"%s\" at %s", source, name, r->source);
        if (r->override && !override)
            return;                     /* -o always wins over the file */
        xfree(r->value);
        xfree(r->source);
    } else {
        if (raw_count == raw_cap) {
            raw_cap = raw_cap ? raw_cap * 2 : 64;
            raw_tab = xreallocarray(raw_tab, raw_cap, sizeof(*raw_tab));
        }
        r = &raw_tab[raw_count++];
        memset(r, 0, sizeof(*r));
        r->name = xstrdup(name);
    }
    r->value = xstrdup(value);
    r->source = xstrdup(source);
    r->override = override;
}

void conf_reset(void)
{
    for (size_t i = 0; i < raw_count; i++) {
        xfree(raw_tab[i].name);
        xfree(raw_tab[i].value);
        xfree(raw_tab[i].source);
    }
    xfree(raw_tab);
    raw_tab = NULL;
    raw_count = raw_cap = 0;
}

void conf_override(const char *name, const char *value)
{
    raw_set(name, value, "-o", 1);
}

int conf_override_arg(const char *arg)
{
    const char *eq = strchr(arg, '=');
    char *name;
    char *trimmed;

    if (eq == NULL || eq == arg)
        return -1;
    name = xstrndup(arg, (size_t) (eq - arg));
    trimmed = str_trim(name);
    if (*trimmed == 0) {
        xfree(name);
        return -1;
    }
    {
        char *value = xstrdup(eq + 1);

        conf_override(trimmed, str_trim(value));   /* blanks around '=' as in main.cf */
        xfree(value);
    }
    xfree(name);
    return 0;
}

/* valid_name - parameter names: letters, digits, '_', '.', '-' */
static int valid_name(const char *name)
{
    if (*name == 0)
        return 0;
    for (; *name; name++)
        if (!isalnum((unsigned char) *name) && *name != '_' && *name != '.' && *name != '-')
            return 0;
    return 1;
}

/* parse_logical_line - handle one "name = value" line; returns 0 or -1 */
static int parse_logical_line(const char *path, int lineno, char *text)
{
    char source[PATH_MAX + 32];
    char *eq;
    char *name;
    char *value;

    snprintf(source, sizeof(source), "%s:%d", path, lineno);
    eq = strchr(text, '=');
    if (eq == NULL) {
        msg_error("%s: missing '=' after parameter name \"%.100s\"", source, str_trim(text));
        return -1;
    }
    *eq = 0;
    name = str_trim(text);
    value = str_trim(eq + 1);
    if (!valid_name(name)) {
        msg_error("%s: bad parameter name \"%.100s\"", source, name);
        return -1;
    }
    raw_set(name, value, source, 0);
    return 0;
}

/* conf_read_file - read main.cf into the raw table; returns error count */
static int conf_read_file(const char *path)
{
    FILE *fp = fopen(path, "re");
    vbuf logical;
    char *line = NULL;
    size_t linecap = 0;
    ssize_t n;
    int lineno = 0, start_line = 0, errors = 0;

    if (fp == NULL) {
        if (errno == ENOENT)
            return 0;
        msg_error("open %s: %m", path);
        return 1;
    }
    vbuf_init(&logical, CONF_LINE_MAX);
    while ((n = getline(&line, &linecap, fp)) >= 0) {
        char *p;

        lineno++;
        if (memchr(line, 0, (size_t) n) != NULL) {
            msg_error("%s:%d: NUL character in line", path, lineno);
            errors++;
            continue;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        p = line + strspn(line, " \t");
        if (*p == '#' || *p == 0)
            continue;                   /* comments and blank lines */
        if (p != line) {                /* continuation */
            if (logical.len == 0) {
                msg_error("%s:%d: continuation line without a parameter before it", path, lineno);
                errors++;
                continue;
            }
            if (vbuf_putc(&logical, ' ') < 0 || vbuf_puts(&logical, p) < 0) {
                msg_error("%s:%d: logical line too long", path, start_line);
                errors++;
                vbuf_reset(&logical);
            }
            continue;
        }
        if (logical.len > 0 && parse_logical_line(path, start_line, logical.data) < 0)
            errors++;
        vbuf_reset(&logical);
        start_line = lineno;
        if (vbuf_puts(&logical, line) < 0) {
            msg_error("%s:%d: line too long", path, lineno);
            errors++;
            vbuf_reset(&logical);
        }
    }
    if (logical.len > 0 && parse_logical_line(path, start_line, logical.data) < 0)
        errors++;
    if (ferror(fp)) {
        msg_error("read %s: %m", path);
        errors++;
    }
    free(line);
    vbuf_release(&logical);
    fclose(fp);
    return errors;
}

/* computed defaults for the host identity */
static const char *default_myhostname(void)
{
    char host[256];

    if (computed_myhostname == NULL) {
        if (gethostname(host, sizeof(host)) < 0 || host[0] == 0)
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = 0;
        str_lower(host);
        computed_myhostname = xstrdup(host);
    }
    return computed_myhostname;
}

static int expand_into(vbuf *out, const char *text, int depth);

/* value_of - expanded value of a name into out; 0, or -1 on loop/depth */
static int value_of(vbuf *out, const char *name, int depth)
{
    conf_raw *r = raw_find(name);
    const conf_param *p;
    int ret;

    if (r) {
        if (r->busy) {
            msg_error("%s: parameter \"%s\" refers to itself through $ expansion", r->source, name);
            return -1;
        }
        r->used = 1;
        r->busy = 1;
        ret = expand_into(out, r->value, depth + 1);
        r->busy = 0;
        return ret;
    }
    if ((p = conf_param_find(name)) != NULL) {
        size_t idx = (size_t) (p - conf_params);

        if (strcmp(name, "myhostname") == 0 && *p->def == 0)
            return vbuf_puts(out, default_myhostname());
        if (strcmp(name, "mydomain") == 0 && *p->def == 0) {
            vbuf host;
            const char *dot;

            /* Computed each time: myhostname may change with a reload or -o. */
            vbuf_init(&host, 0);
            if (value_of(&host, "myhostname", depth + 1) < 0) {
                vbuf_release(&host);
                return -1;
            }
            dot = strchr(host.data, '.');
            ret = vbuf_puts(out, dot && dot[1] ? dot + 1 : "localdomain");
            vbuf_release(&host);
            return ret;
        }
        if (idx < sizeof(default_busy) / sizeof(default_busy[0])) {
            if (default_busy[idx]) {
                msg_error("default of \"%s\" refers to itself", name);
                return -1;
            }
            default_busy[idx] = 1;
        }
        ret = expand_into(out, p->def, depth + 1);
        if (idx < sizeof(default_busy) / sizeof(default_busy[0]))
            default_busy[idx] = 0;
        return ret;
    }
    return 0;                           /* unknown names expand to nothing */
}

/* expand_into - append text with $name references expanded */
static int expand_into(vbuf *out, const char *text, int depth)
{
    const char *p = text;

    if (depth > CONF_EXPAND_DEPTH) {
        msg_error("$ expansion nested too deeply in \"%.100s\"", text);
        return -1;
    }
    while (*p) {
        const char *dollar = strchr(p, '$');
        char name[256];
        size_t nlen;
        char close = 0;
        char cond = 0;
        const char *cond_text = NULL;
        size_t cond_len = 0;

        if (dollar == NULL) {
            if (vbuf_puts(out, p) < 0)
                return -1;
            break;
        }
        if (vbuf_append(out, p, (size_t) (dollar - p)) < 0)
            return -1;
        p = dollar + 1;
        if (*p == '$') {
            if (vbuf_putc(out, '$') < 0)
                return -1;
            p++;
            continue;
        }
        if (*p == '{' || *p == '(') {
            close = (*p == '{') ? '}' : ')';
            p++;
        }
        nlen = 0;
        /* "$name" ends at anything but a letter, digit or '_' ("$myhostname-x",
         * "$myhostname."); "${name}" and "$(name)" may also hold '.' and '-'. */
        while (isalnum((unsigned char) p[nlen]) || p[nlen] == '_' ||
               (close && (p[nlen] == '.' || p[nlen] == '-')))
            nlen++;
        if (nlen == 0 || nlen >= sizeof(name)) {
            msg_error("bad $ expansion in \"%.100s\"", text);
            return -1;
        }
        memcpy(name, p, nlen);
        name[nlen] = 0;
        p += nlen;
        if (close) {
            if (*p == '?' || *p == ':') {
                int level = 0;

                cond = *p++;
                cond_text = p;
                while (*p && !(*p == close && level == 0)) {
                    if (*p == '{' || *p == '(')
                        level++;
                    else if (*p == '}' || *p == ')')
                        level--;
                    p++;
                }
                cond_len = (size_t) (p - cond_text);
            }
            if (*p != close) {
                msg_error("missing '%c' in \"%.100s\"", close, text);
                return -1;
            }
            p++;
        }
        if (cond) {
            vbuf val;
            int empty;

            vbuf_init(&val, 0);
            if (value_of(&val, name, depth) < 0) {
                vbuf_release(&val);
                return -1;
            }
            empty = (val.len == 0);
            vbuf_release(&val);
            if ((cond == '?' && !empty) || (cond == ':' && empty)) {
                char *sub = xstrndup(cond_text, cond_len);
                int ret = expand_into(out, sub, depth + 1);

                xfree(sub);
                if (ret < 0)
                    return -1;
            }
        } else if (value_of(out, name, depth) < 0) {
            return -1;
        }
    }
    return 0;
}

char *conf_expand(const char *text)
{
    vbuf out;

    vbuf_init(&out, 0);
    if (expand_into(&out, text, 0) < 0) {
        vbuf_release(&out);
        return NULL;
    }
    {
        char *result = vbuf_steal(&out);

        vbuf_release(&out);
        return result;
    }
}

const char *conf_lookup_raw(const char *name)
{
    conf_raw *r = raw_find(name);
    const conf_param *p;

    if (r)
        return r->value;
    if ((p = conf_param_find(name)) != NULL)
        return p->def;
    return NULL;
}

int conf_is_set(const char *name)
{
    return raw_find(name) != NULL;
}

const char *conf_source(const char *name)
{
    conf_raw *r = raw_find(name);

    return r ? r->source : NULL;
}

size_t conf_raw_count(void)
{
    return raw_count;
}

const char *conf_raw_name(size_t i)
{
    return i < raw_count ? raw_tab[i].name : NULL;
}

/*
 * conf_lookup - the expanded value of any parameter. The result lives in a
 * small ring of buffers, valid until a few more lookups; copy it to keep it.
 */
const char *conf_lookup(const char *name)
{
    static char *ring[8];
    static unsigned ring_pos;
    vbuf out;

    if (raw_find(name) == NULL && conf_param_find(name) == NULL)
        return NULL;
    vbuf_init(&out, 0);
    if (value_of(&out, name, 0) < 0) {
        vbuf_release(&out);
        return NULL;
    }
    ring_pos = (ring_pos + 1) % 8;
    xfree(ring[ring_pos]);
    ring[ring_pos] = vbuf_steal(&out);
    vbuf_release(&out);
    return ring[ring_pos];
}

int conf_parse_bool(const char *text, int *out)
{
    if (str_case_eq(text, "yes") || str_case_eq(text, "true") || strcmp(text, "1") == 0)
        *out = 1;
    else if (str_case_eq(text, "no") || str_case_eq(text, "false") || strcmp(text, "0") == 0)
        *out = 0;
    else
        return -1;
    return 0;
}

int conf_parse_long(const char *text, long *out)
{
    return str_to_long(text, out);
}

/* conf_parse_time - "10", "10s", "5m", "2h", "1d", "1w"; bare numbers use default_unit */
int conf_parse_time(const char *text, int default_unit, long *out)
{
    char *end;
    long v, mult;
    int unit;

    if (!isdigit((unsigned char) *text))
        return -1;
    errno = 0;
    v = strtol(text, &end, 10);
    if (errno != 0 || v < 0)
        return -1;
    unit = *end ? *end : default_unit;
    if (*end && end[1] != 0)
        return -1;
    switch (unit) {
    case 's':
        mult = 1;
        break;
    case 'm':
        mult = 60;
        break;
    case 'h':
        mult = 3600;
        break;
    case 'd':
        mult = 86400;
        break;
    case 'w':
        mult = 7 * 86400;
        break;
    default:
        return -1;
    }
    if (v > LONG_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

/* time_unit - the unit letter of a time parameter's default ("5d" -> 'd') */
static int time_unit(const char *def)
{
    size_t n = strlen(def);

    return (n > 0 && isalpha((unsigned char) def[n - 1])) ? def[n - 1] : 's';
}

long conf_lookup_int(const char *name, long def)
{
    const char *v = conf_lookup(name);
    long n;

    if (v == NULL || *v == 0)
        return def;
    if (conf_parse_long(v, &n) < 0) {
        msg_warn("%s: bad numerical value for parameter %s: \"%.100s\"",
                 conf_source(name) ? conf_source(name) : "main.cf", name, v);
        return def;
    }
    return n;
}

long conf_lookup_time(const char *name, long def, int unit)
{
    const char *v = conf_lookup(name);
    long n;

    if (v == NULL || *v == 0)
        return def;
    if (conf_parse_time(v, unit, &n) < 0) {
        msg_warn("%s: bad time value for parameter %s: \"%.100s\"",
                 conf_source(name) ? conf_source(name) : "main.cf", name, v);
        return def;
    }
    return n;
}

int conf_lookup_bool(const char *name, int def)
{
    const char *v = conf_lookup(name);
    int b;

    if (v == NULL || *v == 0)
        return def;
    if (conf_parse_bool(v, &b) < 0) {
        msg_warn("%s: bad boolean value for parameter %s: \"%.100s\"",
                 conf_source(name) ? conf_source(name) : "main.cf", name, v);
        return def;
    }
    return b;
}

/* conf_eval_one - expand, convert and range-check one table parameter */
static int conf_eval_one(const conf_param *p)
{
    const char *where = conf_source(p->name);
    vbuf out;
    long n = 0;
    int b = 0;
    int bad = 0;

    vbuf_init(&out, 0);
    if (value_of(&out, p->name, 0) < 0) {
        vbuf_release(&out);
        return -1;
    }
    if (where == NULL)
        where = "default";
    switch (p->type) {
    case CONF_STR:
        xfree(*(char **) p->var);
        *(char **) p->var = vbuf_steal(&out);
        break;
    case CONF_BOOL:
        if (conf_parse_bool(out.data, &b) < 0) {
            msg_error("%s: bad boolean value for parameter %s: \"%.100s\" (use yes or no)", where, p->name,
                      out.data);
            bad = 1;
        } else {
            *(int *) p->var = b;
        }
        break;
    case CONF_INT:
    case CONF_SIZE:
    case CONF_TIME:
        if (p->type == CONF_TIME ? conf_parse_time(out.data, time_unit(p->def), &n) < 0
                                 : conf_parse_long(out.data, &n) < 0) {
            msg_error("%s: bad %s value for parameter %s: \"%.100s\"", where,
                      p->type == CONF_TIME ? "time" : "numerical", p->name, out.data);
            bad = 1;
        } else if (n < p->min || (p->max > 0 && n > p->max)) {
            if (p->max > 0)
                msg_error("%s: value %ld for parameter %s is out of range [%ld..%ld]", where, n, p->name, p->min,
                          p->max);
            else
                msg_error("%s: value %ld for parameter %s is below the minimum %ld", where, n, p->name, p->min);
            bad = 1;
        } else {
            *(long *) p->var = n;
        }
        break;
    }
    vbuf_release(&out);
    return bad ? -1 : 0;
}

/* conf_eval - fill every var_* from the raw table and the defaults */
static int conf_eval(void)
{
    int errors = 0;

    for (size_t i = 0; i < conf_params_count; i++) {
        const conf_param *p = &conf_params[i];

        if (conf_eval_one(p) < 0) {
            errors++;
            /* Fall back to the default so that later code sees a sane value. */
            if (p->type == CONF_STR) {
                if (*(char **) p->var == NULL)  /* never NULL, even after a failed expansion */
                    *(char **) p->var = xstrdup("");
            } else {
                long n = 0;
                int b = 0;

                if (p->type == CONF_BOOL && conf_parse_bool(p->def, &b) == 0)
                    *(int *) p->var = b;
                else if (p->type == CONF_TIME && conf_parse_time(p->def, time_unit(p->def), &n) == 0)
                    *(long *) p->var = n;
                else if (conf_parse_long(p->def, &n) == 0)
                    *(long *) p->var = n;
            }
        }
    }
    return errors;
}

int conf_load(const char *confdir)
{
    vbuf path;
    int errors;

    vbuf_init(&path, 0);
    vbuf_printf(&path, "%s/main.cf", confdir);
    errors = conf_read_file(path.data);
    vbuf_release(&path);
    conf_override("config_directory", confdir);
    errors += conf_eval();
    return errors;
}

/* dir_listed - is DIR one of the words of LIST (commas, white space) */
static int dir_listed(const char *list, const char *dir)
{
    char *copy = xstrdup(list ? list : "");
    char *cursor = copy, *w;
    int hit = 0;

    while (!hit && (w = str_token(&cursor, CHARS_COMMA_SPACE)) != NULL)
        hit = strcmp(w, dir) == 0;
    xfree(copy);
    return hit;
}

int conf_dir_allowed_setgid(const char *confdir)
{
    int ok;

    if (strcmp(confdir, KITE_DEF_CONFIG_DIR) == 0)
        return 1;
    /* Only the administrator's main.cf may widen the choice. */
    conf_reset();
    ok = conf_load(KITE_DEF_CONFIG_DIR) == 0 &&
         (dir_listed(var_alternate_config_directories, confdir) ||
          dir_listed(var_multi_instance_directories, confdir));
    conf_reset();
    return ok;
}

void conf_load_or_die(const char *confdir)
{
    if (conf_load(confdir) > 0)
        msg_fatal("%s/main.cf: configuration errors; fix them (kite check) and try again", confdir);
}

/* Parameter name suffixes that are valid with any service name before them. */
static const char *const dynamic_suffixes[] = {
    "_destination_concurrency_limit",
    "_destination_recipient_limit",
    "_initial_destination_concurrency",
    "_destination_rate_delay",
    "_recipient_limit",
    "_time_limit",
    "_delivery_slot_cost",
    "_minimum_delivery_slots",
    "_extra_recipient_limit",
    NULL,
};

/* conf_check_unknown - warn about names that nothing knows; returns count */
int conf_check_unknown(void)
{
    int count = 0;

    /* Mark user-defined parameters that other values refer to as used. */
    for (size_t i = 0; i < raw_count; i++) {
        char *v = conf_expand(raw_tab[i].value);

        xfree(v);
    }
    for (size_t i = 0; i < raw_count; i++) {
        conf_raw *r = &raw_tab[i];
        int known = conf_param_find(r->name) != NULL || r->used;

        for (size_t k = 0; !known && dynamic_suffixes[k]; k++) {
            size_t nl = strlen(r->name), sl = strlen(dynamic_suffixes[k]);

            if (nl > sl && strcmp(r->name + nl - sl, dynamic_suffixes[k]) == 0)
                known = 1;
        }
        if (!known) {
            msg_warn("%s: unknown parameter \"%s\" (not used by Kite)", r->source, r->name);
            count++;
        }
    }
    return count;
}

/* conf_format_value - a table parameter's current value as main.cf text */
char *conf_format_value(const conf_param *p)
{
    vbuf out;

    vbuf_init(&out, 0);
    switch (p->type) {
    case CONF_STR:
        vbuf_puts(&out, *(char **) p->var ? *(char **) p->var : "");
        break;
    case CONF_BOOL:
        vbuf_puts(&out, *(int *) p->var ? "yes" : "no");
        break;
    case CONF_TIME:
        vbuf_printf(&out, "%lds", *(long *) p->var);
        break;
    case CONF_INT:
    case CONF_SIZE:
        vbuf_printf(&out, "%ld", *(long *) p->var);
        break;
    }
    {
        char *s = vbuf_steal(&out);

        vbuf_release(&out);
        return s;
    }
}
