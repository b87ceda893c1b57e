/*
 * master - the Kite supervisor's entry point:
 *
 *     master [-c confdir] [-f] [-v]
 *
 * -f keeps master in the foreground (kite start-fg) and logs to stderr when
 * no maillog_file is set. Without -f, master expects `kite start` to have
 * made it a session leader; stderr reports startup errors to `kite start`
 * and, once every listener is open, says so and is closed.
 *
 * Trusts main.cf and master.cf only through their parsers.
 */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "master.h"
#include "msg.h"
#include "params.h"
#include "vbuf.h"

/* main - start the supervisor: config, identity, lock, listeners, loop */
int main(int argc, char **argv)
{
    vbuf why;
    int ch;

    msg_init("kite/master");
    umask(022);
    while ((ch = getopt(argc, argv, "c:fv")) != -1) {
        switch (ch) {
        case 'c':
            master_confdir = optarg;
            break;
        case 'f':
            master_foreground = 1;
            break;
        case 'v':
            msg_verbose++;
            break;
        default:
            msg_fatal("usage: master [-c confdir] [-f] [-v]");
        }
    }
    if (optind != argc)
        msg_fatal("usage: master [-c confdir] [-f] [-v]");
    if (master_confdir == NULL)
        master_confdir = conf_dir_default();
    if (master_confdir[0] != '/') {
        /* master and the daemons work in queue_directory. */
        char *abs = realpath(master_confdir, NULL);

        if (abs == NULL)
            msg_fatal("config directory %s: %m", master_confdir);
        master_confdir = abs;
    }
    if (conf_load(master_confdir) > 0)
        msg_fatal("%s/main.cf: configuration errors (run kite check)", master_confdir);
    master_open_log();
    master_check_identity();
    if (chdir(var_queue_directory) < 0)
        msg_fatal("chdir %s: %m (run kite check to create it)", var_queue_directory);
    master_lock_pid_file();
    if (master_read_cf(&master_config) > 0)
        msg_fatal("%s/master.cf: configuration errors", master_confdir);
    master_sig_setup();
    vbuf_init(&why, 0);
    if (master_services_load(&master_config, &why) < 0)
        msg_fatal("%s", vbuf_str(&why));
    vbuf_release(&why);
    master_child_env_init();
    msg_info("daemon started -- version %s, configuration %s", var_mail_version, master_confdir);
    master_detach_stdio(); /* kite start sees EOF: ready */
    master_main_loop();
    msg_info("stopped");
    return 0;
}
