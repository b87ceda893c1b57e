/*
 * mail_server - the daemon skeleton (see mail_server.h): command line,
 * configuration, logging, the one place where privileges are dropped, and
 * the three accept loops (single, multi, trigger), plus the client side
 * helpers mail_server_connect() and mail_trigger().
 *
 * All processes of a service wait on the same listening sockets. Each
 * process registers them with EPOLLEXCLUSIVE, so a new connection wakes one
 * idle process instead of every one (which would all race to accept, and
 * all but one get EAGAIN); an accept that still finds nothing is harmless.
 *
 * Trusts: the descriptors master passes at the fixed numbers (checked with
 * fstat before use), main.cf. Trusts nothing a client sends: trigger frames
 * go through the strict attribute reader with a small size limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "conf.h"
#include "events.h"
#include "mail_server.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "stream.h"
#include "vbuf.h"

#define TRIGGER_FRAME_MAX (64 * 1024)
#define TRIGGER_READ_TIMEOUT 10

enum ms_kind { MS_SINGLE, MS_MULTI, MS_TRIGGER };

static const char *ms_service = "";
static const char *ms_type = "unix";
static char **ms_args;
static int ms_listen_count = 1;
static int ms_standalone;
static int ms_chroot;
static int ms_unpriv;
static const mail_server_hooks *ms_hooks;
static const mail_server_hooks ms_no_hooks;
static long ms_use_count;
static long ms_client_count; /* multi_server: open clients */
static int ms_status = -1;   /* last status reported */
static volatile sig_atomic_t ms_stop;
static multi_service_fn ms_multi_fn;
static trigger_service_fn ms_trigger_fn;

/* mail_server_service - the service name from master.cf */
const char *mail_server_service(void)
{
    return ms_service;
}

/* mail_server_type - "inet" or "unix" */
const char *mail_server_type(void)
{
    return ms_type;
}

/* mail_server_args - arguments after the skeleton's options */
char **mail_server_args(void)
{
    return ms_args;
}

/* ms_exit - run the pre_exit hook and leave */
static void ms_exit(int status) __attribute__((noreturn));
static void ms_exit(int status)
{
    if (ms_hooks && ms_hooks->pre_exit)
        ms_hooks->pre_exit();
    exit(status);
}

/* ms_report - tell master whether this process can take a client */
static void ms_report(int status)
{
    mail_server_status rec;
    ssize_t n;

    static int pid;

    if (ms_standalone || status == ms_status)
        return;
    if (pid == 0)
        pid = (int) getpid(); /* only this process reports: its children exec or exit */
    memset(&rec, 0, sizeof(rec));
    rec.pid = pid;
    rec.status = status;
    do
        n = write(MAIL_SERVER_STATUS_FD, &rec, sizeof(rec));
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t) sizeof(rec)) {
        /* Master is gone or the pipe is broken: nobody supervises us. */
        msg_warn("status report to master failed: %m");
        ms_exit(0);
    }
    ms_status = status;
}

/* ms_sigterm - finish the current client, then exit */
static void ms_sigterm(int sig)
{
    (void) sig;
    ms_stop = 1;
}

/* ms_basename - last path component */
static const char *ms_basename(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash ? slash + 1 : path;
}

/* ms_check_status_fd - is the status descriptor a pipe? */
static int ms_check_status_fd(int fd)
{
    struct stat st;

    return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

/* ms_check_listen_fd - is this descriptor a listening socket? */
static int ms_check_listen_fd(int fd)
{
    int on = 0;
    socklen_t len = sizeof(on);

    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

/* ms_drop_privileges - chroot and setgroups/setgid/setuid, verified */
static void ms_drop_privileges(void)
{
    struct passwd *pw;
    uid_t uid;
    gid_t gid;
    int drop = ms_unpriv || !ms_hooks->keep_root;

    if (geteuid() != 0) {
        /* Non-root instance: everything runs as the invoking user already. */
        if (msg_verbose && (ms_chroot || drop))
            msg_info("not root: running as uid %ld without chroot", (long) getuid());
        return;
    }
    if (!drop) {
        if (ms_chroot) {
            if (chroot(var_queue_directory) < 0)
                msg_fatal("chroot %s: %m", var_queue_directory);
            if (chdir("/") < 0)
                msg_fatal("chdir / in chroot: %m");
        }
        return;
    }
    errno = 0;
    if ((pw = getpwnam(var_mail_owner)) == NULL)
        msg_fatal("mail_owner \"%s\": no such user%s%m", var_mail_owner, errno ? ": " : "");
    uid = pw->pw_uid;
    gid = pw->pw_gid;
    if (uid == 0 || gid == 0)
        msg_fatal("mail_owner \"%s\" must not have root privileges (uid %ld, gid %ld)", var_mail_owner, (long) uid,
                  (long) gid);
    if (ms_chroot) {
        if (chroot(var_queue_directory) < 0)
            msg_fatal("chroot %s: %m", var_queue_directory);
        if (chdir("/") < 0)
            msg_fatal("chdir / in chroot: %m");
    }
    if (setgroups(1, &gid) < 0)
        msg_fatal("setgroups(%ld): %m", (long) gid);
    if (setresgid(gid, gid, gid) < 0)
        msg_fatal("setresgid(%ld): %m", (long) gid);
    if (setresuid(uid, uid, uid) < 0)
        msg_fatal("setresuid(%ld): %m", (long) uid);
    /* Check the result, don't assume it: no way back to root. */
    if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid)
        msg_fatal("privilege drop to %s failed", var_mail_owner);
    if (setuid(0) == 0 || seteuid(0) == 0)
        msg_fatal("privilege drop to %s can be undone", var_mail_owner);
}

/* ms_open_log - maillog_file (opened before any chroot) or syslog */
static void ms_open_log(const char *prog)
{
    vbuf tag;

    vbuf_init(&tag, 256);
    vbuf_printf(&tag, "%s/%s", var_syslog_name, prog);
    msg_init(vbuf_str(&tag));
    vbuf_release(&tag);
    if (*var_maillog_file) {
        if (msg_logfile_open(var_maillog_file) < 0)
            msg_fatal("open maillog_file %s: %m", var_maillog_file);
    } else if (getenv("KITE_LOG_STDERR") != NULL && !ms_standalone) {
        /* kite start-fg without maillog_file: master's stderr is the log. */
        msg_stderr(1);
        return;
    } else {
        msg_syslog_open();
    }
    if (!ms_standalone)
        msg_stderr(0);
}

/* ms_init - everything before the accept loop; returns argv for the service */
static void ms_init(int argc, char **argv, const mail_server_hooks *hooks)
{
    const char *confdir = NULL;
    const char *prog = ms_basename(argc > 0 ? argv[0] : "daemon");
    struct sigaction sa;
    int ch;
    long n;

    ms_hooks = hooks ? hooks : &ms_no_hooks;
    msg_init(prog);
    opterr = 0;
    while ((ch = getopt(argc, argv, "+c:n:t:o:s:vSur")) != -1) {
        switch (ch) {
        case 'c':
            confdir = optarg;
            break;
        case 'n':
            ms_service = optarg;
            break;
        case 't':
            if (strcmp(optarg, "inet") != 0 && strcmp(optarg, "unix") != 0)
                msg_fatal("bad service type \"%s\"", optarg);
            ms_type = optarg;
            break;
        case 'o':
            if (conf_override_arg(optarg) < 0)
                msg_fatal("bad -o argument \"%s\" (expected name=value)", optarg);
            break;
        case 's':
            if (conf_parse_long(optarg, &n) < 0 || n < 1 || n > MAIL_SERVER_MAX_LISTEN)
                msg_fatal("bad -s argument \"%s\"", optarg);
            ms_listen_count = (int) n;
            break;
        case 'v':
            msg_verbose++;
            break;
        case 'S':
            ms_standalone = 1;
            break;
        case 'u':
            ms_unpriv = 1;
            break;
        case 'r':
            ms_chroot = 1;
            break;
        default:
            msg_fatal("invalid option -%c; usage: %s [-c confdir] [-n service] [-t type] [-o name=value] [-v] [-S]",
                      optopt, prog);
        }
    }
    ms_args = argv + optind;
    if (*ms_service == 0)
        ms_service = prog;
    if (confdir == NULL)
        confdir = conf_dir_default();
    if (conf_load(confdir) > 0)
        msg_fatal("%s/main.cf: configuration errors (run kite check)", confdir);
    ms_open_log(prog);

    if (!ms_standalone) {
        if (!ms_check_status_fd(MAIL_SERVER_STATUS_FD))
            msg_fatal("not started by master (no status descriptor); use -S to run stand-alone");
        for (int i = 0; i < ms_listen_count; i++)
            if (!ms_check_listen_fd(MAIL_SERVER_LISTEN_FD + i))
                msg_fatal("not started by master (no listening socket %d)", i);
    }
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) < 0)
        msg_fatal("sigaction SIGPIPE: %m");
    sa.sa_handler = ms_sigterm;
    if (sigaction(SIGTERM, &sa, NULL) < 0) /* no SA_RESTART: poll wakes up */
        msg_fatal("sigaction SIGTERM: %m");

    if (ms_hooks->pre_jail)
        ms_hooks->pre_jail(ms_service, ms_args);
    if (chdir(var_queue_directory) < 0)
        msg_fatal("chdir %s: %m", var_queue_directory);
    ms_drop_privileges();
    if (ms_hooks->post_jail)
        ms_hooks->post_jail(ms_service, ms_args);
    if (msg_verbose)
        msg_info("%s service %s ready (uid %ld)", ms_type, ms_service, (long) getuid());
}

/* ms_limits_reached - has this process served enough? */
static int ms_limits_reached(void)
{
    return !ms_hooks->unlimited && ms_use_count >= var_max_use;
}

/* ms_accept - accept a client from a shared listening socket; fd or -1 */
static int ms_accept(int lfd)
{
    int fd;

    do
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED)
        msg_warn("accept: %m");
    return fd;
}

/*
 * Stand-alone streams: read from stdin, write to stdout. When they are the
 * same socket an ordinary stream is used; otherwise this transport writes
 * to descriptor 1 while the stream polls descriptor 0.
 */

/* stdio_read - read from stdin */
static ssize_t stdio_read(void *ctx, int fd, void *buf, size_t len, short *want)
{
    ssize_t n;

    (void) ctx;
    do
        n = read(fd, buf, len);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        *want = POLLIN;
    return n;
}

/* stdio_write - write to stdout, whatever descriptor the stream polls */
static ssize_t stdio_write(void *ctx, int fd, const void *buf, size_t len, short *want)
{
    ssize_t n;

    (void) ctx;
    (void) fd;
    (void) want;
    for (;;) {
        struct pollfd pfd = {STDOUT_FILENO, POLLOUT, 0};

        n = write(STDOUT_FILENO, buf, len);
        if (n >= 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK))
            return n;
        /* The stream polls stdin; a non-blocking stdout is waited for here. */
        if (errno != EINTR && poll(&pfd, 1, -1) < 0 && errno != EINTR)
            return -1;
    }
}

/* stdio_pending - nothing is held back by this transport */
static size_t stdio_pending(void *ctx)
{
    (void) ctx;
    return 0;
}

static const stream_transport stdio_transport = {stdio_read, stdio_write, stdio_pending};

/* ms_stdin_is_socket - is descriptor 0 a socket (usable both ways)? */
static int ms_stdin_is_socket(void)
{
    struct stat st;

    return fstat(STDIN_FILENO, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* ms_standalone_stream - the stand-alone client stream over stdin/stdout */
static stream *ms_standalone_stream(void)
{
    stream *s = stream_open(STDIN_FILENO);

    if (!ms_stdin_is_socket())
        stream_set_transport(s, &stdio_transport, NULL);
    return s;
}

/* ss_epoll_add - add fd to single_server's wait set; exclusive if asked and the kernel can */
static void ss_epoll_add(int epfd, int fd, uint32_t events, int exclusive)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = events | (exclusive ? (uint32_t) EPOLLEXCLUSIVE : 0);
    ev.data.fd = fd;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
        return;
    if (exclusive && errno == EINVAL) {
        /* A kernel without EPOLLEXCLUSIVE (before Linux 4.5): every idle process wakes. */
        ev.events = events;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
            return;
    }
    msg_fatal("epoll_ctl ADD fd %d: %m", fd);
}

/* single_server_main - one client at a time */
void single_server_main(int argc, char **argv, single_service_fn fn, const mail_server_hooks *hooks)
{
    struct epoll_event evs[MAIL_SERVER_MAX_LISTEN + 1];
    sigset_t term, wait_mask;
    int epfd;

    ms_init(argc, argv, hooks);
    if (ms_standalone) {
        stream *s = ms_standalone_stream();

        fn(s, ms_service, ms_args);
        stream_flush(s);
        stream_free(s);
        ms_exit(0);
    }
    /*
     * SIGTERM is blocked except while waiting in ppoll() (so a signal that
     * arrives just before the wait still ends it) and while a client is
     * served (the handler only sets a flag, checked afterwards).
     */
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &term, &wait_mask) < 0)
        msg_fatal("sigprocmask: %m");
    sigdelset(&wait_mask, SIGTERM);
    /*
     * The listening sockets are shared with the service's other processes:
     * exclusive, so a connection wakes one idle process. The status pipe
     * needs no events: EPOLLERR comes by itself when master is gone.
     */
    if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        msg_fatal("epoll_create1: %m");
    for (int i = 0; i < ms_listen_count; i++)
        ss_epoll_add(epfd, MAIL_SERVER_LISTEN_FD + i, EPOLLIN, 1);
    ss_epoll_add(epfd, MAIL_SERVER_STATUS_FD, 0, 0);
    ms_report(MAIL_SERVER_STAT_AVAIL);
    for (;;) {
        int idle_ms = var_max_idle > 86400 ? 86400000 : (int) var_max_idle * 1000;
        int n;

        if (ms_stop || ms_limits_reached())
            ms_exit(0);
        n = epoll_pwait(epfd, evs, ms_listen_count + 1, ms_hooks->unlimited ? -1 : idle_ms, &wait_mask);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            msg_fatal("epoll_pwait: %m");
        }
        if (n == 0) {
            if (msg_verbose)
                msg_info("idle timeout -- exiting");
            ms_exit(0);
        }
        for (int i = 0; i < n; i++)
            if (evs[i].data.fd == MAIL_SERVER_STATUS_FD)
                ms_exit(0); /* master went away */
        for (int i = 0; i < n && !ms_stop; i++) {
            stream *s;
            int fd;

            if ((evs[i].events & EPOLLIN) == 0)
                continue;
            /* Another process may have taken the client already: EAGAIN, wait again. */
            if ((fd = ms_accept(evs[i].data.fd)) < 0)
                continue;
            ms_report(MAIL_SERVER_STAT_BUSY);
            s = stream_open(fd);
            sigprocmask(SIG_UNBLOCK, &term, NULL);
            fn(s, ms_service, ms_args);
            sigprocmask(SIG_BLOCK, &term, NULL);
            stream_close(s);
            ms_use_count++;
            if (ms_stop || ms_limits_reached())
                ms_exit(0);
            ms_report(MAIL_SERVER_STAT_AVAIL);
        }
    }
}

/* ms_event_master_gone - the status descriptor broke: master exited */
static void ms_event_master_gone(int fd, int events, void *ctx)
{
    (void) fd;
    (void) events;
    (void) ctx;
    ms_exit(0);
}

/* ms_idle_timer - no clients for max_idle seconds */
static void ms_idle_timer(void *ctx)
{
    (void) ctx;
    if (msg_verbose)
        msg_info("idle timeout -- exiting");
    ms_exit(0);
}

/* ms_arm_idle - (re)start the idle timer when no client is open */
static void ms_arm_idle(void)
{
    if (!ms_hooks->unlimited)
        event_timer_set(ms_idle_timer, NULL, var_max_idle * 1000L);
}

/* ms_stop_listening - stop taking clients (limits reached or SIGTERM) */
static void ms_stop_listening(void)
{
    for (int i = 0; i < ms_listen_count; i++)
        event_disable_read(MAIL_SERVER_LISTEN_FD + i);
    ms_report(MAIL_SERVER_STAT_BUSY); /* let master start a fresh process */
}

/* ms_event_sigterm - stop accepting; exit once the last client is done */
static void ms_event_sigterm(int sig)
{
    (void) sig;
    ms_stop = 1;
    if (ms_client_count == 0)
        ms_exit(0);
    ms_stop_listening();
}

/* ms_event_setup - event-loop plumbing shared by multi and trigger servers */
static void ms_event_setup(event_fn accept_fn)
{
    /* From here on SIGTERM arrives through the event loop. */
    event_signal(SIGTERM, ms_event_sigterm);
    if (ms_stop)
        ms_exit(0);
    /* Shared with the service's other processes: one idle process wakes per client. */
    for (int i = 0; i < ms_listen_count; i++)
        event_enable_read_exclusive(MAIL_SERVER_LISTEN_FD + i, accept_fn, NULL);
    event_enable_read(MAIL_SERVER_STATUS_FD, ms_event_master_gone, NULL);
    ms_report(MAIL_SERVER_STAT_AVAIL);
    ms_arm_idle();
}

/* ms_multi_accept - a new client for the multi server */
static void ms_multi_accept(int lfd, int events, void *ctx)
{
    int fd;

    (void) events;
    (void) ctx;
    if (ms_stop || ms_limits_reached())
        return;
    if ((fd = ms_accept(lfd)) < 0)
        return;
    ms_client_count++;
    ms_use_count++;
    event_timer_cancel(ms_idle_timer, NULL);
    if (ms_limits_reached())
        ms_stop_listening();
    ms_multi_fn(fd, ms_service, ms_args);
}

/* multi_server_disconnect - the service is done with a client */
void multi_server_disconnect(int client_fd)
{
    event_remove(client_fd);
    if (close(client_fd) < 0)
        msg_warn("close client %d: %m", client_fd);
    if (ms_client_count > 0)
        ms_client_count--;
    if (ms_client_count == 0) {
        if (ms_standalone || ms_stop || ms_limits_reached())
            ms_exit(0);
        ms_arm_idle();
    }
}

/* ms_relay_stdio - stand-alone multi server on a pipe: relay through a socketpair */
static int ms_relay_stdio(void)
{
    int sv[2];
    pid_t pid;

    if (ms_stdin_is_socket())
        return STDIN_FILENO;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        msg_fatal("socketpair: %m");
    if ((pid = fork()) < 0)
        msg_fatal("fork: %m");
    if (pid == 0) {
        /* Relay: stdin -> socket, socket -> stdout, until both sides end. */
        char buf[8192];
        int in_open = 1;

        close(sv[0]);
        for (;;) {
            struct pollfd pfd[2] = {{STDIN_FILENO, in_open ? POLLIN : 0, 0}, {sv[1], POLLIN, 0}};
            ssize_t n;

            if (poll(pfd, 2, -1) < 0) {
                if (errno == EINTR)
                    continue;
                _exit(1);
            }
            if (pfd[0].revents) {
                n = read(STDIN_FILENO, buf, sizeof(buf));
                if (n <= 0) {
                    in_open = 0;
                    shutdown(sv[1], SHUT_WR);
                } else if (write(sv[1], buf, (size_t) n) != n) {
                    _exit(1);
                }
            }
            if (pfd[1].revents) {
                n = read(sv[1], buf, sizeof(buf));
                if (n <= 0)
                    _exit(0);
                if (write(STDOUT_FILENO, buf, (size_t) n) != n)
                    _exit(1);
            }
        }
    }
    close(sv[1]);
    return sv[0];
}

/* multi_server_main - many clients per process on the event loop */
void multi_server_main(int argc, char **argv, multi_service_fn fn, const mail_server_hooks *hooks)
{
    ms_init(argc, argv, hooks);
    ms_multi_fn = fn;
    if (ms_standalone) {
        ms_client_count = 1;
        fn(ms_relay_stdio(), ms_service, ms_args);
        event_run();
        ms_exit(0);
    }
    ms_event_setup(ms_multi_accept);
    event_run();
    ms_exit(0);
}

/* ms_trigger_one - read one request frame from a client and serve it */
static void ms_trigger_one(stream *s)
{
    attr_list *req = attr_new();
    int ret;

    stream_set_timeout(s, TRIGGER_READ_TIMEOUT);
    if ((ret = attr_read(s, req, TRIGGER_FRAME_MAX)) < 0) {
        if (ret != STREAM_EOF)
            msg_warn("%s: bad trigger request: %s", ms_service,
                     ret == ATTR_BAD ? "malformed frame" : stream_strerror(ret));
    } else if (attr_get_str(req, "request") == NULL) {
        msg_warn("%s: trigger request without a request attribute", ms_service);
    } else {
        ms_trigger_fn(s, req, ms_service, ms_args);
        stream_flush(s);
    }
    attr_free(req);
}

/* ms_trigger_accept - one trigger connection, served to completion */
static void ms_trigger_accept(int lfd, int events, void *ctx)
{
    stream *s;
    int fd;

    (void) events;
    (void) ctx;
    if (ms_stop || ms_limits_reached())
        return;
    if ((fd = ms_accept(lfd)) < 0)
        return;
    event_timer_cancel(ms_idle_timer, NULL);
    ms_report(MAIL_SERVER_STAT_BUSY);
    s = stream_open(fd);
    ms_trigger_one(s);
    stream_close(s);
    ms_use_count++;
    if (ms_stop || ms_limits_reached())
        ms_exit(0);
    ms_report(MAIL_SERVER_STAT_AVAIL);
    ms_arm_idle();
}

/* trigger_server_main - one short request per connection */
void trigger_server_main(int argc, char **argv, trigger_service_fn fn, const mail_server_hooks *hooks)
{
    ms_init(argc, argv, hooks);
    ms_trigger_fn = fn;
    if (ms_standalone) {
        stream *s = ms_standalone_stream();

        ms_trigger_one(s);
        stream_free(s);
        ms_exit(0);
    }
    ms_event_setup(ms_trigger_accept);
    event_run();
    ms_exit(0);
}

/* mail_server_connect - connect to a local service socket; fd or -1 */
int mail_server_connect(const char *path, int timeout)
{
    struct sockaddr_un sun;
    time_t deadline = time(NULL) + (timeout > 0 ? timeout : 0);
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    for (;;) {
        if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
            return -1;
        if (connect(fd, (struct sockaddr *) &sun, sizeof(sun)) == 0)
            break;
        {
            int saved = errno;

            close(fd);
            errno = saved;
        }
        /* A full backlog says EAGAIN on a non-blocking unix socket: retry. */
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        if (time(NULL) >= deadline)
            return -1;
        {
            struct timespec ts = {0, 20 * 1000 * 1000};

            nanosleep(&ts, NULL);
        }
    }
    /* Left non-blocking: callers read and write through a stream (stream_open). */
    return fd;
}

/* mail_trigger - send {request = request} to a service, no reply */
int mail_trigger(const char *path, const char *request)
{
    attr_list *req;
    stream *s;
    int fd, ret;

    /*
     * A trigger is a hint: a service whose listen queue is full has wakeups
     * waiting already and looks at its queue after them. One attempt, no wait.
     */
    if ((fd = mail_server_connect(path, 0)) < 0)
        return -1;
    s = stream_open(fd);
    stream_set_timeout(s, 10);
    req = attr_new();
    attr_put_str(req, "request", request);
    ret = attr_write(s, req);
    attr_free(req);
    stream_close(s);
    return ret < 0 ? -1 : 0;
}

#define MAIL_REQUEST_REPLY_MAX (64 * 1024)

int mail_request(const char *path, attr_list *frame, int timeout, vbuf *text, long long *answer_status)
{
    long long status = -1;
    const char *answer = NULL;
    attr_spec spec[] = {ATTR_SPEC_INT("status", ATTR_REQUIRED, &status), ATTR_SPEC_STR("text", ATTR_REQUIRED, &answer),
                        ATTR_SPEC_END};
    time_t deadline = time(NULL) + timeout;
    stream *s;
    int fd, st, ret = MAIL_REQUEST_FAILED;

    vbuf_reset(text);
    if (answer_status)
        *answer_status = -1;
    if ((fd = mail_server_connect(path, timeout)) < 0) {
        vbuf_printf(text, "connect to %s: %s", path, strerror(errno));
        return MAIL_REQUEST_DOWN;
    }
    s = stream_open(fd);
    stream_set_timeout(s, timeout);
    stream_set_deadline(s, deadline);
    if ((st = attr_write(s, frame)) < 0) {
        vbuf_printf(text, "%s: write: %s", path, stream_strerror(st));
    } else if ((st = attr_read(s, frame, MAIL_REQUEST_REPLY_MAX)) < 0) {
        vbuf_printf(text, "%s: no answer: %s", path, st == ATTR_BAD ? "malformed frame" : stream_strerror(st));
    } else if (attr_scan(frame, spec) < 0) {
        vbuf_printf(text, "%s: malformed answer", path);
    } else {
        vbuf_printf(text, "%s", answer);
        ret = status == 0 ? MAIL_REQUEST_OK : MAIL_REQUEST_REFUSED;
    }
    stream_close(s);
    if (answer_status)
        *answer_status = ret == MAIL_REQUEST_FAILED ? -1 : status;
    return ret;
}
