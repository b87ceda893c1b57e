/*
 * alias_parse - the list syntax shared by alias_maps values, :include:
 * files and ~/.forward.
 *
 * A list holds items separated by commas (and blanks, and in files
 * newlines):
 *   user, user@domain, <user@domain>   addresses
 *   |command                            a command (runs to the next comma)
 *   /path/file, /path/maildir/          a file or Maildir
 *   :include:/path                      more items from a file
 *   \user                               the user's own mailbox, no further expansion
 * Double quotes protect commas and blanks ("|cmd a, b"); a backslash
 * escapes the next character. In files, lines whose first non-blank
 * character is '#' are comments.
 *
 * Trusts: nothing in the text; every item is bounded (ALIAS_MAX_TOKEN),
 * the list is bounded (ALIAS_MAX_ITEMS), and control characters, an
 * unterminated quote or an empty command are errors.
 */
#include <string.h>

#include "local.h"
#include "mymalloc.h"
#include "strutil.h"
#include "vbuf.h"

/* alias_add - classify one token and append it */
static int alias_add(vbuf *tok, int self, int had_quotes, alias_item **items, size_t *count, vbuf *why)
{
    char *t = str_trim(tok->data);
    int type;

    if (*t == 0 && !self)
        return 0;
    for (const char *p = t; *p; p++)
        if ((unsigned char) *p < 0x20 && *p != '\t') {
            (void) vbuf_set(why, "control character in list item");
            return -1;
        }
    if (*count >= ALIAS_MAX_ITEMS) {
        (void) vbuf_set(why, "too many list items");
        return -1;
    }
    if (self) {
        type = ALIAS_SELF;
    } else if (*t == '|') {
        t = str_trim(t + 1);
        type = ALIAS_COMMAND;
        if (*t == 0) {
            (void) vbuf_set(why, "empty command");
            return -1;
        }
    } else if (*t == '/') {
        type = ALIAS_FILE;
    } else if (str_case_prefix(t, ":include:")) {
        t = str_trim(t + 9);
        type = ALIAS_INCLUDE;
        if (*t != '/') {
            (void) vbuf_set(why, ":include: needs an absolute path");
            return -1;
        }
    } else {
        size_t len = strlen(t);

        type = ALIAS_ADDR;
        if (len >= 2 && t[0] == '<' && t[len - 1] == '>') {
            t[len - 1] = 0;
            t = str_trim(t + 1);
        }
        /* Blanks only inside a quoted local part ("john doe"@example.org). */
        if (*t == 0 || strpbrk(t, had_quotes ? "<>()" : " \t<>()")) {
            (void) vbuf_printf(why, "bad address \"%.100s\"", t);
            return -1;
        }
    }
    if (self && *t == 0) {
        (void) vbuf_set(why, "empty name after backslash");
        return -1;
    }
    *items = xreallocarray(*items, *count + 1, sizeof(**items));
    (*items)[*count].type = type;
    (*items)[*count].value = xstrdup(t);
    (*count)++;
    return 0;
}

/* alias_parse - split a list into items; 0, or -1 with the reason in why */
int alias_parse(const char *text, int file_syntax, alias_item **items, size_t *count, vbuf *why)
{
    vbuf tok;
    const char *p = text;
    int ret = -1;

    *items = NULL;
    *count = 0;
    vbuf_reset(why);
    vbuf_init(&tok, ALIAS_MAX_TOKEN);
    while (*p) {
        int self = 0, command = 0, quoted = 0, had_quotes = 0;

        /* Separators, and in files whole comment lines. */
        if (*p == ',' || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
            p++;
            continue;
        }
        if (file_syntax && *p == '#') {
            const char *nl = strchr(p, '\n');

            if (nl == NULL)
                break;
            p = nl + 1;
            continue;
        }
        vbuf_reset(&tok);
        if (*p == '\\' && p[1] != '"') {
            self = 1;
            p++;
        }
        /* Commands and :include: run to the next comma; blanks are part of them. */
        command = *p == '|' || (*p == '"' && p[1] == '|') || str_case_prefix(p, ":include:");
        /* One item: up to a comma or newline (commands), or also blanks (the rest). */
        while (*p && (quoted || (*p != ',' && *p != '\n' && (command || (*p != ' ' && *p != '\t'))))) {
            int c = (unsigned char) *p++;

            if (c == '"') {
                quoted = !quoted;
                had_quotes = 1;
                continue;
            }
            if (c == '\\' && *p) {
                c = (unsigned char) *p++;
            } else if (quoted && (c == '\r' || c == '\n')) {
                (void) vbuf_set(why, "line break inside quotes");
                goto out;
            }
            if (vbuf_putc(&tok, c) != 0) {
                (void) vbuf_set(why, "list item too long");
                goto out;
            }
            if (quoted && *p == 0)
                break;
        }
        if (quoted) {
            (void) vbuf_set(why, "unterminated quote");
            goto out;
        }
        if (alias_add(&tok, self, had_quotes, items, count, why) != 0)
            goto out;
    }
    ret = 0;
out:
    vbuf_release(&tok);
    if (ret != 0) {
        alias_free(*items, *count);
        *items = NULL;
        *count = 0;
    }
    return ret;
}

/* alias_free - release a parsed list */
void alias_free(alias_item *items, size_t count)
{
    for (size_t i = 0; i < count; i++)
        xfree(items[i].value);
    xfree(items);
}
