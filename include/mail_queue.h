/*
 * mail_queue - the queue directory: names, paths, moves between queues.
 *
 * All processes run with queue_directory as their current directory (or
 * chroot), so paths are relative: "incoming/ID", "deferred/A/ID" (hashed
 * queues use hash_queue_depth levels of single-character subdirectories
 * taken from the end of the ID, which varies fastest).
 */
#ifndef KITE_MAIL_QUEUE_H
#define KITE_MAIL_QUEUE_H

#include <sys/types.h>

#include "vbuf.h"

#define MAIL_QUEUE_MAILDROP "maildrop"
#define MAIL_QUEUE_INCOMING "incoming"
#define MAIL_QUEUE_ACTIVE   "active"
#define MAIL_QUEUE_DEFERRED "deferred"
#define MAIL_QUEUE_HOLD     "hold"
#define MAIL_QUEUE_CORRUPT  "corrupt"
#define MAIL_QUEUE_BOUNCE   "bounce"    /* per-recipient logs */
#define MAIL_QUEUE_DEFER    "defer"
#define MAIL_QUEUE_TRACE    "trace"
#define MAIL_QUEUE_RECYCLE  "recycle"   /* finished files kept for reuse */

/* mail_queue_id_ok - a plausible queue file name (no '/', no leading '.', bounded) */
int mail_queue_id_ok(const char *id);
/* mail_queue_path - the relative path of ID in queue (hashed if configured) */
void mail_queue_path(vbuf *out, const char *queue, const char *id);
/*
 * mail_queue_move - rename ID from one queue to another, then fsync both
 * directories: the move survives a crash of the machine. For moves that
 * record an administrator's decision (hold, release), set mail aside
 * (corrupt) or leave a queue nobody scans again.
 */
int mail_queue_move(const char *id, const char *from, const char *to);
/*
 * mail_queue_move_recoverable - the same rename without the directory
 * fsyncs. Only for moves whose loss in a crash leaves an already durable
 * file in a queue that is scanned again, so the move is simply redone
 * (qmgr: incoming or deferred -> active, active -> deferred or incoming;
 * qmgr recovers active/ and scans incoming/ and deferred/ when it starts).
 */
int mail_queue_move_recoverable(const char *id, const char *from, const char *to);
/*
 * mail_queue_retire - a finished message leaves the queue: its file is
 * moved into recycle/ under a free slot name (never replacing one), for
 * cleanup to reuse, or removed when recycling is off (queue_recycle_limit
 * = 0) or the slots tried are taken. 0, or -1 with errno (ENOENT: gone).
 */
int mail_queue_retire(const char *queue, const char *id);
/*
 * mail_queue_reuse - claim a file from recycle/ by renaming it to path
 * (a new temporary name); returns it open read-write, or -1 when there is
 * none to take. A claimed file that is not a plain file of ours with one
 * link, or that another process still has open, is removed, never used.
 * The file taken gets the current time as its atime and mtime.
 */
int mail_queue_reuse(const char *path);
/* mail_queue_scan - call fn for every ID in queue (walks hash levels) */
int mail_queue_scan(const char *queue, void (*fn)(const char *queue, const char *id, void *ctx), void *ctx);
/*
 * mail_queue_setup - create or repair the layout under queue_directory with
 * owners and modes (root: mail_owner owns the queues, the setgid group may
 * only write maildrop/ and use public/). Reports problems in why.
 */
int mail_queue_setup(const char *queue_dir, uid_t owner, gid_t owner_gid, gid_t setgid_gid, vbuf *why);

#endif
