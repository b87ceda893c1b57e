/*
 * msg - diagnostics in Postfix's log line format.
 *
 * A fixed vocabulary: msg_info, msg_warn, msg_error (counted), msg_fatal
 * (run the cleanup hook, exit 1), msg_panic (a bug: abort with a core).
 * Formats support %m (glibc). Output goes to any combination of syslog
 * (facility mail, ident "<syslog_name>/<program>", LOG_PID), a log file in
 * syslog's line format ("Mon dd hh:mm:ss host kite/smtpd[pid]: text"), and
 * stderr ("kite/smtpd: text").
 */
#ifndef KITE_MSG_H
#define KITE_MSG_H

#include <stdarg.h>

enum msg_level { MSG_INFO, MSG_WARN, MSG_ERROR, MSG_FATAL, MSG_PANIC };

extern int msg_verbose;

/* msg_init - set the tag ("kite/smtpd", "kitemap"); stderr output on */
void msg_init(const char *tag);
const char *msg_tag(void);

/* Output selection. Each returns 0, or -1 with errno set. */
int msg_syslog_open(void);
int msg_logfile_open(const char *path);
void msg_stderr(int on);
void msg_syslog_close(void);
void msg_logfile_close(void);

/* Called before exit by msg_fatal (e.g. to remove a half-written file). */
void msg_set_cleanup(void (*fn)(void));

/* Tests: receive every formatted message (level, text without tag). */
void msg_set_capture(void (*fn)(enum msg_level, const char *));

/* Number of msg_error calls so far. */
int msg_error_count(void);

void msg_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void msg_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void msg_vprintf(enum msg_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#endif
