/*
 * bounce_log - per-recipient status logs (bounce/ID, defer/ID, trace/ID)
 * and requests to the bounce service (see bounce_log.h).
 *
 * A log file is a sequence of records, each a 4-byte big-endian payload
 * length followed by one attr payload (attr_encode). Appends are a single
 * write() followed by fsync(); a short write is cut back off, so a record is
 * either complete or absent. The reader trusts nothing: every record must
 * decode, carry exactly the expected attributes with sane values, and the
 * file must end on a record boundary, otherwise the whole log is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "bounce_log.h"
#include "mail_queue.h"
#include "mail_server.h"
#include "msg.h"
#include "mymalloc.h"
#include "queue_id.h"
#include "stream.h"
#include "vbuf.h"

#define BOUNCE_LOG_MAX_RECORD (256 * 1024) /* one recipient's record */
#define BOUNCE_LOG_MAX_FILE (64 * 1024 * 1024)
#define BOUNCE_LOG_MAX_TEXT (64 * 1024) /* reason, diag, addresses */

/* bounce_log_dsn_ok - "X.Y.Z" with X in 2/4/5, Y and Z of 1..3 digits */
static int bounce_log_dsn_ok(const char *dsn)
{
    const char *p = dsn;
    int n;

    if (*p != '2' && *p != '4' && *p != '5')
        return 0;
    p++;
    for (int part = 0; part < 2; part++) {
        if (*p++ != '.')
            return 0;
        for (n = 0; *p >= '0' && *p <= '9'; p++)
            n++;
        if (n < 1 || n > 3)
            return 0;
    }
    return *p == 0;
}

/* bounce_log_text_ok - printable text without control characters */
static int bounce_log_text_ok(const char *s)
{
    size_t len = strlen(s);

    if (len > BOUNCE_LOG_MAX_TEXT)
        return 0;
    for (; *s; s++)
        if ((unsigned char) *s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

/* bounce_log_action_ok - one of RFC 3464 §2.3.3's action values */
static int bounce_log_action_ok(const char *a)
{
    static const char *const actions[] = {"failed", "delayed", "delivered", "relayed", "expanded"};

    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
        if (strcmp(a, actions[i]) == 0)
            return 1;
    return 0;
}

/* bounce_log_encode - one record (length prefix + payload) into out */
static void bounce_log_encode(vbuf *out, const deliver_rcpt *rcpt, const deliver_result *res, long long when)
{
    attr_list *l = attr_new();
    vbuf payload;
    unsigned char len[4];

    attr_put_int(l, "index", rcpt->index);
    attr_put_str(l, "address", rcpt->address ? rcpt->address : "");
    if (rcpt->orcpt)
        attr_put_str(l, "orcpt", rcpt->orcpt);
    if (rcpt->orig)
        attr_put_str(l, "orig", rcpt->orig);
    attr_put_int(l, "notify", rcpt->notify);
    attr_put_int(l, "status", res->status);
    attr_put_str(l, "dsn", res->dsn);
    attr_put_str(l, "action", res->action ? res->action : "");
    attr_put_str(l, "reason", res->reason ? res->reason : "");
    if (res->relay)
        attr_put_str(l, "relay", res->relay);
    if (res->remote_mta)
        attr_put_str(l, "remote_mta", res->remote_mta);
    if (res->diag)
        attr_put_str(l, "diag", res->diag);
    attr_put_int(l, "relayed_no_dsn", res->relayed_no_dsn);
    attr_put_int(l, "when", when);
    vbuf_init(&payload, 0);
    attr_encode(l, &payload);
    attr_free(l);
    len[0] = (unsigned char) (payload.len >> 24);
    len[1] = (unsigned char) (payload.len >> 16);
    len[2] = (unsigned char) (payload.len >> 8);
    len[3] = (unsigned char) payload.len;
    vbuf_reset(out);
    (void) vbuf_append(out, len, 4);
    (void) vbuf_append(out, payload.data, payload.len);
    vbuf_release(&payload);
}

/* bounce_log_mkdirs - create the missing hash subdirectories above PATH (not the queue itself) */
static int bounce_log_mkdirs(const char *path)
{
    char *copy = xstrdup(path);
    char *first = strchr(copy, '/');
    int ret = 0;

    /* "defer/A/ID": the queue directory must exist; levels below it are made here. */
    for (char *p = first ? strchr(first + 1, '/') : NULL; p && ret == 0; p = strchr(p + 1, '/')) {
        *p = 0;
        if (mkdir(copy, 0700) < 0 && errno != EEXIST)
            ret = -1;
        *p = '/';
    }
    xfree(copy);
    return ret;
}

/* bounce_log_append - add one record to LOGQUEUE/ID and fsync it; 0 or -1 */
int bounce_log_append(const char *log_queue, const char *queue_id, const deliver_rcpt *rcpt, const deliver_result *res)
{
    vbuf path, rec;
    struct stat st;
    ssize_t n;
    int fd, ret = -1;

    if (!queue_id_valid(queue_id)) {
        msg_warn("bounce_log_append: bad queue id");
        return -1;
    }
    vbuf_init(&path, 0);
    vbuf_init(&rec, 0);
    mail_queue_path(&path, log_queue, queue_id);
    bounce_log_encode(&rec, rcpt, res, (long long) time(NULL));
    if (rec.len - 4 > BOUNCE_LOG_MAX_RECORD) {
        msg_warn("%s: bounce log record for <%s> too large", queue_id, rcpt->address);
        goto out;
    }
    fd = open(vbuf_str(&path), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT && bounce_log_mkdirs(vbuf_str(&path)) == 0)
        fd = open(vbuf_str(&path), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        msg_warn("%s: open %s: %m", queue_id, vbuf_str(&path));
        goto out;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        msg_warn("%s: %s is not a regular file", queue_id, vbuf_str(&path));
        (void) close(fd);
        goto out;
    }
    do
        n = write(fd, rec.data, rec.len);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t) rec.len) {
        msg_warn("%s: write %s: %m", queue_id, vbuf_str(&path));
        if (ftruncate(fd, st.st_size) < 0)
            msg_warn("%s: truncate %s: %m", queue_id, vbuf_str(&path));
    } else if (fsync(fd) < 0) {
        msg_warn("%s: fsync %s: %m", queue_id, vbuf_str(&path));
    } else {
        ret = 0;
    }
    if (close(fd) < 0 && ret == 0) {
        msg_warn("%s: close %s: %m", queue_id, vbuf_str(&path));
        ret = -1;
    }
out:
    vbuf_release(&path);
    vbuf_release(&rec);
    return ret;
}

/* bounce_log_entry_free - release one entry's strings */
static void bounce_log_entry_free(bounce_log_entry *e)
{
    xfree(e->rcpt.address);
    xfree(e->rcpt.orcpt);
    xfree(e->rcpt.orig);
    xfree(e->result.action);
    xfree(e->result.reason);
    xfree(e->result.relay);
    xfree(e->result.remote_mta);
    xfree(e->result.diag);
    memset(e, 0, sizeof(*e));
}

/* bounce_log_parse_record - decode and validate one payload; 0 or -1 */
static int bounce_log_parse_record(const void *payload, size_t len, bounce_log_entry *e)
{
    attr_list *l = attr_new();
    const char *address = NULL, *orcpt = NULL, *orig = NULL, *dsn = NULL, *action = NULL;
    const char *reason = NULL, *relay = NULL, *remote_mta = NULL, *diag = NULL;
    long long index = -1, notify = -1, status = -1, relayed = 0, when = 0;
    attr_spec specs[] = {
        ATTR_SPEC_INT("index", ATTR_REQUIRED, &index),
        ATTR_SPEC_STR("address", ATTR_REQUIRED, &address),
        ATTR_SPEC_STR("orcpt", ATTR_OPTIONAL, &orcpt),
        ATTR_SPEC_STR("orig", ATTR_OPTIONAL, &orig),
        ATTR_SPEC_INT("notify", ATTR_REQUIRED, &notify),
        ATTR_SPEC_INT("status", ATTR_REQUIRED, &status),
        ATTR_SPEC_STR("dsn", ATTR_REQUIRED, &dsn),
        ATTR_SPEC_STR("action", ATTR_REQUIRED, &action),
        ATTR_SPEC_STR("reason", ATTR_REQUIRED, &reason),
        ATTR_SPEC_STR("relay", ATTR_OPTIONAL, &relay),
        ATTR_SPEC_STR("remote_mta", ATTR_OPTIONAL, &remote_mta),
        ATTR_SPEC_STR("diag", ATTR_OPTIONAL, &diag),
        ATTR_SPEC_INT("relayed_no_dsn", ATTR_REQUIRED, &relayed),
        ATTR_SPEC_INT("when", ATTR_REQUIRED, &when),
        ATTR_SPEC_END,
    };
    int ret = -1;

    if (attr_decode(l, payload, len) != 0 || attr_scan(l, specs) != 0)
        goto out;
    if (index < 0 || index > 100000000 || notify < 0 || notify > 15 || status < DELIVER_OK || status > DELIVER_BOUNCE ||
        (relayed != 0 && relayed != 1) || when < 0)
        goto out;
    if (!bounce_log_dsn_ok(dsn) || !bounce_log_action_ok(action))
        goto out;
    if (!bounce_log_text_ok(address) || !bounce_log_text_ok(reason) || (orcpt && !bounce_log_text_ok(orcpt)) ||
        (orig && !bounce_log_text_ok(orig)) || (relay && !bounce_log_text_ok(relay)) ||
        (remote_mta && !bounce_log_text_ok(remote_mta)) || (diag && !bounce_log_text_ok(diag)))
        goto out;
    memset(e, 0, sizeof(*e));
    e->rcpt.index = (long) index;
    e->rcpt.address = xstrdup(address);
    e->rcpt.orcpt = orcpt ? xstrdup(orcpt) : NULL;
    e->rcpt.orig = orig ? xstrdup(orig) : NULL;
    e->rcpt.notify = (int) notify;
    e->result.index = (long) index;
    e->result.status = (int) status;
    memcpy(e->result.dsn, dsn, strlen(dsn) + 1); /* at most 9 bytes: checked */
    e->result.action = xstrdup(action);
    e->result.reason = xstrdup(reason);
    e->result.relay = relay ? xstrdup(relay) : NULL;
    e->result.remote_mta = remote_mta ? xstrdup(remote_mta) : NULL;
    e->result.diag = diag ? xstrdup(diag) : NULL;
    e->result.relayed_no_dsn = (int) relayed;
    e->when = when;
    ret = 0;
out:
    attr_free(l);
    return ret;
}

/* bounce_log_parse - split a whole log file into entries; count or -1 */
int bounce_log_parse(const void *data, size_t len, bounce_log_entry **entries)
{
    const unsigned char *p = data;
    bounce_log_entry *list = NULL;
    size_t count = 0, cap = 0, pos = 0;

    *entries = NULL;
    while (pos < len) {
        size_t rlen;

        if (len - pos < 4)
            goto bad;
        rlen = ((size_t) p[pos] << 24) | ((size_t) p[pos + 1] << 16) | ((size_t) p[pos + 2] << 8) | p[pos + 3];
        pos += 4;
        if (rlen == 0 || rlen > BOUNCE_LOG_MAX_RECORD || rlen > len - pos)
            goto bad;
        if (count == cap) {
            cap = cap ? size_mul(cap, 2) : 8;
            list = xreallocarray(list, cap, sizeof(*list));
        }
        if (bounce_log_parse_record(p + pos, rlen, &list[count]) != 0)
            goto bad;
        count++;
        pos += rlen;
    }
    *entries = list;
    return (int) count;
bad:
    bounce_log_free(list, count);
    return -1;
}

/* bounce_log_read - all records of LOGQUEUE/ID; count or -1 (ENOENT: 0) */
int bounce_log_read(const char *log_queue, const char *queue_id, bounce_log_entry **entries)
{
    vbuf path, data;
    struct stat st;
    char buf[8192];
    ssize_t n;
    int fd, count = -1;

    *entries = NULL;
    if (!queue_id_valid(queue_id)) {
        msg_warn("bounce_log_read: bad queue id");
        return -1;
    }
    vbuf_init(&path, 0);
    vbuf_init(&data, BOUNCE_LOG_MAX_FILE);
    mail_queue_path(&path, log_queue, queue_id);
    fd = open(vbuf_str(&path), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            count = 0;
        else
            msg_warn("%s: open %s: %m", queue_id, vbuf_str(&path));
        goto out;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        msg_warn("%s: %s is not a regular file", queue_id, vbuf_str(&path));
        (void) close(fd);
        goto out;
    }
    for (;;) {
        do
            n = read(fd, buf, sizeof(buf));
        while (n < 0 && errno == EINTR);
        if (n == 0)
            break;
        if (n < 0 || vbuf_append(&data, buf, (size_t) n) != 0) {
            msg_warn("%s: read %s: %s", queue_id, vbuf_str(&path), n < 0 ? strerror(errno) : "file too large");
            (void) close(fd);
            goto out;
        }
    }
    (void) close(fd);
    count = bounce_log_parse(data.data, data.len, entries);
    if (count < 0)
        msg_warn("%s: malformed status log %s", queue_id, vbuf_str(&path));
out:
    vbuf_release(&path);
    vbuf_release(&data);
    return count;
}

/* bounce_log_free - release what bounce_log_read returned */
void bounce_log_free(bounce_log_entry *entries, size_t count)
{
    for (size_t i = 0; i < count; i++)
        bounce_log_entry_free(&entries[i]);
    xfree(entries);
}

/* bounce_log_remove - delete LOGQUEUE/ID; a missing file is fine */
int bounce_log_remove(const char *log_queue, const char *queue_id)
{
    vbuf path;
    int ret = 0;

    if (!queue_id_valid(queue_id))
        return -1;
    vbuf_init(&path, 0);
    mail_queue_path(&path, log_queue, queue_id);
    if (unlink(vbuf_str(&path)) < 0 && errno != ENOENT) {
        msg_warn("%s: remove %s: %m", queue_id, vbuf_str(&path));
        ret = -1;
    }
    vbuf_release(&path);
    return ret;
}

/* bounce_request - ask the bounce service for a notice; 0 done, -1 try later */
int bounce_request(const char *kind, const char *queue_name, const char *queue_id)
{
    attr_list *req, *reply;
    long long status = -1;
    const char *why = NULL;
    attr_spec specs[] = {
        ATTR_SPEC_INT("status", ATTR_REQUIRED, &status),
        ATTR_SPEC_STR("reason", ATTR_OPTIONAL, &why),
        ATTR_SPEC_END,
    };
    stream *s;
    int fd, ret = -1;

    fd = mail_server_connect("private/bounce", 30);
    if (fd < 0) {
        msg_warn("%s: connect to private/bounce: %m", queue_id);
        return -1;
    }
    s = stream_open(fd);
    stream_set_timeout(s, 600);
    req = attr_new();
    reply = attr_new();
    if (attr_expect_greeting(s, "bounce") != 0) {
        msg_warn("%s: private/bounce: bad greeting", queue_id);
        goto out;
    }
    attr_put_str(req, "request", kind);
    attr_put_str(req, "queue_id", queue_id);
    attr_put_str(req, "queue_name", queue_name);
    if (attr_write(s, req) != 0 || attr_read(s, reply, 4096) != 0) {
        msg_warn("%s: private/bounce: lost connection", queue_id);
        goto out;
    }
    if (attr_scan(reply, specs) != 0)
        goto out;
    ret = status == 0 ? 0 : -1;
    if (ret != 0)
        msg_info("%s: bounce service: %s request deferred%s%s", queue_id, kind, why ? ": " : "", why ? why : "");
out:
    attr_free(req);
    attr_free(reply);
    stream_close(s);
    return ret;
}
