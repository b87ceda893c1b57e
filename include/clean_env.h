/*
 * clean_env - the environment Kite programs are started with: only what
 * import_environment lists ("NAME" copies a variable when set, "NAME=value"
 * sets one), plus extra "NAME=value" entries the caller adds.
 */
#ifndef KITE_CLEAN_ENV_H
#define KITE_CLEAN_ENV_H

/* clean_env_build - a NULL-terminated malloc'd environment; free with clean_env_free */
char **clean_env_build(const char *import_list, const char *const *extra);
void clean_env_free(char **env);

#endif
