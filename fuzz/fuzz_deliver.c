/*
 * fuzz_deliver - libFuzzer target for the delivery protocol decoders.
 *
 * Arbitrary bytes are decoded as an attr payload and then offered both to
 * deliver_request_decode() and deliver_result_decode(). Whatever is
 * accepted is re-encoded and must decode again to the same values, and its
 * log line must format without trouble.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attr.h"
#include "deliver.h"
#include "msg.h"
#include "vbuf.h"

/* quiet - swallow diagnostics */
static void quiet(enum msg_level level, const char *text)
{
    (void) level;
    (void) text;
}

/* check_request - an accepted request survives a round trip */
static void check_request(const deliver_request *req)
{
    attr_list *l = attr_new();
    deliver_request again;
    deliver_result res = {.status = DELIVER_OK, .dsn = "2.0.0", .reason = "ok"};
    vbuf line;

    deliver_request_encode(req, l);
    if (deliver_request_decode(l, &again) != 0 || again.nrcpt != req->nrcpt || strcmp(again.sender, req->sender) != 0 ||
        strcmp(again.nexthop, req->nexthop) != 0)
        abort();
    for (size_t i = 0; i < req->nrcpt; i++)
        if (again.rcpts[i].index != req->rcpts[i].index || strcmp(again.rcpts[i].address, req->rcpts[i].address) != 0)
            abort();
    vbuf_init(&line, 0);
    deliver_log_format(&line, req, &req->rcpts[0], &res, 0, 0, req->active + 1);
    vbuf_release(&line);
    deliver_request_free(&again);
    attr_free(l);
}

/* check_result - an accepted result survives a round trip */
static void check_result(const deliver_result *res)
{
    attr_list *l = attr_new();
    deliver_result again;

    deliver_result_encode(res, l);
    if (deliver_result_decode(l, &again) != 1 || again.index != res->index || again.status != res->status ||
        strcmp(again.dsn, res->dsn) != 0 || strcmp(again.reason, res->reason) != 0)
        abort();
    deliver_result_free(&again);
    attr_free(l);
}

/* LLVMFuzzerTestOneInput - one payload */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    attr_list *l;
    deliver_request req;
    deliver_result res;

    if (!init) {
        msg_init("fuzz_deliver");
        msg_stderr(0);
        msg_set_capture(quiet);
        init = 1;
    }
    l = attr_new();
    if (attr_decode(l, data, size) == 0) {
        if (deliver_request_decode(l, &req) == 0) {
            check_request(&req);
            deliver_request_free(&req);
        }
        if (deliver_result_decode(l, &res) == 1) {
            check_result(&res);
            deliver_result_free(&res);
        }
    }
    attr_free(l);
    return 0;
}
