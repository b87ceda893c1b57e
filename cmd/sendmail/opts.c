/*
 * opts.c - sendmail's command line, compatible with what programs use:
 * -t -i -oi -f/-r -F -N -R -V -B -bm -bs -bp -bi -bv -bd -q[R|I] -C, the
 * harmless legacy options (-oX..., -odX, -v, -n, -U, -G, -L, -h N, -X, -c,
 * -m, -e?, -O...), and the names mailq and newaliases.
 *
 * Trusts: nothing; values are checked here and again by kitedrop, pickup
 * and cleanup. Parsing is by hand (getopt would reorder or reject sendmail's
 * option syntax such as -oi and -bs).
 */
#include <string.h>
#include <strings.h>

#include "qfile.h"
#include "sendmail.h"
#include "strutil.h"

/* sendmail_parse_notify - "never" or a comma list of success,failure,delay */
int sendmail_parse_notify(const char *text)
{
    int flags = 0;
    const char *p = text;

    if (str_case_eq(text, "never"))
        return QF_NOTIFY_NEVER;
    while (*p) {
        size_t n = strcspn(p, ",");

        if (n == 7 && strncasecmp(p, "success", 7) == 0)
            flags |= QF_NOTIFY_SUCCESS;
        else if (n == 7 && strncasecmp(p, "failure", 7) == 0)
            flags |= QF_NOTIFY_FAILURE;
        else if (n == 5 && strncasecmp(p, "delay", 5) == 0)
            flags |= QF_NOTIFY_DELAY;
        else
            return -1;
        p += n;
        if (*p == ',')
            p++;
    }
    return flags ? flags : -1;
}

/* sm_value - the option's value: attached ("-fuser") or the next argument */
static const char *sm_value(int argc, char **argv, int *i, const char *attached)
{
    if (*attached)
        return attached;
    if (*i + 1 < argc)
        return argv[++*i];
    return NULL;
}

/* sendmail_parse - see sendmail.h */
int sendmail_parse(int argc, char **argv, sendmail_opts *o, vbuf *err)
{
    const char *prog = argc > 0 ? argv[0] : "sendmail";
    const char *slash = strrchr(prog, '/');
    int i;

    memset(o, 0, sizeof(*o));
    prog = slash ? slash + 1 : prog;
    if (strcmp(prog, "mailq") == 0)
        o->mode = SM_MODE_MAILQ;
    else if (strcmp(prog, "newaliases") == 0)
        o->mode = SM_MODE_NEWALIASES;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v;

        if (a[0] != '-' || a[1] == 0)
            break;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        switch (a[1]) {
        case 'b':
            if (strcmp(a, "-bm") == 0)
                o->mode = SM_MODE_DELIVER;
            else if (strcmp(a, "-bs") == 0)
                o->mode = SM_MODE_SMTP;
            else if (strcmp(a, "-bp") == 0)
                o->mode = SM_MODE_MAILQ;
            else if (strcmp(a, "-bi") == 0)
                o->mode = SM_MODE_NEWALIASES;
            else if (strcmp(a, "-bv") == 0)
                o->mode = SM_MODE_VERIFY;
            else if (strcmp(a, "-bd") == 0 || strcmp(a, "-bD") == 0)
                o->mode = SM_MODE_DAEMON;
            else if (strcmp(a, "-bl") == 0)
                o->mode = SM_MODE_DELIVER; /* legacy "-bl": like -bm */
            else {
                vbuf_printf(err, "unsupported mode %s", a);
                return EX_USAGE;
            }
            break;
        case 'C':
            if ((v = sm_value(argc, argv, &i, a + 2)) == NULL)
                goto missing;
            o->confdir = v;
            break;
        case 'f':
        case 'r':
            if ((v = sm_value(argc, argv, &i, a + 2)) == NULL)
                goto missing;
            /* "<>" and "<addr>" are accepted as the null sender and addr. */
            if (strcmp(v, "<>") == 0) {
                v = "";
            } else if (v[0] == '<' && v[strlen(v) - 1] == '>') {
                /* argv strings are writable: strip the brackets in place. */
                char *w = (char *) v;

                w[strlen(w) - 1] = 0;
                v = w + 1;
            }
            if (strchr(v, '\n') || strchr(v, '\r')) {
                vbuf_printf(err, "bad sender address");
                return EX_USAGE;
            }
            o->sender = v;
            break;
        case 'F':
            if ((v = sm_value(argc, argv, &i, a + 2)) == NULL)
                goto missing;
            if (strchr(v, '\n') || strchr(v, '\r')) {
                vbuf_printf(err, "bad full name");
                return EX_USAGE;
            }
            o->fullname = v;
            break;
        case 'N':
            if ((v = sm_value(argc, argv, &i, a + 2)) == NULL)
                goto missing;
            if ((o->notify = sendmail_parse_notify(v)) < 0) {
                vbuf_printf(err, "bad -N option value \"%s\": use never or success,failure,delay", v);
                return EX_USAGE;
            }
            break;
        case 'R':
            if ((v = sm_value(argc, argv, &i, a + 2)) == NULL)
                goto missing;
            if (str_case_eq(v, "full"))
                o->ret = "full";
            else if (str_case_eq(v, "hdrs"))
                o->ret = "hdrs";
            else {
                vbuf_printf(err, "bad -R option value \"%s\": use full or hdrs", v);
                return EX_USAGE;
            }
            break;
        case 'V':
            if ((v = sm_value(argc, argv, &i, a + 2)) == NULL)
                goto missing;
            /* RFC 3461 §4.4: ENVID is printable ASCII, at most 100 characters. */
            if (strlen(v) == 0 || strlen(v) > 100 || !str_is_ascii_printable(v, strlen(v))) {
                vbuf_printf(err, "bad -V option value: printable ASCII, 1 to 100 characters");
                return EX_USAGE;
            }
            o->envid = v;
            break;
        case 'B':
            if ((v = sm_value(argc, argv, &i, a + 2)) == NULL)
                goto missing;
            if (str_case_eq(v, "7bit"))
                o->body = "7bit";
            else if (str_case_eq(v, "8bitmime"))
                o->body = "8bitmime";
            else {
                vbuf_printf(err, "bad -B option value \"%s\": use 7BIT or 8BITMIME", v);
                return EX_USAGE;
            }
            break;
        case 'S':
            if (strcmp(a, "-SMTPUTF8") == 0)
                o->smtputf8 = 1;
            else {
                vbuf_printf(err, "unknown option %s", a);
                return EX_USAGE;
            }
            break;
        case 't':
            if (a[2]) {
                vbuf_printf(err, "unknown option %s", a);
                return EX_USAGE;
            }
            o->extract = 1;
            break;
        case 'i':
            if (a[2]) {
                vbuf_printf(err, "unknown option %s", a);
                return EX_USAGE;
            }
            o->ignore_dots = 1;
            break;
        case 'I':
            o->mode = SM_MODE_NEWALIASES;
            break;
        case 'o':
            /* -oi is meaningful; -oX (e.g. -oem, -odb, -oQdir, -oAfile) are legacy. */
            if (strcmp(a, "-oi") == 0)
                o->ignore_dots = 1;
            else if (a[2] == 0) {
                vbuf_printf(err, "option -o needs a letter");
                return EX_USAGE;
            }
            break;
        case 'O':
            if (sm_value(argc, argv, &i, a + 2) == NULL)
                goto missing;
            break;
        case 'q':
            o->mode = SM_MODE_FLUSH;
            if (a[2] == 'R') {
                if ((v = sm_value(argc, argv, &i, a + 3)) == NULL)
                    goto missing;
                o->flush_site = v;
            } else if (a[2] == 'I') {
                if ((v = sm_value(argc, argv, &i, a + 3)) == NULL)
                    goto missing;
                o->flush_id = v;
            } else if (a[2] && (a[2] < '0' || a[2] > '9') && a[2] != 'p') {
                vbuf_printf(err, "unsupported option %s", a);
                return EX_USAGE;
            }
            /* -q30m / -qp: a queue run interval only means something with -bd. */
            break;
        case 'h':
        case 'L':
        case 'X':
            if (sm_value(argc, argv, &i, a + 2) == NULL)
                goto missing;
            break;
        case 'v':
            o->verbose++;
            break;
        case 'c':
        case 'm':
        case 'n':
        case 'U':
        case 'G':
        case 'A':
        case 'e':
        case 'd':
            break; /* legacy, harmless */
        default:
            vbuf_printf(err, "unknown option %s", a);
            return EX_USAGE;
        }
        continue;
    missing:
        vbuf_printf(err, "option %s requires an argument", a);
        return EX_USAGE;
    }
    o->rcpts = argv + i;
    o->nrcpt = argc - i;
    for (int k = 0; k < o->nrcpt; k++) {
        if (strchr(o->rcpts[k], '\n') || strchr(o->rcpts[k], '\r') || o->rcpts[k][0] == 0) {
            vbuf_printf(err, "bad recipient address");
            return EX_USAGE;
        }
    }
    if (o->mode == SM_MODE_DAEMON) {
        vbuf_printf(err, "daemon mode (-bd) is not supported: start the mail system with \"kite start\"");
        return EX_USAGE;
    }
    if ((o->mode == SM_MODE_DELIVER || o->mode == SM_MODE_VERIFY) && o->nrcpt == 0 && !o->extract) {
        vbuf_printf(err, "Recipient addresses must be specified on the command line or via the -t option");
        return EX_USAGE;
    }
    return 0;
}
