/*
 * lookup.h - smtpd's client naming without blocking the event loop.
 *
 * smtpd_peer_lookup() learns a new connection's printable address at once,
 * then its forward-confirmed reverse name in a worker thread (through the
 * system resolver, nss and /etc/hosts included, or through
 * smtpd_dns_resolver_address when set), bounded by
 * smtpd_peername_lookup_timeout. Other sessions run meanwhile. When the
 * name is known (or the lookup failed, timed out, or the client hung up)
 * the service function is called with smtpd_peer_current() describing the
 * client; nothing about the client is touched after that.
 */
#ifndef KITE_SMTPD_LOOKUP_H
#define KITE_SMTPD_LOOKUP_H

#include <netdb.h>

#include "mail_server.h"

/* How naming went (Postfix's peer name codes; restrictions may distinguish them). */
enum smtpd_peer_status {
    SMTPD_PEER_OK,    /* forward-confirmed reverse name */
    SMTPD_PEER_TEMP,  /* temporary failure or timeout: "unknown" */
    SMTPD_PEER_PERM,  /* no (valid) reverse name: "unknown" */
    SMTPD_PEER_FORGED /* the reverse name does not lead back to the address: "unknown" */
};

typedef struct smtpd_peer {
    int fd;
    int standalone;        /* not an Internet peer (sendmail -bs) */
    int status;            /* enum smtpd_peer_status: the forward-confirmed name */
    int reverse_status;    /* the same for the address->name mapping alone (never FORGED) */
    char name[NI_MAXHOST]; /* the name, or "unknown" */
    char addr[NI_MAXHOST]; /* printable address (IPv4-mapped shown as IPv4) */
    char port[NI_MAXSERV];
} smtpd_peer;

/* smtpd_lookup_init - load resolver configuration while still outside the chroot */
void smtpd_lookup_init(void);

/* smtpd_peer_lookup - name the client on fd, then call fn(fd, service, argv) */
void smtpd_peer_lookup(int fd, const char *service, char **argv, multi_service_fn fn);

/* smtpd_peer_current - the client fn was called for; valid only during that call */
const smtpd_peer *smtpd_peer_current(int fd);

/* smtpd_peer_pending - connections still waiting for their name (for tests and diagnostics) */
int smtpd_peer_pending(void);
/* smtpd_lookup_jobs - lookups not yet freed, abandoned ones a worker still runs included */
int smtpd_lookup_jobs(void);

/*
 * smtpd_peer_resolve - the blocking lookup a worker runs: reverse name of
 * sa, then forward confirmation; fills name (or "unknown"), *why and *err
 * for the main thread's warnings. Thread-safe; no logging, no mymalloc.
 */
enum smtpd_peer_why { PEER_WHY_NONE, PEER_WHY_NUMERIC, PEER_WHY_NORESOLVE, PEER_WHY_NOTLISTED };
int smtpd_peer_resolve(const struct sockaddr *sa, socklen_t sl, const char *addr, const struct sockaddr_in *server,
                       int timeout_s, char *name, size_t nlen, int *why, int *err);

#endif
