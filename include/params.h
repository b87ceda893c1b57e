/*
 * params - one variable per main.cf parameter, named var_<parameter>.
 *
 * The declarations come from include/params/ *.def (see the README there);
 * conf_eval() fills them in. Strings are expanded; times are in seconds;
 * sizes in bytes; booleans 0/1.
 */
#ifndef KITE_PARAMS_H
#define KITE_PARAMS_H

#ifndef KITE_VERSION
#define KITE_VERSION "0.1"
#endif

#define P_STR(n, d) extern char *var_##n;
#define P_BOOL(n, d) extern int var_##n;
#define P_INT(n, d, lo, hi) extern long var_##n;
#define P_TIME(n, d, lo, hi) extern long var_##n;
#define P_SIZE(n, d, lo, hi) extern long var_##n;
#include "params/all.def"
#undef P_STR
#undef P_BOOL
#undef P_INT
#undef P_TIME
#undef P_SIZE

#endif
