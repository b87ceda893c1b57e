/*
 * edit - kiteconf's in-place editing of main.cf (name=value and -X).
 *
 * The file is read whole (bounded), split into physical lines and rewritten
 * with the named parameters' logical lines (the "name = value" line and the
 * continuation lines after it) replaced or removed; comments, blank lines
 * and every other parameter stay as they were. A parameter that is not
 * there yet is appended. Later duplicates of an edited name are removed,
 * since the last entry would otherwise win over the edit.
 *
 * The new text goes to a temporary file in the same directory, created
 * with O_EXCL|O_NOFOLLOW, which is fsync'd and renamed over main.cf; the
 * directory is fsync'd afterwards, so a crash leaves the old or the new
 * file, never a mix.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "kiteconf.h"
#include "msg.h"
#include "mymalloc.h"
#include "safe_open.h"
#include "strutil.h"
#include "vbuf.h"

#define KITECONF_FILE_MAX (16 * 1024 * 1024)

enum line_kind { LINE_OTHER, LINE_HEAD, LINE_CONT };

typedef struct edit_line {
    const char *text; /* into the file buffer, without '\n' */
    size_t len;
    enum line_kind kind;
    char *name; /* LINE_HEAD: the parameter name, or NULL */
} edit_line;

typedef struct edit_req {
    char *name;
    char *value; /* NULL for -X */
    int done;
} edit_req;

static char *edit_temp_path; /* removed by the fatal cleanup hook */

/* edit_cleanup - remove a half-written temporary file */
static void edit_cleanup(void)
{
    if (edit_temp_path)
        (void) unlink(edit_temp_path);
}

/* valid_param_name - letters, digits, '_', '.', '-' as main.cf allows */
static int valid_param_name(const char *name)
{
    if (*name == 0)
        return 0;
    for (; *name; name++)
        if (!isalnum((unsigned char) *name) && *name != '_' && *name != '.' && *name != '-')
            return 0;
    return 1;
}

/* check_typed_value - warn when a typed parameter gets a value its type refuses */
static void check_typed_value(const char *name, const char *value)
{
    const conf_param *p = conf_param_find(name);
    long n;
    int b;

    if (p == NULL || strchr(value, '$') != NULL || *value == 0)
        return;
    switch (p->type) {
    case CONF_STR:
        return;
    case CONF_BOOL:
        if (conf_parse_bool(value, &b) < 0)
            msg_warn("%s: bad boolean value \"%s\" (use yes or no)", name, value);
        return;
    case CONF_TIME: {
        size_t dl = strlen(p->def);
        int unit = (dl > 0 && isalpha((unsigned char) p->def[dl - 1])) ? p->def[dl - 1] : 's';

        if (conf_parse_time(value, unit, &n) < 0)
            msg_warn("%s: bad time value \"%s\" (use a number with s, m, h, d or w)", name, value);
        return;
    }
    case CONF_INT:
    case CONF_SIZE:
        if (conf_parse_long(value, &n) < 0)
            msg_warn("%s: bad numerical value \"%s\"", name, value);
        return;
    }
}

/* read_whole - the file's content into buf (missing file: empty, *exists = 0); 0 or -1 */
static int read_whole(const char *path, vbuf *buf, struct stat *st, int *exists)
{
    int fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
    char chunk[8192];
    ssize_t n;

    *exists = 0;
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        msg_error("open %s: %m", path);
        return -1;
    }
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        msg_error("%s: not a regular file", path);
        close(fd);
        return -1;
    }
    *exists = 1;
    while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            msg_error("read %s: %m", path);
            close(fd);
            return -1;
        }
        if (vbuf_append(buf, chunk, (size_t) n) < 0) {
            msg_error("%s: file too large (over %d bytes)", path, KITECONF_FILE_MAX);
            close(fd);
            return -1;
        }
    }
    close(fd);
    return 0;
}

/* split_lines - physical lines of text, classified; returns the count */
static size_t split_lines(const vbuf *text, edit_line **out)
{
    edit_line *v = NULL;
    size_t count = 0, cap = 0, pos = 0;

    while (pos < text->len) {
        const char *start = text->data + pos;
        const char *nl = memchr(start, '\n', text->len - pos);
        size_t len = nl ? (size_t) (nl - start) : text->len - pos;
        edit_line *l;
        size_t skip;

        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            v = xreallocarray(v, cap, sizeof(*v));
        }
        l = &v[count++];
        l->text = start;
        l->len = len;
        l->name = NULL;
        skip = 0;
        while (skip < len && (start[skip] == ' ' || start[skip] == '\t' || start[skip] == '\r'))
            skip++;
        if (skip == len || start[skip] == '#') {
            l->kind = LINE_OTHER;
        } else if (skip > 0) {
            l->kind = LINE_CONT;
        } else {
            const char *eq = memchr(start, '=', len);

            l->kind = LINE_HEAD;
            if (eq) {
                char *name = xstrndup(start, (size_t) (eq - start));
                char *trimmed = str_trim(name);

                l->name = xstrdup(trimmed);
                xfree(name);
            }
        }
        pos += len + (nl ? 1 : 0);
    }
    *out = v;
    return count;
}

/* find_req - the edit request for a name, or NULL */
static edit_req *find_req(edit_req *reqs, int count, const char *name)
{
    if (name == NULL)
        return NULL;
    for (int i = 0; i < count; i++)
        if (strcmp(reqs[i].name, name) == 0)
            return &reqs[i];
    return NULL;
}

/* append_param_line - "name = value\n" (or "name =\n") */
static void append_param_line(vbuf *out, const edit_req *r)
{
    if (*r->value)
        vbuf_printf(out, "%s = %s\n", r->name, r->value);
    else
        vbuf_printf(out, "%s =\n", r->name);
}

/* rewrite - the new file text from the old lines and the requests */
static void rewrite(vbuf *out, const vbuf *old, edit_req *reqs, int count)
{
    edit_line *lines;
    size_t n = split_lines(old, &lines);
    int skipping = 0;

    for (size_t i = 0; i < n; i++) {
        edit_line *l = &lines[i];

        if (l->kind == LINE_HEAD) {
            edit_req *r = find_req(reqs, count, l->name);

            skipping = 0;
            if (r != NULL) {
                skipping = 1; /* drop its continuation lines too */
                if (r->value != NULL && !r->done)
                    append_param_line(out, r);
                r->done = 1;
                continue;
            }
        } else if (l->kind == LINE_CONT && skipping) {
            continue;
        }
        vbuf_append(out, l->text, l->len);
        vbuf_putc(out, '\n');
    }
    for (int i = 0; i < count; i++)
        if (reqs[i].value != NULL && !reqs[i].done)
            append_param_line(out, &reqs[i]);
    for (size_t i = 0; i < n; i++)
        xfree(lines[i].name);
    xfree(lines);
}

/* write_atomically - replace path with text: temp file, fsync, rename, directory fsync; 0 or -1 */
static int write_atomically(const char *path, const vbuf *text, const struct stat *old, int exists)
{
    vbuf temp, why, dir;
    const char *slash;
    mode_t mode = exists ? (old->st_mode & 07777) : 0644;
    uid_t uid = (exists && geteuid() == 0) ? old->st_uid : (uid_t) -1;
    gid_t gid = (exists && geteuid() == 0) ? old->st_gid : (gid_t) -1;
    size_t done = 0;
    int fd, dfd, ret = -1;

    vbuf_init(&temp, 0);
    vbuf_init(&why, 0);
    vbuf_init(&dir, 0);
    slash = strrchr(path, '/');
    if (slash)
        vbuf_append(&dir, path, slash == path ? 1 : (size_t) (slash - path));
    else
        vbuf_puts(&dir, ".");
    vbuf_printf(&temp, "%s.kiteconf.%ld", path, (long) getpid());
    fd = safe_open(temp.data, O_WRONLY, SAFE_OPEN_CREATE | SAFE_OPEN_EXCL, mode, uid, gid, NULL, &why);
    if (fd < 0) {
        msg_error("%s", why.data);
        goto out;
    }
    edit_temp_path = temp.data;
    msg_set_cleanup(edit_cleanup);
    if (fchmod(fd, mode) < 0) { /* not narrowed by the umask */
        msg_error("chmod %s: %m", temp.data);
        goto fail;
    }
    while (done < text->len) {
        ssize_t n = write(fd, text->data + done, text->len - done);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            msg_error("write %s: %m", temp.data);
            goto fail;
        }
        done += (size_t) n;
    }
    if (fsync(fd) < 0) {
        msg_error("fsync %s: %m", temp.data);
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        msg_error("close %s: %m", temp.data);
        goto fail;
    }
    fd = -1;
    if (rename(temp.data, path) < 0) {
        msg_error("rename %s to %s: %m", temp.data, path);
        goto fail;
    }
    edit_temp_path = NULL;
    if ((dfd = open(dir.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        if (fsync(dfd) < 0)
            msg_warn("fsync %s: %m", dir.data);
        close(dfd);
    }
    ret = 0;
    goto out;
fail:
    if (fd >= 0)
        close(fd);
    (void) unlink(temp.data);
    edit_temp_path = NULL;
out:
    msg_set_cleanup(NULL);
    vbuf_release(&temp);
    vbuf_release(&why);
    vbuf_release(&dir);
    return ret;
}

/* kiteconf_edit - set (name=value) or remove (-X name) parameters in main.cf; 0 or -1 */
int kiteconf_edit(const char *confdir, char **args, int count, int mode)
{
    edit_req *reqs = xcalloc((size_t) count, sizeof(*reqs));
    vbuf path, old, out;
    struct stat st;
    char resolved[PATH_MAX];
    int exists = 0, ret = -1;

    vbuf_init(&path, 0);
    vbuf_init(&old, KITECONF_FILE_MAX);
    vbuf_init(&out, 0);
    memset(&st, 0, sizeof(st));
    for (int i = 0; i < count; i++) {
        char *copy = xstrdup(args[i]);
        char *eq = mode == KITECONF_EDIT_SET ? strchr(copy, '=') : NULL;
        char *name;

        if (eq)
            *eq = 0;
        name = str_trim(copy);
        if (!valid_param_name(name)) {
            msg_error("bad parameter name: \"%s\"", name);
            xfree(copy);
            goto out;
        }
        reqs[i].name = xstrdup(name);
        if (eq) {
            const char *value = str_trim(eq + 1);

            if (strpbrk(value, "\r\n") != NULL) {
                msg_error("%s: the value must be one line", name);
                xfree(copy);
                goto out;
            }
            reqs[i].value = xstrdup(value);
            check_typed_value(name, value);
        }
        xfree(copy);
    }
    vbuf_printf(&path, "%s/main.cf", confdir);
    /* Edit the file a link points to, not the link. */
    {
        struct stat lst;

        if (lstat(path.data, &lst) == 0 && S_ISLNK(lst.st_mode)) {
            if (realpath(path.data, resolved) == NULL) {
                msg_error("%s: cannot resolve symbolic link: %m", path.data);
                goto out;
            }
            vbuf_set(&path, resolved);
        }
    }
    if (read_whole(path.data, &old, &st, &exists) < 0)
        goto out;
    rewrite(&out, &old, reqs, count);
    if (exists && out.len == old.len && memcmp(out.data, old.data, out.len) == 0) {
        ret = 0; /* nothing to change */
        goto out;
    }
    ret = write_atomically(path.data, &out, &st, exists);
out:
    for (int i = 0; i < count; i++) {
        xfree(reqs[i].name);
        xfree(reqs[i].value);
    }
    xfree(reqs);
    vbuf_release(&path);
    vbuf_release(&old);
    vbuf_release(&out);
    return ret;
}
