/* Billing's per-truck-day fold (src/billing/fold.h): distance, engine, idle
 * and max speed on hand-computed sequences, gaps, the midnight split, GPS
 * jumps (out and back adds nothing; a confirmed relocation), repeats, late
 * readings and a replay's floor.  Points move along the meridian 11 E, where
 * the great-circle distance is exactly R * dlat (radians). */
#include "core/bcache.h"
#include "billing/fold.h"

#include "core/clock.h"
#include "core/geo.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "near.h"

#define D0 1764288000000LL /* 2025-11-28T00:00:00Z */

/* A reading t_s seconds after D0 + 8 h. */
static struct bill_point P(int64_t t_s, double lat, double speed, int ign) {
    return (struct bill_point){.ts_ms = D0 + 8 * 3600000LL + t_s * 1000,
                               .seq = t_s,
                               .lat = lat,
                               .lon = 11.0,
                               .speed_kmh = speed,
                               .ignition = ign};
}

/* Day totals, as billing_daily would add them up. */
struct days {
    struct bill_delta d[4];
    int n;
    int jumps;
};

static struct bill_delta *day(struct days *ds, int64_t day_ms)
{
    for (int i = 0; i < ds->n; i++)
        if (ds->d[i].day_ms == day_ms)
            return &ds->d[i];
    assert_true(ds->n < 4);
    memset(&ds->d[ds->n], 0, sizeof(ds->d[0]));
    ds->d[ds->n].day_ms = day_ms;
    return &ds->d[ds->n++];
}

static enum bill_result fold(struct bill_state *s, struct days *ds, struct bill_point p)
{
    struct bill_out o;
    enum bill_result r = bill_fold(s, &p, &o);
    if (r != BILL_FOLDED)
        assert_int_equal(o.n, 0);
    for (int i = 0; i < o.n; i++) {
        struct bill_delta *d = day(ds, o.d[i].day_ms);
        d->distance_km += o.d[i].distance_km;
        d->engine_s += o.d[i].engine_s;
        d->idle_s += o.d[i].idle_s;
        if (o.d[i].max_speed_kmh > d->max_speed_kmh)
            d->max_speed_kmh = o.d[i].max_speed_kmh;
    }
    ds->jumps += o.jump;
    return r;
}

static void test_day_of(void **state)
{
    (void)state;
    assert_int_equal(fs_day_start_ms(D0), D0);
    assert_int_equal(fs_day_start_ms(D0 + FS_DAY_MS - 1), D0);
    assert_int_equal(fs_day_start_ms(D0 + FS_DAY_MS), D0 + FS_DAY_MS);
    assert_int_equal(fs_day_start_ms(-1), -FS_DAY_MS);
}

/* idle 60 s, two moving minutes of 0.01 degrees each, a stop with the engine
 * turned off (moving: the earlier reading is fast; engine: it is on), then
 * parked. */
static void test_distance_engine_idle_max(void **state)
{
    (void)state;
    struct bill_state s;
    struct days ds = {0};
    bill_state_init(&s);
    assert_int_equal(fold(&s, &ds, P(0, 48.00, 0, 1)), BILL_FOLDED);
    assert_int_equal(fold(&s, &ds, P(60, 48.00, 0, 1)), BILL_FOLDED);
    assert_int_equal(fold(&s, &ds, P(120, 48.01, 60, 1)), BILL_FOLDED);
    assert_int_equal(fold(&s, &ds, P(180, 48.02, 72.5, 1)), BILL_FOLDED);
    assert_int_equal(fold(&s, &ds, P(240, 48.02, 0, 0)), BILL_FOLDED);
    assert_int_equal(fold(&s, &ds, P(300, 48.02, 0, 0)), BILL_FOLDED);
    assert_int_equal(ds.n, 1);
    assert_int_equal(ds.d[0].day_ms, D0);
    assert_near(ds.d[0].distance_km, 0.02 * KM_PER_DEG, 1e-9);
    assert_near(ds.d[0].engine_s, 240, 1e-9);
    assert_near(ds.d[0].idle_s, 60, 1e-9);
    assert_near(ds.d[0].max_speed_kmh, 72.5, 0);
    assert_int_equal(ds.jumps, 0);
}

/* An interval longer than 10 minutes counts no time and no distance; the
 * next one is measured from the reading after the gap. */
static void test_gap_over_10_minutes_ignored(void **state)
{
    (void)state;
    struct bill_state s;
    struct days ds = {0};
    bill_state_init(&s);
    fold(&s, &ds, P(0, 48.00, 60, 1));
    fold(&s, &ds, P(601, 48.10, 60, 1)); /* 601 s later: ignored */
    fold(&s, &ds, P(661, 48.11, 60, 1));
    assert_near(ds.d[0].distance_km, 0.01 * KM_PER_DEG, 1e-9);
    assert_near(ds.d[0].engine_s, 60, 1e-9);
    /* exactly 10 minutes still counts */
    bill_state_init(&s);
    memset(&ds, 0, sizeof(ds));
    fold(&s, &ds, P(0, 48.00, 0, 1));
    fold(&s, &ds, P(600, 48.00, 0, 1));
    assert_near(ds.d[0].idle_s, 600, 1e-9);
}

/* 23:59:30 -> 00:00:30: each day gets half of the time and the distance;
 * the max speed of a day comes from its own readings only. */
static void test_midnight_split(void **state)
{
    (void)state;
    struct bill_state s;
    struct days ds = {0};
    bill_state_init(&s);
    struct bill_point a = {D0 + FS_DAY_MS - 90000, 1, 48.00, 11.0, 40, 1};
    struct bill_point b = {D0 + FS_DAY_MS - 30000, 2, 48.01, 11.0, 50, 1};
    struct bill_point c = {D0 + FS_DAY_MS + 30000, 3, 48.02, 11.0, 70, 1};
    fold(&s, &ds, a);
    fold(&s, &ds, b);
    fold(&s, &ds, c);
    assert_int_equal(ds.n, 2);
    struct bill_delta *d1 = day(&ds, D0), *d2 = day(&ds, D0 + FS_DAY_MS);
    assert_near(d1->distance_km, 0.015 * KM_PER_DEG, 1e-9);
    assert_near(d2->distance_km, 0.005 * KM_PER_DEG, 1e-9);
    assert_near(d1->engine_s, 90, 1e-9);
    assert_near(d2->engine_s, 30, 1e-9);
    assert_near(d1->max_speed_kmh, 50, 0);
    assert_near(d2->max_speed_kmh, 70, 0);
}

/* A fix 400 km away for one reading: no distance for the jump, and the way
 * back is measured from the last good position, so it adds nothing either. */
static void test_gps_jump_out_and_back(void **state)
{
    (void)state;
    struct bill_state s;
    struct days ds = {0};
    bill_state_init(&s);
    fold(&s, &ds, P(0, 48.00, 60, 1));
    fold(&s, &ds, P(60, 48.01, 60, 1));
    fold(&s, &ds, P(120, 51.60, 60, 1)); /* 400 km in a minute */
    fold(&s, &ds, P(180, 48.02, 60, 1));
    fold(&s, &ds, P(240, 48.03, 60, 1));
    assert_int_equal(ds.jumps, 1);
    assert_near(ds.d[0].distance_km, 0.03 * KM_PER_DEG, 1e-9);
    assert_near(ds.d[0].engine_s, 240, 1e-9); /* time still counts */
}

/* Just under the limit counts; just over is a jump. */
static void test_jump_threshold(void **state)
{
    (void)state;
    struct bill_state s;
    struct days ds = {0};
    double deg_249 = 249.0 / 60.0 / KM_PER_DEG; /* 249 km/h for a minute */
    bill_state_init(&s);
    fold(&s, &ds, P(0, 48.0, 100, 1));
    fold(&s, &ds, P(60, 48.0 + deg_249, 100, 1));
    assert_int_equal(ds.jumps, 0);
    assert_near(ds.d[0].distance_km, 249.0 / 60.0, 1e-6);
    bill_state_init(&s);
    memset(&ds, 0, sizeof(ds));
    fold(&s, &ds, P(0, 48.0, 100, 1));
    fold(&s, &ds, P(60, 48.0 + 251.0 / 60.0 / KM_PER_DEG, 100, 1));
    assert_int_equal(ds.jumps, 1);
    assert_near(ds.d[0].distance_km, 0, 0);
}

/* Two readings that agree with each other but not with the old position: a
 * real relocation (the receiver was wrong before); driving from there on
 * counts. */
static void test_relocation_confirmed(void **state)
{
    (void)state;
    struct bill_state s;
    struct days ds = {0};
    bill_state_init(&s);
    fold(&s, &ds, P(0, 48.00, 60, 1));
    fold(&s, &ds, P(60, 52.00, 60, 1));  /* jump */
    fold(&s, &ds, P(120, 52.01, 60, 1)); /* agrees with the jump: relocation */
    fold(&s, &ds, P(180, 52.02, 60, 1));
    assert_int_equal(ds.jumps, 1);
    assert_near(ds.d[0].distance_km, 0.02 * KM_PER_DEG, 1e-9);
}

/* A repeat (same ts and seq) and a late reading are skipped, change nothing. */
static void test_duplicate_and_late(void **state)
{
    (void)state;
    struct bill_state s;
    struct days ds = {0};
    bill_state_init(&s);
    fold(&s, &ds, P(0, 48.00, 60, 1));
    fold(&s, &ds, P(60, 48.01, 60, 1));
    struct bill_state before = s;
    assert_int_equal(fold(&s, &ds, P(60, 48.01, 60, 1)), BILL_DUPLICATE);
    assert_int_equal(fold(&s, &ds, P(30, 48.005, 99, 1)), BILL_LATE);
    assert_memory_equal(&before, &s, sizeof(s));
    struct bill_point same_ts = P(60, 48.01, 60, 1);
    same_ts.seq = 61; /* same ts, later seq: a new reading */
    assert_int_equal(fold(&s, &ds, same_ts), BILL_FOLDED);
    fold(&s, &ds, P(120, 48.02, 60, 1));
    assert_near(ds.d[0].distance_km, 0.02 * KM_PER_DEG, 1e-9);
    assert_near(ds.d[0].engine_s, 120, 1e-9);
    assert_near(ds.d[0].max_speed_kmh, 60, 0);
}

/* After a replay recomputes days from floor on, readings before it are
 * skipped and an interval crossing into it adds only its part after it. */
static void test_floor(void **state)
{
    (void)state;
    struct bill_state s;
    struct days ds = {0};
    int64_t floor = D0 + FS_DAY_MS;
    bill_state_init(&s);
    s.has_last = 1;
    s.last_ts_ms = floor - 60000;
    s.last_seq = 1;
    s.last_lat = 48.00;
    s.last_lon = 11.0;
    s.last_speed_kmh = 60;
    s.last_ignition = 1;
    s.has_good = 1;
    s.good_ts_ms = s.last_ts_ms;
    s.good_lat = 48.00;
    s.good_lon = 11.0;
    s.last_good = 1;
    bill_set_floor_ms(&s, floor);
    assert_true(bill_floor_ms(&s) == floor);
    struct bill_point early = {floor - 30000, 2, 48.005, 11.0, 60, 1};
    assert_int_equal(fold(&s, &ds, early), BILL_BEFORE_FLOOR);
    struct bill_point after = {floor + 60000, 3, 48.02, 11.0, 60, 1};
    assert_int_equal(fold(&s, &ds, after), BILL_FOLDED);
    assert_int_equal(ds.n, 1);
    assert_int_equal(ds.d[0].day_ms, floor);
    assert_near(ds.d[0].distance_km, 0.01 * KM_PER_DEG, 1e-9);
    assert_near(ds.d[0].engine_s, 60, 1e-9);
}

/* Billing caches one state per truck of the fleet: it stays compact (also
 * a _Static_assert in fold.h), and a state copied field by field, as
 * billing_trucks stores and reloads it between flushes, folds the next
 * reading exactly as the state kept in memory does. */
static void test_state_compact_and_reloaded(void **unused)
{
    (void)unused;
    assert_true(sizeof(struct bill_state) <= 72);
    struct bill_state kept, reloaded;
    struct bill_out o1, o2;
    bill_state_init(&kept);
    struct bill_point a = P(0, 48.0, 60, 1), b = P(60, 48.01, 60, 1), c = P(120, 48.02, 0, 1);
    assert_int_equal(bill_fold(&kept, &a, &o1), BILL_FOLDED);
    assert_int_equal(bill_fold(&kept, &b, &o1), BILL_FOLDED);
    bill_state_init(&reloaded);
    reloaded.has_last = kept.has_last;
    struct bill_point last = bill_last(&kept);
    reloaded.last_ts_ms = last.ts_ms;
    reloaded.last_seq = last.seq;
    reloaded.last_lat = last.lat;
    reloaded.last_lon = last.lon;
    reloaded.last_speed_kmh = last.speed_kmh;
    reloaded.last_ignition = (uint8_t)last.ignition;
    reloaded.has_good = kept.has_good;
    reloaded.good_ts_ms = kept.good_ts_ms;
    reloaded.good_lat = kept.good_lat;
    reloaded.good_lon = kept.good_lon;
    reloaded.last_good = kept.last_good;
    bill_set_floor_ms(&reloaded, bill_floor_ms(&kept));
    assert_int_equal(bill_fold(&kept, &c, &o1), BILL_FOLDED);
    assert_int_equal(bill_fold(&reloaded, &c, &o2), BILL_FOLDED);
    assert_int_equal(o1.n, o2.n);
    assert_true(o1.d[0].distance_km == o2.d[0].distance_km && o1.d[0].engine_s == o2.d[0].engine_s &&
                o1.d[0].idle_s == o2.d[0].idle_s && o1.d[0].max_speed_kmh == o2.d[0].max_speed_kmh);
    assert_near(o1.d[0].distance_km, 0.01 * KM_PER_DEG, 1e-9);
}

/* The cache keeps a record per id at a fixed address and number while it
 * grows (index, record blocks, id chunks), finds every id again, and
 * tells ids apart that share a prefix or a hash slot. */
static void test_cache_many_trucks_stay_put(void **unused)
{
    (void)unused;
    struct bcache c;
    struct rec {
        uint32_t id;
        uint32_t n;
    };
    enum { N = 50000 };
    static struct rec *first[N];
    char id[64]; /* the longest id below is 40 characters */
    int added;
    bcache_init(&c, sizeof(struct rec));
    for (uint32_t i = 0; i < N; i++) {
        int n = snprintf(id, sizeof(id), "TRK-%06u%s", i, i % 7 ? "" : "-with-a-longer-suffix-of-bytes");
        uint32_t no = bcache_get(&c, id, (size_t)n, &added);
        assert_int_equal(no, i);
        assert_int_equal(added, 1);
        first[i] = bcache_rec(&c, no);
        assert_int_equal(first[i]->n, 0); /* zeroed */
        first[i]->n = i + 1;
    }
    assert_int_equal(c.count, N);
    for (uint32_t i = 0; i < N; i++) {
        int n = snprintf(id, sizeof(id), "TRK-%06u%s", i, i % 7 ? "" : "-with-a-longer-suffix-of-bytes");
        uint32_t no = bcache_get(&c, id, (size_t)n, &added);
        assert_int_equal(no, i);
        assert_int_equal(added, 0);
        assert_ptr_equal(bcache_rec(&c, no), first[i]);
        assert_int_equal(first[i]->n, i + 1);
        size_t len;
        const char *kept = bcache_id(&c, first[i], &len);
        assert_int_equal(len, (size_t)n);
        assert_memory_equal(kept, id, len);
    }
    assert_int_equal(bcache_get(&c, "TRK-00000", 9, &added), N); /* a prefix of others is its own truck */
    assert_int_equal(bcache_get(&c, "", 0, &added), BCACHE_NONE);
    /* records, index and ids: about 8 + 8-16 + 12-39 bytes a truck here */
    assert_true(bcache_bytes(&c) < (size_t)N * 80 + (2u << 20));
    bcache_release(&c);
    assert_int_equal(c.count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_day_of),
        cmocka_unit_test(test_distance_engine_idle_max),
        cmocka_unit_test(test_gap_over_10_minutes_ignored),
        cmocka_unit_test(test_midnight_split),
        cmocka_unit_test(test_gps_jump_out_and_back),
        cmocka_unit_test(test_jump_threshold),
        cmocka_unit_test(test_relocation_confirmed),
        cmocka_unit_test(test_duplicate_and_late),
        cmocka_unit_test(test_floor),
        cmocka_unit_test(test_state_compact_and_reloaded),
        cmocka_unit_test(test_cache_many_trucks_stay_put),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
