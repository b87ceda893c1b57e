/*
 * file - "/path" targets of aliases, :include: files and ~/.forward: the
 * message is appended in mbox format (locks, "From " line, >From quoting),
 * or written as a Maildir message when the path ends in '/'. Links are
 * never followed (safe_open). Runs as the owner of the list that named the
 * file, subject to allow_mail_to_files.
 *
 * An mbox-style file is written in a child that becomes the owner for good
 * (privs.c local_run_as), not in this process with switched effective ids
 * as mailboxes are: its name comes from a user's .forward or :include:
 * file, and a name such as /proc/self/... would mean this root process
 * rather than a process of the user's. Such deliveries are rare; the fork
 * costs little there. A Maildir named by a list ('/' at the end) only ever
 * gets new files (O_EXCL) and links, which no special file system allows,
 * and goes the mailbox way.
 */
#include <string.h>

#include "deliver.h"
#include "local.h"
#include "mymalloc.h"
#include "params.h"
#include "strutil.h"
#include "vbuf.h"

/* local_class_allowed - whether a parameter's class list ("alias, forward, include") allows CLS */
int local_class_allowed(const char *list, int cls)
{
    char *copy = xstrdup(list), *cur = copy, *tok;
    int allowed = 0;

    if (cls == 0)
        cls = LOCAL_CLASS_ALIAS; /* cannot happen: files/commands come from lists */
    while ((tok = str_token(&cur, CHARS_COMMA_SPACE)) != NULL) {
        if (((cls & LOCAL_CLASS_ALIAS) && str_case_eq(tok, "alias")) ||
            ((cls & LOCAL_CLASS_FORWARD) && str_case_eq(tok, "forward")) ||
            ((cls & LOCAL_CLASS_INCLUDE) && str_case_eq(tok, "include")))
            allowed = 1;
    }
    xfree(copy);
    return allowed;
}

/* local_prepend_delivered - prepend_delivered_header names KIND (command, file, forward) */
int local_prepend_delivered(const char *kind)
{
    char *copy = xstrdup(var_prepend_delivered_header), *cur = copy, *tok;
    int yes = 0;

    while ((tok = str_token(&cur, CHARS_COMMA_SPACE)) != NULL)
        if (str_case_eq(tok, kind))
            yes = 1;
    xfree(copy);
    return yes;
}

/* Child context of a file delivery. */
typedef struct file_job {
    local_msg *m;
    const char *path, *sender, *delivered_to;
} file_job;

/* file_child - append as the list owner */
static void file_child(void *ctx, local_status *st)
{
    file_job *j = ctx;

    local_mbox_deliver(j->m, j->path, j->sender, j->delivered_to, var_mailbox_size_limit, st);
}

/* local_file - deliver to the file PATH named by a list */
void local_file(local_ctx *c, const char *path)
{
    local_status st;
    size_t len = strlen(path);

    local_status_init(&st);
    if (!local_class_allowed(var_allow_mail_to_files, c->cls)) {
        local_status_set(&st, DELIVER_BOUNCE, "5.7.1", "mail to file is restricted");
    } else if (path[0] != '/' || strstr(path, "/../") || (len >= 3 && strcmp(path + len - 3, "/..") == 0)) {
        local_status_set(&st, DELIVER_BOUNCE, "5.3.5", "bad file name: %s", path);
    } else if (path[len - 1] == '/' || local_verify(c)) {
        local_mailbox_at(c, c->owner, path, 0, var_mailbox_size_limit, &st);
    } else {
        file_job j = {c->msg, path, c->sender, c->delivered_to};

        local_run_as(c->owner, NULL, file_child, &j, LOCAL_CHILD_TIMEOUT, &st);
    }
    if (st.status == DELIVER_OK && path[len - 1] != '/' && !local_verify(c))
        local_status_set(&st, DELIVER_OK, "2.0.0", "delivered to file: %s", path);
    local_result(c, c->address, &st);
    local_status_free(&st);
}
