/*
 * dns - reverse names, strict DNS answer parsing, host name syntax and a
 * blocking query through one given server (see dns.h).
 *
 * Offers what a name lookup in a worker thread needs, with no allocation
 * through mymalloc and no logging, so it is safe off the main thread.
 * Trusts nothing in an answer: RFC 1035 §4.1 message layout, §4.1.4
 * compression (pointers must point backwards; with the §2.3.4 limit of 255
 * octets per name, counted across pointers, every loop ends), 63 octets per
 * label. Names
 * whose labels hold dots, spaces, control or non-ASCII octets are refused,
 * so what comes out is always printable and unambiguous.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "dns.h"

#define DNS_HDR_LEN 12
#define DNS_CLASS_IN 1

/* get16 - a big-endian 16-bit value */
static unsigned get16(const unsigned char *p)
{
    return (unsigned) p[0] << 8 | p[1];
}

/* dns_reverse_name - the PTR owner name of a printable IPv4 or IPv6 address */
int dns_reverse_name(const char *addr, char *out, size_t outlen)
{
    unsigned char a[16];
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    if (inet_pton(AF_INET, addr, a) == 1) {
        int r = snprintf(out, outlen, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);

        return r < 0 || (size_t) r >= outlen ? -1 : 0;
    }
    if (inet_pton(AF_INET6, addr, a) != 1)
        return -1;
    /* RFC 3596 §2.5: nibbles in reverse order under ip6.arpa. */
    if (outlen < 16 * 4 + sizeof("ip6.arpa"))
        return -1;
    for (int i = 15; i >= 0; i--) {
        out[n++] = hex[a[i] & 0xf];
        out[n++] = '.';
        out[n++] = hex[a[i] >> 4];
        out[n++] = '.';
    }
    memcpy(out + n, "ip6.arpa", sizeof("ip6.arpa"));
    return 0;
}

/* dns_name_unpack - expand the name at off into dotted form */
int dns_name_unpack(const unsigned char *msg, size_t len, size_t off, char *out, size_t outlen, size_t *next)
{
    size_t pos = off, o = 0, wire = 0;
    int jumped = 0, unprintable = 0;

    if (outlen == 0)
        return -1;
    for (;;) {
        unsigned c;

        if (pos >= len)
            return -1;
        c = msg[pos];
        if ((c & 0xc0) == 0xc0) {
            size_t ptr;

            if (pos + 1 >= len)
                return -1;
            ptr = (size_t) get16(msg + pos) & 0x3fff;
            /* RFC 1035 §4.1.4: a pointer names a prior occurrence; only backwards. */
            if (ptr >= pos)
                return -1;
            if (!jumped)
                *next = pos + 2;
            jumped = 1;
            pos = ptr;
            continue;
        }
        if (c & 0xc0)
            return -1; /* RFC 6891 extended label types: not in names we use */
        if (c == 0) {
            if (!jumped)
                *next = pos + 1;
            if (++wire > 255)
                return -1;
            out[o] = 0;
            return unprintable ? -2 : 0;
        }
        if (pos + 1 + c > len)
            return -1;
        wire += c + 1;
        if (wire > 255)
            return -1;
        if (o != 0 && !unprintable) {
            if (o + 1 >= outlen)
                return -1;
            out[o++] = '.';
        }
        for (unsigned i = 1; i <= c; i++) {
            unsigned char ch = msg[pos + i];

            if (ch <= 0x20 || ch >= 0x7f || ch == '.' || ch == '\\')
                unprintable = 1;
            if (!unprintable) {
                if (o + 1 >= outlen)
                    return -1;
                out[o++] = (char) ch;
            }
        }
        pos += 1 + c;
    }
}

/* same_name - compare two dotted names, case-insensitively, ignoring a final dot */
static int same_name(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la && a[la - 1] == '.')
        la--;
    if (lb && b[lb - 1] == '.')
        lb--;
    return la == lb && strncasecmp(a, b, la) == 0;
}

/* One resource record: its owner, type, class and where its RDATA lies. */
typedef struct dns_rr {
    char owner[DNS_NAME_SIZE];
    int owner_ok; /* the owner name was printable */
    unsigned type, class;
    size_t rdata, rdlen;
} dns_rr;

/* rr_read - the record at *off, moving *off past it; 0, or -1 when malformed */
static int rr_read(const unsigned char *msg, size_t len, size_t *off, dns_rr *rr)
{
    size_t p;

    switch (dns_name_unpack(msg, len, *off, rr->owner, sizeof(rr->owner), &p)) {
    case 0:
        rr->owner_ok = 1;
        break;
    case -2:
        rr->owner_ok = 0; /* well-formed but unprintable: can't be our name */
        break;
    default:
        return -1;
    }
    if (p + 10 > len)
        return -1;
    rr->type = get16(msg + p);
    rr->class = get16(msg + p + 2);
    rr->rdlen = get16(msg + p + 8);
    rr->rdata = p + 10;
    if (rr->rdata + rr->rdlen > len)
        return -1;
    *off = rr->rdata + rr->rdlen;
    return 0;
}

/* parse_answer - dns_parse_answer's work; out->count may be left set on failure */
static int parse_answer(const unsigned char *msg, size_t len, unsigned id, const char *qname, int qtype,
                        dns_answer *out)
{
    char target[DNS_NAME_SIZE], qn[DNS_NAME_SIZE];
    unsigned flags, qdcount, ancount;
    size_t off, an_start;
    int rcode;

    out->count = 0;
    if (len < DNS_HDR_LEN || get16(msg) != (id & 0xffff))
        return DNS_MALFORMED;
    flags = get16(msg + 2);
    qdcount = get16(msg + 4);
    ancount = get16(msg + 6);
    /* RFC 1035 §4.1.1: QR set, OPCODE 0 (QUERY), exactly our one question. */
    if (!(flags & 0x8000) || ((flags >> 11) & 0xf) != 0 || qdcount != 1)
        return DNS_MALFORMED;
    if (dns_name_unpack(msg, len, DNS_HDR_LEN, qn, sizeof(qn), &off) < 0 || off + 4 > len)
        return DNS_MALFORMED;
    if (!same_name(qn, qname) || get16(msg + off) != (unsigned) qtype || get16(msg + off + 2) != DNS_CLASS_IN)
        return DNS_MALFORMED;
    off += 4;
    rcode = (int) (flags & 0xf);
    if (flags & 0x0200)
        return DNS_TEMP; /* TC: the resolver library did not complete it over TCP */
    if (rcode == 3)
        return DNS_NXDOMAIN;
    if (rcode != 0)
        return DNS_TEMP; /* SERVFAIL, REFUSED, NOTIMP, FORMERR */
    an_start = off;
    /* Validate the whole answer section once before trusting any of it. */
    for (unsigned i = 0; i < ancount; i++) {
        dns_rr rr;

        if (rr_read(msg, len, &off, &rr) < 0)
            return DNS_MALFORMED;
    }
    if (strlen(qname) >= sizeof(target))
        return DNS_MALFORMED;
    snprintf(target, sizeof(target), "%s", qname);
    for (int hop = 0; hop <= DNS_MAX_CNAME; hop++) {
        char cname[DNS_NAME_SIZE];
        int have_cname = 0;

        off = an_start;
        for (unsigned i = 0; i < ancount; i++) {
            dns_rr rr;
            size_t end;

            (void) rr_read(msg, len, &off, &rr); /* checked above */
            if (!rr.owner_ok || rr.class != DNS_CLASS_IN || !same_name(rr.owner, target))
                continue;
            if (rr.type == (unsigned) qtype) {
                if (out->count >= DNS_MAX_RECORDS)
                    continue;
                if (qtype == DNS_TYPE_A || qtype == DNS_TYPE_AAAA) {
                    size_t want = qtype == DNS_TYPE_A ? 4 : 16;

                    if (rr.rdlen != want)
                        return DNS_MALFORMED;
                    memset(out->addrs[out->count], 0, sizeof(out->addrs[0]));
                    memcpy(out->addrs[out->count], msg + rr.rdata, want);
                    out->count++;
                } else if (qtype == DNS_TYPE_PTR || qtype == DNS_TYPE_CNAME) {
                    /* The name must end inside its own RDATA (pointers may lead elsewhere). */
                    int r = dns_name_unpack(msg, len, rr.rdata, out->names[out->count], DNS_NAME_SIZE, &end);

                    if (r == -1 || end != rr.rdata + rr.rdlen)
                        return DNS_MALFORMED;
                    if (r == 0)
                        out->count++; /* an unprintable name is unusable, not fatal */
                }
            } else if (rr.type == DNS_TYPE_CNAME && !have_cname) {
                if (dns_name_unpack(msg, len, rr.rdata, cname, sizeof(cname), &end) < 0 || end != rr.rdata + rr.rdlen)
                    return DNS_MALFORMED;
                have_cname = 1;
            }
        }
        if (out->count > 0)
            return DNS_OK;
        if (!have_cname)
            return DNS_NODATA;
        memcpy(target, cname, sizeof(target));
    }
    return DNS_MALFORMED; /* a CNAME chain longer than we follow, or a loop */
}

/* dns_parse_answer - the records of qtype for qname in an answer to our query */
int dns_parse_answer(const unsigned char *msg, size_t len, unsigned id, const char *qname, int qtype, dns_answer *out)
{
    int st = parse_answer(msg, len, id, qname, qtype, out);

    if (st != DNS_OK)
        out->count = 0; /* nothing from a refused answer is used */
    return st;
}

/* dns_valid_hostname - letters, digits, hyphens (not at a label's ends), underscores; not all numeric */
int dns_valid_hostname(const char *name)
{
    size_t len = strlen(name), label = 0;
    int alpha = 0;
    unsigned char a[16];

    if (len == 0 || len > 255 || name[0] == '.')
        return 0;
    if (inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) name[i];

        if (c == '.') {
            if (label == 0 || name[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (c == '-') {
            if (label == 0)
                return 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
            alpha = 1;
        } else if (c < '0' || c > '9') {
            return 0;
        }
        if (++label > 63)
            return 0;
    }
    if (label > 0 && name[len - 1] == '-')
        return 0;
    return alpha;
}

/* dns_server_parse - an IPv4 server address with an optional port */
int dns_server_parse(const char *spec, struct sockaddr_in *sin)
{
    char host[64];
    const char *colon = strrchr(spec, ':');
    size_t hl = colon ? (size_t) (colon - spec) : strlen(spec);
    unsigned long port = 53;

    if (hl == 0 || hl >= sizeof(host))
        return -1;
    memcpy(host, spec, hl);
    host[hl] = 0;
    if (colon) {
        const char *p = colon + 1;

        if (*p == 0 || strlen(p) > 5)
            return -1;
        port = 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return -1;
            port = port * 10 + (unsigned long) (*p - '0');
        }
        if (port == 0 || port > 65535)
            return -1;
    }
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((unsigned short) port);
    return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 : -1;
}

/* dns_query - one question to one server, over UDP (TCP when truncated) */
int dns_query(const struct sockaddr_in *server, int timeout_s, const char *qname, int qtype, dns_answer *out)
{
    struct __res_state rs;
    unsigned char query[NS_PACKETSZ];
    unsigned char answer[16384];
    int qlen, alen, st;

    out->count = 0;
    memset(&rs, 0, sizeof(rs));
    if (res_ninit(&rs) < 0)
        return DNS_TEMP;
    rs.nsaddr_list[0] = *server;
    rs.nscount = 1;
    /*
     * Two tries; the resolver waits retrans, then twice that: a little over
     * timeout_s in all, so a caller's own timer at timeout_s fires first.
     */
    rs.retry = 2;
    rs.retrans = timeout_s / 3 + 1;
    qlen = res_nmkquery(&rs, ns_o_query, qname, ns_c_in, qtype, NULL, 0, NULL, query, sizeof(query));
    if (qlen < DNS_HDR_LEN) {
        res_nclose(&rs);
        return DNS_MALFORMED;
    }
    alen = res_nsend(&rs, query, qlen, answer, sizeof(answer));
    res_nclose(&rs);
    if (alen < 0)
        return DNS_TEMP;
    if ((size_t) alen > sizeof(answer))
        return DNS_TEMP; /* did not fit: we can't see all of it */
    st = dns_parse_answer(answer, (size_t) alen, get16(query), qname, qtype, out);
    return st;
}
