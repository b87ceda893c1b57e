/*
 * master_service - services from master.cf: listening sockets (inet per
 * address in inet_interfaces, unix under private/ or public/), the status
 * pipe, reload (unchanged listeners keep their sockets), wakeup triggers.
 *
 * Trusts: the parsed master.cf (master_cf validated names and columns) and
 * main.cf. Unix sockets are created under the queue directory with a umask
 * rather than a chmod afterwards, so a planted link is never followed.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "attr.h"
#include "master.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "stream.h"
#include "strutil.h"
#include "vbuf.h"

master_service *master_services;

/* inet_family - the address family inet_protocols allows */
static int inet_family(void)
{
    int v4 = 0, v6 = 0;
    char *copy = xstrdup(var_inet_protocols);
    char *cursor = copy, *tok;

    while ((tok = str_token(&cursor, CHARS_COMMA_SPACE)) != NULL) {
        if (str_case_eq(tok, "all"))
            v4 = v6 = 1;
        else if (str_case_eq(tok, "ipv4"))
            v4 = 1;
        else if (str_case_eq(tok, "ipv6"))
            v6 = 1;
        else
            msg_warn("inet_protocols: unknown protocol \"%.50s\" ignored", tok);
    }
    xfree(copy);
    if (v4 && !v6)
        return AF_INET;
    if (v6 && !v4)
        return AF_INET6;
    return AF_UNSPEC;
}

/* listen_key - identity of a service's sockets, to keep them over a reload */
static char *listen_key(const master_cf_entry *ent)
{
    vbuf key;
    char *res;

    vbuf_init(&key, 0);
    if (ent->type == MASTER_CF_INET)
        vbuf_printf(&key, "inet|%s|%s|%s|%s", ent->host ? ent->host : "", ent->port,
                    ent->host ? "" : var_inet_interfaces, var_inet_protocols);
    else
        vbuf_printf(&key, "unix|%s/%s", ent->private_ ? "private" : "public", ent->name);
    res = vbuf_steal(&key);
    vbuf_release(&key);
    return res;
}

/* add_listener - remember one listening socket */
static int add_listener(master_service *serv, int fd, vbuf *why)
{
    if (serv->listen_count >= MAIL_SERVER_MAX_LISTEN) {
        close(fd);
        vbuf_printf(why, "service %s: too many listening addresses (limit %d)", serv->ent->name,
                    MAIL_SERVER_MAX_LISTEN);
        return -1;
    }
    serv->listen_fd[serv->listen_count++] = fd;
    return 0;
}

/* open_inet_host - bind every address of one host (NULL: wildcard); 0 or -1 */
static int open_inet_host(master_service *serv, const char *host, int family, int tolerate_v6, vbuf *why)
{
    struct addrinfo hints, *res, *ai;
    int err, opened = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if ((err = getaddrinfo(host, serv->ent->port, &hints, &res)) != 0) {
        vbuf_printf(why, "%s: service %s: cannot resolve %s:%s: %s", serv->ent->source, serv->ent->name,
                    host ? host : "*", serv->ent->port, gai_strerror(err));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        char addr[NI_MAXHOST], port[NI_MAXSERV];
        int fd, on = 1;

        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr), port, sizeof(port),
                        NI_NUMERICHOST | NI_NUMERICSERV) != 0)
            snprintf(addr, sizeof(addr), "?");
        if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
            if (ai->ai_family == AF_INET6 && tolerate_v6)
                continue;
            vbuf_printf(why, "service %s: socket: %s", serv->ent->name, strerror(errno));
            freeaddrinfo(res);
            return -1;
        }
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0)
            msg_warn("setsockopt SO_REUSEADDR: %m");
        if (ai->ai_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0)
            msg_warn("setsockopt IPV6_V6ONLY: %m");
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, (int) var_inet_listen_backlog) < 0) {
            int saved = errno;

            close(fd);
            if (ai->ai_family == AF_INET6 && tolerate_v6 && (saved == EADDRNOTAVAIL || saved == EAFNOSUPPORT))
                continue;
            vbuf_printf(why, "%s: bind %s%s%s:%s: %s", serv->ent->source, ai->ai_family == AF_INET6 ? "[" : "", addr,
                        ai->ai_family == AF_INET6 ? "]" : "", serv->ent->port, strerror(saved));
            freeaddrinfo(res);
            return -1;
        }
        if (add_listener(serv, fd, why) < 0) {
            freeaddrinfo(res);
            return -1;
        }
        opened++;
    }
    freeaddrinfo(res);
    if (opened == 0) {
        vbuf_printf(why, "service %s: no usable address for %s", serv->ent->name, host ? host : "*");
        return -1;
    }
    return 0;
}

/* open_inet - one socket per address in inet_interfaces (or the given host) */
static int open_inet(master_service *serv, vbuf *why)
{
    int family = inet_family();
    char *copy, *cursor, *tok;
    int ret = 0;

    if (serv->ent->host)
        return open_inet_host(serv, serv->ent->host, family, 0, why);
    copy = xstrdup(var_inet_interfaces);
    cursor = copy;
    while (ret == 0 && (tok = str_token(&cursor, CHARS_COMMA_SPACE)) != NULL) {
        if (str_case_eq(tok, "all")) {
            ret = open_inet_host(serv, NULL, family, family == AF_UNSPEC, why);
        } else if (str_case_eq(tok, "loopback-only")) {
            if (family != AF_INET6)
                ret = open_inet_host(serv, "127.0.0.1", AF_INET, 0, why);
            if (ret == 0 && family != AF_INET)
                ret = open_inet_host(serv, "::1", AF_INET6, family == AF_UNSPEC, why);
        } else {
            size_t len = strlen(tok);

            if (tok[0] == '[' && len > 2 && tok[len - 1] == ']') {
                tok[len - 1] = 0;
                tok++;
            }
            ret = open_inet_host(serv, tok, family, 0, why);
        }
    }
    xfree(copy);
    if (ret == 0 && serv->listen_count == 0) {
        vbuf_printf(why, "service %s: inet_interfaces is empty", serv->ent->name);
        ret = -1;
    }
    return ret;
}

/* open_unix - a stream socket under private/ or public/, mode 0666 by umask */
static int open_unix(master_service *serv, vbuf *why)
{
    struct sockaddr_un sun;
    struct stat st;
    mode_t old_mask;
    int fd;

    if (strlen(serv->sock_path) >= sizeof(sun.sun_path)) {
        vbuf_printf(why, "service %s: socket path too long", serv->ent->name);
        return -1;
    }
    if (lstat(serv->sock_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            vbuf_printf(why, "%s/%s exists and is not a socket", var_queue_directory, serv->sock_path);
            return -1;
        }
        if (unlink(serv->sock_path) < 0) {
            vbuf_printf(why, "unlink %s/%s: %s", var_queue_directory, serv->sock_path, strerror(errno));
            return -1;
        }
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, serv->sock_path, strlen(serv->sock_path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
        vbuf_printf(why, "service %s: socket: %s", serv->ent->name, strerror(errno));
        return -1;
    }
    /* Access is controlled by the directory (private/ 0700, public/ 0710). */
    old_mask = umask(0111);
    if (bind(fd, (struct sockaddr *) &sun, sizeof(sun)) < 0) {
        int saved = errno;

        umask(old_mask);
        close(fd);
        vbuf_printf(why, "%s: bind %s/%s: %s", serv->ent->source, var_queue_directory, serv->sock_path,
                    strerror(saved));
        return -1;
    }
    umask(old_mask);
    if (listen(fd, (int) var_inet_listen_backlog) < 0) {
        vbuf_printf(why, "listen %s: %s", serv->sock_path, strerror(errno));
        close(fd);
        return -1;
    }
    return add_listener(serv, fd, why);
}

/* open_listeners - all sockets of a service; 0 or -1 with why */
static int open_listeners(master_service *serv, vbuf *why)
{
    int ret = serv->ent->type == MASTER_CF_INET ? open_inet(serv, why) : open_unix(serv, why);

    if (ret < 0)
        master_service_close_listeners(serv);
    return ret;
}

/* master_service_close_listeners - close every listening socket */
void master_service_close_listeners(master_service *serv)
{
    for (int i = 0; i < serv->listen_count; i++)
        if (close(serv->listen_fd[i]) < 0)
            msg_warn("close listener of %s: %m", serv->ent->name);
    serv->listen_count = 0;
}

/* service_apply - (re)derive everything that comes from the entry and main.cf */
static void service_apply(master_service *serv, master_cf_entry *ent)
{
    vbuf path;

    serv->ent = ent;
    xfree(serv->path);
    vbuf_init(&path, 0);
    vbuf_printf(&path, "%s/%s", var_daemon_directory, ent->command);
    serv->path = vbuf_steal(&path);
    vbuf_release(&path);
    xfree(serv->sock_path);
    serv->sock_path = NULL;
    if (ent->type == MASTER_CF_UNIX) {
        vbuf_init(&path, 0);
        vbuf_printf(&path, "%s/%s", ent->private_ ? "private" : "public", ent->name);
        serv->sock_path = vbuf_steal(&path);
        vbuf_release(&path);
    }
    serv->maxproc = ent->maxproc < 0 ? (int) var_default_process_limit : ent->maxproc;
    if (ent->wakeup == 0)
        serv->next_wakeup = 0;
    else if (serv->next_wakeup == 0)
        serv->next_wakeup = master_now(); /* first trigger right away */
}

/* service_new - a service with its sockets and status pipe; NULL on error */
static master_service *service_new(master_cf_entry *ent, vbuf *why)
{
    master_service *serv = xcalloc(1, sizeof(*serv));
    int pfd[2];

    service_apply(serv, ent);
    serv->listen_key = listen_key(ent);
    if (open_listeners(serv, why) < 0) {
        xfree(serv->path);
        xfree(serv->sock_path);
        xfree(serv->listen_key);
        xfree(serv);
        return NULL;
    }
    if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) < 0)
        msg_fatal("pipe: %m");
    /* Children block on status writes; only master's read end is non-blocking. */
    if (fcntl(pfd[1], F_SETFL, 0) < 0)
        msg_fatal("fcntl: %m");
    serv->status_rd = pfd[0];
    serv->status_wr = pfd[1];
    return serv;
}

/* service_free - close everything of a removed service */
static void service_free(master_service *serv)
{
    master_service_close_listeners(serv);
    if (serv->sock_path && unlink(serv->sock_path) < 0 && errno != ENOENT)
        msg_warn("unlink %s: %m", serv->sock_path);
    close(serv->status_rd);
    close(serv->status_wr);
    xfree(serv->path);
    xfree(serv->sock_path);
    xfree(serv->listen_key);
    xfree(serv);
}

/* master_services_load - open every service of a fresh master.cf; 0 or -1 */
int master_services_load(const master_cf *cf, vbuf *why)
{
    master_service **tail = &master_services;

    for (size_t i = 0; i < cf->count; i++) {
        master_service *serv = service_new(&cf->entries[i], why);

        if (serv == NULL)
            return -1;
        *tail = serv;
        tail = &serv->next;
    }
    return 0;
}

/* master_services_reload - apply a new master.cf to the running services */
void master_services_reload(const master_cf *cf)
{
    master_service *serv, **pp;
    vbuf why;

    vbuf_init(&why, 0);
    for (serv = master_services; serv; serv = serv->next)
        serv->keep = 0;
    for (size_t i = 0; i < cf->count; i++) {
        master_cf_entry *ent = &cf->entries[i];
        char *key = listen_key(ent);

        for (serv = master_services; serv; serv = serv->next)
            if (!serv->keep && serv->ent->type == ent->type && strcmp(serv->ent->name, ent->name) == 0)
                break;
        if (serv) {
            char *old_sock = serv->sock_path ? xstrdup(serv->sock_path) : NULL;

            serv->keep = 1;
            service_apply(serv, ent);
            /* Its children are retired below: wake the new generation now. */
            if (ent->wakeup > 0)
                serv->next_wakeup = master_now();
            if (strcmp(key, serv->listen_key) != 0) {
                /* Address or interfaces changed: new sockets. */
                master_service_close_listeners(serv);
                if (old_sock && unlink(old_sock) < 0 && errno != ENOENT)
                    msg_warn("unlink %s: %m", old_sock);
                xfree(serv->listen_key);
                serv->listen_key = key;
                key = NULL;
                vbuf_reset(&why);
                if (open_listeners(serv, &why) < 0)
                    msg_error("reload: %s", vbuf_str(&why));
            }
            serv->throttled_until = 0;
            xfree(old_sock);
            xfree(key);
            continue;
        }
        xfree(key);
        vbuf_reset(&why);
        if ((serv = service_new(ent, &why)) == NULL) {
            msg_error("reload: %s", vbuf_str(&why));
            continue;
        }
        serv->keep = 1;
        serv->next = master_services;
        master_services = serv;
        msg_info("reload: added %s service %s", master_cf_type_name(ent->type), ent->name);
    }
    /* Every running child finishes its work and exits; new ones read the new config. */
    master_retire_children(NULL);
    for (pp = &master_services; (serv = *pp) != NULL;) {
        if (serv->keep) {
            pp = &serv->next;
            continue;
        }
        msg_info("reload: removed %s service %s", master_cf_type_name(serv->ent->type), serv->ent->name);
        *pp = serv->next;
        service_free(serv);
    }
    vbuf_release(&why);
}

/* master_services_close_all - stop listening everywhere (shutdown) */
void master_services_close_all(void)
{
    for (master_service *serv = master_services; serv; serv = serv->next)
        master_service_close_listeners(serv);
}

/*
 * master_wakeup - connect to a unix service and send the trigger frame
 * {request = "wakeup"}; never waits for the service.
 */
void master_wakeup(master_service *serv)
{
    struct sockaddr_un sun;
    attr_list *req;
    stream *s;
    int fd;

    if (serv->sock_path == NULL || strlen(serv->sock_path) >= sizeof(sun.sun_path))
        return;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, serv->sock_path, strlen(serv->sock_path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
        msg_warn("wakeup %s: socket: %m", serv->sock_path);
        return;
    }
    if (connect(fd, (struct sockaddr *) &sun, sizeof(sun)) < 0) {
        /* EAGAIN: the backlog is full of triggers already; that is enough. */
        if (errno != EAGAIN)
            msg_warn("wakeup %s: connect: %m", serv->sock_path);
        close(fd);
        return;
    }
    s = stream_open(fd);
    stream_set_timeout(s, 0); /* a tiny frame into an empty socket buffer */
    req = attr_new();
    attr_put_str(req, "request", "wakeup");
    if (attr_write(s, req) < 0)
        msg_warn("wakeup %s: cannot send the trigger", serv->sock_path);
    attr_free(req);
    stream_close(s);
}
