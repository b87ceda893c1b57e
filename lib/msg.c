/*
 * msg - diagnostics in Postfix's log line format (see msg.h).
 *
 * Formatting happens into a fixed stack buffer with vsnprintf, so logging
 * never allocates and works when memory is exhausted. Each line reaches the
 * log file with one write(2) on an O_APPEND descriptor, so lines from many
 * processes do not interleave.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "msg.h"

#define MSG_LINE_MAX 4096

int msg_verbose;

static char msg_tag_buf[128] = "kite";
static int msg_to_stderr = 1;
static int msg_to_syslog;
static int msg_log_fd = -1;
static int msg_errors;
static int msg_in_fatal;
static void (*msg_cleanup_fn)(void);
static void (*msg_capture_fn)(enum msg_level, const char *);

static const char *const msg_prefix[] = {
    [MSG_INFO] = "",
    [MSG_WARN] = "warning: ",
    [MSG_ERROR] = "error: ",
    [MSG_FATAL] = "fatal: ",
    [MSG_PANIC] = "panic: ",
};

/* msg_init - set the program tag; stderr output is on by default */
void msg_init(const char *tag)
{
    snprintf(msg_tag_buf, sizeof(msg_tag_buf), "%s", tag);
    if (msg_to_syslog) {
        closelog();
        openlog(msg_tag_buf, LOG_PID | LOG_NDELAY, LOG_MAIL);
    }
}

/* msg_tag - the current program tag */
const char *msg_tag(void)
{
    return msg_tag_buf;
}

/* msg_syslog_open - send messages to syslog, facility mail */
int msg_syslog_open(void)
{
    openlog(msg_tag_buf, LOG_PID | LOG_NDELAY, LOG_MAIL);
    msg_to_syslog = 1;
    return 0;
}

/* msg_syslog_close - stop sending to syslog */
void msg_syslog_close(void)
{
    if (msg_to_syslog)
        closelog();
    msg_to_syslog = 0;
}

/* msg_logfile_open - append to a log file; opened before any chroot */
int msg_logfile_open(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);

    if (fd < 0)
        return -1;
    if (msg_log_fd >= 0)
        close(msg_log_fd);
    msg_log_fd = fd;
    return 0;
}

/* msg_logfile_close - stop writing the log file */
void msg_logfile_close(void)
{
    if (msg_log_fd >= 0)
        close(msg_log_fd);
    msg_log_fd = -1;
}

/* msg_stderr - turn stderr output on or off */
void msg_stderr(int on)
{
    msg_to_stderr = on;
}

void msg_set_cleanup(void (*fn)(void))
{
    msg_cleanup_fn = fn;
}

void msg_set_capture(void (*fn)(enum msg_level, const char *))
{
    msg_capture_fn = fn;
}

int msg_error_count(void)
{
    return msg_errors;
}

/* write_all - write a whole buffer, retrying on EINTR; errors are ignored */
static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t) n;
    }
}

/* msg_line_end - length to write of a snprintf'd line; a truncated line still ends in '\n' */
static size_t msg_line_end(char *line, size_t size, int n)
{
    if ((size_t) n < size)
        return (size_t) n;
    line[size - 2] = '\n';
    return size - 1;
}

/*
 * The log file's host name and pid, looked up once: a uname and a getpid
 * per line are system calls on every line. A forked child looks its own
 * pid up again (msg_forked, registered with pthread_atfork).
 */
static char msg_host[256];
static long msg_pid;
static int msg_pid_cached;

/* msg_forked - in a new child: its own pid on the next line */
static void msg_forked(void)
{
    msg_pid = 0;
}

/* msg_stamp_ids - fill msg_host and msg_pid when they are not known */
static void msg_stamp_ids(void)
{
    static int tried;

    if (!tried) {
        tried = 1;
        msg_pid_cached = pthread_atfork(NULL, NULL, msg_forked) == 0;
    }
    if (msg_pid == 0 || !msg_pid_cached)
        msg_pid = (long) getpid();
    if (msg_host[0] == 0 && gethostname(msg_host, sizeof(msg_host)) < 0)
        snprintf(msg_host, sizeof(msg_host), "localhost");
    msg_host[sizeof(msg_host) - 1] = 0;
}

/* msg_emit - send one formatted message to every output */
static void msg_emit(enum msg_level level, const char *text)
{
    static const int prio[] = {LOG_INFO, LOG_WARNING, LOG_ERR, LOG_CRIT, LOG_CRIT};
    char line[MSG_LINE_MAX + 256];
    int n;

    if (msg_capture_fn)
        msg_capture_fn(level, text);
    if (msg_to_syslog)
        syslog(prio[level], "%s%s", msg_prefix[level], text);
    if (msg_log_fd >= 0) {
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;

        if (localtime_r(&now, &tm) == NULL || strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm) == 0)
            snprintf(stamp, sizeof(stamp), "-");
        msg_stamp_ids();
        n = snprintf(line, sizeof(line), "%s %s %s[%ld]: %s%s\n", stamp, msg_host, msg_tag_buf, msg_pid,
                     msg_prefix[level], text);
        if (n > 0)
            write_all(msg_log_fd, line, msg_line_end(line, sizeof(line), n));
    }
    if (msg_to_stderr) {
        n = snprintf(line, sizeof(line), "%s: %s%s\n", msg_tag_buf, msg_prefix[level], text);
        if (n > 0)
            write_all(STDERR_FILENO, line, msg_line_end(line, sizeof(line), n));
    }
}

/* msg_vprintf - format and emit; fatal and panic do not return */
void msg_vprintf(enum msg_level level, const char *fmt, va_list ap)
{
    char text[MSG_LINE_MAX];
    int saved_errno = errno;

    errno = saved_errno;                        /* %m reads errno */
    vsnprintf(text, sizeof(text), fmt, ap);
    /*
     * Text from the network ends up here; a CR or LF in it would forge a log
     * line for pflogsumm or fail2ban, an ESC would drive a terminal. ASCII
     * control characters become '?'; 8-bit (UTF-8) bytes stay.
     */
    for (char *p = text; *p; p++)
        if ((unsigned char) *p < 0x20 || *p == 0x7f)
            *p = '?';
    msg_emit(level, text);
    if (level == MSG_ERROR)
        msg_errors++;
    errno = saved_errno;
}

void msg_info(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    msg_vprintf(MSG_INFO, fmt, ap);
    va_end(ap);
}

void msg_warn(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    msg_vprintf(MSG_WARN, fmt, ap);
    va_end(ap);
}

void msg_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    msg_vprintf(MSG_ERROR, fmt, ap);
    va_end(ap);
}

void msg_fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    msg_vprintf(MSG_FATAL, fmt, ap);
    va_end(ap);
    if (!msg_in_fatal && msg_cleanup_fn) {
        msg_in_fatal = 1;
        msg_cleanup_fn();
    }
    exit(1);
}

void msg_panic(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    msg_vprintf(MSG_PANIC, fmt, ap);
    va_end(ap);
    abort();
}
