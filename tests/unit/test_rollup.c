/* Hourly rollups (src/core/rollup.h): interval classification, hour
 * attribution, gaps, fuel, and that folding in pieces equals folding at once.
 * Expected values are computed by hand: points move along a meridian, where
 * the great-circle distance is exactly R * dlat (radians). */
#include "core/geo.h"
#include "core/rollup.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "near.h"

#define H0 1764288000000LL /* 2025-11-28T00:00:00Z */

static struct rollup_point P(int64_t t_s, double lat, double speed, int ign, double fuel) {
    return (struct rollup_point){.ts_ms = H0 + t_s * 1000,
                                 .seq = t_s,
                                 .lat = lat,
                                 .lon = 11.0,
                                 .speed_kmh = speed,
                                 .ignition = ign,
                                 .fuel_pct = fuel};
}

static void
test_hour_of(void **state)
{
    (void)state;
    assert_int_equal(rollup_hour_of(H0), H0);
    assert_int_equal(rollup_hour_of(H0 + 3599999), H0);
    assert_int_equal(rollup_hour_of(H0 + 3600000), H0 + 3600000);
    assert_int_equal(rollup_hour_of(-1), -3600000);
}

static void test_a_day_of_intervals(void **state)
{
    (void)state;
    struct rollup_point pts[] = {
        P(0, 48.00, 0, 0, 50),         /* first reading: no interval */
        P(60, 48.00, 0, 1, 50),        /* prev engine off, not moving: parked 60 s */
        P(120, 48.01, 50, 1, 50),      /* cur moving: moving 60 s, 0.01 deg */
        P(180, 48.02, 60, 1, 49.5),    /* moving 60 s, 0.01 deg, fuel -0.5 */
        P(180 + 660, 48.30, 0, 1, 49), /* 11 min gap: ignored, fuel -0.5 still counts */
        P(870, 48.30, 0, 1, 60),       /* prev engine on, not moving: idle 30 s; refuel counts nothing */
        P(870, 48.30, 0, 1, 60),       /* same ts: no interval, one more sample */
    };
    struct rollup_hour h;
    rollup_hour_init(&h, H0);
    for (size_t i = 0; i < sizeof(pts) / sizeof(pts[0]); i++)
        rollup_fold(&h, i ? &pts[i - 1] : NULL, &pts[i]);
    assert_int_equal(h.samples, 7);
    assert_near(h.distance_km, 0.02 * KM_PER_DEG, 1e-6);
    assert_near(h.moving_s, 120, 1e-9);
    assert_near(h.parked_s, 60, 1e-9);
    assert_near(h.idle_s, 30, 1e-9);
    assert_near(h.max_speed_kmh, 60, 1e-9);
    assert_near(h.fuel_used_pct, 1.0, 1e-9);
    assert_int_equal(h.last.ts_ms, pts[6].ts_ms);
    /* Average speed as docs/design.md defines it: distance / moving time. */
    assert_near(h.distance_km / h.moving_s * 3600, 0.02 * KM_PER_DEG * 30, 1e-6);
}

static void test_interval_belongs_to_later_hour(void **state)
{
    (void)state;
    struct rollup_point a = P(3570, 48.00, 40, 1, NAN), b = P(3630, 48.01, 40, 1, NAN);
    struct rollup_hour h0, h1;
    rollup_hour_init(&h0, H0);
    rollup_hour_init(&h1, H0 + 3600000);
    rollup_fold(&h0, NULL, &a);
    rollup_fold(&h1, &a, &b);
    assert_int_equal(h0.samples, 1);
    assert_near(h0.moving_s, 0, 0);
    assert_near(h1.moving_s, 60, 1e-9);
    assert_near(h1.distance_km, 0.01 * KM_PER_DEG, 1e-6);
    assert_near(h1.fuel_used_pct, 0, 0); /* no fuel readings: nothing used */
}

static void test_pieces_equal_whole(void **state)
{
    (void)state;
    struct rollup_point pts[50];
    for (int i = 0; i < 50; i++)
        pts[i] = P(i * 30, 48.0 + i * 0.003 * (i % 3 != 0), (i % 3) ? 70 : 0, i % 5 != 0, 80 - i * 0.1);
    struct rollup_hour whole, piece;
    rollup_hour_init(&whole, H0);
    for (int i = 0; i < 50; i++)
        rollup_fold(&whole, i ? &pts[i - 1] : NULL, &pts[i]);
    /* Same fold resumed from a stored last point, as the sink does. */
    rollup_hour_init(&piece, H0);
    for (int i = 0; i < 20; i++)
        rollup_fold(&piece, i ? &pts[i - 1] : NULL, &pts[i]);
    struct rollup_point stored = piece.last;
    struct rollup_hour delta;
    rollup_hour_init(&delta, H0);
    for (int i = 20; i < 50; i++)
        rollup_fold(&delta, i == 20 ? &stored : &pts[i - 1], &pts[i]);
    assert_int_equal(piece.samples + delta.samples, whole.samples);
    assert_near(piece.distance_km + delta.distance_km, whole.distance_km, 1e-9);
    assert_near(piece.moving_s + delta.moving_s, whole.moving_s, 1e-9);
    assert_near(piece.idle_s + delta.idle_s, whole.idle_s, 1e-9);
    assert_near(piece.parked_s + delta.parked_s, whole.parked_s, 1e-9);
    assert_near(piece.fuel_used_pct + delta.fuel_used_pct, whole.fuel_used_pct, 1e-9);
}

/* Held rollups: a truck-hour folded batch by batch, the parts added up in
 * memory, gives the whole. */
static void test_add_parts(void **state)
{
    (void)state;
    struct rollup_point pts[40];
    for (int i = 0; i < 40; i++)
        pts[i] = P(i * 45, 48.0 + i * 0.002 * (i % 4 != 0), (i % 4) ? 65 + i : 0, i % 7 != 0, 90 - i * 0.2);
    struct rollup_hour whole, sum, part;
    rollup_hour_init(&whole, H0);
    for (int i = 0; i < 40; i++)
        rollup_fold(&whole, i ? &pts[i - 1] : NULL, &pts[i]);
    rollup_hour_init(&sum, H0);
    rollup_hour_init(&part, H0);
    rollup_hour_add(&sum, &part); /* an empty part adds nothing */
    assert_int_equal(sum.samples, 0);
    static const int cuts[] = {0, 1, 13, 14, 30, 40};
    for (int c = 0; c + 1 < (int)(sizeof(cuts) / sizeof(cuts[0])); c++) {
        rollup_hour_init(&part, H0);
        for (int i = cuts[c]; i < cuts[c + 1]; i++)
            rollup_fold(&part, i ? &pts[i - 1] : NULL, &pts[i]);
        rollup_hour_add(&sum, &part);
    }
    assert_int_equal(sum.samples, whole.samples);
    assert_near(sum.distance_km, whole.distance_km, 1e-9);
    assert_near(sum.moving_s, whole.moving_s, 1e-9);
    assert_near(sum.idle_s, whole.idle_s, 1e-9);
    assert_near(sum.parked_s, whole.parked_s, 1e-9);
    assert_near(sum.fuel_used_pct, whole.fuel_used_pct, 1e-9);
    assert_true(sum.max_speed_kmh == whole.max_speed_kmh);
    assert_int_equal(sum.last.ts_ms, pts[39].ts_ms);
    assert_int_equal(rollup_cmp(&sum.last, &whole.last), 0);
}

static void test_cmp(void **state)
{
    (void)state;
    struct rollup_point a = P(10, 0, 0, 0, 0), b = P(10, 0, 0, 0, 0), c = P(11, 0, 0, 0, 0);
    b.seq = 11;
    assert_true(rollup_cmp(&a, &b) < 0);
    assert_true(rollup_cmp(&b, &c) < 0);
    assert_true(rollup_cmp(&c, &a) > 0);
    assert_int_equal(rollup_cmp(&a, &a), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hour_of),
        cmocka_unit_test(test_a_day_of_intervals),
        cmocka_unit_test(test_interval_belongs_to_later_hour),
        cmocka_unit_test(test_pieces_equal_whole),
        cmocka_unit_test(test_add_parts),
        cmocka_unit_test(test_cmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
