/*
 * kite - control command for one Kite instance:
 *
 *     kite [-c confdir] [-v] start | start-fg | stop | abort | reload |
 *                            status | check | version
 *
 * start checks the configuration, creates/repairs the queue and data
 * directories, starts master in its own session and returns 0 only once
 * master has opened every listener (master closes its stderr, which kite
 * reads, when it is ready; anything it printed before is a startup error).
 * stop and abort wait until master, and with it every child, is gone.
 *
 * Trusts main.cf and master.cf only through their parsers; finds master by
 * the lock on data_directory/master.lock, never by process names.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clean_env.h"
#include "conf.h"
#include "mail_queue.h"
#include "master_cf.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "vbuf.h"

static const char *confdir;

/* What master writes to stderr once every listener is open (master.c). */
#define MASTER_READY_TOKEN "kite-master-ready\n"

/* usage - the command line, then exit */
static void usage(void) __attribute__((noreturn));
static void usage(void)
{
    fprintf(stderr, "usage: kite [-c confdir] [-v] start|start-fg|stop|abort|reload|status|check|version\n");
    exit(2);
}

/* lock_path - data_directory/master.lock */
static void lock_path(vbuf *out)
{
    vbuf_reset(out);
    vbuf_printf(out, "%s/master.lock", var_data_directory);
}

/* master_pid - pid of the master holding the lock, 0 when none runs */
static pid_t master_pid(void)
{
    struct flock fl;
    vbuf path;
    int fd;

    vbuf_init(&path, 0);
    lock_path(&path);
    fd = open(vbuf_str(&path), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    vbuf_release(&path);
    if (fd < 0)
        return 0;
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_GETLK, &fl) < 0) {
        close(fd);
        return 0;
    }
    close(fd);
    return fl.l_type == F_UNLCK ? 0 : fl.l_pid;
}

/* load_config - main.cf; returns the error count (each already reported) */
static int load_config(void)
{
    return conf_load(confdir);
}

/* check_master_cf - parse master.cf, report problems; returns error count */
static int check_master_cf(int warn_more)
{
    master_cf cf;
    vbuf path;
    int errors;

    vbuf_init(&path, 0);
    vbuf_printf(&path, "%s/master.cf", confdir);
    master_cf_init(&cf);
    errors = master_cf_read(&cf, vbuf_str(&path));
    for (size_t i = 0; i < cf.nerrors; i++)
        msg_error("%s", cf.errors[i]);
    if (warn_more) {
        for (size_t i = 0; i < cf.count; i++) {
            const master_cf_entry *e = &cf.entries[i];
            vbuf prog;

            vbuf_init(&prog, 0);
            vbuf_printf(&prog, "%s/%s", var_daemon_directory, e->command);
            if (access(vbuf_str(&prog), X_OK) < 0) {
                msg_error("%s: service %s: command %s: %m", e->source, e->name, vbuf_str(&prog));
                errors++;
            }
            vbuf_release(&prog);
            for (size_t k = 0; k < e->noverrides; k++) {
                size_t nlen = strcspn(e->overrides[k], "=");
                char *name = xstrndup(e->overrides[k], nlen);

                /* User-defined names are fine when main.cf defines them. */
                if (conf_param_find(name) == NULL && conf_lookup_raw(name) == NULL)
                    msg_warn("%s: -o %s: unknown parameter", e->source, name);
                xfree(name);
            }
        }
    }
    master_cf_free(&cf);
    vbuf_release(&path);
    return errors;
}

/* owner_ids - mail_owner and setgid_group as root; ourselves otherwise */
static int owner_ids(uid_t *uid, gid_t *gid, gid_t *sgid)
{
    struct passwd *pw;
    struct group *gr;

    if (geteuid() != 0) {
        *uid = geteuid();
        *gid = getegid();
        *sgid = getegid();
        return 0;
    }
    if ((pw = getpwnam(var_mail_owner)) == NULL) {
        msg_error("mail_owner \"%s\" does not exist (see INSTALL: useradd --system %s)", var_mail_owner,
                  var_mail_owner);
        return -1;
    }
    if (pw->pw_uid == 0 || pw->pw_gid == 0) {
        msg_error("mail_owner \"%s\" must not have root privileges", var_mail_owner);
        return -1;
    }
    if ((gr = getgrnam(var_setgid_group)) == NULL) {
        msg_error("setgid_group \"%s\" does not exist (see INSTALL: groupadd --system %s)", var_setgid_group,
                  var_setgid_group);
        return -1;
    }
    if (gr->gr_gid == 0) {
        msg_error("setgid_group \"%s\" must not be the root group", var_setgid_group);
        return -1;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    *sgid = gr->gr_gid;
    return 0;
}

/* setup_dirs - create or repair queue_directory and data_directory */
static int setup_dirs(void)
{
    uid_t uid;
    gid_t gid, sgid;
    vbuf why;
    struct stat st;
    int ret = 0;

    if (owner_ids(&uid, &gid, &sgid) < 0)
        return -1;
    vbuf_init(&why, 0);
    if (mail_queue_setup(var_queue_directory, uid, gid, sgid, &why) < 0) {
        msg_error("queue directory %s: %s", var_queue_directory, vbuf_str(&why));
        ret = -1;
    }
    vbuf_release(&why);
    if (lstat(var_data_directory, &st) < 0) {
        if (errno != ENOENT || mkdir(var_data_directory, 0700) < 0) {
            msg_error("data_directory %s: %m", var_data_directory);
            return -1;
        }
        if (lstat(var_data_directory, &st) < 0) {
            msg_error("data_directory %s: %m", var_data_directory);
            return -1;
        }
    }
    if (!S_ISDIR(st.st_mode)) {
        msg_error("data_directory %s is not a directory", var_data_directory);
        return -1;
    }
    if ((st.st_uid != uid || st.st_gid != gid) && lchown(var_data_directory, uid, gid) < 0) {
        msg_error("chown data_directory %s: %m", var_data_directory);
        ret = -1;
    }
    return ret;
}

/* master_argv - the master command line */
static char **master_argv(int foreground, vbuf *path)
{
    char **argv = xcalloc(6, sizeof(char *));
    int n = 0;

    vbuf_reset(path);
    vbuf_printf(path, "%s/master", var_daemon_directory);
    argv[n++] = (char *) vbuf_str(path);
    argv[n++] = "-c";
    argv[n++] = (char *) confdir;
    if (foreground)
        argv[n++] = "-f";
    if (msg_verbose)
        argv[n++] = "-v";
    argv[n] = NULL;
    return argv;
}

/* master_env - the clean environment master runs with */
static char **master_env(void)
{
    vbuf cfg;
    const char *extra[2];
    char **env;

    vbuf_init(&cfg, 0);
    vbuf_printf(&cfg, "KITE_CONFIG_DIR=%s", confdir);
    extra[0] = vbuf_str(&cfg);
    extra[1] = NULL;
    env = clean_env_build(var_import_environment, extra);
    vbuf_release(&cfg);
    return env;
}

/* preflight - everything start and start-fg check; 0 or -1 */
static int preflight(int errors)
{
    pid_t pid;

    if (errors > 0) {
        msg_error("%s/main.cf: configuration errors; fix them and try again", confdir);
        return -1;
    }
    if (check_master_cf(0) > 0) {
        msg_error("%s/master.cf: configuration errors; fix them and try again", confdir);
        return -1;
    }
    if ((pid = master_pid()) > 0) {
        msg_error("the Kite mail system is already running (pid %ld)", (long) pid);
        return -1;
    }
    if (setup_dirs() < 0)
        return -1;
    return 0;
}

/* cmd_start - start master in the background; 0 once it is ready */
static int cmd_start(int errors)
{
    vbuf path, out;
    char **argv, **env;
    int pfd[2];
    pid_t pid;
    int status;
    time_t deadline;

    if (preflight(errors) < 0)
        return 1;
    msg_info("starting the Kite mail system");
    vbuf_init(&path, 0);
    argv = master_argv(0, &path);
    if (access(argv[0], X_OK) < 0) {
        msg_error("%s: %m (check daemon_directory)", argv[0]);
        return 1;
    }
    env = master_env();
    if (pipe2(pfd, O_CLOEXEC) < 0)
        msg_fatal("pipe: %m");
    if ((pid = fork()) < 0)
        msg_fatal("fork: %m");
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);

        if (setsid() < 0 || devnull < 0 || dup2(devnull, STDIN_FILENO) < 0 || dup2(devnull, STDOUT_FILENO) < 0 ||
            dup2(pfd[1], STDERR_FILENO) < 0)
            _exit(126);
        if (devnull > STDERR_FILENO)
            close(devnull);
        execve(argv[0], argv, env);
        msg_error("exec %s: %m", argv[0]);
        _exit(127);
    }
    close(pfd[1]);
    vbuf_init(&out, 64 * 1024);
    deadline = time(NULL) + 60;
    for (;;) {
        struct pollfd p = {pfd[0], POLLIN, 0};
        char buf[4096];
        ssize_t n;
        int left = (int) (deadline - time(NULL));

        if (left <= 0) {
            msg_error("master did not become ready within 60 seconds");
            close(pfd[0]);
            return 1;
        }
        if (poll(&p, 1, left * 1000) < 0) {
            if (errno == EINTR)
                continue;
            msg_fatal("poll: %m");
        }
        n = read(pfd[0], buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        vbuf_append(&out, buf, (size_t) n);
    }
    close(pfd[0]);
    /* EOF: master either said it is ready and let go of stderr, or exited. */
    if (out.len < sizeof(MASTER_READY_TOKEN) - 1 ||
        strcmp(vbuf_str(&out) + out.len - (sizeof(MASTER_READY_TOKEN) - 1), MASTER_READY_TOKEN) != 0) {
        if (out.len)
            fputs(vbuf_str(&out), stderr);
        (void) waitpid(pid, &status, WNOHANG); /* reaped when it has exited */
        msg_error("the Kite mail system failed to start");
        return 1;
    }
    /* Ready: what master printed on the way is in its log already. */
    xfree(argv);
    clean_env_free(env);
    vbuf_release(&path);
    vbuf_release(&out);
    return 0;
}

/* cmd_start_fg - become master in the foreground */
static int cmd_start_fg(int errors)
{
    vbuf path;
    char **argv;

    if (preflight(errors) < 0)
        return 1;
    vbuf_init(&path, 0);
    argv = master_argv(1, &path);
    execve(argv[0], argv, master_env());
    msg_error("exec %s: %m", argv[0]);
    return 1;
}

/* wait_gone - wait until no master holds the lock; 0, or -1 after timeout seconds */
static int wait_gone(long timeout)
{
    time_t deadline = time(NULL) + timeout;

    while (master_pid() > 0) {
        struct timespec ts = {0, 50 * 1000 * 1000};

        if (time(NULL) >= deadline)
            return -1;
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* cmd_signal - send sig to master; for stop/abort also wait until it is gone */
static int cmd_signal(int sig, int wait, const char *what)
{
    pid_t pid = master_pid();

    if (pid <= 0) {
        msg_error("the Kite mail system is not running");
        return 1;
    }
    if (kill(pid, sig) < 0) {
        msg_error("%s: kill %ld: %m", what, (long) pid);
        return 1;
    }
    if (wait && wait_gone(var_master_stop_timeout + 30) < 0) {
        msg_error("%s: master (pid %ld) is still running", what, (long) pid);
        return 1;
    }
    return 0;
}

/* cmd_check - report every problem with file:line, repair the queue */
static int cmd_check(int errors)
{
    /* Unknown names are warned about (file:line) but do not stop Kite. */
    if (conf_check_unknown() > 0)
        fprintf(stderr, "kite: unknown parameters are ignored\n");
    errors += check_master_cf(1);
    if (setup_dirs() < 0)
        errors++;
    if (errors > 0) {
        fprintf(stderr, "kite: %d configuration problem%s found\n", errors, errors == 1 ? "" : "s");
        return 1;
    }
    return 0;
}

/* main - parse the command line and run one kite command */
int main(int argc, char **argv)
{
    const char *cmd;
    int ch, errors;

    msg_init("kite");
    umask(022);
    while ((ch = getopt(argc, argv, "c:v")) != -1) {
        switch (ch) {
        case 'c':
            confdir = optarg;
            break;
        case 'v':
            msg_verbose++;
            break;
        default:
            usage();
        }
    }
    if (optind + 1 != argc)
        usage();
    cmd = argv[optind];
    if (strcmp(cmd, "version") == 0) {
        printf("kite version %s\n", KITE_VERSION);
        return 0;
    }
    if (confdir == NULL)
        confdir = conf_dir_default();
    /* master and the daemons change directory: pass them an absolute path. */
    if (confdir[0] != '/') {
        char *abs = realpath(confdir, NULL);

        if (abs == NULL)
            msg_fatal("config directory %s: %m", confdir);
        confdir = abs;
    }
    errors = load_config();
    if (strcmp(cmd, "start") == 0)
        return cmd_start(errors);
    if (strcmp(cmd, "start-fg") == 0)
        return cmd_start_fg(errors);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(errors);
    if (strcmp(cmd, "stop") == 0) {
        if (master_pid() > 0)
            msg_info("stopping the Kite mail system");
        return cmd_signal(SIGTERM, 1, "stop");
    }
    if (strcmp(cmd, "abort") == 0) {
        if (master_pid() > 0)
            msg_info("aborting the Kite mail system");
        return cmd_signal(SIGQUIT, 1, "abort");
    }
    if (strcmp(cmd, "reload") == 0) {
        if (errors > 0 || check_master_cf(0) > 0) {
            msg_error("configuration errors; not reloading");
            return 1;
        }
        if (master_pid() > 0)
            msg_info("refreshing the Kite mail system");
        return cmd_signal(SIGHUP, 0, "reload");
    }
    if (strcmp(cmd, "status") == 0) {
        pid_t pid = master_pid();

        if (pid <= 0) {
            printf("kite: the Kite mail system is not running\n");
            return 1;
        }
        printf("kite: the Kite mail system is running: PID: %ld\n", (long) pid);
        return 0;
    }
    usage();
}
