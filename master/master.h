/*
 * master.h - the supervisor's state: services from master.cf with their
 * listening sockets and status pipes, and the child processes.
 */
#ifndef KITE_MASTER_H
#define KITE_MASTER_H

#include <sys/types.h>
#include <time.h>

#include "mail_server.h"
#include "master_cf.h"

typedef struct master_service {
    master_cf_entry *ent;               /* owned copy of the master.cf entry */
    char *path;                         /* daemon_directory/command */
    char *sock_path;                    /* unix: "private/NAME" or "public/NAME" */
    char *listen_key;                   /* what the sockets are bound to */
    int listen_fd[MAIL_SERVER_MAX_LISTEN];
    int listen_count;
    int status_rd, status_wr;           /* the status pipe */
    int maxproc;                        /* resolved; 0 = no limit */
    int total;                          /* running children */
    int avail;                          /* children waiting for a client */
    time_t throttled_until;             /* 0 = not throttled */
    time_t next_wakeup;                 /* 0 = no wakeup */
    time_t limit_warned;                /* last "process limit" warning */
    int keep;                           /* reload mark */
    struct master_service *next;
} master_service;

typedef struct master_proc {
    pid_t pid;
    master_service *serv;               /* NULL once retired by a reload */
    int avail;
    long use_count;                     /* clients served (busy reports) */
    int signalled;                      /* SIGTERM sent */
    struct master_proc *next;
} master_proc;

/* master.c */
extern const char *master_confdir;
extern int master_foreground;
extern int master_stopping;
extern master_cf master_config;
extern master_service *master_services;
extern master_proc *master_procs;
time_t master_now(void);
void master_open_log(void);
void master_check_identity(void);
void master_lock_pid_file(void);
int master_read_cf(master_cf *cf);
void master_sig_setup(void);
void master_detach_stdio(void);
void master_main_loop(void);

/* master_service.c */
int master_services_load(const master_cf *cf, vbuf *why);   /* initial; 0 or -1 */
void master_services_reload(const master_cf *cf);
void master_service_close_listeners(master_service *serv);
void master_services_close_all(void);
void master_wakeup(master_service *serv);

/* master_spawn.c */
void master_spawn(master_service *serv);
void master_reap(void);
void master_status_read(master_service *serv);
void master_retire_children(master_service *serv);      /* NULL = all */
void master_kill_all(int sig);
int master_should_listen(const master_service *serv);
void master_child_env_init(void);

#endif
