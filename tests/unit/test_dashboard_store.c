/* The dashboard's truck store: ordering in event time, derived state,
 * viewport queries, clusters and the memory bound. */
#include "core/tmscan.h"
#include "dashboard/store.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#define NOW 1764201600000LL

static struct ds_reading reading(int64_t ts, double lat, double lon, double speed, int ignition)
{
    return (struct ds_reading){.ts_ms = ts,
                               .seq = ts / 1000,
                               .lat = lat,
                               .lon = lon,
                               .speed_kmh = speed,
                               .ignition = ignition,
                               .has_heading = 1,
                               .heading_deg = 90};
}

static enum ds_apply put(struct ds_store *s, const char *id, struct ds_reading r)
{
    return ds_store_reading(s, id, strlen(id), &r);
}

static const struct ds_truck *get(struct ds_store *s, const char *id)
{
    int64_t i = ds_store_find(s, id, strlen(id));
    return i < 0 ? NULL : &s->trucks[i];
}

static void a_scanned_reading_keeps_its_fields_and_which_are_present(void **state)
{
    (void)state;
    struct tm_fast f;
    struct ds_reading r;
    const char *full = "{\"v\":1,\"truck_id\":\"TRK-000042\",\"ts\":1764201600123,\"seq\":1234,\"lat\":48.137154,"
                       "\"lon\":11.576124,\"speed_kmh\":72.5,\"ignition\":true,\"heading_deg\":184,\"fuel_pct\":63.2,"
                       "\"odometer_km\":123456.7}";
    assert_int_equal(tm_scan(full, strlen(full), 1764288000000LL, 0, &f), 1);
    ds_reading_from_scan(&f, &r);
    assert_true(r.ts_ms == 1764201600123LL && r.seq == 1234);
    assert_true(r.lat == 48.137154 && r.lon == 11.576124 && r.speed_kmh == 72.5 && r.ignition);
    assert_true(r.has_heading && r.heading_deg == 184);
    assert_true(r.has_fuel && r.fuel_pct == 63.2);
    assert_true(r.has_odometer && r.odometer_km == 123456.7);
    const char *bare = "{\"v\":1,\"truck_id\":\"TRK-000042\",\"ts\":1764201600123,\"seq\":7,\"lat\":1.5,"
                       "\"lon\":2.5,\"speed_kmh\":0,\"ignition\":false}";
    assert_int_equal(tm_scan(bare, strlen(bare), 1764288000000LL, 0, &f), 1);
    ds_reading_from_scan(&f, &r);
    assert_true(r.seq == 7 && r.lat == 1.5 && r.lon == 2.5 && !r.ignition);
    assert_false(r.has_heading || r.has_fuel || r.has_odometer);
}

static void late_reading_never_moves_a_truck_back(void **state)
{
    (void)state;
    struct ds_store s;
    assert_int_equal(ds_store_init(&s, 100), 0);
    assert_int_equal(put(&s, "T1", reading(NOW, 48.1, 11.5, 50, 1)), DS_APPLIED);
    assert_int_equal(put(&s, "T1", reading(NOW - 5000, 40.0, 0.0, 10, 1)), DS_STALE);
    assert_int_equal(put(&s, "T1", reading(NOW, 48.1, 11.5, 50, 1)), DS_STALE); /* a repeat */
    const struct ds_truck *t = get(&s, "T1");
    assert_true(ds_truck_lat(t) == 48.1);
    assert_int_equal(t->ts_ms, NOW);
    assert_int_equal(put(&s, "T1", reading(NOW + 1000, 48.2, 11.6, 50, 1)), DS_APPLIED);
    assert_true(ds_truck_lat(get(&s, "T1")) == 48.2);
    assert_int_equal(s.stale, 2);
    ds_store_release(&s);
}

static void derived_state_follows_speed_ignition_and_silence(void **state)
{
    (void)state;
    struct ds_store s;
    assert_int_equal(ds_store_init(&s, 100), 0);
    put(&s, "M", reading(NOW, 1, 1, 72, 1));
    put(&s, "I", reading(NOW, 1, 1, 3, 1));
    put(&s, "P", reading(NOW, 1, 1, 0, 0));
    put(&s, "O", reading(NOW - DS_OFFLINE_AFTER_MS, 1, 1, 72, 1));
    assert_int_equal(ds_truck_state(get(&s, "M"), NOW), DS_MOVING);
    assert_int_equal(ds_truck_state(get(&s, "I"), NOW), DS_IDLE);
    assert_int_equal(ds_truck_state(get(&s, "P"), NOW), DS_PARKED);
    assert_int_equal(ds_truck_state(get(&s, "O"), NOW), DS_OFFLINE);
    assert_int_equal(ds_truck_state(get(&s, "M"), NOW + DS_OFFLINE_AFTER_MS), DS_OFFLINE);
    uint32_t counts[DS_STATE_COUNT];
    assert_int_equal(ds_store_fleet(&s, NOW, counts), 4);
    assert_int_equal(counts[DS_MOVING], 1);
    assert_int_equal(counts[DS_IDLE], 1);
    assert_int_equal(counts[DS_PARKED], 1);
    assert_int_equal(counts[DS_OFFLINE], 1);
    assert_string_equal(ds_state_name(DS_IDLE), "idle");
    ds_store_release(&s);
}

static void presence_offline_holds_until_a_newer_reading(void **state)
{
    (void)state;
    struct ds_store s;
    assert_int_equal(ds_store_init(&s, 100), 0);
    put(&s, "T", reading(NOW, 1, 1, 72, 1));
    assert_int_equal(ds_store_status(&s, "T", 1, 1, NOW + 10), DS_APPLIED);
    assert_int_equal(ds_truck_state(get(&s, "T"), NOW + 20), DS_OFFLINE);
    assert_int_equal(ds_store_status(&s, "T", 1, 0, NOW + 5), DS_STALE); /* older presence */
    put(&s, "T", reading(NOW + 1000, 1, 1, 72, 1));
    assert_int_equal(ds_truck_state(get(&s, "T"), NOW + 1000), DS_MOVING);
    /* Presence alone gives no position: not on the map, not counted. */
    assert_int_equal(ds_store_status(&s, "U", 1, 0, NOW), DS_APPLIED);
    uint32_t counts[DS_STATE_COUNT];
    assert_int_equal(ds_store_fleet(&s, NOW + 1000, counts), 1);
    ds_store_release(&s);
}

static void bad_ids_and_coordinates_are_refused(void **state)
{
    (void)state;
    struct ds_store s;
    char long_id[DS_ID_MAX + 2];
    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_int_equal(ds_store_init(&s, 100), 0);
    assert_int_equal(put(&s, "", reading(NOW, 1, 1, 0, 0)), DS_BAD);
    assert_int_equal(put(&s, long_id, reading(NOW, 1, 1, 0, 0)), DS_BAD);
    assert_int_equal(put(&s, "T", reading(NOW, 91, 1, 0, 0)), DS_BAD);
    assert_int_equal(put(&s, "T", reading(NOW, 0, 0.0 / 0.0, 0, 0)), DS_BAD);
    assert_int_equal(s.count, 0);
    ds_store_release(&s);
}

static void store_refuses_trucks_past_its_bound(void **state)
{
    (void)state;
    struct ds_store s;
    char id[16];
    assert_int_equal(ds_store_init(&s, 3000), 0);
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof(id), "T%d", i);
        assert_int_equal(put(&s, id, reading(NOW, (i % 170) - 85, (i % 350) - 175, 0, 0)), DS_APPLIED);
    }
    assert_int_equal(put(&s, "one-more", reading(NOW, 1, 1, 0, 0)), DS_FULL);
    assert_int_equal(put(&s, "T2999", reading(NOW + 1, 1, 1, 0, 0)), DS_APPLIED); /* known trucks still update */
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof(id), "T%d", i);
        assert_non_null(get(&s, id));
    }
    assert_true(sizeof(struct ds_truck) <= 64);
    ds_store_release(&s);
}

static void query_returns_exactly_the_trucks_in_the_box(void **state)
{
    (void)state;
    struct ds_store s;
    assert_int_equal(ds_store_init(&s, 100), 0);
    put(&s, "munich", reading(NOW, 48.137, 11.576, 0, 0));
    put(&s, "berlin", reading(NOW, 52.52, 13.405, 0, 0));
    put(&s, "nyc", reading(NOW, 40.71, -74.0, 0, 0));
    put(&s, "edge", reading(NOW, 50.0, 10.0, 0, 0));
    struct ds_bbox b = {10.0, 47.0, 14.0, 53.0};
    uint32_t out[8];
    assert_int_equal(ds_store_query(&s, &b, out, 8), 4 - 1);
    struct ds_bbox world = {-180, -90, 180, 90};
    assert_int_equal(ds_store_query(&s, &world, out, 2), 4); /* total beyond max */
    /* A truck that moves leaves its old cell. */
    put(&s, "munich", reading(NOW + 1, 40.7, -74.1, 0, 0));
    assert_int_equal(ds_store_query(&s, &b, out, 8), 2);
    struct ds_bbox us = {-80, 35, -70, 45};
    assert_int_equal(ds_store_query(&s, &us, out, 8), 2);
    assert_true(ds_store_count_approx(&s, &us) >= 2);
    ds_store_release(&s);
}

static void bbox_is_clamped_and_checked(void **state)
{
    (void)state;
    struct ds_bbox b = {-200, -95, 200, 95};
    assert_int_equal(ds_bbox_clamp(&b), 0);
    assert_true(b.min_lon == -180 && b.max_lon == 180 && b.min_lat == -90 && b.max_lat == 90);
    struct ds_bbox inverted = {10, 0, 5, 1};
    assert_int_equal(ds_bbox_clamp(&inverted), -1);
    struct ds_bbox nan = {0.0 / 0.0, 0, 5, 1};
    assert_int_equal(ds_bbox_clamp(&nan), -1);
}

static void clusters_count_every_truck_once(void **state)
{
    (void)state;
    struct ds_store s;
    char id[16];
    assert_int_equal(ds_store_init(&s, 20000), 0);
    for (int i = 0; i < 10000; i++) {
        snprintf(id, sizeof(id), "T%d", i);
        put(&s, id, reading(NOW, 45 + (i % 100) * 0.1, 5 + (i / 100) * 0.1, 0, 0));
    }
    struct ds_bbox world = {-180, -90, 180, 90};
    static struct ds_cluster out[2000];
    for (int zoom = 0; zoom <= 12; zoom += 3) {
        double deg = ds_cluster_cell_deg(&world, zoom, 2000);
        size_t n = ds_store_clusters(&s, &world, deg, out, 2000);
        assert_true(n >= 1 && n <= 2000);
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++) {
            sum += out[i].count;
            assert_true(out[i].lat >= 45 && out[i].lat <= 55 && out[i].lon >= 5 && out[i].lon <= 15);
        }
        assert_int_equal(sum, 10000);
    }
    /* Higher zoom, smaller cells. */
    struct ds_bbox europe = {0, 40, 20, 60};
    assert_true(ds_cluster_cell_deg(&europe, 8, 2000) < ds_cluster_cell_deg(&europe, 3, 2000));
    ds_store_release(&s);
}

/* Trucks driving within their fine cells and across them: every query,
 * count and cluster centroid is the one of the trucks' latest positions. */
static void moves_within_and_across_cells_keep_the_grid_exact(void **state)
{
    (void)state;
    struct ds_store s;
    assert_int_equal(ds_store_init(&s, 100), 0);
    /* A and B share the fine cell [48.0, 48.25) x [11.0, 11.25). */
    assert_int_equal(put(&s, "A", reading(NOW, 48.1, 11.1, 50, 1)), DS_APPLIED);
    assert_int_equal(put(&s, "B", reading(NOW, 48.2, 11.2, 50, 1)), DS_APPLIED);
    assert_int_equal(put(&s, "A", reading(NOW + 1000, 48.11, 11.12, 50, 1)), DS_APPLIED); /* same cell */
    assert_int_equal(put(&s, "B", reading(NOW + 1000, 48.3, 11.2, 50, 1)), DS_APPLIED);   /* next cell north */
    assert_int_equal(put(&s, "A", reading(NOW + 2000, 48.12, 11.13, 50, 1)), DS_APPLIED); /* alone in it now */
    uint32_t out[4];
    struct ds_bbox cell_a = {11.0, 48.0, 11.2499, 48.2499}, cell_b = {11.0, 48.25, 11.2499, 48.4999};
    assert_int_equal(ds_store_query(&s, &cell_a, out, 4), 1);
    assert_int_equal(out[0], (uint32_t)ds_store_find(&s, "A", 1));
    assert_int_equal(ds_store_query(&s, &cell_b, out, 4), 1);
    assert_int_equal(out[0], (uint32_t)ds_store_find(&s, "B", 1));
    struct ds_cluster c[4];
    assert_int_equal(ds_store_clusters(&s, &cell_a, DS_FINE_DEG, c, 4), 1);
    assert_int_equal(c[0].count, 1);
    assert_true(c[0].lat == 48.12 && c[0].lon == 11.13); /* a cell of one truck is exactly it */
    struct ds_bbox both = {11.0, 48.0, 11.2499, 48.4999};
    assert_int_equal(ds_store_count_approx(&s, &both), 2);
    assert_int_equal(ds_store_clusters(&s, &both, 1.0, c, 4), 1);
    assert_int_equal(c[0].count, 2);
    assert_true(fabs(c[0].lat - (48.12 + 48.3) / 2) < 1e-9 && fabs(c[0].lon - (11.13 + 11.2) / 2) < 1e-9);
    ds_store_release(&s);
}

/* The prefetch hints change nothing, the hashed calls agree with the plain
 * ones, and a table grown many times still finds every truck. */
static void hashed_calls_and_prefetch_hints_agree_with_the_plain_ones(void **state)
{
    (void)state;
    struct ds_store s;
    char id[32];
    assert_int_equal(ds_store_init(&s, 20000), 0);
    for (int i = 0; i < 20000; i++) {
        snprintf(id, sizeof(id), "T-%05d", i);
        struct ds_reading r = reading(NOW, 40 + (i % 100) * 0.1, 5 + (i / 100) * 0.1, 10, 1);
        uint32_t h = ds_store_hash(id, strlen(id));
        ds_store_prefetch_slot(&s, h, &r);
        ds_store_prefetch_truck(&s, h);
        ds_store_prefetch_id(&s, h);
        assert_int_equal(ds_store_reading_hashed(&s, id, strlen(id), h, &r), DS_APPLIED);
    }
    assert_int_equal(s.count, 20000);
    for (int i = 0; i < 20000; i++) {
        snprintf(id, sizeof(id), "T-%05d", i);
        uint32_t h = ds_store_hash(id, strlen(id));
        int64_t idx = ds_store_find(&s, id, strlen(id));
        assert_int_equal(idx, i);
        assert_int_equal(ds_store_find_hashed(&s, id, strlen(id), h), idx);
    }
    assert_int_equal(ds_store_find(&s, "T-20000", 7), -1);
    struct ds_reading bad = reading(NOW, 91, 0, 0, 0);
    ds_store_prefetch_slot(&s, 1, &bad); /* out of the world: no cell to hint */
    ds_store_release(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_scanned_reading_keeps_its_fields_and_which_are_present),
        cmocka_unit_test(late_reading_never_moves_a_truck_back),
        cmocka_unit_test(derived_state_follows_speed_ignition_and_silence),
        cmocka_unit_test(presence_offline_holds_until_a_newer_reading),
        cmocka_unit_test(bad_ids_and_coordinates_are_refused),
        cmocka_unit_test(store_refuses_trucks_past_its_bound),
        cmocka_unit_test(query_returns_exactly_the_trucks_in_the_box),
        cmocka_unit_test(bbox_is_clamped_and_checked),
        cmocka_unit_test(clusters_count_every_truck_once),
        cmocka_unit_test(moves_within_and_across_cells_keep_the_grid_exact),
        cmocka_unit_test(hashed_calls_and_prefetch_hints_agree_with_the_plain_ones),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
