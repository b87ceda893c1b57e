/*
 * smtp_tls.h - STARTTLS for the SMTP client (RFC 3207), by policy.
 *
 * Levels as Postfix's smtp_tls_security_level: none, may (opportunistic),
 * encrypt (mandatory, no authentication), verify (mandatory, the
 * certificate must chain to a trusted CA and match the next-hop name) and
 * secure (as verify; names from the next-hop domain only). The level for a
 * destination comes from smtp_tls_policy_maps when it has an entry.
 */
#ifndef KITE_SMTP_TLS_H
#define KITE_SMTP_TLS_H

#include "smtp.h"

#include "tls.h"

/* The levels are tls.h's. */
#define SMTP_TLS_NONE    TLS_LEV_NONE
#define SMTP_TLS_MAY     TLS_LEV_MAY
#define SMTP_TLS_ENCRYPT TLS_LEV_ENCRYPT
#define SMTP_TLS_VERIFY  TLS_LEV_VERIFY
#define SMTP_TLS_SECURE  TLS_LEV_SECURE

void smtp_tls_init(void);
int smtp_tls_level_for(const char *nexthop);
/* smtp_starttls - STARTTLS + handshake + checks; 0, -1 (why), -2 (may: retry plain) */
int smtp_starttls(smtp_session *ss, const char *nexthop, int level, vbuf *why);
void smtp_tls_session_free(smtp_session *ss);

#endif
