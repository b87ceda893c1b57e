/*
 * lookup - smtpd's client naming off the event loop (see lookup.h).
 *
 * A connection's printable address is known at once; its reverse name and
 * the forward confirmation of that name may take seconds (a slow PTR
 * server), so they run in a small pool of worker threads while the event
 * loop keeps serving the other sessions. A worker only calls the resolver
 * (getnameinfo/getaddrinfo, or dns.h when smtpd_dns_resolver_address is
 * set) and writes into its job; it never logs, never uses mymalloc and
 * never sees session state. It hands the finished job back on a list and
 * wakes the event loop through a pipe; the main thread logs, copies the
 * result out and frees the job.
 *
 * A connection that gives up waiting (smtpd_peername_lookup_timeout, or the
 * client hung up) abandons its job: a queued job is dropped at once, a
 * running one is marked and freed, unread, when its worker returns it. The
 * connection's own record is gone by then, so nothing of it is touched
 * after its service function ran.
 *
 * Trusts the resolver library for thread safety (glibc's getnameinfo,
 * getaddrinfo and res_n* with a private res_state are). Names from the DNS
 * are untrusted: only valid host names that lead back to the address are
 * used, anything else gives "unknown".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns.h"
#include "events.h"
#include "lookup.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"

#define LOOKUP_MAX_THREADS 8

typedef struct peer_wait peer_wait;

/* One lookup, shared with a worker while it is queued or running. */
typedef struct lookup_job {
    /* Input: written before queuing, read-only afterwards. */
    struct sockaddr_storage ss;
    socklen_t sl;
    char addr[NI_MAXHOST];
    int use_server;
    struct sockaddr_in server;
    int timeout_s;
    /* Output: written by the worker before it hands the job back. */
    int status, why, err;
    char name[NI_MAXHOST];
    /* Main thread only. */
    int abandoned;
    peer_wait *owner;
    /* Under lookup_lock. */
    struct lookup_job *next;
} lookup_job;

/* A connection waiting for its name (main thread only). */
struct peer_wait {
    smtpd_peer peer;
    const char *service;
    char **argv;
    multi_service_fn fn;
    lookup_job *job; /* NULL once finished or abandoned */
    int watching;    /* read interest for a hang-up */
    peer_wait *next;
};

static pthread_mutex_t lookup_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lookup_cond = PTHREAD_COND_INITIALIZER;
static lookup_job *queue_head, *queue_tail; /* waiting for a worker */
static lookup_job *done_head;               /* finished, not yet collected */
static int nqueued, nidle, nthreads;
static int notify_pipe[2] = {-1, -1};

static peer_wait *waiting;        /* main thread: connections being named */
static int njobs;                 /* main thread: jobs allocated and not yet freed */
static const smtpd_peer *current; /* the peer whose service function runs */

static void peer_timeout(void *ctx);

/* temp_gai - a getaddrinfo/getnameinfo error worth retrying (Postfix's view) */
static int temp_gai(int rc)
{
    return rc == EAI_AGAIN || rc == EAI_MEMORY || rc == EAI_SYSTEM;
}

/* confirm_system - forward confirmation through getaddrinfo (nss: /etc/hosts, DNS, ...) */
static int confirm_system(const char *host, const char *addr, int *why, int *err)
{
    struct addrinfo hints, *res, *ai;
    int rc, confirmed = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(host, NULL, &hints, &res)) != 0) {
        *why = PEER_WHY_NORESOLVE;
        *err = rc;
        return temp_gai(rc) ? SMTPD_PEER_TEMP : SMTPD_PEER_FORGED;
    }
    for (ai = res; ai && !confirmed; ai = ai->ai_next) {
        char a[NI_MAXHOST];

        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, a, sizeof(a), NULL, 0, NI_NUMERICHOST) != 0)
            continue;
        if (strncmp(a, "::ffff:", 7) == 0)
            memmove(a, a + 7, strlen(a + 7) + 1);
        confirmed = strcmp(a, addr) == 0;
    }
    freeaddrinfo(res);
    if (!confirmed) {
        *why = PEER_WHY_NOTLISTED;
        return SMTPD_PEER_FORGED;
    }
    return SMTPD_PEER_OK;
}

/* confirm_dns - forward confirmation by A or AAAA query through the configured server */
static int confirm_dns(const struct sockaddr_in *srv, int timeout_s, const char *host, const char *addr, int *why,
                       int *err)
{
    unsigned char want[16];
    int v4 = inet_pton(AF_INET, addr, want) == 1;
    dns_answer *ans = NULL;
    dns_answer local;
    int st;

    if (!v4 && inet_pton(AF_INET6, addr, want) != 1)
        return SMTPD_PEER_PERM;
    ans = &local;
    st = dns_query(srv, timeout_s, host, v4 ? DNS_TYPE_A : DNS_TYPE_AAAA, ans);
    if (st != DNS_OK) {
        *why = PEER_WHY_NORESOLVE;
        if (st == DNS_NXDOMAIN || st == DNS_NODATA) {
            *err = EAI_NONAME;
            return SMTPD_PEER_FORGED;
        }
        *err = EAI_AGAIN;
        return SMTPD_PEER_TEMP;
    }
    for (int i = 0; i < ans->count; i++)
        if (memcmp(ans->addrs[i], want, v4 ? 4 : 16) == 0)
            return SMTPD_PEER_OK;
    *why = PEER_WHY_NOTLISTED;
    return SMTPD_PEER_FORGED;
}

/* smtpd_peer_resolve - reverse name, syntax check, forward confirmation (blocking, thread-safe) */
int smtpd_peer_resolve(const struct sockaddr *sa, socklen_t sl, const char *addr, const struct sockaddr_in *srv,
                       int timeout_s, char *name, size_t nlen, int *why, int *err)
{
    char host[NI_MAXHOST];
    unsigned char tmp[16];
    int rc;

    *why = PEER_WHY_NONE;
    *err = 0;
    snprintf(name, nlen, "unknown");
    if (srv) {
        char rev[DNS_NAME_SIZE];
        dns_answer ans;

        if (dns_reverse_name(addr, rev, sizeof(rev)) < 0)
            return SMTPD_PEER_PERM;
        rc = dns_query(srv, timeout_s, rev, DNS_TYPE_PTR, &ans);
        if (rc == DNS_NXDOMAIN || rc == DNS_NODATA)
            return SMTPD_PEER_PERM;
        if (rc != DNS_OK)
            return SMTPD_PEER_TEMP;
        snprintf(host, sizeof(host), "%s", ans.names[0]);
    } else {
        if ((rc = getnameinfo(sa, sl, host, sizeof(host), NULL, 0, NI_NAMEREQD)) != 0)
            return temp_gai(rc) ? SMTPD_PEER_TEMP : SMTPD_PEER_PERM;
    }
    if (!dns_valid_hostname(host)) {
        /* Only a numeric name is safe to show in a warning. */
        if (inet_pton(AF_INET, host, tmp) == 1 || inet_pton(AF_INET6, host, tmp) == 1) {
            snprintf(name, nlen, "%s", host);
            *why = PEER_WHY_NUMERIC;
        }
        return SMTPD_PEER_PERM;
    }
    snprintf(name, nlen, "%s", host);
    rc = srv ? confirm_dns(srv, timeout_s, host, addr, why, err) : confirm_system(host, addr, why, err);
    return rc;
}

/* lookup_worker - take jobs, resolve, hand them back; runs until the process exits */
static void *lookup_worker(void *arg)
{
    (void) arg;
    if (pthread_mutex_lock(&lookup_lock) != 0)
        abort();
    for (;;) {
        lookup_job *job;
        const unsigned char byte = 1;

        while (queue_head == NULL) {
            nidle++;
            (void) pthread_cond_wait(&lookup_cond, &lookup_lock);
            nidle--;
        }
        job = queue_head;
        if ((queue_head = job->next) == NULL)
            queue_tail = NULL;
        nqueued--;
        (void) pthread_mutex_unlock(&lookup_lock);

        job->status =
            smtpd_peer_resolve((struct sockaddr *) &job->ss, job->sl, job->addr, job->use_server ? &job->server : NULL,
                               job->timeout_s, job->name, sizeof(job->name), &job->why, &job->err);

        if (pthread_mutex_lock(&lookup_lock) != 0)
            abort();
        job->next = done_head;
        done_head = job;
        /* A full pipe already holds a wake-up; EAGAIN is fine. */
        (void) !write(notify_pipe[1], &byte, 1);
    }
    return NULL;
}

/* lookup_spawn - one more worker, with every signal blocked (the loop's self-pipe gets them); 0 or -1 */
static int lookup_spawn(void)
{
    pthread_t t;
    pthread_attr_t attr;
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    if (pthread_attr_init(&attr) != 0)
        return -1;
    (void) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    (void) pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&t, &attr, lookup_worker, NULL);
    (void) pthread_sigmask(SIG_SETMASK, &old, NULL);
    (void) pthread_attr_destroy(&attr);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    nthreads++;
    return 0;
}

/* peer_finish - the name is settled: call the service function, forget the wait */
static void peer_finish(peer_wait *p)
{
    peer_wait **pp;

    event_timer_cancel(peer_timeout, p);
    if (p->watching)
        event_disable_read(p->peer.fd);
    for (pp = &waiting; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    if (p->peer.status != SMTPD_PEER_OK)
        snprintf(p->peer.name, sizeof(p->peer.name), "unknown");
    current = &p->peer;
    p->fn(p->peer.fd, p->service, p->argv);
    current = NULL;
    xfree(p);
}

/* peer_abandon - stop caring about p's job; a worker may still be running it */
static void peer_abandon(peer_wait *p)
{
    lookup_job *job = p->job, **jp;
    int queued = 0;

    if (job == NULL)
        return;
    p->job = NULL;
    if (pthread_mutex_lock(&lookup_lock) != 0)
        msg_fatal("peer_abandon: mutex lock failed");
    for (jp = &queue_head; *jp; jp = &(*jp)->next) {
        if (*jp == job) {
            *jp = job->next;
            nqueued--;
            queued = 1;
            break;
        }
    }
    if (queued) {
        queue_tail = NULL;
        for (lookup_job *j = queue_head; j; j = j->next)
            queue_tail = j;
    } else {
        job->abandoned = 1; /* the worker's hand-back frees it */
    }
    (void) pthread_mutex_unlock(&lookup_lock);
    if (queued) {
        xfree(job);
        njobs--;
    }
}

/* peer_timeout - smtpd_peername_lookup_timeout passed: go on as "unknown" */
static void peer_timeout(void *ctx)
{
    peer_wait *p = ctx;

    msg_warn("%s: client name lookup timed out after %lds", p->peer.addr, var_smtpd_peername_lookup_timeout);
    peer_abandon(p);
    p->peer.status = p->peer.reverse_status = SMTPD_PEER_TEMP;
    peer_finish(p);
}

/* peer_readable - input or a hang-up before the name is known */
static void peer_readable(int fd, int events, void *ctx)
{
    peer_wait *p = ctx;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    event_disable_read(fd);
    p->watching = 0;
    if (n > 0)
        return; /* it talks before the greeting: the session will see that; keep waiting */
    /* Gone (EOF or reset): the name no longer matters. Nothing can follow its FIN. */
    peer_abandon(p);
    p->peer.status = p->peer.reverse_status = SMTPD_PEER_TEMP;
    peer_finish(p);
}

/* lookup_collect - the event loop side of the pipe: settle finished jobs */
static void lookup_collect(int fd, int events, void *ctx)
{
    unsigned char buf[256];
    lookup_job *list;

    (void) events;
    (void) ctx;
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    if (pthread_mutex_lock(&lookup_lock) != 0)
        msg_fatal("lookup_collect: mutex lock failed");
    list = done_head;
    done_head = NULL;
    (void) pthread_mutex_unlock(&lookup_lock);
    while (list) {
        lookup_job *job = list;
        peer_wait *p = job->owner;

        list = job->next;
        if (job->abandoned) {
            xfree(job);
            njobs--;
            continue;
        }
        p->job = NULL;
        switch (job->why) {
        case PEER_WHY_NUMERIC:
            msg_warn("numeric hostname: %s", job->name);
            break;
        case PEER_WHY_NORESOLVE:
            msg_warn("hostname %s does not resolve to address %s: %s", job->name, p->peer.addr, gai_strerror(job->err));
            break;
        case PEER_WHY_NOTLISTED:
            msg_warn("hostname %s does not resolve to address %s", job->name, p->peer.addr);
            break;
        default:
            break;
        }
        p->peer.status = job->status;
        /* A reason for a warning means a reverse name was found; only the forward step failed. */
        p->peer.reverse_status =
            job->status == SMTPD_PEER_OK || job->why != PEER_WHY_NONE ? SMTPD_PEER_OK : job->status;
        if (job->status == SMTPD_PEER_OK)
            snprintf(p->peer.name, sizeof(p->peer.name), "%s", job->name);
        xfree(job);
        njobs--;
        peer_finish(p);
    }
}

/* lookup_submit - queue a job, growing the pool when every worker is busy; 0 or -1 */
static int lookup_submit(lookup_job *job)
{
    int ret = 0;

    if (notify_pipe[0] < 0) {
        if (pipe2(notify_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
            msg_warn("client name lookup: pipe: %m");
            return -1;
        }
        event_enable_read(notify_pipe[0], lookup_collect, NULL);
    }
    if (pthread_mutex_lock(&lookup_lock) != 0)
        msg_fatal("lookup_submit: mutex lock failed");
    job->next = NULL;
    if (queue_tail)
        queue_tail->next = job;
    else
        queue_head = job;
    queue_tail = job;
    nqueued++;
    if (nqueued > nidle && nthreads < LOOKUP_MAX_THREADS && lookup_spawn() < 0) {
        msg_warn("client name lookup: cannot start a worker thread: %m");
        if (nthreads == 0) {
            /* Nobody would ever take it. */
            queue_head = queue_tail = NULL;
            nqueued = 0;
            ret = -1;
        }
    }
    if (ret == 0)
        (void) pthread_cond_signal(&lookup_cond);
    (void) pthread_mutex_unlock(&lookup_lock);
    return ret;
}

/* lookup_server - smtpd_dns_resolver_address into *sin; 1 when set and valid, 0: the system resolver */
static int lookup_server(struct sockaddr_in *sin)
{
    static int warned;

    if (var_smtpd_dns_resolver_address == NULL || *var_smtpd_dns_resolver_address == 0)
        return 0;
    if (dns_server_parse(var_smtpd_dns_resolver_address, sin) == 0)
        return 1;
    if (!warned)
        msg_warn("smtpd_dns_resolver_address: bad address \"%s\": using the system resolver",
                 var_smtpd_dns_resolver_address);
    warned = 1;
    return 0;
}

/* smtpd_lookup_init - read resolver configuration and load nss modules before any chroot */
void smtpd_lookup_init(void)
{
    struct sockaddr_in sin;
    char host[NI_MAXHOST];
    struct addrinfo hints, *res;

    if (!var_smtpd_peername_lookup)
        return;
    if (lookup_server(&sin))
        return;
    /*
     * The system resolver reads nsswitch.conf and resolv.conf on first use;
     * one lookup now does that while the files are still reachable.
     */
    (void) res_init();
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    (void) getnameinfo((struct sockaddr *) &sin, sizeof(sin), host, sizeof(host), NULL, 0, NI_NAMEREQD);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo("localhost", NULL, &hints, &res) == 0)
        freeaddrinfo(res);
}

/* smtpd_peer_lookup - start naming the client on fd */
void smtpd_peer_lookup(int fd, const char *service, char **argv, multi_service_fn fn)
{
    peer_wait *p = xcalloc(1, sizeof(*p));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    lookup_job *job;

    p->peer.fd = fd;
    p->service = service;
    p->argv = argv;
    p->fn = fn;
    p->peer.status = p->peer.reverse_status = SMTPD_PEER_PERM;
    snprintf(p->peer.name, sizeof(p->peer.name), "unknown");
    p->next = waiting;
    waiting = p;
    if (getpeername(fd, (struct sockaddr *) &ss, &sl) < 0) {
        /* Reset before we got to it (ENOTCONN): gone, and certainly not a local submission. */
        snprintf(p->peer.addr, sizeof(p->peer.addr), "unknown");
        snprintf(p->peer.port, sizeof(p->peer.port), "unknown");
        peer_finish(p);
        return;
    }
    if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) {
        /* Not an Internet peer: the stand-alone (sendmail -bs) session. */
        p->peer.standalone = 1;
        p->peer.status = p->peer.reverse_status = SMTPD_PEER_OK;
        snprintf(p->peer.name, sizeof(p->peer.name), "localhost");
        snprintf(p->peer.addr, sizeof(p->peer.addr), "127.0.0.1");
        snprintf(p->peer.port, sizeof(p->peer.port), "0");
        peer_finish(p);
        return;
    }
    if (getnameinfo((struct sockaddr *) &ss, sl, p->peer.addr, sizeof(p->peer.addr), p->peer.port, sizeof(p->peer.port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        msg_fatal("getnameinfo: cannot print the client address");
    if (strncmp(p->peer.addr, "::ffff:", 7) == 0 && strchr(p->peer.addr + 7, '.'))
        memmove(p->peer.addr, p->peer.addr + 7, strlen(p->peer.addr + 7) + 1);
    if (!var_smtpd_peername_lookup) {
        peer_finish(p);
        return;
    }
    job = xcalloc(1, sizeof(*job));
    njobs++;
    memcpy(&job->ss, &ss, sizeof(ss));
    job->sl = sl;
    memcpy(job->addr, p->peer.addr, sizeof(job->addr));
    job->use_server = lookup_server(&job->server);
    job->timeout_s = (int) var_smtpd_peername_lookup_timeout;
    job->owner = p;
    if (lookup_submit(job) < 0) {
        xfree(job);
        njobs--;
        p->peer.status = p->peer.reverse_status = SMTPD_PEER_TEMP;
        peer_finish(p);
        return;
    }
    p->job = job;
    event_timer_set(peer_timeout, p, var_smtpd_peername_lookup_timeout * 1000L);
    p->watching = 1;
    event_enable_read(fd, peer_readable, p);
}

/* smtpd_peer_current - the peer being handed to its service function */
const smtpd_peer *smtpd_peer_current(int fd)
{
    if (current == NULL || current->fd != fd)
        msg_panic("smtpd_peer_current: no settled lookup for fd %d", fd);
    return current;
}

/* smtpd_peer_pending - connections still waiting for their name */
int smtpd_peer_pending(void)
{
    int n = 0;

    for (peer_wait *p = waiting; p; p = p->next)
        n++;
    return n;
}

/* smtpd_lookup_jobs - lookups allocated and not yet freed, abandoned ones included */
int smtpd_lookup_jobs(void)
{
    return njobs;
}
