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
#include "strutil.h"

/* The attributes a local user may set. */
static const char *const kd_allowed_attrs[] = {
    "sender", "fullname", "envid", "ret", "body", "smtputf8", "extract", "verify", NULL,
};

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
static int kd_read(void *buf, size_t len)
{
    char *p = buf;

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

/* kd_attr_allowed - is this attribute (name=value) one a user may give, with a sane value */
static int kd_attr_allowed(const char *name, const char *value)
{
    int known = 0;

    for (int i = 0; kd_allowed_attrs[i]; i++)
        if (strcmp(name, kd_allowed_attrs[i]) == 0)
            known = 1;
    if (!known)
        return 0;
    if (strcmp(name, "ret") == 0)
        return strcmp(value, "full") == 0 || strcmp(value, "hdrs") == 0;
    if (strcmp(name, "body") == 0)
        return strcmp(value, "7bit") == 0 || strcmp(value, "8bitmime") == 0;
    if (strcmp(name, "smtputf8") == 0 || strcmp(name, "extract") == 0 || strcmp(name, "verify") == 0)
        return strcmp(value, "0") == 0 || strcmp(value, "1") == 0;
    if (strcmp(name, "envid") == 0)
        return strlen(value) <= 100 && str_is_ascii_printable(value, strlen(value));
    return strlen(value) <= 1000;
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
    vbuf err, data;
    char *orcpt = NULL;
    int notify = 0, seen_content = 0, seen_end = 0, ch;
    long long content = 0;
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
    if (getegid() != getgid() && getuid() != 0) {
        /*
         * Set-gid for an ordinary user: only the built-in configuration,
         * never one the user points us at (its queue_directory or
         * maillog_file would be used with our group's rights).
         */
        if (confdir != NULL && strcmp(confdir, KITE_DEF_CONFIG_DIR) != 0) {
            fprintf(stderr, "kitedrop: -c is not allowed for unprivileged users\n");
            return EX_USAGE;
        }
        confdir = KITE_DEF_CONFIG_DIR;
    }
    if (confdir == NULL)
        confdir = conf_dir_default();
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

    vbuf_init(&data, QFILE_MAX_RECORD);
    while (!seen_end) {
        unsigned char hdr[5];
        size_t len;
        int type;

        if (kd_read(hdr, sizeof(hdr)) < 0)
            kd_fail(EX_DATAERR, "unexpected end of input: message not queued");
        type = hdr[0];
        len = ((size_t) hdr[1] << 24) | ((size_t) hdr[2] << 16) | ((size_t) hdr[3] << 8) | hdr[4];
        if (len > QFILE_MAX_RECORD)
            kd_fail(EX_DATAERR, "record too long");
        vbuf_reset(&data);
        if (vbuf_reserve(&data, len) < 0 || kd_read(data.data, len) < 0)
            kd_fail(EX_DATAERR, "unexpected end of input: message not queued");
        data.len = len;
        data.data[len] = 0;
        if (memchr(data.data, 0, len) != NULL && type != 'C')
            kd_fail(EX_DATAERR, "NUL byte in an envelope record");
        switch (type) {
        case 'A': {
            char *eq = strchr(data.data, '=');

            if (seen_content || eq == NULL)
                kd_fail(EX_DATAERR, "malformed attribute record");
            *eq = 0;
            if (!kd_attr_allowed(data.data, eq + 1))
                kd_fail(EX_DATAERR, "attribute not allowed");
            if (qfile_put_attr(kd_writer, data.data, eq + 1) < 0)
                kd_fail(EX_DATAERR, "bad attribute value");
            break;
        }
        case 'O':
            if (orcpt || len == 0)
                kd_fail(EX_DATAERR, "malformed recipient record");
            orcpt = xstrdup(data.data);
            break;
        case 'N': {
            long n;

            if (notify || str_to_long(data.data, &n) < 0 || n < 1 || n > 15)
                kd_fail(EX_DATAERR, "malformed notify record");
            notify = (int) n;
            break;
        }
        case 'R':
            if (len < 2 || data.data[0] != '-')
                kd_fail(EX_DATAERR, "malformed recipient record");
            if (qfile_put_rcpt(kd_writer, data.data + 1, orcpt, NULL, notify) < 0)
                kd_fail(EX_DATAERR, "bad recipient address");
            xfree(orcpt);
            orcpt = NULL;
            notify = 0;
            break;
        case 'M':
            if (seen_content || orcpt || notify || len != 0)
                kd_fail(EX_DATAERR, "malformed content marker");
            seen_content = 1;
            break;
        case 'C':
            if (!seen_content || len == 0)
                kd_fail(EX_DATAERR, "content out of place");
            content += (long long) len;
            if (var_message_size_limit > 0 && content > var_message_size_limit)
                kd_fail(EX_DATAERR, "message file too big");
            if (qfile_put_content(kd_writer, data.data, len) < 0)
                kd_fail(EX_IOERR, "write error");
            break;
        case 'E':
            if (!seen_content || orcpt || notify || len != 0)
                kd_fail(EX_DATAERR, "malformed end marker");
            seen_end = 1;
            break;
        default:
            kd_fail(EX_DATAERR, "unknown record type");
        }
    }
    {
        char extra;

        /* Anything after the end marker means the input is not what we think. */
        if (read(0, &extra, 1) > 0)
            kd_fail(EX_DATAERR, "data after the end marker");
    }
    vbuf_release(&data);
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
