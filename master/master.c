/*
 * master - the supervisor's state, signals and main loop: the pid lock,
 * logging, reload on SIGHUP (new main.cf and master.cf, unchanged
 * listeners kept), graceful stop on SIGTERM/SIGINT (children finish within
 * master_stop_timeout, then are killed), immediate stop on SIGQUIT, and the
 * poll loop over the signal pipe, the status pipes, the listeners of
 * services that need another process, and the wakeup/throttle timers.
 *
 * Trusts main.cf and master.cf (validated by their parsers); a lock on
 * data_directory/master.lock keeps a second master of the same instance out.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "master.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "vbuf.h"

const char *master_confdir;
int master_foreground;
int master_stopping;
master_cf master_config;
static int sig_pipe[2] = {-1, -1};
static int lock_fd = -1;
static time_t stop_deadline;
static int stop_killed;

#define MASTER_READY_TOKEN "kite-master-ready\n"

/* master_now - the current time */
time_t master_now(void)
{
    return time(NULL);
}

/* sig_catch - hand the signal to the main loop through the self-pipe */
static void sig_catch(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char) sig;

    if (write(sig_pipe[1], &b, 1) < 0) {
        /* Pipe full: the loop has plenty of wake-ups already. */
    }
    errno = saved;
}

/* sig_setup - route HUP, TERM, INT, QUIT, CHLD to the self-pipe */
void master_sig_setup(void)
{
    static const int sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGCHLD};
    struct sigaction sa;

    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        msg_fatal("pipe: %m");
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = sig_catch;
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (sigaction(sigs[i], &sa, NULL) < 0)
            msg_fatal("sigaction: %m");
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    if (sigaction(SIGPIPE, &sa, NULL) < 0)
        msg_fatal("sigaction: %m");
}

/* lock_pid_file - data_directory/master.lock: one master per instance */
void master_lock_pid_file(void)
{
    struct flock fl;
    vbuf path;
    char buf[32];
    int n;

    vbuf_init(&path, 0);
    vbuf_printf(&path, "%s/master.lock", var_data_directory);
    lock_fd = open(vbuf_str(&path), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
    if (lock_fd < 0)
        msg_fatal("open lock file %s: %m", vbuf_str(&path));
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(lock_fd, F_SETLK, &fl) < 0) {
        if (errno == EAGAIN || errno == EACCES) {
            memset(&fl, 0, sizeof(fl));
            fl.l_type = F_WRLCK;
            if (fcntl(lock_fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
                msg_fatal("the Kite mail system is already running (pid %ld, %s)", (long) fl.l_pid, vbuf_str(&path));
            msg_fatal("the Kite mail system is already running (%s is locked)", vbuf_str(&path));
        }
        msg_fatal("lock %s: %m", vbuf_str(&path));
    }
    n = snprintf(buf, sizeof(buf), "%10ld\n", (long) getpid());
    if (ftruncate(lock_fd, 0) < 0 || pwrite(lock_fd, buf, (size_t) n, 0) != n)
        msg_fatal("write %s: %m", vbuf_str(&path));
    vbuf_release(&path);
}

/* open_log - maillog_file, else stderr in the foreground, else syslog */
void master_open_log(void)
{
    vbuf tag;

    vbuf_init(&tag, 256);
    vbuf_printf(&tag, "%s/master", var_syslog_name);
    msg_init(vbuf_str(&tag));
    vbuf_release(&tag);
    msg_logfile_close();
    msg_syslog_close();
    if (*var_maillog_file) {
        if (msg_logfile_open(var_maillog_file) < 0)
            msg_fatal("open maillog_file %s: %m", var_maillog_file);
    } else if (!master_foreground) {
        msg_syslog_open();
    }
}

/* check_mail_owner - as root, mail_owner must exist and not be root */
void master_check_identity(void)
{
    struct passwd *pw;

    if (geteuid() != 0) {
        pw = getpwuid(geteuid());
        msg_info("running as non-root user %s (uid %ld): all services run as this user, without chroot",
                 pw ? pw->pw_name : "?", (long) geteuid());
        return;
    }
    if ((pw = getpwnam(var_mail_owner)) == NULL)
        msg_fatal("mail_owner \"%s\" does not exist; create it (see INSTALL)", var_mail_owner);
    if (pw->pw_uid == 0 || pw->pw_gid == 0)
        msg_fatal("mail_owner \"%s\" has root privileges; it must be an unprivileged user", var_mail_owner);
}

/* master_read_cf - parse CONFDIR/master.cf, logging every problem */
int master_read_cf(master_cf *cf)
{
    vbuf path;
    int errors;

    vbuf_init(&path, 0);
    vbuf_printf(&path, "%s/master.cf", master_confdir);
    master_cf_init(cf);
    errors = master_cf_read(cf, vbuf_str(&path));
    for (size_t i = 0; i < cf->nerrors; i++)
        msg_error("%s", cf->errors[i]);
    vbuf_release(&path);
    return errors;
}

/* reload - SIGHUP: new main.cf and master.cf, keep unchanged listeners */
static void reload(void)
{
    master_cf fresh;

    conf_reset();
    if (conf_load(master_confdir) > 0)
        msg_warn("reload: %s/main.cf has errors; using defaults for the bad values", master_confdir);
    master_open_log();
    if (master_read_cf(&fresh) > 0) {
        msg_error("reload: %s/master.cf has errors; keeping the running services", master_confdir);
        master_cf_free(&fresh);
        master_child_env_init();
        return;
    }
    master_child_env_init();
    master_services_reload(&fresh);
    master_cf_free(&master_config);
    master_config = fresh;
    msg_info("reload -- version %s, configuration %s", var_mail_version, master_confdir);
}

/* begin_stop - stop taking clients, let children finish within the deadline */
static void begin_stop(int sig)
{
    if (master_stopping)
        return;
    msg_info("terminating on signal %d", sig);
    master_stopping = 1;
    master_services_close_all();
    master_retire_children(NULL);
    stop_deadline = master_now() + var_master_stop_timeout;
}

/* handle_signals - drain the self-pipe and act on each signal */
static void handle_signals(void)
{
    unsigned char buf[64];
    ssize_t n;
    int children = 0;

    while ((n = read(sig_pipe[0], buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            switch (buf[i]) {
            case SIGCHLD:
                children = 1; /* one reap collects them all */
                break;
            case SIGHUP:
                if (!master_stopping)
                    reload();
                break;
            case SIGTERM:
            case SIGINT:
                begin_stop(buf[i]);
                break;
            case SIGQUIT:
                msg_info("aborting on signal %d", SIGQUIT);
                master_stopping = 1;
                master_services_close_all();
                master_kill_all(SIGKILL);
                stop_deadline = master_now();
                stop_killed = 1;
                break;
            }
        }
    }
    if (children)
        master_reap();
}

/* main_loop - wait for signals, status reports, clients and timers */
void master_main_loop(void)
{
    struct pollfd *pfd = NULL;
    master_service **owner = NULL;
    size_t cap = 0;

    for (;;) {
        size_t n = 0, need = 1;
        time_t now = master_now(), next = 0;
        int timeout, ready;

        /* Children are reaped on SIGCHLD (handle_signals), not on every pass. */
        if (master_stopping) {
            if (master_procs == NULL)
                break;
            if (now >= stop_deadline && !stop_killed) {
                msg_warn("stop deadline reached: killing the remaining processes");
                master_kill_all(SIGKILL);
                stop_killed = 1;
            }
            next = stop_killed ? now + 1 : stop_deadline;
        }
        for (master_service *s = master_services; s; s = s->next) {
            need += 1 + (size_t) s->listen_count;
            if (s->throttled_until && s->throttled_until <= now)
                s->throttled_until = 0;
            if (!master_stopping && s->next_wakeup && s->next_wakeup <= now) {
                if (s->throttled_until == 0)
                    master_wakeup(s);
                s->next_wakeup = now + s->ent->wakeup;
            }
            if (!master_stopping && s->next_wakeup && (next == 0 || s->next_wakeup < next))
                next = s->next_wakeup;
            if (s->throttled_until && (next == 0 || s->throttled_until < next))
                next = s->throttled_until;
            /* At the process limit: look once a second whether clients wait. */
            if (master_at_limit(s)) {
                master_check_limit(s);
                if (next == 0 || now + 1 < next)
                    next = now + 1;
            }
        }
        if (need > cap) {
            cap = need * 2;
            pfd = xreallocarray(pfd, cap, sizeof(*pfd));
            owner = xreallocarray(owner, cap, sizeof(*owner));
        }
        pfd[n].fd = sig_pipe[0];
        pfd[n].events = POLLIN;
        owner[n++] = NULL;
        for (master_service *s = master_services; s; s = s->next) {
            pfd[n].fd = s->status_rd;
            pfd[n].events = POLLIN;
            owner[n++] = s;
            if (master_should_listen(s))
                for (int i = 0; i < s->listen_count; i++) {
                    pfd[n].fd = s->listen_fd[i];
                    pfd[n].events = POLLIN;
                    owner[n++] = s;
                }
        }
        timeout = next == 0 ? -1 : next <= now ? 0 : (int) ((next - now) * 1000);
        if ((ready = poll(pfd, (nfds_t) n, timeout)) < 0) {
            if (errno == EINTR)
                continue;
            msg_fatal("poll: %m");
        }
        /* A quiet pass (a timer ran out): reap too, should a SIGCHLD byte ever be lost. */
        if (ready == 0)
            master_reap();
        if (pfd[0].revents)
            handle_signals();
        for (size_t i = 1; i < n; i++) {
            master_service *s = owner[i];
            int still_there = 0;

            if (pfd[i].revents == 0)
                continue;
            /* A reload in handle_signals may have removed the service. */
            for (master_service *t = master_services; t; t = t->next)
                if (t == s)
                    still_there = 1;
            if (!still_there)
                continue;
            if (pfd[i].fd == s->status_rd)
                master_status_read(s);
            else if (master_should_listen(s))
                master_spawn(s);
        }
    }
    xfree(pfd);
    xfree(owner);
}

/* detach_stdio - stdin/stdout (and stderr unless in the foreground) to /dev/null */
void master_detach_stdio(void)
{
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

    if (fd < 0)
        msg_fatal("open /dev/null: %m");
    if (dup2(fd, STDIN_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0)
        msg_fatal("dup2: %m");
    if (!master_foreground) {
        /* Tell kite start that every listener is open, then let go of stderr. */
        if (write(STDERR_FILENO, MASTER_READY_TOKEN, sizeof(MASTER_READY_TOKEN) - 1) < 0) {
            /* kite start went away; nobody is waiting for the token. */
        }
        msg_stderr(0);
        if (dup2(fd, STDERR_FILENO) < 0)
            msg_fatal("dup2: %m");
    }
    close(fd);
}
