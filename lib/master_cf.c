/*
 * master_cf - parse master.cf into service entries (see master_cf.h).
 *
 * Offers: master_cf_parse/read/free, lookups and comparison of entries.
 * Trusts nothing in the input: lines are bounded, every column is checked,
 * names are restricted to safe characters (they become file names and
 * program paths), and each problem is reported with FILE:LINE.
 */
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "master_cf.h"
#include "mymalloc.h"
#include "vbuf.h"

#define MASTER_CF_FILE_MAX (16 * 1024 * 1024)

/* master_cf_init - an empty table */
void master_cf_init(master_cf *cf)
{
    memset(cf, 0, sizeof(*cf));
}

/* add_error - record one "FILE:LINE: text" problem */
static void add_error(master_cf *cf, const char *path, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add_error(master_cf *cf, const char *path, int line, const char *fmt, ...)
{
    vbuf msg;
    va_list ap;

    if (cf->nerrors > MASTER_CF_MAX_ERRORS)
        return;
    vbuf_init(&msg, 1024);
    if (cf->nerrors == MASTER_CF_MAX_ERRORS) {
        vbuf_printf(&msg, "%s: too many errors, giving up", path);
    } else {
        vbuf_printf(&msg, "%s:%d: ", path, line);
        va_start(ap, fmt);
        vbuf_vprintf(&msg, fmt, ap);
        va_end(ap);
    }
    cf->errors = xreallocarray(cf->errors, cf->nerrors + 1, sizeof(char *));
    cf->errors[cf->nerrors++] = vbuf_steal(&msg);
    vbuf_release(&msg);
}

/* entry_free - release one entry's strings */
static void entry_free(master_cf_entry *e)
{
    xfree(e->name);
    xfree(e->command);
    for (size_t i = 0; i < e->nargs; i++)
        xfree(e->args[i]);
    xfree(e->args);
    for (size_t i = 0; i < e->noverrides; i++)
        xfree(e->overrides[i]);
    xfree(e->overrides);
    xfree(e->host);
    xfree(e->port);
    xfree(e->source);
    memset(e, 0, sizeof(*e));
}

/* master_cf_free - release everything parsed */
void master_cf_free(master_cf *cf)
{
    for (size_t i = 0; i < cf->count; i++)
        entry_free(&cf->entries[i]);
    xfree(cf->entries);
    for (size_t i = 0; i < cf->nerrors; i++)
        xfree(cf->errors[i]);
    xfree(cf->errors);
    master_cf_init(cf);
}

/* master_cf_type_name - "inet" / "unix" */
const char *master_cf_type_name(enum master_cf_type type)
{
    return type == MASTER_CF_INET ? "inet" : type == MASTER_CF_UNIX ? "unix" : "?";
}

/* master_cf_find - the entry with this name and type, or NULL */
const master_cf_entry *master_cf_find(const master_cf *cf, const char *name, enum master_cf_type type)
{
    for (size_t i = 0; i < cf->count; i++)
        if (cf->entries[i].type == type && strcmp(cf->entries[i].name, name) == 0)
            return &cf->entries[i];
    return NULL;
}

/* master_cf_same - do two entries describe the same running service? */
int master_cf_same(const master_cf_entry *a, const master_cf_entry *b)
{
    if (strcmp(a->name, b->name) != 0 || a->type != b->type || a->private_ != b->private_ || a->unpriv != b->unpriv ||
        a->chroot != b->chroot || a->wakeup != b->wakeup || a->maxproc != b->maxproc ||
        strcmp(a->command, b->command) != 0 || a->nargs != b->nargs)
        return 0;
    for (size_t i = 0; i < a->nargs; i++)
        if (strcmp(a->args[i], b->args[i]) != 0)
            return 0;
    return 1;
}

/* Tokens of one logical line. */
typedef struct tokens {
    char **tok;
    int *braced;
    size_t count;
} tokens;

/* tokens_free - release the tokens of one line */
static void tokens_free(tokens *t)
{
    for (size_t i = 0; i < t->count; i++)
        xfree(t->tok[i]);
    xfree(t->tok);
    xfree(t->braced);
    memset(t, 0, sizeof(*t));
}

/* tokens_add - append one token */
static void tokens_add(tokens *t, const char *start, size_t len, int braced)
{
    t->tok = xreallocarray(t->tok, t->count + 1, sizeof(char *));
    t->braced = xreallocarray(t->braced, t->count + 1, sizeof(int));
    t->tok[t->count] = xstrndup(start, len);
    t->braced[t->count] = braced;
    t->count++;
}

/* tokenize - split at blanks, "{ ... }" is one token; NULL or the problem */
static const char *tokenize(const char *line, tokens *t)
{
    const char *p = line;

    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == 0)
            return NULL;
        if (t->count >= MASTER_CF_MAX_ARGS + 8)
            return "too many arguments";
        if (*p == '{') {
            const char *start = ++p, *end;
            int level = 1;

            while (*p && level > 0) {
                if (*p == '{')
                    level++;
                else if (*p == '}')
                    level--;
                if (level > 0)
                    p++;
            }
            if (*p != '}')
                return "missing '}'";
            end = p++;
            while (start < end && (*start == ' ' || *start == '\t'))
                start++;
            while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            tokens_add(t, start, (size_t) (end - start), 1);
            if (*p != 0 && *p != ' ' && *p != '\t')
                return "text after '}'";
        } else {
            const char *start = p;

            while (*p && *p != ' ' && *p != '\t')
                p++;
            tokens_add(t, start, (size_t) (p - start), 0);
        }
    }
}

/* safe_word - letters, digits and the given extra characters, not empty */
static int safe_word(const char *s, const char *extra, size_t maxlen)
{
    size_t n = 0;

    if (*s == 0)
        return 0;
    for (; *s; s++, n++)
        if (!isalnum((unsigned char) *s) && strchr(extra, *s) == NULL)
            return 0;
    return n <= maxlen;
}

/* parse_yn - a y/n/- column; 0 or -1 */
static int parse_yn(const char *text, int def, int *out)
{
    if (strcmp(text, "-") == 0)
        *out = def;
    else if (strcmp(text, "y") == 0)
        *out = 1;
    else if (strcmp(text, "n") == 0)
        *out = 0;
    else
        return -1;
    return 0;
}

/* parse_number - a "-" or decimal column within 0..max; 0 or -1 */
static int parse_number(const char *text, int def, int max, int allow_question, int *out)
{
    long n = 0;
    const char *p = text;

    if (strcmp(text, "-") == 0) {
        *out = def;
        return 0;
    }
    if (!isdigit((unsigned char) *p))
        return -1;
    for (; isdigit((unsigned char) *p); p++) {
        n = n * 10 + (*p - '0');
        if (n > max)
            return -1;
    }
    if (allow_question && *p == '?')
        p++;
    if (*p != 0)
        return -1;
    *out = (int) n;
    return 0;
}

/* split_inet - "port", "host:port", "[v6]:port"; 0 or -1 */
static int split_inet(const char *name, char **host, char **port)
{
    const char *colon;
    const char *p;

    *host = *port = NULL;
    if (name[0] == '[') {
        const char *close = strchr(name, ']');

        if (close == NULL || close[1] != ':' || close == name + 1)
            return -1;
        for (p = name + 1; p < close; p++)
            if (!isxdigit((unsigned char) *p) && *p != ':' && *p != '.')
                return -1;
        *host = xstrndup(name + 1, (size_t) (close - name - 1));
        colon = close + 1;
    } else if ((colon = strrchr(name, ':')) != NULL) {
        if (colon == name)
            return -1;
        for (p = name; p < colon; p++)
            if (!isalnum((unsigned char) *p) && *p != '.' && *p != '-' && *p != '*')
                return -1;
        *host = xstrndup(name, (size_t) (colon - name));
        if (strcmp(*host, "*") == 0) {
            xfree(*host);
            *host = NULL;
        }
    } else {
        colon = NULL;
    }
    p = colon ? colon + 1 : name;
    if (isdigit((unsigned char) *p)) {
        long n = 0;
        const char *q;

        for (q = p; isdigit((unsigned char) *q); q++) {
            n = n * 10 + (*q - '0');
            if (n > 65535)
                break;
        }
        if (*q != 0 || n < 1 || n > 65535)
            goto bad;
    } else if (!safe_word(p, "-_", 64)) {
        goto bad;
    }
    *port = xstrdup(p);
    return 0;
bad:
    xfree(*host);
    *host = NULL;
    return -1;
}

/* valid_param_name - main.cf parameter name characters */
static int valid_param_name(const char *s, size_t len)
{
    if (len == 0 || len > 255)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char) s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return 0;
    return 1;
}

/* make_override - "name=value" from an -o argument; NULL when malformed */
static char *make_override(const char *arg)
{
    const char *eq = strchr(arg, '=');
    const char *ns = arg, *ne, *vs;
    vbuf out;
    char *res;

    if (eq == NULL)
        return NULL;
    ne = eq;
    while (ns < ne && (*ns == ' ' || *ns == '\t'))
        ns++;
    while (ne > ns && (ne[-1] == ' ' || ne[-1] == '\t'))
        ne--;
    if (!valid_param_name(ns, (size_t) (ne - ns)))
        return NULL;
    vs = eq + 1;
    while (*vs == ' ' || *vs == '\t')
        vs++;
    vbuf_init(&out, 0);
    vbuf_append(&out, ns, (size_t) (ne - ns));
    vbuf_putc(&out, '=');
    vbuf_puts(&out, vs);
    res = vbuf_steal(&out);
    vbuf_release(&out);
    return res;
}

/* parse_entry - one logical line into an entry; 0, or -1 after add_error */
static int parse_entry(master_cf *cf, const char *path, int lineno, const char *line)
{
    tokens t = {0};
    master_cf_entry e;
    const char *why;
    const master_cf_entry *dup;
    vbuf src;

    memset(&e, 0, sizeof(e));
    if ((why = tokenize(line, &t)) != NULL) {
        add_error(cf, path, lineno, "%s", why);
        goto fail;
    }
    if (t.count < 8) {
        add_error(cf, path, lineno, "too few fields: need service type private unpriv chroot wakeup maxproc command");
        goto fail;
    }
    for (size_t i = 0; i < 8; i++)
        if (t.braced[i]) {
            add_error(cf, path, lineno, "braces are allowed only in command arguments");
            goto fail;
        }
    if (strcmp(t.tok[1], "inet") == 0) {
        e.type = MASTER_CF_INET;
    } else if (strcmp(t.tok[1], "unix") == 0) {
        e.type = MASTER_CF_UNIX;
    } else if (strcmp(t.tok[1], "fifo") == 0 || strcmp(t.tok[1], "pass") == 0 || strcmp(t.tok[1], "unix-dgram") == 0) {
        add_error(cf, path, lineno, "service type \"%s\" is not supported; use unix", t.tok[1]);
        goto fail;
    } else {
        add_error(cf, path, lineno, "unknown service type \"%.100s\" (expected inet or unix)", t.tok[1]);
        goto fail;
    }
    if (e.type == MASTER_CF_UNIX) {
        if (!safe_word(t.tok[0], "._-", 64) || t.tok[0][0] == '.') {
            add_error(cf, path, lineno, "bad service name \"%.100s\" (letters, digits, '.', '_', '-')", t.tok[0]);
            goto fail;
        }
    } else if (split_inet(t.tok[0], &e.host, &e.port) < 0) {
        add_error(cf, path, lineno, "bad inet service address \"%.100s\" (port, host:port or [addr]:port)", t.tok[0]);
        goto fail;
    }
    if (parse_yn(t.tok[2], e.type == MASTER_CF_INET ? 0 : 1, &e.private_) < 0) {
        add_error(cf, path, lineno, "bad private column \"%.100s\" (y, n or -)", t.tok[2]);
        goto fail;
    }
    if (e.type == MASTER_CF_INET && e.private_) {
        add_error(cf, path, lineno, "inet service \"%.100s\" cannot be private", t.tok[0]);
        goto fail;
    }
    if (parse_yn(t.tok[3], 1, &e.unpriv) < 0) {
        add_error(cf, path, lineno, "bad unpriv column \"%.100s\" (y, n or -)", t.tok[3]);
        goto fail;
    }
    if (parse_yn(t.tok[4], 0, &e.chroot) < 0) {
        add_error(cf, path, lineno, "bad chroot column \"%.100s\" (y, n or -)", t.tok[4]);
        goto fail;
    }
    if (parse_number(t.tok[5], 0, 1000000, 1, &e.wakeup) < 0) {
        add_error(cf, path, lineno, "bad wakeup column \"%.100s\" (seconds, optionally followed by '?', or -)",
                  t.tok[5]);
        goto fail;
    }
    if (e.wakeup > 0 && e.type != MASTER_CF_UNIX) {
        add_error(cf, path, lineno, "wakeup is supported only for unix services");
        goto fail;
    }
    if (parse_number(t.tok[6], -1, 100000, 0, &e.maxproc) < 0) {
        add_error(cf, path, lineno, "bad maxproc column \"%.100s\" (a number or -)", t.tok[6]);
        goto fail;
    }
    if (!safe_word(t.tok[7], "._-", 64) || t.tok[7][0] == '.') {
        add_error(cf, path, lineno, "bad command name \"%.100s\" (a program in daemon_directory)", t.tok[7]);
        goto fail;
    }
    e.name = xstrdup(t.tok[0]);
    e.command = xstrdup(t.tok[7]);
    e.args = xcalloc(t.count - 8 + 1, sizeof(char *));
    e.overrides = xcalloc(t.count - 8 + 1, sizeof(char *));
    for (size_t i = 8; i < t.count; i++) {
        const char *a = t.tok[i];

        if (!t.braced[i] && strcmp(a, "-o") == 0) {
            char *ov;

            if (i + 1 >= t.count) {
                add_error(cf, path, lineno, "-o without name=value");
                goto fail;
            }
            if ((ov = make_override(t.tok[i + 1])) == NULL) {
                add_error(cf, path, lineno, "bad -o argument \"%.100s\" (expected name=value)", t.tok[i + 1]);
                goto fail;
            }
            e.overrides[e.noverrides++] = ov;
            e.args[e.nargs++] = xstrdup("-o");
            e.args[e.nargs++] = xstrdup(ov);
            i++;
            continue;
        }
        if (!t.braced[i] && strcmp(a, "-v") == 0)
            e.verbose = 1;
        if (!t.braced[i] && a[0] == '-' &&
            (strcmp(a, "-c") == 0 || strcmp(a, "-n") == 0 || strcmp(a, "-t") == 0 || strcmp(a, "-s") == 0 ||
             strcmp(a, "-S") == 0 || strcmp(a, "-u") == 0 || strcmp(a, "-r") == 0)) {
            add_error(cf, path, lineno, "option \"%s\" is set by master and may not be given in master.cf", a);
            goto fail;
        }
        for (const char *p = a; *p; p++)
            if ((unsigned char) *p < 0x20 || *p == 0x7f) {
                add_error(cf, path, lineno, "control character in argument");
                goto fail;
            }
        e.args[e.nargs++] = xstrdup(a);
    }
    if ((dup = master_cf_find(cf, e.name, e.type)) != NULL) {
        add_error(cf, path, lineno, "duplicate %s service \"%s\" (first defined at %s)", master_cf_type_name(e.type),
                  e.name, dup->source);
        goto fail;
    }
    if (cf->count >= MASTER_CF_MAX_ENTRIES) {
        add_error(cf, path, lineno, "too many services (limit %d)", MASTER_CF_MAX_ENTRIES);
        goto fail;
    }
    vbuf_init(&src, 0);
    vbuf_printf(&src, "%s:%d", path, lineno);
    e.source = vbuf_steal(&src);
    vbuf_release(&src);
    cf->entries = xreallocarray(cf->entries, cf->count + 1, sizeof(*cf->entries));
    cf->entries[cf->count++] = e;
    tokens_free(&t);
    return 0;
fail:
    entry_free(&e);
    tokens_free(&t);
    return -1;
}

/* master_cf_parse - parse text; returns the number of errors */
int master_cf_parse(master_cf *cf, const char *path, const char *text, size_t len)
{
    vbuf logical;
    int lineno = 0, start_line = 0, too_long = 0;
    size_t pos = 0;
    size_t before = cf->nerrors;

    vbuf_init(&logical, MASTER_CF_LINE_MAX);
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t llen = nl ? (size_t) (nl - line) : len - pos;
        const char *p;
        size_t skip;

        pos += llen + (nl ? 1 : 0);
        lineno++;
        if (llen > 0 && line[llen - 1] == '\r')
            llen--;
        if (memchr(line, 0, llen) != NULL) {
            add_error(cf, path, lineno, "NUL character in line");
            continue;
        }
        skip = 0;
        while (skip < llen && (line[skip] == ' ' || line[skip] == '\t'))
            skip++;
        p = line + skip;
        if (skip == llen || *p == '#')
            continue;
        if (skip > 0) { /* continuation */
            if (start_line == 0) {
                add_error(cf, path, lineno, "continuation line without a service before it");
                continue;
            }
            if (!too_long && (vbuf_putc(&logical, ' ') < 0 || vbuf_append(&logical, p, llen - skip) < 0)) {
                add_error(cf, path, start_line, "entry too long (limit %d bytes)", MASTER_CF_LINE_MAX);
                too_long = 1;
            }
            continue;
        }
        if (start_line && !too_long)
            parse_entry(cf, path, start_line, vbuf_str(&logical));
        vbuf_reset(&logical);
        too_long = 0;
        start_line = lineno;
        if (vbuf_append(&logical, line, llen) < 0) {
            add_error(cf, path, lineno, "entry too long (limit %d bytes)", MASTER_CF_LINE_MAX);
            too_long = 1;
        }
    }
    if (start_line && !too_long)
        parse_entry(cf, path, start_line, vbuf_str(&logical));
    vbuf_release(&logical);
    return (int) (cf->nerrors - before);
}

/* master_cf_read - read and parse a file; a missing file is an error */
int master_cf_read(master_cf *cf, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    vbuf text;
    char buf[8192];
    ssize_t n;
    int ret;

    if (fd < 0) {
        add_error(cf, path, 0, "cannot open: %s", strerror(errno));
        return 1;
    }
    vbuf_init(&text, MASTER_CF_FILE_MAX);
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            add_error(cf, path, 0, "read error: %s", strerror(errno));
            close(fd);
            vbuf_release(&text);
            return 1;
        }
        if (vbuf_append(&text, buf, (size_t) n) < 0) {
            add_error(cf, path, 0, "file too large");
            close(fd);
            vbuf_release(&text);
            return 1;
        }
    }
    close(fd);
    ret = master_cf_parse(cf, path, text.data, text.len);
    vbuf_release(&text);
    return ret;
}
