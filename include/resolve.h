/*
 * resolve - which delivery agent (transport) and next hop an address goes to.
 *
 * Postfix's address classes, by the recipient's domain:
 *   local    mydestination, or an address literal of one of our interfaces
 *            (inet_interfaces) -> local_transport ("local:$myhostname")
 *   virtual  virtual_mailbox_domains -> virtual_transport
 *   relay    relay_domains (subdomains too) -> relay_transport
 *   default  everything else -> default_transport, next hop relayhost when
 *            set, else the domain (an address literal "[192.0.2.1]" as is)
 * transport_maps override the class's transport and/or next hop; keys
 * tried in order: the full address, the domain, each parent ".domain",
 * then "*". A result is "transport:nexthop"; either side may be empty to
 * keep the class default. Domain lists take names and "type:name" tables.
 */
#ifndef KITE_RESOLVE_H
#define KITE_RESOLVE_H

#include "vbuf.h"

enum resolve_class { RESOLVE_LOCAL, RESOLVE_VIRTUAL, RESOLVE_RELAY, RESOLVE_DEFAULT };

typedef struct resolve_reply {
    enum resolve_class class;
    vbuf transport;                     /* master.cf service name */
    vbuf nexthop;
    vbuf domain;                        /* lowercased, "" when none */
} resolve_reply;

/* resolve_init - (re)read the parameters and open the tables */
void resolve_init(void);
void resolve_reply_init(resolve_reply *r);
void resolve_reply_free(resolve_reply *r);
/* resolve_addr - classify addr; 0, or -1 when a table failed (defer, never guess) */
int resolve_addr(const char *addr, resolve_reply *r);
const char *resolve_class_name(enum resolve_class c);
/* resolve_split_transport - "transport:nexthop" into its halves (either may be empty) */
void resolve_split_transport(const char *value, vbuf *transport, vbuf *nexthop);
/* resolve_is_local_literal - "[addr]" naming one of our interface addresses */
int resolve_is_local_literal(const char *domain);

#endif
