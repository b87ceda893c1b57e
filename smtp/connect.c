/*
 * connect.c - from a next hop to a list of server addresses, and connecting.
 *
 * Next-hop forms (as Postfix): "domain" and "host:port" look up MX records
 * (RFC 5321 §5.1: by preference, random among equals; no MX records means
 * the domain's own address; RFC 7505 null MX means the domain takes no
 * mail); "[host]" and "[host]:port" skip the MX lookup. LMTP next hops
 * never use MX records. Everything the resolver returns is parsed with
 * the bounds-checked ns_* functions.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <resolv.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "smtp.h"
#include "strutil.h"

typedef struct mx_host {
    char *name;
    int pref;
    unsigned rnd;
} mx_host;

/* smtp_addr_print - printable form of a socket address */
void smtp_addr_print(const struct sockaddr_storage *sa, char *buf, size_t len)
{
    const void *a = NULL;

    if (sa->ss_family == AF_INET)
        a = &((const struct sockaddr_in *) sa)->sin_addr;
    else if (sa->ss_family == AF_INET6)
        a = &((const struct sockaddr_in6 *) sa)->sin6_addr;
    if (a == NULL || inet_ntop(sa->ss_family, a, buf, (socklen_t) len) == NULL)
        snprintf(buf, len, "unknown");
}

/* dest_fail - fill in a resolution error */
static int dest_fail(smtp_dest_error *err, int status, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int dest_fail(smtp_dest_error *err, int status, const char *dsn, const char *fmt, ...)
{
    va_list ap;

    err->status = status;
    snprintf(err->dsn, sizeof(err->dsn), "%s", dsn);
    vbuf_reset(&err->reason);
    va_start(ap, fmt);
    vbuf_vprintf(&err->reason, fmt, ap);
    va_end(ap);
    return -1;
}

/* protocol_family - the address family allowed by inet_protocols */
static int protocol_family(void)
{
    int v4 = 0, v6 = 0;
    char *copy = xstrdup(var_inet_protocols);
    char *cp = copy, *tok;

    while ((tok = str_token(&cp, CHARS_COMMA_SPACE)) != NULL) {
        if (str_case_eq(tok, "all"))
            v4 = v6 = 1;
        else if (str_case_eq(tok, "ipv4"))
            v4 = 1;
        else if (str_case_eq(tok, "ipv6"))
            v6 = 1;
    }
    xfree(copy);
    if (v4 && !v6)
        return AF_INET;
    if (v6 && !v4)
        return AF_INET6;
    return AF_UNSPEC;
}

/* add_host_addrs - append the addresses of one host; 0, or an EAI_* code */
static int add_host_addrs(smtp_addr_list *out, const char *host, int pref, size_t limit)
{
    struct addrinfo hints, *res, *ai;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = protocol_family();
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc == EAI_NONAME || rc == EAI_FAIL || rc == EAI_AGAIN || rc == EAI_NODATA) {
        /* Loopback-only test hosts have no configured address: retry. */
        hints.ai_flags = 0;
        rc = getaddrinfo(host, NULL, &hints, &res);
    }
    if (rc != 0)
        return rc;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        smtp_addr *a;

        if (limit && out->count >= limit)
            break;
        if (ai->ai_addrlen > sizeof(struct sockaddr_storage))
            continue;
        out->addrs = xreallocarray(out->addrs, out->count + 1, sizeof(*out->addrs));
        a = &out->addrs[out->count++];
        memset(a, 0, sizeof(*a));
        a->host = xstrdup(host);
        memcpy(&a->sa, ai->ai_addr, ai->ai_addrlen);
        a->salen = ai->ai_addrlen;
        a->pref = pref;
    }
    freeaddrinfo(res);
    return 0;
}

static int mx_compare(const void *x, const void *y)
{
    const mx_host *a = x, *b = y;

    if (a->pref != b->pref)
        return a->pref < b->pref ? -1 : 1;
    return a->rnd < b->rnd ? -1 : a->rnd > b->rnd;
}

/* resolver_setup - res_ninit, with smtp_dns_resolver_address when set */
static int resolver_setup(struct __res_state *rs)
{
    memset(rs, 0, sizeof(*rs));
    if (res_ninit(rs) < 0)
        return -1;
    if (*var_smtp_dns_resolver_address) {
        /* "addr" or "addr:port", IPv4 (tests run a resolver on loopback). */
        struct sockaddr_in sin;

        if (dns_server_parse(var_smtp_dns_resolver_address, &sin) == 0) {
            rs->nsaddr_list[0] = sin;
            rs->nscount = 1;
        } else {
            msg_warn("smtp_dns_resolver_address: bad address \"%s\"", var_smtp_dns_resolver_address);
        }
    }
    return 0;
}

/*
 * lookup_mx - MX records of domain, sorted. Returns the count (0 = no MX
 * records), or -1 with err filled in.
 */
static int lookup_mx(const char *domain, mx_host **hosts, smtp_dest_error *err)
{
    struct __res_state rs;
    unsigned char answer[NS_PACKETSZ * 16];
    ns_msg msg;
    int len, count = 0, n;

    *hosts = NULL;
    if (resolver_setup(&rs) < 0)
        return dest_fail(err, DELIVER_DEFER, "4.4.3", "cannot initialize the resolver for %s", domain);
    len = res_nquery(&rs, domain, ns_c_in, ns_t_mx, answer, sizeof(answer));
    if (len < 0) {
        int herr = rs.res_h_errno;

        res_nclose(&rs);
        switch (herr) {
        case HOST_NOT_FOUND:
            return dest_fail(err, DELIVER_BOUNCE, "5.4.4",
                             "Host or domain name not found. Name service error for name=%s type=MX: Host not found",
                             domain);
        case NO_DATA:
            return 0;
        default:
            return dest_fail(err, DELIVER_DEFER, "4.4.3",
                             "Host or domain name not found. Name service error for name=%s type=MX: Host not "
                             "found, try again",
                             domain);
        }
    }
    res_nclose(&rs);
    if (len > (int) sizeof(answer))
        len = (int) sizeof(answer);
    if (ns_initparse(answer, len, &msg) < 0)
        return dest_fail(err, DELIVER_DEFER, "4.4.3", "malformed DNS reply for %s type=MX", domain);
    n = ns_msg_count(msg, ns_s_an);
    for (int i = 0; i < n; i++) {
        ns_rr rr;
        char name[NS_MAXDNAME];
        const unsigned char *rd;

        if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
            continue;
        if (ns_rr_type(rr) != ns_t_mx || ns_rr_rdlen(rr) < 3)
            continue;
        rd = ns_rr_rdata(rr);
        if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), rd + 2, name, sizeof(name)) < 0)
            continue;
        *hosts = xreallocarray(*hosts, (size_t) count + 1, sizeof(**hosts));
        (*hosts)[count].pref = (rd[0] << 8) | rd[1];
        /* ns_name_uncompress gives "." for the root name. */
        (*hosts)[count].name = xstrdup(strcmp(name, ".") == 0 ? "" : name);
        (*hosts)[count].rnd = (unsigned) random();
        count++;
    }
    if (count == 0)
        return 0;
    /* RFC 7505: a single MX with an empty exchange means "no mail". */
    for (int i = 0; i < count; i++) {
        if ((*hosts)[i].name[0] == 0) {
            for (int k = 0; k < count; k++)
                xfree((*hosts)[k].name);
            xfree(*hosts);
            *hosts = NULL;
            return dest_fail(err, DELIVER_BOUNCE, "5.1.10", "Domain %s does not accept mail (nullMX)", domain);
        }
    }
    qsort(*hosts, (size_t) count, sizeof(**hosts), mx_compare);
    return count;
}

/* split_nexthop - "[host]:port" / "host:port" / "host" into parts */
static int split_nexthop(const char *nexthop, char **host, int *port, int *no_mx)
{
    const char *p = nexthop;
    const char *colon;
    long v;

    *no_mx = 0;
    if (str_case_prefix(p, "inet:"))
        p += 5;
    if (*p == '[') {
        const char *close = strchr(p, ']');

        if (close == NULL || close == p + 1)
            return -1;
        *host = xstrndup(p + 1, (size_t) (close - p - 1));
        if (str_case_prefix(*host, "ipv6:")) {
            char *h = xstrdup(*host + 5);

            xfree(*host);
            *host = h;
        }
        *no_mx = 1;
        colon = close[1] == ':' ? close + 1 : NULL;
        if (close[1] && !colon) {
            xfree(*host);
            return -1;
        }
    } else {
        colon = strrchr(p, ':');
        *host = colon ? xstrndup(p, (size_t) (colon - p)) : xstrdup(p);
    }
    if (colon) {
        if (str_to_long(colon + 1, &v) < 0 || v <= 0 || v > 65535) {
            xfree(*host);
            return -1;
        }
        *port = (int) v;
    }
    if (**host == 0) {
        xfree(*host);
        return -1;
    }
    return 0;
}

/* smtp_resolve - the addresses to try for a next hop, in order */
int smtp_resolve(const char *nexthop, int lmtp, smtp_addr_list *out, int *port, smtp_dest_error *err)
{
    char *host;
    int no_mx;
    int rc;
    size_t limit = (size_t) var_smtp_mx_address_limit;

    out->addrs = NULL;
    out->count = 0;
    *port = lmtp ? 24 : 25;
    if (split_nexthop(nexthop, &host, port, &no_mx) < 0)
        return dest_fail(err, DELIVER_BOUNCE, "5.3.5", "malformed next-hop destination \"%s\"", nexthop);
    if (lmtp)
        no_mx = 1;
    if (!no_mx) {
        mx_host *mx;
        int n = lookup_mx(host, &mx, err);

        if (n < 0) {
            xfree(host);
            return -1;
        }
        if (n > 0) {
            int last_err = 0;

            for (int i = 0; i < n; i++) {
                if (!limit || out->count < limit) {
                    rc = add_host_addrs(out, mx[i].name, mx[i].pref, limit);
                    if (rc != 0)
                        last_err = rc;
                }
                xfree(mx[i].name);
            }
            xfree(mx);
            if (out->count == 0) {
                dest_fail(err, DELIVER_DEFER, last_err == EAI_AGAIN ? "4.4.3" : "4.4.4",
                          "Host or domain name not found. Name service error for the MX hosts of %s", host);
                xfree(host);
                return -1;
            }
            xfree(host);
            return 0;
        }
    }
    rc = add_host_addrs(out, host, 0, limit);
    if (rc != 0) {
        if (rc == EAI_AGAIN)
            dest_fail(err, DELIVER_DEFER, "4.4.3",
                      "Host or domain name not found. Name service error for name=%s type=A: Host not found, try "
                      "again",
                      host);
        else
            dest_fail(err, DELIVER_BOUNCE, "5.4.4",
                      "Host or domain name not found. Name service error for name=%s type=A: Host not found", host);
        xfree(host);
        return -1;
    }
    xfree(host);
    return 0;
}

void smtp_addr_list_free(smtp_addr_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        xfree(list->addrs[i].host);
    xfree(list->addrs);
    list->addrs = NULL;
    list->count = 0;
}

/* bind_source - honour smtp_bind_address / smtp_bind_address6 */
static int bind_source(int fd, int family, vbuf *why)
{
    const char *src = family == AF_INET6 ? var_smtp_bind_address6 : var_smtp_bind_address;
    struct sockaddr_storage ss;
    socklen_t len;

    if (*src == 0)
        return 0;
    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *) &ss;

        sin->sin_family = AF_INET;
        if (inet_pton(AF_INET, src, &sin->sin_addr) != 1)
            goto bad;
        len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;

        sin6->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, src, &sin6->sin6_addr) != 1)
            goto bad;
        len = sizeof(*sin6);
    }
    if (bind(fd, (struct sockaddr *) &ss, len) < 0) {
        vbuf_printf(why, "bind %s: %s", src, strerror(errno));
        return -1;
    }
    return 0;
bad:
    vbuf_printf(why, "bad smtp_bind_address%s: %s", family == AF_INET6 ? "6" : "", src);
    return -1;
}

/* connect_timeout - non-blocking connect bounded by timeout seconds */
static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t len, int timeout)
{
    struct pollfd pfd;
    int err = 0;
    socklen_t elen = sizeof(err);
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    if (connect(fd, sa, len) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return -1;
    pfd.fd = fd;
    pfd.events = POLLOUT;
    for (;;) {
        int n = poll(&pfd, 1, timeout * 1000);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        break;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        return -1;
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

/* smtp_connect_addr - TCP connection to one address; fd or -1 with why */
int smtp_connect_addr(const smtp_addr *a, int port, int timeout, vbuf *why)
{
    struct sockaddr_storage sa = a->sa;
    char text[64];
    int fd;

    if (sa.ss_family == AF_INET)
        ((struct sockaddr_in *) &sa)->sin_port = htons((unsigned short) port);
    else if (sa.ss_family == AF_INET6)
        ((struct sockaddr_in6 *) &sa)->sin6_port = htons((unsigned short) port);
    smtp_addr_print(&sa, text, sizeof(text));
    fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        vbuf_printf(why, "socket: %s", strerror(errno));
        return -1;
    }
    if (bind_source(fd, sa.ss_family, why) < 0) {
        close(fd);
        return -1;
    }
    if (connect_timeout(fd, (struct sockaddr *) &sa, a->salen, timeout) < 0) {
        vbuf_printf(why, "connect to %s[%s]:%d: %s", a->host, text, port,
                    errno == ETIMEDOUT ? "Connection timed out" : strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* smtp_connect_unix - LMTP over a UNIX-domain socket */
int smtp_connect_unix(const char *path, int timeout, vbuf *why)
{
    struct sockaddr_un sun;
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        vbuf_printf(why, "socket path too long: %s", path);
        return -1;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        vbuf_printf(why, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect_timeout(fd, (struct sockaddr *) &sun, sizeof(sun), timeout) < 0) {
        vbuf_printf(why, "connect to %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}
