/*
 * kitesuper - queue maintenance for root and mail_owner (postsuper-style).
 *
 * Usage: kitesuper [-c confdir] [-v] [-s] [-d ID|ALL|-] [-h ID|ALL|-]
 *                  [-H ID|ALL|-] [-r ID|ALL|-] [queue...]
 *   -d  delete messages (default queues: hold incoming active deferred)
 *   -h  put messages on hold (from incoming active deferred)
 *   -H  release messages from hold (to deferred, due now)
 *   -r  requeue messages: back through pickup and cleanup, so rewriting
 *       and checks apply again (from hold incoming active deferred)
 *   -s  structure check and repair: stale temporary files removed,
 *       misplaced files moved to their hashed place, damaged files moved
 *       to corrupt/, status logs without a message removed, and entries
 *       of recycle/ that no claim would take removed (names that are no
 *       slot below queue_recycle_limit, anything but a plain file); the
 *       retired files in their slots are kept, however old: nothing in
 *       recycle/ is mail, and recycle/ is no queue for the operations
 *   "-" as ID reads IDs from stdin, one per line; queue arguments limit
 *   the queues. Options may be repeated. Log lines as postsuper's:
 *   "ID: removed", "ID: placed on hold", "ID: released from hold",
 *   "ID: requeued"; a summary ("kitesuper: Deleted: 2 messages") on stderr.
 *
 * Trusts: the configuration; queue files only through the strict reader.
 * Started as root it works as mail_owner after changing to the queue.
 */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "conf.h"
#include "mail_queue.h"
#include "mail_server.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "qfile.h"
#include "strutil.h"

#define KS_TEMP_MAX_AGE 3600 /* a writer that left a temporary file this long ago is gone */

enum ks_op { KS_DELETE, KS_HOLD, KS_RELEASE, KS_REQUEUE };

typedef struct ks_request {
    enum ks_op op;
    const char *arg; /* an ID, "ALL" or "-" */
} ks_request;

static const char *const ks_msg_queues[] = {MAIL_QUEUE_MAILDROP,
                                            MAIL_QUEUE_INCOMING,
                                            MAIL_QUEUE_ACTIVE,
                                            MAIL_QUEUE_DEFERRED,
                                            MAIL_QUEUE_HOLD,
                                            MAIL_QUEUE_CORRUPT,
                                            NULL};
static const char *const ks_log_queues[] = {MAIL_QUEUE_DEFER, MAIL_QUEUE_BOUNCE, MAIL_QUEUE_TRACE, NULL};

/* Default source queues per operation (postsuper's). */
static const char *const ks_default_delete[] = {MAIL_QUEUE_HOLD, MAIL_QUEUE_INCOMING, MAIL_QUEUE_ACTIVE,
                                                MAIL_QUEUE_DEFERRED, NULL};
static const char *const ks_default_hold[] = {MAIL_QUEUE_INCOMING, MAIL_QUEUE_ACTIVE, MAIL_QUEUE_DEFERRED, NULL};
static const char *const ks_default_release[] = {MAIL_QUEUE_HOLD, NULL};

static const char *const *ks_user_queues; /* queue arguments, or NULL */
static long ks_count[4];
static int ks_errors;

/* ks_queues - the queues an operation works on */
static const char *const *ks_queues(enum ks_op op)
{
    if (ks_user_queues)
        return ks_user_queues;
    switch (op) {
    case KS_HOLD:
        return ks_default_hold;
    case KS_RELEASE:
        return ks_default_release;
    default:
        return ks_default_delete;
    }
}

/* ks_remove_logs - the per-recipient status logs of a message */
static void ks_remove_logs(const char *id)
{
    vbuf path;

    vbuf_init(&path, 0);
    for (int i = 0; ks_log_queues[i]; i++) {
        mail_queue_path(&path, ks_log_queues[i], id);
        if (unlink(path.data) < 0 && errno != ENOENT)
            msg_warn("remove %s: %m", path.data);
    }
    vbuf_release(&path);
}

/* ks_requeue_file - copy a message into maildrop/ for pickup; 0 or -1 */
static int ks_requeue_file(const char *path)
{
    static const char *const keep[] = {"arrival", "sender", "fullname", "envid", "ret", "body", "smtputf8", NULL};
    qfile_writer *w;
    qfile_content it;
    const char *data;
    char num[32];
    vbuf err;
    ssize_t n;
    qfile *q;
    size_t pending = 0;

    vbuf_init(&err, 0);
    if ((q = qfile_open(path, 0, &err)) == NULL) {
        msg_warn("%s", err.data);
        vbuf_release(&err);
        return -1;
    }
    if ((w = qfile_create(MAIL_QUEUE_MAILDROP, &err)) == NULL) {
        msg_warn("%s", err.data);
        qfile_close(q);
        vbuf_release(&err);
        return -1;
    }
    snprintf(num, sizeof(num), "%ld", (long) getuid());
    (void) qfile_put_attr(w, "uid", num);
    for (int i = 0; keep[i]; i++) {
        const char *v = qfile_attr(q, keep[i]);

        if (v)
            (void) qfile_put_attr(w, keep[i], v);
    }
    for (size_t i = 0; i < q->nrcpt; i++) {
        if (q->rcpts[i].done)
            continue;
        (void) qfile_put_rcpt(w, q->rcpts[i].address, q->rcpts[i].orcpt, NULL, q->rcpts[i].notify);
        pending++;
    }
    qfile_content_begin(q, &it);
    while ((n = qfile_content_next(&it, &data)) > 0)
        (void) qfile_put_content(w, data, (size_t) n);
    qfile_content_end(&it);
    qfile_close(q);
    if (n < 0 || pending == 0) {
        if (n < 0)
            msg_warn("%s: read error", path);
        qfile_abort(w);
        vbuf_release(&err);
        return n < 0 ? -1 : 0; /* nothing left to deliver: just remove it */
    }
    if (qfile_finish(w, &err) < 0) {
        msg_warn("%s", err.data);
        vbuf_release(&err);
        return -1;
    }
    vbuf_release(&err);
    return 0;
}

/* ks_deliver_now - ask qmgr to deliver a released message now (it also finds it later) */
static void ks_deliver_now(const char *id)
{
    attr_list *req;
    stream *s;
    int fd;

    if ((fd = mail_server_connect("public/qmgr", 5)) < 0)
        return;
    s = stream_open(fd);
    stream_set_timeout(s, (int) var_trigger_timeout);
    req = attr_new();
    attr_put_str(req, "request", "deliver");
    attr_put_str(req, "queue_id", id);
    if (attr_write(s, req) == 0)
        (void) attr_read(s, req, 64 * 1024); /* qmgr's {status, text}: informational */
    attr_free(req);
    stream_close(s);
}

/* ks_apply - one operation on one ID in one queue; 1 done, 0 not there */
static int ks_apply(enum ks_op op, const char *queue, const char *id)
{
    vbuf path;
    int done = 0;

    if (!queue_id_valid(id) && !mail_queue_id_ok(id))
        return 0;
    vbuf_init(&path, 0);
    mail_queue_path(&path, queue, id);
    switch (op) {
    case KS_DELETE:
        if (unlink(path.data) == 0) {
            ks_remove_logs(id);
            msg_info("%s: removed", id);
            done = 1;
        } else if (errno != ENOENT) {
            msg_warn("remove %s: %m", path.data);
            ks_errors++;
        }
        break;
    case KS_HOLD:
        if (strcmp(queue, MAIL_QUEUE_HOLD) == 0)
            break;
        if (mail_queue_move(id, queue, MAIL_QUEUE_HOLD) == 0) {
            msg_info("%s: placed on hold", id);
            done = 1;
        } else if (errno != ENOENT) {
            msg_warn("move %s to %s: %m", path.data, MAIL_QUEUE_HOLD);
            ks_errors++;
        }
        break;
    case KS_RELEASE:
        if (strcmp(queue, MAIL_QUEUE_HOLD) != 0)
            break;
        if (mail_queue_move(id, queue, MAIL_QUEUE_DEFERRED) == 0) {
            vbuf to;

            /* Due now: the deferred queue's time stamp says when to try. */
            vbuf_init(&to, 0);
            mail_queue_path(&to, MAIL_QUEUE_DEFERRED, id);
            (void) utimes(to.data, NULL);
            vbuf_release(&to);
            msg_info("%s: released from hold", id);
            ks_deliver_now(id);
            done = 1;
        } else if (errno != ENOENT) {
            msg_warn("move %s to %s: %m", path.data, MAIL_QUEUE_DEFERRED);
            ks_errors++;
        }
        break;
    case KS_REQUEUE: {
        struct stat st;

        if (lstat(path.data, &st) < 0)
            break;
        if (ks_requeue_file(path.data) < 0) {
            ks_errors++;
            break;
        }
        if (unlink(path.data) < 0)
            msg_warn("remove %s: %m", path.data);
        ks_remove_logs(id);
        msg_info("%s: requeued", id);
        done = 1;
        break;
    }
    }
    vbuf_release(&path);
    return done;
}

/* ks_one - an ID in any of the operation's queues */
static void ks_one(enum ks_op op, const char *id)
{
    const char *const *queues = ks_queues(op);

    for (int i = 0; queues[i]; i++)
        if (ks_apply(op, queues[i], id)) {
            ks_count[op]++;
            return;
        }
}

typedef struct ks_scan_ctx {
    enum ks_op op;
} ks_scan_ctx;

/* ks_scan_one - mail_queue_scan callback for ALL */
static void ks_scan_one(const char *queue, const char *id, void *ctx)
{
    ks_scan_ctx *c = ctx;

    if (ks_apply(c->op, queue, id))
        ks_count[c->op]++;
}

/* ks_run - one request (ID, ALL or - for stdin) */
static void ks_run(const ks_request *r)
{
    if (strcmp(r->arg, "ALL") == 0) {
        const char *const *queues = ks_queues(r->op);
        ks_scan_ctx c = {r->op};

        for (int i = 0; queues[i]; i++)
            if (mail_queue_scan(queues[i], ks_scan_one, &c) < 0 && errno != ENOENT)
                msg_warn("scan %s: %m", queues[i]);
    } else if (strcmp(r->arg, "-") == 0) {
        char line[256];

        while (fgets(line, sizeof(line), stdin) != NULL) {
            char *id = str_trim(line);

            if (*id)
                ks_one(r->op, id);
        }
    } else {
        ks_one(r->op, r->arg);
    }
}

/* ---- structure check ---- */

static long ks_fixed_temp, ks_fixed_place, ks_fixed_corrupt, ks_fixed_logs, ks_fixed_recycle;

/* ks_message_exists - is there a message file for ID in any queue */
static int ks_message_exists(const char *id)
{
    struct stat st;
    vbuf path;
    int found = 0;

    vbuf_init(&path, 0);
    for (int i = 0; ks_msg_queues[i] && !found; i++) {
        mail_queue_path(&path, ks_msg_queues[i], id);
        found = lstat(path.data, &st) == 0;
    }
    vbuf_release(&path);
    return found;
}

/* ks_mkdirs - the directories of a relative path */
static void ks_mkdirs(const char *path)
{
    char *copy = xstrdup(path);

    for (char *p = strchr(copy, '/'); p; p = strchr(p + 1, '/')) {
        *p = 0;
        if (mkdir(copy, 0700) < 0 && errno != EEXIST)
            msg_warn("mkdir %s: %m", copy);
        *p = '/';
    }
    xfree(copy);
}

/* ks_check_dir - walk one directory of a queue (hash levels below) */
static void ks_check_dir(const char *queue, const char *dir, int is_log)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    vbuf path, want;
    time_t now = time(NULL);

    if (d == NULL) {
        if (errno != ENOENT)
            msg_warn("open %s: %m", dir);
        return;
    }
    vbuf_init(&path, 0);
    vbuf_init(&want, 0);
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        struct stat st;

        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        vbuf_reset(&path);
        vbuf_printf(&path, "%s/%s", dir, name);
        if (lstat(path.data, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode) && name[1] == 0) {
            ks_check_dir(queue, path.data, is_log); /* a hash level */
            continue;
        }
        if (strncmp(name, ".tmp.", 5) == 0) {
            if (S_ISREG(st.st_mode) && now - st.st_mtime > KS_TEMP_MAX_AGE) {
                if (unlink(path.data) == 0) {
                    msg_info("%s: removed stale temporary file", path.data);
                    ks_fixed_temp++;
                }
            }
            continue;
        }
        if (!S_ISREG(st.st_mode) || !mail_queue_id_ok(name)) {
            msg_warn("%s: unexpected file in the queue; left alone", path.data);
            continue;
        }
        mail_queue_path(&want, queue, name);
        if (strcmp(want.data, path.data) != 0) {
            /* A file in the wrong hash directory (hash_queue_depth changed). */
            ks_mkdirs(want.data);
            if (rename(path.data, want.data) == 0) {
                msg_info("%s: moved to %s", path.data, want.data);
                ks_fixed_place++;
                vbuf_set(&path, want.data);
            } else {
                msg_warn("rename %s to %s: %m", path.data, want.data);
            }
        }
        if (is_log) {
            if (!ks_message_exists(name) && unlink(path.data) == 0) {
                msg_info("%s: removed status log without a message", path.data);
                ks_fixed_logs++;
            }
        } else if (strcmp(queue, MAIL_QUEUE_CORRUPT) != 0) {
            vbuf err;
            qfile *q;

            vbuf_init(&err, 0);
            if ((q = qfile_open(path.data, 0, &err)) == NULL) {
                if (errno != ENOENT) {
                    msg_warn("%s; moved to %s", err.data, MAIL_QUEUE_CORRUPT);
                    if (mail_queue_move(name, queue, MAIL_QUEUE_CORRUPT) == 0)
                        ks_fixed_corrupt++;
                }
            } else {
                qfile_close(q);
            }
            vbuf_release(&err);
        }
    }
    closedir(d);
    vbuf_release(&path);
    vbuf_release(&want);
}

/*
 * ks_check_recycle - remove what no claim takes from recycle/: names that
 * are no slot number below queue_recycle_limit (left when the limit was
 * lowered or recycling turned off) and anything but a plain file. Only
 * names in recycle/ are removed, which never holds mail, so a qmgr or
 * cleanup working there at the same time loses nothing.
 */
static void ks_check_recycle(void)
{
    DIR *d = opendir(MAIL_QUEUE_RECYCLE);
    struct dirent *de;
    vbuf path;

    if (d == NULL) {
        if (errno != ENOENT)
            msg_warn("open %s: %m", MAIL_QUEUE_RECYCLE);
        return;
    }
    vbuf_init(&path, 0);
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        struct stat st;
        char canon[32];
        long slot;
        int gone;

        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        vbuf_reset(&path);
        vbuf_printf(&path, "%s/%s", MAIL_QUEUE_RECYCLE, name);
        if (lstat(path.data, &st) < 0)
            continue; /* claimed meanwhile */
        /* A slot name as mail_queue_retire makes it: the number in decimal, nothing else. */
        if (S_ISREG(st.st_mode) && str_to_long(name, &slot) == 0 && slot >= 0 && slot < var_queue_recycle_limit &&
            snprintf(canon, sizeof(canon), "%ld", slot) > 0 && strcmp(canon, name) == 0)
            continue; /* a slot cleanup may take */
        gone = S_ISDIR(st.st_mode) ? rmdir(path.data) : unlink(path.data);
        if (gone == 0) {
            msg_info("%s: removed, no slot of queue_recycle_limit = %ld", path.data, var_queue_recycle_limit);
            ks_fixed_recycle++;
        } else if (errno != ENOENT) {
            msg_warn("remove %s: %m", path.data);
        }
    }
    closedir(d);
    vbuf_release(&path);
}

/* ks_structure - check and repair every queue, and recycle/ */
static void ks_structure(void)
{
    for (int i = 0; ks_msg_queues[i]; i++)
        ks_check_dir(ks_msg_queues[i], ks_msg_queues[i], 0);
    for (int i = 0; ks_log_queues[i]; i++)
        ks_check_dir(ks_log_queues[i], ks_log_queues[i], 1);
    ks_check_recycle();
}

/* ks_summary - postsuper's "Deleted: 2 messages" */
static void ks_summary(const char *what, long n)
{
    if (n > 0)
        fprintf(stderr, "kitesuper: %s: %ld message%s\n", what, n, n == 1 ? "" : "s");
}

/* ks_become_owner - as root: work as mail_owner from here on */
static void ks_become_owner(void)
{
    struct passwd *pw = getpwnam(var_mail_owner);

    if (pw == NULL) {
        fprintf(stderr, "kitesuper: unknown mail_owner %s\n", var_mail_owner);
        exit(EX_CONFIG);
    }
    if (getuid() == 0) {
        if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
            fprintf(stderr, "kitesuper: cannot become %s: %s\n", var_mail_owner, strerror(errno));
            exit(EX_OSERR);
        }
        if (getuid() != pw->pw_uid || geteuid() != pw->pw_uid) {
            fprintf(stderr, "kitesuper: privileges were not dropped\n");
            exit(EX_OSERR);
        }
    } else if (getuid() != pw->pw_uid) {
        fprintf(stderr, "kitesuper: only root or %s may run this command\n", var_mail_owner);
        exit(EX_NOPERM);
    }
}

int main(int argc, char **argv)
{
    ks_request reqs[64];
    size_t nreq = 0;
    const char *confdir = NULL;
    int structure = 0, ch;
    char **queues = NULL;

    msg_init("kitesuper");
    while ((ch = getopt(argc, argv, "c:d:h:H:r:sv")) != -1) {
        enum ks_op op;

        switch (ch) {
        case 'c':
            confdir = optarg;
            continue;
        case 's':
            structure = 1;
            continue;
        case 'v':
            msg_verbose++;
            continue;
        case 'd':
            op = KS_DELETE;
            break;
        case 'h':
            op = KS_HOLD;
            break;
        case 'H':
            op = KS_RELEASE;
            break;
        case 'r':
            op = KS_REQUEUE;
            break;
        default:
            fprintf(stderr, "usage: kitesuper [-c confdir] [-s] [-v] [-d|-h|-H|-r ID|ALL|-] [queue...]\n");
            return EX_USAGE;
        }
        if (nreq == sizeof(reqs) / sizeof(reqs[0])) {
            fprintf(stderr, "kitesuper: too many requests\n");
            return EX_USAGE;
        }
        if (strcmp(optarg, "ALL") != 0 && strcmp(optarg, "-") != 0 && !mail_queue_id_ok(optarg)) {
            fprintf(stderr, "kitesuper: invalid queue ID \"%s\"\n", optarg);
            return EX_USAGE;
        }
        reqs[nreq].op = op;
        reqs[nreq].arg = optarg;
        nreq++;
    }
    if (nreq == 0 && !structure) {
        fprintf(stderr, "usage: kitesuper [-c confdir] [-s] [-v] [-d|-h|-H|-r ID|ALL|-] [queue...]\n");
        return EX_USAGE;
    }
    if (optind < argc) {
        queues = argv + optind;
        for (int i = optind; i < argc; i++) {
            int known = 0;

            for (int k = 0; ks_msg_queues[k]; k++)
                if (strcmp(argv[i], ks_msg_queues[k]) == 0)
                    known = 1;
            if (!known) {
                fprintf(stderr, "kitesuper: unknown queue \"%s\"\n", argv[i]);
                return EX_USAGE;
            }
        }
        ks_user_queues = (const char *const *) queues;
    }
    if (conf_load(confdir ? confdir : conf_dir_default()) > 0)
        return EX_CONFIG;
    {
        vbuf tag;

        vbuf_init(&tag, 0);
        vbuf_printf(&tag, "%s/kitesuper", var_syslog_name);
        msg_init(tag.data);
        vbuf_release(&tag);
    }
    if (*var_maillog_file == 0 || msg_logfile_open(var_maillog_file) < 0)
        msg_syslog_open();
    if (chdir(var_queue_directory) < 0) {
        fprintf(stderr, "kitesuper: chdir %s: %s\n", var_queue_directory, strerror(errno));
        return EX_UNAVAILABLE;
    }
    ks_become_owner();
    msg_stderr(msg_verbose > 0);

    if (structure)
        ks_structure();
    for (size_t i = 0; i < nreq; i++)
        ks_run(&reqs[i]);

    if (structure) {
        if (ks_fixed_temp)
            fprintf(stderr, "kitesuper: Removed %ld stale temporary file%s\n", ks_fixed_temp,
                    ks_fixed_temp == 1 ? "" : "s");
        if (ks_fixed_place)
            fprintf(stderr, "kitesuper: Moved %ld misplaced file%s\n", ks_fixed_place, ks_fixed_place == 1 ? "" : "s");
        ks_summary("Moved to corrupt", ks_fixed_corrupt);
        if (ks_fixed_logs)
            fprintf(stderr, "kitesuper: Removed %ld orphaned status log%s\n", ks_fixed_logs,
                    ks_fixed_logs == 1 ? "" : "s");
        if (ks_fixed_recycle)
            fprintf(stderr, "kitesuper: Removed %ld unusable entr%s from %s\n", ks_fixed_recycle,
                    ks_fixed_recycle == 1 ? "y" : "ies", MAIL_QUEUE_RECYCLE);
    }
    ks_summary("Deleted", ks_count[KS_DELETE]);
    ks_summary("Placed on hold", ks_count[KS_HOLD]);
    ks_summary("Released from hold", ks_count[KS_RELEASE]);
    ks_summary("Requeued", ks_count[KS_REQUEUE]);
    if (ks_count[KS_REQUEUE] > 0)
        (void) mail_trigger("public/pickup", "wakeup");
    return ks_errors ? EX_SOFTWARE : EX_OK;
}
