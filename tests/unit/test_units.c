/* Byte counts in human form. */
#include "core/units.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

static void sizes_with_suffixes_parse(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(units_parse_bytes("512", &v), 0);
    assert_int_equal(v, 512);
    assert_int_equal(units_parse_bytes("40K", &v), 0);
    assert_int_equal(v, 40960);
    assert_int_equal(units_parse_bytes("512m", &v), 0);
    assert_int_equal(v, 512ull << 20);
    assert_int_equal(units_parse_bytes("2G", &v), 0);
    assert_int_equal(v, 2ull << 30);
}

static void bad_sizes_are_refused(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(units_parse_bytes("", &v), -1);
    assert_int_equal(units_parse_bytes("0", &v), -1);
    assert_int_equal(units_parse_bytes("-1G", &v), -1);
    assert_int_equal(units_parse_bytes("1T", &v), -1);
    assert_int_equal(units_parse_bytes("1GB", &v), -1);
    assert_int_equal(units_parse_bytes("99999999999999999999", &v), -1);
    assert_int_equal(units_parse_bytes("17179869184G", &v), -1);
}

static void sizes_format_for_people(void **state)
{
    (void)state;
    char buf[32];
    assert_string_equal(units_format_bytes(512, buf, sizeof(buf)), "512 B");
    assert_string_equal(units_format_bytes(12288, buf, sizeof(buf)), "12.0 KiB");
    assert_string_equal(units_format_bytes(3ull << 29, buf, sizeof(buf)), "1.5 GiB");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sizes_with_suffixes_parse),
        cmocka_unit_test(bad_sizes_are_refused),
        cmocka_unit_test(sizes_format_for_people),
    };
    return cmocka_run_group_tests_name("units", tests, NULL, NULL);
}
