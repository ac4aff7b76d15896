/* Binary COPY rows (src/core/pgbin.h): the header comes once, before the
 * first row; numbers are big-endian; a float8 is its IEEE bits; a date is
 * days since 2000-01-01; the trailer is a field count of -1. */
#include "core/clock.h"
#include "core/pgbin.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

static void test_header_once_then_fields(void **unused)
{
    (void)unused;
    struct buf b = {0};
    pgbin_row(&b, 2);
    pgbin_float8(&b, 1.5);
    pgbin_text(&b, "ab", 2);
    pgbin_row(&b, 3);
    pgbin_date_of_ms(&b, 946684800000LL + FS_DAY_MS + 5); /* 2000-01-02 */
    pgbin_int8(&b, -2);
    pgbin_bool(&b, 1);
    static const unsigned char want[] = {
        'P', 'G', 'C', 'O', 'P',  'Y',  '\n', 0xff, '\r', '\n', 0,    0,    0, 0, 0, 0, 0, 0, 0, /* header */
        0,   2,                                                                                  /* 2 fields */
        0,   0,   0,   8,   0x3f, 0xf8, 0,    0,    0,    0,    0,    0,                         /* 1.5 */
        0,   0,   0,   2,   'a',  'b',                                                           /* "ab" */
        0,   3,                                                                                  /* 3 fields */
        0,   0,   0,   4,   0,    0,    0,    1,                                                 /* day 1 */
        0,   0,   0,   8,   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,                      /* -2 */
        0,   0,   0,   1,   1,                                                                   /* true */
    };
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.p, want, sizeof(want));
    buf_release(&b);
}

static void test_date_before_2000_is_negative(void **unused)
{
    (void)unused;
    struct buf b = {0};
    pgbin_row(&b, 1);
    pgbin_date_of_ms(&b, 946684800000LL - 1); /* 1999-12-31T23:59:59.999Z */
    static const unsigned char want[] = {0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff};
    assert_memory_equal(b.p + b.len - sizeof(want), want, sizeof(want));
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_once_then_fields),
        cmocka_unit_test(test_date_before_2000_is_negative),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
