/*
 * testagent - a real delivery agent for qmgr's integration tests, built on
 * the single_server skeleton and the deliver protocol.
 *
 * master.cf: "testagent unix - - n - - testagent TABLE JOURNAL"
 *
 * For each request it appends one line to JOURNAL:
 *     "QUEUEID TRANSPORT NEXTHOP addr1,addr2,..."
 * and answers every recipient from TABLE (re-read per request), whose
 * lines are "KEY STATUS DSN REASON...", KEY being the address, "@domain"
 * or "*" (first match in that order). STATUS:
 *     ok       DELIVER_OK (trace: "relayed" when REASON starts "relayed")
 *     defer    DELIVER_DEFER
 *     bounce   DELIVER_BOUNCE
 *     crash    exit at once without answering (a crashed agent)
 *     sleepN   wait N seconds, then answer ok
 *     mark     ok, marked done in the queue file first (deliver_mark_done),
 *              as the real agents do
 *     claim    ok with marked=1, but nothing written (a lying agent)
 *     claimdefer  defer with marked=1 (a malformed result)
 * Without a match: ok, 2.0.0, "delivered".
 *
 * Trusts the request only after deliver_request_read's strict scan.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attr.h"
#include "deliver.h"
#include "mail_server.h"
#include "msg.h"
#include "mymalloc.h"
#include "strutil.h"
#include "vbuf.h"

/* table_find - the table line for addr: status, dsn, reason; 0 if none */
static int table_find(const char *table, const char *addr, vbuf *status, vbuf *dsn, vbuf *reason)
{
    const char *at = strrchr(addr, '@');
    const char *keys[3];
    char line[2048];
    int found = 0;

    keys[0] = addr;
    keys[1] = at ? at : "";
    keys[2] = "*";
    for (int k = 0; k < 3 && !found; k++) {
        FILE *fp = fopen(table, "r");

        if (fp == NULL)
            return 0;
        while (!found && fgets(line, sizeof(line), fp)) {
            char *cursor = line, *key, *st, *code, *rest;

            line[strcspn(line, "\r\n")] = 0;
            if ((key = str_token(&cursor, " \t")) == NULL || !str_case_eq(key, keys[k]))
                continue;
            if ((st = str_token(&cursor, " \t")) == NULL || (code = str_token(&cursor, " \t")) == NULL)
                continue;
            rest = cursor ? str_trim(cursor) : "";
            vbuf_set(status, st);
            vbuf_set(dsn, code);
            vbuf_set(reason, *rest ? rest : st);
            found = 1;
        }
        fclose(fp);
    }
    return found;
}

/* journal - record the request for the test */
static void journal(const char *path, const deliver_request *req)
{
    FILE *fp = fopen(path, "a");

    if (fp == NULL) {
        msg_warn("open %s: %m", path);
        return;
    }
    fprintf(fp, "%s %s %s ", req->queue_id, req->transport, req->nexthop);
    for (size_t i = 0; i < req->nrcpt; i++)
        fprintf(fp, "%s%s", i ? "," : "", req->rcpts[i].address);
    fprintf(fp, "\n");
    if (fclose(fp) != 0)
        msg_warn("close %s: %m", path);
}

/* testagent_service - one delivery request */
static void testagent_service(stream *client, const char *service, char **argv)
{
    deliver_request req;
    vbuf status, dsn, reason;

    (void) service;
    if (argv[0] == NULL || argv[1] == NULL)
        msg_fatal("usage: testagent TABLE JOURNAL");
    stream_set_timeout(client, 60);
    if (attr_greet(client, "delivery") < 0 || deliver_request_read(client, &req) < 0)
        return;
    journal(argv[1], &req);
    vbuf_init(&status, 0);
    vbuf_init(&dsn, 0);
    vbuf_init(&reason, 0);
    for (size_t i = 0; i < req.nrcpt; i++) {
        deliver_result res;
        double start = deliver_now();

        memset(&res, 0, sizeof(res));
        if (!table_find(argv[0], req.rcpts[i].address, &status, &dsn, &reason)) {
            vbuf_set(&status, "ok");
            vbuf_set(&dsn, "2.0.0");
            vbuf_set(&reason, "delivered");
        }
        if (strcmp(vbuf_str(&status), "crash") == 0)
            _exit(1);
        if (strncmp(vbuf_str(&status), "sleep", 5) == 0) {
            sleep((unsigned) atoi(vbuf_str(&status) + 5));
            vbuf_set(&status, "ok");
        }
        res.index = req.rcpts[i].index;
        res.status = strcmp(vbuf_str(&status), "defer") == 0 || strcmp(vbuf_str(&status), "claimdefer") == 0
                         ? DELIVER_DEFER
                     : strcmp(vbuf_str(&status), "bounce") == 0 ? DELIVER_BOUNCE
                                                                : DELIVER_OK;
        snprintf(res.dsn, sizeof(res.dsn), "%s", vbuf_str(&dsn));
        res.reason = (char *) vbuf_str(&reason);
        res.relay = (char *) (service ? service : "testagent");
        res.relayed_no_dsn = strncmp(vbuf_str(&reason), "relayed", 7) == 0;
        if (res.relayed_no_dsn)
            res.action = "relayed";
        if (strcmp(vbuf_str(&status), "mark") == 0)
            (void) deliver_mark_done(NULL, &req, &res, 1);
        else if (strcmp(vbuf_str(&status), "claim") == 0 || strcmp(vbuf_str(&status), "claimdefer") == 0)
            res.marked = 1;
        deliver_log(&req, &req.rcpts[i], &res, start, start);
        if (deliver_result_write(client, &res) < 0)
            break;
    }
    (void) deliver_done_write(client);
    vbuf_release(&status);
    vbuf_release(&dsn);
    vbuf_release(&reason);
    deliver_request_free(&req);
}

int main(int argc, char **argv)
{
    single_server_main(argc, argv, testagent_service, NULL);
}
