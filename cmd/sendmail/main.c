/*
 * sendmail - the Sendmail-compatible submission command (also mailq and
 * newaliases).
 *
 * Mail (-bm, the default) is read from stdin, checked lightly, and handed
 * as queue-file records to kitedrop (setgid), which writes maildrop/;
 * pickup takes it from there, so submission works while the mail system is
 * down. -bs runs smtpd stand-alone (smtpd -S) on stdin/stdout; -bp and -q
 * run kitequeue; -bi builds alias_database; -bv (address verification) is refused for now.
 * Exit codes are sysexits.h's; kitedrop's status is passed on.
 *
 * Trusts: the configuration; nothing in the message (kitedrop, pickup and
 * cleanup check it again).
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addr.h"
#include "clean_env.h"
#include "conf.h"
#include "maps.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "qfile.h"
#include "sendmail.h"
#include "strutil.h"

#define SM_CHUNK (64 * 1024)
#define SM_HEADER_MAX (1024 * 1024) /* header bytes kept for the -t check */

static const char *sm_confdir;

/* sm_die - a fatal error: message on stderr (and in the log), exit code */
static void sm_die(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void sm_die(int code, const char *fmt, ...)
{
    va_list ap;
    vbuf text;

    vbuf_init(&text, 0);
    va_start(ap, fmt);
    vbuf_vprintf(&text, fmt, ap);
    va_end(ap);
    fprintf(stderr, "sendmail: fatal: %s\n", text.data);
    msg_stderr(0);
    msg_warn("%s", text.data);
    vbuf_release(&text);
    exit(code);
}

/* sm_env - the environment for programs we start */
static char **sm_env(void)
{
    const char *extra[3] = {NULL, NULL, NULL};
    const char *fault = getenv("KITE_FAULT_WRITES");
    vbuf conf, f;
    char **env;

    vbuf_init(&conf, 0);
    vbuf_init(&f, 0);
    vbuf_printf(&conf, "KITE_CONFIG_DIR=%s", sm_confdir);
    extra[0] = conf.data;
    if (fault) {
        /* The crash-point tests: honoured only where the program is not set-id. */
        vbuf_printf(&f, "KITE_FAULT_WRITES=%s", fault);
        extra[1] = f.data;
    }
    env = clean_env_build(var_import_environment, extra);
    vbuf_release(&conf);
    vbuf_release(&f);
    return env;
}

/* sm_exec - replace this process with a Kite program */
static void sm_exec(const char *dir, const char *prog, const char *const *args) __attribute__((noreturn));
static void sm_exec(const char *dir, const char *prog, const char *const *args)
{
    char *argv[16];
    vbuf path;
    int n = 0;

    vbuf_init(&path, 0);
    vbuf_printf(&path, "%s/%s", dir, prog);
    argv[n++] = (char *) prog;
    for (int i = 0; args[i] && n < 15; i++)
        argv[n++] = (char *) args[i];
    argv[n] = NULL;
    execve(path.data, argv, sm_env());
    sm_die(EX_UNAVAILABLE, "cannot run %s: %s", path.data, strerror(errno));
}

/* ---- records to kitedrop ---- */

typedef struct sm_out {
    int fd;
    int broken;
} sm_out;

/* sm_write_all - write everything (kitedrop may have gone: broken) */
static void sm_write_all(sm_out *o, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0 && !o->broken) {
        ssize_t n = write(o->fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            o->broken = 1;
            return;
        }
        p += n;
        len -= (size_t) n;
    }
}

/* sm_record - one record: type, 4-byte length, data */
static void sm_record(sm_out *o, int type, const void *data, size_t len)
{
    unsigned char hdr[5] = {(unsigned char) type, (unsigned char) (len >> 24), (unsigned char) (len >> 16),
                            (unsigned char) (len >> 8), (unsigned char) len};

    sm_write_all(o, hdr, sizeof(hdr));
    if (len)
        sm_write_all(o, data, len);
}

/* sm_attr - an 'A' record */
static void sm_attr(sm_out *o, const char *name, const char *value)
{
    vbuf rec;

    vbuf_init(&rec, 0);
    vbuf_printf(&rec, "%s=%s", name, value);
    sm_record(o, 'A', rec.data, rec.len);
    vbuf_release(&rec);
}

/* ---- reading the message ---- */

typedef struct sm_in {
    char buf[SM_CHUNK];
    size_t start, end;
    int eof;
} sm_in;

/* sm_getline - next line incl. its LF into line (pieces of SM_CHUNK); 0 at EOF */
static int sm_getline(sm_in *in, vbuf *line)
{
    vbuf_reset(line);
    for (;;) {
        if (in->start < in->end) {
            char *nl = memchr(in->buf + in->start, '\n', in->end - in->start);
            size_t n = nl ? (size_t) (nl - (in->buf + in->start)) + 1 : in->end - in->start;

            if (line->len + n > SM_CHUNK)
                n = SM_CHUNK - line->len;
            vbuf_append(line, in->buf + in->start, n);
            in->start += n;
            if ((nl && line->data[line->len - 1] == '\n') || line->len >= SM_CHUNK)
                return 1;
            continue;
        }
        if (in->eof)
            return line->len > 0;
        {
            ssize_t n = read(0, in->buf, sizeof(in->buf));

            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                sm_die(EX_IOERR, "read standard input: %s", strerror(errno));
            if (n == 0)
                in->eof = 1;
            in->start = 0;
            in->end = (size_t) n;
        }
    }
}

/* sm_count_addr - addr_parse_list callback */
static void sm_count_addr(const char *addr, void *ctx)
{
    if (*addr)
        ++*(int *) ctx;
}

/* sm_header_rcpts - recipients in To/Cc/Bcc (or Resent-*) of a header section */
static int sm_header_rcpts(const char *headers)
{
    int count = 0;
    const char *p = headers;

    while (*p) {
        const char *end = p;
        vbuf h;

        /* One logical header: continuation lines start with white space. */
        do {
            const char *nl = strchr(end, '\n');

            end = nl ? nl + 1 : end + strlen(end);
        } while (*end == ' ' || *end == '\t');
        vbuf_init(&h, 0);
        vbuf_setn(&h, p, (size_t) (end - p));
        for (const char *names[] = {"to:", "cc:", "bcc:", "resent-to:", "resent-cc:", "resent-bcc:", NULL}, **n = names;
             *n; n++) {
            if (strncasecmp(h.data, *n, strlen(*n)) == 0) {
                (void) addr_parse_list(h.data + strlen(*n), sm_count_addr, &count);
                break;
            }
        }
        vbuf_release(&h);
        p = end;
    }
    return count;
}

/* sm_login_name - the invoking user's name */
static const char *sm_login_name(void)
{
    struct passwd *pw = getpwuid(getuid());

    if (pw == NULL)
        sm_die(EX_OSERR, "no login name found for user ID %ld", (long) getuid());
    return xstrdup(pw->pw_name);
}

/* sm_submit - queue a message (or a -bv probe) through kitedrop */
static int sm_submit(const sendmail_opts *o)
{
    const char *sender = o->sender ? o->sender : sm_login_name();
    int pfd[2], status;
    pid_t pid;
    sm_out out = {-1, 0};
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    if (pipe2(pfd, O_CLOEXEC) < 0)
        sm_die(EX_OSERR, "pipe: %s", strerror(errno));
    if ((pid = fork()) < 0)
        sm_die(EX_OSERR, "fork: %s", strerror(errno));
    if (pid == 0) {
        const char *args[] = {"-c", sm_confdir, o->verbose ? "-v" : NULL, NULL};

        if (dup2(pfd[0], 0) < 0)
            _exit(EX_OSERR);
        sm_exec(var_command_directory, "kitedrop", args);
    }
    close(pfd[0]);
    out.fd = pfd[1];

    sm_attr(&out, "sender", sender);
    if (o->fullname)
        sm_attr(&out, "fullname", o->fullname);
    if (o->envid)
        sm_attr(&out, "envid", o->envid);
    if (o->ret)
        sm_attr(&out, "ret", o->ret);
    if (o->body)
        sm_attr(&out, "body", o->body);
    if (o->smtputf8)
        sm_attr(&out, "smtputf8", "1");
    if (o->extract)
        sm_attr(&out, "extract", "1");
    if (o->mode == SM_MODE_VERIFY)
        sm_attr(&out, "verify", "1");
    for (int i = 0; i < o->nrcpt; i++) {
        if (o->notify) {
            char num[8];

            snprintf(num, sizeof(num), "%d", o->notify);
            sm_record(&out, 'N', num, strlen(num));
        }
        {
            vbuf r;

            vbuf_init(&r, 0);
            vbuf_printf(&r, "-%s", o->rcpts[i]);
            sm_record(&out, 'R', r.data, r.len);
            vbuf_release(&r);
        }
    }
    sm_record(&out, 'M', "", 0);

    if (o->mode == SM_MODE_VERIFY) {
        const char probe[] = "Subject: address verification probe\n\n";

        sm_record(&out, 'C', probe, sizeof(probe) - 1);
    } else {
        sm_in *in = xcalloc(1, sizeof(*in));
        vbuf line, chunk, headers;
        int first = 1, in_headers = 1;

        vbuf_init(&line, 0);
        vbuf_init(&chunk, 0);
        vbuf_init(&headers, 0);
        while (sm_getline(in, &line)) {
            int has_lf = line.data[line.len - 1] == '\n';

            /* A leading mbox "From " line is not part of the message. */
            if (first && has_lf && strncmp(line.data, "From ", 5) == 0) {
                first = 0;
                continue;
            }
            first = 0;
            /* Without -i, a line with only "." ends the message. */
            if (!o->ignore_dots && (strcmp(line.data, ".\n") == 0 || strcmp(line.data, ".\r\n") == 0))
                break;
            if (in_headers) {
                if (strcmp(line.data, "\n") == 0 || strcmp(line.data, "\r\n") == 0)
                    in_headers = 0;
                else if (headers.len + line.len < SM_HEADER_MAX)
                    vbuf_append(&headers, line.data, line.len);
            }
            vbuf_append(&chunk, line.data, line.len);
            if (chunk.len >= SM_CHUNK) {
                sm_record(&out, 'C', chunk.data, chunk.len);
                vbuf_reset(&chunk);
            }
        }
        if (chunk.len > 0)
            sm_record(&out, 'C', chunk.data, chunk.len);
        if (o->extract && o->nrcpt == 0 && sm_header_rcpts(headers.data) == 0) {
            /* kitedrop sees no end marker and keeps nothing. */
            close(out.fd);
            waitpid(pid, &status, 0);
            sm_die(EX_DATAERR, "No recipient addresses found in message header");
        }
        vbuf_release(&line);
        vbuf_release(&chunk);
        vbuf_release(&headers);
        xfree(in);
    }
    sm_record(&out, 'E', "", 0);
    close(out.fd);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            sm_die(EX_OSERR, "waitpid: %s", strerror(errno));
    if (WIFSIGNALED(status))
        sm_die(EX_SOFTWARE, "kitedrop died with signal %d: message not queued", WTERMSIG(status));
    if (WEXITSTATUS(status) != 0)
        return WEXITSTATUS(status); /* kitedrop said why on stderr */
    if (out.broken)
        sm_die(EX_IOERR, "lost connection to kitedrop: message not queued");
    if (o->mode == SM_MODE_VERIFY)
        printf("Mail Delivery Status Report will be mailed to <%s>.\n", sender);
    return EX_OK;
}

/* sm_newaliases - build every table in alias_database */
static int sm_newaliases(void)
{
    char *copy = xstrdup(var_alias_database), *cursor = copy, *spec;
    int ret = EX_OK;
    vbuf err;

    vbuf_init(&err, 0);
    while ((spec = str_token(&cursor, CHARS_COMMA_SPACE)) != NULL) {
        vbuf_reset(&err);
        if (map_build(spec, MAP_BUILD_ALIASES, &err) < 0) {
            fprintf(stderr, "newaliases: %s: %s\n", spec, err.data);
            ret = EX_CANTCREAT;
        }
    }
    vbuf_release(&err);
    xfree(copy);
    return ret;
}

int main(int argc, char **argv)
{
    sendmail_opts o;
    vbuf err;
    int rc;

    msg_init("sendmail");
    vbuf_init(&err, 0);
    if ((rc = sendmail_parse(argc, argv, &o, &err)) != 0) {
        fprintf(stderr, "sendmail: %s\n", err.data);
        return rc;
    }
    sm_confdir = o.confdir ? o.confdir : conf_dir_default();
    if (conf_load(sm_confdir) > 0)
        sm_die(EX_CONFIG, "%s/main.cf: configuration errors", sm_confdir);
    {
        vbuf tag;

        vbuf_init(&tag, 0);
        vbuf_printf(&tag, "%s/sendmail", var_syslog_name);
        msg_init(tag.data);
        vbuf_release(&tag);
    }
    if (*var_maillog_file == 0 || msg_logfile_open(var_maillog_file) < 0)
        msg_syslog_open();
    msg_verbose = o.verbose;

    switch (o.mode) {
    case SM_MODE_MAILQ: {
        const char *args[] = {"-c", sm_confdir, "-p", NULL};

        sm_exec(var_command_directory, "kitequeue", args);
    }
    case SM_MODE_FLUSH: {
        const char *args[] = {"-c", sm_confdir,
                              o.flush_site ? "-s"
                              : o.flush_id ? "-i"
                                           : "-f",
                              o.flush_site ? o.flush_site : o.flush_id, NULL};

        sm_exec(var_command_directory, "kitequeue", args);
    }
    case SM_MODE_NEWALIASES:
        return sm_newaliases();
    case SM_MODE_SMTP: {
        const char *args[] = {"-S", "-c", sm_confdir, "-n", "sendmail", NULL};

        sm_exec(var_daemon_directory, "smtpd", args);
    }
    case SM_MODE_VERIFY:    /* a probe (verify=1): the agents resolve, bounce reports */
    case SM_MODE_DELIVER:
        return sm_submit(&o);
    case SM_MODE_DAEMON:
        break;
    }
    return EX_USAGE;
}
