/*
 * check.c - smtpd access restrictions, evaluated as Postfix does.
 *
 * Offers the per-stage checks (client, HELO, sender, recipient, data). Each
 * smtpd_*_restrictions parameter is a list evaluated left to right: the
 * first permit ends that list, the first reject or defer ends everything,
 * "dunno" goes on. With smtpd_delay_reject (the default) the client, HELO
 * and sender lists are evaluated at RCPT time, so the client learns the
 * reason with the recipient. The relay list comes before the recipient
 * list; then, with smtpd_reject_unlisted_recipient, unknown recipients are
 * refused here, never bounced later. ETRN has its own list,
 * smtpd_etrn_restrictions (check_etrn_access looks up the domain and its
 * parent domains), after the delayed client and HELO lists, and its own
 * eligibility list, fast_flush_domains (subdomains match, as Postfix's
 * parent_domain_matches_subdomains default has it). The domain lists and
 * their matching live in lib/domain_list.c, shared with qmgr's flush_site.
 * reject_unknown_client_hostname and reject_unknown_reverse_client_hostname
 * use the naming states lookup.c settled for the session (no DNS here).
 *
 * Trusts the configuration; trusts nothing the client says. A table that
 * can't be read defers (4xx), it never lets mail through by accident.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "conf.h"
#include "domain_list.h"
#include "lookup.h"
#include "maps.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "smtpd.h"
#include "strutil.h"

/* Outcomes of one restriction. */
#define CHK_DUNNO 0
#define CHK_PERMIT 1
#define CHK_REJECT 2 /* reply in chk->reply */

typedef struct restriction {
    char *name;
    char *table_spec; /* for check_*_access */
    maps *table;
    int single_key; /* pcre:/regexp:/cidr: match the whole string */
} restriction;

typedef struct restriction_list {
    const char *param;
    restriction *items;
    size_t count;
} restriction_list;

typedef struct chk_ctx {
    smtpd_session *s;
    const char *helo;
    const char *sender;
    const char *rcpt;
    const char *etrn; /* the ETRN domain, while smtpd_etrn_restrictions run */
    char reply[1024];
} chk_ctx;

static restriction_list client_list, helo_list, sender_list, relay_list, rcpt_list, data_list, etrn_list;
static domain_list mydest_list, relay_domain_list, vmbox_domain_list, valias_domain_list;
static maps *local_rcpt_maps, *alias_maps_tab, *vmbox_maps, *valias_maps;
static int local_rcpt_passwd; /* local_recipient_maps includes the passwd file */
static int local_rcpt_check;  /* check local recipients at all */
static char **mynet_items;
static size_t mynet_count;
static maps **mynet_tables;
static size_t mynet_ntables;

/* list_parse - split a restriction parameter into items */
static void list_parse(restriction_list *rl, const char *param, const char *value)
{
    char *copy = xstrdup(value ? value : "");
    char *cursor = copy, *w;

    rl->param = param;
    rl->items = NULL;
    rl->count = 0;
    while ((w = param_list_token(&cursor)) != NULL) {
        restriction *r;

        rl->items = xreallocarray(rl->items, rl->count + 1, sizeof(*rl->items));
        r = &rl->items[rl->count++];
        memset(r, 0, sizeof(*r));
        r->name = xstrdup(w);
        str_lower(r->name);
        if (strncmp(r->name, "check_", 6) == 0 && strstr(r->name, "_access")) {
            char *t = param_list_token(&cursor);

            if (t == NULL) {
                msg_warn("%s: %s needs a table argument", param, r->name);
                continue;
            }
            r->table_spec = xstrdup(t);
            r->table = maps_open(param, t, 0);
            r->single_key = strncmp(t, "pcre:", 5) == 0 || strncmp(t, "regexp:", 7) == 0 || strncmp(t, "cidr:", 5) == 0;
        }
    }
    xfree(copy);
}

/* smtpd_cidr_match - does addr fall in pattern ("1.2.3.0/24", "[::1]/128", "1.2.3.4") */
int smtpd_cidr_match(const char *pattern, const char *addr)
{
    char net[128];
    const char *slash = strchr(pattern, '/');
    size_t nlen = slash ? (size_t) (slash - pattern) : strlen(pattern);
    unsigned char a[16], n[16];
    int fam, bits, maxbits, i;
    long lb;

    if (nlen >= sizeof(net))
        return 0;
    memcpy(net, pattern, nlen);
    net[nlen] = 0;
    if (net[0] == '[' && nlen > 2 && net[nlen - 1] == ']') {
        memmove(net, net + 1, nlen - 2);
        net[nlen - 2] = 0;
    }
    fam = strchr(net, ':') ? AF_INET6 : AF_INET;
    maxbits = fam == AF_INET6 ? 128 : 32;
    if (inet_pton(fam, net, n) != 1)
        return 0;
    if (inet_pton(fam, addr, a) != 1) {
        /* An IPv4-mapped IPv6 client against an IPv4 network. */
        if (fam == AF_INET && strncasecmp(addr, "::ffff:", 7) == 0 && inet_pton(AF_INET, addr + 7, a) == 1)
            ;
        else
            return 0;
    }
    if (slash) {
        if (str_to_long(slash + 1, &lb) < 0 || lb < 0 || lb > maxbits)
            return 0;
        bits = (int) lb;
    } else {
        bits = maxbits;
    }
    for (i = 0; i < bits / 8; i++)
        if (a[i] != n[i])
            return 0;
    if (bits % 8) {
        unsigned char mask = (unsigned char) (0xff << (8 - bits % 8));

        if ((a[i] & mask) != (n[i] & mask))
            return 0;
    }
    return 1;
}

/* smtpd_check_mynetworks - is the client address in mynetworks */
int smtpd_check_mynetworks(const char *addr)
{
    size_t i;
    int st;

    for (i = 0; i < mynet_count; i++)
        if (smtpd_cidr_match(mynet_items[i], addr))
            return 1;
    for (i = 0; i < mynet_ntables; i++)
        if (maps_find(mynet_tables[i], addr, &st) != NULL)
            return 1;
    return 0;
}

/* list_free - release a parsed restriction list */
static void list_free(restriction_list *rl)
{
    size_t i;

    for (i = 0; i < rl->count; i++) {
        xfree(rl->items[i].name);
        xfree(rl->items[i].table_spec);
        if (rl->items[i].table)
            maps_close(rl->items[i].table);
    }
    xfree(rl->items);
    memset(rl, 0, sizeof(*rl));
}

/* maps_release - close a table list if open */
static void maps_release(maps **m)
{
    if (*m)
        maps_close(*m);
    *m = NULL;
}

/* check_free - forget a previous smtpd_check_init (tests re-initialise) */
static void check_free(void)
{
    size_t i;

    list_free(&client_list);
    list_free(&helo_list);
    list_free(&sender_list);
    list_free(&relay_list);
    list_free(&rcpt_list);
    list_free(&data_list);
    list_free(&etrn_list);
    domain_list_free(&mydest_list);
    domain_list_free(&relay_domain_list);
    domain_list_free(&vmbox_domain_list);
    domain_list_free(&valias_domain_list);
    maps_release(&local_rcpt_maps);
    maps_release(&alias_maps_tab);
    maps_release(&vmbox_maps);
    maps_release(&valias_maps);
    for (i = 0; i < mynet_count; i++)
        xfree(mynet_items[i]);
    for (i = 0; i < mynet_ntables; i++)
        maps_close(mynet_tables[i]);
    xfree(mynet_items);
    xfree(mynet_tables);
    mynet_items = NULL;
    mynet_tables = NULL;
    mynet_count = mynet_ntables = 0;
    local_rcpt_passwd = local_rcpt_check = 0;
}

/* smtpd_check_init - parse the parameters and open the tables (before chroot) */
void smtpd_check_init(void)
{
    char *copy, *cursor, *w;

    check_free();

    list_parse(&client_list, "smtpd_client_restrictions", var_smtpd_client_restrictions);
    list_parse(&helo_list, "smtpd_helo_restrictions", var_smtpd_helo_restrictions);
    list_parse(&sender_list, "smtpd_sender_restrictions", var_smtpd_sender_restrictions);
    list_parse(&relay_list, "smtpd_relay_restrictions", var_smtpd_relay_restrictions);
    list_parse(&rcpt_list, "smtpd_recipient_restrictions", var_smtpd_recipient_restrictions);
    list_parse(&data_list, "smtpd_data_restrictions", var_smtpd_data_restrictions);
    list_parse(&etrn_list, "smtpd_etrn_restrictions", var_smtpd_etrn_restrictions);
    domain_list_parse(&mydest_list, "mydestination", var_mydestination, 0);
    domain_list_parse(&relay_domain_list, "relay_domains", var_relay_domains, 1);
    domain_list_parse(&vmbox_domain_list, "virtual_mailbox_domains", var_virtual_mailbox_domains, 0);
    domain_list_parse(&valias_domain_list, "virtual_alias_domains", var_virtual_alias_domains, 0);
    fast_flush_init();
    vmbox_maps = maps_open("virtual_mailbox_maps", var_virtual_mailbox_maps, 0);
    valias_maps = maps_open("virtual_alias_maps", var_virtual_alias_maps, 0);
    alias_maps_tab = maps_open("alias_maps", var_alias_maps, 0);

    /*
     * local_recipient_maps: unset means Postfix's default, the passwd file
     * plus $alias_maps; set but empty turns the check off.
     */
    if (!conf_is_set("local_recipient_maps")) {
        local_rcpt_check = 1;
        local_rcpt_passwd = 1;
        local_rcpt_maps = maps_open("alias_maps", var_alias_maps, 0);
    } else {
        vbuf rest;

        vbuf_init(&rest, 0);
        copy = xstrdup(var_local_recipient_maps ? var_local_recipient_maps : "");
        cursor = copy;
        while ((w = param_list_token(&cursor)) != NULL) {
            local_rcpt_check = 1;
            if (strcmp(w, "unix:passwd.byname") == 0 || strcmp(w, "proxy:unix:passwd.byname") == 0) {
                local_rcpt_passwd = 1;
                continue;
            }
            if (rest.len)
                vbuf_puts(&rest, ", ");
            vbuf_puts(&rest, w);
        }
        local_rcpt_maps = maps_open("local_recipient_maps", vbuf_str(&rest), 0);
        vbuf_release(&rest);
        xfree(copy);
    }

    copy = xstrdup(var_mynetworks ? var_mynetworks : "");
    cursor = copy;
    while ((w = param_list_token(&cursor)) != NULL) {
        if (param_is_table(w)) {
            mynet_tables = xreallocarray(mynet_tables, mynet_ntables + 1, sizeof(*mynet_tables));
            mynet_tables[mynet_ntables++] = maps_open("mynetworks", w, 0);
        } else {
            mynet_items = xreallocarray(mynet_items, mynet_count + 1, sizeof(*mynet_items));
            mynet_items[mynet_count++] = xstrdup(w);
        }
    }
    xfree(copy);
}

/* ---- helpers ---- */

/* smtpd_valid_hostname - RFC 1035 host name syntax, or an address literal */
int smtpd_valid_hostname(const char *name)
{
    size_t len = strlen(name), label = 0;
    const char *p;

    if (len == 0 || len > 255)
        return 0;
    if (name[0] == '[')
        return name[len - 1] == ']' && addr_valid_domain(name, 0);
    for (p = name; *p; p++) {
        if (*p == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char) *p) && *p != '-' && *p != '_')
            return 0;
        if (++label > 63)
            return 0;
    }
    return 1;
}

/* fqdn - a valid host name with a dot (not an address literal) */
static int fqdn(const char *name)
{
    size_t len = strlen(name);

    if (name[0] == '[')
        return smtpd_valid_hostname(name);
    if (!smtpd_valid_hostname(name) || strchr(name, '.') == NULL)
        return 0;
    return name[len - 1] != '.' || strchr(name, '.') != name + len - 1;
}

/* local_part - the address's local part without an extension, lowercased */
static char *local_part(const char *addr)
{
    const char *at = strrchr(addr, '@');
    char *lp = at ? xstrndup(addr, (size_t) (at - addr)) : xstrdup(addr);

    if (var_recipient_delimiter && *var_recipient_delimiter) {
        size_t n = strcspn(lp, var_recipient_delimiter);

        if (n > 0)
            lp[n] = 0;
    }
    str_lower(lp);
    return lp;
}

/* found - a table verdict: 1 found, 0 not, -1 error */
static int found(maps *m, const char *addr, int flags)
{
    int st;

    if (m == NULL || maps_empty(m))
        return 0;
    if (maps_find_addr(m, addr, flags, &st) != NULL)
        return 1;
    return st == MAP_ERROR ? -1 : 0;
}

/*
 * rcpt_known - is the recipient a known user: 1 yes, 0 no, -1 lookup
 * error; *table names the table that said no.
 */
static int rcpt_known(const char *rcpt, const char **table, int *code)
{
    const char *domain = addr_domain(rcpt);
    int r;

    *table = NULL;
    *code = 550;
    /* RFC 5321 §4.5.1: postmaster is always accepted. */
    if (strcasecmp(rcpt, "postmaster") == 0)
        return 1;
    if ((r = found(valias_maps, rcpt, 0)) != 0)
        return r;
    if (domain == NULL || (r = domain_list_match(&mydest_list, domain)) > 0) {
        char *lp;

        if (!local_rcpt_check)
            return 1;
        lp = local_part(rcpt);
        if (strcmp(lp, "postmaster") == 0) {
            xfree(lp);
            return 1;
        }
        r = local_rcpt_passwd && getpwnam(lp) != NULL;
        xfree(lp);
        if (!r)
            r = found(local_rcpt_maps, rcpt, MAPS_ADDR_LOCAL);
        *table = "local recipient table";
        *code = (int) var_unknown_local_recipient_reject_code;
        return r;
    }
    if (r < 0)
        return -1;
    if ((r = domain_list_match(&valias_domain_list, domain)) != 0) {
        *table = "virtual alias table";
        return r < 0 ? -1 : 0;
    }
    if ((r = domain_list_match(&vmbox_domain_list, domain)) != 0) {
        if (r < 0)
            return -1;
        *table = "virtual mailbox table";
        *code = (int) var_unknown_virtual_mailbox_reject_code;
        return found(vmbox_maps, rcpt, 0);
    }
    return 1; /* relay or remote: not ours to say */
}

/* smtpd_check_known_rcpt - see smtpd.h */
int smtpd_check_known_rcpt(const char *rcpt)
{
    const char *table;
    int code;

    return rcpt_known(rcpt, &table, &code);
}

/* rcpt_domain_ours - local, virtual or relay domain: 1, 0, or -1 */
static int rcpt_domain_ours(const char *rcpt)
{
    const char *domain = addr_domain(rcpt);
    int r;

    if (domain == NULL)
        return 1; /* "postmaster" and other bare local names */
    if ((r = domain_list_match(&mydest_list, domain)) != 0)
        return r;
    if ((r = domain_list_match(&valias_domain_list, domain)) != 0)
        return r;
    if ((r = domain_list_match(&vmbox_domain_list, domain)) != 0)
        return r;
    return domain_list_match(&relay_domain_list, domain);
}

/* reject_fmt - build a reply "CODE X.Y.Z <what>: Kind rejected: text" */
static int reject_fmt(chk_ctx *c, int code, const char *dsn, const char *what, const char *kind, const char *text)
{
    if (kind)
        snprintf(c->reply, sizeof(c->reply), "%d %s <%s>: %s rejected: %s", code, dsn, what, kind, text);
    else
        snprintf(c->reply, sizeof(c->reply), "%d %s <%s>: %s", code, dsn, what, text);
    return CHK_REJECT;
}

/*
 * reject_unknown_name - reject_unknown_client_hostname (status is the
 * forward-confirmed name's) or reject_unknown_reverse_client_hostname (the
 * reverse name's). A permanent failure gets unknown_client_reject_code, a
 * temporary one always 450; the enhanced code is RFC 7372 §3.2's X.7.25
 * (reverse DNS validation failed), its class following the reply code.
 */
static int reject_unknown_name(chk_ctx *c, int status, const char *what)
{
    int code;

    if (status == SMTPD_PEER_OK)
        return CHK_DUNNO;
    code = status == SMTPD_PEER_TEMP ? 450 : (int) var_unknown_client_reject_code;
    snprintf(c->reply, sizeof(c->reply), "%d %c.7.25 Client host rejected: cannot find your %s, [%s]", code,
             code >= 500 ? '5' : '4', what, c->s->addr);
    return CHK_REJECT;
}

/* access_action - interpret a check_*_access result */
static int access_action(chk_ctx *c, const char *result, const char *what, const char *kind)
{
    char word[64];
    size_t n = strcspn(result, " \t");
    const char *text = result + n;

    while (*text == ' ' || *text == '\t')
        text++;
    if (n >= sizeof(word))
        n = sizeof(word) - 1;
    memcpy(word, result, n);
    word[n] = 0;
    if (strcasecmp(word, "OK") == 0 || strcasecmp(word, "PERMIT") == 0)
        return CHK_PERMIT;
    if (strcasecmp(word, "DUNNO") == 0)
        return CHK_DUNNO;
    if (strcasecmp(word, "REJECT") == 0)
        return reject_fmt(c, (int) var_access_map_reject_code, "5.7.1", what, kind, *text ? text : "Access denied");
    if (strcasecmp(word, "DEFER") == 0 || strcasecmp(word, "DEFER_IF_PERMIT") == 0)
        return reject_fmt(c, (int) var_defer_code, "4.7.1", what, kind, *text ? text : "Access denied");
    if (n == 3 && (word[0] == '4' || word[0] == '5') && isdigit((unsigned char) word[1]) &&
        isdigit((unsigned char) word[2])) {
        /* "550 text" or "550 5.7.1 text" */
        char dsn[16];
        size_t dl = strcspn(text, " ");

        if (dl > 4 && dl < sizeof(dsn) && text[0] == word[0] && text[1] == '.') {
            memcpy(dsn, text, dl);
            dsn[dl] = 0;
            text += dl;
            while (*text == ' ')
                text++;
        } else {
            snprintf(dsn, sizeof(dsn), "%c.7.1", word[0]);
        }
        return reject_fmt(c, atoi(word), dsn, what, kind, *text ? text : "Access denied");
    }
    msg_warn("access table result \"%s\" not supported; ignored", word);
    return CHK_DUNNO;
}

/* access_lookup - try keys in Postfix's order against one table */
static int access_lookup(chk_ctx *c, restriction *r, const char **keys, size_t nkeys, const char *what,
                         const char *kind)
{
    size_t i;
    int st;

    for (i = 0; i < nkeys; i++) {
        const char *v;

        if (keys[i] == NULL || *keys[i] == 0)
            continue;
        v = maps_find(r->table, keys[i], &st);
        if (v)
            return access_action(c, v, what, kind);
        if (st == MAP_ERROR) {
            snprintf(c->reply, sizeof(c->reply), "451 4.3.0 <%s>: Temporary lookup failure", what);
            return CHK_REJECT;
        }
        if (r->single_key)
            break;
    }
    return CHK_DUNNO;
}

/* check_address_access - user@domain, domain, parent domains, user@ */
static int check_address_access(chk_ctx *c, restriction *r, const char *addr, const char *kind)
{
    const char *keys[16];
    size_t n = 0;
    const char *domain;
    char *lp_at = NULL;
    int res;

    keys[n++] = *addr ? addr : "<>";
    if (!r->single_key && (domain = addr_domain(addr)) != NULL) {
        const char *p = domain;

        while (p && n < 14) {
            keys[n++] = p;
            p = strchr(p, '.');
            if (p)
                p++;
        }
        lp_at = xstrndup(addr, (size_t) (domain - addr));
        keys[n++] = lp_at;
    }
    res = access_lookup(c, r, keys, n, addr, kind);
    xfree(lp_at);
    return res;
}

/* check_client_access - address, name, then the address's parent networks */
static int check_client_access(chk_ctx *c, restriction *r)
{
    const char *keys[8];
    char nets[3][64];
    size_t n = 0;
    int i;

    keys[n++] = c->s->addr;
    if (!r->single_key) {
        if (strcmp(c->s->name, "unknown") != 0)
            keys[n++] = c->s->name;
        if (!strchr(c->s->addr, ':')) {
            char work[64];

            /* 192.0.2.1 -> "192.0.2", "192.0", "192" (Postfix's hash-table client lookups). */
            snprintf(work, sizeof(work), "%s", c->s->addr);
            for (i = 0; i < 3; i++) {
                char *dot = strrchr(work, '.');

                if (dot == NULL)
                    break;
                *dot = 0;
                memcpy(nets[i], work, sizeof(work));
                keys[n++] = nets[i];
            }
        }
    }
    return access_lookup(c, r, keys, n, c->s->namaddr, "Client host");
}

/* check_helo_access - the HELO name and its parent domains */
static int check_helo_access(chk_ctx *c, restriction *r)
{
    const char *keys[16];
    size_t n = 0;
    const char *p = c->helo;

    while (p && *p && n < 16) {
        keys[n++] = p;
        if (r->single_key)
            break;
        p = strchr(p, '.');
        if (p)
            p++;
    }
    return access_lookup(c, r, keys, n, c->helo, "Helo command");
}

/* check_etrn_access - the ETRN domain and its parent domains */
static int check_etrn_access(chk_ctx *c, restriction *r)
{
    const char *keys[128];
    size_t n = 0;
    const char *p = c->etrn;

    while (p && *p && n < sizeof(keys) / sizeof(keys[0])) {
        keys[n++] = p;
        if (r->single_key || *p == '[')
            break;
        p = strchr(p, '.');
        if (p)
            p++;
    }
    return access_lookup(c, r, keys, n, c->etrn, "Etrn command");
}

/* eval_one - one restriction */
static int eval_one(chk_ctx *c, restriction *r)
{
    const char *n = r->name;

    if (strcmp(n, "permit") == 0)
        return CHK_PERMIT;
    if (strcmp(n, "reject") == 0 && c->etrn)
        return reject_fmt(c, (int) var_reject_code, "5.7.1", c->etrn, "Etrn command", "Access denied");
    if (strcmp(n, "defer") == 0 && c->etrn)
        return reject_fmt(c, (int) var_defer_code, "4.3.2", c->etrn, "Etrn command", "Try again later");
    if (strcmp(n, "reject") == 0) {
        snprintf(c->reply, sizeof(c->reply), "%ld 5.7.1 Access denied", var_reject_code);
        return CHK_REJECT;
    }
    if (strcmp(n, "defer") == 0) {
        snprintf(c->reply, sizeof(c->reply), "%ld 4.3.2 Service currently unavailable", var_defer_code);
        return CHK_REJECT;
    }
    if (strcmp(n, "dunno") == 0)
        return CHK_DUNNO;
    if (strcmp(n, "permit_mynetworks") == 0)
        return c->s->in_mynetworks ? CHK_PERMIT : CHK_DUNNO;
    if (strcmp(n, "permit_sasl_authenticated") == 0)
        return c->s->sasl_username ? CHK_PERMIT : CHK_DUNNO;
    if (strcmp(n, "permit_tls_all_clientcerts") == 0 || strcmp(n, "permit_tls_clientcerts") == 0)
        return CHK_DUNNO; /* no client certificates are requested */
    if (strcmp(n, "reject_unauth_destination") == 0 || strcmp(n, "defer_unauth_destination") == 0 ||
        strcmp(n, "permit_auth_destination") == 0) {
        int ours;

        if (c->rcpt == NULL)
            return CHK_DUNNO;
        ours = rcpt_domain_ours(c->rcpt);
        if (ours < 0) {
            snprintf(c->reply, sizeof(c->reply), "451 4.3.0 <%s>: Temporary lookup failure", c->rcpt);
            return CHK_REJECT;
        }
        if (n[0] == 'p')
            return ours ? CHK_PERMIT : CHK_DUNNO;
        if (ours)
            return CHK_DUNNO;
        return reject_fmt(c, n[0] == 'd' ? 450 : (int) var_relay_domains_reject_code, n[0] == 'd' ? "4.7.1" : "5.7.1",
                          c->rcpt, NULL, "Relay access denied");
    }
    if (strcmp(n, "reject_unlisted_recipient") == 0 || strcmp(n, "reject_unknown_recipient") == 0) {
        const char *table;
        int code, known;

        if (c->rcpt == NULL)
            return CHK_DUNNO;
        known = rcpt_known(c->rcpt, &table, &code);
        if (known > 0)
            return CHK_DUNNO;
        if (known < 0) {
            snprintf(c->reply, sizeof(c->reply), "451 4.3.0 <%s>: Temporary lookup failure", c->rcpt);
            return CHK_REJECT;
        }
        snprintf(c->reply, sizeof(c->reply), "%d %s <%s>: Recipient address rejected: User unknown in %s", code,
                 code >= 500 ? "5.1.1" : "4.1.1", c->rcpt, table ? table : "recipient table");
        return CHK_REJECT;
    }
    if (strcmp(n, "reject_invalid_helo_hostname") == 0) {
        if (c->helo == NULL || *c->helo == 0 || smtpd_valid_hostname(c->helo))
            return CHK_DUNNO;
        return reject_fmt(c, 501, "5.5.2", c->helo, "Helo command", "Invalid name");
    }
    if (strcmp(n, "reject_non_fqdn_helo_hostname") == 0) {
        if (c->helo == NULL || *c->helo == 0 || fqdn(c->helo))
            return CHK_DUNNO;
        return reject_fmt(c, 504, "5.5.2", c->helo, "Helo command", "need fully-qualified hostname");
    }
    if (strcmp(n, "reject_non_fqdn_sender") == 0 || strcmp(n, "reject_non_fqdn_recipient") == 0) {
        int snd = strcmp(n, "reject_non_fqdn_sender") == 0;
        const char *a = snd ? c->sender : c->rcpt;
        const char *d;

        if (a == NULL || *a == 0)
            return CHK_DUNNO;
        d = addr_domain(a);
        if (d && fqdn(d))
            return CHK_DUNNO;
        return reject_fmt(c, 504, "5.5.2", a, snd ? "Sender address" : "Recipient address",
                          "need fully-qualified address");
    }
    /* "reject_unknown_client" is the name Postfix had before 2.3. */
    if (strcmp(n, "reject_unknown_client_hostname") == 0 || strcmp(n, "reject_unknown_client") == 0)
        return reject_unknown_name(c, c->s->name_status, "hostname");
    if (strcmp(n, "reject_unknown_reverse_client_hostname") == 0)
        return reject_unknown_name(c, c->s->reverse_name_status, "reverse hostname");
    if (strcmp(n, "check_client_access") == 0)
        return check_client_access(c, r);
    if (strcmp(n, "check_helo_access") == 0)
        return c->helo && *c->helo ? check_helo_access(c, r) : CHK_DUNNO;
    if (strcmp(n, "check_sender_access") == 0)
        return c->sender ? check_address_access(c, r, c->sender, "Sender address") : CHK_DUNNO;
    if (strcmp(n, "check_recipient_access") == 0)
        return c->rcpt ? check_address_access(c, r, c->rcpt, "Recipient address") : CHK_DUNNO;
    if (strcmp(n, "check_etrn_access") == 0)
        return c->etrn ? check_etrn_access(c, r) : CHK_DUNNO;
    msg_warn("unknown smtpd restriction: \"%s\"", n);
    snprintf(c->reply, sizeof(c->reply), "451 4.3.5 Server configuration error");
    return CHK_REJECT;
}

/* eval_list - one restriction list: CHK_PERMIT/CHK_DUNNO go on, CHK_REJECT stops */
static int eval_list(chk_ctx *c, restriction_list *rl)
{
    size_t i;
    int r;

    for (i = 0; i < rl->count; i++) {
        r = eval_one(c, &rl->items[i]);
        if (r != CHK_DUNNO)
            return r;
    }
    return CHK_DUNNO;
}

/* ctx_init - the evaluation context for a session */
static void ctx_init(chk_ctx *c, smtpd_session *s, const char *rcpt)
{
    c->s = s;
    c->helo = s->helo.len ? vbuf_str(&s->helo) : NULL;
    c->sender = s->sender;
    c->rcpt = rcpt;
    c->etrn = NULL;
    c->reply[0] = 0;
}

static char reply_buf[1024];

/* verdict - copy the reply out of the context */
static const char *verdict(chk_ctx *c)
{
    snprintf(reply_buf, sizeof(reply_buf), "%s", c->reply);
    return reply_buf;
}

/* smtpd_check_client - smtpd_client_restrictions */
const char *smtpd_check_client(smtpd_session *s)
{
    chk_ctx c;

    ctx_init(&c, s, NULL);
    return eval_list(&c, &client_list) == CHK_REJECT ? verdict(&c) : NULL;
}

/* smtpd_check_helo - smtpd_helo_restrictions (smtpd_delay_reject = no) */
const char *smtpd_check_helo(smtpd_session *s, const char *helo)
{
    chk_ctx c;

    ctx_init(&c, s, NULL);
    c.helo = helo;
    return eval_list(&c, &helo_list) == CHK_REJECT ? verdict(&c) : NULL;
}

/* smtpd_check_mail - smtpd_sender_restrictions (smtpd_delay_reject = no) */
const char *smtpd_check_mail(smtpd_session *s, const char *sender)
{
    chk_ctx c;

    ctx_init(&c, s, NULL);
    c.sender = sender;
    return eval_list(&c, &sender_list) == CHK_REJECT ? verdict(&c) : NULL;
}

/*
 * smtpd_check_rcpt - at RCPT: (delayed) client, HELO and sender lists,
 * then relay and recipient lists, then the unlisted-recipient check.
 */
const char *smtpd_check_rcpt(smtpd_session *s, const char *rcpt)
{
    chk_ctx c;
    restriction unlisted = {"reject_unlisted_recipient", NULL, NULL, 0};

    ctx_init(&c, s, rcpt);
    /* Like Postfix: with both lists empty nothing guards relaying; refuse, never relay. */
    if (relay_list.count == 0 && rcpt_list.count == 0) {
        msg_warn("smtpd_relay_restrictions and smtpd_recipient_restrictions are both empty");
        return "451 4.3.5 Server configuration error";
    }
    if (var_smtpd_delay_reject) {
        if (eval_list(&c, &client_list) == CHK_REJECT || eval_list(&c, &helo_list) == CHK_REJECT ||
            eval_list(&c, &sender_list) == CHK_REJECT)
            return verdict(&c);
    }
    if (eval_list(&c, &relay_list) == CHK_REJECT || eval_list(&c, &rcpt_list) == CHK_REJECT)
        return verdict(&c);
    if (var_smtpd_reject_unlisted_recipient && eval_one(&c, &unlisted) == CHK_REJECT)
        return verdict(&c);
    return NULL;
}

/* smtpd_check_data - smtpd_data_restrictions */
const char *smtpd_check_data(smtpd_session *s)
{
    chk_ctx c;

    ctx_init(&c, s, s->rcpt_count == 1 ? s->first_rcpt : NULL);
    return eval_list(&c, &data_list) == CHK_REJECT ? verdict(&c) : NULL;
}

/* smtpd_check_etrn - ETRN: the delayed client and HELO lists, then smtpd_etrn_restrictions */
const char *smtpd_check_etrn(smtpd_session *s, const char *domain)
{
    chk_ctx c;

    ctx_init(&c, s, NULL);
    if (var_smtpd_delay_reject &&
        (eval_list(&c, &client_list) == CHK_REJECT || eval_list(&c, &helo_list) == CHK_REJECT))
        return verdict(&c);
    c.etrn = domain;
    return eval_list(&c, &etrn_list) == CHK_REJECT ? verdict(&c) : NULL;
}

/* smtpd_check_fast_flush - may ETRN flush this domain (fast_flush_domains) */
int smtpd_check_fast_flush(const char *domain)
{
    return fast_flush_eligible(domain);
}
