/*
 * kitecat - show a queue file's records in readable form (postcat-style).
 *
 * Usage: kitecat [-c confdir] [-e] [-h] [-b] [-q] ID-or-file...
 *   -e  envelope records    -h  message headers    -b  message body
 *   (none of -e/-h/-b: everything)
 *   -q  the arguments are queue IDs, looked up in the queues (an argument
 *       that is a valid queue ID and no file in the current directory is
 *       looked up anyway)
 * Output sections as Postfix's postcat: "*** ENVELOPE RECORDS path ***",
 * "*** MESSAGE CONTENTS path ***", "*** HEADER EXTRACTED path ***",
 * "*** MESSAGE FILE END path ***".
 *
 * Trusts: nothing in the file; it goes through the strict reader, and
 * control characters in envelope values are shown escaped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "mail_queue.h"
#include "msg.h"
#include "params.h"
#include "qfile.h"

#define SHOW_ENV (1 << 0)
#define SHOW_HDR (1 << 1)
#define SHOW_BODY (1 << 2)

/* kc_find - the path of ID in the first queue that has it; 0 or -1 */
static int kc_find(const char *id, vbuf *path)
{
    static const char *const queues[] = {MAIL_QUEUE_INCOMING,
                                         MAIL_QUEUE_ACTIVE,
                                         MAIL_QUEUE_DEFERRED,
                                         MAIL_QUEUE_HOLD,
                                         MAIL_QUEUE_MAILDROP,
                                         MAIL_QUEUE_CORRUPT,
                                         NULL};
    struct stat st;
    vbuf rel;

    vbuf_init(&rel, 0);
    for (int i = 0; queues[i]; i++) {
        mail_queue_path(&rel, queues[i], id);
        vbuf_reset(path);
        vbuf_printf(path, "%s/%s", var_queue_directory, rel.data);
        if (stat(path->data, &st) == 0) {
            vbuf_release(&rel);
            return 0;
        }
    }
    vbuf_release(&rel);
    return -1;
}

/* kc_print_value - a value with control characters escaped */
static void kc_print_value(const char *label, const char *value)
{
    fputs(label, stdout);
    fputs(": ", stdout);
    for (const unsigned char *p = (const unsigned char *) value; *p; p++) {
        if (*p < 32 || *p == 127)
            printf("\\%03o", *p);
        else
            putchar(*p);
    }
    putchar('\n');
}

/* kc_show - one file */
static int kc_show(const char *path, int what)
{
    qfile_content it;
    const char *data;
    vbuf err, line;
    ssize_t n;
    qfile *q;
    int in_headers = 1, at_line_start = 1;

    vbuf_init(&err, 0);
    if ((q = qfile_open(path, 0, &err)) == NULL) {
        fprintf(stderr, "kitecat: %s\n", err.data);
        vbuf_release(&err);
        return -1;
    }
    vbuf_release(&err);
    if (what & SHOW_ENV) {
        printf("*** ENVELOPE RECORDS %s ***\n", path);
        printf("message_size: %20lld\n", q->size);
        printf("warning_time: %lld\n", q->warn_time);
        for (size_t i = 0; i < q->nattr; i++) {
            if (strcmp(q->attr_names[i], "arrival") == 0) {
                time_t t = (time_t) strtoll(q->attr_values[i], NULL, 10);
                char buf[64];

                strftime(buf, sizeof(buf), "%a %b %e %H:%M:%S %Y", localtime(&t));
                printf("message_arrival_time: %s\n", buf);
            }
            kc_print_value(q->attr_names[i], q->attr_values[i]);
        }
        for (size_t i = 0; i < q->nrcpt; i++) {
            const qfile_rcpt *r = q->rcpts + i;

            if (r->orcpt)
                kc_print_value("original_recipient_dsn", r->orcpt);
            if (r->orig)
                kc_print_value("original_recipient", r->orig);
            if (r->notify)
                printf("notify_flags: %d\n", r->notify);
            kc_print_value(r->done ? "done_recipient" : "recipient", r->address);
        }
    }
    if (what & (SHOW_HDR | SHOW_BODY)) {
        printf("*** MESSAGE CONTENTS %s ***\n", path);
        vbuf_init(&line, 0);
        qfile_content_begin(q, &it);
        while ((n = qfile_content_next(&it, &data)) > 0) {
            for (ssize_t i = 0; i < n; i++) {
                char c = data[i];

                /* Headers end at the first empty line. */
                if (in_headers && at_line_start && (c == '\r' || c == '\n')) {
                    if (c == '\n') {
                        in_headers = 0;
                        if (what & SHOW_HDR)
                            putchar('\n');
                        if ((what & SHOW_HDR) && (what & SHOW_BODY) == 0)
                            goto done;
                    }
                    continue;
                }
                at_line_start = c == '\n';
                if (c == '\r' && i + 1 < n && data[i + 1] == '\n')
                    continue; /* shown with local line ends */
                if ((in_headers && (what & SHOW_HDR)) || (!in_headers && (what & SHOW_BODY)))
                    putchar(c);
            }
        }
    done:
        qfile_content_end(&it);
        vbuf_release(&line);
        if (n < 0) {
            fprintf(stderr, "kitecat: %s: read error: %s\n", path, strerror(errno));
            qfile_close(q);
            return -1;
        }
    }
    printf("*** MESSAGE FILE END %s ***\n", path);
    qfile_close(q);
    return 0;
}

int main(int argc, char **argv)
{
    const char *confdir = NULL;
    int what = 0, by_id = 0, ret = EX_OK, ch;
    vbuf path;

    msg_init("kitecat");
    while ((ch = getopt(argc, argv, "c:ehbqv")) != -1) {
        switch (ch) {
        case 'c':
            confdir = optarg;
            break;
        case 'e':
            what |= SHOW_ENV;
            break;
        case 'h':
            what |= SHOW_HDR;
            break;
        case 'b':
            what |= SHOW_BODY;
            break;
        case 'q':
            by_id = 1;
            break;
        case 'v':
            msg_verbose++;
            break;
        default:
            fprintf(stderr, "usage: kitecat [-c confdir] [-e] [-h] [-b] [-q] ID-or-file...\n");
            return EX_USAGE;
        }
    }
    if (what == 0)
        what = SHOW_ENV | SHOW_HDR | SHOW_BODY;
    if (optind >= argc) {
        fprintf(stderr, "usage: kitecat [-c confdir] [-e] [-h] [-b] [-q] ID-or-file...\n");
        return EX_USAGE;
    }
    if (conf_load(confdir ? confdir : conf_dir_default()) > 0)
        return EX_CONFIG;
    vbuf_init(&path, 0);
    for (int i = optind; i < argc; i++) {
        struct stat st;

        if (by_id || (queue_id_valid(argv[i]) && stat(argv[i], &st) < 0)) {
            if (kc_find(argv[i], &path) < 0) {
                fprintf(stderr, "kitecat: no message %s in the queue\n", argv[i]);
                ret = EX_NOINPUT;
                continue;
            }
        } else {
            vbuf_set(&path, argv[i]);
        }
        if (kc_show(path.data, what) < 0)
            ret = EX_DATAERR;
    }
    vbuf_release(&path);
    return ret;
}
