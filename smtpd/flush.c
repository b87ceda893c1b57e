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
#include "attr.h"
#include "domain_list.h"
#include "mail_server.h"
#include "params.h"
#include "smtpd.h"
#include "vbuf.h"

#define SMTPD_QMGR_PATH "public/qmgr"

/* smtpd_flush_site - ask qmgr to deliver the site's deferred mail now; see smtpd.h */
int smtpd_flush_site(const char *site, int subdomains, vbuf *why)
{
    int timeout = var_trigger_timeout > 0 && var_trigger_timeout < 3600 ? (int) var_trigger_timeout : 10;
    attr_list *frame = attr_new();
    long long status;
    int st;

    attr_put_str(frame, "request", "flush_site");
    attr_put_str(frame, "site", site);
    if (subdomains)
        attr_put_int(frame, "subdomains", 1);
    st = mail_request(SMTPD_QMGR_PATH, frame, timeout, why, &status);
    /* qmgr's own fast_flush_domains check may have refused. */
    if (st == MAIL_REQUEST_REFUSED && status == FLUSH_STAT_DENY) {
        attr_free(frame);
        return 2;
    }
    attr_free(frame);
    return st == MAIL_REQUEST_OK ? 0 : st == MAIL_REQUEST_REFUSED ? 1 : -1;
}
