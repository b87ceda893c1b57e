/*
 * pipe - "|command" targets: /bin/sh -c COMMAND, started with fork and
 * execve as the list owner (or the user, for ~/.forward), with a clean
 * environment, the message on standard input (LF line ends, Return-Path
 * and Delivered-To first), its output captured for the bounce reason, and
 * a time limit (command_time_limit) after which its process group is
 * killed. The exit status maps to a result through sysexits.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "deliver.h"
#include "local.h"
#include "mymalloc.h"
#include "params.h"
#include "vbuf.h"

#define PIPE_OUTPUT_MAX 1000 /* bytes of command output kept */

/* sysexits.h codes and what they mean for the message. */
static const struct {
    int code;
    int status;
    const char *dsn;
} pipe_exits[] = {
    {EX_USAGE, DELIVER_BOUNCE, "5.3.0"},    {EX_DATAERR, DELIVER_BOUNCE, "5.6.0"},
    {EX_NOINPUT, DELIVER_BOUNCE, "5.3.0"},  {EX_NOUSER, DELIVER_BOUNCE, "5.1.1"},
    {EX_NOHOST, DELIVER_BOUNCE, "5.1.2"},   {EX_UNAVAILABLE, DELIVER_BOUNCE, "5.3.0"},
    {EX_SOFTWARE, DELIVER_BOUNCE, "5.3.0"}, {EX_OSERR, DELIVER_DEFER, "4.3.0"},
    {EX_OSFILE, DELIVER_BOUNCE, "5.3.0"},   {EX_CANTCREAT, DELIVER_BOUNCE, "5.2.0"},
    {EX_IOERR, DELIVER_BOUNCE, "5.3.0"},    {EX_TEMPFAIL, DELIVER_DEFER, "4.3.0"},
    {EX_PROTOCOL, DELIVER_BOUNCE, "5.5.0"}, {EX_NOPERM, DELIVER_BOUNCE, "5.7.0"},
    {EX_CONFIG, DELIVER_BOUNCE, "5.3.5"},
};

/* local_pipe_exit_status - a finished command's result */
void local_pipe_exit_status(int wstatus, int timed_out, const char *command, const char *output, local_status *st)
{
    const char *sep = *output ? ". Command output: " : "";

    if (timed_out) {
        local_status_set(st, DELIVER_BOUNCE, "5.3.0", "command time limit exceeded: \"%s\"%s%s", command, sep, output);
    } else if (WIFSIGNALED(wstatus)) {
        local_status_set(st, DELIVER_DEFER, "4.3.0", "Command died with signal %d: \"%s\"%s%s", WTERMSIG(wstatus),
                         command, sep, output);
    } else if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
        local_status_set(st, DELIVER_OK, "2.0.0", "delivered to command: %s", command);
    } else {
        int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 1;
        int status = DELIVER_BOUNCE;
        const char *dsn = "5.3.0";

        for (size_t i = 0; i < sizeof(pipe_exits) / sizeof(pipe_exits[0]); i++)
            if (pipe_exits[i].code == code) {
                status = pipe_exits[i].status;
                dsn = pipe_exits[i].dsn;
            }
        local_status_set(st, status, dsn, "Command died with status %d: \"%s\"%s%s", code, command, sep, output);
    }
}

/* Child context of a command delivery. */
typedef struct pipe_job {
    local_ctx *c;
    const char *command;
    char **env;
    const char *home;
    int in_fd, out_fd;
    time_t deadline;
    vbuf output;
    int timed_out, epipe;
} pipe_job;

/* pipe_drain - read what the command wrote; 0, or -1 at EOF */
static int pipe_drain(pipe_job *j)
{
    char buf[4096];
    ssize_t n = read(j->out_fd, buf, sizeof(buf));

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n <= 0)
        return -1;
    if (j->output.len < PIPE_OUTPUT_MAX)
        (void) vbuf_append(&j->output, buf,
                           (size_t) n > PIPE_OUTPUT_MAX - j->output.len ? PIPE_OUTPUT_MAX - j->output.len : (size_t) n);
    return 0;
}

/* pipe_write - local_out_fn: feed the command, keep reading its output, watch the clock */
static int pipe_write(void *ctx, const void *data, size_t len)
{
    pipe_job *j = ctx;
    const char *p = data;

    while (len > 0 && !j->epipe) {
        struct pollfd pfd[2] = {{j->in_fd, POLLOUT, 0}, {j->out_fd, POLLIN, 0}};
        long left = (long) (j->deadline - time(NULL));

        if (left <= 0) {
            j->timed_out = 1;
            return -1;
        }
        if (poll(pfd, j->out_fd >= 0 ? 2 : 1, (int) (left > 1 ? 1000 : left * 1000)) < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (j->out_fd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP)) && pipe_drain(j) < 0) {
            (void) close(j->out_fd);
            j->out_fd = -1;
        }
        if (pfd[0].revents & (POLLOUT | POLLERR | POLLHUP)) {
            ssize_t n = write(j->in_fd, p, len);

            if (n < 0 && errno == EPIPE) {
                j->epipe = 1; /* the command stopped reading: its exit status decides */
            } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
                return -1;
            } else if (n > 0) {
                p += n;
                len -= (size_t) n;
            }
        }
    }
    return 0;
}

/* pipe_child - as the owner: run the command and judge its exit */
static void pipe_child(void *ctx, local_status *st)
{
    pipe_job *j = ctx;
    int in[2], out[2], wstatus = 0, fl;
    pid_t pid;
    char *argv[] = {"sh", "-c", (char *) j->command, NULL};

    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
        local_status_set(st, DELIVER_DEFER, "4.3.0", "cannot create pipe: %s", strerror(errno));
        return;
    }
    if ((pid = fork()) < 0) {
        local_status_set(st, DELIVER_DEFER, "4.3.0", "cannot fork: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        /* Own process group, so a time-out kills everything the command started. */
        (void) setsid();
        (void) signal(SIGPIPE, SIG_DFL);
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0)
            _exit(EX_OSERR);
        if (chdir(j->home) < 0 && chdir("/") < 0)
            _exit(EX_OSERR);
        (void) execve("/bin/sh", argv, j->env);
        _exit(EX_OSERR);
    }
    (void) close(in[0]);
    (void) close(out[1]);
    j->in_fd = in[1];
    j->out_fd = out[0];
    if ((fl = fcntl(j->in_fd, F_GETFL)) >= 0)
        (void) fcntl(j->in_fd, F_SETFL, fl | O_NONBLOCK);
    if ((fl = fcntl(j->out_fd, F_GETFL)) >= 0)
        (void) fcntl(j->out_fd, F_SETFL, fl | O_NONBLOCK);
    j->deadline = time(NULL) + var_command_time_limit;
    vbuf_init(&j->output, 0);
    (void) signal(SIGPIPE, SIG_IGN);
    (void) local_copy_msg(j->c->msg, j->c->sender, j->c->delivered_to,
                          LOCAL_COPY_LF | LOCAL_COPY_RETURN_PATH |
                              (local_prepend_delivered("command") ? LOCAL_COPY_DELIVERED : 0),
                          pipe_write, j);
    (void) close(j->in_fd);
    /* Collect the rest of the output and the exit status, within the time limit. */
    for (;;) {
        pid_t w = waitpid(pid, &wstatus, WNOHANG);
        long left = (long) (j->deadline - time(NULL));

        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            wstatus = 0;
            break;
        }
        if (left <= 0 || j->timed_out) {
            j->timed_out = 1;
            (void) kill(-pid, SIGKILL);
            (void) kill(pid, SIGKILL);
            while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        if (j->out_fd >= 0) {
            struct pollfd pfd = {j->out_fd, POLLIN, 0};

            if (poll(&pfd, 1, 200) > 0 && pipe_drain(j) < 0) {
                (void) close(j->out_fd);
                j->out_fd = -1;
            }
        } else {
            (void) poll(NULL, 0, 50);
        }
    }
    while (j->out_fd >= 0 && !j->timed_out && pipe_drain(j) == 0 && j->output.len < PIPE_OUTPUT_MAX)
        ;
    if (j->out_fd >= 0)
        (void) close(j->out_fd);
    while (j->output.len > 0 && strchr(" \t\r\n", j->output.data[j->output.len - 1]))
        vbuf_truncate(&j->output, j->output.len - 1);
    local_pipe_exit_status(wstatus, j->timed_out, j->command, vbuf_str(&j->output), st);
    vbuf_release(&j->output);
}

/* pipe_env - "NAME=value" */
static char *pipe_env(const char *name, const char *value)
{
    vbuf b;

    vbuf_init(&b, 0);
    (void) vbuf_printf(&b, "%s=%s", name, value ? value : "");
    {
        char *copy = vbuf_steal(&b);

        vbuf_release(&b);
        return copy;
    }
}

/* local_pipe - deliver to the command named by a list */
void local_pipe(local_ctx *c, const char *command)
{
    local_status st;
    const local_user *who = c->user ? c->user : c->owner;
    const char *at = strrchr(c->address, '@');
    char *local = at ? xstrndup(c->address, (size_t) (at - c->address)) : xstrdup(c->address);
    char *env[16];
    size_t n = 0;
    pipe_job j;

    local_status_init(&st);
    if (!local_class_allowed(var_allow_mail_to_commands, c->cls)) {
        local_status_set(&st, DELIVER_BOUNCE, "5.7.1", "mail to command is restricted");
        goto done;
    }
    if (local_verify(c)) {
        local_status_set(&st, DELIVER_OK, "2.0.0", "deliverable via local");
        goto done;
    }
    env[n++] = pipe_env("PATH", "/usr/bin:/bin");
    env[n++] = pipe_env("SENDER", c->sender);
    env[n++] = pipe_env("RECIPIENT", c->address);
    env[n++] = pipe_env("ORIGINAL_RECIPIENT", c->rcpt->orig ? c->rcpt->orig : c->rcpt->address);
    env[n++] = pipe_env("LOCAL", local);
    env[n++] = pipe_env("DOMAIN", at ? at + 1 : "");
    env[n++] = pipe_env("EXTENSION", c->extension ? c->extension : "");
    env[n++] = pipe_env("USER", who->name);
    env[n++] = pipe_env("LOGNAME", who->name);
    env[n++] = pipe_env("HOME", who->home);
    env[n++] = pipe_env("SHELL", who->shell);
    env[n] = NULL;
    memset(&j, 0, sizeof(j));
    j.c = c;
    j.command = command;
    j.env = env;
    j.home = c->owner->home;
    j.in_fd = j.out_fd = -1;
    local_run_as(c->owner, NULL, pipe_child, &j, (int) var_command_time_limit + 60, &st);
    for (size_t i = 0; i < n; i++)
        xfree(env[i]);
done:
    local_result(c, c->address, &st);
    local_status_free(&st);
    xfree(local);
}
