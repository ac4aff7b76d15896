/* sink_offsets rows as the server sends them: a row becomes a position, and a
 * value that is not a number is refused with a reason, never read as 0. */
#include "core/sinkoffsets.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

static int parse(const char *partition, const char *next, const char *updated, struct sinkoff_row *row, char *err,
                 size_t err_size)
{
    const char *cols[SINKOFF_COLUMNS] = {"fleetsync-history", "truck-telemetry", partition, next, updated};
    return sinkoff_row_parse(cols, row, err, err_size);
}

static void refused(const char *partition, const char *next, const char *updated, const char *reason)
{
    struct sinkoff_row row;
    char err[256] = "";
    assert_int_equal(parse(partition, next, updated, &row, err, sizeof(err)), -1);
    if (!strstr(err, reason))
        fail_msg("'%s' does not say '%s'", err, reason);
}

static void a_row_becomes_a_position(void **state)
{
    (void)state;
    struct sinkoff_row row;
    char err[256];
    assert_int_equal(parse("11", "9007199254740993", "1795737600123", &row, err, sizeof(err)), 0);
    assert_string_equal(row.group, "fleetsync-history");
    assert_string_equal(row.topic, "truck-telemetry");
    assert_int_equal(row.partition, 11);
    assert_true(row.next_offset == 9007199254740993LL);
    assert_true(row.updated_ms == 1795737600123LL);
}

static void the_extremes_of_the_column_types_are_read_exactly(void **state)
{
    (void)state;
    struct sinkoff_row row;
    char err[256];
    assert_int_equal(parse("2147483647", "9223372036854775807", "-86400000", &row, err, sizeof(err)), 0);
    assert_int_equal(row.partition, INT32_MAX);
    assert_true(row.next_offset == INT64_MAX);
    assert_true(row.updated_ms == -86400000LL);
    assert_int_equal(parse("-2147483648", "-1", "0", &row, err, sizeof(err)), 0);
    assert_int_equal(row.partition, INT32_MIN);
    assert_true(row.next_offset == -1);
}

static void a_partition_that_is_not_a_32_bit_number_is_refused(void **state)
{
    (void)state;
    refused("", "5", "0", "partition '' is not a 32-bit number");
    refused("x1", "5", "0", "partition 'x1' is not a 32-bit number");
    refused("1x", "5", "0", "partition '1x' is not a 32-bit number");
    refused("-2147483649", "5", "0", "partition '-2147483649' is not a 32-bit number");
    refused("2147483648", "5", "0", "partition '2147483648' is not a 32-bit number");
}

static void an_offset_or_time_that_is_not_a_number_is_refused(void **state)
{
    (void)state;
    refused("0", "", "0", "next_offset '' is not a number");
    refused("0", "12.5", "0", "next_offset '12.5' is not a number");
    refused("0", "9223372036854775808", "0", "next_offset '9223372036854775808' is not a number");
    refused("0", "5", "", "updated_at '' is not a time");
    refused("0", "5", "2026-11-27", "updated_at '2026-11-27' is not a time");
}

static void the_reason_names_the_group(void **state)
{
    (void)state;
    refused("x", "5", "0", "sink_offsets row of fleetsync-history");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_row_becomes_a_position),
        cmocka_unit_test(the_extremes_of_the_column_types_are_read_exactly),
        cmocka_unit_test(a_partition_that_is_not_a_32_bit_number_is_refused),
        cmocka_unit_test(an_offset_or_time_that_is_not_a_number_is_refused),
        cmocka_unit_test(the_reason_names_the_group),
    };
    return cmocka_run_group_tests_name("sinkoffsets", tests, NULL, NULL);
}
