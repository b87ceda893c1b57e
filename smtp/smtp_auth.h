/*
 * smtp_auth.h - the SMTP AUTH client (RFC 4954) towards relays.
 */
#ifndef KITE_SMTP_AUTH_H
#define KITE_SMTP_AUTH_H

#include "smtp.h"

void smtp_auth_init(void);
/* smtp_auth - authenticate if a password is known for this server; 0 or -1 (why) */
int smtp_auth(smtp_session *ss, const char *nexthop, vbuf *why);

#endif
