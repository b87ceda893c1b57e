/*
 * strutil - small string helpers shared by every program.
 */
#ifndef KITE_STRUTIL_H
#define KITE_STRUTIL_H

#include <stddef.h>

#define CHARS_SPACE       " \t\r\n"
#define CHARS_COMMA_SPACE ", \t\r\n"

/*
 * str_token - split *cursor at any of delims, skipping empty fields.
 * Modifies the string; returns the next token or NULL; *cursor advances.
 */
char *str_token(char **cursor, const char *delims);

int str_case_eq(const char *a, const char *b);            /* ASCII */
int str_case_prefix(const char *str, const char *prefix);  /* ASCII */
void str_lower(char *str);                                  /* ASCII */
char *str_trim(char *str);                  /* trims blanks in place */
int str_to_long(const char *str, long *out);    /* whole string, base 10 */
int str_is_ascii_printable(const char *str, size_t len);

#endif
