/*
 * resolve - address resolution to (class, transport, next hop); see
 * resolve.h for the rules, which are Postfix's trivial-rewrite ones.
 *
 * Reads main.cf parameters (mydestination, virtual_mailbox_domains,
 * relay_domains, inet_interfaces, transport_maps, the *_transport
 * parameters, relayhost) at resolve_init(). Trusts the configuration; an
 * address is only split and compared, never used as a path or command. A
 * table that fails makes resolve_addr() report an error so the caller
 * defers the mail rather than sending it somewhere wrong.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "maps.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "resolve.h"
#include "strutil.h"
#include "vbuf.h"

/* One entry of a domain list: a name or a table. */
typedef struct domain_entry {
    char *name; /* lowercased; ".x" matches subdomains */
    maps *table;
} domain_entry;

typedef struct domain_list {
    domain_entry *v;
    size_t n;
} domain_list;

/* A local interface address, for address literals. */
typedef struct if_addr {
    int family;
    unsigned char addr[16];
} if_addr;

static domain_list rs_mydestination, rs_virtual, rs_relay;
static maps *rs_transport_maps;
static if_addr *rs_ifaddrs;
static size_t rs_nifaddrs;
static int rs_ready;

/* domain_list_free - forget a list */
static void domain_list_free(domain_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        xfree(l->v[i].name);
        if (l->v[i].table)
            maps_close(l->v[i].table);
    }
    xfree(l->v);
    l->v = NULL;
    l->n = 0;
}

/* list_token - next comma/space separated token, keeping "{...}" together */
static char *list_token(char **cursor)
{
    char *p = *cursor, *start;
    int depth = 0;

    while (*p && strchr(CHARS_COMMA_SPACE, *p))
        p++;
    if (*p == 0) {
        *cursor = p;
        return NULL;
    }
    start = p;
    for (; *p; p++) {
        if (*p == '{')
            depth++;
        else if (*p == '}' && depth > 0)
            depth--;
        else if (depth == 0 && strchr(CHARS_COMMA_SPACE, *p))
            break;
    }
    if (*p)
        *p++ = 0;
    *cursor = p;
    return start;
}

/* domain_list_init - parse "a.example, .b.example, hash:/etc/x, inline:{...}" */
static void domain_list_init(domain_list *l, const char *param, const char *value)
{
    char *copy = xstrdup(value ? value : ""), *cursor = copy, *tok;

    domain_list_free(l);
    while ((tok = list_token(&cursor)) != NULL) {
        domain_entry e = {NULL, NULL};

        if (tok[0] != '[' && strchr(tok, ':') != NULL) {
            e.table = maps_open(param, tok, 0);
        } else {
            size_t len = strlen(tok);

            while (len > 1 && tok[len - 1] == '.') /* "example.com." */
                tok[--len] = 0;
            e.name = xstrdup(tok);
            str_lower(e.name);
        }
        l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
        l->v[l->n++] = e;
    }
    xfree(copy);
}

/* domain_is_sub - domain is a proper subdomain of parent */
static int domain_is_sub(const char *domain, const char *parent)
{
    size_t dl = strlen(domain), pl = strlen(parent);

    return dl > pl + 1 && domain[dl - pl - 1] == '.' && strcmp(domain + dl - pl, parent) == 0;
}

/* domain_list_match - 1 match, 0 none, -1 table error */
static int domain_list_match(const domain_list *l, const char *domain, int subdomains)
{
    for (size_t i = 0; i < l->n; i++) {
        const domain_entry *e = &l->v[i];
        int status;

        if (e->name) {
            if (e->name[0] == '.' ? domain_is_sub(domain, e->name + 1)
                                  : strcmp(domain, e->name) == 0 || (subdomains && domain_is_sub(domain, e->name)))
                return 1;
            continue;
        }
        for (const char *d = domain; d && *d;) {
            (void) maps_find(e->table, d, &status);
            if (status == MAP_FOUND)
                return 1;
            if (status == MAP_ERROR)
                return -1;
            if (!subdomains)
                break;
            d = strchr(d, '.');
            if (d)
                d++;
        }
    }
    return 0;
}

/* if_add - remember one interface address */
static void if_add(int family, const void *addr)
{
    if_addr a;

    memset(&a, 0, sizeof(a));
    a.family = family;
    memcpy(a.addr, addr, family == AF_INET ? 4 : 16);
    rs_ifaddrs = xrealloc(rs_ifaddrs, (rs_nifaddrs + 1) * sizeof(*rs_ifaddrs));
    rs_ifaddrs[rs_nifaddrs++] = a;
}

/* if_add_text - an address given as text in inet_interfaces */
static void if_add_text(const char *text)
{
    unsigned char buf[16];
    char tmp[64];
    size_t len = strlen(text);

    if (len >= 2 && text[0] == '[' && text[len - 1] == ']' && len - 2 < sizeof(tmp)) {
        memcpy(tmp, text + 1, len - 2);
        tmp[len - 2] = 0;
        text = tmp;
    }
    if (inet_pton(AF_INET, text, buf) == 1)
        if_add(AF_INET, buf);
    else if (inet_pton(AF_INET6, text, buf) == 1)
        if_add(AF_INET6, buf);
    else if (str_case_eq(text, "localhost"))
        if_add_text("127.0.0.1");
    else
        msg_warn("inet_interfaces: ignoring \"%s\" for address literal matching (not an address)", text);
}

/* if_init - the addresses address literals must name to be local */
static void if_init(const char *value)
{
    char *copy = xstrdup(value ? value : ""), *cursor = copy, *tok;

    xfree(rs_ifaddrs);
    rs_ifaddrs = NULL;
    rs_nifaddrs = 0;
    while ((tok = str_token(&cursor, CHARS_COMMA_SPACE)) != NULL) {
        if (str_case_eq(tok, "all")) {
            struct ifaddrs *list, *ifa;

            if (getifaddrs(&list) < 0) {
                msg_warn("getifaddrs: %m");
                continue;
            }
            for (ifa = list; ifa; ifa = ifa->ifa_next) {
                if (ifa->ifa_addr == NULL)
                    continue;
                if (ifa->ifa_addr->sa_family == AF_INET)
                    if_add(AF_INET, &((struct sockaddr_in *) (void *) ifa->ifa_addr)->sin_addr);
                else if (ifa->ifa_addr->sa_family == AF_INET6)
                    if_add(AF_INET6, &((struct sockaddr_in6 *) (void *) ifa->ifa_addr)->sin6_addr);
            }
            freeifaddrs(list);
        } else if (str_case_eq(tok, "loopback-only")) {
            if_add_text("127.0.0.1");
            if_add_text("::1");
        } else {
            if_add_text(tok);
        }
    }
    xfree(copy);
}

/* resolve_is_local_literal - "[1.2.3.4]" or "[IPv6:...]" naming a local interface */
int resolve_is_local_literal(const char *domain)
{
    char tmp[64];
    unsigned char buf[16];
    size_t len = strlen(domain);
    const char *inner;
    int family;

    if (len < 3 || domain[0] != '[' || domain[len - 1] != ']' || len - 2 >= sizeof(tmp))
        return 0;
    memcpy(tmp, domain + 1, len - 2);
    tmp[len - 2] = 0;
    inner = tmp;
    if (str_case_prefix(inner, "ipv6:")) {
        inner += 5;
        family = AF_INET6;
    } else {
        family = AF_INET;
    }
    if (inet_pton(family, inner, buf) != 1)
        return 0;
    for (size_t i = 0; i < rs_nifaddrs; i++)
        if (rs_ifaddrs[i].family == family && memcmp(rs_ifaddrs[i].addr, buf, family == AF_INET ? 4 : 16) == 0)
            return 1;
    return 0;
}

/* resolve_init - read the parameters, open the tables */
void resolve_init(void)
{
    domain_list_init(&rs_mydestination, "mydestination", var_mydestination);
    domain_list_init(&rs_virtual, "virtual_mailbox_domains", var_virtual_mailbox_domains);
    domain_list_init(&rs_relay, "relay_domains", var_relay_domains);
    if (rs_transport_maps)
        maps_close(rs_transport_maps);
    rs_transport_maps = maps_open("transport_maps", var_transport_maps, 0);
    if_init(var_inet_interfaces);
    rs_ready = 1;
}

/* resolve_reply_init - an empty reply */
void resolve_reply_init(resolve_reply *r)
{
    r->class = RESOLVE_DEFAULT;
    vbuf_init(&r->transport, 0);
    vbuf_init(&r->nexthop, 0);
    vbuf_init(&r->domain, 0);
}

/* resolve_reply_free - release a reply's buffers */
void resolve_reply_free(resolve_reply *r)
{
    vbuf_release(&r->transport);
    vbuf_release(&r->nexthop);
    vbuf_release(&r->domain);
}

/* resolve_class_name - for logs and sendmail -bv */
const char *resolve_class_name(enum resolve_class c)
{
    switch (c) {
    case RESOLVE_LOCAL:
        return "local";
    case RESOLVE_VIRTUAL:
        return "virtual";
    case RESOLVE_RELAY:
        return "relay";
    default:
        return "default";
    }
}

/* resolve_split_transport - "transport:nexthop"; no colon = transport only */
void resolve_split_transport(const char *value, vbuf *transport, vbuf *nexthop)
{
    const char *colon = strchr(value, ':');
    size_t tlen = colon ? (size_t) (colon - value) : strlen(value);
    vbuf tmp;

    vbuf_init(&tmp, 0);
    (void) vbuf_setn(&tmp, value, tlen);
    vbuf_trim(&tmp);
    (void) vbuf_set(transport, vbuf_str(&tmp));
    (void) vbuf_set(&tmp, colon ? colon + 1 : "");
    vbuf_trim(&tmp);
    (void) vbuf_set(nexthop, vbuf_str(&tmp));
    vbuf_release(&tmp);
}

/* transport_lookup - transport_maps: address, domain, parents, "*"; status */
static const char *transport_lookup(const char *addr, const char *domain, int *status)
{
    const char *res;
    vbuf key;

    *status = MAP_NOTFOUND;
    if (maps_empty(rs_transport_maps))
        return NULL;
    if (*domain) {
        res = maps_find(rs_transport_maps, addr, status);
        if (*status != MAP_NOTFOUND)
            return res;
        res = maps_find(rs_transport_maps, domain, status);
        if (*status != MAP_NOTFOUND)
            return res;
        vbuf_init(&key, 0);
        for (const char *d = strchr(domain, '.'); d; d = strchr(d + 1, '.')) {
            (void) vbuf_set(&key, d); /* ".example.com" */
            res = maps_find(rs_transport_maps, vbuf_str(&key), status);
            if (*status != MAP_NOTFOUND) {
                vbuf_release(&key);
                return res;
            }
        }
        vbuf_release(&key);
    }
    return maps_find(rs_transport_maps, "*", status);
}

/* resolve_addr - classify an address and pick its transport and next hop */
int resolve_addr(const char *addr, resolve_reply *r)
{
    const char *at = strrchr(addr, '@');
    const char *class_transport, *override;
    vbuf dflt_nexthop, t, n;
    int match, status;

    if (!rs_ready)
        resolve_init();
    (void) vbuf_set(&r->domain, at ? at + 1 : "");
    vbuf_lower(&r->domain);
    while (VBUF_LEN(&r->domain) > 1 && r->domain.data[VBUF_LEN(&r->domain) - 1] == '.')
        vbuf_truncate(&r->domain, VBUF_LEN(&r->domain) - 1);

    /* The class, in Postfix's order. */
    if (VBUF_LEN(&r->domain) == 0 || resolve_is_local_literal(vbuf_str(&r->domain))) {
        r->class = RESOLVE_LOCAL;
    } else if ((match = domain_list_match(&rs_mydestination, vbuf_str(&r->domain), 0)) != 0) {
        if (match < 0)
            return -1;
        r->class = RESOLVE_LOCAL;
    } else if ((match = domain_list_match(&rs_virtual, vbuf_str(&r->domain), 0)) != 0) {
        if (match < 0)
            return -1;
        r->class = RESOLVE_VIRTUAL;
    } else if ((match = domain_list_match(&rs_relay, vbuf_str(&r->domain), 1)) != 0) {
        if (match < 0)
            return -1;
        r->class = RESOLVE_RELAY;
    } else {
        r->class = RESOLVE_DEFAULT;
    }

    switch (r->class) {
    case RESOLVE_LOCAL:
        class_transport = var_local_transport;
        break;
    case RESOLVE_VIRTUAL:
        class_transport = var_virtual_transport;
        break;
    case RESOLVE_RELAY:
        class_transport = var_relay_transport;
        break;
    default:
        class_transport = var_default_transport;
        break;
    }
    vbuf_init(&dflt_nexthop, 0);
    vbuf_init(&t, 0);
    vbuf_init(&n, 0);
    if (r->class == RESOLVE_LOCAL)
        (void) vbuf_set(&dflt_nexthop, var_myhostname);
    else if ((r->class == RESOLVE_RELAY || r->class == RESOLVE_DEFAULT) && *var_relayhost)
        (void) vbuf_set(&dflt_nexthop, var_relayhost);
    else
        (void) vbuf_set(&dflt_nexthop, vbuf_str(&r->domain));

    resolve_split_transport(class_transport, &r->transport, &r->nexthop);
    if (VBUF_LEN(&r->nexthop) == 0)
        (void) vbuf_set(&r->nexthop, vbuf_str(&dflt_nexthop));

    /* transport_maps win over the class (empty halves keep the class's). */
    override = transport_lookup(addr, vbuf_str(&r->domain), &status);
    if (status == MAP_ERROR) {
        msg_warn("resolve: %s: transport_maps lookup failed", addr);
        vbuf_release(&dflt_nexthop);
        vbuf_release(&t);
        vbuf_release(&n);
        return -1;
    }
    if (status == MAP_FOUND && override) {
        resolve_split_transport(override, &t, &n);
        if (VBUF_LEN(&t))
            (void) vbuf_set(&r->transport, vbuf_str(&t));
        if (VBUF_LEN(&n))
            (void) vbuf_set(&r->nexthop, vbuf_str(&n));
    }
    if (VBUF_LEN(&r->transport) == 0)
        (void) vbuf_set(&r->transport, "smtp");
    vbuf_release(&dflt_nexthop);
    vbuf_release(&t);
    vbuf_release(&n);
    return 0;
}
