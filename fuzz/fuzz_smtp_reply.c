/*
 * fuzz_smtp_reply - the smtp client's reply reader and its 8-bit MIME
 * converter on arbitrary bytes. The reply reader gets the input through a
 * pipe (as from a server); the converter gets it as a message.
 */
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "../smtp/mime.c"
#include "../smtp/reply.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fds[2];
    stream *s;
    smtp_reply r;
    vbuf lines, out;

    if (size > 60000 || pipe(fds) < 0)
        return 0;
    if (write(fds[1], data, size) != (ssize_t) size) {
        close(fds[0]);
        close(fds[1]);
        return 0;
    }
    close(fds[1]);
    s = stream_open(fds[0]);
    stream_set_timeout(s, 1);
    smtp_reply_init(&r);
    vbuf_init(&lines, 0);
    while (smtp_reply_read(s, &r, &lines) > 0)
        ;
    smtp_reply_free(&r);
    vbuf_release(&lines);
    stream_close(s);

    vbuf_init(&out, 0);
    (void) smtp_mime_to_7bit((const char *) data, size, &out);
    vbuf_release(&out);
    return 0;
}
