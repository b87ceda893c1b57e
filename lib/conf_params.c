/*
 * conf_params - the parameter table and the var_* variables, generated
 * from include/params/ *.def.
 */
#include <stddef.h>
#include <string.h>

#include "conf.h"
#include "params.h"

#define P_STR(n, d) char *var_##n;
#define P_BOOL(n, d) int var_##n;
#define P_INT(n, d, lo, hi) long var_##n;
#define P_TIME(n, d, lo, hi) long var_##n;
#define P_SIZE(n, d, lo, hi) long var_##n;
#include "params/all.def"
#undef P_STR
#undef P_BOOL
#undef P_INT
#undef P_TIME
#undef P_SIZE

#define P_STR(n, d) {#n, CONF_STR, d, 0, 0, &var_##n},
#define P_BOOL(n, d) {#n, CONF_BOOL, d, 0, 0, &var_##n},
#define P_INT(n, d, lo, hi) {#n, CONF_INT, d, lo, hi, &var_##n},
#define P_TIME(n, d, lo, hi) {#n, CONF_TIME, d, lo, hi, &var_##n},
#define P_SIZE(n, d, lo, hi) {#n, CONF_SIZE, d, lo, hi, &var_##n},
const conf_param conf_params[] = {
#include "params/all.def"
};
#undef P_STR
#undef P_BOOL
#undef P_INT
#undef P_TIME
#undef P_SIZE

const size_t conf_params_count = sizeof(conf_params) / sizeof(conf_params[0]);

/* conf_param_find - the table entry for a name, or NULL */
const conf_param *conf_param_find(const char *name)
{
    for (size_t i = 0; i < conf_params_count; i++)
        if (strcmp(conf_params[i].name, name) == 0)
            return &conf_params[i];
    return NULL;
}
