/* The detector's thresholds (src/detect/rules.c): defaults of docs/design.md,
 * --print-rules output read back, and errors that name file and field. */
#include "detect/engine.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static void defaults_are_designs(void **state)
{
    (void)state;
    struct detect_rules r;
    detect_rules_defaults(&r);
    for (int i = 0; i < DR_COUNT; i++)
        assert_true(r.enabled[i]);
    assert_int_equal(r.lateness_ms, 0); /* each reading on arrival */
    assert_true(r.stationary_radius_m == 50);
    assert_int_equal(r.stationary_min_ms, 20 * 60000);
    assert_true(r.towing_min_speed_kmh == 10);
    assert_int_equal(r.towing_min_ms, 60000);
    assert_true(r.jump_max_speed_kmh == 250);
    assert_true(r.jump_min_km == 1);
    assert_true(r.fuel_drop_pct == 10);
    assert_int_equal(r.fuel_drop_window_ms, 300000);
    assert_true(r.parked_max_speed_kmh == 5);
    assert_true(r.overspeed_kmh == 100);
    assert_int_equal(r.overspeed_min_ms, 60000);
    assert_int_equal(r.offline_min_ms, 600000);
}

static void rule_names_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < DR_COUNT; i++)
        assert_int_equal(detect_rule_from_name(detect_rule_name((enum detect_rule)i)), i);
    assert_string_equal(detect_rule_name(DR_OFFLINE), "offline");
    assert_null(detect_rule_name(DR_COUNT));
    assert_int_equal(detect_rule_from_name("theft"), -1);
}

static char *print_rules(const struct detect_rules *r)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    detect_rules_print(r, f);
    fclose(f);
    return text;
}

static void printed_rules_read_back_the_same(void **state)
{
    (void)state;
    struct detect_rules r, back;
    detect_rules_defaults(&r);
    r.overspeed_kmh = 87.5;
    r.fuel_drop_window_ms = 90500;
    r.enabled[DR_GEOFENCE_EXIT] = false;
    char *text = print_rules(&r);
    assert_non_null(strstr(text, "\"lateness_s\": 0"));
    assert_non_null(strstr(text, "\"overspeed\": {\"enabled\": true, \"speed_kmh\": 87.5, \"min_duration_s\": 60}"));
    assert_non_null(strstr(text, "\"geofence_exit\": {\"enabled\": false}"));
    detect_rules_defaults(&back);
    char err[256];
    assert_int_equal(detect_rules_parse("p.json", text, strlen(text), &back, err, sizeof(err)), 0);
    assert_memory_equal(&r, &back, sizeof(r));
    free(text);
}

static void a_subset_changes_only_what_it_names(void **state)
{
    (void)state;
    struct detect_rules r, d;
    detect_rules_defaults(&r);
    detect_rules_defaults(&d);
    const char *j = "{\"overspeed\":{\"speed_kmh\":90},\"lateness_s\":30}";
    char err[256];
    assert_int_equal(detect_rules_parse("r.json", j, strlen(j), &r, err, sizeof(err)), 0);
    assert_true(r.overspeed_kmh == 90);
    assert_int_equal(r.lateness_ms, 30000);
    r.overspeed_kmh = d.overspeed_kmh;
    r.lateness_ms = d.lateness_ms;
    assert_memory_equal(&r, &d, sizeof(r));
}

static void expect_error(const char *json, const char *want)
{
    struct detect_rules r, before;
    detect_rules_defaults(&r);
    before = r;
    char err[256] = "";
    assert_int_equal(detect_rules_parse("rules.json", json, strlen(json), &r, err, sizeof(err)), -1);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not contain \"%s\"", err, want);
    assert_memory_equal(&r, &before, sizeof(r)); /* nothing half-applied */
}

static void bad_rules_name_file_and_field(void **state)
{
    (void)state;
    expect_error("{\"overspeed\":{\"min_duration_s\":0}}",
                 "rules.json: overspeed.min_duration_s: must be a number > 0");
    expect_error("{\"overspeed\":{\"min_duration_s\":\"60\"}}",
                 "rules.json: overspeed.min_duration_s: must be a number");
    expect_error("{\"overspeed\":{\"speed_kmh\":-1}}", "rules.json: overspeed.speed_kmh");
    expect_error("{\"overspeed\":{\"limit\":90}}", "rules.json: overspeed.limit: unknown setting");
    expect_error("{\"theft\":{}}", "rules.json: theft: unknown setting");
    expect_error("{\"offline\":true}", "rules.json: offline: must be an object");
    expect_error("{\"offline\":{\"enabled\":1}}", "rules.json: offline.enabled: must be true or false");
    expect_error("{\"lateness_s\":-1}", "rules.json: lateness_s");
    expect_error("{\"offline\":{\"min_duration_s\":1e300}}", "rules.json: offline.min_duration_s");
    expect_error("{\"lateness_s\":1,\"lateness_s\":2}", "rules.json: line 1");
    expect_error("[1]", "rules.json: must be a JSON object");
    expect_error("{", "rules.json: line 1");
}

static void rules_file_errors_name_the_path(void **state)
{
    (void)state;
    struct detect_rules r;
    detect_rules_defaults(&r);
    char err[256];
    assert_int_equal(detect_rules_load_file("/nonexistent/rules.json", &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot read rules from /nonexistent/rules.json"));
    char path[] = "/tmp/fs-rules-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("{\"gps_jump\":{\"min_km\":2}}", f);
    fclose(f);
    assert_int_equal(detect_rules_load_file(path, &r, err, sizeof(err)), 0);
    assert_true(r.jump_min_km == 2);
    remove(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_designs),
        cmocka_unit_test(rule_names_round_trip),
        cmocka_unit_test(printed_rules_read_back_the_same),
        cmocka_unit_test(a_subset_changes_only_what_it_names),
        cmocka_unit_test(bad_rules_name_file_and_field),
        cmocka_unit_test(rules_file_errors_name_the_path),
    };
    return cmocka_run_group_tests_name("detect_rules", tests, NULL, NULL);
}
