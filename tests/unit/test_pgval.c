/* Values checked and written the way PostgreSQL reads them
 * (src/core/pgval.h): the timestamp range, float8 text that PostgreSQL
 * would refuse, quoted array elements; and which SQLSTATEs are data errors
 * (src/core/pg.h). */
#include "core/buf.h"
#include "core/pg.h"
#include "core/pgval.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* The COPY text pgval_put_float8_span() writes for s, with strtod()'s value
 * (what tm_scan() computes). */
static const char *float8(struct buf *b, const char *s)
{
    buf_reset(b);
    if (pgval_put_float8_span(b, s, strlen(s), strtod(s, NULL)) < 0)
        return NULL;
    return b->p ? b->p : "";
}

static const char *elem(struct buf *b, const char *s)
{
    buf_reset(b);
    if (pgval_put_array_elem(b, s, strlen(s)) < 0)
        return NULL;
    return b->p;
}

static void timestamps_of_years_1_to_9999_are_in_range(void **state)
{
    (void)state;
    assert_true(pgval_ts_ok(0));
    assert_true(pgval_ts_ok(1764288000000LL));
    assert_true(pgval_ts_ok(PGVAL_TS_MIN_MS));
    assert_true(pgval_ts_ok(PGVAL_TS_MAX_MS));
    char s[32];
    assert_string_equal(pg_format_ts(PGVAL_TS_MIN_MS, s, sizeof(s)), "0001-01-01T00:00:00.000Z");
    assert_string_equal(pg_format_ts(PGVAL_TS_MAX_MS, s, sizeof(s)), "9999-12-31T23:59:59.999Z");
}

static void timestamps_outside_are_refused(void **state)
{
    (void)state;
    assert_false(pgval_ts_ok(PGVAL_TS_MIN_MS - 1));
    assert_false(pgval_ts_ok(PGVAL_TS_MAX_MS + 1));
    assert_false(pgval_ts_ok(99999999999999999LL));
    assert_false(pgval_ts_ok(INT64_MAX));
    assert_false(pgval_ts_ok(INT64_MIN));
}

static void float8_digits_are_copied_as_they_are(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_string_equal(float8(&b, "48.137154"), "48.137154");
    assert_string_equal(float8(&b, "-11.5"), "-11.5");
    assert_string_equal(float8(&b, "0"), "0");
    assert_string_equal(float8(&b, "-0.0"), "-0.0");
    assert_string_equal(float8(&b, "0e-400"), "0e-400");
    assert_string_equal(float8(&b, "1.5e300"), "1.5e300");
    /* Subnormals: PostgreSQL 12 and later read them. */
    assert_string_equal(float8(&b, "5e-324"), "5e-324");
    buf_release(&b);
}

static void float8_underflow_is_written_as_zero(void **state)
{
    (void)state;
    struct buf b = {0};
    /* strtod() gives 0, PostgreSQL refuses the text: "is out of range for
     * type double precision". */
    assert_string_equal(float8(&b, "1e-400"), "0");
    assert_string_equal(float8(&b, "-2.5e-9999"), "0");
    assert_string_equal(float8(&b, "0.0001e-330"), "0");
    buf_release(&b);
}

static void float8_not_finite_is_refused(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_null(float8(&b, "1e400"));
    assert_int_equal(pgval_put_float8_span(&b, "0", 1, NAN), -1);
    assert_int_equal(b.len, 0);
    buf_release(&b);
}

static void array_elements_are_quoted(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_string_equal(elem(&b, "TRK-000042"), "\"TRK-000042\"");
    assert_string_equal(elem(&b, "NULL"), "\"NULL\"");
    assert_string_equal(elem(&b, "null"), "\"null\"");
    assert_string_equal(elem(&b, "a,b"), "\"a,b\"");
    assert_string_equal(elem(&b, "{x}"), "\"{x}\"");
    assert_string_equal(elem(&b, " x "), "\" x \"");
    assert_string_equal(elem(&b, ""), "\"\"");
    buf_release(&b);
}

static void array_quotes_and_backslashes_are_escaped(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_string_equal(elem(&b, "\"q\""), "\"\\\"q\\\"\"");
    assert_string_equal(elem(&b, "a\\b"), "\"a\\\\b\"");
    assert_string_equal(elem(&b, "\\\"\\"), "\"\\\\\\\"\\\\\"");
    buf_release(&b);
}

static void array_element_with_nul_is_refused(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(pgval_put_array_elem(&b, "a\0b", 3), -1);
    assert_int_equal(b.len, 0);
    buf_release(&b);
}

static void sqlstate_classes_22_and_23_are_data_errors(void **state)
{
    (void)state;
    assert_true(pg_sqlstate_is_data_error("22003")); /* numeric value out of range */
    assert_true(pg_sqlstate_is_data_error("22008")); /* datetime field overflow */
    assert_true(pg_sqlstate_is_data_error("22P02")); /* invalid text representation */
    assert_true(pg_sqlstate_is_data_error("23505")); /* unique violation */
    assert_true(pg_sqlstate_is_data_error("23514")); /* check violation */
    assert_false(pg_sqlstate_is_data_error(""));     /* no server answer: connection */
    assert_false(pg_sqlstate_is_data_error(NULL));
    assert_false(pg_sqlstate_is_data_error("08006")); /* connection failure */
    assert_false(pg_sqlstate_is_data_error("57P01")); /* admin shutdown */
    assert_false(pg_sqlstate_is_data_error("40001")); /* serialization failure */
    assert_false(pg_sqlstate_is_data_error("42P01")); /* undefined table */
    assert_false(pg_sqlstate_is_data_error("53100")); /* disk full */
}

static void the_last_sqlstate_is_cleared(void **state)
{
    (void)state;
    char err[64];
    pg_error(NULL, NULL, err, sizeof(err));
    assert_string_equal(pg_last_sqlstate(), "");
    assert_string_equal(err, "no connection");
    pg_clear_sqlstate();
    assert_string_equal(pg_last_sqlstate(), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(timestamps_of_years_1_to_9999_are_in_range),
        cmocka_unit_test(timestamps_outside_are_refused),
        cmocka_unit_test(float8_digits_are_copied_as_they_are),
        cmocka_unit_test(float8_underflow_is_written_as_zero),
        cmocka_unit_test(float8_not_finite_is_refused),
        cmocka_unit_test(array_elements_are_quoted),
        cmocka_unit_test(array_quotes_and_backslashes_are_escaped),
        cmocka_unit_test(array_element_with_nul_is_refused),
        cmocka_unit_test(sqlstate_classes_22_and_23_are_data_errors),
        cmocka_unit_test(the_last_sqlstate_is_cleared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
