/* Unit tests for clean_env: only imported variables pass, NAME=value sets, bad names are dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clean_env.h"
#include "msg.h"

/* env_get - value of NAME in an environment list, or NULL */
static const char *env_get(char **env, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; env[i]; i++)
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
            return env[i] + n + 1;
    return NULL;
}

static void test_clean_env_imports_only_listed_names(void **state)
{
    char **env;

    (void) state;
    setenv("KITE_T_IN", "yes", 1);
    setenv("KITE_T_OUT", "secret", 1);
    unsetenv("KITE_T_MISSING");
    env = clean_env_build("KITE_T_IN, KITE_T_MISSING LANG=C", NULL);
    assert_string_equal(env_get(env, "KITE_T_IN"), "yes");
    assert_null(env_get(env, "KITE_T_OUT"));
    assert_null(env_get(env, "KITE_T_MISSING"));
    assert_string_equal(env_get(env, "LANG"), "C");
    clean_env_free(env);
}

static void test_clean_env_extra_entries_replace_imported_ones(void **state)
{
    const char *extra[] = {"KITE_CONFIG_DIR=/etc/kite-b", "X=1", NULL};
    char **env;
    size_t count = 0;

    (void) state;
    setenv("KITE_CONFIG_DIR", "/etc/kite-a", 1);
    env = clean_env_build("KITE_CONFIG_DIR", extra);
    assert_string_equal(env_get(env, "KITE_CONFIG_DIR"), "/etc/kite-b");
    assert_string_equal(env_get(env, "X"), "1");
    while (env[count])
        count++;
    assert_int_equal(count, 2);
    clean_env_free(env);
}

static void test_clean_env_drops_malformed_entries(void **state)
{
    static const char *const bad[] = {"=x", "1ABC", "A-B", "$(id)", "A\x01=1", "=", "-"};
    char **env;

    (void) state;
    msg_stderr(0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        env = clean_env_build(bad[i], NULL);
        assert_null(env[0]);
        clean_env_free(env);
    }
    /* Blank-separated: each word is its own entry; a value may hold anything. */
    unsetenv("A");
    env = clean_env_build("A B=c;d", NULL);
    assert_string_equal(env_get(env, "B"), "c;d");
    assert_null(env[1]);
    clean_env_free(env);
    env = clean_env_build(NULL, NULL);
    assert_null(env[0]);
    clean_env_free(env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_env_imports_only_listed_names),
        cmocka_unit_test(test_clean_env_extra_entries_replace_imported_ones),
        cmocka_unit_test(test_clean_env_drops_malformed_entries),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
