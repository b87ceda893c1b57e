/*
 * kitequeue - the user's view of the queue (postqueue-style).
 *
 * Usage: kitequeue [-c confdir] [-v] -p | -j | -f | -s SITE | -i ID
 *   -p  listing in Postfix's mailq format ("*" active, "!" on hold,
 *       deferral reasons in parentheses, "-- N Kbytes in M Requests.")
 *   -j  one JSON object per message with postqueue -j's fields
 *   -f  deliver all deferred mail now         {request = "flush"}
 *   -s  deliver deferred mail for SITE now    {request = "flush_site", site}
 *       (qmgr refuses a site outside fast_flush_domains: an error naming
 *       the site and exit status EX_UNAVAILABLE, as postqueue -s; a site
 *       qmgr finds malformed: EX_USAGE)
 *   -i  deliver message ID now                {request = "deliver", queue_id}
 * The listing comes from the showq service (public/showq); the requests go
 * to qmgr (public/qmgr), which answers {status, text}. Nobody needs to read
 * queue files: when the mail system is down, root and mail_owner get the
 * listing from showq run directly, everyone else a clear error.
 *
 * Trusts: the configuration; showq's and qmgr's frames only as far as a
 * strict scan allows. Output escapes control characters. It may be
 * installed set-gid setgid_group (like postqueue) so that users reach
 * public/; then only the built-in configuration directory is accepted.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "clean_env.h"
#include "conf.h"
#include "domain_list.h"
#include "mail_server.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "queue_id.h"
#include "strutil.h"

#define KQ_FRAME_MAX (16 * 1024 * 1024)

static const char *kq_confdir;
static pid_t kq_showq_pid;

/* kq_fatal - message on stderr, exit code */
static void kq_fatal(int code, const char *text) __attribute__((noreturn));
static void kq_fatal(int code, const char *text)
{
    fprintf(stderr, "kitequeue: fatal: %s\n", text);
    exit(code);
}

/* kq_privileged - root or mail_owner (may run showq directly) */
static int kq_privileged(void)
{
    struct passwd *pw = getpwnam(var_mail_owner);

    return getuid() == 0 || (pw && pw->pw_uid == getuid());
}

/* kq_run_showq - the system is down: showq -S on a socket pair; fd or -1 */
static int kq_run_showq(void)
{
    int sv[2];
    vbuf path, conf;
    const char *extra[2];
    char **env;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    vbuf_init(&path, 0);
    vbuf_init(&conf, 0);
    vbuf_printf(&path, "%s/showq", var_daemon_directory);
    vbuf_printf(&conf, "KITE_CONFIG_DIR=%s", kq_confdir);
    extra[0] = conf.data;
    extra[1] = NULL;
    env = clean_env_build(var_import_environment, extra);
    if ((kq_showq_pid = fork()) < 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (kq_showq_pid == 0) {
        char *argv[] = {"showq", "-S", "-c", (char *) kq_confdir, NULL};

        if (dup2(sv[1], 0) < 0 || dup2(sv[1], 1) < 0)
            _exit(EX_OSERR);
        execve(path.data, argv, env);
        _exit(EX_UNAVAILABLE);
    }
    close(sv[1]);
    clean_env_free(env);
    vbuf_release(&path);
    vbuf_release(&conf);
    return sv[0];
}

/* kq_json_string - a JSON string with escapes (RFC 8259 §7) */
static void kq_json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

/* kq_safe - print text with control characters made visible */
static void kq_safe(const char *s)
{
    for (const unsigned char *p = (const unsigned char *) s; *p; p++)
        putchar(*p < 0x20 || *p == 0x7f ? '?' : *p);
}

typedef struct kq_msg {
    const char *queue, *id, *sender;
    long long arrival, size;
    const char **rcpt, **reason;
    size_t nrcpt;
} kq_msg;

/* kq_print_text - one message in mailq format */
static void kq_print_text(const kq_msg *m)
{
    char when[32];
    time_t t = (time_t) m->arrival;
    struct tm tm;
    int mark = strcmp(m->queue, "active") == 0 ? '*' : strcmp(m->queue, "hold") == 0 ? '!' : ' ';
    int indent;

    localtime_r(&t, &tm);
    strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm);
    indent = printf("%-10s%c%8lld %s  ", m->id, mark, m->size, when);
    kq_safe(*m->sender ? m->sender : "MAILER-DAEMON");
    putchar('\n');
    /* Recipients without a reason first, then each reason with its recipients. */
    for (size_t i = 0; i < m->nrcpt; i++) {
        if (*m->reason[i])
            continue;
        printf("%*s", indent, "");
        kq_safe(m->rcpt[i]);
        putchar('\n');
    }
    for (size_t i = 0; i < m->nrcpt; i++) {
        int seen = 0;

        if (*m->reason[i] == 0)
            continue;
        for (size_t k = 0; k < i; k++)
            if (strcmp(m->reason[k], m->reason[i]) == 0)
                seen = 1;
        if (seen)
            continue;
        putchar('(');
        kq_safe(m->reason[i]);
        printf(")\n");
        for (size_t k = i; k < m->nrcpt; k++) {
            if (strcmp(m->reason[k], m->reason[i]) != 0)
                continue;
            printf("%*s", indent, "");
            kq_safe(m->rcpt[k]);
            putchar('\n');
        }
    }
    putchar('\n');
}

/* kq_print_json - one message as postqueue -j does */
static void kq_print_json(const kq_msg *m)
{
    printf("{\"queue_name\": ");
    kq_json_string(m->queue);
    printf(", \"queue_id\": ");
    kq_json_string(m->id);
    printf(", \"arrival_time\": %lld, \"message_size\": %lld, \"forced_expire\": false, \"sender\": ", m->arrival,
           m->size);
    kq_json_string(m->sender);
    printf(", \"recipients\": [");
    for (size_t i = 0; i < m->nrcpt; i++) {
        printf("%s{\"address\": ", i ? ", " : "");
        kq_json_string(m->rcpt[i]);
        if (*m->reason[i]) {
            printf(", \"delay_reason\": ");
            kq_json_string(m->reason[i]);
        }
        putchar('}');
    }
    printf("]}\n");
}

/* kq_list - the listing from showq; json selects -j */
static int kq_list(int json)
{
    long long total = 0, count = 0;
    attr_list *f;
    stream *s;
    int fd, rd;

    if ((fd = mail_server_connect("public/showq", 5)) < 0) {
        if (!kq_privileged())
            kq_fatal(EX_UNAVAILABLE, "Queue report unavailable - mail system is down");
        if ((fd = kq_run_showq()) < 0)
            kq_fatal(EX_UNAVAILABLE, "Queue report unavailable - cannot run showq");
    }
    s = stream_open(fd);
    stream_set_timeout(s, 60);
    if (attr_expect_greeting(s, "showq") < 0)
        kq_fatal(EX_SOFTWARE, "Queue report unavailable - bad answer from showq");
    f = attr_new();
    for (;;) {
        kq_msg m;
        long long done = -1;
        attr_spec spec[] = {ATTR_SPEC_STR("queue_name", ATTR_OPTIONAL, &m.queue),
                            ATTR_SPEC_STR("queue_id", ATTR_OPTIONAL, &m.id),
                            ATTR_SPEC_INT("arrival", ATTR_OPTIONAL, &m.arrival),
                            ATTR_SPEC_INT("size", ATTR_OPTIONAL, &m.size),
                            ATTR_SPEC_STR("sender", ATTR_OPTIONAL, &m.sender),
                            ATTR_SPEC_STR("rcpt", ATTR_OPTIONAL | ATTR_REPEAT, NULL),
                            ATTR_SPEC_STR("reason", ATTR_OPTIONAL | ATTR_REPEAT, NULL),
                            ATTR_SPEC_INT("done", ATTR_OPTIONAL, &done),
                            ATTR_SPEC_END};
        size_t nr = 0, nreason = 0, n;

        memset(&m, 0, sizeof(m));
        if ((rd = attr_read(s, f, KQ_FRAME_MAX)) < 0)
            kq_fatal(EX_SOFTWARE, "Queue report unavailable - showq went away");
        if (attr_scan(f, spec) < 0)
            kq_fatal(EX_SOFTWARE, "Queue report unavailable - bad answer from showq");
        if (done >= 0)
            break;
        if (!m.queue || !m.id || !m.sender)
            kq_fatal(EX_SOFTWARE, "Queue report unavailable - bad answer from showq");
        n = attr_count(f);
        m.rcpt = xcalloc(n + 1, sizeof(char *));
        m.reason = xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
            const char *name;
            const void *value;
            size_t len;

            attr_nth(f, i, &name, &value, &len);
            if (strcmp(name, "rcpt") == 0)
                m.rcpt[nr++] = value;
            else if (strcmp(name, "reason") == 0)
                m.reason[nreason++] = value;
        }
        if (nr != nreason)
            kq_fatal(EX_SOFTWARE, "Queue report unavailable - bad answer from showq");
        m.nrcpt = nr;
        if (json) {
            kq_print_json(&m);
        } else {
            if (count == 0)
                printf("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
            kq_print_text(&m);
        }
        total += m.size;
        count++;
        xfree(m.rcpt);
        xfree(m.reason);
    }
    attr_free(f);
    stream_close(s);
    if (kq_showq_pid > 0) {
        int status;

        (void) waitpid(kq_showq_pid, &status, 0);
    }
    if (!json) {
        if (count == 0) {
            printf("Mail queue is empty\n");
        } else {
            printf("-- %lld Kbytes in %lld Request%s.\n", (total + 1023) / 1024, count, count == 1 ? "" : "s");
        }
    }
    return EX_OK;
}

/* kq_request - a request to qmgr with its answer; the exit status */
static int kq_request(const char *request, const char *name, const char *value, const char *what)
{
    attr_list *f = attr_new();
    long long status;
    vbuf text;
    int st;

    attr_put_str(f, "request", request);
    if (name)
        attr_put_str(f, name, value);
    vbuf_init(&text, 0);
    st = mail_request("public/qmgr", f, (int) var_trigger_timeout > 0 ? (int) var_trigger_timeout : 10, &text,
                      &status);
    if (st == MAIL_REQUEST_DOWN || st == MAIL_REQUEST_FAILED) {
        vbuf t;

        vbuf_init(&t, 0);
        vbuf_printf(&t, "Cannot %s - %s", what,
                    st == MAIL_REQUEST_DOWN ? "mail system is down" : "no answer from the queue manager");
        kq_fatal(EX_UNAVAILABLE, t.data);
    }
    if (st == MAIL_REQUEST_REFUSED) {
        if (strcmp(request, "flush_site") == 0 && status == FLUSH_STAT_DENY) {
            /* As postqueue -s: a site outside fast_flush_domains is refused, EX_UNAVAILABLE. */
            fprintf(stderr, "kitequeue: fatal: Cannot flush mail for site \"");
            for (const char *p = value; *p; p++)
                fputc((unsigned char) *p < 0x20 || (unsigned char) *p == 0x7f ? '?' : *p, stderr);
            fprintf(stderr, "\": it is not eligible for the fast flush service (fast_flush_domains)\n");
        } else {
            fprintf(stderr, "kitequeue: ");
            for (const char *p = vbuf_str(&text); *p; p++)
                fputc((unsigned char) *p < 0x20 ? '?' : *p, stderr);
            fputc('\n', stderr);
        }
    } else if (msg_verbose) {
        printf("%s\n", vbuf_str(&text));
    }
    attr_free(f);
    vbuf_release(&text);
    if (st == MAIL_REQUEST_OK)
        return EX_OK;
    /* As postqueue -s: a site qmgr finds malformed is a usage error. */
    return strcmp(request, "flush_site") == 0 && status == FLUSH_STAT_BAD ? EX_USAGE : EX_UNAVAILABLE;
}

int main(int argc, char **argv)
{
    int mode = 0, ch;
    const char *arg = NULL;
    struct sigaction sa;

    msg_init("kitequeue");
    msg_stderr(0);
    while ((ch = getopt(argc, argv, "c:pjfs:i:v")) != -1) {
        switch (ch) {
        case 'c':
            kq_confdir = optarg;
            break;
        case 'p':
        case 'j':
        case 'f':
            mode = ch;
            break;
        case 's':
        case 'i':
            mode = ch;
            arg = optarg;
            break;
        case 'v':
            msg_verbose++;
            break;
        default:
            mode = 0;
            optind = argc + 1;
            break;
        }
    }
    if (mode == 0 || optind != argc) {
        fprintf(stderr, "usage: kitequeue [-c confdir] [-v] -p | -j | -f | -s site | -i queue_id\n");
        return EX_USAGE;
    }
    if (kq_confdir == NULL)
        kq_confdir = conf_dir_default();
    /* Installed set-gid (to reach public/): the built-in configuration or one the administrator allows. */
    if (getegid() != getgid() && getuid() != 0 && !conf_dir_allowed_setgid(kq_confdir)) {
        vbuf why;

        vbuf_init(&why, 0);
        vbuf_printf(&why, "%s is not the built-in configuration directory nor listed in its "
                          "alternate_config_directories", kq_confdir);
        kq_fatal(EX_USAGE, vbuf_str(&why));
    }
    if (conf_load(kq_confdir) > 0)
        kq_fatal(EX_CONFIG, "configuration errors");
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    if (chdir(var_queue_directory) < 0)
        kq_fatal(EX_UNAVAILABLE, "cannot change to the queue directory");
    switch (mode) {
    case 'p':
        return kq_list(0);
    case 'j':
        return kq_list(1);
    case 'f':
        return kq_request("flush", NULL, NULL, "flush mail queue");
    case 's':
        /* The same request ETRN makes; qmgr checks the site's syntax. */
        if (strlen(arg) == 0 || strlen(arg) > 255 || strpbrk(arg, " \t\r\n") != NULL)
            kq_fatal(EX_USAGE, "bad site name");
        return kq_request("flush_site", "site", arg, "flush mail queue");
    case 'i':
        if (!queue_id_valid(arg))
            kq_fatal(EX_USAGE, "bad queue ID");
        return kq_request("deliver", "queue_id", arg, "flush mail queue");
    }
    return EX_USAGE;
}
