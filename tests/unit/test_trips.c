/* Trips and stops of a truck's day (report/trips.h), and the parsing and
 * GPX helpers of `fleetsync report` (report/report.h).
 *
 * The fixture is one truck on 2026-11-01 driving north along the meridian
 * 11 E, so every distance is R * dlat (R = 6371.0088 km): a step of 0.009
 * degrees, L, is 1.0007557 km; 0.002 degrees is 0.2223902 km.  The same
 * readings are the truck "A" of tests/e2e/test_report.sh.
 *
 *  i  time (UTC)  lat     km/h  ign   what happens
 *  0  07:50       48.000    0   off   parked at the depot
 *  1  08:00       48.000    0   on    engine start             -- stop 0 ends, trip 1 starts
 *  2  08:01       48.009   54   on    +L
 *  3  08:02       48.018   60   on    +L
 *  4  08:03       48.027   60   on    +L
 *  5  08:04       48.027    0   on    red light ...
 *  6  08:06       48.027    0   on    ... 2 min, engine on: a pause, not a stop
 *  7  08:07       48.036   60   on    +L
 *  8  08:08       48.045   72   on    +L (the day's top speed)
 *  9  08:09       48.045    0   on    arrives                  -- trip 1 ends, stop 1 starts
 * 10  08:15       48.045    0   on    idles 6 + 5 min
 * 11  08:20       48.045    0   off
 * 12  08:30       48.045    0   off                            -- stop 1 ends, trip 2 starts
 * 13  08:31       48.054   60   on    +L
 * 14  08:32       48.054    0   off   1 min with the ignition off: a stop
 * 15  08:33       48.054    0   off                            -- (stop 2 starts at 14)
 * 16  08:34       48.056   30   on    +0.2224 km: a trip too short, merged into stop 2
 * 17  08:35       48.056    0   on
 * 18  08:45       48.056    0   off   idles 10 min
 * 19  09:10       48.056    0   off   25 min without data (no time, no distance) -- stop 2 ends
 * 20  09:11       48.065   60   on    +L
 * 21  09:12       48.074   60   on    +L
 * 22  09:13       48.074    0   on    arrives                  -- trip 3 ends, stop 3 starts
 * 23  09:20       48.074    0   off   idles 7 min              -- stop 3 ends with the data
 *
 * Trips (distance over moving intervals; avg = distance / moving time):
 *   08:00-08:09  5L = 5.003779 km, 540 s, moving 420 s (the red light's 120 s idle is
 *                not moving), avg 42.890 km/h, max 72
 *   08:30-08:32  L  = 1.000756 km, 120 s, moving 120 s, avg 30.023 km/h, max 60
 *   09:10-09:13  2L = 2.001511 km, 180 s, moving 180 s, avg 40.030 km/h, max 60
 * Stops (engine on = intervals whose earlier reading has the ignition on, gaps excluded):
 *   07:50-08:00  600 s at 48.000, engine on 0
 *   08:09-08:30  1260 s at 48.045, engine on 360 + 300 = 660 s
 *   08:32-09:10  2280 s at 48.054, engine on 60 (08:34-08:35) + 600 (08:35-08:45) = 660 s
 *   09:13-09:20  420 s at 48.074, engine on 420 s
 */
#include "core/rollup.h"
#include "report/report.h"
#include "report/trips.h"

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
#define L_KM 1.0007557221017962
#define SHORT_KM 0.22239016046706583

#define P(i, h, m, lat, kmh, ign)                                                                                      \
    {                                                                                                                  \
        AT(h, m), i, lat, 11.0, kmh, ign, NAN                                                                          \
    }

static const struct rollup_point day[] = {
    P(0, 7, 50, 48.000, 0, 0),   P(1, 8, 0, 48.000, 0, 1),    P(2, 8, 1, 48.009, 54, 1),  P(3, 8, 2, 48.018, 60, 1),
    P(4, 8, 3, 48.027, 60, 1),   P(5, 8, 4, 48.027, 0, 1),    P(6, 8, 6, 48.027, 0, 1),   P(7, 8, 7, 48.036, 60, 1),
    P(8, 8, 8, 48.045, 72, 1),   P(9, 8, 9, 48.045, 0, 1),    P(10, 8, 15, 48.045, 0, 1), P(11, 8, 20, 48.045, 0, 0),
    P(12, 8, 30, 48.045, 0, 0),  P(13, 8, 31, 48.054, 60, 1), P(14, 8, 32, 48.054, 0, 0), P(15, 8, 33, 48.054, 0, 0),
    P(16, 8, 34, 48.056, 30, 1), P(17, 8, 35, 48.056, 0, 1),  P(18, 8, 45, 48.056, 0, 0), P(19, 9, 10, 48.056, 0, 0),
    P(20, 9, 11, 48.065, 60, 1), P(21, 9, 12, 48.074, 60, 1), P(22, 9, 13, 48.074, 0, 1), P(23, 9, 20, 48.074, 0, 0),
};
#define DAY_N (sizeof(day) / sizeof(day[0]))

static struct trips_result segment(const struct rollup_point *pts, size_t n, int64_t min_stop_ms, double min_km)
{
    struct trips_params p = {min_stop_ms, min_km};
    struct trips_result r;
    assert_int_equal(trips_segment(pts, n, &p, &r), 0);
    return r;
}

static void assert_trip(const struct trip *t, int64_t start, int64_t end, double km, double moving_s, double max)
{
    assert_int_equal(t->start_ms, start);
    assert_int_equal(t->end_ms, end);
    assert_float_equal(t->distance_km, km, 1e-6);
    assert_float_equal(t->duration_s, (double)(end - start) / 1000, 1e-9);
    assert_float_equal(t->moving_s, moving_s, 1e-9);
    assert_float_equal(t->avg_speed_kmh, km / moving_s * 3600, 1e-9);
    assert_float_equal(t->max_speed_kmh, max, 1e-9);
}

static void assert_stop(const struct stop *s, int64_t start, int64_t end, double lat, double engine_on_s)
{
    assert_int_equal(s->start_ms, start);
    assert_int_equal(s->end_ms, end);
    assert_float_equal(s->duration_s, (double)(end - start) / 1000, 1e-9);
    assert_float_equal(s->lat, lat, 1e-12);
    assert_float_equal(s->lon, 11.0, 1e-12);
    assert_float_equal(s->engine_on_s, engine_on_s, 1e-9);
}

/* ---- segmentation ------------------------------------------------------- */

static void fixture_day_has_three_trips(void **state)
{
    (void)state;
    struct trips_result r = segment(day, DAY_N, TRIPS_DEFAULT_MIN_STOP_MS, TRIPS_DEFAULT_MIN_TRIP_KM);
    assert_int_equal(r.trip_count, 3);
    assert_trip(&r.trips[0], AT(8, 0), AT(8, 9), 5 * L_KM, 420, 72);
    assert_int_equal(r.trips[0].first, 1);
    assert_int_equal(r.trips[0].last, 9);
    assert_float_equal(r.trips[0].start_lat, 48.000, 1e-12);
    assert_float_equal(r.trips[0].end_lat, 48.045, 1e-12);
    assert_float_equal(r.trips[0].avg_speed_kmh, 42.8895, 1e-4);
    assert_trip(&r.trips[1], AT(8, 30), AT(8, 32), L_KM, 120, 60);
    assert_trip(&r.trips[2], AT(9, 10), AT(9, 13), 2 * L_KM, 180, 60);
    trips_result_release(&r);
}

static void fixture_day_has_four_stops(void **state)
{
    (void)state;
    struct trips_result r = segment(day, DAY_N, TRIPS_DEFAULT_MIN_STOP_MS, TRIPS_DEFAULT_MIN_TRIP_KM);
    assert_int_equal(r.stop_count, 4);
    assert_stop(&r.stops[0], AT(7, 50), AT(8, 0), 48.000, 0);
    assert_stop(&r.stops[1], AT(8, 9), AT(8, 30), 48.045, 660);
    assert_stop(&r.stops[2], AT(8, 32), AT(9, 10), 48.054, 660);
    assert_stop(&r.stops[3], AT(9, 13), AT(9, 20), 48.074, 420);
    trips_result_release(&r);
}

static void trips_and_stops_alternate_sharing_readings(void **state)
{
    (void)state;
    struct trips_result r = segment(day, DAY_N, TRIPS_DEFAULT_MIN_STOP_MS, TRIPS_DEFAULT_MIN_TRIP_KM);
    for (size_t i = 0; i < r.trip_count; i++) {
        assert_int_equal(r.stops[i].last, r.trips[i].first);
        assert_int_equal(r.trips[i].last, r.stops[i + 1].first);
    }
    trips_result_release(&r);
}

static void a_shorter_min_stop_turns_the_red_light_into_a_stop(void **state)
{
    (void)state;
    struct trips_result r = segment(day, DAY_N, 120000, TRIPS_DEFAULT_MIN_TRIP_KM);
    assert_int_equal(r.trip_count, 4);
    assert_trip(&r.trips[0], AT(8, 0), AT(8, 4), 3 * L_KM, 240, 60);
    assert_trip(&r.trips[1], AT(8, 6), AT(8, 9), 2 * L_KM, 180, 72);
    assert_int_equal(r.stop_count, 5);
    assert_stop(&r.stops[1], AT(8, 4), AT(8, 6), 48.027, 120);
    trips_result_release(&r);
}

static void a_zero_min_distance_keeps_the_short_trip(void **state)
{
    (void)state;
    struct trips_result r = segment(day, DAY_N, TRIPS_DEFAULT_MIN_STOP_MS, 0);
    assert_int_equal(r.trip_count, 4);
    assert_trip(&r.trips[2], AT(8, 33), AT(8, 35), SHORT_KM, 120, 30);
    /* Stop 2 splits around it: 08:32-08:33 (ignition off) and 08:35-09:10. */
    assert_int_equal(r.stop_count, 5);
    assert_stop(&r.stops[2], AT(8, 32), AT(8, 33), 48.054, 0);
    assert_stop(&r.stops[3], AT(8, 35), AT(9, 10), 48.056, 600);
    trips_result_release(&r);
}

static void trip_distance_is_the_rollup_distance_minus_dropped_trips(void **state)
{
    (void)state;
    struct rollup_hour h;
    rollup_hour_init(&h, 0);
    for (size_t i = 0; i < DAY_N; i++)
        rollup_fold(&h, i ? &day[i - 1] : NULL, &day[i]);
    struct trips_result r = segment(day, DAY_N, TRIPS_DEFAULT_MIN_STOP_MS, 0);
    double km = 0, moving = 0;
    for (size_t i = 0; i < r.trip_count; i++) {
        km += r.trips[i].distance_km;
        moving += r.trips[i].moving_s;
    }
    assert_float_equal(km, h.distance_km, 1e-9);
    assert_float_equal(moving, h.moving_s, 1e-9);
    assert_float_equal(h.distance_km, 8 * L_KM + SHORT_KM, 1e-6);
    assert_float_equal(h.moving_s, 840, 1e-9);
    trips_result_release(&r);
}

static void no_readings_or_one_reading_give_nothing(void **state)
{
    (void)state;
    struct trips_result r = segment(day, 0, TRIPS_DEFAULT_MIN_STOP_MS, TRIPS_DEFAULT_MIN_TRIP_KM);
    assert_int_equal(r.trip_count + r.stop_count, 0);
    trips_result_release(&r);
    r = segment(day, 1, TRIPS_DEFAULT_MIN_STOP_MS, TRIPS_DEFAULT_MIN_TRIP_KM);
    assert_int_equal(r.trip_count + r.stop_count, 0);
    trips_result_release(&r);
}

static void a_truck_standing_all_day_has_one_stop(void **state)
{
    (void)state;
    struct rollup_point pts[] = {P(0, 6, 0, 48.0, 0, 1), P(1, 6, 5, 48.0, 0, 1), P(2, 6, 9, 48.0, 3, 1)};
    struct trips_result r = segment(pts, 3, TRIPS_DEFAULT_MIN_STOP_MS, TRIPS_DEFAULT_MIN_TRIP_KM);
    assert_int_equal(r.trip_count, 0);
    assert_int_equal(r.stop_count, 1);
    assert_stop(&r.stops[0], AT(6, 0), AT(6, 9), 48.0, 540);
    trips_result_release(&r);
}

static void a_short_stand_with_the_engine_on_is_not_a_stop(void **state)
{
    (void)state;
    /* 4 min standing before the first move, engine on: neither a stop nor in the trip. */
    struct rollup_point pts[] = {P(0, 6, 0, 48.0, 0, 1), P(1, 6, 4, 48.0, 0, 1), P(2, 6, 5, 48.009, 60, 1),
                                 P(3, 6, 6, 48.018, 60, 1)};
    struct trips_result r = segment(pts, 4, TRIPS_DEFAULT_MIN_STOP_MS, TRIPS_DEFAULT_MIN_TRIP_KM);
    assert_int_equal(r.stop_count, 0);
    assert_int_equal(r.trip_count, 1);
    assert_trip(&r.trips[0], AT(6, 4), AT(6, 6), 2 * L_KM, 120, 60);
    trips_result_release(&r);
}

static void a_day_starting_on_the_move_starts_with_a_trip(void **state)
{
    (void)state;
    struct rollup_point pts[] = {P(0, 0, 0, 48.0, 80, 1), P(1, 0, 1, 48.009, 80, 1), P(2, 0, 2, 48.009, 0, 0),
                                 P(3, 0, 3, 48.009, 0, 0)};
    struct trips_result r = segment(pts, 4, TRIPS_DEFAULT_MIN_STOP_MS, TRIPS_DEFAULT_MIN_TRIP_KM);
    assert_int_equal(r.trip_count, 1);
    assert_trip(&r.trips[0], AT(0, 0), AT(0, 2), L_KM, 120, 80);
    assert_int_equal(r.stop_count, 1);
    assert_stop(&r.stops[0], AT(0, 2), AT(0, 3), 48.009, 0);
    trips_result_release(&r);
}

static void a_data_gap_ends_a_trip_and_carries_no_distance(void **state)
{
    (void)state;
    /* 20 min without readings between two moving ones: not moving (rollup rule), and
     * longer than --min-stop, so the truck is taken to have stopped. */
    struct rollup_point pts[] = {P(0, 6, 0, 48.0, 60, 1), P(1, 6, 1, 48.009, 60, 1), P(2, 6, 21, 48.5, 60, 1),
                                 P(3, 6, 22, 48.509, 60, 1)};
    struct trips_result r = segment(pts, 4, TRIPS_DEFAULT_MIN_STOP_MS, TRIPS_DEFAULT_MIN_TRIP_KM);
    assert_int_equal(r.trip_count, 2);
    assert_trip(&r.trips[0], AT(6, 0), AT(6, 1), L_KM, 60, 60);
    assert_trip(&r.trips[1], AT(6, 21), AT(6, 22), L_KM, 60, 60);
    assert_int_equal(r.stop_count, 1);
    assert_stop(&r.stops[0], AT(6, 1), AT(6, 21), 48.009, 0);
    trips_result_release(&r);
}

/* ---- parsing ------------------------------------------------------------ */

static void durations_parse_with_units(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(report_parse_duration("90s", &ms), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(report_parse_duration("30m", &ms), 0);
    assert_int_equal(ms, 1800000);
    assert_int_equal(report_parse_duration("2h", &ms), 0);
    assert_int_equal(ms, 7200000);
    assert_int_equal(report_parse_duration("7d", &ms), 0);
    assert_int_equal(ms, 604800000);
    assert_int_equal(report_parse_duration("0s", &ms), 0);
    assert_int_equal(ms, 0);
}

static void bad_durations_are_refused(void **state)
{
    (void)state;
    int64_t ms;
    const char *bad[] = {"", "5", "m", "5x", "-5m", "5 m", " 5m", "1.5h", "5mm", "36501d", "9999999999999s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(report_parse_duration(bad[i], &ms), -1);
}

static void iso_times_parse_with_zone_or_as_a_date(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(report_parse_time("2026-11-01T08:00:00Z", &ms), 0);
    assert_int_equal(ms, AT(8, 0));
    assert_int_equal(report_parse_time("2026-11-01T10:00:00+02:00", &ms), 0);
    assert_int_equal(ms, AT(8, 0));
    assert_int_equal(report_parse_time("2026-11-01T02:30-05:30", &ms), 0);
    assert_int_equal(ms, AT(8, 0));
    assert_int_equal(report_parse_time("2026-11-01T09:00+0100", &ms), 0);
    assert_int_equal(ms, AT(8, 0));
    assert_int_equal(report_parse_time("2026-11-01 08:00:00.25z", &ms), 0);
    assert_int_equal(ms, AT(8, 0) + 250);
    assert_int_equal(report_parse_time("2026-11-01T08:00:00.123456Z", &ms), 0);
    assert_int_equal(ms, AT(8, 0) + 123);
    assert_int_equal(report_parse_time("2026-11-01", &ms), 0);
    assert_int_equal(ms, DAY_MS);
    assert_int_equal(report_parse_time("2024-02-29T00:00Z", &ms), 0);
}

static void bad_times_are_refused(void **state)
{
    (void)state;
    int64_t ms;
    const char *bad[] = {"",
                         "2026-11-01T08:00:00",
                         "2026-11-1",
                         "2026-13-01",
                         "2026-02-29",
                         "2026-11-01T24:00Z",
                         "2026-11-01T08:60Z",
                         "2026-11-01T08Z",
                         "2026-11-01T08:00:00Zjunk",
                         "2026-11-01T08:00:00+2",
                         "2026-11-01T08:00:00.Z",
                         "2026-11-01junk",
                         "1969-12-31",
                         "yesterday"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(report_parse_time(bad[i], &ms), -1);
}

static void days_parse_as_utc_midnight(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(report_parse_day("2026-11-01", &ms), 0);
    assert_int_equal(ms, DAY_MS);
    assert_int_equal(report_parse_day("2026-11-01T00:00Z", &ms), -1);
    assert_int_equal(report_parse_day("2026-11-31", &ms), -1);
}

/* ---- GPX text ------------------------------------------------------------ */

static void xml_text_keeps_hostile_text_as_data(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    report_xml_text(f, "<a href='x'>&\"\x02");
    fclose(f);
    assert_string_equal(buf, "&lt;a href=&apos;x&apos;&gt;&amp;&quot;?");
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixture_day_has_three_trips),
        cmocka_unit_test(fixture_day_has_four_stops),
        cmocka_unit_test(trips_and_stops_alternate_sharing_readings),
        cmocka_unit_test(a_shorter_min_stop_turns_the_red_light_into_a_stop),
        cmocka_unit_test(a_zero_min_distance_keeps_the_short_trip),
        cmocka_unit_test(trip_distance_is_the_rollup_distance_minus_dropped_trips),
        cmocka_unit_test(no_readings_or_one_reading_give_nothing),
        cmocka_unit_test(a_truck_standing_all_day_has_one_stop),
        cmocka_unit_test(a_short_stand_with_the_engine_on_is_not_a_stop),
        cmocka_unit_test(a_day_starting_on_the_move_starts_with_a_trip),
        cmocka_unit_test(a_data_gap_ends_a_trip_and_carries_no_distance),
        cmocka_unit_test(durations_parse_with_units),
        cmocka_unit_test(bad_durations_are_refused),
        cmocka_unit_test(iso_times_parse_with_zone_or_as_a_date),
        cmocka_unit_test(bad_times_are_refused),
        cmocka_unit_test(days_parse_as_utc_midnight),
        cmocka_unit_test(xml_text_keeps_hostile_text_as_data),
    };
    return cmocka_run_group_tests_name("trips", tests, NULL, NULL);
}
