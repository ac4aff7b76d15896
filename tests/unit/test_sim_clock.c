/* The simulator's clock and payloads: never ahead of the wall clock, and
 * every reading passes the telemetry v1 validator. */
#include "core/telemetry.h"

#include "core/clock.h"
#include "core/timeparse.h"
#include "sim/clock.h"
#include "sim/fleet.h"
#include "sim/payload.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#define WALL 1795740000000LL

static void never_ahead_of_the_wall_clock(void **state)
{
    (void)state;
    static const double speedups[] = {0, 0.5, 1, 2, 60, 3600, 1e6};
    static const int64_t starts[] = {WALL - 30 * FS_DAY_MS, WALL - 3600000, WALL - 1000, WALL};
    for (size_t a = 0; a < sizeof(speedups) / sizeof(speedups[0]); a++)
        for (size_t b = 0; b < sizeof(starts) / sizeof(starts[0]); b++) {
            struct sim_clock c;
            sim_clock_init(&c, starts[b], WALL, speedups[a]);
            for (int64_t w = WALL; w < WALL + 10 * FS_DAY_MS; w += 3600000 + 7)
                assert_true(sim_clock_limit(&c, w) <= w);
        }
}

static void speedup_runs_the_clock_faster(void **state)
{
    (void)state;
    struct sim_clock c;
    int64_t start = WALL - FS_DAY_MS;
    sim_clock_init(&c, start, WALL, 60);
    assert_true(sim_clock_limit(&c, WALL) == start);
    assert_true(sim_clock_limit(&c, WALL + 1000) == start + 60000);
    /* reaching now, it continues in real time */
    assert_true(sim_clock_limit(&c, WALL + 2000000) == WALL + 2000000);
    assert_true(sim_clock_wall_due(&c, start + 120000, WALL) == WALL + 2000);
    assert_true(sim_clock_wall_due(&c, start, WALL + 5) == WALL + 5);
}

static void speedup_zero_is_bounded_by_now_only(void **state)
{
    (void)state;
    struct sim_clock c;
    sim_clock_init(&c, WALL - FS_DAY_MS, WALL, 0);
    assert_true(sim_clock_limit(&c, WALL) == WALL);
    assert_true(sim_clock_wall_due(&c, WALL - 5, WALL) == WALL);
    assert_true(sim_clock_wall_due(&c, WALL + 500, WALL) == WALL + 500);
}

/* --start and every other moment on a command line: core/timeparse. */
static void start_times_parse(void **state)
{
    (void)state;
    int64_t t;
    const int64_t back = 3650 * FS_DAY_MS;
    char err[160];
    assert_int_equal(time_parse_moment("2025-11-27T00:00:00Z", WALL, back, &t, NULL, 0), 0);
    assert_true(t == 1764201600000LL);
    assert_int_equal(time_parse_moment("2025-11-27T00:00:00.250Z", WALL, back, &t, NULL, 0), 0);
    assert_true(t == 1764201600250LL);
    assert_int_equal(time_parse_moment("2025-11-27T01:00:00+01:00", WALL, back, &t, NULL, 0), 0);
    assert_true(t == 1764201600000LL);
    assert_int_equal(time_parse_moment("2025-11-27", WALL, back, &t, NULL, 0), 0);
    assert_true(t == 1764201600000LL);
    assert_int_equal(time_parse_moment("now-30d", WALL, back, &t, NULL, 0), 0);
    assert_true(t == WALL - 30 * FS_DAY_MS);
    assert_int_equal(time_parse_moment("now-90m", WALL, back, &t, NULL, 0), 0);
    assert_true(t == WALL - 90LL * 60000);
    assert_int_equal(time_parse_moment("now", WALL, back, &t, NULL, 0), 0);
    assert_true(t == WALL);
    const char *bad[] = {"",       "yesterday", "2025-13-01",   "2025-11-27T25:00:00Z",
                         "now+1d", "now-3x",    "2025-11-27Tx", "now-1.5h",
                         "now-",   "now-3651d"};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
        assert_int_equal(time_parse_moment(bad[k], WALL, back, &t, NULL, 0), -1);
    /* A time of day without its zone is refused, with the reason. */
    assert_int_equal(time_parse_moment("2025-11-27T00:00:00", WALL, back, &t, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no time zone"));
    char buf[32];
    sim_clock_format(1764201600123LL, buf, sizeof(buf));
    assert_string_equal(buf, "2025-11-27T00:00:00Z");
}

/* Durations: one rule for --since, --rebuild, --alert-window, --session-ttl. */
static void durations_parse(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(time_parse_duration("90s", FS_DAY_MS, &ms, NULL, 0), 0);
    assert_true(ms == 90000);
    assert_int_equal(time_parse_duration("5m", FS_DAY_MS, &ms, NULL, 0), 0);
    assert_true(ms == 300000);
    assert_int_equal(time_parse_duration("2h", FS_DAY_MS, &ms, NULL, 0), 0);
    assert_true(ms == 7200000);
    assert_int_equal(time_parse_duration("1d", FS_DAY_MS, &ms, NULL, 0), 0);
    assert_true(ms == FS_DAY_MS);
    const char *bad[] = {"", "300", "5", "1.5h", "-1m", "2d", "5 m", "m", "5mm"};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
        assert_int_equal(time_parse_duration(bad[k], FS_DAY_MS, &ms, NULL, 0), -1);
}

/* sim --kafka writes what the bridge would have made of the MQTT payload. */
static void assert_normalized_as_the_bridge(const struct tm_reading *parsed, const char *id, int64_t t,
                                            const struct fleet_sample *s)
{
    char bridge[TM_MAX_PAYLOAD + 1], mine[SIM_PAYLOAD_MAX];
    assert_true(tm_serialize(parsed, bridge, sizeof(bridge)) > 0);
    int len = sim_format_normalized(mine, sizeof(mine), id, t, s);
    assert_int_equal(len, (int)strlen(bridge));
    assert_string_equal(mine, bridge);
}

static void readings_pass_the_telemetry_validator(void **state)
{
    (void)state;
    int64_t start = WALL - FS_DAY_MS;
    struct fleet_options o = {.trucks = 50, .seed = 4, .start_ms = start};
    struct fleet *f = fleet_new(&o, NULL, 0);
    assert_non_null(f);
    char id[80], topic[160], payload[SIM_PAYLOAD_MAX];
    int n = 0;
    for (int64_t t = start; t < start + FS_DAY_MS; t += 600000)
        for (uint32_t i = 0; i < 50; i++) {
            struct fleet_sample s;
            fleet_sample(f, i, t, &s);
            tm_format_truck_id(id, sizeof(id), "TRK-", 4, i);
            int len = sim_format_reading(payload, sizeof(payload), id, t, &s);
            assert_true(len > 0 && len < (int)sizeof(payload));
            assert_true(sim_format_topic(topic, sizeof(topic), id) > 0);
            struct tm_reading r;
            char detail[128];
            enum tm_reason why = tm_parse_mqtt(topic, payload, (size_t)len, WALL, &r, detail, sizeof(detail));
            if (why != TM_OK)
                fail_msg("%s rejected: %s (%s)", payload, tm_reason_name(why), detail);
            assert_string_equal(r.truck_id, id);
            assert_true(r.ts_ms == t);
            assert_true(r.seq == (int64_t)s.seq);
            assert_true(fabs(r.lat - s.lat) < 1e-6 && fabs(r.speed_kmh - s.speed_kmh) <= 0.05);
            assert_normalized_as_the_bridge(&r, id, t, &s);
            tm_reading_release(&r);
            n++;
        }
    assert_true(n == 144 * 50);
    fleet_free(f);
}

static void extreme_values_stay_in_range(void **state)
{
    (void)state;
    struct fleet_sample s = {.lat = -90.0000001,
                             .lon = 180.00000049,
                             .speed_kmh = 500,
                             .heading_deg = 359.97,
                             .fuel_pct = 100.04,
                             .odometer_km = 0,
                             .ignition = 0,
                             .seq = 7};
    char payload[SIM_PAYLOAD_MAX];
    int len = sim_format_reading(payload, sizeof(payload), "TRK-000001", WALL, &s);
    assert_string_equal(payload, "{\"v\":1,\"truck_id\":\"TRK-000001\",\"ts\":1795740000000,\"seq\":7,"
                                 "\"lat\":-90.000000,\"lon\":180.000000,\"speed_kmh\":400.0,\"heading_deg\":0.0,"
                                 "\"ignition\":false,\"fuel_pct\":100.0,\"odometer_km\":0.0}");
    struct tm_reading r;
    assert_int_equal(tm_parse(payload, (size_t)len, WALL, &r, NULL, 0), TM_OK);
    tm_reading_release(&r);
    assert_int_equal(sim_format_reading(payload, 10, "TRK-000001", WALL, &s), -1);
    assert_int_equal(sim_format_normalized(payload, 10, "TRK-000001", WALL, &s), -1);
}

/* Values whose normalized form is not the fixed decimals: trailing zeros,
 * integers, -0, and magnitudes below 1e-4 (written with an exponent). */
static void normalized_form_at_the_edges(void **state)
{
    (void)state;
    static const double v[] = {0,           -0.0,       0.0000004, -0.0000004, 0.0000005,  -0.0000005,
                               0.00001,     -0.0000496, 0.0001,    0.00009999, 1,          -1,
                               48.1,        48.13715,   -0.1,      11.000001,  89.9999996, -179.9999999,
                               123.4564999, 2.675,      1e-7,      359.95,     0.05,       0.04999};
    const size_t n = sizeof(v) / sizeof(v[0]);
    char payload[SIM_PAYLOAD_MAX];
    for (size_t a = 0; a < n; a++)
        for (size_t b = 0; b < n; b++) {
            struct fleet_sample s = {.lat = v[a],
                                     .lon = v[b],
                                     .speed_kmh = fabs(v[b]),
                                     .heading_deg = fabs(v[a]),
                                     .fuel_pct = fabs(v[b]),
                                     .odometer_km = v[a],
                                     .ignition = (a + b) % 2,
                                     .seq = (uint32_t)(a * n + b)};
            int len = sim_format_reading(payload, sizeof(payload), "TRK-000001", WALL, &s);
            assert_true(len > 0);
            struct tm_reading r;
            char detail[64];
            enum tm_reason why = tm_parse(payload, (size_t)len, WALL, &r, detail, sizeof(detail));
            if (why != TM_OK)
                fail_msg("%s rejected: %s (%s)", payload, tm_reason_name(why), detail);
            assert_normalized_as_the_bridge(&r, "TRK-000001", WALL, &s);
            tm_reading_release(&r);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(never_ahead_of_the_wall_clock),
        cmocka_unit_test(speedup_runs_the_clock_faster),
        cmocka_unit_test(speedup_zero_is_bounded_by_now_only),
        cmocka_unit_test(start_times_parse),
        cmocka_unit_test(durations_parse),
        cmocka_unit_test(readings_pass_the_telemetry_validator),
        cmocka_unit_test(extreme_values_stay_in_range),
        cmocka_unit_test(normalized_form_at_the_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
