/*
 * domain_list.c - domain list parameters and their matching; see
 * include/domain_list.h. Also fast_flush_domains, the list of sites that
 * ETRN and `kitequeue -s` may flush.
 *
 * Trusts the configuration. Trusts nothing about the domain it is asked
 * about: any length and any bytes are matched (or not) without harm.
 */
#include <ctype.h>
#include <string.h>

#include "domain_list.h"
#include "maps.h"
#include "mymalloc.h"
#include "params.h"
#include "strutil.h"

/* The fast flush eligibility list (fast_flush_init). */
static domain_list fast_flush_list;

/* param_list_token - the next item of a parameter list; see domain_list.h */
char *param_list_token(char **cursor)
{
    char *start = *cursor, *p;
    int depth = 0;

    if (start == NULL)
        return NULL;
    start += strspn(start, CHARS_COMMA_SPACE);
    if (*start == 0) {
        *cursor = start;
        return NULL;
    }
    for (p = start; *p; p++) {
        if (*p == '{')
            depth++;
        else if (*p == '}' && depth > 0)
            depth--;
        else if (depth == 0 && strchr(CHARS_COMMA_SPACE, *p))
            break;
    }
    if (*p) {
        *p = 0;
        *cursor = p + 1;
    } else {
        *cursor = p;
    }
    return start;
}

/* param_is_table - "type:name" (not an address literal); see domain_list.h */
int param_is_table(const char *s)
{
    const char *c = strchr(s, ':');

    if (c == NULL || c == s || s[0] == '[')
        return 0;
    for (const char *p = s; p < c; p++)
        if (!isalnum((unsigned char) *p) && *p != '_' && *p != '-')
            return 0;
    return 1;
}

/* domain_list_parse - a domain list parameter (names and tables) */
void domain_list_parse(domain_list *dl, const char *param, const char *value, int subdomains)
{
    char *copy = xstrdup(value ? value : "");
    char *cursor = copy, *w;

    memset(dl, 0, sizeof(*dl));
    dl->subdomains = subdomains;
    while ((w = param_list_token(&cursor)) != NULL) {
        if (param_is_table(w)) {
            dl->tables = xreallocarray(dl->tables, dl->ntables + 1, sizeof(*dl->tables));
            dl->tables[dl->ntables++] = maps_open(param, w, 0);
        } else {
            dl->names = xreallocarray(dl->names, dl->nnames + 1, sizeof(*dl->names));
            dl->names[dl->nnames] = xstrdup(w);
            str_lower(dl->names[dl->nnames++]);
        }
    }
    xfree(copy);
}

/* domain_list_match - 1 in the list, 0 not, -1 lookup error */
int domain_list_match(const domain_list *dl, const char *domain)
{
    char *d;
    const char *p;
    size_t i, dlen;
    int st, result = 0;

    if (domain == NULL || *domain == 0)
        return 0;
    d = xstrdup(domain);
    str_lower(d);
    dlen = strlen(d);
    if (d[dlen - 1] == '.')
        d[--dlen] = 0;
    for (i = 0; i < dl->nnames && !result; i++) {
        const char *n = dl->names[i];
        size_t nl = strlen(n);

        if (strcmp(n, d) == 0)
            result = 1;
        else if (n[0] == '.' && dlen > nl && strcmp(d + dlen - nl, n) == 0)
            result = 1;
        else if (dl->subdomains && dlen > nl && d[dlen - nl - 1] == '.' && strcmp(d + dlen - nl, n) == 0)
            result = 1;
    }
    for (i = 0; i < dl->ntables && !result; i++) {
        for (p = d; p && *p && !result;) {
            if (maps_find(dl->tables[i], p, &st) != NULL)
                result = 1;
            else if (st == MAP_ERROR)
                result = -1;
            if (!dl->subdomains)
                break;
            if ((p = strchr(p, '.')) != NULL)
                p++;
        }
    }
    xfree(d);
    return result;
}

/* domain_list_free - release a parsed domain list */
void domain_list_free(domain_list *dl)
{
    size_t i;

    for (i = 0; i < dl->nnames; i++)
        xfree(dl->names[i]);
    for (i = 0; i < dl->ntables; i++)
        maps_close(dl->tables[i]);
    xfree(dl->names);
    xfree(dl->tables);
    memset(dl, 0, sizeof(*dl));
}

/* fast_flush_init - fast_flush_domains, subdomains included (parent_domain_matches_subdomains) */
void fast_flush_init(void)
{
    domain_list_free(&fast_flush_list);
    domain_list_parse(&fast_flush_list, "fast_flush_domains", var_fast_flush_domains, 1);
}

/* fast_flush_eligible - is the site in fast_flush_domains */
int fast_flush_eligible(const char *site)
{
    return domain_list_match(&fast_flush_list, site);
}
