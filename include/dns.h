/*
 * dns - a small, thread-safe DNS client for address-to-name work: reverse
 * (PTR) names of addresses, strict parsing of DNS answers, host name syntax,
 * and one blocking query through a given server with res_nmkquery/res_nsend.
 *
 * Nothing here allocates through mymalloc or logs: the functions may run in
 * worker threads. Answers are untrusted network input; dns_parse_answer()
 * checks every length, follows compression pointers only backwards, refuses
 * names longer than RFC 1035 §2.3.4 allows and names with bytes that cannot
 * be printed, and accepts only an answer to the question it was given.
 */
#ifndef KITE_DNS_H
#define KITE_DNS_H

#include <netinet/in.h>
#include <stddef.h>

#define DNS_NAME_SIZE 256  /* a presentation name without escapes, with its NUL */
#define DNS_MAX_RECORDS 16 /* records kept per answer; more are ignored */
#define DNS_MAX_CNAME 8    /* CNAME hops followed inside one answer */

#define DNS_TYPE_A 1
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_PTR 12
#define DNS_TYPE_AAAA 28

/* What a query or a parse found. */
enum dns_status {
    DNS_OK,       /* one or more records of the asked type */
    DNS_NXDOMAIN, /* the name does not exist (RCODE 3) */
    DNS_NODATA,   /* the name exists without records of that type */
    DNS_TEMP,     /* server failure, refusal, truncation or timeout: try later */
    DNS_MALFORMED /* not a well-formed answer to our question */
};

typedef struct dns_answer {
    int count; /* records of the asked type, up to DNS_MAX_RECORDS */
    /* PTR and CNAME: names without the trailing dot ("" for the root). */
    char names[DNS_MAX_RECORDS][DNS_NAME_SIZE];
    /* A and AAAA: the address in network order (4 or 16 octets). */
    unsigned char addrs[DNS_MAX_RECORDS][16];
} dns_answer;

/* dns_reverse_name - "4.3.2.1.in-addr.arpa" / nibbles "….ip6.arpa" for a printable address; 0 or -1 */
int dns_reverse_name(const char *addr, char *out, size_t outlen);

/*
 * dns_parse_answer - parse msg as the answer to query id about (qname,
 * qtype, class IN). Follows CNAMEs inside the answer (RFC 2317 classless
 * reverse delegation uses them). Returns enum dns_status; out holds the
 * records when DNS_OK.
 */
int dns_parse_answer(const unsigned char *msg, size_t len, unsigned id, const char *qname, int qtype, dns_answer *out);

/*
 * dns_name_unpack - the (possibly compressed) name at off, dotted; its end
 * in *next. 0; -2 when well-formed but a label holds a dot, a backslash,
 * white space, a control or a non-ASCII octet (out is then unusable); -1
 * when malformed (truncated, forward pointer, oversized, too small out).
 */
int dns_name_unpack(const unsigned char *msg, size_t len, size_t off, char *out, size_t outlen, size_t *next);

/* dns_valid_hostname - RFC 1123 host name syntax (underscore tolerated), not an address */
int dns_valid_hostname(const char *name);

/* dns_server_parse - "ipv4addr" or "ipv4addr:port" into sin; 0 or -1 */
int dns_server_parse(const char *spec, struct sockaddr_in *sin);

/*
 * dns_query - ask server (one IPv4 address) about (qname, qtype, IN),
 * waiting a little longer than timeout_s seconds in all. Blocking; safe to call
 * from several threads at once. Returns enum dns_status.
 */
int dns_query(const struct sockaddr_in *server, int timeout_s, const char *qname, int qtype, dns_answer *out);

#endif
