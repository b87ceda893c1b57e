/*
 * master_spawn - child processes: fork+execve with the listening sockets
 * and the status pipe at fixed descriptors and a clean environment; status
 * reports; reaping; throttling of services whose children fail at startup.
 *
 * Trusts: nothing in the status records beyond their fixed size; a record
 * is applied only to a child of that service that master itself started.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clean_env.h"
#include "master.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "vbuf.h"

master_proc *master_procs;
static char **child_env;

/* master_child_env_init - (re)build the environment children get */
void master_child_env_init(void)
{
    const char *extra[3] = {NULL, NULL, NULL};
    vbuf cfg;

    clean_env_free(child_env);
    vbuf_init(&cfg, 0);
    vbuf_printf(&cfg, "KITE_CONFIG_DIR=%s", master_confdir);
    extra[0] = vbuf_str(&cfg);
    if (master_foreground && *var_maillog_file == 0)
        extra[1] = "KITE_LOG_STDERR=1";
    child_env = clean_env_build(var_import_environment, extra);
    vbuf_release(&cfg);
}

/* proc_find - the child with this pid, or NULL */
static master_proc *proc_find(pid_t pid)
{
    for (master_proc *p = master_procs; p; p = p->next)
        if (p->pid == pid)
            return p;
    return NULL;
}

/* master_should_listen - watch the sockets: nobody free, room for one more */
int master_should_listen(const master_service *serv)
{
    if (master_stopping || serv->listen_count == 0 || serv->avail > 0)
        return 0;
    if (serv->throttled_until && serv->throttled_until > master_now())
        return 0;
    return serv->maxproc == 0 || serv->total < serv->maxproc;
}

/* build_argv - "<path> -n NAME -t TYPE -c CONFDIR [-u] [-r] [-s N] args..." */
static char **build_argv(const master_service *serv, char *count_buf, size_t count_len)
{
    size_t n = 0, max = 12 + serv->ent->nargs;
    char **argv = xcalloc(max, sizeof(char *));

    argv[n++] = serv->path;
    argv[n++] = "-n";
    argv[n++] = serv->ent->name;
    argv[n++] = "-t";
    argv[n++] = (char *) master_cf_type_name(serv->ent->type);
    argv[n++] = "-c";
    argv[n++] = (char *) master_confdir;
    if (serv->ent->unpriv)
        argv[n++] = "-u";
    if (serv->ent->chroot)
        argv[n++] = "-r";
    if (serv->listen_count != 1) {
        snprintf(count_buf, count_len, "%d", serv->listen_count);
        argv[n++] = "-s";
        argv[n++] = count_buf;
    }
    for (size_t i = 0; i < serv->ent->nargs; i++)
        argv[n++] = serv->ent->args[i];
    argv[n] = NULL;
    return argv;
}

/* child_setup_fds - move the service's descriptors to their fixed numbers */
static void child_setup_fds(const master_service *serv)
{
    int tmp[MAIL_SERVER_MAX_LISTEN + 1];
    int n = serv->listen_count;
    int devnull;

    /* First out of the way (any of them may sit on a target number)... */
    for (int i = 0; i < n; i++)
        if ((tmp[i] = fcntl(serv->listen_fd[i], F_DUPFD_CLOEXEC, 64)) < 0)
            _exit(126);
    if ((tmp[n] = fcntl(serv->status_wr, F_DUPFD_CLOEXEC, 64)) < 0)
        _exit(126);
    /* ...then into place; dup2 clears close-on-exec on the copies. */
    for (int i = 0; i < n; i++)
        if (dup2(tmp[i], MAIL_SERVER_LISTEN_FD + i) < 0)
            _exit(126);
    if (dup2(tmp[n], MAIL_SERVER_STATUS_FD) < 0)
        _exit(126);
    if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
        _exit(126);
    if (dup2(devnull, STDIN_FILENO) < 0 || dup2(devnull, STDOUT_FILENO) < 0)
        _exit(126);
    if (!(master_foreground && *var_maillog_file == 0) && dup2(devnull, STDERR_FILENO) < 0)
        _exit(126);
}

/* master_spawn - start one more child for a service */
void master_spawn(master_service *serv)
{
    char count_buf[16];
    char **argv = build_argv(serv, count_buf, sizeof(count_buf));
    master_proc *proc;
    sigset_t all, old;
    pid_t pid;

    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid = fork();
    if (pid < 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        msg_warn("fork: %m -- throttling service %s", serv->ent->name);
        serv->throttled_until = master_now() + var_service_throttle_time;
        xfree(argv);
        return;
    }
    if (pid == 0) {
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        sigemptyset(&sa.sa_mask);
        for (int sig = 1; sig < NSIG; sig++)
            (void) sigaction(sig, &sa, NULL);
        child_setup_fds(serv);
        /*
         * In the foreground (a terminal, a container) Ctrl-C goes to the
         * whole process group: keep children out of it, so that master
         * alone is interrupted and stops them gracefully.
         */
        if (master_foreground && setpgid(0, 0) < 0)
            _exit(126);
        sigprocmask(SIG_SETMASK, &old, NULL);
        {
            sigset_t none;

            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
        }
        execve(serv->path, argv, child_env);
        msg_error("exec %s: %m", serv->path);
        _exit(127);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    xfree(argv);
    proc = xcalloc(1, sizeof(*proc));
    proc->pid = pid;
    proc->serv = serv;
    proc->avail = 1; /* a new child is ready to accept */
    proc->next = master_procs;
    master_procs = proc;
    serv->total++;
    serv->avail++;
    if (msg_verbose)
        msg_info("spawn %s service %s pid %ld", master_cf_type_name(serv->ent->type), serv->ent->name, (long) pid);
}

/* proc_unlink - forget a child */
static void proc_unlink(master_proc *proc)
{
    for (master_proc **pp = &master_procs; *pp; pp = &(*pp)->next)
        if (*pp == proc) {
            *pp = proc->next;
            break;
        }
    if (proc->serv) {
        proc->serv->total--;
        if (proc->avail)
            proc->serv->avail--;
    }
    xfree(proc);
}

/* master_reap - collect every exited child, log failures, throttle */
void master_reap(void)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        master_proc *proc = proc_find(pid);
        master_service *serv;
        const char *path;
        int bad;

        if (proc == NULL)
            continue;
        serv = proc->serv;
        path = serv ? serv->path : "child";
        bad = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
            msg_warn("process %s pid %ld exit status %d", path, (long) pid, WEXITSTATUS(status));
        else if (WIFSIGNALED(status) &&
                 !(proc->signalled && (WTERMSIG(status) == SIGKILL || WTERMSIG(status) == SIGTERM)))
            msg_warn("process %s pid %ld killed by signal %d", path, (long) pid, WTERMSIG(status));
        /*
         * A child that fails before serving anybody says the command is
         * broken: do not start it again for a while (no fork storms). A
         * kill -9 from outside is not a startup failure.
         */
        if (bad && serv && !master_stopping && proc->use_count == 0 &&
            !(WIFSIGNALED(status) && (WTERMSIG(status) == SIGKILL || WTERMSIG(status) == SIGTERM)) &&
            (serv->throttled_until == 0 || serv->throttled_until <= master_now())) {
            msg_warn("%s: bad command startup -- throttling", serv->path);
            serv->throttled_until = master_now() + var_service_throttle_time;
        }
        proc_unlink(proc);
    }
    if (pid < 0 && errno != ECHILD)
        msg_warn("waitpid: %m");
}

/* master_status_read - apply the children's busy/idle reports */
void master_status_read(master_service *serv)
{
    mail_server_status rec[64];
    ssize_t n;

    while ((n = read(serv->status_rd, rec, sizeof(rec))) > 0) {
        size_t count = (size_t) n / sizeof(rec[0]);

        if ((size_t) n % sizeof(rec[0]) != 0)
            msg_warn("service %s: partial status record ignored", serv->ent->name);
        for (size_t i = 0; i < count; i++) {
            master_proc *proc = proc_find((pid_t) rec[i].pid);

            if (proc == NULL || proc->serv != serv) {
                if (msg_verbose)
                    msg_info("status from unknown pid %d ignored", rec[i].pid);
                continue;
            }
            if (rec[i].status == MAIL_SERVER_STAT_BUSY && proc->avail) {
                proc->avail = 0;
                proc->use_count++;
                serv->avail--;
                if (serv->avail == 0 && serv->maxproc > 0 && serv->total >= serv->maxproc &&
                    master_now() - serv->limit_warned >= 300) {
                    msg_warn("service \"%s\" has reached its process limit \"%d\": "
                             "new clients may experience noticeable delays",
                             serv->ent->name, serv->maxproc);
                    serv->limit_warned = master_now();
                }
            } else if (rec[i].status == MAIL_SERVER_STAT_AVAIL && !proc->avail) {
                proc->avail = 1;
                serv->avail++;
            } else if (rec[i].status != MAIL_SERVER_STAT_BUSY && rec[i].status != MAIL_SERVER_STAT_AVAIL) {
                msg_warn("service %s: bad status %d from pid %d", serv->ent->name, rec[i].status, rec[i].pid);
            }
        }
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR)
        msg_warn("read status of %s: %m", serv->ent->name);
}

/* master_retire_children - ask children to finish and exit (NULL: every service) */
void master_retire_children(master_service *serv)
{
    for (master_proc *p = master_procs; p; p = p->next) {
        if (serv && p->serv != serv)
            continue;
        if (p->serv) {
            p->serv->total--;
            if (p->avail)
                p->serv->avail--;
            p->serv = NULL;
        }
        p->avail = 0;
        if (!p->signalled && kill(p->pid, SIGTERM) < 0 && errno != ESRCH)
            msg_warn("kill %ld: %m", (long) p->pid);
        p->signalled = 1;
    }
}

/* master_kill_all - send a signal to every child */
void master_kill_all(int sig)
{
    for (master_proc *p = master_procs; p; p = p->next) {
        if (kill(p->pid, sig) < 0 && errno != ESRCH)
            msg_warn("kill %ld: %m", (long) p->pid);
        p->signalled = 1;
    }
}
