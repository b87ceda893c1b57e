/*
 * mail_queue - the queue directory (see mail_queue.h): hashed paths, moves
 * that are one rename followed by fsync of the directories (or, for moves
 * a rescan redoes, the rename alone), scanning, retiring finished files for
 * reuse, and creating/repairing the layout with owners and modes.
 *
 * Reuse: a file system pays for every file created and removed (inode and
 * block allocation, bitmaps; without a journal, ext4 also skips recently
 * freed inodes one by one). qmgr therefore moves a finished queue file into
 * recycle/ under one of queue_recycle_limit slot names, and cleanup claims
 * one by renaming it to its temporary name, then overwrites and truncates
 * it. A claim is one atomic rename, so no two processes get the same file;
 * a claimed file that is not a plain file of ours with one link, or that a
 * reader still has open, is removed instead. Nothing in recycle/ is ever
 * read as mail.
 *
 * Trusts: queue IDs given by callers only after mail_queue_id_ok(); the
 * directory tree is examined with lstat/O_NOFOLLOW, so a link planted in
 * the queue is reported, never followed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail_queue.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "strutil.h"
#include "vbuf.h"

#define MAIL_QUEUE_ID_MAX 64

/* mail_queue_id_ok - a plausible queue file name */
int mail_queue_id_ok(const char *id)
{
    size_t len = strlen(id);

    if (len == 0 || len > MAIL_QUEUE_ID_MAX || id[0] == '.')
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-' || *p == '.'))
            return 0;
    return 1;
}

/* queue_is_hashed - is this queue listed in hash_queue_names? */
static int queue_is_hashed(const char *queue)
{
    char *copy, *cursor, *tok;
    int found = 0;

    if (var_hash_queue_names == NULL)
        return 0;
    copy = xstrdup(var_hash_queue_names);
    cursor = copy;
    while (!found && (tok = str_token(&cursor, CHARS_COMMA_SPACE)) != NULL)
        found = strcmp(tok, queue) == 0;
    xfree(copy);
    return found;
}

/* hash_depth - levels used for this queue */
static int hash_depth(const char *queue)
{
    long depth = var_hash_queue_depth;

    if (!queue_is_hashed(queue))
        return 0;
    return depth < 1 ? 1 : depth > 4 ? 4 : (int) depth;
}

/* append_hash - "X/Y/" from the last characters of the ID */
static void append_hash(vbuf *out, const char *queue, const char *id)
{
    size_t len = strlen(id);
    int depth = hash_depth(queue);

    for (int i = 0; i < depth && (size_t) i < len; i++) {
        vbuf_putc(out, id[len - 1 - (size_t) i]);
        vbuf_putc(out, '/');
    }
}

/* mail_queue_path - the relative path of ID in queue */
void mail_queue_path(vbuf *out, const char *queue, const char *id)
{
    vbuf_reset(out);
    vbuf_puts(out, queue);
    vbuf_putc(out, '/');
    append_hash(out, queue, id);
    vbuf_puts(out, id);
}

/* fsync_dir - make a rename in this directory durable */
static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int ret;

    if (fd < 0)
        return -1;
    ret = fsync(fd);
    close(fd);
    return ret;
}

/* make_hash_dirs - create missing hash levels of a path's directory */
static int make_hash_dirs(const char *path)
{
    char *copy = xstrdup(path);
    char *slash = strchr(copy, '/');

    /* Skip the queue itself; create each deeper level. */
    while (slash && (slash = strchr(slash + 1, '/')) != NULL) {
        *slash = 0;
        if (mkdir(copy, 0700) < 0 && errno != EEXIST) {
            xfree(copy);
            return -1;
        }
        *slash = '/';
    }
    xfree(copy);
    return 0;
}

/* dir_of - the directory part of a relative path */
static void dir_of(vbuf *out, const char *path)
{
    const char *slash = strrchr(path, '/');

    vbuf_reset(out);
    if (slash)
        vbuf_append(out, path, (size_t) (slash - path));
    else
        vbuf_putc(out, '.');
}

/* queue_move - rename ID between queues; fsync both directories if durable */
static int queue_move(const char *id, const char *from, const char *to, int durable)
{
    vbuf src, dst, dir;
    int ret = -1;
    int saved;

    if (!mail_queue_id_ok(id)) {
        errno = EINVAL;
        return -1;
    }
    vbuf_init(&src, 0);
    vbuf_init(&dst, 0);
    vbuf_init(&dir, 0);
    mail_queue_path(&src, from, id);
    mail_queue_path(&dst, to, id);
    if (rename(vbuf_str(&src), vbuf_str(&dst)) < 0) {
        if (errno != ENOENT || make_hash_dirs(vbuf_str(&dst)) < 0 || rename(vbuf_str(&src), vbuf_str(&dst)) < 0)
            goto done;
    }
    if (durable) {
        dir_of(&dir, vbuf_str(&dst));
        if (fsync_dir(vbuf_str(&dir)) < 0)
            goto done;
        dir_of(&dir, vbuf_str(&src));
        if (fsync_dir(vbuf_str(&dir)) < 0)
            goto done;
    }
    ret = 0;
done:
    saved = errno;
    vbuf_release(&src);
    vbuf_release(&dst);
    vbuf_release(&dir);
    errno = saved;
    return ret;
}

/* mail_queue_move - rename ID between queues, then fsync both directories */
int mail_queue_move(const char *id, const char *from, const char *to)
{
    return queue_move(id, from, to, 1);
}

/*
 * mail_queue_move_recoverable - rename ID between queues without directory
 * fsyncs: after a crash the file is in one of the two queues, and the
 * caller's rescan of the source queue redoes the move.
 */
int mail_queue_move_recoverable(const char *id, const char *from, const char *to)
{
    return queue_move(id, from, to, 0);
}

/*
 * Slots tried per retirement or claim before giving up. Retirements and
 * claims balance where about half the slots are full; eight tries then
 * find one almost always (1 - 1/256), a failed try being one rename call.
 */
#define RECYCLE_TRIES 8

/* recycle_slot - the path of slot n (modulo the limit) */
static void recycle_slot(vbuf *out, unsigned long n)
{
    vbuf_reset(out);
    vbuf_printf(out, "%s/%lu", MAIL_QUEUE_RECYCLE, n % (unsigned long) var_queue_recycle_limit);
}

/* recycle_start - where this process begins to look: spread over the slots */
static unsigned long recycle_start(void)
{
    unsigned long r = 0;

    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t) sizeof(r))
        r = (unsigned long) getpid();
    return r;
}

/* mail_queue_retire - move a finished file into a free slot, or remove it */
int mail_queue_retire(const char *queue, const char *id)
{
    static unsigned long next;
    static int started;
    vbuf src, slot;
    int ret = -1;
    int saved;

    if (!mail_queue_id_ok(id)) {
        errno = EINVAL;
        return -1;
    }
    vbuf_init(&src, 0);
    vbuf_init(&slot, 0);
    mail_queue_path(&src, queue, id);
    if (var_queue_recycle_limit > 0) {
        if (!started) {
            next = recycle_start();
            started = 1;
        }
        for (int i = 0; i < RECYCLE_TRIES && ret < 0; i++) {
            recycle_slot(&slot, next++);
            if (renameat2(AT_FDCWD, vbuf_str(&src), AT_FDCWD, vbuf_str(&slot), RENAME_NOREPLACE) == 0)
                ret = 0;
            else if (errno != EEXIST)
                break; /* the file is gone, or recycle/ is missing: nothing to gain by retrying */
        }
    }
    if (ret < 0)
        ret = unlink(vbuf_str(&src));
    saved = errno;
    vbuf_release(&src);
    vbuf_release(&slot);
    errno = saved;
    return ret;
}

/*
 * recycle_unused - is the claimed file open nowhere else? A process that
 * opened the message before qmgr retired it (a delivery agent qmgr gave up
 * on, or one left running by a qmgr that restarted; mailq, kitecat) still
 * reads through its descriptor: written over, the file would show it
 * another message. Such a file is removed instead (the reader keeps its
 * copy). A write lease is granted only when no other descriptor is open;
 * it is released at once, and nobody can open the file by name now.
 */
static int recycle_unused(int fd, const char *path)
{
    static int warned;

    if (fcntl(fd, F_SETLEASE, F_WRLCK) < 0) {
        if (errno == EAGAIN)
            msg_info("%s: a file from %s is still open elsewhere; removed, not reused", path, MAIL_QUEUE_RECYCLE);
        else if (!warned++)
            msg_warn("%s: cannot tell whether a file from %s is still open (lease: %m); such files are removed, "
                     "not reused (set queue_recycle_limit = 0 on this file system)",
                     path, MAIL_QUEUE_RECYCLE);
        return -1;
    }
    if (fcntl(fd, F_SETLEASE, F_UNLCK) < 0) {
        msg_warn("%s: release lease: %m", path);
        return -1;
    }
    return 0;
}

/* mail_queue_reuse - claim a retired file as path; open fd or -1 */
int mail_queue_reuse(const char *path)
{
    static unsigned long next;
    static int started;
    struct stat st;
    vbuf slot;
    int claimed = 0;
    int fd;

    if (var_queue_recycle_limit <= 0)
        return -1;
    if (!started) {
        next = recycle_start();
        started = 1;
    }
    vbuf_init(&slot, 0);
    for (int i = 0; i < RECYCLE_TRIES && !claimed; i++) {
        recycle_slot(&slot, next++);
        if (renameat2(AT_FDCWD, vbuf_str(&slot), AT_FDCWD, path, RENAME_NOREPLACE) == 0)
            claimed = 1;
        else if (errno != ENOENT)
            break; /* not just an empty slot (no recycle/, no rights): stop looking */
    }
    vbuf_release(&slot);
    if (!claimed)
        return -1;
    /* Ours now, whatever it is: use it only if it is what qmgr put there. */
    fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        msg_warn("%s: cannot reuse a file from %s: %m; removed", path, MAIL_QUEUE_RECYCLE);
    } else if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != geteuid()) {
        msg_warn("%s: unexpected file in %s; removed", path, MAIL_QUEUE_RECYCLE);
        (void) close(fd);
        fd = -1;
    } else if (recycle_unused(fd, path) < 0) {
        (void) close(fd);
        fd = -1;
    } else if (futimens(fd, NULL) < 0) {
        /* Under its temporary name it must look new: kitesuper -s removes old .tmp files. */
        msg_warn("%s: set the times of a file from %s: %m; removed", path, MAIL_QUEUE_RECYCLE);
        (void) close(fd);
        fd = -1;
    }
    if (fd < 0 && unlink(path) < 0 && (errno != EISDIR || rmdir(path) < 0) && errno != ENOENT)
        msg_warn("%s: cannot remove what was claimed from %s: %m; remove it by hand", path, MAIL_QUEUE_RECYCLE);
    return fd;
}

/* scan_dir - collect IDs under dir, descending `levels` hash levels */
static int scan_dir(const char *dir, int levels, char ***ids, size_t *count)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;

        if (name[0] == '.')
            continue;
        if (levels > 0 && name[1] == 0) {
            vbuf sub;
            struct stat st;

            vbuf_init(&sub, 0);
            vbuf_printf(&sub, "%s/%s", dir, name);
            if (lstat(vbuf_str(&sub), &st) == 0 && S_ISDIR(st.st_mode)) {
                if (scan_dir(vbuf_str(&sub), levels - 1, ids, count) < 0 && errno != ENOENT)
                    msg_warn("scan %s: %m", vbuf_str(&sub));
                vbuf_release(&sub);
                continue;
            }
            vbuf_release(&sub);
        }
        if (!mail_queue_id_ok(name))
            continue;
        *ids = xreallocarray(*ids, *count + 1, sizeof(char *));
        (*ids)[(*count)++] = xstrdup(name);
    }
    closedir(d);
    return 0;
}

/* mail_queue_scan - call fn for every ID in queue; returns the count or -1 */
int mail_queue_scan(const char *queue, void (*fn)(const char *queue, const char *id, void *ctx), void *ctx)
{
    char **ids = NULL;
    size_t count = 0;

    /* Collect first, so fn may move or remove files while we go. */
    if (scan_dir(queue, hash_depth(queue), &ids, &count) < 0) {
        xfree(ids);
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        fn(queue, ids[i], ctx);
        xfree(ids[i]);
    }
    xfree(ids);
    return (int) count;
}

/* The layout: name, mode, group is the setgid group. */
static const struct queue_dir_spec {
    const char *name;
    mode_t mode;
    int setgid_group;
} queue_dirs[] = {
    {MAIL_QUEUE_MAILDROP, 01730, 1},
    {MAIL_QUEUE_INCOMING, 0700, 0},
    {MAIL_QUEUE_ACTIVE, 0700, 0},
    {MAIL_QUEUE_DEFERRED, 0700, 0},
    {MAIL_QUEUE_HOLD, 0700, 0},
    {MAIL_QUEUE_CORRUPT, 0700, 0},
    {MAIL_QUEUE_BOUNCE, 0700, 0},
    {MAIL_QUEUE_DEFER, 0700, 0},
    {MAIL_QUEUE_TRACE, 0700, 0},
    {MAIL_QUEUE_RECYCLE, 0700, 0},
    {"private", 0700, 0},
    {"public", 0710, 1},
};

/* fix_dir - create or repair one directory; 0 or -1 with why */
static int fix_dir(const char *path, mode_t mode, uid_t uid, gid_t gid, vbuf *why)
{
    struct stat st;
    int fd, created = 0;

    if (lstat(path, &st) < 0) {
        if (errno != ENOENT) {
            vbuf_printf(why, "%s: %s; ", path, strerror(errno));
            return -1;
        }
        if (mkdir(path, 0700) < 0 && errno != EEXIST) {
            vbuf_printf(why, "mkdir %s: %s; ", path, strerror(errno));
            return -1;
        }
        created = 1;
        if (lstat(path, &st) < 0) {
            vbuf_printf(why, "%s: %s; ", path, strerror(errno));
            return -1;
        }
    }
    if (!S_ISDIR(st.st_mode)) {
        vbuf_printf(why, "%s exists and is not a directory; ", path);
        return -1;
    }
    if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        vbuf_printf(why, "open %s: %s; ", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        vbuf_printf(why, "stat %s: %s; ", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (st.st_uid != uid || st.st_gid != gid) {
        if (fchown(fd, uid, gid) < 0) {
            vbuf_printf(why, "chown %s to %ld:%ld: %s; ", path, (long) uid, (long) gid, strerror(errno));
            close(fd);
            return -1;
        }
        if (!created)
            msg_info("%s: owner set to %ld:%ld", path, (long) uid, (long) gid);
    }
    /* fchown may clear set-id bits; compare and set the mode last. */
    if (fstat(fd, &st) == 0 && (st.st_mode & 07777) != mode) {
        if (fchmod(fd, mode) < 0) {
            vbuf_printf(why, "chmod %s: %s; ", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (!created)
            msg_info("%s: mode set to %04o", path, (unsigned) mode);
    }
    close(fd);
    return 0;
}

/* fix_hash_dirs - repair the single-character hash levels under a queue */
static int fix_hash_dirs(const char *dir, int levels, uid_t uid, gid_t gid, vbuf *why)
{
    DIR *d;
    struct dirent *de;
    int ret = 0;

    if (levels <= 0 || (d = opendir(dir)) == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        vbuf sub;
        struct stat st;

        if (de->d_name[0] == '.' || de->d_name[1] != 0)
            continue;
        vbuf_init(&sub, 0);
        vbuf_printf(&sub, "%s/%s", dir, de->d_name);
        if (lstat(vbuf_str(&sub), &st) == 0 && S_ISDIR(st.st_mode)) {
            if (fix_dir(vbuf_str(&sub), 0700, uid, gid, why) < 0 ||
                fix_hash_dirs(vbuf_str(&sub), levels - 1, uid, gid, why) < 0)
                ret = -1;
        }
        vbuf_release(&sub);
    }
    closedir(d);
    return ret;
}

/* mail_queue_setup - create or repair the queue layout; 0, or -1 with why */
int mail_queue_setup(const char *queue_dir, uid_t owner, gid_t owner_gid, gid_t setgid_gid, vbuf *why)
{
    uid_t top_uid = geteuid() == 0 ? 0 : owner;
    gid_t top_gid = geteuid() == 0 ? 0 : owner_gid;
    int ret = 0;
    vbuf path;

    vbuf_reset(why);
    /* The top is root's (as Postfix's): only master creates sockets below. */
    if (fix_dir(queue_dir, 0755, top_uid, top_gid, why) < 0)
        return -1;
    vbuf_init(&path, 0);
    for (size_t i = 0; i < sizeof(queue_dirs) / sizeof(queue_dirs[0]); i++) {
        const struct queue_dir_spec *q = &queue_dirs[i];

        vbuf_reset(&path);
        vbuf_printf(&path, "%s/%s", queue_dir, q->name);
        if (fix_dir(vbuf_str(&path), q->mode, owner, q->setgid_group ? setgid_gid : owner_gid, why) < 0) {
            ret = -1;
            continue;
        }
        if (hash_depth(q->name) > 0 && fix_hash_dirs(vbuf_str(&path), hash_depth(q->name), owner, owner_gid, why) < 0)
            ret = -1;
    }
    vbuf_release(&path);
    if (why->len >= 2 && strcmp(why->data + why->len - 2, "; ") == 0)
        vbuf_truncate(why, why->len - 2);
    return ret;
}
