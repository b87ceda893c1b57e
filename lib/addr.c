/*
 * addr - RFC 5321 envelope paths and RFC 5322 header address lists
 * (see addr.h).
 *
 * Offers path parsing for MAIL FROM / RCPT TO (strict RFC 5321 §4.1.2
 * grammar, RFC 6531 §3.3 UTF-8 extensions when allowed, the length limits
 * of §4.5.3.1), quoting back to the external form, domain and address
 * literal checks, and address-list parsing for To:/Cc:/Bcc: style headers.
 *
 * Trusts nothing in its input: every byte is checked against the grammar,
 * UTF-8 is validated (no overlong forms, surrogates or code points past
 * U+10FFFF), lengths are bounded, and comment nesting is limited.
 */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "mymalloc.h"

/* RFC 5321 §4.5.3.1 size limits, in octets */
#define ADDR_LOCAL_MAX 64
#define ADDR_DOMAIN_MAX 255
#define ADDR_PATH_MAX 256
#define ADDR_LABEL_MAX 63

/* Header address lists: bounds that no real header comes near */
#define ADDR_LIST_ADDR_MAX 2048
#define ADDR_LIST_COMMENT_DEPTH 32
#define ADDR_LIST_MAX_ADDRS 10000

/* addr_is_atext - RFC 5322 §3.2.3 atext (ASCII part) */
static int addr_is_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* addr_is_letdig - RFC 5321 §4.1.2 Let-dig */
static int addr_is_letdig(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/*
 * addr_utf8_len - length of the well-formed UTF-8 sequence (RFC 3629 §4)
 * starting at p with at most avail bytes, for a non-ASCII lead byte; 0 if
 * the sequence is malformed.
 */
static size_t addr_utf8_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;

    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; /* no overlong forms */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* nothing past U+10FFFF */
    } else {
        return 0;
    }
    if (avail < need)
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return need;
}

/* addr_valid_utf8 - is the string well-formed UTF-8? */
static int addr_valid_utf8(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *) s;
    size_t i = 0;

    while (i < len) {
        if (p[i] < 0x80) {
            i++;
        } else {
            size_t n = addr_utf8_len(p + i, len - i);

            if (n == 0)
                return 0;
            i += n;
        }
    }
    return 1;
}

/*
 * addr_scan_domain - length of the RFC 5321 Domain at text (sub-domains
 * separated by dots), or 0 if there is none. With allow_utf8, labels may
 * hold UTF-8 (U-labels, RFC 6531 §3.3); hyphen rules apply to ASCII only.
 */
static size_t addr_scan_domain(const char *text, int allow_utf8)
{
    const unsigned char *p = (const unsigned char *) text;
    size_t i = 0;

    for (;;) {
        size_t start = i;
        int last_hyphen = 0;

        while (p[i]) {
            if (addr_is_letdig(p[i])) {
                last_hyphen = 0;
                i++;
            } else if (p[i] == '-' && i > start) {
                last_hyphen = 1;
                i++;
            } else if (p[i] >= 0x80 && allow_utf8) {
                size_t n = addr_utf8_len(p + i, strlen(text + i));

                if (n == 0)
                    return 0;
                last_hyphen = 0;
                i += n;
            } else {
                break;
            }
        }
        if (i == start || last_hyphen || i - start > ADDR_LABEL_MAX)
            return 0;
        if (p[i] != '.')
            return i;
        i++;
    }
}

/* addr_scan_ipv4 - length of a dotted-quad IPv4 address (RFC 5321 §4.1.3) at text, or 0 */
static size_t addr_scan_ipv4(const char *text)
{
    size_t i = 0;

    for (int part = 0; part < 4; part++) {
        unsigned value = 0;
        size_t digits = 0;

        if (part > 0) {
            if (text[i] != '.')
                return 0;
            i++;
        }
        while (text[i] >= '0' && text[i] <= '9' && digits < 4) {
            value = value * 10 + (unsigned) (text[i] - '0');
            digits++;
            i++;
        }
        if (digits == 0 || digits > 3 || value > 255)
            return 0;
    }
    return i;
}

/*
 * addr_scan_literal - length of an address literal "[...]" at text
 * (RFC 5321 §4.1.3: IPv4 or "IPv6:" address), or 0. General address
 * literals are refused: no tag is registered for them.
 */
static size_t addr_scan_literal(const char *text)
{
    const char *close;
    size_t inner;

    if (text[0] != '[' || (close = strchr(text, ']')) == NULL)
        return 0;
    inner = (size_t) (close - text - 1);
    if (inner > 5 && strncasecmp(text + 1, "IPv6:", 5) == 0) { /* ABNF strings ignore case */
        char v6[INET6_ADDRSTRLEN + 1];
        unsigned char bin[16];

        if (inner - 5 > INET6_ADDRSTRLEN || inner - 5 < 2)
            return 0;
        memcpy(v6, text + 6, inner - 5);
        v6[inner - 5] = 0;
        if (strspn(v6, "0123456789abcdefABCDEF:.") != inner - 5 || inet_pton(AF_INET6, v6, bin) != 1)
            return 0;
        return inner + 2;
    }
    if (addr_scan_ipv4(text + 1) != inner)
        return 0;
    return inner + 2;
}

/* addr_valid_domain - RFC 5321 domain or address literal syntax */
int addr_valid_domain(const char *domain, int allow_utf8)
{
    size_t len = strlen(domain);

    if (len == 0 || len > ADDR_DOMAIN_MAX)
        return 0;
    if (domain[0] == '[')
        return addr_scan_literal(domain) == len;
    return addr_scan_domain(domain, allow_utf8) == len;
}

/*
 * addr_scan_local - scan an RFC 5321 Local-part (Dot-string or
 * Quoted-string) at text, appending its unquoted form to out. Returns the
 * number of bytes scanned, or 0 on bad syntax.
 */
static size_t addr_scan_local(const char *text, int flags, vbuf *out, const char **why)
{
    const unsigned char *p = (const unsigned char *) text;
    int utf8 = (flags & ADDR_ALLOW_UTF8) != 0;
    size_t i = 0;

    if (p[0] == '"') {
        /* RFC 5321 §4.1.2: qtextSMTP / quoted-pairSMTP, RFC 6531 adds UTF-8 */
        for (i = 1; p[i] != '"'; i++) {
            if (p[i] == 0) {
                *why = "unterminated quoted string";
                return 0;
            }
            if (p[i] == '\\') {
                if (p[i + 1] < 32 || p[i + 1] > 126) {
                    *why = "bad escape in quoted string";
                    return 0;
                }
                i++;
                if (vbuf_putc(out, p[i]) < 0)
                    goto toolong;
            } else if (p[i] >= 32 && p[i] <= 126) {
                if (vbuf_putc(out, p[i]) < 0)
                    goto toolong;
            } else if (p[i] >= 0x80 && utf8) {
                size_t n = addr_utf8_len(p + i, strlen(text + i));

                if (n == 0) {
                    *why = "malformed UTF-8 in address";
                    return 0;
                }
                if (vbuf_append(out, p + i, n) < 0)
                    goto toolong;
                i += n - 1;
            } else {
                *why = p[i] >= 0x80 ? "8-bit character in address without SMTPUTF8" : "bad character in address";
                return 0;
            }
        }
        return i + 1;
    }
    /* Dot-string = Atom *("." Atom) */
    for (;;) {
        size_t start = i;

        while (p[i]) {
            if (addr_is_atext(p[i])) {
                if (vbuf_putc(out, p[i]) < 0)
                    goto toolong;
                i++;
            } else if (p[i] >= 0x80) {
                size_t n;

                if (!utf8) {
                    *why = "8-bit character in address without SMTPUTF8";
                    return 0;
                }
                if ((n = addr_utf8_len(p + i, strlen(text + i))) == 0) {
                    *why = "malformed UTF-8 in address";
                    return 0;
                }
                if (vbuf_append(out, p + i, n) < 0)
                    goto toolong;
                i += n;
            } else {
                break;
            }
        }
        if (i == start) {
            *why = "bad address syntax";
            return 0;
        }
        if (p[i] != '.')
            return i;
        if (vbuf_putc(out, '.') < 0)
            goto toolong;
        i++;
    }
toolong:
    *why = "local part too long";
    return 0;
}

/* addr_scan_route - length of an A-d-l source route "@a,@b:" at text, or 0 (RFC 5321 §4.1.2) */
static size_t addr_scan_route(const char *text, int allow_utf8)
{
    size_t i = 0;

    for (;;) {
        size_t n;

        if (text[i] != '@')
            return 0;
        i++;
        n = text[i] == '[' ? addr_scan_literal(text + i) : addr_scan_domain(text + i, allow_utf8);
        if (n == 0)
            return 0;
        i += n;
        if (text[i] == ':')
            return i + 1;
        if (text[i] != ',')
            return 0;
        i++;
    }
}

/*
 * addr_scan_mailbox - RFC 5321 Mailbox at text (the domain may be left
 * out, as in RCPT TO:<Postmaster>). Appends the internal form to out;
 * returns the bytes scanned, or 0.
 */
static size_t addr_scan_mailbox(const char *text, int flags, vbuf *out, const char **why)
{
    size_t local, dom;
    size_t start = out->len;

    if ((local = addr_scan_local(text, flags, out, why)) == 0)
        return 0;
    if (local > ADDR_LOCAL_MAX) {
        *why = "local part too long";
        return 0;
    }
    if (text[local] != '@') {
        /* No domain (<Postmaster>): an '@' inside would make the internal form ambiguous. */
        if (memchr(out->data + start, '@', out->len - start) != NULL) {
            *why = "bad address syntax";
            return 0;
        }
        return local;
    }
    if (text[local + 1] == '[')
        dom = addr_scan_literal(text + local + 1);
    else
        dom = addr_scan_domain(text + local + 1, (flags & ADDR_ALLOW_UTF8) != 0);
    if (dom == 0) {
        *why = (unsigned char) text[local + 1] >= 0x80 && !(flags & ADDR_ALLOW_UTF8)
                   ? "8-bit character in address without SMTPUTF8"
                   : "bad domain syntax";
        return 0;
    }
    if (dom > ADDR_DOMAIN_MAX) {
        *why = "domain too long";
        return 0;
    }
    if (vbuf_putc(out, '@') < 0 || vbuf_append(out, text + local + 1, dom) < 0) {
        vbuf_truncate(out, start);
        *why = "address too long";
        return 0;
    }
    return local + 1 + dom;
}

/* addr_parse_path - parse "<path>" at the start of text (RFC 5321 §4.1.2 Reverse-path / Forward-path) */
int addr_parse_path(const char *text, int flags, vbuf *out, size_t *used, const char **why)
{
    size_t i = 0, start, n;
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    vbuf_reset(out);
    while (text[i] == ' ') /* tolerated: "MAIL FROM: <a@b>" */
        i++;
    start = i;
    if (text[i] != '<') {
        if (!(flags & ADDR_NO_BRACKETS)) {
            *why = "missing '<' before address";
            return -1;
        }
        if ((n = addr_scan_mailbox(text + i, flags, out, why)) == 0)
            goto bad;
        i += n;
        if (text[i] != 0 && text[i] != ' ') {
            *why = "bad address syntax";
            goto bad;
        }
        if (i - start > ADDR_PATH_MAX - 2) {
            *why = "address too long";
            goto bad;
        }
        if (used)
            *used = i;
        return 0;
    }
    i++;
    if (text[i] == '>') {
        if (!(flags & ADDR_ALLOW_EMPTY)) {
            *why = "empty address not allowed here";
            return -1;
        }
        if (used)
            *used = i + 1;
        return 0;
    }
    if (text[i] == '@') { /* RFC 5321 §4.1.2: source route, ignored (§C) */
        if ((n = addr_scan_route(text + i, (flags & ADDR_ALLOW_UTF8) != 0)) == 0) {
            *why = "bad source route syntax";
            goto bad;
        }
        i += n;
    }
    if ((n = addr_scan_mailbox(text + i, flags, out, why)) == 0)
        goto bad;
    i += n;
    if (text[i] != '>') {
        if (text[i] == 0)
            *why = "missing '>' after address";
        else if ((unsigned char) text[i] >= 0x80 && !(flags & ADDR_ALLOW_UTF8))
            *why = "8-bit character in address without SMTPUTF8";
        else
            *why = "bad address syntax";
        goto bad;
    }
    i++;
    if (i - start > ADDR_PATH_MAX) {
        *why = "address too long";
        goto bad;
    }
    if (used)
        *used = i;
    return 0;
bad:
    vbuf_reset(out);
    return -1;
}

/* addr_local_is_dot_string - can this unquoted local part go out without quotes? */
static int addr_local_is_dot_string(const char *local, size_t len)
{
    int prev_dot = 1;

    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) local[i];

        if (c == '.') {
            if (prev_dot)
                return 0;
            prev_dot = 1;
        } else if (addr_is_atext(c) || c >= 0x80) {
            prev_dot = 0;
        } else {
            return 0;
        }
    }
    return !prev_dot;
}

/* addr_quote - append the external form (RFC 5321 §4.1.2: the local part quoted if needed) */
void addr_quote(vbuf *out, const char *internal)
{
    const char *at = strrchr(internal, '@');
    size_t llen = at ? (size_t) (at - internal) : strlen(internal);
    size_t start = out->len;
    int bad = 0;

    if (*internal == 0)
        return; /* the null sender stays empty */
    if (addr_local_is_dot_string(internal, llen)) {
        bad |= vbuf_append(out, internal, llen);
    } else {
        bad |= vbuf_putc(out, '"');
        for (size_t i = 0; i < llen; i++) {
            if (internal[i] == '"' || internal[i] == '\\')
                bad |= vbuf_putc(out, '\\');
            bad |= vbuf_putc(out, internal[i]);
        }
        bad |= vbuf_putc(out, '"');
    }
    if (at)
        bad |= vbuf_puts(out, at);
    if (bad)
        vbuf_truncate(out, start); /* all or nothing */
}

/* addr_domain - the part after the last '@', or NULL */
const char *addr_domain(const char *addr)
{
    const char *at = strrchr(addr, '@');

    return at ? at + 1 : NULL;
}

/* addr_has_8bit - non-ASCII bytes present (needs SMTPUTF8) */
int addr_has_8bit(const char *addr)
{
    for (const unsigned char *p = (const unsigned char *) addr; *p; p++)
        if (*p >= 0x80)
            return 1;
    return 0;
}

/* addr_valid_utf8_text - is text well-formed UTF-8 (ASCII included)? */
int addr_valid_utf8_text(const char *text)
{
    return addr_valid_utf8(text, strlen(text));
}

/*
 * RFC 5322 address lists. A tokenizer turns the header value into words
 * (atoms, quoted strings, domain literals) and specials, dropping comments
 * and folding white space; a small parser then walks the tokens.
 */
enum addr_tok_type { TOK_ATOM, TOK_QSTRING, TOK_LITERAL, TOK_SPECIAL, TOK_END };

typedef struct addr_tok {
    enum addr_tok_type type;
    int special; /* TOK_SPECIAL: the character */
    vbuf text;   /* words: unquoted content */
} addr_tok;

typedef struct addr_lexer {
    const unsigned char *p;
} addr_lexer;

/* addr_skip_cfws - skip white space and (nested) comments; -1 on a bad comment */
static int addr_skip_cfws(addr_lexer *lx)
{
    for (;;) {
        while (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\r' || *lx->p == '\n')
            lx->p++;
        if (*lx->p != '(')
            return 0;
        {
            int depth = 0;

            do {
                if (*lx->p == 0)
                    return -1; /* unterminated comment */
                if (*lx->p == '\\' && lx->p[1])
                    lx->p++;
                else if (*lx->p == '(' && ++depth > ADDR_LIST_COMMENT_DEPTH)
                    return -1;
                else if (*lx->p == ')')
                    depth--;
                lx->p++;
            } while (depth > 0);
        }
    }
}

/* addr_next_token - read one token; -1 on bad syntax */
static int addr_next_token(addr_lexer *lx, addr_tok *tok)
{
    vbuf_reset(&tok->text);
    if (addr_skip_cfws(lx) < 0)
        return -1;
    if (*lx->p == 0) {
        tok->type = TOK_END;
        return 0;
    }
    if (*lx->p == '"') { /* RFC 5322 §3.2.4 quoted-string */
        lx->p++;
        for (; *lx->p != '"'; lx->p++) {
            unsigned char c = *lx->p;

            if (c == 0)
                return -1;
            if (c == '\\') {
                c = *++lx->p;
                if (c == 0 || c == '\r' || c == '\n')
                    return -1;
            } else if (c == '\r' || c == '\n') {
                continue; /* folding: the CRLF goes, the WSP stays */
            }
            if ((c < 32 && c != '\t') || c == 127)
                return -1;
            if (c >= 0x80) { /* RFC 6532 §3.2: UTF-8 only */
                size_t n = addr_utf8_len(lx->p, strlen((const char *) lx->p));

                if (n == 0 || vbuf_append(&tok->text, lx->p, n) < 0)
                    return -1;
                lx->p += n - 1;
                continue;
            }
            if (vbuf_putc(&tok->text, c) < 0)
                return -1;
        }
        lx->p++;
        tok->type = TOK_QSTRING;
        return 0;
    }
    if (*lx->p == '[') { /* domain-literal; inner white space dropped */
        if (vbuf_putc(&tok->text, '[') < 0)
            return -1;
        for (lx->p++; *lx->p != ']'; lx->p++) {
            unsigned char c = *lx->p;

            if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
                continue;
            if (c == 0 || c == '[' || c == '\\' || c < 32 || c >= 127)
                return -1;
            if (vbuf_putc(&tok->text, c) < 0)
                return -1;
        }
        lx->p++;
        if (vbuf_putc(&tok->text, ']') < 0)
            return -1;
        tok->type = TOK_LITERAL;
        return 0;
    }
    if (addr_is_atext(*lx->p) || *lx->p >= 0x80) {
        while (addr_is_atext(*lx->p) || *lx->p >= 0x80) {
            if (*lx->p >= 0x80) { /* RFC 6532 §3.2: UTF-8 in headers */
                size_t n = addr_utf8_len(lx->p, strlen((const char *) lx->p));

                if (n == 0 || vbuf_append(&tok->text, lx->p, n) < 0)
                    return -1;
                lx->p += n;
            } else {
                if (vbuf_putc(&tok->text, *lx->p) < 0)
                    return -1;
                lx->p++;
            }
        }
        tok->type = TOK_ATOM;
        return 0;
    }
    if (strchr("<>:;@,.", *lx->p) != NULL) {
        tok->type = TOK_SPECIAL;
        tok->special = *lx->p++;
        return 0;
    }
    return -1; /* ')' , ']' , '\\' or a control character */
}

/* The token stream, read fully up front. */
typedef struct addr_toks {
    addr_tok *v;
    size_t count, cap, pos;
} addr_toks;

static void addr_toks_free(addr_toks *t)
{
    for (size_t i = 0; i < t->count; i++)
        vbuf_release(&t->v[i].text);
    xfree(t->v);
}

/* addr_tokenize - the whole header value into tokens; -1 on bad syntax */
static int addr_tokenize(const char *text, addr_toks *t)
{
    addr_lexer lx = {(const unsigned char *) text};

    memset(t, 0, sizeof(*t));
    for (;;) {
        addr_tok *tok;

        if (t->count == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 32;
            t->v = xreallocarray(t->v, t->cap, sizeof(*t->v));
        }
        tok = &t->v[t->count];
        vbuf_init(&tok->text, ADDR_LIST_ADDR_MAX);
        t->count++;
        if (addr_next_token(&lx, tok) < 0)
            return -1;
        if (tok->type == TOK_END)
            return 0;
    }
}

static int tok_is(const addr_toks *t, size_t i, int special)
{
    return t->v[i].type == TOK_SPECIAL && t->v[i].special == special;
}

static int tok_is_word(const addr_toks *t, size_t i)
{
    return t->v[i].type == TOK_ATOM || t->v[i].type == TOK_QSTRING;
}

/*
 * addr_list_addr_spec - RFC 5322 §3.4.1 addr-spec (obs-local-part allowed:
 * words of either kind between dots) from tokens [i, end); the internal
 * form goes to out. The domain may be missing (an unqualified "root").
 */
static int addr_list_addr_spec(const addr_toks *t, size_t i, size_t end, vbuf *out)
{
    vbuf_reset(out);
    for (;;) {
        if (i >= end || !tok_is_word(t, i))
            return -1;
        if (vbuf_append(out, t->v[i].text.data, t->v[i].text.len) < 0)
            return -1;
        i++;
        if (i < end && tok_is(t, i, '.')) {
            if (vbuf_putc(out, '.') < 0)
                return -1;
            i++;
            continue;
        }
        break;
    }
    if (i == end)
        return 0;
    if (!tok_is(t, i, '@'))
        return -1;
    if (vbuf_putc(out, '@') < 0)
        return -1;
    i++;
    if (i < end && t->v[i].type == TOK_LITERAL) {
        if (vbuf_append(out, t->v[i].text.data, t->v[i].text.len) < 0)
            return -1;
        i++;
    } else {
        for (;;) {
            if (i >= end || t->v[i].type != TOK_ATOM)
                return -1;
            if (vbuf_append(out, t->v[i].text.data, t->v[i].text.len) < 0)
                return -1;
            i++;
            if (i < end && tok_is(t, i, '.')) {
                if (vbuf_putc(out, '.') < 0)
                    return -1;
                i++;
                continue;
            }
            break;
        }
    }
    return i == end ? 0 : -1;
}

/* Results collected before any callback runs, so a bad list calls nothing. */
typedef struct addr_results {
    char **v;
    size_t count, cap;
} addr_results;

static int addr_results_add(addr_results *r, const vbuf *addr)
{
    if (r->count >= ADDR_LIST_MAX_ADDRS)
        return -1;
    if (r->count == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->v = xreallocarray(r->v, r->cap, sizeof(*r->v));
    }
    r->v[r->count++] = xstrdup(addr->data);
    return 0;
}

/*
 * addr_list_mailbox - one mailbox (RFC 5322 §3.4) starting at t->pos and
 * ending before ',' ';' or the end (';' only inside a group). Adds its
 * address to r; an empty "<>" adds nothing. Returns 0 or -1.
 */
static int addr_list_mailbox(addr_toks *t, int in_group, addr_results *r, vbuf *scratch)
{
    size_t i = t->pos, lt = 0, have_lt = 0, end;

    /* Find the end of this element and any '<'. */
    for (end = i; t->v[end].type != TOK_END; end++) {
        if (tok_is(t, end, ',') || (in_group && tok_is(t, end, ';')))
            break;
        if (tok_is(t, end, '<') && !have_lt) {
            have_lt = 1;
            lt = end;
        }
        if (tok_is(t, end, ':') && !have_lt)
            return -1; /* a group inside a group */
    }
    t->pos = end;
    if (have_lt) {
        size_t gt, a = lt + 1;

        for (gt = a; gt < end && !tok_is(t, gt, '>'); gt++)
            ;
        if (gt == end || gt + 1 != end)
            return -1; /* no '>' or text after it */
        /* display-name: words and, as in obs-phrase, dots; an unquoted '@'
         * ("john@example.com <john@example.com>") is common and harmless */
        for (size_t k = i; k < lt; k++)
            if (!tok_is_word(t, k) && !tok_is(t, k, '.') && !tok_is(t, k, '@'))
                return -1;
        if (a < gt && tok_is(t, a, '@')) { /* obs-route: "@a,@b:" is dropped */
            while (a < gt && !tok_is(t, a, ':'))
                a++;
            if (a == gt)
                return -1;
            a++;
        }
        if (a == gt)
            return 0; /* "<>" tolerated, nothing to add */
        if (addr_list_addr_spec(t, a, gt, scratch) < 0)
            return -1;
    } else {
        if (i == end)
            return 1; /* empty element */
        if (addr_list_addr_spec(t, i, end, scratch) < 0)
            return -1;
    }
    return addr_results_add(r, scratch);
}

/* addr_list_parse_all - RFC 5322 §3.4 address-list (with obs-addr-list empty elements) */
static int addr_list_parse_all(addr_toks *t, addr_results *r)
{
    vbuf scratch;
    int ret = 0;

    vbuf_init(&scratch, ADDR_LIST_ADDR_MAX);
    for (;;) {
        size_t colon, k;
        int group = 0;

        if (t->v[t->pos].type == TOK_END)
            break;
        /* A group is "display-name ':' ... ';'": a ':' before any '<' ',' ';'. */
        for (k = t->pos; t->v[k].type != TOK_END; k++) {
            if (tok_is(t, k, ':')) {
                group = 1;
                break;
            }
            if (tok_is(t, k, '<') || tok_is(t, k, ',') || tok_is(t, k, ';'))
                break;
        }
        if (group) {
            colon = k;
            if (colon == t->pos) {
                ret = -1; /* a group needs a name */
                break;
            }
            for (k = t->pos; k < colon; k++)
                if (!tok_is_word(t, k) && !tok_is(t, k, '.'))
                    ret = -1;
            if (ret < 0)
                break;
            t->pos = colon + 1;
            for (;;) {
                if (tok_is(t, t->pos, ';'))
                    break;
                if (t->v[t->pos].type == TOK_END || addr_list_mailbox(t, 1, r, &scratch) < 0) {
                    ret = -1;
                    break;
                }
                if (tok_is(t, t->pos, ','))
                    t->pos++;
            }
            if (ret < 0)
                break;
            t->pos++; /* the ';' */
        } else if (addr_list_mailbox(t, 0, r, &scratch) < 0) {
            ret = -1;
            break;
        }
        if (tok_is(t, t->pos, ','))
            t->pos++;
        else if (t->v[t->pos].type != TOK_END) {
            ret = -1;
            break;
        }
    }
    vbuf_release(&scratch);
    return ret;
}

/* addr_parse_list - RFC 5322 §3.4 address list; calls fn per address; count or -1 */
int addr_parse_list(const char *text, void (*fn)(const char *addr, void *ctx), void *ctx)
{
    addr_toks toks;
    addr_results res = {NULL, 0, 0};
    int ret;

    ret = addr_tokenize(text, &toks);
    if (ret == 0)
        ret = addr_list_parse_all(&toks, &res);
    if (ret == 0) {
        for (size_t i = 0; i < res.count; i++)
            if (fn)
                fn(res.v[i], ctx);
        ret = (int) res.count;
    }
    for (size_t i = 0; i < res.count; i++)
        xfree(res.v[i]);
    xfree(res.v);
    addr_toks_free(&toks);
    return ret;
}
