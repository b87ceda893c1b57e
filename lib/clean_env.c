/*
 * clean_env - build the environment for programs Kite starts (see
 * clean_env.h). Trusts import_environment from main.cf; names are checked
 * so that a malformed entry cannot inject anything but a plain variable.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "clean_env.h"
#include "msg.h"
#include "mymalloc.h"
#include "strutil.h"
#include "vbuf.h"

/* env_name_ok - shell-style variable name */
static int env_name_ok(const char *name, size_t len)
{
    if (len == 0 || isdigit((unsigned char) name[0]))
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char) name[i]) && name[i] != '_')
            return 0;
    return 1;
}

/* env_put - add or replace NAME=value in the list */
static void env_put(char ***env, size_t *count, const char *entry)
{
    size_t nlen = strcspn(entry, "=");

    for (size_t i = 0; i < *count; i++)
        if (strncmp((*env)[i], entry, nlen) == 0 && (*env)[i][nlen] == '=') {
            xfree((*env)[i]);
            (*env)[i] = xstrdup(entry);
            return;
        }
    *env = xreallocarray(*env, *count + 2, sizeof(char *));
    (*env)[(*count)++] = xstrdup(entry);
    (*env)[*count] = NULL;
}

/* clean_env_build - environment from import_environment plus extra entries */
char **clean_env_build(const char *import_list, const char *const *extra)
{
    char **env = xcalloc(1, sizeof(char *));
    size_t count = 0;
    char *copy = xstrdup(import_list ? import_list : "");
    char *cursor = copy;
    char *tok;

    while ((tok = str_token(&cursor, CHARS_COMMA_SPACE)) != NULL) {
        char *eq = strchr(tok, '=');

        if (!env_name_ok(tok, eq ? (size_t) (eq - tok) : strlen(tok))) {
            msg_warn("import_environment: ignoring bad entry \"%.100s\"", tok);
            continue;
        }
        if (eq) {
            env_put(&env, &count, tok);
        } else {
            const char *val = getenv(tok);
            vbuf e;

            if (val == NULL)
                continue;
            vbuf_init(&e, 0);
            vbuf_printf(&e, "%s=%s", tok, val);
            env_put(&env, &count, vbuf_str(&e));
            vbuf_release(&e);
        }
    }
    xfree(copy);
    for (size_t i = 0; extra && extra[i]; i++)
        env_put(&env, &count, extra[i]);
    return env;
}

/* clean_env_free - release an environment from clean_env_build */
void clean_env_free(char **env)
{
    if (env == NULL)
        return;
    for (size_t i = 0; env[i]; i++)
        xfree(env[i]);
    xfree(env);
}
