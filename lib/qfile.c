/*
 * qfile - the queue file: writer, strict reader, in-place status slots.
 *
 * Offers the interface of qfile.h. The writer creates the file under a
 * temporary name (never a valid queue ID, so queue scans skip it) in the
 * destination queue directory, takes the queue ID from the creation time and
 * the file's inode, writes records through a buffer, and on qfile_finish
 * fills the size slot, writes the end marker, fsyncs, renames the file to
 * its ID without replacing anything, and fsyncs the directory. Only then is
 * the message in the queue. qfile_create_reuse takes a retired file from
 * recycle/ instead of creating one (mail_queue_reuse), writes over it from
 * the start and truncates it to the new length before the fsync.
 *
 * The reader trusts nothing in the file: every record type, length, order,
 * the version, the slots, the status bytes and the end marker are checked;
 * any deviation is an error with a description, never a crash.
 *
 * Fault injection: with KITE_FAULT_WRITES=N in the environment (ignored in
 * set-id programs) the writer aborts before its (N+1)th write operation
 * (write, pwrite, ftruncate, fsync, rename), and writes every record piece with its own
 * write call, so a test can stop it at every point of a file's creation.
 * With KITE_FAULT_MARKS=[PROG:]N (read when a file is opened for marking;
 * with PROG only in that program, the last part of the log tag) a process
 * aborts at its (N+1)th marking step: before a status byte or slot write,
 * before a sync of the file, after a sync returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "mail_queue.h"
#include "msg.h"
#include "mymalloc.h"
#include "qfile.h"
#include "strutil.h"

#define QFILE_HDR_LEN 5 /* type + 4-byte length */
#define QFILE_SLOT_DIGITS 20
#define QFILE_WBUF_FLUSH (64 * 1024) /* write when this much is pending */
#define QFILE_CHUNK (64 * 1024)      /* content record size the writer aims for */

/* ---- fault injection ---------------------------------------------------- */

static long qfile_fault_limit = -1; /* -1: off */
static long qfile_fault_count;      /* write operations so far, per process */

/* qfile_fault_load - (re)read KITE_FAULT_WRITES; done for every new file */
static void qfile_fault_load(void)
{
    const char *v = secure_getenv("KITE_FAULT_WRITES");
    long n;

    qfile_fault_limit = (v && str_to_long(v, &n) == 0 && n >= 0) ? n : -1;
}

/* qfile_fault_point - count one write operation; abort when the budget is spent */
static void qfile_fault_point(void)
{
    if (qfile_fault_limit < 0)
        return;
    if (qfile_fault_count >= qfile_fault_limit)
        abort();
    qfile_fault_count++;
}

/* qfile_fault_active - is fault injection on (write record pieces separately) */
static int qfile_fault_active(void)
{
    return qfile_fault_limit >= 0;
}

static long qfile_mark_fault_limit = -1; /* -1: off */
static long qfile_mark_fault_count;      /* marking steps so far, per process */

/* qfile_mark_fault_load - (re)read KITE_FAULT_MARKS when a file is opened for marking */
static void qfile_mark_fault_load(void)
{
    const char *v = secure_getenv("KITE_FAULT_MARKS");
    const char *colon, *tag, *prog;
    long n;

    qfile_mark_fault_limit = -1;
    if (v == NULL)
        return;
    if ((colon = strchr(v, ':')) != NULL) {
        tag = msg_tag();
        prog = tag ? strrchr(tag, '/') : NULL;
        prog = prog ? prog + 1 : tag;
        if (prog == NULL || strlen(prog) != (size_t) (colon - v) || strncmp(prog, v, (size_t) (colon - v)) != 0)
            return;
        v = colon + 1;
    }
    if (str_to_long(v, &n) == 0 && n >= 0)
        qfile_mark_fault_limit = n;
}

/* qfile_mark_fault_point - count one marking step; abort when the budget is spent */
static void qfile_mark_fault_point(void)
{
    if (qfile_mark_fault_limit < 0)
        return;
    if (qfile_mark_fault_count >= qfile_mark_fault_limit)
        abort();
    qfile_mark_fault_count++;
}

/* ---- writer ------------------------------------------------------------- */

enum qw_state { QW_ENVELOPE, QW_CONTENT, QW_TRAILER, QW_FAILED };

struct qfile_writer {
    int fd;
    char id[QUEUE_ID_SIZE];
    char *queue; /* where the file goes */
    char *tmp_path;
    enum qw_state state;
    off_t off;                  /* logical end of file, incl. pending */
    off_t size_slot, warn_slot; /* offsets of the slot digits */
    long long content_size;
    long long warn_time;
    vbuf out;   /* pending output */
    vbuf chunk; /* pending content */
    int saved_errno;
    const char *failed_op;
    int reused; /* a retired file: old bytes may follow ours until the truncate */
};

/* qw_full_write - write all of data at the current position */
static int qw_full_write(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n;

        qfile_fault_point();
        n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        len -= (size_t) n;
    }
    return 0;
}

/* qw_full_pwrite - write all of data at offset off */
static int qw_full_pwrite(int fd, const char *data, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t n;

        qfile_fault_point();
        n = pwrite(fd, data, len, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        len -= (size_t) n;
        off += n;
    }
    return 0;
}

/* qw_fail - remember the first failure; the writer refuses everything after */
static int qw_fail(qfile_writer *w, const char *op)
{
    if (w->state != QW_FAILED) {
        w->saved_errno = errno;
        w->failed_op = op;
        w->state = QW_FAILED;
    }
    return -1;
}

/* qw_flush - write the pending output buffer */
static int qw_flush(qfile_writer *w)
{
    if (w->out.len == 0)
        return 0;
    if (qw_full_write(w->fd, w->out.data, w->out.len) < 0)
        return qw_fail(w, "write");
    vbuf_reset(&w->out);
    return 0;
}

/* qw_emit - append one record (header + data) to the output */
static int qw_emit(qfile_writer *w, int type, const void *data, size_t len)
{
    unsigned char hdr[QFILE_HDR_LEN];

    if (w->state == QW_FAILED)
        return -1;
    if (len > QFILE_MAX_RECORD) {
        errno = EFBIG;
        return qw_fail(w, "record too long");
    }
    hdr[0] = (unsigned char) type;
    hdr[1] = (unsigned char) (len >> 24);
    hdr[2] = (unsigned char) (len >> 16);
    hdr[3] = (unsigned char) (len >> 8);
    hdr[4] = (unsigned char) len;
    if (vbuf_append(&w->out, hdr, sizeof(hdr)) < 0)
        return qw_fail(w, "buffer");
    if (qfile_fault_active() && qw_flush(w) < 0)
        return -1;
    if (len > 0 && vbuf_append(&w->out, data, len) < 0)
        return qw_fail(w, "buffer");
    w->off += (off_t) (QFILE_HDR_LEN + len);
    if ((qfile_fault_active() || w->out.len >= QFILE_WBUF_FLUSH) && qw_flush(w) < 0)
        return -1;
    return 0;
}

/* qw_emit_slot - a 20-digit slot record; remembers where the digits are */
static int qw_emit_slot(qfile_writer *w, int type, long long value, off_t *where)
{
    char digits[QFILE_SLOT_DIGITS + 1];

    snprintf(digits, sizeof(digits), "%020lld", value < 0 ? 0 : value);
    *where = w->off + QFILE_HDR_LEN;
    return qw_emit(w, type, digits, QFILE_SLOT_DIGITS);
}

/* qw_create - a new writer in queue; reuse: take a retired file if there is one */
static qfile_writer *qw_create(const char *queue, mode_t mode, int reuse, vbuf *err)
{
    static unsigned long seq;
    qfile_writer *w;
    struct timeval tv;
    struct stat st;
    vbuf path;
    int fd = -1;
    int reused = 0;

    qfile_fault_load();
    vbuf_init(&path, 0);
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        if (gettimeofday(&tv, NULL) < 0) {
            vbuf_printf(err, "gettimeofday: %s", strerror(errno));
            vbuf_release(&path);
            return NULL;
        }
        vbuf_reset(&path);
        /* Not a valid queue ID (lowercase, dots): scans never pick it up. */
        vbuf_printf(&path, "%s/.tmp.%ld.%ld.%lu", queue, (long) getpid(), (long) tv.tv_usec, seq++);
        if (reuse && attempt == 0 && (fd = mail_queue_reuse(path.data)) >= 0) {
            reused = 1;
            break;
        }
        fd = open(path.data, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0 && errno != EEXIST) {
            vbuf_printf(err, "create %s: %s", path.data, strerror(errno));
            vbuf_release(&path);
            return NULL;
        }
    }
    if (fd < 0) {
        vbuf_printf(err, "create %s: too many collisions", path.data);
        vbuf_release(&path);
        return NULL;
    }
    if (fstat(fd, &st) < 0) {
        vbuf_printf(err, "fstat %s: %s", path.data, strerror(errno));
        (void) unlink(path.data);
        (void) close(fd);
        vbuf_release(&path);
        return NULL;
    }
    /* The mode given to open() is reduced by the umask; queue files need exactly this. */
    if ((st.st_mode & 07777) != mode && fchmod(fd, mode) < 0) {
        vbuf_printf(err, "fchmod %s: %s", path.data, strerror(errno));
        (void) unlink(path.data);
        (void) close(fd);
        vbuf_release(&path);
        return NULL;
    }
    w = xcalloc(1, sizeof(*w));
    w->fd = fd;
    w->reused = reused;
    queue_id_make(w->id, tv.tv_sec, (long) tv.tv_usec, st.st_ino);
    w->queue = xstrdup(queue);
    w->tmp_path = vbuf_steal(&path);
    vbuf_release(&path);
    w->state = QW_ENVELOPE;
    vbuf_init(&w->out, 0);
    vbuf_init(&w->chunk, 0);
    if (qw_emit(w, 'V', QFILE_VERSION, strlen(QFILE_VERSION)) < 0 || qw_emit_slot(w, 'Z', 0, &w->size_slot) < 0 ||
        qw_emit_slot(w, 'W', 0, &w->warn_slot) < 0) {
        vbuf_printf(err, "write %s: %s", w->tmp_path, strerror(w->saved_errno));
        qfile_abort(w);
        return NULL;
    }
    return w;
}

/* qfile_create_mode - qfile_create with a chosen file mode (maildrop: 0644) */
qfile_writer *qfile_create_mode(const char *queue, mode_t mode, vbuf *err)
{
    return qw_create(queue, mode, 0, err);
}

/* qfile_create_reuse - qfile_create, reusing a retired file when there is one */
qfile_writer *qfile_create_reuse(const char *queue, vbuf *err)
{
    return qw_create(queue, 0600, 1, err);
}

/* qfile_create - start a new queue file (mode 0600) in queue */
qfile_writer *qfile_create(const char *queue, vbuf *err)
{
    return qfile_create_mode(queue, 0600, err);
}

/* qfile_writer_id - the queue ID the file will have */
const char *qfile_writer_id(const qfile_writer *w)
{
    return w->id;
}

/* qfile_writer_set_queue - change the queue the finished file goes to (same file system) */
void qfile_writer_set_queue(qfile_writer *w, const char *queue)
{
    xfree(w->queue);
    w->queue = xstrdup(queue);
}

/* qf_valid_attr_name - [a-z0-9_]+ */
static int qf_valid_attr_name(const char *name, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

/* qf_clean_text - no NUL, CR or LF in a text field */
static int qf_clean_text(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (text[i] == 0 || text[i] == '\r' || text[i] == '\n')
            return 0;
    return 1;
}

/* qfile_put_attr - one envelope attribute "name=value" (before the content) */
int qfile_put_attr(qfile_writer *w, const char *name, const char *value)
{
    vbuf rec;
    int ret;

    if (w->state == QW_FAILED)
        return -1;
    if (w->state != QW_ENVELOPE || !qf_valid_attr_name(name, strlen(name)) || !qf_clean_text(value, strlen(value))) {
        errno = EINVAL;
        return -1;
    }
    vbuf_init(&rec, QFILE_MAX_RECORD);
    if (vbuf_printf(&rec, "%s=%s", name, value) < 0) {
        vbuf_release(&rec);
        errno = EFBIG;
        return -1;
    }
    ret = qw_emit(w, 'A', rec.data, rec.len);
    vbuf_release(&rec);
    return ret;
}

/* qw_flush_chunk - turn the pending content into a 'C' record */
static int qw_flush_chunk(qfile_writer *w)
{
    int ret = 0;

    if (w->chunk.len > 0)
        ret = qw_emit(w, 'C', w->chunk.data, w->chunk.len);
    vbuf_reset(&w->chunk);
    return ret;
}

/* qfile_put_rcpt - one recipient group; after the content it ends the content */
int qfile_put_rcpt(qfile_writer *w, const char *address, const char *orcpt, const char *orig, int notify)
{
    vbuf rec;
    size_t alen = strlen(address);
    int ret;

    if (w->state == QW_FAILED)
        return -1;
    if (alen == 0 || alen >= QFILE_MAX_RECORD || !qf_clean_text(address, alen) ||
        (orcpt && (strlen(orcpt) > QFILE_MAX_RECORD || !qf_clean_text(orcpt, strlen(orcpt)) || !*orcpt)) ||
        (orig && (strlen(orig) > QFILE_MAX_RECORD || !qf_clean_text(orig, strlen(orig)) || !*orig)) || notify < 0 ||
        notify > 15 || ((notify & QF_NOTIFY_NEVER) && notify != QF_NOTIFY_NEVER)) {
        errno = EINVAL;
        return -1;
    }
    if (w->state == QW_CONTENT) {
        if (qw_flush_chunk(w) < 0)
            return -1;
        w->state = QW_TRAILER;
    }
    if (orcpt && qw_emit(w, 'O', orcpt, strlen(orcpt)) < 0)
        return -1;
    if (orig && strcmp(orig, address) != 0 && qw_emit(w, 'F', orig, strlen(orig)) < 0)
        return -1;
    if (notify) {
        char num[8];

        snprintf(num, sizeof(num), "%d", notify);
        if (qw_emit(w, 'N', num, strlen(num)) < 0)
            return -1;
    }
    vbuf_init(&rec, 0);
    vbuf_putc(&rec, '-');
    vbuf_append(&rec, address, alen);
    ret = qw_emit(w, 'R', rec.data, rec.len);
    vbuf_release(&rec);
    return ret;
}

/* qfile_put_warn_time - set the delay warning slot (written at finish) */
int qfile_put_warn_time(qfile_writer *w, long long when)
{
    if (w->state == QW_FAILED)
        return -1;
    if (when < 0) {
        errno = EINVAL;
        return -1;
    }
    w->warn_time = when;
    return 0;
}

/* qfile_put_content - append message content (coalesced into records) */
int qfile_put_content(qfile_writer *w, const void *data, size_t len)
{
    const char *p = data;

    if (w->state == QW_FAILED)
        return -1;
    if (w->state == QW_TRAILER) {
        errno = EINVAL;
        return -1;
    }
    if (w->state == QW_ENVELOPE) {
        if (qw_emit(w, 'M', "", 0) < 0)
            return -1;
        w->state = QW_CONTENT;
    }
    while (len > 0) {
        size_t room = QFILE_CHUNK - w->chunk.len;
        size_t n = len < room ? len : room;

        if (vbuf_append(&w->chunk, p, n) < 0)
            return qw_fail(w, "buffer");
        w->content_size += (long long) n;
        p += n;
        len -= n;
        if (w->chunk.len >= QFILE_CHUNK && qw_flush_chunk(w) < 0)
            return -1;
    }
    return 0;
}

/* qw_fsync - fsync with fault accounting */
static int qw_fsync(int fd)
{
    qfile_fault_point();
    return fsync(fd);
}

/* qf_rename_noreplace - rename, failing with EEXIST rather than replacing */
static int qf_rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    /* File systems without RENAME_NOREPLACE: link() refuses to replace too. */
    if (link(from, to) < 0)
        return -1;
    if (unlink(from) < 0) {
        int saved = errno;

        (void) unlink(to);
        errno = saved;
        return -1;
    }
    return 0;
}

/* qf_make_parents - missing hash directories between queue and path; 0 or -1 */
static int qf_make_parents(const char *path, const char *queue)
{
    char *copy = xstrdup(path);
    int ret = 0;

    for (char *p = copy + strlen(queue) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = 0;
        if (mkdir(copy, 0700) < 0 && errno != EEXIST)
            ret = -1;
        *p = '/';
    }
    xfree(copy);
    if (ret == 0) {
        int dfd = open(queue, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (dfd >= 0) {
            (void) fsync(dfd);
            (void) close(dfd);
        }
    }
    return ret;
}

/* qfile_finish - size slot, end marker, fsync, rename to ID, fsync dir */
int qfile_finish(qfile_writer *w, vbuf *err)
{
    char digits[QFILE_SLOT_DIGITS + 1];
    vbuf final;
    int dfd;
    int dir_errno;

    if (w->state == QW_ENVELOPE && qw_emit(w, 'M', "", 0) == 0)
        w->state = QW_CONTENT;
    if (w->state == QW_CONTENT && qw_flush_chunk(w) == 0)
        w->state = QW_TRAILER;
    if (w->state == QW_TRAILER)
        (void) qw_emit(w, 'E', "", 0);
    if (w->state != QW_FAILED)
        (void) qw_flush(w);
    if (w->state != QW_FAILED) {
        snprintf(digits, sizeof(digits), "%020lld", w->content_size);
        if (qw_full_pwrite(w->fd, digits, QFILE_SLOT_DIGITS, w->size_slot) < 0)
            (void) qw_fail(w, "pwrite");
    }
    if (w->state != QW_FAILED && w->warn_time > 0) {
        snprintf(digits, sizeof(digits), "%020lld", w->warn_time);
        if (qw_full_pwrite(w->fd, digits, QFILE_SLOT_DIGITS, w->warn_slot) < 0)
            (void) qw_fail(w, "pwrite");
    }
    if (w->state != QW_FAILED && w->reused) {
        /* The old file's bytes past our end go; nothing of it is left to read. */
        qfile_fault_point();
        if (ftruncate(w->fd, w->off) < 0)
            (void) qw_fail(w, "ftruncate");
    }
    if (w->state != QW_FAILED && qw_fsync(w->fd) < 0)
        (void) qw_fail(w, "fsync");
    if (w->state == QW_FAILED) {
        vbuf_printf(err, "%s: %s %s: %s", w->id, w->failed_op, w->tmp_path, strerror(w->saved_errno));
        qfile_abort(w);
        return -1;
    }
    vbuf_init(&final, 0);
    mail_queue_path(&final, w->queue, w->id); /* hashed when hash_queue_names says so */
    qfile_fault_point();
    /* Never replace an existing file: an ID names exactly one message. */
    if (qf_rename_noreplace(w->tmp_path, final.data) < 0 &&
        (errno != ENOENT || qf_make_parents(final.data, w->queue) < 0 ||
         qf_rename_noreplace(w->tmp_path, final.data) < 0)) {
        vbuf_printf(err, "%s: rename %s to %s: %s", w->id, w->tmp_path, final.data, strerror(errno));
        vbuf_release(&final);
        qfile_abort(w);
        return -1;
    }
    /* The directory that now holds the name is the one to sync. */
    *strrchr(final.data, '/') = 0;
    dfd = open(final.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    dir_errno = errno;
    vbuf_release(&final);
    if (dfd < 0 && dir_errno == EACCES) {
        /*
         * maildrop/ is write-only for the submitting group (mode 1730), so
         * kitedrop cannot open it to sync the new name. The file itself is
         * synced; as with Postfix's postdrop, the entry is left to the file
         * system, and pickup finds the file once it is there.
         */
    } else if (dfd < 0 || qw_fsync(dfd) < 0) {
        errno = dfd < 0 ? dir_errno : errno;
        /* The file is renamed but not known to be durable: report failure,
         * leaving the file (it is complete and valid; a later scan finds it). */
        vbuf_printf(err, "%s: fsync directory %s: %s", w->id, w->queue, strerror(errno));
        if (dfd >= 0)
            (void) close(dfd);
        (void) close(w->fd);
        w->fd = -1;
        xfree(w->tmp_path);
        w->tmp_path = NULL;
        qfile_abort(w);
        return -1;
    }
    if (dfd >= 0)
        (void) close(dfd);
    if (close(w->fd) < 0) {
        w->fd = -1;
        vbuf_printf(err, "%s: close: %s", w->id, strerror(errno));
        xfree(w->tmp_path);
        w->tmp_path = NULL;
        qfile_abort(w);
        return -1;
    }
    w->fd = -1;
    xfree(w->tmp_path);
    w->tmp_path = NULL;
    qfile_abort(w);
    return 0;
}

/* qfile_abort - remove the temporary file and free the writer */
void qfile_abort(qfile_writer *w)
{
    if (w == NULL)
        return;
    if (w->tmp_path) {
        if (unlink(w->tmp_path) < 0 && errno != ENOENT)
            msg_warn("qfile: remove %s: %m", w->tmp_path);
        xfree(w->tmp_path);
    }
    if (w->fd >= 0)
        (void) close(w->fd);
    xfree(w->queue);
    vbuf_release(&w->out);
    vbuf_release(&w->chunk);
    xfree(w);
}

/* ---- reader ------------------------------------------------------------- */

typedef struct qf_reader {
    int fd;
    off_t off; /* next byte to read */
    off_t file_size;
    off_t buf_off; /* file offset of buf[0] */
    size_t buf_len;
    unsigned char buf[16384];
} qf_reader;

/* qf_read - exactly n bytes at r->off; -1 with errno 0 at EOF */
static int qf_read(qf_reader *r, void *dst, size_t n)
{
    unsigned char *d = dst;

    while (n > 0) {
        if (r->off >= r->buf_off && r->off < r->buf_off + (off_t) r->buf_len) {
            size_t at = (size_t) (r->off - r->buf_off);
            size_t k = r->buf_len - at;

            if (k > n)
                k = n;
            memcpy(d, r->buf + at, k);
            d += k;
            n -= k;
            r->off += (off_t) k;
        } else {
            ssize_t k = pread(r->fd, r->buf, sizeof(r->buf), r->off);

            if (k < 0) {
                if (errno == EINTR)
                    continue;
                return -1;
            }
            if (k == 0) {
                errno = 0;
                return -1;
            }
            r->buf_off = r->off;
            r->buf_len = (size_t) k;
        }
    }
    return 0;
}

/* qf_parse_slot - exactly 20 decimal digits */
static int qf_parse_slot(const char *data, size_t len, long long *out)
{
    long long v = 0;

    if (len != QFILE_SLOT_DIGITS)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (data[i] < '0' || data[i] > '9')
            return -1;
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (data[i] - '0');
    }
    *out = v;
    return 0;
}

/* qf_error - format the reason a file is refused */
static void qf_error(vbuf *err, const char *path, off_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void qf_error(vbuf *err, const char *path, off_t off, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    vbuf_printf(err, "%s: offset %lld: ", path, (long long) off);
    va_start(ap, fmt);
    vbuf_vprintf(err, fmt, ap);
    va_end(ap);
}

/* qf_add_rcpt - append a recipient to the file's list */
static void qf_add_rcpt(qfile *q, size_t *cap, char *addr, char *orcpt, char *orig, int notify, int done, off_t slot)
{
    qfile_rcpt *r;

    if (q->nrcpt == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        q->rcpts = xreallocarray(q->rcpts, *cap, sizeof(*q->rcpts));
    }
    r = q->rcpts + q->nrcpt++;
    r->address = addr;
    r->orcpt = orcpt;
    r->orig = orig;
    r->notify = notify;
    r->done = done;
    r->slot = slot;
}

enum qf_phase { QF_VERSION, QF_SIZE, QF_WARN, QF_ENVELOPE, QF_CONTENT, QF_TRAILER, QF_END };

/* qf_parse - read and validate the whole file structure (file_size octets) into q */
static int qf_parse(qfile *q, const char *path, off_t file_size, vbuf *err)
{
    qf_reader *r = xcalloc(1, sizeof(*r));
    enum qf_phase phase = QF_VERSION;
    size_t rcpt_cap = 0, attr_cap = 0;
    char *g_orcpt = NULL, *g_orig = NULL;
    int g_notify = 0, g_seen = 0; /* bits: 1 O, 2 F, 4 N */
    long long content_bytes = 0;
    vbuf data;
    int ret = -1;

    vbuf_init(&data, QFILE_MAX_RECORD);
    r->fd = q->fd;
    r->file_size = file_size;

    while (phase != QF_END) {
        unsigned char hdr[QFILE_HDR_LEN];
        off_t rec_off = r->off;
        size_t len;
        int type;

        if (qf_read(r, hdr, sizeof(hdr)) < 0) {
            if (errno)
                qf_error(err, path, rec_off, "read: %s", strerror(errno));
            else if (r->off == rec_off)
                qf_error(err, path, rec_off, "missing end marker (truncated file)");
            else
                qf_error(err, path, rec_off, "truncated record header");
            goto out;
        }
        type = hdr[0];
        len = ((size_t) hdr[1] << 24) | ((size_t) hdr[2] << 16) | ((size_t) hdr[3] << 8) | hdr[4];
        if (len > QFILE_MAX_RECORD) {
            qf_error(err, path, rec_off, "record '%c' length %zu exceeds %d", type >= 32 && type < 127 ? type : '?',
                     len, QFILE_MAX_RECORD);
            goto out;
        }
        if ((off_t) len > r->file_size - r->off) {
            qf_error(err, path, rec_off, "truncated record (length %zu, %lld bytes left)", len,
                     (long long) (r->file_size - r->off));
            goto out;
        }
        /* Content is skipped, not read: only its size matters here. */
        if (type == 'C') {
            if (phase != QF_CONTENT || g_seen) {
                qf_error(err, path, rec_off, "content record out of place");
                goto out;
            }
            if (len == 0) {
                qf_error(err, path, rec_off, "empty content record");
                goto out;
            }
            if (q->content_start == 0)
                q->content_start = rec_off;
            content_bytes += (long long) len;
            r->off += (off_t) len;
            continue;
        }
        vbuf_reset(&data);
        if (vbuf_reserve(&data, len) < 0 || qf_read(r, data.data, len) < 0) {
            qf_error(err, path, rec_off, "read: %s", errno ? strerror(errno) : "truncated record");
            goto out;
        }
        data.len = len;
        data.data[len] = 0;

        switch (type) {
        case 'V':
            if (phase != QF_VERSION) {
                qf_error(err, path, rec_off, "version record out of place");
                goto out;
            }
            if (len != strlen(QFILE_VERSION) || memcmp(data.data, QFILE_VERSION, len) != 0) {
                qf_error(err, path, rec_off, "unsupported version");
                goto out;
            }
            phase = QF_SIZE;
            break;
        case 'Z':
            if (phase != QF_SIZE || qf_parse_slot(data.data, len, &q->size) < 0) {
                qf_error(err, path, rec_off, phase != QF_SIZE ? "size record out of place" : "bad size slot");
                goto out;
            }
            phase = QF_WARN;
            break;
        case 'W':
            if (phase != QF_WARN || qf_parse_slot(data.data, len, &q->warn_time) < 0) {
                qf_error(err, path, rec_off, phase != QF_WARN ? "warn record out of place" : "bad warn slot");
                goto out;
            }
            q->warn_slot = rec_off + QFILE_HDR_LEN;
            phase = QF_ENVELOPE;
            break;
        case 'A': {
            char *eq = memchr(data.data, '=', len);

            if (phase != QF_ENVELOPE || g_seen) {
                qf_error(err, path, rec_off, "attribute record out of place");
                goto out;
            }
            if (eq == NULL || !qf_valid_attr_name(data.data, (size_t) (eq - data.data)) ||
                !qf_clean_text(data.data, len)) {
                qf_error(err, path, rec_off, "malformed attribute");
                goto out;
            }
            *eq = 0;
            if (qfile_attr(q, data.data) != NULL) {
                qf_error(err, path, rec_off, "duplicate attribute %s", data.data);
                goto out;
            }
            if (q->nattr == attr_cap) {
                attr_cap = attr_cap ? attr_cap * 2 : 16;
                q->attr_names = xreallocarray(q->attr_names, attr_cap, sizeof(char *));
                q->attr_values = xreallocarray(q->attr_values, attr_cap, sizeof(char *));
            }
            q->attr_names[q->nattr] = xstrdup(data.data);
            q->attr_values[q->nattr] = xstrdup(eq + 1);
            q->nattr++;
            break;
        }
        case 'O':
        case 'F':
        case 'N': {
            int bit = type == 'O' ? 1 : type == 'F' ? 2 : 4;

            if (phase < QF_ENVELOPE || g_seen >= bit) {
                qf_error(err, path, rec_off, "recipient record '%c' out of place", type);
                goto out;
            }
            if (len == 0 || !qf_clean_text(data.data, len)) {
                qf_error(err, path, rec_off, "malformed recipient record '%c'", type);
                goto out;
            }
            if (type == 'N') {
                long n;

                if (str_to_long(data.data, &n) < 0 || n < 1 || n > 15 ||
                    ((n & QF_NOTIFY_NEVER) && n != QF_NOTIFY_NEVER)) {
                    qf_error(err, path, rec_off, "bad notify flags");
                    goto out;
                }
                g_notify = (int) n;
            } else if (type == 'O') {
                g_orcpt = xstrdup(data.data);
            } else {
                g_orig = xstrdup(data.data);
            }
            g_seen |= bit;
            break;
        }
        case 'R':
            if (phase < QF_ENVELOPE) {
                qf_error(err, path, rec_off, "recipient out of place");
                goto out;
            }
            if (len < 2 || (data.data[0] != '-' && data.data[0] != 'D') || !qf_clean_text(data.data, len)) {
                qf_error(err, path, rec_off, "malformed recipient");
                goto out;
            }
            qf_add_rcpt(q, &rcpt_cap, xstrdup(data.data + 1), g_orcpt, g_orig, g_notify, data.data[0] == 'D',
                        rec_off + QFILE_HDR_LEN);
            g_orcpt = g_orig = NULL;
            g_notify = g_seen = 0;
            if (phase == QF_CONTENT)
                phase = QF_TRAILER;
            break;
        case 'M':
            if (phase != QF_ENVELOPE || g_seen || len != 0) {
                qf_error(err, path, rec_off, "content marker out of place");
                goto out;
            }
            phase = QF_CONTENT;
            break;
        case 'E':
            if ((phase != QF_CONTENT && phase != QF_TRAILER) || g_seen || len != 0) {
                qf_error(err, path, rec_off, "end marker out of place");
                goto out;
            }
            if (r->off != r->file_size) {
                qf_error(err, path, r->off, "data after the end marker");
                goto out;
            }
            if (q->content_start == 0)
                q->content_start = rec_off;
            phase = QF_END;
            break;
        default:
            qf_error(err, path, rec_off, "unknown record type 0x%02x", (unsigned) type);
            goto out;
        }
    }
    if (content_bytes != q->size) {
        qf_error(err, path, 0, "size slot says %lld, content has %lld bytes", q->size, content_bytes);
        goto out;
    }
    ret = 0;
out:
    xfree(g_orcpt);
    xfree(g_orig);
    vbuf_release(&data);
    xfree(r);
    return ret;
}

/* qfile_open - open a queue file and validate everything but the content */
qfile *qfile_open(const char *path, int flags, vbuf *err)
{
    const char *base = strrchr(path, '/');
    struct stat st;
    qfile *q;
    int fd;

    fd = open(path, ((flags & QFILE_RDWR) ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        vbuf_printf(err, "open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        vbuf_printf(err, "%s: not a regular file", path);
        (void) close(fd);
        return NULL;
    }
    if (flags & QFILE_RDWR)
        qfile_mark_fault_load();
    q = xcalloc(1, sizeof(*q));
    q->fd = fd;
    base = base ? base + 1 : path;
    if (queue_id_valid(base))
        snprintf(q->id, sizeof(q->id), "%s", base);
    if (qf_parse(q, path, st.st_size, err) < 0) {
        qfile_close(q);
        return NULL;
    }
    return q;
}

/* qfile_close - free everything and close the file */
void qfile_close(qfile *q)
{
    if (q == NULL)
        return;
    if (q->fd >= 0)
        (void) close(q->fd);
    for (size_t i = 0; i < q->nattr; i++) {
        xfree(q->attr_names[i]);
        xfree(q->attr_values[i]);
    }
    xfree(q->attr_names);
    xfree(q->attr_values);
    for (size_t i = 0; i < q->nrcpt; i++) {
        xfree(q->rcpts[i].address);
        xfree(q->rcpts[i].orcpt);
        xfree(q->rcpts[i].orig);
    }
    xfree(q->rcpts);
    xfree(q);
}

/* qfile_attr - the value of an envelope attribute, NULL if absent */
const char *qfile_attr(const qfile *q, const char *name)
{
    for (size_t i = 0; i < q->nattr; i++)
        if (strcmp(q->attr_names[i], name) == 0)
            return q->attr_values[i];
    return NULL;
}

/* qfile_mark_done - rewrite a recipient's status byte to 'D'; fsync if sync */
int qfile_mark_done(qfile *q, size_t index, int sync)
{
    if (index >= q->nrcpt) {
        errno = EINVAL;
        return -1;
    }
    qfile_mark_fault_point();
    for (;;) {
        ssize_t n = pwrite(q->fd, "D", 1, q->rcpts[index].slot);

        if (n == 1)
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n >= 0)
            errno = EIO;
        return -1;
    }
    q->rcpts[index].done = 1;
    return sync ? qfile_sync(q) : 0;
}

/* qfile_set_warn_time - rewrite the delay warning slot (0 = none or sent) */
int qfile_set_warn_time(qfile *q, long long when)
{
    char digits[QFILE_SLOT_DIGITS + 1];
    size_t done = 0;

    if (when < 0 || q->warn_slot == 0) {
        errno = EINVAL;
        return -1;
    }
    snprintf(digits, sizeof(digits), "%020lld", when);
    qfile_mark_fault_point();
    while (done < QFILE_SLOT_DIGITS) {
        ssize_t n = pwrite(q->fd, digits + done, QFILE_SLOT_DIGITS - done, q->warn_slot + (off_t) done);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        done += (size_t) n;
    }
    q->warn_time = when;
    return 0;
}

/* qfile_sync - fsync the file */
int qfile_sync(qfile *q)
{
    int ret;

    qfile_mark_fault_point();
    ret = fsync(q->fd);
    qfile_mark_fault_point();
    return ret;
}

/*
 * qfile_sync_data - fdatasync the file: enough after in-place slot rewrites,
 * which change neither the size nor the blocks (only the times, which need
 * not survive a crash).
 */
int qfile_sync_data(qfile *q)
{
    int ret;

    qfile_mark_fault_point();
    ret = fdatasync(q->fd);
    qfile_mark_fault_point();
    return ret;
}

/* qf_pread_all - exactly len bytes at off; -1 on error or short file */
static int qf_pread_all(int fd, void *buf, size_t len, off_t off)
{
    char *p = buf;

    while (len > 0) {
        ssize_t n = pread(fd, p, len, off);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        p += n;
        len -= (size_t) n;
        off += n;
    }
    return 0;
}

/* qfile_content_begin - iterate over the content from the first chunk */
void qfile_content_begin(qfile *q, qfile_content *it)
{
    it->q = q;
    it->pos = q->content_start;
    it->done = q->content_start == 0;
    vbuf_init(&it->chunk, 0);
}

/* qfile_content_next - the next chunk: bytes (>0), 0 at the end, -1 on error */
ssize_t qfile_content_next(qfile_content *it, const char **data)
{
    unsigned char hdr[QFILE_HDR_LEN];
    size_t len;

    if (it->done)
        return 0;
    if (qf_pread_all(it->q->fd, hdr, sizeof(hdr), it->pos) < 0)
        return -1;
    if (hdr[0] != 'C') {
        it->done = 1;
        return 0;
    }
    len = ((size_t) hdr[1] << 24) | ((size_t) hdr[2] << 16) | ((size_t) hdr[3] << 8) | hdr[4];
    /* Checked at open; checked again in case the file changed since. */
    if (len == 0 || len > QFILE_MAX_RECORD) {
        errno = EINVAL;
        return -1;
    }
    vbuf_reset(&it->chunk);
    if (vbuf_reserve(&it->chunk, len) < 0 || qf_pread_all(it->q->fd, it->chunk.data, len, it->pos + QFILE_HDR_LEN) < 0)
        return -1;
    it->chunk.len = len;
    it->chunk.data[len] = 0;
    it->pos += (off_t) (QFILE_HDR_LEN + len);
    *data = it->chunk.data;
    return (ssize_t) len;
}

/* qfile_content_end - release the iterator's buffer */
void qfile_content_end(qfile_content *it)
{
    vbuf_release(&it->chunk);
}
