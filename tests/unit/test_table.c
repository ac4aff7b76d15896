/* Tables of a report (core/table.h): the formats of the cells, and the
 * same rows printed as an aligned text table, CSV and JSON. */
#include "core/csv.h"
#include "core/table.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define DAY_MS 1793491200000LL /* 2026-11-01T00:00:00Z */
#define AT(h, m) (DAY_MS + ((int64_t)(h)*60 + (m)) * 60000)

/* ---- formatting --------------------------------------------------------- */

static void times_format_as_iso_utc(void **state)
{
    (void)state;
    char buf[40];
    assert_string_equal(table_format_time(AT(8, 9), buf, sizeof(buf)), "2026-11-01T08:09:00Z");
    assert_string_equal(table_format_time(AT(8, 9) + 250, buf, sizeof(buf)), "2026-11-01T08:09:00.250Z");
}

static void durations_format_for_people(void **state)
{
    (void)state;
    char buf[40];
    assert_string_equal(table_format_duration(0, buf, sizeof(buf)), "0s");
    assert_string_equal(table_format_duration(45, buf, sizeof(buf)), "45s");
    assert_string_equal(table_format_duration(59.6, buf, sizeof(buf)), "1m 00s");
    assert_string_equal(table_format_duration(725, buf, sizeof(buf)), "12m 05s");
    assert_string_equal(table_format_duration(7503, buf, sizeof(buf)), "2h 05m 03s");
    assert_string_equal(table_format_duration(216000, buf, sizeof(buf)), "60h 00m 00s");
    assert_string_equal(table_format_duration(NAN, buf, sizeof(buf)), "-");
}

static void numbers_format_with_fixed_decimals(void **state)
{
    (void)state;
    char buf[40];
    assert_string_equal(table_format_number(42.88953, 1, buf, sizeof(buf)), "42.9");
    assert_string_equal(table_format_number(-0.0001, 3, buf, sizeof(buf)), "0.000");
    assert_string_equal(table_format_number(INFINITY, 3, buf, sizeof(buf)), "");
}

/* Runs fn into a string (freed by the caller). */
static char *capture_str(void (*fn)(FILE *, const char *), const char *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    fn(f, s);
    fclose(f);
    return buf;
}

static void escapes_keep_hostile_text_as_data(void **state)
{
    (void)state;
    char *s;
    s = capture_str(table_json_string, "a\"b\\c\n\x01");
    assert_string_equal(s, "\"a\\\"b\\\\c\\n\\u0001\"");
    free(s);
    s = capture_str(csv_field, "TRK-1");
    assert_string_equal(s, "TRK-1");
    free(s);
    s = capture_str(csv_field, "x'; DROP TABLE telemetry; --\",y");
    assert_string_equal(s, "\"x'; DROP TABLE telemetry; --\"\",y\"");
    free(s);
    s = capture_str(csv_field, " lead");
    assert_string_equal(s, "\" lead\"");
    free(s);
}

static const struct table_col cols[] = {
    {"truck_id", "truck", 0, 0}, {"distance_km", NULL, 1, 0}, {"moving_s", "moving", 1, 0}};

static void fill(struct table *t)
{
    table_init(t, cols, 3);
    table_str(t, "A", NULL);
    table_num(t, 5.0037786, 3);
    table_dur(t, 420);
    table_str(t, "b,\"c\"\n", NULL);
    table_num(t, NAN, 3);
    table_dur(t, 7503.5);
    table_str(t, NULL, "(fleet)");
    table_num(t, 12, 3);
    table_dur(t, 0);
}

static char *print(enum table_format f)
{
    struct table t;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    fill(&t);
    assert_int_equal(table_rows(&t), 3);
    assert_int_equal(table_print(&t, f, out), 0);
    table_release(&t);
    fclose(out);
    return buf;
}

static void tables_align_and_show_null_as_dash(void **state)
{
    (void)state;
    char *s = print(TABLE_TEXT);
    assert_string_equal(s, "truck    distance_km      moving\n"
                           "A              5.004      7m 00s\n"
                           "b,\"c\"?             -  2h 05m 04s\n"
                           "(fleet)       12.000          0s\n");
    free(s);
}

static void json_is_an_array_of_objects_with_numbers_and_nulls(void **state)
{
    (void)state;
    char *s = print(TABLE_JSON);
    assert_string_equal(s, "[\n"
                           "{\"truck_id\":\"A\",\"distance_km\":5.004,\"moving_s\":420},\n"
                           "{\"truck_id\":\"b,\\\"c\\\"\\n\",\"distance_km\":null,\"moving_s\":7503.5},\n"
                           "{\"truck_id\":null,\"distance_km\":12.000,\"moving_s\":0}\n"
                           "]\n");
    free(s);
    struct table t;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    table_init(&t, cols, 3);
    assert_int_equal(table_print(&t, TABLE_JSON, out), 0);
    fclose(out);
    assert_string_equal(buf, "[]\n");
    free(buf);
}

static void csv_has_a_heading_and_quotes_what_needs_it(void **state)
{
    (void)state;
    char *s = print(TABLE_CSV);
    assert_string_equal(s, "truck_id,distance_km,moving_s\n"
                           "A,5.004,420\n"
                           "\"b,\"\"c\"\"\n\",,7503.5\n"
                           ",12.000,0\n");
    free(s);
}

/* An invoice's layout: fixed widths, one blank between columns, a rule and a
 * total line in the text only, the total's object without its first column. */
static const struct table_col inv_cols[] = {{"truck_id", "truck", 0, 8}, {"days", NULL, 1, 5}, {"amount", NULL, 1, 8}};

static char *print_invoice(enum table_format f, int object)
{
    struct table t;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    table_init(&t, inv_cols, 3);
    t.gap = " ";
    table_str(&t, "TRK-1", NULL);
    table_literal(&t, "3");
    table_literal(&t, "10.50");
    table_str(&t, "TRK-000042-LONG", NULL);
    table_literal(&t, "1");
    table_literal(&t, "2.25");
    table_rule(&t, 1u << 2);
    table_str(&t, "TOTAL", NULL);
    table_literal(&t, "4");
    table_literal(&t, "12.75");
    assert_int_equal(table_rows(&t), 4);
    if (object) {
        table_json_object(&t, 0, 0, out);
        fputc('\n', out);
        table_json_object(&t, 3, 1, out);
    } else {
        assert_int_equal(table_print(&t, f, out), 0);
    }
    table_release(&t);
    fclose(out);
    return buf;
}

static void fixed_widths_pad_like_printf_and_a_long_cell_pushes_its_line(void **state)
{
    (void)state;
    char *s = print_invoice(TABLE_TEXT, 0);
    assert_string_equal(s, "truck     days   amount\n"
                           "TRK-1        3    10.50\n"
                           "TRK-000042-LONG     1     2.25\n"
                           "               --------\n"
                           "TOTAL        4    12.75\n");
    free(s);
}

static void a_rule_row_is_shown_in_the_text_table_only(void **state)
{
    (void)state;
    char *s = print_invoice(TABLE_CSV, 0);
    assert_string_equal(s, "truck_id,days,amount\nTRK-1,3,10.50\nTRK-000042-LONG,1,2.25\nTOTAL,4,12.75\n");
    free(s);
    s = print_invoice(TABLE_JSON, 0);
    assert_string_equal(s, "[\n"
                           "{\"truck_id\":\"TRK-1\",\"days\":3,\"amount\":10.50},\n"
                           "{\"truck_id\":\"TRK-000042-LONG\",\"days\":1,\"amount\":2.25},\n"
                           "{\"truck_id\":\"TOTAL\",\"days\":4,\"amount\":12.75}\n"
                           "]\n");
    free(s);
}

static void one_row_prints_as_an_object_from_a_column_on(void **state)
{
    (void)state;
    char *s = print_invoice(TABLE_JSON, 1);
    assert_string_equal(s, "{\"truck_id\":\"TRK-1\",\"days\":3,\"amount\":10.50}\n"
                           "{\"days\":4,\"amount\":12.75}");
    free(s);
}

static void text_is_measured_in_utf8_characters(void **state)
{
    (void)state;
    static const struct table_col c2[] = {{"name", NULL, 0, 0}, {"n", NULL, 1, 0}};
    struct table t;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    table_init(&t, c2, 2);
    table_str(&t, "M\xc3\xbcnchen", NULL);
    table_num(&t, 1, 0);
    table_str(&t, "Ulm", NULL);
    table_num(&t, 22, 0);
    assert_int_equal(table_print(&t, TABLE_TEXT, out), 0);
    table_release(&t);
    fclose(out);
    assert_string_equal(buf, "name      n\nM\xc3\xbcnchen   1\nUlm      22\n");
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(times_format_as_iso_utc),
        cmocka_unit_test(durations_format_for_people),
        cmocka_unit_test(numbers_format_with_fixed_decimals),
        cmocka_unit_test(escapes_keep_hostile_text_as_data),
        cmocka_unit_test(tables_align_and_show_null_as_dash),
        cmocka_unit_test(json_is_an_array_of_objects_with_numbers_and_nulls),
        cmocka_unit_test(csv_has_a_heading_and_quotes_what_needs_it),
        cmocka_unit_test(fixed_widths_pad_like_printf_and_a_long_cell_pushes_its_line),
        cmocka_unit_test(a_rule_row_is_shown_in_the_text_table_only),
        cmocka_unit_test(one_row_prints_as_an_object_from_a_column_on),
        cmocka_unit_test(text_is_measured_in_utf8_characters),
    };
    return cmocka_run_group_tests_name("table", tests, NULL, NULL);
}
