/*
 * safe_open - open files in places where another user could plant a
 * symbolic or hard link (see safe_open.h).
 *
 * Offers safe_open (open an existing file or create a new one, with the
 * checks below) and safe_dir_check. Trusts nothing on the file system:
 * an existing file is looked at with lstat before the open and fstat after
 * it, and must be the same regular file with one link, owned by the
 * expected user; a new file is created with O_CREAT|O_EXCL|O_NOFOLLOW so
 * that nothing already there (a dangling link included) is ever followed.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safe_open.h"

/* safe_open_exist - open an existing file and check it; fd or -1 (errno EAGAIN: vanished, retry) */
static int safe_open_exist(const char *path, int open_flags, uid_t uid, struct stat *st, vbuf *why)
{
    struct stat lst, fst;
    int fd;

    if (lstat(path, &lst) < 0) {
        int saved = errno;

        vbuf_printf(why, "cannot find %s: %s", path, strerror(saved));
        errno = saved;
        return -1;
    }
    if (S_ISLNK(lst.st_mode)) {
        vbuf_printf(why, "%s is a symbolic link", path);
        errno = ELOOP;
        return -1;
    }
    if (!S_ISREG(lst.st_mode)) { /* before open: a FIFO would block it */
        vbuf_printf(why, "%s is not a regular file", path);
        errno = EPERM;
        return -1;
    }
    /* O_TRUNC waits until the checks passed: a hard link to another file must not be emptied. */
    fd = open(path, (open_flags & ~(O_CREAT | O_EXCL | O_TRUNC)) | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        int saved = errno;

        if (saved == ENOENT) {
            errno = EAGAIN; /* removed between lstat and open */
            return -1;
        }
        vbuf_printf(why, "cannot open %s: %s", path, strerror(saved));
        errno = saved;
        return -1;
    }
    if (fstat(fd, &fst) < 0) {
        int saved = errno;

        vbuf_printf(why, "cannot fstat %s: %s", path, strerror(saved));
        close(fd);
        errno = saved;
        return -1;
    }
    if (!S_ISREG(fst.st_mode)) {
        vbuf_printf(why, "%s is not a regular file", path);
        errno = EPERM;
    } else if (fst.st_nlink != 1) {
        vbuf_printf(why, "%s has %lu hard links", path, (unsigned long) fst.st_nlink);
        errno = EPERM;
    } else if (fst.st_dev != lst.st_dev || fst.st_ino != lst.st_ino) {
        vbuf_printf(why, "%s was replaced while it was being opened", path);
        errno = EPERM;
    } else if (uid != (uid_t) -1 && fst.st_uid != uid) {
        vbuf_printf(why, "%s is owned by uid %lu, not %lu", path, (unsigned long) fst.st_uid, (unsigned long) uid);
        errno = EPERM;
    } else if ((open_flags & O_TRUNC) && fst.st_size > 0 && ftruncate(fd, 0) < 0) {
        int saved = errno;

        vbuf_printf(why, "cannot truncate %s: %s", path, strerror(saved));
        errno = saved;
    } else {
        if ((open_flags & O_TRUNC) && fstat(fd, &fst) < 0)
            fst.st_size = 0;
        if (st)
            *st = fst;
        return fd;
    }
    {
        int saved = errno;

        close(fd);
        errno = saved;
    }
    return -1;
}

/* safe_open_create - create a new file exclusively; fd or -1 (errno EEXIST: appeared, retry) */
static int safe_open_create(const char *path, int open_flags, mode_t mode, uid_t uid, gid_t gid, struct stat *st,
                            vbuf *why)
{
    struct stat fst;
    int fd = open(path, open_flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, mode);

    if (fd < 0) {
        int saved = errno;

        if (saved != EEXIST)
            vbuf_printf(why, "cannot create %s: %s", path, strerror(saved));
        errno = saved;
        return -1;
    }
    if ((uid != (uid_t) -1 || gid != (gid_t) -1) && fchown(fd, uid, gid) < 0) {
        int saved = errno;

        vbuf_printf(why, "cannot change owner of %s: %s", path, strerror(saved));
        close(fd);
        (void) unlink(path);
        errno = saved;
        return -1;
    }
    if (fstat(fd, &fst) < 0) {
        int saved = errno;

        vbuf_printf(why, "cannot fstat %s: %s", path, strerror(saved));
        close(fd);
        errno = saved;
        return -1;
    }
    if (st)
        *st = fst;
    return fd;
}

/* safe_open - open or create path safely; an fd, or -1 with the reason in why */
int safe_open(const char *path, int open_flags, int safe_flags, mode_t mode, uid_t uid, gid_t gid, struct stat *st,
              vbuf *why)
{
    vbuf_reset(why);
    if (safe_flags & SAFE_OPEN_EXCL) {
        int fd = safe_open_create(path, open_flags, mode, uid, gid, st, why);

        if (fd < 0 && errno == EEXIST)
            vbuf_printf(why, "cannot create %s: file exists", path);
        return fd;
    }
    /* A file that appears or vanishes between the steps: try again, a few times. */
    for (int attempt = 0; attempt < 10; attempt++) {
        int fd = safe_open_exist(path, open_flags, uid, st, why);

        if (fd >= 0)
            return fd;
        if (errno == EAGAIN) {
            vbuf_reset(why);
            continue;
        }
        if (errno != ENOENT || !(safe_flags & SAFE_OPEN_CREATE))
            return -1;
        vbuf_reset(why);
        fd = safe_open_create(path, open_flags, mode, uid, gid, st, why);
        if (fd >= 0 || errno != EEXIST)
            return fd;
        vbuf_reset(why);
    }
    vbuf_printf(why, "%s keeps changing while it is being opened", path);
    errno = EAGAIN;
    return -1;
}

/* safe_dir_check - a real directory, owned by owner (unless -1), not group/other writable unless sticky */
int safe_dir_check(const char *path, uid_t owner, vbuf *why)
{
    struct stat st;

    vbuf_reset(why);
    if (lstat(path, &st) < 0) {
        vbuf_printf(why, "cannot find %s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISLNK(st.st_mode)) {
        vbuf_printf(why, "%s is a symbolic link", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        vbuf_printf(why, "%s is not a directory", path);
        return -1;
    }
    if (owner != (uid_t) -1 && st.st_uid != owner) {
        vbuf_printf(why, "%s is owned by uid %lu, not %lu", path, (unsigned long) st.st_uid, (unsigned long) owner);
        return -1;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
        vbuf_printf(why, "%s is writable by group or others", path);
        return -1;
    }
    return 0;
}
