/*
 * map_pcre - pcre: tables, PCRE2 pattern files in Postfix's pcre_table(5)
 * format.
 *
 * Each logical line is "/pattern/flags result", "!/pattern/flags result",
 * "if /pattern/flags", "if !/pattern/flags" or "endif". Any non-alphanumeric
 * character may delimit the pattern. Patterns match case-insensitively
 * unless the i flag toggles that; the flags m, s, x, A, E and U toggle the
 * matching PCRE2 options (X is accepted and has no effect). The result may
 * use $1, ${1} and $(1) for captured text and $$ for a dollar sign; a
 * negated pattern has no captures to use. Rules are tried in order; the
 * first match wins.
 *
 * Trusts nothing in the file: every error (unterminated pattern, unknown
 * flag, bad $ reference, unbalanced if/endif, compile error) fails the open
 * with "file:line: why". Matching runs with bounded PCRE2 limits; a rule
 * that hits them is logged and treated as not matching.
 */
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "map_impl.h"
#include "maps.h"
#include "msg.h"
#include "mymalloc.h"
#include "vbuf.h"

#define PCRE_MATCH_LIMIT 1000000 /* backtracking steps per match */
#define PCRE_DEPTH_LIMIT 10000   /* nested backtracking depth */
#define PCRE_NEST_MAX 1000       /* if/endif nesting */

enum rule_kind { RULE_MATCH, RULE_IF, RULE_ENDIF };

typedef struct pcre_rule {
    enum rule_kind kind;
    int negate;
    int line;
    pcre2_code *re; /* MATCH and IF */
    char *result;   /* MATCH: unexpanded result text */
    size_t endif;   /* IF: index of its endif */
} pcre_rule;

typedef struct pcre_table {
    char *name; /* file name, for messages */
    pcre_rule *rules;
    size_t count;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
} pcre_table;

/* table_free - release every compiled rule */
static void table_free(pcre_table *t)
{
    for (size_t i = 0; i < t->count; i++) {
        pcre2_code_free(t->rules[i].re);
        xfree(t->rules[i].result);
    }
    xfree(t->rules);
    xfree(t->name);
    pcre2_match_data_free(t->md);
    pcre2_match_context_free(t->mctx);
    xfree(t);
}

/*
 * expand - walk a result text: validate its $ references against ncap
 * (out == NULL) or write the substituted text to out.
 */
static int expand(const char *res, int ncap, const char *subject, const PCRE2_SIZE *ov, int groups, vbuf *out,
                  const char *name, int line, vbuf *err)
{
    const char *p = res;

    while (*p) {
        const char *dollar = strchr(p, '$'), *s, *e;
        long n = 0;

        if (dollar == NULL) {
            if (out)
                vbuf_puts(out, p);
            break;
        }
        if (out)
            vbuf_append(out, p, (size_t) (dollar - p));
        p = dollar + 1;
        if (*p == '$') {
            if (out)
                vbuf_putc(out, '$');
            p++;
            continue;
        }
        if (*p == '{' || *p == '(') {
            char close = *p == '{' ? '}' : ')';

            s = p + 1;
            if ((e = strchr(s, close)) == NULL) {
                map_seterr(err, "%s:%d: missing '%c' in result", name, line, close);
                return -1;
            }
            p = e + 1;
        } else {
            s = p;
            for (e = s; (*e >= '0' && *e <= '9') || (*e >= 'a' && *e <= 'z') || (*e >= 'A' && *e <= 'Z') || *e == '_';
                 e++)
                ;
            p = e;
        }
        if (e == s) {
            map_seterr(err, "%s:%d: '$' without a group number in result (use $$ for a dollar sign)", name, line);
            return -1;
        }
        for (const char *q = s; q < e; q++) {
            if (*q < '0' || *q > '9' || n > 1000) {
                map_seterr(err, "%s:%d: \"$%.*s\" in result is not a group number", name, line, (int) (e - s), s);
                return -1;
            }
            n = n * 10 + (*q - '0');
        }
        if (n > ncap) {
            map_seterr(err, "%s:%d: $%ld in result, but the pattern has %d group%s", name, line, n, ncap,
                       ncap == 1 ? "" : "s");
            return -1;
        }
        /* A group that did not take part in the match substitutes nothing. */
        if (out && n < groups && ov[2 * n] != PCRE2_UNSET)
            vbuf_append(out, subject + ov[2 * n], ov[2 * n + 1] - ov[2 * n]);
    }
    return 0;
}

/*
 * find_delim - the pattern's closing delimiter, or NULL. A backslash escapes
 * the next character. With classes set, a delimiter inside [...] (which
 * could only be a broken pattern if it ended there) does not end the
 * pattern, so "/[^@/]+/" reads as one pattern.
 */
static char *find_delim(char *p, char delim, int classes)
{
    int in_class = 0;

    for (; *p; p++) {
        if (*p == '\\') {
            if (p[1] == 0)
                return NULL;
            p++;
        } else if (in_class) {
            if (*p == '[' && p[1] == ':') {
                char *close = strstr(p + 2, ":]");

                if (close != NULL)
                    p = close + 1;
            } else if (*p == ']') {
                in_class = 0;
            }
        } else if (*p == delim) {
            return p;
        } else if (classes && *p == '[') {
            in_class = 1;
            /* A ']' first in the class is a literal. */
            if (p[1] == '^')
                p++;
            if (p[1] == ']')
                p++;
        }
    }
    return NULL;
}

/* parse_pattern - "!/re/flags" at *cursor: compile, advance past it */
static int parse_pattern(char **cursor, pcre_rule *r, const char *name, vbuf *err)
{
    char *p = *cursor, *start, *w, *end;
    uint32_t opts = PCRE2_CASELESS;
    PCRE2_SIZE erroff;
    PCRE2_UCHAR emsg[256];
    int ecode;
    char delim;

    if (*p == '!') {
        r->negate = 1;
        p++;
    }
    delim = *p;
    if (delim == 0 || delim == ' ' || delim == '\t' || delim == '\\' || (delim >= '0' && delim <= '9') ||
        (delim >= 'a' && delim <= 'z') || (delim >= 'A' && delim <= 'Z')) {
        map_seterr(err, "%s:%d: expected a pattern like /regexp/", name, r->line);
        return -1;
    }
    start = w = ++p;
    if ((end = find_delim(p, delim, 1)) == NULL)
        end = find_delim(p, delim, 0);
    if (end == NULL) {
        map_seterr(err, "%s:%d: no closing regexp delimiter \"%c\"", name, r->line, delim);
        return -1;
    }
    for (; p < end; p++) {
        /* "\<delim>" stands for the delimiter itself. */
        if (*p == '\\' && p + 1 < end) {
            if (p[1] != delim)
                *w++ = *p;
            p++;
        }
        *w++ = *p;
    }
    p++;
    for (; *p && *p != ' ' && *p != '\t'; p++) {
        switch (*p) {
        case 'i':
            opts ^= PCRE2_CASELESS;
            break;
        case 'm':
            opts ^= PCRE2_MULTILINE;
            break;
        case 's':
            opts ^= PCRE2_DOTALL;
            break;
        case 'x':
            opts ^= PCRE2_EXTENDED;
            break;
        case 'A':
            opts ^= PCRE2_ANCHORED;
            break;
        case 'E':
            opts ^= PCRE2_DOLLAR_ENDONLY;
            break;
        case 'U':
            opts ^= PCRE2_UNGREEDY;
            break;
        case 'X':
            break;
        default:
            map_seterr(err, "%s:%d: unknown regexp option \"%c\"", name, r->line, *p);
            return -1;
        }
    }
    r->re = pcre2_compile((PCRE2_SPTR) start, (PCRE2_SIZE) (w - start), opts, &ecode, &erroff, NULL);
    if (r->re == NULL) {
        if (pcre2_get_error_message(ecode, emsg, sizeof(emsg)) < 0)
            memcpy(emsg, "unknown error", sizeof("unknown error"));
        map_seterr(err, "%s:%d: error in regexp at offset %lu: %s", name, r->line, (unsigned long) erroff,
                   (const char *) emsg);
        return -1;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    *cursor = p;
    return 0;
}

/* word_is - the line starts with word followed by a blank, '!', a delimiter or the end */
static int word_is(const char *s, const char *word)
{
    size_t n = strlen(word);
    char c;

    if (strncmp(s, word, n) != 0)
        return 0;
    c = s[n];
    return !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_');
}

/* parse_rule - one logical line into r */
static int parse_rule(char *s, pcre_rule *r, const char *name, vbuf *err)
{
    uint32_t ncap = 0;

    if (word_is(s, "endif")) {
        r->kind = RULE_ENDIF;
        s += 5;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s) {
            map_seterr(err, "%s:%d: text after \"endif\"", name, r->line);
            return -1;
        }
        return 0;
    }
    if (word_is(s, "if")) {
        r->kind = RULE_IF;
        s += 2;
        while (*s == ' ' || *s == '\t')
            s++;
        if (parse_pattern(&s, r, name, err) < 0)
            return -1;
        if (*s) {
            map_seterr(err, "%s:%d: text after the \"if\" pattern", name, r->line);
            return -1;
        }
        return 0;
    }
    r->kind = RULE_MATCH;
    if (parse_pattern(&s, r, name, err) < 0)
        return -1;
    if (*s == 0) {
        map_seterr(err, "%s:%d: no result after the pattern", name, r->line);
        return -1;
    }
    if (pcre2_pattern_info(r->re, PCRE2_INFO_CAPTURECOUNT, &ncap) != 0)
        ncap = 0;
    if (expand(s, r->negate ? 0 : (int) ncap, NULL, NULL, 0, NULL, name, r->line, err) < 0) {
        if (r->negate && strstr(vbuf_str(err), " group") != NULL)
            map_seterr(err, "%s:%d: $ reference in the result of a negated pattern", name, r->line);
        return -1;
    }
    r->result = xstrdup(s);
    return 0;
}

/* pcre_lookup - first rule that matches, with its result expanded */
static const char *pcre_lookup(map *m, const char *key, int *status)
{
    pcre_table *t = m->impl;
    size_t len = strlen(key);

    for (size_t i = 0; i < t->count; i++) {
        pcre_rule *r = &t->rules[i];
        int rc, matched;

        if (r->kind == RULE_ENDIF)
            continue;
        rc = pcre2_match(r->re, (PCRE2_SPTR) key, len, 0, 0, t->md, t->mctx);
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
            PCRE2_UCHAR emsg[256];

            if (pcre2_get_error_message(rc, emsg, sizeof(emsg)) < 0)
                memcpy(emsg, "unknown error", sizeof("unknown error"));
            msg_warn("%s:%d: matching error, rule skipped: %s", t->name, r->line, (const char *) emsg);
            if (r->kind == RULE_IF)
                i = r->endif;
            continue;
        }
        matched = (rc >= 0) != r->negate;
        if (r->kind == RULE_IF) {
            if (!matched)
                i = r->endif;
            continue;
        }
        if (!matched)
            continue;
        vbuf_reset(&m->result);
        expand(r->result, 1 << 20, key, pcre2_get_ovector_pointer(t->md), r->negate ? 0 : rc, &m->result, t->name,
               r->line, NULL);
        *status = MAP_FOUND;
        return vbuf_str(&m->result);
    }
    *status = MAP_NOTFOUND;
    return NULL;
}

/* pcre_close - free the rules */
static void pcre_close(map *m)
{
    table_free(m->impl);
}

/* map_pcre_open_text - parse and compile a pattern file held in memory */
map *map_pcre_open_text(const char *spec, const char *name, const char *text, size_t len, int flags, vbuf *err)
{
    pcre_table *t = xcalloc(1, sizeof(*t));
    map_nest nest = {NULL, 0, 0, PCRE_NEST_MAX};
    uint32_t maxcap = 0;
    map_lines ml;
    map *m;
    int r;

    map_lines_init(&ml, name, text, len);
    while ((r = map_lines_next(&ml, err)) == 1) {
        pcre_rule *rule;
        uint32_t ncap = 0;

        t->rules = xreallocarray(t->rules, t->count + 1, sizeof(*t->rules));
        rule = &t->rules[t->count++];
        memset(rule, 0, sizeof(*rule));
        rule->line = ml.line;
        if (parse_rule(ml.buf.data, rule, name, err) < 0) {
            r = -1;
            break;
        }
        if (rule->re && pcre2_pattern_info(rule->re, PCRE2_INFO_CAPTURECOUNT, &ncap) == 0 && ncap > maxcap)
            maxcap = ncap;
        if (rule->kind == RULE_IF) {
            if (map_nest_if(&nest, t->count - 1, name, rule->line, err) < 0) {
                r = -1;
                break;
            }
        } else if (rule->kind == RULE_ENDIF) {
            long opened = map_nest_endif(&nest, name, rule->line, err);

            if (opened < 0) {
                r = -1;
                break;
            }
            t->rules[opened].endif = t->count - 1;
        }
    }
    if (r == 0)
        r = map_nest_finish(&nest, name, err);
    map_nest_release(&nest);
    map_lines_release(&ml);
    if (r < 0) {
        table_free(t);
        return NULL;
    }
    t->md = pcre2_match_data_create(maxcap + 1, NULL);
    t->mctx = pcre2_match_context_create(NULL);
    if (t->md == NULL || t->mctx == NULL)
        msg_fatal("%s: out of memory for PCRE2 match data", spec);
    pcre2_set_match_limit(t->mctx, PCRE_MATCH_LIMIT);
    pcre2_set_depth_limit(t->mctx, PCRE_DEPTH_LIMIT);
    m = map_alloc(spec, flags);
    m->pattern = 1;
    m->fold = 0;
    m->impl = t;
    m->lookup = pcre_lookup;
    m->close = pcre_close;
    t->name = xstrdup(name);
    return m;
}
