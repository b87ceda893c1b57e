/*
 * fuzz_qfile - libFuzzer target for the queue file reader: arbitrary bytes
 * written to a file must be refused with a reason or parsed, and a parsed
 * file's content must be readable to the end, never a crash.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "qfile.h"
#include "vbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* LLVMFuzzerTestOneInput - one input: write it, open it, read it */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    qfile *q;
    vbuf err;
    int fd;

    if (path[0] == 0)
        snprintf(path, sizeof(path), "/tmp/fuzz_qfile.%ld", (long) getpid());
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort();
    if (size > 0 && write(fd, data, size) != (ssize_t) size)
        abort();
    close(fd);
    vbuf_init(&err, 0);
    q = qfile_open(path, 0, &err);
    if (q != NULL) {
        qfile_content it;
        const char *chunk;
        long long total = 0;
        ssize_t n;

        qfile_content_begin(q, &it);
        while ((n = qfile_content_next(&it, &chunk)) > 0)
            total += n;
        qfile_content_end(&it);
        /* The reader checked the size slot against the content. */
        if (n == 0 && total != q->size)
            abort();
        for (size_t i = 0; i < q->nrcpt; i++)
            if (q->rcpts[i].address[0] == 0)
                abort();
        qfile_close(q);
    } else if (err.len == 0) {
        abort(); /* a refusal always says why */
    }
    vbuf_release(&err);
    return 0;
}
