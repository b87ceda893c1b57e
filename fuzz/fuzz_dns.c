/*
 * fuzz_dns - libFuzzer target for the DNS answer parser (lib/dns.c).
 *
 * Arbitrary bytes as an answer: the id is taken from the input itself so
 * the parser gets past the header, then the bytes are parsed as answers
 * to PTR, A and AAAA questions, and every offset is tried as a name.
 * Whatever comes out must be a printable name that fits its buffer; a
 * crash, an overread (ASan) or a hang is a bug.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"

/* check_name - a parsed name is printable, short, and holds no empty label */
static void check_name(const char *name)
{
    size_t len = strnlen(name, DNS_NAME_SIZE);

    if (len >= DNS_NAME_SIZE)
        abort();
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) name[i];

        if (c <= 0x20 || c >= 0x7f || c == '\\')
            abort();
        if (c == '.' && (i == 0 || name[i - 1] == '.' || i + 1 == len))
            abort();
    }
}

/* LLVMFuzzerTestOneInput - one input */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct {
        const char *qname;
        int qtype;
    } questions[] = {
        {"2.0.0.127.in-addr.arpa", DNS_TYPE_PTR},
        {"mail.example.test", DNS_TYPE_A},
        {"mail.example.test", DNS_TYPE_AAAA},
        {"a", DNS_TYPE_CNAME},
    };
    unsigned id = size >= 2 ? (unsigned) data[0] << 8 | data[1] : 0;
    dns_answer *ans = malloc(sizeof(*ans));
    char name[DNS_NAME_SIZE];

    if (ans == NULL)
        return 0;
    for (size_t q = 0; q < sizeof(questions) / sizeof(questions[0]); q++) {
        int st = dns_parse_answer(data, size, id, questions[q].qname, questions[q].qtype, ans);

        if (st < DNS_OK || st > DNS_MALFORMED)
            abort();
        if (st != DNS_OK && ans->count != 0)
            abort();
        if (st == DNS_OK && (ans->count < 1 || ans->count > DNS_MAX_RECORDS))
            abort();
        if (st == DNS_OK && (questions[q].qtype == DNS_TYPE_PTR || questions[q].qtype == DNS_TYPE_CNAME))
            for (int i = 0; i < ans->count; i++)
                check_name(ans->names[i]);
    }
    for (size_t off = 0; off < size && off < 512; off++) {
        size_t next = 0;
        int r = dns_name_unpack(data, size, off, name, sizeof(name), &next);

        if (r == 0) {
            check_name(name);
            if (next <= off || next > size)
                abort();
        } else if (r != -1 && r != -2) {
            abort();
        }
    }
    free(ans);
    return 0;
}
