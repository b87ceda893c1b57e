/*
 * fuzz_master_cf - libFuzzer target for the master.cf parser.
 *
 * Feeds arbitrary bytes to master_cf_parse(); checks the invariants the
 * supervisor relies on: every error names the file, every entry has a
 * safe command name and NULL-terminated argument lists, and entries are
 * unique by name and type.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "master_cf.h"

/* LLVMFuzzerTestOneInput - one master.cf */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    master_cf cf;

    master_cf_init(&cf);
    master_cf_parse(&cf, "fuzz.cf", (const char *) data, size);
    for (size_t i = 0; i < cf.nerrors; i++)
        if (strncmp(cf.errors[i], "fuzz.cf", 7) != 0)
            abort();
    for (size_t i = 0; i < cf.count; i++) {
        const master_cf_entry *e = &cf.entries[i];

        if (strchr(e->command, '/') != NULL || e->command[0] == '.' || e->args[e->nargs] != NULL ||
            e->overrides[e->noverrides] != NULL || strchr(e->overrides[0] ? e->overrides[0] : "=", '=') == NULL)
            abort();
        if (e->type == MASTER_CF_UNIX && (strchr(e->name, '/') != NULL || e->name[0] == '.'))
            abort();
        if (e->type == MASTER_CF_INET && (e->port == NULL || e->private_))
            abort();
        for (size_t k = i + 1; k < cf.count; k++)
            if (cf.entries[k].type == e->type && strcmp(cf.entries[k].name, e->name) == 0)
                abort();
    }
    master_cf_free(&cf);
    return 0;
}
