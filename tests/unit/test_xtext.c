/* Unit tests for xtext (RFC 3461 §4): encoding, strict decoding, validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "xtext.h"

static const struct {
    const char *raw;
    size_t len;
    const char *xtext;
} good[] = {
    {"", 0, ""},
    {"abc", 3, "abc"},
    {"a+b=c", 5, "a+2Bb+3Dc"},
    {"rfc822;user@example.com", 23, "rfc822;user@example.com"},
    {"with space", 10, "with+20space"},
    {"\x01\x7f\xff", 3, "+01+7F+FF"},
    {"nul\0byte", 8, "nul+00byte"},
    {"~!", 2, "~!"},
    {"\r\n", 2, "+0D+0A"},
};

static void test_xtext_encode_escapes_plus_equals_and_non_printables(void **state)
{
    vbuf b;

    (void) state;
    vbuf_init(&b, 0);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        vbuf_reset(&b);
        xtext_encode(&b, good[i].raw, good[i].len);
        assert_string_equal(vbuf_str(&b), good[i].xtext);
        assert_true(xtext_valid(vbuf_str(&b)));
    }
    vbuf_release(&b);
}

static void test_xtext_decode_round_trips(void **state)
{
    vbuf b;

    (void) state;
    vbuf_init(&b, 0);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(xtext_decode(&b, good[i].xtext), 0);
        assert_int_equal(b.len, good[i].len);
        assert_memory_equal(b.data, good[i].raw, good[i].len);
    }
    /* every byte value survives a round trip */
    {
        char all[256];
        vbuf enc;

        vbuf_init(&enc, 0);
        for (int c = 0; c < 256; c++)
            all[c] = (char) c;
        xtext_encode(&enc, all, sizeof(all));
        assert_int_equal(xtext_decode(&b, vbuf_str(&enc)), 0);
        assert_int_equal(b.len, 256);
        assert_memory_equal(b.data, all, 256);
        vbuf_release(&enc);
    }
    vbuf_release(&b);
}

static const char *const bad[] = {
    "+",                 /* truncated */
    "a+4",               /* truncated */
    "+4g",               /* not hex */
    "+2b",               /* lowercase hex is not xtext */
    "a=b",               /* '=' must be encoded */
    "a b",               /* space */
    "tab\there", "\x80", /* 8-bit */
    "\x7f",              /* DEL */
    "ok+ZZ",     "+-1",
};

static void test_xtext_rejects_malformed_input(void **state)
{
    vbuf b;

    (void) state;
    vbuf_init(&b, 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        vbuf_set(&b, "stale");
        assert_int_equal(xtext_decode(&b, bad[i]), -1);
        assert_int_equal(b.len, 0);
        assert_false(xtext_valid(bad[i]));
    }
    vbuf_release(&b);
}

static void test_xtext_decode_respects_buffer_limit(void **state)
{
    vbuf b;

    (void) state;
    vbuf_init(&b, 4);
    assert_int_equal(xtext_decode(&b, "abcd"), 0);
    assert_int_equal(xtext_decode(&b, "abcde"), -1);
    assert_int_equal(xtext_decode(&b, "+41+42+43+44+45"), -1);
    assert_int_equal(b.len, 0);
    vbuf_release(&b);
}

static void test_xtext_encode_appends_all_or_nothing(void **state)
{
    vbuf b;

    (void) state;
    vbuf_init(&b, 12);
    vbuf_set(&b, " ENVID=");
    xtext_encode(&b, "a+b", 3);
    assert_string_equal(vbuf_str(&b), " ENVID=a+2Bb");
    /* past the buffer's limit nothing is appended, not a cut-off escape */
    vbuf_set(&b, " ENVID=");
    xtext_encode(&b, "a+b+c", 5);
    assert_string_equal(vbuf_str(&b), " ENVID=");
    vbuf_release(&b);
}

static void test_xtext_oversized_input(void **state)
{
    static char big[1 << 20];
    vbuf b;

    (void) state;
    vbuf_init(&b, 0);
    for (size_t i = 0; i + 3 <= sizeof(big) - 1; i += 3)
        memcpy(big + i, "+41", 3);
    big[sizeof(big) - 1 - (sizeof(big) - 1) % 3] = 0;
    assert_int_equal(xtext_decode(&b, big), 0);
    assert_int_equal(b.len, (sizeof(big) - 1) / 3);
    /* one bad escape at the very end spoils it all */
    big[strlen(big) - 1] = 'x';
    assert_int_equal(xtext_decode(&b, big), -1);
    assert_int_equal(b.len, 0);
    assert_false(xtext_valid(big));
    vbuf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xtext_encode_escapes_plus_equals_and_non_printables),
        cmocka_unit_test(test_xtext_decode_round_trips),
        cmocka_unit_test(test_xtext_rejects_malformed_input),
        cmocka_unit_test(test_xtext_decode_respects_buffer_limit),
        cmocka_unit_test(test_xtext_oversized_input),
        cmocka_unit_test(test_xtext_encode_appends_all_or_nothing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
