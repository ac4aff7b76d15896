/* The simulator's motion model: invariants of normal traffic over whole days. */
#include "core/geo.h"

#include "core/clock.h"
#include "sim/fleet.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define START_MS 1764201600000LL /* 2025-11-27T00:00:00Z */
#define TRUCKS 40

static struct fleet *make(uint32_t n, uint64_t seed)
{
    struct fleet_options o = {.trucks = n, .seed = seed, .start_ms = START_MS};
    struct fleet *f = fleet_new(&o, NULL, 0);
    assert_non_null(f);
    return f;
}

static double angle_diff(double a, double b)
{
    double d = fabs(fmod(a - b + 540.0, 360.0) - 180.0);
    return d;
}

static void state_per_truck_is_compact(void **state)
{
    (void)state;
    assert_true(fleet_bytes_per_truck() <= 96);
    assert_true(fleet_hub_count() >= 20);
}

/* Samples every truck every step_s for days; checks each invariant. */
static void odometer_equals_driven_distance(void **state)
{
    (void)state;
    struct fleet *f = make(TRUCKS, 7);
    for (uint32_t i = 0; i < TRUCKS; i++) {
        struct fleet_truth a, b;
        fleet_truth(f, i, START_MS, &a);
        double odo0 = a.odometer_km, dist = 0;
        for (int64_t t = START_MS + 2000; t <= START_MS + 2 * FS_DAY_MS; t += 2000) {
            fleet_truth(f, i, t, &b);
            dist += geo_haversine_m(a.lat, a.lon, b.lat, b.lon);
            a = b;
        }
        double odo = (a.odometer_km - odo0) * 1000.0;
        assert_true(odo > 100000.0); /* every truck drives over two days */
        assert_true(fabs(odo - dist) <= 0.001 * odo);
    }
    fleet_free(f);
}

static void speed_never_above_limits(void **state)
{
    (void)state;
    struct fleet *f = make(TRUCKS, 8);
    double max = 0;
    for (uint32_t i = 0; i < TRUCKS; i++)
        for (int64_t t = START_MS; t <= START_MS + 2 * FS_DAY_MS; t += 5000) {
            struct fleet_truth tr;
            fleet_truth(f, i, t, &tr);
            assert_true(tr.speed_kmh >= 0);
            assert_true(tr.speed_kmh <= FLEET_NORMAL_MAX_KMH);
            if (!tr.ignition)
                assert_true(tr.speed_kmh == 0);
            if (tr.speed_kmh > max)
                max = tr.speed_kmh;
        }
    assert_true(max > 80); /* motorway cruise is reached */
    fleet_free(f);
}

static void heading_matches_movement(void **state)
{
    (void)state;
    struct fleet *f = make(TRUCKS, 9);
    int checked = 0;
    for (uint32_t i = 0; i < TRUCKS; i++) {
        struct fleet_truth a, b;
        fleet_truth(f, i, START_MS, &a);
        for (int64_t t = START_MS + 5000; t <= START_MS + FS_DAY_MS; t += 5000) {
            fleet_truth(f, i, t, &b);
            if (geo_haversine_m(a.lat, a.lon, b.lat, b.lon) > 30) {
                double moved = geo_bearing_deg(a.lat, a.lon, b.lat, b.lon);
                assert_true(angle_diff(moved, b.heading_deg) < 30);
                checked++;
            }
            assert_true(b.heading_deg >= 0 && b.heading_deg < 360);
            a = b;
        }
    }
    assert_true(checked > 1000);
    fleet_free(f);
}

static void fuel_rises_only_while_refuelling(void **state)
{
    (void)state;
    struct fleet *f = make(TRUCKS, 10);
    int refuels = 0;
    for (uint32_t i = 0; i < TRUCKS; i++) {
        struct fleet_truth a, b;
        fleet_truth(f, i, START_MS, &a);
        for (int64_t t = START_MS + 10000; t <= START_MS + 3 * FS_DAY_MS; t += 10000) {
            fleet_truth(f, i, t, &b);
            if (b.fuel_pct > a.fuel_pct + 1e-9) {
                /* a refuel spans a or b (it may end between them) */
                assert_true(strcmp(a.phase, "refuel") == 0 || strcmp(b.phase, "refuel") == 0);
                refuels++;
            }
            assert_true(b.fuel_pct >= 0 && b.fuel_pct <= 100);
            a = b;
        }
    }
    assert_true(refuels > 0);
    fleet_free(f);
}

/* Engine-on time between engine-off stretches of at least 45 min never
 * exceeds 4.5 h; no normal stop with the engine on lasts 20 min. */
static void rest_rule_and_no_theft_pattern(void **state)
{
    (void)state;
    struct fleet *f = make(TRUCKS, 11);
    const int step = 10;
    int rests = 0;
    for (uint32_t i = 0; i < TRUCKS; i++) {
        double driving = 0, off = 0, still_on = 0, max_still_on = 0;
        double alat = 0, alon = 0;
        for (int64_t t = START_MS; t <= START_MS + 2 * FS_DAY_MS; t += step * 1000) {
            struct fleet_truth tr;
            fleet_truth(f, i, t, &tr);
            if (tr.ignition) {
                if (off >= 45 * 60)
                    driving = 0;
                off = 0;
                driving += step;
                assert_true(driving <= FLEET_MAX_DRIVE_S + step);
                if (still_on > 0 && geo_haversine_m(alat, alon, tr.lat, tr.lon) <= 50) {
                    still_on += step;
                } else {
                    still_on = step;
                    alat = tr.lat;
                    alon = tr.lon;
                }
                if (still_on > max_still_on)
                    max_still_on = still_on;
            } else {
                off += step;
                still_on = 0;
                if (strcmp(tr.phase, "rest") == 0 && off == step)
                    rests++;
            }
        }
        assert_true(max_still_on < 20 * 60);
    }
    assert_true(rests > 0);
    fleet_free(f);
}

static void parked_fix_jitters_by_metres(void **state)
{
    (void)state;
    struct fleet *f = make(TRUCKS, 12);
    int parked = 0;
    for (uint32_t i = 0; i < TRUCKS; i++) {
        struct fleet_truth tr;
        struct fleet_sample s;
        int64_t t = START_MS + 3600000;
        fleet_truth(f, i, t, &tr);
        if (tr.speed_kmh > 0)
            continue;
        fleet_sample(f, i, t, &s);
        double d = geo_haversine_m(tr.lat, tr.lon, s.lat, s.lon);
        assert_true(d < 10);
        struct fleet_sample s2;
        fleet_sample(f, i, t + 1000, &s2);
        fleet_truth(f, i, t + 1000, &tr);
        if (tr.speed_kmh == 0) {
            assert_true(s2.lat != s.lat || s2.lon != s.lon);
            parked++;
        }
    }
    assert_true(parked > 0);
    fleet_free(f);
}

static void same_seed_same_readings(void **state)
{
    (void)state;
    struct fleet *a = make(100, 5), *b = make(100, 5), *c = make(100, 6);
    int differ = 0;
    for (int64_t t = START_MS; t < START_MS + 6 * 3600000LL; t += 60000)
        for (uint32_t i = 0; i < 100; i++) {
            struct fleet_sample x, y, z;
            memset(&x, 0, sizeof(x));
            memset(&y, 0, sizeof(y));
            memset(&z, 0, sizeof(z));
            fleet_sample(a, i, t, &x);
            fleet_sample(b, i, t, &y);
            fleet_sample(c, i, t, &z);
            assert_memory_equal(&x, &y, sizeof(x));
            if (x.lat != z.lat)
                differ = 1;
        }
    assert_true(differ);
    fleet_free(a);
    fleet_free(b);
    fleet_free(c);
}

static void seq_counts_readings(void **state)
{
    (void)state;
    struct fleet *f = make(2, 5);
    struct fleet_sample s;
    for (uint32_t k = 0; k < 5; k++) {
        fleet_sample(f, 1, START_MS + k * 1000, &s);
        assert_int_equal(s.seq, k);
    }
    fleet_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(state_per_truck_is_compact),
        cmocka_unit_test(odometer_equals_driven_distance),
        cmocka_unit_test(speed_never_above_limits),
        cmocka_unit_test(heading_matches_movement),
        cmocka_unit_test(fuel_rises_only_while_refuelling),
        cmocka_unit_test(rest_rule_and_no_theft_pattern),
        cmocka_unit_test(parked_fix_jitters_by_metres),
        cmocka_unit_test(same_seed_same_readings),
        cmocka_unit_test(seq_counts_readings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
