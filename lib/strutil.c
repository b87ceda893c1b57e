/*
 * strutil - small string helpers (see strutil.h). Locale-independent: all
 * case handling is ASCII only, as the mail protocols require.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "strutil.h"

char *str_token(char **cursor, const char *delims)
{
    char *start = *cursor;
    char *end;

    if (start == NULL)
        return NULL;
    start += strspn(start, delims);
    if (*start == 0) {
        *cursor = start;
        return NULL;
    }
    end = start + strcspn(start, delims);
    if (*end) {
        *end = 0;
        *cursor = end + 1;
    } else {
        *cursor = end;
    }
    return start;
}

static int ascii_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

int str_case_eq(const char *a, const char *b)
{
    while (*a && ascii_lower((unsigned char) *a) == ascii_lower((unsigned char) *b))
        a++, b++;
    return *a == 0 && *b == 0;
}

int str_case_prefix(const char *str, const char *prefix)
{
    while (*prefix) {
        if (ascii_lower((unsigned char) *str) != ascii_lower((unsigned char) *prefix))
            return 0;
        str++, prefix++;
    }
    return 1;
}

void str_lower(char *str)
{
    for (; *str; str++)
        *str = (char) ascii_lower((unsigned char) *str);
}

char *str_trim(char *str)
{
    char *end;

    while (*str == ' ' || *str == '\t' || *str == '\r' || *str == '\n')
        str++;
    end = str + strlen(str);
    while (end > str && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
        *--end = 0;
    return str;
}

int str_to_long(const char *str, long *out)
{
    char *end;
    long v;

    /* strtol would skip any leading white space (\n, \v, \f, \r too) and a '+' */
    if (!((*str >= '0' && *str <= '9') || *str == '-'))
        return -1;
    errno = 0;
    v = strtol(str, &end, 10);
    if (errno != 0 || *end != 0)
        return -1;
    *out = v;
    return 0;
}

int str_is_ascii_printable(const char *str, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) str[i] < 0x20 || (unsigned char) str[i] > 0x7e)
            return 0;
    return 1;
}
