/*
 * local - the local delivery agent's shared state and module interfaces.
 *
 * One request (deliver.h) carries one message and its recipients. Each
 * recipient is expanded (aliases, ~/.forward, :include:) into targets:
 * mailboxes (mbox or Maildir), files, commands, and addresses that are
 * forwarded through cleanup as a new message. Every target is delivered
 * with its owner's privileges: mailboxes by this process with its effective
 * ids switched to the owner, commands and files named in lists in a child
 * that becomes the owner for good (privs.c). The results are logged one line per target and
 * folded into one result per recipient for qmgr.
 */
#ifndef KITE_LOCAL_LOCAL_H
#define KITE_LOCAL_LOCAL_H

#include <stddef.h>
#include <sys/types.h>

#include "deliver.h"
#include "qfile.h"
#include "vbuf.h"

/* How a target was reached (allow_mail_to_commands / allow_mail_to_files). */
#define LOCAL_CLASS_ALIAS (1 << 0)
#define LOCAL_CLASS_FORWARD (1 << 1)
#define LOCAL_CLASS_INCLUDE (1 << 2)

#define LOCAL_MAX_DEPTH 20       /* nested aliases/forwards/includes */
#define LOCAL_REASON_MAX 1000    /* reason text kept per target */
#define LOCAL_CHILD_TIMEOUT 3600 /* seconds for a mailbox or file delivery */

/* The outcome of one target. */
typedef struct local_status {
    int status; /* DELIVER_OK / DEFER / BOUNCE */
    char dsn[16];
    vbuf reason;
} local_status;

/* A user whose privileges a delivery runs with. */
typedef struct local_user {
    char *name, *home, *shell;
    uid_t uid;
    gid_t gid;
} local_user;

/* Forwarded addresses, grouped by envelope sender and the address that forwarded them. */
typedef struct local_fwd {
    char *sender;
    char *delivered_to;
    char **rcpts;
    size_t nrcpt;
} local_fwd;

/* One message being delivered. */
typedef struct local_msg {
    const deliver_request *req;
    qfile *q;
    char **delivered_to; /* Delivered-To: values already in the message */
    size_t ndelivered_to;
    double start; /* when delivery of this recipient began */
} local_msg;

/* local_verify - the request is a probe (sendmail -bv): resolve, write nothing, run nothing */
#define local_verify(c) (((c)->msg->req->flags & DELIVER_FLAG_VERIFY) != 0)

/* One step of an expansion: the address at hand and how we got here. */
typedef struct local_ctx {
    local_msg *msg;
    const deliver_rcpt *rcpt; /* the request's recipient */
    const char *address;      /* the address being delivered */
    const char *sender;       /* envelope sender for this branch */
    const char *delivered_to; /* what Delivered-To says for this branch */
    int depth;
    int cls;                        /* LOCAL_CLASS_* that led here; 0 = the recipient itself */
    const local_user *owner;        /* whose privileges commands/files run with */
    const local_user *user;         /* the local user, for a command's environment */
    const char *extension;          /* recipient_delimiter extension, or NULL */
    const struct local_ctx *parent; /* the chain, for loop detection */
    int no_expand;                  /* "\user": the mailbox, no alias or .forward */
    /* Results of this recipient's targets: */
    struct local_acc *acc;
} local_ctx;

typedef struct local_acc {
    int status; /* the worst so far */
    char dsn[16];
    vbuf reason;
    int ntargets;
    local_fwd *fwd; /* pending forwards */
    size_t nfwd;
} local_acc;

/* status.c */
void local_status_init(local_status *st);
void local_status_free(local_status *st);
void local_status_set(local_status *st, int status, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* local_result - log one target's outcome and fold it into the recipient's result */
void local_result(local_ctx *c, const char *target, const local_status *st);

/* user.c */
local_user *local_user_byname(const char *name, vbuf *why); /* NULL: not found (why empty) or error */
local_user *local_user_byuid(uid_t uid, gid_t gid);
local_user *local_user_virtual(uid_t uid, gid_t gid); /* "uid N", no password lookup */
local_user *local_user_dup(const local_user *u);
void local_user_free(local_user *u);

/* copy.c - the message as the delivery sees it */
#define LOCAL_COPY_LF (1 << 0)        /* CRLF -> LF */
#define LOCAL_COPY_FROM_LINE (1 << 1) /* mbox: "From " line, >From quoting, blank line after */
#define LOCAL_COPY_RETURN_PATH (1 << 2)
#define LOCAL_COPY_DELIVERED (1 << 3)
typedef int (*local_out_fn)(void *ctx, const void *data, size_t len);
typedef ssize_t (*local_src_fn)(void *ctx, const char **data);
int local_copy(local_src_fn src, void *src_ctx, const char *sender, const char *delivered_to, time_t when, int flags,
               local_out_fn out, void *out_ctx);
int local_copy_msg(local_msg *m, const char *sender, const char *delivered_to, int flags, local_out_fn out,
                   void *out_ctx);
/* local_scan_delivered_to - collect the Delivered-To: header values (lowercased) */
int local_scan_delivered_to(local_src_fn src, void *src_ctx, char ***list, size_t *count);
int local_delivered_to_seen(const local_msg *m, const char *addr);

/* A buffered file writer with a size limit. */
typedef struct local_fdout {
    int fd;
    vbuf buf;
    long long written;
    long long limit; /* 0: none */
    int err;         /* errno of the first failure */
} local_fdout;
void local_fdout_init(local_fdout *o, int fd, long long limit);
int local_fdout_write(void *ctx, const void *data, size_t len);
int local_fdout_flush(local_fdout *o);
void local_fdout_release(local_fdout *o);

/* privs.c - run a delivery with the target's uid/gid */
typedef void (*local_child_fn)(void *ctx, local_status *st);
/* local_run_as - in a child that becomes U for good (commands, list-named files) */
void local_run_as(const local_user *u, local_child_fn pre_root, local_child_fn fn, void *ctx, int timeout,
                  local_status *st);
/* local_as_user - in this process, effective ids switched to U and back (mailboxes) */
void local_as_user(const local_user *u, local_child_fn pre_root, local_child_fn fn, void *ctx, int timeout,
                   local_status *st);
int local_set_eugid(uid_t uid, gid_t gid, vbuf *why); /* 0, or -1 (why) back as root */
void local_restore_root(void);                        /* fatal when root does not come back */
int local_privileged(void);

/* maildir.c */
void local_maildir_name(vbuf *out, long long sec, long usec, long pid, unsigned long long rnd, const char *host);
int local_maildir_move(const char *tmp, const char *new); /* never replaces NEW; 0 or -1 (errno) */
void local_maildir_deliver(local_msg *m, const char *dir, const char *sender, const char *delivered_to, long long limit,
                           local_status *st);

/* mailbox.c */
void local_mbox_deliver(local_msg *m, const char *path, const char *sender, const char *delivered_to, long long limit,
                        local_status *st);
int local_mbox_lock(int fd, const char *path, int *dotlocked, vbuf *why);
int local_mbox_fcntl_lock(int fd, const char *path, vbuf *why);
int local_mbox_dotlock(const char *path, int *dotlocked, vbuf *why);
void local_mailbox_at(local_ctx *c, const local_user *u, const char *path, int spool, long long limit,
                      local_status *st);
void local_mbox_unlock(const char *path, int dotlocked);
void local_mailbox(local_ctx *c, const local_user *u);

/* file.c */
int local_class_allowed(const char *list, int cls);
int local_prepend_delivered(const char *kind);
void local_file(local_ctx *c, const char *path);

/* pipe.c */
void local_pipe(local_ctx *c, const char *command);
void local_pipe_exit_status(int wstatus, int timed_out, const char *command, const char *output, local_status *st);

/* alias.c - the list syntax of aliases, :include: files and ~/.forward */
#define ALIAS_ADDR 1
#define ALIAS_COMMAND 2
#define ALIAS_FILE 3
#define ALIAS_INCLUDE 4
#define ALIAS_SELF 5 /* "\user": the user's own mailbox */
typedef struct alias_item {
    int type;
    char *value;
} alias_item;
#define ALIAS_MAX_ITEMS 1000
#define ALIAS_MAX_TOKEN 4096
int alias_parse(const char *text, int file_syntax, alias_item **items, size_t *count, vbuf *why);
void alias_free(alias_item *items, size_t count);
int local_alias(local_ctx *c, const char *localpart);
void local_expand(local_ctx *c, const alias_item *items, size_t count, int cls, const local_user *owner);

/* forward.c */
int local_read_trusted_file(const char *path, const local_user *owner, vbuf *out, vbuf *why);
int local_forward(local_ctx *c, const local_user *u);
void local_forward_add(local_ctx *c, const char *addr);
void local_forward_flush(local_ctx *c);

/* virtual.c */
int local_virtual_domain(const char *domain);
void local_virtual(local_ctx *c);

/* recipient.c */
void local_recipient(local_ctx *c);
int local_domain_is_local(const char *domain);

#endif
