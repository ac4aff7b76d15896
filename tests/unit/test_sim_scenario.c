/* Simulator scenarios and geofences: parsing, errors, and the incidents
 * they inject into the motion model. */
#include "core/geo.h"
#include "sim/fleet.h"
#include "sim/scenario.h"

#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define FIXTURES "tests/fixtures/scenarios/"
#define START_MS 1764201600000LL

static struct sim_fences fences;

static int setup(void **state)
{
    (void)state;
    char err[256];
    if (sim_fences_load(FIXTURES "fences.geojson", &fences, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sim_fences_release(&fences);
    return 0;
}

static struct scenario_params params(void)
{
    struct scenario_params p = {.id_prefix = "TRK-", .trucks = 20, .start_ms = START_MS, .fences = &fences};
    return p;
}

static void fences_load_points_and_polygons(void **state)
{
    (void)state;
    assert_int_equal(fences.n, 2);
    const struct sim_fence *m = sim_fences_find(&fences, "depot-munich");
    assert_non_null(m);
    assert_true(fabs(m->lat - 48.1351) < 1e-9 && m->out_m == 800);
    const struct sim_fence *h = sim_fences_find(&fences, "yard-hamburg");
    assert_non_null(h);
    assert_true(h->out_m > 1000 && h->out_m < 2000);
    assert_null(sim_fences_find(&fences, "nope"));
}

static void fence_errors_name_the_feature(void **state)
{
    (void)state;
#define FC(features) "{\"type\":\"FeatureCollection\",\"features\":[" features "]}"
#define PT(props)                                                                                                      \
    "{\"type\":\"Feature\",\"properties\":" props ",\"geometry\":{\"type\":\"Point\",\"coordinates\":[11.5,48.1]}}"
    static const struct {
        const char *json, *expect;
    } cases[] = {
        {FC(PT("{\"id\":\"a\"}")), "f.geojson: feature 1"},
        {FC(PT("{\"radius_m\":5}")), "f.geojson: feature 1"},
        {FC(PT("{\"id\":\"a\",\"radius_m\":5}") "," PT("{\"id\":\"a\",\"radius_m\":5}")), "f.geojson: feature 2"},
        {"{\"type\":\"Feature\"}", "f.geojson: not a GeoJSON FeatureCollection"},
        {"{\"features\":[", "f.geojson: "},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct sim_fences f;
        char err[256];
        assert_int_equal(sim_fences_parse("f.geojson", cases[k].json, strlen(cases[k].json), &f, err, sizeof(err)), -1);
        if (!strstr(err, cases[k].expect))
            fail_msg("case %zu: '%s' does not contain '%s'", k, err, cases[k].expect);
    }
}

static void all_seven_rules_parse(void **state)
{
    (void)state;
    struct scenario s;
    char err[256];
    struct scenario_params p = params();
    assert_int_equal(scenario_load(FIXTURES "all_rules.jsonl", &p, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n, 7);
    int seen[RULE_COUNT] = {0};
    for (size_t k = 0; k < s.n; k++) {
        seen[s.inc[k].rule]++;
        if (k)
            assert_true(s.inc[k].truck > s.inc[k - 1].truck);
    }
    for (int r = 0; r < RULE_COUNT; r++)
        assert_int_equal(seen[r], 1);
    assert_int_equal(s.inc[0].truck, 6);
    assert_int_equal(s.inc[0].rule, RULE_STATIONARY_ENGINE_ON);
    assert_true(s.inc[0].at_ms == START_MS + 1800000);
    assert_true(s.inc[0].duration_ms == 1500000);
    assert_true(s.inc[4].fence_out_m == 800);
    scenario_release(&s);
}

/* Every file in bad/ starts with "# expect: <error>". */
static void bad_lines_fail_with_file_line_and_reason(void **state)
{
    (void)state;
    DIR *d = opendir(FIXTURES "bad");
    assert_non_null(d);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[512], first[512], err[512];
        snprintf(path, sizeof(path), FIXTURES "bad/%s", e->d_name);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        assert_non_null(fgets(first, sizeof(first), f));
        fclose(f);
        first[strcspn(first, "\n")] = '\0';
        assert_true(strncmp(first, "# expect: ", 10) == 0);
        struct scenario s;
        struct scenario_params p = params();
        int rc = scenario_load(path, &p, &s, err, sizeof(err));
        if (rc != -1 || !strstr(err, first + 10))
            fail_msg("%s: got rc %d '%s', expected '%s'", e->d_name, rc, rc ? err : "", first + 10);
        files++;
    }
    closedir(d);
    assert_true(files >= 10);
}

static void missing_file_is_named(void **state)
{
    (void)state;
    struct scenario s;
    char err[256];
    struct scenario_params p = params();
    assert_int_equal(scenario_load(FIXTURES "no-such.jsonl", &p, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no-such.jsonl: No such file"));
}

static void geofence_exit_needs_fences(void **state)
{
    (void)state;
    const char *line =
        "{\"truck_id\":\"TRK-000001\",\"rule\":\"geofence_exit\",\"at_s\":5,\"fence\":\"x\",\"duration_s\":60}";
    struct scenario s;
    char err[256];
    struct scenario_params p = params();
    p.fences = NULL;
    assert_int_equal(scenario_parse("s.jsonl", line, strlen(line), &p, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "s.jsonl:1: geofence_exit needs --geofences FILE"));
}

static void id_prefix_is_honoured(void **state)
{
    (void)state;
    const char *line = "{\"truck_id\":\"E2E-1-000003\",\"rule\":\"offline\",\"at_s\":5,\"duration_s\":60}";
    struct scenario s;
    char err[256];
    struct scenario_params p = params();
    p.id_prefix = "E2E-1-";
    assert_int_equal(scenario_parse("s.jsonl", line, strlen(line), &p, &s, err, sizeof(err)), 0);
    assert_int_equal(s.inc[0].truck, 2);
    scenario_release(&s);
}

static void leaving_outside_the_active_window_is_accepted(void **state)
{
    (void)state;
    /* yard-hamburg is active 22:00-06:00; START_MS + 60 s is 00:01 (inside),
     * + 43200 s is 12:00 (outside: a warning, not an error) */
    const char *text =
        "{\"truck_id\":\"TRK-000001\",\"rule\":\"geofence_exit\",\"at_s\":60,\"fence\":\"yard-hamburg\","
        "\"duration_s\":600}\n"
        "{\"truck_id\":\"TRK-000002\",\"rule\":\"geofence_exit\",\"at_s\":43200,\"fence\":\"yard-hamburg\","
        "\"duration_s\":600}\n";
    struct scenario s;
    char err[256];
    struct scenario_params p = params();
    assert_int_equal(scenario_parse("w.jsonl", text, strlen(text), &p, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n, 2);
    const struct sim_fence *h = sim_fences_find(&fences, "yard-hamburg");
    assert_true(h->has_window && h->window_from_min == 22 * 60 && h->window_to_min == 6 * 60);
    scenario_release(&s);
}

/* --- injection: the fleet does what the scenario says ------------------ */

struct run {
    struct scenario s;
    struct fleet *f;
};

static void load_run(struct run *r)
{
    char err[256];
    struct scenario_params p = params();
    assert_int_equal(scenario_load(FIXTURES "all_rules.jsonl", &p, &r->s, err, sizeof(err)), 0);
    struct fleet_options o = {.trucks = 20, .seed = 3, .start_ms = START_MS};
    r->f = fleet_new(&o, r->s.inc, r->s.n);
    assert_non_null(r->f);
}

static void free_run(struct run *r)
{
    fleet_free(r->f);
    scenario_release(&r->s);
}

static void incidents_shape_the_readings(void **state)
{
    (void)state;
    struct run r;
    load_run(&r);
    struct fleet_truth t;
    struct fleet_sample sm;
    /* stationary_engine_on: TRK-000007 (index 6), 1800 s + 1500 s */
    double lat0 = 0, lon0 = 0;
    for (int64_t s = 1800; s < 3300; s += 30) {
        fleet_truth(r.f, 6, START_MS + s * 1000, &t);
        if (s == 1800) {
            lat0 = t.lat;
            lon0 = t.lon;
        }
        assert_true(t.ignition && t.speed_kmh == 0);
        assert_true(geo_haversine_m(lat0, lon0, t.lat, t.lon) < 1);
    }
    /* moving_ignition_off: index 7, 2700 s + 600 s at 30 km/h */
    for (int64_t s = 2701; s < 3300; s += 30) {
        fleet_truth(r.f, 7, START_MS + s * 1000, &t);
        assert_false(t.ignition);
        assert_true(fabs(t.speed_kmh - 30) < 0.01);
    }
    /* fuel_drop: index 9, 30 pct over 300 s from 3600 s, parked, engine off */
    fleet_truth(r.f, 9, START_MS + 3600 * 1000, &t);
    double f0 = t.fuel_pct;
    fleet_truth(r.f, 9, START_MS + 3750 * 1000, &t);
    assert_true(t.speed_kmh == 0 && !t.ignition);
    fleet_truth(r.f, 9, START_MS + 3900 * 1000, &t);
    assert_true(fabs((f0 - t.fuel_pct) - fmin(30, f0)) < 0.01);
    /* overspeed: index 11, 125 km/h for 180 s from 5000 s */
    for (int64_t s = 5001; s < 5180; s += 10) {
        fleet_truth(r.f, 11, START_MS + s * 1000, &t);
        assert_true(t.ignition && fabs(t.speed_kmh - 125) < 0.01);
    }
    /* geofence_exit: index 10 waits inside depot-munich, is outside during
     * the incident, and comes back */
    const struct sim_fence *fe = sim_fences_find(&fences, "depot-munich");
    fleet_truth(r.f, 10, START_MS + 1000 * 1000, &t);
    assert_true(geo_haversine_m(fe->lat, fe->lon, t.lat, t.lon) < 800);
    fleet_truth(r.f, 10, START_MS + 3990 * 1000, &t);
    assert_true(geo_haversine_m(fe->lat, fe->lon, t.lat, t.lon) < 800);
    for (int64_t s = 4010; s < 4890; s += 20) {
        fleet_truth(r.f, 10, START_MS + s * 1000, &t);
        assert_true(geo_haversine_m(fe->lat, fe->lon, t.lat, t.lon) > 800);
    }
    fleet_truth(r.f, 10, START_MS + 4910 * 1000, &t);
    assert_true(geo_haversine_m(fe->lat, fe->lon, t.lat, t.lon) < 800);
    fleet_truth(r.f, 10, START_MS + 6000 * 1000, &t);
    assert_true(geo_haversine_m(fe->lat, fe->lon, t.lat, t.lon) < 800);
    /* gps_jump: index 8, one reading ~400 km away at the first report after 600 s */
    fleet_sample(r.f, 8, START_MS + 590 * 1000, &sm);
    double la = sm.lat, lo = sm.lon;
    fleet_sample(r.f, 8, START_MS + 600 * 1000, &sm);
    double jump = geo_haversine_m(la, lo, sm.lat, sm.lon);
    assert_true(jump > 395000 && jump < 405000);
    fleet_sample(r.f, 8, START_MS + 610 * 1000, &sm);
    assert_true(geo_haversine_m(la, lo, sm.lat, sm.lon) < 1000);
    /* offline: index 12, nothing from 6000 s for 1200 s, seq without gaps */
    fleet_sample(r.f, 12, START_MS + 5990 * 1000, &sm);
    assert_false(sm.skip);
    uint32_t seq = sm.seq;
    for (int64_t s = 6000; s < 7200; s += 60) {
        fleet_sample(r.f, 12, START_MS + s * 1000, &sm);
        assert_true(sm.skip);
    }
    fleet_sample(r.f, 12, START_MS + 7200 * 1000, &sm);
    assert_false(sm.skip);
    assert_int_equal(sm.seq, seq + 1);
    free_run(&r);
}

static void truth_has_start_ms_of_each_incident(void **state)
{
    (void)state;
    struct run r;
    load_run(&r);
    for (int64_t t = START_MS; t <= START_MS + 8000 * 1000; t += 10000)
        for (uint32_t i = 0; i < 20; i++) {
            struct fleet_sample sm;
            fleet_sample(r.f, i, t, &sm);
        }
    int32_t idx[16];
    size_t n = fleet_take_started(r.f, idx, 16);
    assert_int_equal(n, 7);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(scenario_write_truth(&r.s, (size_t)idx[k], out), 0);
    fclose(out);
    assert_non_null(strstr(buf, "{\"truck_id\":\"TRK-000007\",\"rule\":\"stationary_engine_on\",\"at_s\":1800,"
                                "\"duration_s\":1500,\"start_ms\":1764203400000,\"end_ms\":1764204900000}"));
    assert_non_null(strstr(buf, "\"rule\":\"gps_jump\",\"at_s\":600,\"km\":400,\"start_ms\":1764202200000"));
    free(buf);
    assert_int_equal(fleet_take_started(r.f, idx, 16), 0);
    free_run(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fences_load_points_and_polygons),
        cmocka_unit_test(fence_errors_name_the_feature),
        cmocka_unit_test(all_seven_rules_parse),
        cmocka_unit_test(bad_lines_fail_with_file_line_and_reason),
        cmocka_unit_test(missing_file_is_named),
        cmocka_unit_test(geofence_exit_needs_fences),
        cmocka_unit_test(id_prefix_is_honoured),
        cmocka_unit_test(leaving_outside_the_active_window_is_accepted),
        cmocka_unit_test(incidents_shape_the_readings),
        cmocka_unit_test(truth_has_start_ms_of_each_incident),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
