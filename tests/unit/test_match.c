/* fleetsync bench detect's matching (detect/match.h): the rule (truck and
 * rule agree, started_ms within [start_ms - 2 min, end + 30 min]) at its
 * edges, repeats, other trucks and rules, and the per-rule arithmetic. */
#include "detect/match.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#define MIN_MS 60000LL
#define T0 1795737600000LL /* 2026-11-27T00:00:00Z */

enum { SEO = 0, MIO, JUMP, FUEL, FENCE, OVER, OFF };

static struct match_incident inc(const char *truck, int rule, int64_t start, int64_t end)
{
    struct match_incident x;
    memset(&x, 0, sizeof(x));
    snprintf(x.truck_id, sizeof(x.truck_id), "%s", truck);
    x.rule = rule;
    x.start_ms = start;
    x.end_ms = end;
    return x;
}

static struct match_alert al(const char *truck, int rule, int64_t started, int64_t detected)
{
    struct match_alert a;
    memset(&a, 0, sizeof(a));
    snprintf(a.truck_id, sizeof(a.truck_id), "%s", truck);
    a.rule = rule;
    a.started_ms = started;
    a.detected_ms = detected;
    return a;
}

/* One incident of `rule` and one alert started at `started`: matched? */
static int one(int rule, int64_t started)
{
    struct match_incident i = inc("T-1", rule, T0, T0 + 10 * MIN_MS);
    struct match_alert a = al("T-1", rule, started, started + MIN_MS);
    struct match_result r[MATCH_RULES];
    match_run(&i, 1, &a, 1, r);
    assert_int_equal(i.matched, a.matched);
    assert_int_equal(r[rule].matched_incidents, (size_t)i.matched);
    assert_int_equal(r[rule].matched_alerts, (size_t)a.matched);
    return a.matched;
}

static void rule_names_round_trip(void **state)
{
    (void)state;
    const char *names[] = {"stationary_engine_on", "moving_ignition_off", "gps_jump", "fuel_drop",
                           "geofence_exit",        "overspeed",           "offline"};
    for (int k = 0; k < MATCH_RULES; k++) {
        assert_string_equal(match_rule_name(k), names[k]);
        assert_int_equal(match_rule_from_name(names[k]), k);
    }
    assert_null(match_rule_name(MATCH_RULES));
    assert_null(match_rule_name(-1));
    assert_int_equal(match_rule_from_name("teleport"), -1);
    assert_int_equal(match_rule_from_name(NULL), -1);
}

static void window_edges_are_inclusive(void **state)
{
    (void)state;
    const int64_t end = T0 + 10 * MIN_MS;
    assert_true(one(OVER, T0 - 2 * MIN_MS));        /* start - 2 min exactly */
    assert_false(one(OVER, T0 - 2 * MIN_MS - 1));   /* one ms earlier */
    assert_true(one(OVER, end + 30 * MIN_MS));      /* end + 30 min exactly */
    assert_false(one(OVER, end + 30 * MIN_MS + 1)); /* one ms later */
    assert_true(one(OVER, T0));
    assert_true(one(OFF, end));
}

static void truck_and_rule_must_agree(void **state)
{
    (void)state;
    struct match_incident i[1] = {inc("TRK-000007", SEO, T0, T0 + 25 * MIN_MS)};
    struct match_alert a[3] = {
        al("TRK-000008", SEO, T0, T0 + 20 * MIN_MS),  /* another truck */
        al("TRK-000007", FUEL, T0, T0 + 20 * MIN_MS), /* another rule */
        al("TRK-0000070", SEO, T0, T0 + 20 * MIN_MS), /* a longer id is another truck */
    };
    struct match_result r[MATCH_RULES];
    match_run(i, 1, a, 3, r);
    assert_false(i[0].matched);
    for (int k = 0; k < 3; k++)
        assert_false(a[k].matched);
    assert_int_equal(r[SEO].incidents, 1);
    assert_int_equal(r[SEO].alerts, 2);
    assert_int_equal(r[SEO].matched_incidents, 0);
    assert_true(r[SEO].recall == 0.0);
    assert_true(r[SEO].precision == 0.0);
    assert_int_equal(r[FUEL].incidents, 0);
    assert_true(r[FUEL].recall < 0); /* no incidents: undefined */
    assert_true(r[FUEL].precision == 0.0);
    assert_false(match_all_pass(r));
}

static void two_alerts_for_one_incident(void **state)
{
    (void)state;
    /* The jump out and back raised twice (two alert ids): the incident is
     * found once, both alerts are true positives, the delay is the earlier. */
    struct match_incident i = inc("T-9", JUMP, T0, T0 + 1);
    struct match_alert a[2] = {al("T-9", JUMP, T0 + 30000, T0 + 30000), al("T-9", JUMP, T0, T0)};
    struct match_result r[MATCH_RULES];
    match_run(&i, 1, a, 2, r);
    assert_int_equal(r[JUMP].incidents, 1);
    assert_int_equal(r[JUMP].alerts, 2);
    assert_int_equal(r[JUMP].matched_incidents, 1);
    assert_int_equal(r[JUMP].matched_alerts, 2);
    assert_true(r[JUMP].precision == 1.0 && r[JUMP].recall == 1.0);
    assert_int_equal(i.delay_ms, 0);
    assert_int_equal(r[JUMP].delay_median_ms, 0);
    assert_int_equal(r[JUMP].delay_max_ms, 0);
    assert_true(match_all_pass(r));
}

static void repeats_of_one_alert_id_count_once(void **state)
{
    (void)state;
    /* at-least-once: the same (truck, rule, started_ms) three times */
    struct match_alert a[4] = {
        al("T-1", OVER, T0, T0 + 2 * MIN_MS),
        al("T-1", OVER, T0, T0 + MIN_MS),
        al("T-2", OVER, T0, T0 + MIN_MS),
        al("T-1", OVER, T0, T0 + 2 * MIN_MS),
    };
    size_t n = match_dedupe(a, 4);
    assert_int_equal(n, 2);
    assert_string_equal(a[0].truck_id, "T-1");
    assert_int_equal(a[0].detected_ms, T0 + MIN_MS); /* the earliest detection is kept */
    assert_string_equal(a[1].truck_id, "T-2");
    assert_int_equal(match_dedupe(a, 0), 0);
}

static void per_rule_arithmetic(void **state)
{
    (void)state;
    /* overspeed: 4 incidents, 3 found; 5 alerts, of which 3 match (one per found
     * incident) and 2 are false: recall 3/4, precision 3/5. Delays 60, 90,
     * 120 s: median 90 s, max 120 s. Offline: 2 incidents found with delays 10
     * and 20 min: median of an even count is the mean of the middle two. */
    struct match_incident i[6] = {
        inc("A", OVER, T0, T0 + MIN_MS),
        inc("B", OVER, T0, T0 + MIN_MS),
        inc("C", OVER, T0, T0 + MIN_MS),
        inc("D", OVER, T0, T0 + MIN_MS),
        inc("A", OFF, T0 + 100 * MIN_MS, T0 + 120 * MIN_MS),
        inc("B", OFF, T0 + 100 * MIN_MS, T0 + 120 * MIN_MS),
    };
    struct match_alert a[7] = {
        al("A", OVER, T0, T0 + 60000),
        al("B", OVER, T0 + 1000, T0 + 90000),
        al("C", OVER, T0 - 1000, T0 + 120000),
        al("E", OVER, T0, T0 + 60000),                     /* no incident on E */
        al("D", OVER, T0 + 2 * 3600000, T0 + 2 * 3600000), /* far later: false */
        al("A", OFF, T0 + 100 * MIN_MS, T0 + 110 * MIN_MS),
        al("B", OFF, T0 + 100 * MIN_MS, T0 + 120 * MIN_MS),
    };
    struct match_result r[MATCH_RULES];
    match_run(i, 6, a, 7, r);
    assert_int_equal(r[OVER].incidents, 4);
    assert_int_equal(r[OVER].alerts, 5);
    assert_int_equal(r[OVER].matched_incidents, 3);
    assert_int_equal(r[OVER].matched_alerts, 3);
    assert_true(r[OVER].recall == 0.75);
    assert_true(r[OVER].precision == 0.6);
    assert_int_equal(r[OVER].delay_median_ms, 90000);
    assert_int_equal(r[OVER].delay_max_ms, 120000);
    assert_int_equal(r[OFF].delay_median_ms, 15 * MIN_MS);
    assert_int_equal(r[OFF].delay_max_ms, 20 * MIN_MS);
    assert_true(r[OFF].precision == 1.0 && r[OFF].recall == 1.0);
    assert_int_equal(r[SEO].incidents + r[SEO].alerts, 0);
    assert_true(r[SEO].precision < 0 && r[SEO].recall < 0);
    assert_false(match_all_pass(r));

    /* the JSON names every rule and says whether all passed */
    char *js = match_json(r);
    assert_non_null(js);
    assert_non_null(strstr(js, "\"pass\":false"));
    for (int k = 0; k < MATCH_RULES; k++)
        assert_non_null(strstr(js, match_rule_name(k)));
    assert_non_null(strstr(js, "\"overspeed\":{\"incidents\":4,\"alerts\":5,\"matched_incidents\":3,"
                               "\"matched_alerts\":3,\"precision\":0."));
    json_t *j = json_loads(js, 0, NULL);
    assert_non_null(j);
    json_t *ov = json_object_get(json_object_get(j, "rules"), "overspeed");
    assert_true(json_real_value(json_object_get(ov, "precision")) > 0.5999999);
    assert_true(json_real_value(json_object_get(ov, "precision")) < 0.6000001);
    assert_true(json_real_value(json_object_get(ov, "recall")) == 0.75);
    assert_int_equal(json_integer_value(json_object_get(ov, "delay_median_ms")), 90000);
    json_decref(j);
    assert_non_null(strstr(js, "\"stationary_engine_on\":{\"incidents\":0,\"alerts\":0,\"matched_incidents\":0,"
                               "\"matched_alerts\":0,\"precision\":null,\"recall\":null,\"delay_median_ms\":null"));
    free(js);
}

static void a_negative_delay_is_kept(void **state)
{
    (void)state;
    /* an alert that started (and was detected) a little before the truth's
     * start still matches, with a negative delay */
    struct match_incident i = inc("T", FENCE, T0, T0 + 15 * MIN_MS);
    struct match_alert a = al("T", FENCE, T0 - 30000, T0 - 30000);
    struct match_result r[MATCH_RULES];
    match_run(&i, 1, &a, 1, r);
    assert_true(i.matched);
    assert_int_equal(r[FENCE].delay_median_ms, -30000);
    assert_int_equal(r[FENCE].delay_max_ms, -30000);
    assert_true(match_all_pass(r));
}

static void nothing_at_all_passes(void **state)
{
    (void)state;
    struct match_result r[MATCH_RULES];
    match_run(NULL, 0, NULL, 0, r);
    assert_true(match_all_pass(r));
    /* out-of-range rules are ignored, never indexed */
    struct match_incident i = inc("T", 99, T0, T0);
    struct match_alert a = al("T", -1, T0, T0);
    match_run(&i, 1, &a, 1, r);
    assert_true(match_all_pass(r));
    FILE *f = tmpfile();
    assert_non_null(f);
    match_print_table(f, r);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rule_names_round_trip),
        cmocka_unit_test(window_edges_are_inclusive),
        cmocka_unit_test(truck_and_rule_must_agree),
        cmocka_unit_test(two_alerts_for_one_incident),
        cmocka_unit_test(repeats_of_one_alert_id_count_once),
        cmocka_unit_test(per_rule_arithmetic),
        cmocka_unit_test(a_negative_delay_is_kept),
        cmocka_unit_test(nothing_at_all_passes),
    };
    return cmocka_run_group_tests_name("match", tests, NULL, NULL);
}
