/*
 * flush.c - smtpd's client of the queue manager's flush_site request, the
 * work behind ETRN (RFC 1985): the same request `kitequeue -s` makes.
 *
 * Offers smtpd_flush_site(): one frame {request = flush_site, site,
 * subdomains} on public/qmgr and qmgr's {status, text} answer. The path is
 * relative to the queue directory, the skeleton's working directory, so it
 * also works inside the chroot. The round trip runs on a local socket under
 * one absolute deadline of trigger_timeout: a stuck queue manager holds up
 * this process's other sessions at most that long, never indefinitely.
 * (The fuzzer replaces this file with a stand-in.)
 *
 * Trusts qmgr's answer only as far as a strict attr scan.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "attr.h"
#include "mail_server.h"
#include "params.h"
#include "smtpd.h"
#include "stream.h"
#include "vbuf.h"

#define SMTPD_QMGR_PATH "public/qmgr"
#define SMTPD_QMGR_REPLY_MAX 4096

/* smtpd_flush_site - ask qmgr to deliver the site's deferred mail now; see smtpd.h */
int smtpd_flush_site(const char *site, int subdomains, vbuf *why)
{
    long long status = -1;
    const char *text = NULL;
    attr_spec spec[] = {ATTR_SPEC_INT("status", ATTR_REQUIRED, &status), ATTR_SPEC_STR("text", ATTR_REQUIRED, &text),
                        ATTR_SPEC_END};
    int timeout = var_trigger_timeout > 0 && var_trigger_timeout < 3600 ? (int) var_trigger_timeout : 10;
    attr_list *frame;
    stream *s;
    time_t deadline = time(NULL) + timeout;
    int fd, st, ret = -1;

    vbuf_reset(why);
    if ((fd = mail_server_connect(SMTPD_QMGR_PATH, timeout)) < 0) {
        vbuf_printf(why, "connect to %s: %s", SMTPD_QMGR_PATH, strerror(errno));
        return -1;
    }
    s = stream_open(fd);
    stream_set_timeout(s, timeout);
    stream_set_deadline(s, deadline); /* connecting counts, too */
    frame = attr_new();
    attr_put_str(frame, "request", "flush_site");
    attr_put_str(frame, "site", site);
    if (subdomains)
        attr_put_int(frame, "subdomains", 1);
    if ((st = attr_write(s, frame)) < 0) {
        vbuf_printf(why, "%s: write: %s", SMTPD_QMGR_PATH, stream_strerror(st));
    } else if ((st = attr_read(s, frame, SMTPD_QMGR_REPLY_MAX)) < 0) {
        vbuf_printf(why, "%s: no answer: %s", SMTPD_QMGR_PATH,
                    st == ATTR_BAD ? "malformed frame" : stream_strerror(st));
    } else if (attr_scan(frame, spec) < 0) {
        vbuf_printf(why, "%s: malformed answer", SMTPD_QMGR_PATH);
    } else if (status != 0) {
        vbuf_printf(why, "%.200s", text);
        ret = 1;
    } else {
        ret = 0;
    }
    attr_free(frame);
    stream_close(s);
    return ret;
}
