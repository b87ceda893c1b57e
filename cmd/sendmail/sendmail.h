/*
 * sendmail.h - the sendmail command's options (opts.c) and its modes.
 */
#ifndef KITE_SENDMAIL_H
#define KITE_SENDMAIL_H

#include "vbuf.h"

/* sysexits.h values, spelled out where the header may be missing. */
#include <sysexits.h>

enum sendmail_mode {
    SM_MODE_DELIVER,    /* -bm (default): read a message and queue it */
    SM_MODE_SMTP,       /* -bs: SMTP on stdin/stdout */
    SM_MODE_MAILQ,      /* -bp, mailq */
    SM_MODE_NEWALIASES, /* -bi, -I, newaliases */
    SM_MODE_VERIFY,     /* -bv */
    SM_MODE_FLUSH,      /* -q, -qR, -qI */
    SM_MODE_DAEMON,     /* -bd: refused */
};

typedef struct sendmail_opts {
    enum sendmail_mode mode;
    const char *confdir;    /* -C */
    const char *sender;     /* -f / -r; NULL: the login name; "" null sender */
    const char *fullname;   /* -F */
    int notify;             /* -N: QF_NOTIFY_* bits; 0 = not given */
    const char *ret;        /* -R: "full" / "hdrs" */
    const char *envid;      /* -V */
    const char *body;       /* -B: "7bit" / "8bitmime" */
    int extract;            /* -t */
    int ignore_dots;        /* -i, -oi */
    int smtputf8;           /* -SMTPUTF8 */
    const char *flush_site; /* -qR */
    const char *flush_id;   /* -qI */
    int verbose;            /* -v */
    char **rcpts;           /* remaining arguments */
    int nrcpt;
} sendmail_opts;

/*
 * sendmail_parse - the command line; 0, or an EX_* code with the message in
 * err. progname (basename of argv[0]) selects mailq/newaliases.
 */
int sendmail_parse(int argc, char **argv, sendmail_opts *o, vbuf *err);

/* sendmail_parse_notify - "never" or a comma list of success,failure,delay; -1 if bad */
int sendmail_parse_notify(const char *text);

#endif
