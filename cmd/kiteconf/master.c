/*
 * master - kiteconf -M: print master.cf entries one per line, with the
 * columns as written but white space normalized (continuation lines joined,
 * the eight columns padded as in the stock master.cf, arguments separated
 * by one space), as postconf -M does. "{ ... }" arguments keep their inner
 * text, with runs of white space inside folded to one space.
 *
 * Trusts nothing in master.cf: the file is also run through the library
 * parser (master_cf_read) and every problem it finds is reported.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiteconf.h"
#include "master_cf.h"
#include "msg.h"
#include "mymalloc.h"
#include "vbuf.h"

#define KITECONF_MASTER_COLUMNS 8

/* is_blank - white space inside a master.cf line */
static int is_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* next_field - copy the next field of a logical line into field; 0 at the end */
static int next_field(const char **cursor, vbuf *field)
{
    const char *p = *cursor;

    vbuf_reset(field);
    while (is_blank(*p))
        p++;
    if (*p == 0) {
        *cursor = p;
        return 0;
    }
    if (*p == '{') { /* "{ text }": one field, blanks folded */
        int depth = 0, blank = 0;

        for (; *p; p++) {
            if (is_blank(*p)) {
                blank = 1;
                continue;
            }
            if (blank && field->len > 0)
                vbuf_putc(field, ' ');
            blank = 0;
            vbuf_putc(field, *p);
            if (*p == '{')
                depth++;
            else if (*p == '}' && --depth == 0) {
                p++;
                break;
            }
        }
    } else {
        while (*p && !is_blank(*p))
            vbuf_putc(field, *p++);
    }
    *cursor = p;
    return 1;
}

/* wanted - does a "service" or "service/type" filter select this entry? */
static int wanted(char **filters, int count, const char *service, const char *type)
{
    if (count == 0)
        return 1;
    for (int i = 0; i < count; i++) {
        const char *slash = strchr(filters[i], '/');

        if (slash == NULL) {
            if (strcmp(filters[i], service) == 0)
                return 1;
        } else if (strlen(service) == (size_t) (slash - filters[i]) &&
                   strncmp(filters[i], service, (size_t) (slash - filters[i])) == 0 && strcmp(slash + 1, type) == 0) {
            return 1;
        }
    }
    return 0;
}

/* print_entry - one logical master.cf line, normalized */
static void print_entry(const char *logical, char **filters, int count)
{
    static const int width[KITECONF_MASTER_COLUMNS - 1] = {9, 5, 7, 7, 7, 7, 7};
    const char *cursor = logical;
    char *cols[KITECONF_MASTER_COLUMNS] = {0};
    vbuf field, line;
    int n = 0;

    vbuf_init(&field, 0);
    vbuf_init(&line, 0);
    while (n < KITECONF_MASTER_COLUMNS && next_field(&cursor, &field))
        cols[n++] = xstrdup(field.data);
    if (n > 0 && wanted(filters, count, cols[0], n > 1 ? cols[1] : "")) {
        for (int i = 0; i < n; i++) {
            if (i < KITECONF_MASTER_COLUMNS - 1)
                vbuf_printf(&line, "%-*s ", width[i], cols[i]);
            else
                vbuf_puts(&line, cols[i]);
        }
        while (next_field(&cursor, &field)) {
            vbuf_putc(&line, ' ');
            vbuf_puts(&line, field.data);
        }
        vbuf_trim(&line);
        printf("%s\n", line.data);
    }
    for (int i = 0; i < n; i++)
        xfree(cols[i]);
    vbuf_release(&field);
    vbuf_release(&line);
}

/* kiteconf_show_master - print the entries of CONFDIR/master.cf; 0 or -1 */
int kiteconf_show_master(const char *confdir, char **filters, int count)
{
    vbuf path, logical;
    master_cf cf;
    FILE *fp;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int ret = 0;

    vbuf_init(&path, 0);
    vbuf_init(&logical, MASTER_CF_LINE_MAX);
    vbuf_printf(&path, "%s/master.cf", confdir);
    if ((fp = fopen(path.data, "re")) == NULL) {
        msg_error("open %s: %m", path.data);
        vbuf_release(&path);
        vbuf_release(&logical);
        return -1;
    }
    while ((len = getline(&line, &cap, fp)) >= 0) {
        const char *p = line;

        while (is_blank(*p))
            p++;
        if (*p == '#' || *p == 0)
            continue;
        if (p != line) { /* continuation of the entry before */
            if (logical.len > 0 && (vbuf_putc(&logical, ' ') < 0 || vbuf_puts(&logical, p) < 0)) {
                msg_warn("%s: entry too long, skipped", path.data);
                vbuf_reset(&logical);
            }
            continue;
        }
        if (logical.len > 0)
            print_entry(logical.data, filters, count);
        if (vbuf_set(&logical, line) < 0) {
            msg_warn("%s: entry too long, skipped", path.data);
            vbuf_reset(&logical);
        }
    }
    if (logical.len > 0)
        print_entry(logical.data, filters, count);
    if (ferror(fp)) {
        msg_error("read %s: %m", path.data);
        ret = -1;
    }
    free(line);
    fclose(fp);

    /* Report what the daemons' own parser would refuse. */
    master_cf_init(&cf);
    if (master_cf_read(&cf, path.data) > 0) {
        for (size_t i = 0; i < cf.nerrors; i++)
            msg_warn("%s", cf.errors[i]);
    }
    master_cf_free(&cf);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        msg_error("write error on standard output: %m");
        ret = -1;
    }
    vbuf_release(&path);
    vbuf_release(&logical);
    return ret;
}
