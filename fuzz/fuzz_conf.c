/*
 * fuzz_conf - libFuzzer target for main.cf parsing and $name expansion.
 *
 * Writes the input to a temporary main.cf, loads it with conf_load (which
 * reads, expands and type-checks every parameter), asks for the unknown
 * parameter warnings and a few lookups, then forgets it all with
 * conf_reset. Diagnostics are swallowed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "msg.h"
#include "mymalloc.h"

static char fuzz_dir[64];
static char fuzz_path[96];

/* quiet - swallow diagnostics */
static void quiet(enum msg_level level, const char *text)
{
    (void) level;
    (void) text;
}

/* fuzz_remove_dir - at exit: remove the temporary directory */
static void fuzz_remove_dir(void)
{
    (void) unlink(fuzz_path);
    (void) rmdir(fuzz_dir);
}

/* LLVMFuzzerTestOneInput - one main.cf */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *fp;

    if (fuzz_dir[0] == 0) {
        msg_init("fuzz_conf");
        msg_stderr(0);
        msg_set_capture(quiet);
        snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/fuzz_conf.XXXXXX");
        if (mkdtemp(fuzz_dir) == NULL)
            abort();
        snprintf(fuzz_path, sizeof(fuzz_path), "%s/main.cf", fuzz_dir);
        atexit(fuzz_remove_dir);
    }
    if ((fp = fopen(fuzz_path, "w")) == NULL)
        abort();
    if (size && fwrite(data, 1, size, fp) != size)
        abort();
    if (fclose(fp) != 0)
        abort();
    (void) conf_load(fuzz_dir);
    (void) conf_check_unknown();
    for (size_t i = 0; i < conf_raw_count() && i < 8; i++) {
        const char *name = conf_raw_name(i);

        (void) conf_lookup(name);
        (void) conf_lookup_time(name, 1, 's');
        (void) conf_lookup_int(name, 1);
        (void) conf_lookup_bool(name, 1);
    }
    {
        char *x = conf_expand("$myhostname ${mydomain?x} $(myorigin:y)");

        xfree(x);
    }
    conf_reset();
    return 0;
}
