/*
 * kitedrop - the setgid door into maildrop/ for local submissions.
 *
 * Usage: kitedrop [-c confdir] [-v]
 * Reads one message from stdin as queue-file records (qfile.h), without the
 * version and slot records: 'A' attributes, recipient groups ('O', 'N',
 * 'R'), 'M', 'C' chunks, 'E'. Only allow-listed attributes pass; kitedrop
 * itself records who submitted (uid) and when. The message is written with
 * the queue file writer into maildrop/ (temporary name, fsync, rename,
 * fsync of the directory) and pickup is nudged. Without the end marker
 * (the sender died) nothing is left behind.
 *
 * Trusts: nothing on stdin, nothing in the environment (it runs setgid):
 * every record is checked for type, length, order and content.
 * Exit codes are sysexits.h's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sysexits.h>
#include <unistd.h>

#include "conf.h"
#include "mail_queue.h"
#include "mail_server.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "qfile.h"
#include "records.h"
#include "strutil.h"

static qfile_writer *kd_writer;

/* kd_remove - msg_fatal hook: no partial file stays in maildrop/ */
static void kd_remove(void)
{
    if (kd_writer) {
        qfile_abort(kd_writer);
        kd_writer = NULL;
    }
}

/* kd_read - exactly len bytes from stdin; 0, or -1 at EOF/error */
static int kd_read(void *ctx, void *buf, size_t len)
{
    char *p = buf;

    (void) ctx;
    while (len > 0) {
        ssize_t n = read(0, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

/* kd_fail - report, drop the partial file, exit with code */
static void kd_fail(int code, const char *why) __attribute__((noreturn));
static void kd_fail(int code, const char *why)
{
    kd_remove();
    fprintf(stderr, "kitedrop: %s\n", why);
    msg_warn("uid=%ld: %s", (long) getuid(), why);
    exit(code);
}

int main(int argc, char **argv)
{
    const char *confdir = NULL;
    vbuf err;
    int ch;
    char num[64];
    struct timeval tv;

    msg_init("kitedrop");
    while ((ch = getopt(argc, argv, "c:v")) != -1) {
        switch (ch) {
        case 'c':
            confdir = optarg;
            break;
        case 'v':
            msg_verbose++;
            break;
        default:
            fprintf(stderr, "usage: kitedrop [-c confdir] [-v] < records\n");
            return EX_USAGE;
        }
    }
    if (confdir == NULL)
        confdir = conf_dir_default();
    if (getegid() != getgid() && getuid() != 0 && !conf_dir_allowed_setgid(confdir)) {
        /*
         * Set-gid for an ordinary user: never a configuration the user
         * points us at (its queue_directory or maillog_file would be used
         * with our group's rights), unless the administrator listed it in
         * alternate_config_directories.
         */
        fprintf(stderr, "kitedrop: %s is not the built-in configuration directory (%s) nor listed in its "
                        "alternate_config_directories\n", confdir, KITE_DEF_CONFIG_DIR);
        return EX_USAGE;
    }
    if (conf_load(confdir) > 0)
        return EX_CONFIG;
    {
        vbuf tag;

        vbuf_init(&tag, 0);
        vbuf_printf(&tag, "%s/kitedrop", var_syslog_name);
        msg_init(tag.data);
        vbuf_release(&tag);
    }
    /* Log where the daemons do, when we may; errors also go to stderr. */
    if (*var_maillog_file == 0 || msg_logfile_open(var_maillog_file) < 0)
        msg_syslog_open();
    msg_stderr(0);
    msg_set_cleanup(kd_remove);
    if (chdir(var_queue_directory) < 0) {
        fprintf(stderr, "kitedrop: chdir %s: %s\n", var_queue_directory, strerror(errno));
        return EX_UNAVAILABLE;
    }
    vbuf_init(&err, 0);
    if ((kd_writer = qfile_create_mode(MAIL_QUEUE_MAILDROP, 0644, &err)) == NULL) {
        fprintf(stderr, "kitedrop: cannot create a file in maildrop: %s\n", err.data);
        msg_warn("uid=%ld: %s", (long) getuid(), err.data);
        return EX_CANTCREAT;
    }
    gettimeofday(&tv, NULL);
    snprintf(num, sizeof(num), "%ld", (long) getuid());
    if (qfile_put_attr(kd_writer, "uid", num) < 0)
        kd_fail(EX_IOERR, "write error");
    snprintf(num, sizeof(num), "%lld.%06ld", (long long) tv.tv_sec, (long) tv.tv_usec);
    if (qfile_put_attr(kd_writer, "arrival", num) < 0)
        kd_fail(EX_IOERR, "write error");

    {
        int code = kd_copy_records(kd_read, NULL, kd_writer, var_message_size_limit, &err);

        if (code != 0)
            kd_fail(code, err.data);
    }
    vbuf_reset(&err);
    {
        qfile_writer *w = kd_writer;
        char id[QUEUE_ID_SIZE];

        snprintf(id, sizeof(id), "%s", qfile_writer_id(w));
        kd_writer = NULL;
        if (qfile_finish(w, &err) < 0) {
            fprintf(stderr, "kitedrop: %s\n", err.data);
            msg_warn("uid=%ld: %s", (long) getuid(), err.data);
            return EX_IOERR;
        }
        if (msg_verbose) {
            msg_info("%s: queued in maildrop", id);
            printf("%s\n", id);
        }
    }
    vbuf_release(&err);
    /* pickup also scans maildrop/ on its own: a failed nudge loses nothing. */
    (void) mail_trigger("public/pickup", "wakeup");
    return EX_OK;
}
