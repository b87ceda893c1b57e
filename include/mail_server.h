/*
 * mail_server - the daemon skeleton: every daemon's main() hands control
 * to one of these with a service callback and optional hooks.
 *
 * The skeleton parses the command line master gives
 *     NAME [-c confdir] [-n service_name] [-t type] [-o name=value]... [-v] [-S] [args]
 * loads main.cf (with the -o overrides), opens the log, calls pre_jail
 * (still privileged: open keys, tables, sockets), changes to
 * queue_directory, chroots if master says so, drops privileges to
 * mail_owner when started as root and the service is unprivileged
 * (setgroups, setgid, setuid, then checks getuid/geteuid), calls post_jail,
 * then accepts clients on the listening socket master passed, reports
 * busy/idle to master, and exits after max_use clients or max_idle seconds
 * idle. With -S the service runs once on stdin/stdout (for tests and
 * sendmail -bs).
 *
 * Three shapes, after Postfix's:
 *   single_server  - one client at a time; the callback owns the
 *                    connection until it returns.
 *   multi_server   - many clients per process on the event loop; the
 *                    callback registers its own events and calls
 *                    multi_server_disconnect() when a client is done.
 *   trigger_server - short requests: each connection carries one attr
 *                    frame ({request = NAME, ...}); the callback may write
 *                    one reply frame. Master's wakeup timer sends
 *                    {request = "wakeup"}.
 *
 * Details every daemon can rely on:
 *   - single and trigger servers: the skeleton closes the client stream
 *     after the callback returns; SIGTERM (stop, reload) lets the current
 *     client finish, then the process exits.
 *   - multi and trigger servers run on events.h: the service may add its
 *     own descriptors and timers. multi_server: SIGTERM stops accepting and
 *     the process exits when its last client is disconnected.
 *   - Privileges: as root the skeleton drops to mail_owner unless the
 *     daemon sets keep_root and master.cf says unpriv=n; it refuses to run
 *     when mail_owner is missing or has uid/gid 0. Not root: no change.
 *   - Logging: maillog_file when set (opened before chroot), else syslog;
 *     the tag is "<syslog_name>/<program>" ("kite/smtpd"; with
 *     "-o syslog_name=kite/submission": "kite/submission/smtpd").
 *   - unlimited: the process never exits for max_use/max_idle (qmgr).
 *   - The service name (mail_server_service()) tells apart services that
 *     share a program, e.g. "local" and "virtual" both run local.
 */
#ifndef KITE_MAIL_SERVER_H
#define KITE_MAIL_SERVER_H

#include "attr.h"
#include "stream.h"

typedef struct mail_server_hooks {
    void (*pre_jail)(const char *service, char **argv);
    void (*post_jail)(const char *service, char **argv);
    void (*pre_exit)(void);
    int keep_root;                      /* local: stays root (unpriv=n) */
    int unlimited;                      /* ignore max_use and max_idle (qmgr) */
} mail_server_hooks;

typedef void (*single_service_fn)(stream *client, const char *service, char **argv);
typedef void (*multi_service_fn)(int client_fd, const char *service, char **argv);
typedef void (*trigger_service_fn)(stream *client, attr_list *request, const char *service, char **argv);

void single_server_main(int argc, char **argv, single_service_fn fn, const mail_server_hooks *hooks)
    __attribute__((noreturn));
void multi_server_main(int argc, char **argv, multi_service_fn fn, const mail_server_hooks *hooks)
    __attribute__((noreturn));
void multi_server_disconnect(int client_fd);
void trigger_server_main(int argc, char **argv, trigger_service_fn fn, const mail_server_hooks *hooks)
    __attribute__((noreturn));

/* The service's name and type as master.cf gives them ("smtp", "inet"). */
const char *mail_server_service(void);
const char *mail_server_type(void);

/*
 * mail_server_connect - connect to a local service ("private/cleanup");
 * a non-blocking fd (for stream_open), or -1. A full listen queue is tried
 * again every 20 ms for up to timeout seconds (0: once).
 */
int mail_server_connect(const char *path, int timeout);
/* mail_trigger - send {request = request} to a public service, no reply; one attempt, never waits */
int mail_trigger(const char *path, const char *request);

/*
 * mail_request - send FRAME to a local service and read its {status, text}
 * answer, all within one deadline of timeout seconds (connecting counts).
 * Returns MAIL_REQUEST_OK, MAIL_REQUEST_REFUSED (text: the service's text),
 * MAIL_REQUEST_FAILED (no valid answer) or MAIL_REQUEST_DOWN (could not
 * connect); text says why for the last two. FRAME is reused for the answer.
 * answer_status (may be NULL) gets the service's status number, -1 when
 * there was no valid answer.
 */
#define MAIL_REQUEST_OK 0
#define MAIL_REQUEST_REFUSED 1
#define MAIL_REQUEST_FAILED (-1)
#define MAIL_REQUEST_DOWN (-2)
int mail_request(const char *path, attr_list *frame, int timeout, vbuf *text, long long *answer_status);

/*
 * How master starts a daemon (the skeleton reads these; daemons need not):
 *
 *   -u      unpriv=y: drop to mail_owner (always done unless keep_root)
 *   -r      chroot=y: chroot to queue_directory (only when started as root)
 *   -s N    N listening sockets (default 1; an inet service gets one per
 *           address in inet_interfaces)
 *
 * Descriptors: the listening sockets are MAIL_SERVER_LISTEN_FD and up
 * (non-blocking; several children accept on them); MAIL_SERVER_STATUS_FD is
 * the write end of the service's status pipe. A child writes one
 * mail_server_status record per state change (atomic on a pipe) and sees
 * POLLERR on the status descriptor when master is gone. SIGTERM asks a
 * child to finish its current client and exit.
 */
#define MAIL_SERVER_STATUS_FD  5
#define MAIL_SERVER_LISTEN_FD  6
#define MAIL_SERVER_MAX_LISTEN 16

#define MAIL_SERVER_STAT_AVAIL 0        /* waiting for a client */
#define MAIL_SERVER_STAT_BUSY  1        /* serving; master may spawn another */

typedef struct mail_server_status {
    int pid;
    int status;                         /* MAIL_SERVER_STAT_* */
} mail_server_status;

/* mail_server_args - master.cf arguments left after the skeleton's options */
char **mail_server_args(void);

#endif
