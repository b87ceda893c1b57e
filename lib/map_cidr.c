/*
 * map_cidr - cidr: tables in Postfix's cidr_table(5) format.
 *
 * Each logical line is "network/prefix result" or "address result" (IPv4 or
 * IPv6; an IPv6 network may be written in [brackets]), optionally negated
 * with a leading "!", or "if network/prefix" ... "endif". Rules are tried
 * in order and the first match wins. Keys are IP addresses in text form;
 * anything else is simply not found.
 *
 * Trusts nothing in the file: bad addresses, prefix lengths out of range,
 * host bits set below the prefix, missing results and unbalanced if/endif
 * fail the open with "file:line: why".
 */
#include <arpa/inet.h>
#include <string.h>

#include "map_impl.h"
#include "maps.h"
#include "msg.h"
#include "mymalloc.h"
#include "vbuf.h"

#define CIDR_NEST_MAX 1000

enum cidr_kind { CIDR_MATCH, CIDR_IF, CIDR_ENDIF };

typedef struct cidr_rule {
    enum cidr_kind kind;
    int negate;
    int family; /* AF_INET or AF_INET6 */
    unsigned char net[16];
    int prefix;   /* bits */
    char *result; /* CIDR_MATCH */
    size_t endif; /* CIDR_IF: index of its endif */
    int line;
} cidr_rule;

typedef struct cidr_table {
    cidr_rule *rules;
    size_t count;
} cidr_table;

/* table_free - release the rules */
static void table_free(cidr_table *t)
{
    for (size_t i = 0; i < t->count; i++)
        xfree(t->rules[i].result);
    xfree(t->rules);
    xfree(t);
}

/* parse_addr - text address (IPv4, IPv6, [IPv6]) to bytes; family or -1 */
static int parse_addr(const char *s, size_t len, unsigned char *out)
{
    char buf[64];

    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
        if (len >= sizeof(buf) || memchr(s, ':', len) == NULL)
            return -1;
        memcpy(buf, s, len);
        buf[len] = 0;
        return inet_pton(AF_INET6, buf, out) == 1 ? AF_INET6 : -1;
    }
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    if (inet_pton(AF_INET, buf, out) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, buf, out) == 1)
        return AF_INET6;
    return -1;
}

/* in_net - whether addr lies in the rule's network */
static int in_net(const cidr_rule *r, const unsigned char *addr)
{
    int full = r->prefix / 8, rest = r->prefix % 8;

    if (memcmp(addr, r->net, (size_t) full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    return ((addr[full] ^ r->net[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

/* parse_net - "[!]address[/prefix]" of length len into r */
static int parse_net(const char *s, size_t len, cidr_rule *r, const char *name, vbuf *err)
{
    const char *slash;
    int bits, maxbits;
    size_t alen;

    if (len > 0 && *s == '!') {
        r->negate = 1;
        s++;
        len--;
    }
    slash = memchr(s, '/', len);
    alen = slash ? (size_t) (slash - s) : len;
    if ((r->family = parse_addr(s, alen, r->net)) < 0) {
        map_seterr(err, "%s:%d: bad network address \"%.*s\"", name, r->line, (int) alen, s);
        return -1;
    }
    maxbits = r->family == AF_INET ? 32 : 128;
    if (slash == NULL) {
        r->prefix = maxbits;
        return 0;
    }
    bits = 0;
    if (slash + 1 == s + len) {
        map_seterr(err, "%s:%d: missing prefix length after '/'", name, r->line);
        return -1;
    }
    for (const char *p = slash + 1; p < s + len; p++) {
        if (*p < '0' || *p > '9' || bits > maxbits) {
            map_seterr(err, "%s:%d: bad prefix length \"%.*s\"", name, r->line, (int) (s + len - slash - 1), slash + 1);
            return -1;
        }
        bits = bits * 10 + (*p - '0');
    }
    if (bits > maxbits) {
        map_seterr(err, "%s:%d: prefix length %d is over %d", name, r->line, bits, maxbits);
        return -1;
    }
    r->prefix = bits;
    /* The address must be the network itself: no bits below the prefix. */
    for (int i = bits; i < maxbits; i++) {
        if (r->net[i / 8] & (0x80 >> (i % 8))) {
            map_seterr(err, "%s:%d: \"%.*s\" has host bits set below /%d", name, r->line, (int) alen, s, bits);
            return -1;
        }
    }
    return 0;
}

/* parse_rule - one logical line */
static int parse_rule(char *s, cidr_rule *r, const char *name, vbuf *err)
{
    char *p;

    if (strcmp(s, "endif") == 0) {
        r->kind = CIDR_ENDIF;
        return 0;
    }
    if (strncmp(s, "endif", 5) == 0 && (s[5] == ' ' || s[5] == '\t')) {
        map_seterr(err, "%s:%d: text after \"endif\"", name, r->line);
        return -1;
    }
    r->kind = CIDR_MATCH;
    if (strncmp(s, "if", 2) == 0 && (s[2] == ' ' || s[2] == '\t')) {
        r->kind = CIDR_IF;
        for (s += 2; *s == ' ' || *s == '\t'; s++)
            ;
    }
    for (p = s; *p && *p != ' ' && *p != '\t'; p++)
        ;
    if (parse_net(s, (size_t) (p - s), r, name, err) < 0)
        return -1;
    while (*p == ' ' || *p == '\t')
        p++;
    if (r->kind == CIDR_IF) {
        if (*p) {
            map_seterr(err, "%s:%d: text after the \"if\" network", name, r->line);
            return -1;
        }
        return 0;
    }
    if (*p == 0) {
        map_seterr(err, "%s:%d: no result after the network", name, r->line);
        return -1;
    }
    r->result = xstrdup(p);
    return 0;
}

/* cidr_lookup - first rule whose network holds the address */
static const char *cidr_lookup(map *m, const char *key, int *status)
{
    cidr_table *t = m->impl;
    unsigned char addr[16];
    int family;

    *status = MAP_NOTFOUND;
    if (key[0] == '[' || (family = parse_addr(key, strlen(key), addr)) < 0)
        return NULL;
    for (size_t i = 0; i < t->count; i++) {
        cidr_rule *r = &t->rules[i];
        int matched;

        if (r->kind == CIDR_ENDIF)
            continue;
        matched = (r->family == family && in_net(r, addr)) != r->negate;
        if (r->kind == CIDR_IF) {
            if (!matched)
                i = r->endif;
            continue;
        }
        if (matched) {
            vbuf_set(&m->result, r->result);
            *status = MAP_FOUND;
            return vbuf_str(&m->result);
        }
    }
    return NULL;
}

/* cidr_close - free the rules */
static void cidr_close(map *m)
{
    table_free(m->impl);
}

/* map_cidr_open_text - parse a cidr table held in memory */
map *map_cidr_open_text(const char *spec, const char *name, const char *text, size_t len, int flags, vbuf *err)
{
    cidr_table *t = xcalloc(1, sizeof(*t));
    map_nest nest = {NULL, 0, 0, CIDR_NEST_MAX};
    map_lines ml;
    map *m;
    int r;

    map_lines_init(&ml, name, text, len);
    while ((r = map_lines_next(&ml, err)) == 1) {
        cidr_rule *rule;

        t->rules = xreallocarray(t->rules, t->count + 1, sizeof(*t->rules));
        rule = &t->rules[t->count++];
        memset(rule, 0, sizeof(*rule));
        rule->line = ml.line;
        if (parse_rule(ml.buf.data, rule, name, err) < 0) {
            r = -1;
            break;
        }
        if (rule->kind == CIDR_IF) {
            if (map_nest_if(&nest, t->count - 1, name, rule->line, err) < 0) {
                r = -1;
                break;
            }
        } else if (rule->kind == CIDR_ENDIF) {
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
    m = map_alloc(spec, flags);
    m->pattern = 1;
    m->impl = t;
    m->lookup = cidr_lookup;
    m->close = cidr_close;
    return m;
}
