/* libFuzzer target: bounce/defer/trace status log records (lib/bounce_log.c). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bounce_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bounce_log_entry *entries;
    int n = bounce_log_parse(data, size, &entries);

    if (n > 0) {
        for (int i = 0; i < n; i++)
            if (entries[i].rcpt.address == NULL || entries[i].result.reason == NULL ||
                strlen(entries[i].result.dsn) < 5)
                __builtin_trap();
        bounce_log_free(entries, (size_t) n);
    }
    return 0;
}
