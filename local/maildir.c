/*
 * maildir - delivery into a Maildir: the message is written to tmp/ under
 * a unique name, fsync'd, moved into new/ (never replacing a file: a rename
 * with RENAME_NOREPLACE, or link and unlink where the file system has no
 * such rename) and the directory fsync'd, so a message is either completely
 * there or absent.
 * Missing tmp/, new/ and cur/ directories (and the Maildir's parents) are
 * created (mode 0700) when the delivery finds one missing (ENOENT), so a
 * Maildir that exists costs no directory calls.
 *
 * Runs with the mailbox owner's identity (privs.c local_as_user).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "deliver.h"
#include "local.h"
#include "msg.h"
#include "params.h"
#include "vbuf.h"

/* local_maildir_name - "sec.MusecPpid_Rrandom.host"; '/' and ':' in host escaped */
void local_maildir_name(vbuf *out, long long sec, long usec, long pid, unsigned long long rnd, const char *host)
{
    vbuf_reset(out);
    (void) vbuf_printf(out, "%lld.M%06ldP%ld_R%016llx.", sec, usec, pid, rnd);
    for (const char *p = host; *p; p++) {
        if (*p == '/')
            (void) vbuf_puts(out, "\\057");
        else if (*p == ':')
            (void) vbuf_puts(out, "\\072");
        else
            (void) vbuf_putc(out, *p);
    }
}

/* maildir_mkdirs - DIR and its parents, then tmp/ new/ cur/; 0 or -1 */
static int maildir_mkdirs(const char *dir, vbuf *why)
{
    vbuf path;
    static const char *const subs[] = {"tmp", "new", "cur"};
    int ret = 0;

    vbuf_init(&path, 0);
    (void) vbuf_set(&path, dir);
    /* Parents first: every '/' after the first character ends one. */
    for (size_t i = 1; i <= path.len && ret == 0; i++) {
        if (i < path.len && path.data[i] != '/')
            continue;
        char save = path.data[i];

        path.data[i] = 0;
        if (mkdir(path.data, 0700) < 0 && errno != EEXIST) {
            (void) vbuf_printf(why, "create directory %s: %s", path.data, strerror(errno));
            ret = -1;
        }
        path.data[i] = save;
    }
    for (size_t i = 0; i < 3 && ret == 0; i++) {
        vbuf_reset(&path);
        (void) vbuf_printf(&path, "%s/%s", dir, subs[i]);
        if (mkdir(path.data, 0700) < 0 && errno != EEXIST) {
            (void) vbuf_printf(why, "create directory %s: %s", path.data, strerror(errno));
            ret = -1;
        }
    }
    vbuf_release(&path);
    return ret;
}

/*
 * maildir_random - 64 unpredictable bits for the unique name: one
 * getrandom(2) call (no /dev/urandom to open per delivery, and it works in
 * a chroot); the time and pid only if the kernel's pool cannot answer.
 */
static unsigned long long maildir_random(void)
{
    unsigned long long r = 0;
    struct timeval tv;
    ssize_t n;

    do
        n = getrandom(&r, sizeof(r), GRND_NONBLOCK);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t) sizeof(r)) {
        /* O_EXCL keeps the name unique; this only makes it hard to guess. */
        (void) gettimeofday(&tv, NULL);
        r = ((unsigned long long) tv.tv_usec << 32) ^ (unsigned long long) getpid() ^ (unsigned long long) tv.tv_sec;
    }
    return r;
}

/* local_maildir_move - TMP becomes NEW unless NEW exists; 0, or -1 (errno) with TMP left in place */
int local_maildir_move(const char *tmp, const char *new)
{
    int saved;

    /* One step where the file system can do it (ext4, xfs, btrfs, tmpfs, ...). */
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, new, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    /* Elsewhere link() refuses to replace an existing file, where rename() would not. */
    if (link(tmp, new) != 0)
        return -1;
    saved = errno;
    (void) unlink(tmp);
    errno = saved;
    return 0;
}

/* maildir_fsync_dir - make a directory entry durable */
static int maildir_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int ret;

    if (fd < 0)
        return -1;
    ret = fsync(fd);
    (void) close(fd);
    return ret;
}

/* local_maildir_deliver - one message into Maildir DIR (trailing '/' optional) */
void local_maildir_deliver(local_msg *m, const char *dir, const char *sender, const char *delivered_to, long long limit,
                           local_status *st)
{
    vbuf base, name, tmp, new, why;
    struct timeval tv;
    local_fdout out;
    int fd = -1, moved;

    vbuf_init(&base, 0);
    vbuf_init(&name, 0);
    vbuf_init(&tmp, 0);
    vbuf_init(&new, 0);
    vbuf_init(&why, 0);
    (void) vbuf_set(&base, dir);
    while (base.len > 1 && base.data[base.len - 1] == '/')
        vbuf_truncate(&base, base.len - 1);
    (void) gettimeofday(&tv, NULL);
    local_maildir_name(&name, (long long) tv.tv_sec, (long) tv.tv_usec, (long) getpid(), maildir_random(),
                       *var_myhostname ? var_myhostname : "localhost");
    (void) vbuf_printf(&tmp, "%s/tmp/%s", vbuf_str(&base), vbuf_str(&name));
    (void) vbuf_printf(&new, "%s/new/%s", vbuf_str(&base), vbuf_str(&name));
    fd = open(vbuf_str(&tmp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT) {
        /* A new (or incomplete) Maildir: make it, then try once more. */
        if (maildir_mkdirs(vbuf_str(&base), &why) < 0) {
            local_status_set(st, DELIVER_DEFER, "4.2.0", "maildir delivery failed: %s", vbuf_str(&why));
            goto out;
        }
        fd = open(vbuf_str(&tmp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        local_status_set(st, DELIVER_DEFER, "4.2.0", "maildir delivery failed: create %s: %s", vbuf_str(&tmp),
                         strerror(errno));
        goto out;
    }
    local_fdout_init(&out, fd, limit);
    if (local_copy_msg(m, sender, delivered_to, LOCAL_COPY_LF | LOCAL_COPY_RETURN_PATH | LOCAL_COPY_DELIVERED,
                       local_fdout_write, &out) != 0 ||
        local_fdout_flush(&out) != 0 || fsync(fd) != 0) {
        int err = out.err ? out.err : errno;

        if (err == EFBIG || err == EDQUOT || err == ENOSPC)
            local_status_set(st, err == EFBIG ? DELIVER_BOUNCE : DELIVER_DEFER, err == EFBIG ? "5.2.2" : "4.2.2",
                             "maildir delivery failed: %s",
                             err == EFBIG ? "message exceeds mailbox size limit" : strerror(err));
        else
            local_status_set(st, DELIVER_DEFER, "4.2.0", "maildir delivery failed: write %s: %s", vbuf_str(&tmp),
                             strerror(err));
        local_fdout_release(&out);
        (void) close(fd);
        (void) unlink(vbuf_str(&tmp));
        goto out;
    }
    local_fdout_release(&out);
    if (close(fd) != 0) {
        local_status_set(st, DELIVER_DEFER, "4.2.0", "maildir delivery failed: close %s: %s", vbuf_str(&tmp),
                         strerror(errno));
        (void) unlink(vbuf_str(&tmp));
        goto out;
    }
    /* Never replace an existing file: a rename that refuses to, or link() and unlink(). */
    moved = local_maildir_move(vbuf_str(&tmp), vbuf_str(&new));
    if (moved != 0 && errno == ENOENT) {
        /* tmp/ was there, new/ is not: make the missing directories and try again. */
        vbuf_reset(&why);
        if (maildir_mkdirs(vbuf_str(&base), &why) < 0) {
            local_status_set(st, DELIVER_DEFER, "4.2.0", "maildir delivery failed: %s", vbuf_str(&why));
            (void) unlink(vbuf_str(&tmp));
            goto out;
        }
        moved = local_maildir_move(vbuf_str(&tmp), vbuf_str(&new));
    }
    if (moved != 0) {
        local_status_set(st, DELIVER_DEFER, "4.2.0", "maildir delivery failed: move to %s: %s", vbuf_str(&new),
                         strerror(errno));
        (void) unlink(vbuf_str(&tmp));
        goto out;
    }
    vbuf_reset(&why);
    (void) vbuf_printf(&why, "%s/new", vbuf_str(&base));
    if (maildir_fsync_dir(vbuf_str(&why)) != 0) {
        local_status_set(st, DELIVER_DEFER, "4.2.0", "maildir delivery failed: fsync %s: %s", vbuf_str(&why),
                         strerror(errno));
        (void) unlink(vbuf_str(&new));
        goto out;
    }
    local_status_set(st, DELIVER_OK, "2.0.0", "delivered to maildir");
out:
    vbuf_release(&base);
    vbuf_release(&name);
    vbuf_release(&tmp);
    vbuf_release(&new);
    vbuf_release(&why);
}
