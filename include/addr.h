/*
 * addr - RFC 5321/5322 mail addresses.
 *
 * Internal form: the local part unquoted ("john doe"@example.com is held as
 * `john doe@example.com`), the domain as given (lowercased by callers that
 * compare), the null sender as "". External form: quoted where RFC 5321
 * requires it. Source routes (@a,@b:user@dom) are accepted and stripped.
 */
#ifndef KITE_ADDR_H
#define KITE_ADDR_H

#include <stddef.h>

#include "vbuf.h"

#define ADDR_ALLOW_EMPTY (1 << 0)       /* "<>" is fine (MAIL FROM) */
#define ADDR_ALLOW_UTF8  (1 << 1)       /* SMTPUTF8 session */
#define ADDR_NO_BRACKETS (1 << 2)       /* accept a bare address (lenient) */

/*
 * addr_parse_path - parse "<path>" at the start of text (the argument of
 * MAIL FROM: / RCPT TO:). Stores the internal form in out and the number
 * of bytes consumed in *used (parameters follow). Returns 0, or -1 with a
 * short reason in *why (static text). Leading spaces are skipped; a path
 * without a domain (<Postmaster>) is accepted, addr_domain() then gives
 * NULL. 8-bit bytes need ADDR_ALLOW_UTF8 and must be well-formed UTF-8.
 */
int addr_parse_path(const char *text, int flags, vbuf *out, size_t *used, const char **why);

/* addr_quote - internal -> external form (quotes the local part if needed),
 * appended to out; "" appends nothing (the caller writes "<>") */
void addr_quote(vbuf *out, const char *internal);

/* addr_domain - the part after the last '@', or NULL */
const char *addr_domain(const char *addr);

/* addr_has_8bit - non-ASCII bytes present (needs SMTPUTF8) */
int addr_has_8bit(const char *addr);

/* addr_valid_utf8_text - well-formed UTF-8 (RFC 3629; ASCII is fine) */
int addr_valid_utf8_text(const char *text);

/* addr_valid_domain - RFC 5321 domain or address literal syntax */
int addr_valid_domain(const char *domain, int allow_utf8);

/*
 * addr_parse_list - RFC 5322 address list (To:, Cc:, Bcc: header values,
 * with comments, display names, groups and quoted strings). Calls fn for
 * each address in internal form. Returns the count, or -1 on bad syntax
 * (then fn has not been called at all). Groups contribute their members
 * ("undisclosed-recipients:;" none); "<>" is skipped; an address without
 * a domain ("root") is passed on as it is.
 */
int addr_parse_list(const char *text, void (*fn)(const char *addr, void *ctx), void *ctx);

#endif
