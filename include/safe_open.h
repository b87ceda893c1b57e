/*
 * safe_open - open files where an attacker could plant a link.
 *
 * An existing file is opened with O_NOFOLLOW and must be a regular file with
 * one link, owned by the expected user (when uid != (uid_t)-1), and must be
 * the same file after open as before (device and inode). A new file is
 * created with O_CREAT|O_EXCL|O_NOFOLLOW.
 */
#ifndef KITE_SAFE_OPEN_H
#define KITE_SAFE_OPEN_H

#include <sys/stat.h>
#include <sys/types.h>

#include "vbuf.h"

#define SAFE_OPEN_CREATE  (1 << 0)      /* create if missing */
#define SAFE_OPEN_EXCL    (1 << 1)      /* must not exist */

/* safe_open - returns an fd, or -1 with the reason in why */
int safe_open(const char *path, int open_flags, int safe_flags, mode_t mode, uid_t uid, gid_t gid,
              struct stat *st, vbuf *why);

/* safe_open_dir_check - a directory not writable by group/others unless sticky */
int safe_dir_check(const char *path, uid_t owner, vbuf *why);

#endif
