/* Unit tests for base64 (RFC 4648): test vectors, strict decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base64.h"

/* RFC 4648 §10 test vectors, plus binary data */
static const struct {
    const char *raw;
    size_t len;
    const char *enc;
} vectors[] = {
    {"", 0, ""},
    {"f", 1, "Zg=="},
    {"fo", 2, "Zm8="},
    {"foo", 3, "Zm9v"},
    {"foob", 4, "Zm9vYg=="},
    {"fooba", 5, "Zm9vYmE="},
    {"foobar", 6, "Zm9vYmFy"},
    {"\0user\0pass", 10, "AHVzZXIAcGFzcw=="},
    {"\xff\xfe\xfd", 3, "//79"},
    {"\xfb\xff", 2, "+/8="},
};

static void test_base64_encode_rfc4648_vectors(void **state)
{
    vbuf b;

    (void) state;
    vbuf_init(&b, 0);
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        vbuf_reset(&b);
        base64_encode(&b, vectors[i].raw, vectors[i].len);
        assert_string_equal(vbuf_str(&b), vectors[i].enc);
    }
    vbuf_release(&b);
}

static void test_base64_decode_rfc4648_vectors(void **state)
{
    vbuf b;

    (void) state;
    vbuf_init(&b, 0);
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        assert_int_equal(base64_decode(&b, vectors[i].enc, strlen(vectors[i].enc)), 0);
        assert_int_equal(b.len, vectors[i].len);
        assert_memory_equal(b.data, vectors[i].raw, vectors[i].len);
    }
    vbuf_release(&b);
}

static void test_base64_round_trips_every_length(void **state)
{
    unsigned char data[300];
    vbuf enc, dec;

    (void) state;
    vbuf_init(&enc, 0);
    vbuf_init(&dec, 0);
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char) (i * 7 + 3);
    for (size_t len = 0; len <= sizeof(data); len++) {
        vbuf_reset(&enc);
        base64_encode(&enc, data, len);
        assert_int_equal(enc.len, (len + 2) / 3 * 4);
        assert_int_equal(base64_decode(&dec, enc.data, enc.len), 0);
        assert_int_equal(dec.len, len);
        assert_memory_equal(dec.data, data, len);
    }
    vbuf_release(&enc);
    vbuf_release(&dec);
}

static const char *const bad[] = {
    "Zg",                             /* missing padding */
    "Zg=",                            /* short padding */
    "Zm9",                            /* truncated */
    "Z===",                           /* too much padding */
    "====",      "Zg==Zg==",          /* padding in the middle */
    "Zm=v",                           /* padding then data */
    "Zh==",                           /* non-zero pad bits */
    "Zm9=",                           /* non-zero pad bits */
    "Zm9v\n",                         /* white space */
    "Zm 9v",     "Zm9v YmFy", "Zm-v", /* URL-safe alphabet is not accepted */
    "Zm_v",      "Zm9\x80",           /* 8-bit */
    "Zm9vYmFy=", "=Zm9",
};

static void test_base64_rejects_bad_characters_and_padding(void **state)
{
    vbuf b;

    (void) state;
    vbuf_init(&b, 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        vbuf_set(&b, "stale");
        if (base64_decode(&b, bad[i], strlen(bad[i])) != -1)
            fail_msg("accepted bad base64 \"%s\"", bad[i]);
        assert_int_equal(b.len, 0);
    }
    vbuf_release(&b);
}

static void test_base64_decode_stops_at_given_length(void **state)
{
    vbuf b;
    const char text[] = "Zm9vYmFyXXXX";
    const char nul[] = "Zm9v\0mFy";

    (void) state;
    vbuf_init(&b, 0);
    assert_int_equal(base64_decode(&b, text, 8), 0);
    assert_string_equal(vbuf_str(&b), "foobar");
    /* an embedded NUL is a bad character, not the end */
    assert_int_equal(base64_decode(&b, nul, 8), -1);
    vbuf_release(&b);
}

static void test_base64_decode_respects_buffer_limit(void **state)
{
    vbuf b;

    (void) state;
    vbuf_init(&b, 5);
    assert_int_equal(base64_decode(&b, "Zm9vYmE=", 8), 0);
    assert_int_equal(base64_decode(&b, "Zm9vYmFy", 8), -1);
    assert_int_equal(b.len, 0);
    vbuf_release(&b);
}

static void test_base64_encode_appends_all_or_nothing(void **state)
{
    vbuf b;

    (void) state;
    vbuf_init(&b, 16);
    vbuf_set(&b, "AUTH PLAIN ");
    base64_encode(&b, "foo", 3);
    assert_string_equal(vbuf_str(&b), "AUTH PLAIN Zm9v");
    base64_encode(&b, "foo", 3); /* would pass the limit: nothing added */
    assert_string_equal(vbuf_str(&b), "AUTH PLAIN Zm9v");
    vbuf_release(&b);
}

static void test_base64_oversized_input(void **state)
{
    static char big[1 << 20];
    vbuf b;

    (void) state;
    vbuf_init(&b, 0);
    memset(big, 'A', sizeof(big));
    assert_int_equal(base64_decode(&b, big, sizeof(big)), 0);
    assert_int_equal(b.len, sizeof(big) / 4 * 3);
    big[sizeof(big) / 2] = '*';
    assert_int_equal(base64_decode(&b, big, sizeof(big)), -1);
    assert_int_equal(b.len, 0);
    assert_int_equal(base64_decode(&b, big, sizeof(big) - 1), -1); /* truncated */
    vbuf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_encode_rfc4648_vectors),
        cmocka_unit_test(test_base64_encode_appends_all_or_nothing),
        cmocka_unit_test(test_base64_decode_rfc4648_vectors),
        cmocka_unit_test(test_base64_round_trips_every_length),
        cmocka_unit_test(test_base64_rejects_bad_characters_and_padding),
        cmocka_unit_test(test_base64_decode_stops_at_given_length),
        cmocka_unit_test(test_base64_decode_respects_buffer_limit),
        cmocka_unit_test(test_base64_oversized_input),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
