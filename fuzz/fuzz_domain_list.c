/*
 * fuzz_domain_list - libFuzzer target for domain list parameters and their
 * matching (lib/domain_list.c), as fast_flush_domains, relay_domains and
 * mydestination use them.
 *
 * Input: a list value, a NUL, a domain. Whatever the bytes, the result is
 * -1, 0 or 1; case never changes it; a trailing dot never changes it; and
 * with subdomains on, what matches keeps matching with a label in front.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "domain_list.h"
#include "mymalloc.h"
#include "strutil.h"

/* same - two results agree, unless a table failed (its retry may change it) */
static int same(int a, int b)
{
    return a < 0 || b < 0 || a == b;
}

/* LLVMFuzzerTestOneInput - one input */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t llen = nul ? (size_t) (nul - data) : size;
    size_t dlen = nul ? size - llen - 1 : 0;
    char *list = xmalloc(llen + 1), *dom = xmalloc(dlen + 1), *var = xmalloc(dlen + 3);
    domain_list dl;

    memcpy(list, data, llen);
    list[llen] = 0;
    if (dlen)
        memcpy(dom, nul + 1, dlen);
    dom[dlen] = 0;
    dlen = strlen(dom);
    for (int sub = 0; sub <= 1; sub++) {
        int r, r2;

        domain_list_parse(&dl, "fuzz_domains", list, sub);
        r = domain_list_match(&dl, dom);
        if (r < -1 || r > 1)
            abort();
        memcpy(var, dom, dlen + 1);
        str_lower(var);
        r2 = domain_list_match(&dl, var);
        if (!same(r, r2))
            abort();
        if (dlen > 0 && dom[dlen - 1] != '.') {
            memcpy(var, dom, dlen);
            var[dlen] = '.';
            var[dlen + 1] = 0;
            if (!same(r, domain_list_match(&dl, var)))
                abort();
        }
        if (sub && r == 1) {
            char *longer = xmalloc(dlen + 3);

            longer[0] = 'x';
            longer[1] = '.';
            memcpy(longer + 2, dom, dlen + 1);
            if (!same(1, domain_list_match(&dl, longer)))
                abort();
            xfree(longer);
        }
        domain_list_free(&dl);
    }
    xfree(list);
    xfree(dom);
    xfree(var);
    return 0;
}
