/* Unit tests for queue IDs: form, time order, uniqueness by inode, decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "queue_id.h"

static void test_queue_id_has_fixed_length_and_alphabet(void **state)
{
    char id[QUEUE_ID_SIZE];
    static const struct {
        time_t sec;
        long usec;
        ino_t ino;
    } cases[] = {
        {0, 0, 0},
        {1, 1, 1},
        {1700000000, 999999, 123456},
        {4102444800, 500000, (ino_t) -1},
        {2000000000, 0, 78364164095},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        queue_id_make(id, cases[i].sec, cases[i].usec, cases[i].ino);
        assert_int_equal(strlen(id), QUEUE_ID_LEN);
        assert_int_equal(strspn(id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"), QUEUE_ID_LEN);
        assert_true(queue_id_valid(id));
        assert_int_equal(queue_id_time(id), cases[i].sec);
        assert_int_equal(queue_id_usec(id), cases[i].usec);
    }
}

static void test_queue_id_sorts_by_seconds_then_microseconds(void **state)
{
    /* (sec, usec) pairs in increasing time order; inode numbers deliberately decreasing */
    static const struct {
        time_t sec;
        long usec;
    } order[] = {
        {9, 999999}, {10, 0}, {10, 1}, {10, 35}, {10, 36}, {10, 999999}, {11, 0}, {1700000000, 5}, {1700000001, 0},
    };
    char prev[QUEUE_ID_SIZE], id[QUEUE_ID_SIZE];

    (void) state;
    queue_id_make(prev, order[0].sec, order[0].usec, 999999);
    for (size_t i = 1; i < sizeof(order) / sizeof(order[0]); i++) {
        queue_id_make(id, order[i].sec, order[i].usec, (ino_t) (999999 - i * 1000));
        if (strcmp(prev, id) >= 0)
            fail_msg("%s should sort before %s", prev, id);
        memcpy(prev, id, sizeof(id));
    }
}

static void test_queue_id_differs_by_inode_at_same_time(void **state)
{
    char a[QUEUE_ID_SIZE], b[QUEUE_ID_SIZE];

    (void) state;
    queue_id_make(a, 1700000000, 42, 1000);
    queue_id_make(b, 1700000000, 42, 1001);
    assert_string_not_equal(a, b);
    queue_id_make(b, 1700000000, 42, 1000);
    assert_string_equal(a, b);
}

static void test_queue_id_valid_rejects_bad_forms(void **state)
{
    static const char *const bad[] = {
        "",
        "ABC",
        "0123456789ABCDEFG",   /* 17 */
        "0123456789ABCDEFGHI", /* 19 */
        "0123456789abcdefgh",  /* lowercase */
        "012345678/ABCDEFGH",
        "../../etc/passwd12",
        "0123456 89ABCDEFGH",
        "0000000ZZZZ0000000", /* microseconds > 999999 */
        "0000000LFLS0000000", /* exactly 1000000 */
    };
    char ok[QUEUE_ID_SIZE];

    (void) state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (queue_id_valid(bad[i]))
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(queue_id_time(bad[i]), -1);
        assert_int_equal(queue_id_usec(bad[i]), -1);
    }
    assert_false(queue_id_valid(NULL));
    queue_id_make(ok, 1, 999999, 7);
    assert_string_equal(ok + 7, "LFLR0000007");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_id_has_fixed_length_and_alphabet),
        cmocka_unit_test(test_queue_id_sorts_by_seconds_then_microseconds),
        cmocka_unit_test(test_queue_id_differs_by_inode_at_same_time),
        cmocka_unit_test(test_queue_id_valid_rejects_bad_forms),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
