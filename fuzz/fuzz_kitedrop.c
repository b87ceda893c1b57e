/*
 * fuzz_kitedrop - libFuzzer target for kitedrop's input parser
 * (cmd/kitedrop/records.c): any byte stream is either refused with a reason
 * (and leaves nothing behind) or becomes a queue file the strict reader
 * accepts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../cmd/kitedrop/records.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fz_in {
    const uint8_t *data;
    size_t len, pos;
} fz_in;

/* fz_read - exactly len bytes from the input */
static int fz_read(void *ctx, void *buf, size_t len)
{
    fz_in *in = ctx;

    if (in->len - in->pos < len)
        return -1;
    memcpy(buf, in->data + in->pos, len);
    in->pos += len;
    return 0;
}

/* LLVMFuzzerTestOneInput - one stream */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    fz_in in = {data, size, 0};
    char id[QUEUE_ID_SIZE], path[128];
    qfile_writer *w;
    vbuf why, err;
    int code;

    if (!ready) {
        char dir[64];

        snprintf(dir, sizeof(dir), "/tmp/fuzz_kitedrop.%ld", (long) getpid());
        if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || chdir(dir) < 0 ||
            (mkdir("maildrop", 0700) < 0 && errno != EEXIST))
            abort();
        ready = 1;
    }
    vbuf_init(&why, 0);
    vbuf_init(&err, 0);
    if ((w = qfile_create("maildrop", &err)) == NULL)
        abort();
    code = kd_copy_records(fz_read, &in, w, 100000, &why);
    if (code != 0) {
        if (why.len == 0)
            abort();
        qfile_abort(w);
    } else {
        qfile *q;

        snprintf(id, sizeof(id), "%s", qfile_writer_id(w));
        if (qfile_finish(w, &err) < 0)
            abort();
        snprintf(path, sizeof(path), "maildrop/%s", id);
        if ((q = qfile_open(path, 0, &err)) == NULL)
            abort(); /* what kitedrop writes, pickup must accept */
        qfile_close(q);
        unlink(path);
    }
    vbuf_release(&why);
    vbuf_release(&err);
    return 0;
}
