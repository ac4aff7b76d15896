/* Geo helpers (src/core/geo.h): great-circle distance, bearing and
 * destination on the GEO_EARTH_RADIUS_M sphere, implied speed, polygon and
 * circle containment, time windows, and loading GeoJSON fences.
 *
 * Reference values were computed independently of geo.c (unit vectors and
 * atan2 of cross and dot products on the same sphere; Vincenty on WGS84 for
 * the ellipsoidal figure).  Fence files live in tests/fixtures/geofences/:
 * depots.geojson is valid (real European logistics sites, coordinates
 * approximate), bad/ holds one file per loader error.  Fixtures are found
 * under $FLEETSYNC_FIXTURES, default "tests/fixtures" (make unit runs from
 * the repository root). */
#include "core/geo.h"

#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "near.h"

#define MUNICH_LAT 48.137154
#define MUNICH_LON 11.576124
#define BERLIN_LAT 52.520008
#define BERLIN_LON 13.404954

/* 2025-11-28T00:00:00Z: a UTC midnight, so AT(h, m) is that time of day. */
#define DAY0_MS 1764288000000LL
#define AT(h, m) (DAY0_MS + ((int64_t)(h)*60 + (m)) * 60000)

/* ---- helpers ----------------------------------------------------------- */

static const char *fixture(const char *rel)
{
    static char path[1024];
    const char *root = getenv("FLEETSYNC_FIXTURES");
    snprintf(path, sizeof(path), "%s/geofences/%s", root && *root ? root : "tests/fixtures", rel);
    return path;
}

static struct geo_fence_set load_fixture(const char *rel)
{
    struct geo_fence_set s;
    char err[512];
    if (geo_fences_load_file(fixture(rel), &s, err, sizeof(err)) != 0)
        fail_msg("%s (run from the repository root or set FLEETSYNC_FIXTURES)", err);
    return s;
}

/* Loads bad/<name>, which must fail with an error containing expect. */
static void expect_load_error(const char *name, const char *expect)
{
    char rel[256], err[512];
    struct geo_fence_set s;
    snprintf(rel, sizeof(rel), "bad/%s", name);
    const char *path = fixture(rel);
    if (access(path, R_OK) != 0)
        fail_msg("fixture %s missing: run from the repository root or set FLEETSYNC_FIXTURES", path);
    assert_int_equal(geo_fences_load_file(path, &s, err, sizeof(err)), -1);
    if (!strstr(err, expect))
        fail_msg("error \"%s\" does not contain \"%s\"", err, expect);
    assert_null(s.fences);
    assert_int_equal(s.count, 0);
    geo_fence_set_release(&s); /* harmless on the emptied set */
}

static int load_str(const char *json, struct geo_fence_set *s, char *err, size_t err_size)
{
    return geo_fences_load_buf(json, strlen(json), s, err, err_size);
}

/* A growing string for generated inputs. */
struct text {
    char *p;
    size_t n, cap;
};

__attribute__((format(printf, 2, 3))) static void text_add(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(t->p ? t->p + t->n : NULL, t->p ? t->cap - t->n : 0, fmt, ap);
        va_end(ap);
        assert_true(w >= 0);
        if (t->p && (size_t)w < t->cap - t->n) {
            t->n += (size_t)w;
            return;
        }
        t->cap = t->cap ? t->cap * 2 : 4096;
        while (t->cap - t->n <= (size_t)w)
            t->cap *= 2;
        t->p = realloc(t->p, t->cap);
        assert_non_null(t->p);
    }
}

/* ---- distance ---------------------------------------------------------- */

static void munich_to_berlin_is_about_504_km(void **state)
{
    (void)state;
    double d = geo_haversine_m(MUNICH_LAT, MUNICH_LON, BERLIN_LAT, BERLIN_LON);
    assert_near(d, 504301.5, 1.0);    /* same sphere, independent method */
    assert_near(d, 504575.6, 1000.0); /* WGS84 ellipsoid (Vincenty): the published ~504.6 km */
}

static void one_degree_of_longitude_on_the_equator_is_111195_m(void **state)
{
    (void)state;
    assert_near(geo_haversine_m(0, 0, 0, 1), 111195.080, 0.001);
}

static void antipodes_are_half_the_circumference_apart(void **state)
{
    (void)state;
    assert_near(geo_haversine_m(0, 0, 0, 180), 20015114.442, 0.01);
    assert_near(geo_haversine_m(90, 0, -90, 0), 20015114.442, 0.01);
    assert_near(geo_haversine_m(MUNICH_LAT, MUNICH_LON, -MUNICH_LAT, MUNICH_LON - 180), 20015114.442, 0.01);
}

static void same_point_is_zero_metres_apart(void **state)
{
    (void)state;
    assert_true(geo_haversine_m(MUNICH_LAT, MUNICH_LON, MUNICH_LAT, MUNICH_LON) == 0.0);
}

static void distance_is_symmetric(void **state)
{
    (void)state;
    assert_near(geo_haversine_m(BERLIN_LAT, BERLIN_LON, MUNICH_LAT, MUNICH_LON),
                geo_haversine_m(MUNICH_LAT, MUNICH_LON, BERLIN_LAT, BERLIN_LON), 1e-6);
}

/* ---- bearing ----------------------------------------------------------- */

static void bearing_to_cardinal_directions(void **state)
{
    (void)state;
    assert_near(geo_bearing_deg(0, 0, 1, 0), 0.0, 1e-9);
    assert_near(geo_bearing_deg(0, 0, 0, 1), 90.0, 1e-9);
    assert_near(geo_bearing_deg(0, 0, -1, 0), 180.0, 1e-9);
    assert_near(geo_bearing_deg(0, 0, 0, -1), 270.0, 1e-9);
}

static void bearing_munich_to_berlin_is_about_14_degrees(void **state)
{
    (void)state;
    assert_near(geo_bearing_deg(MUNICH_LAT, MUNICH_LON, BERLIN_LAT, BERLIN_LON), 14.2163, 0.001);
    /* not the reverse plus 180: great circles are not rhumb lines */
    assert_near(geo_bearing_deg(BERLIN_LAT, BERLIN_LON, MUNICH_LAT, MUNICH_LON), 195.6250, 0.001);
}

static void bearing_just_west_of_north_stays_below_360(void **state)
{
    (void)state;
    double b = geo_bearing_deg(0, 0, 1, -1e-300);
    assert_true(b >= 0.0 && b < 360.0);
}

/* ---- destination ------------------------------------------------------- */

static void destination_lies_at_the_given_distance_and_bearing(void **state)
{
    (void)state;
    double lat, lon;
    geo_destination(MUNICH_LAT, MUNICH_LON, 37.0, 12345.0, &lat, &lon);
    assert_near(geo_haversine_m(MUNICH_LAT, MUNICH_LON, lat, lon), 12345.0, 1e-3);
    assert_near(geo_bearing_deg(MUNICH_LAT, MUNICH_LON, lat, lon), 37.0, 1e-6);
}

static void destination_towards_berlin_reaches_berlin(void **state)
{
    (void)state;
    double lat, lon;
    double d = geo_haversine_m(MUNICH_LAT, MUNICH_LON, BERLIN_LAT, BERLIN_LON);
    geo_destination(MUNICH_LAT, MUNICH_LON, geo_bearing_deg(MUNICH_LAT, MUNICH_LON, BERLIN_LAT, BERLIN_LON), d, &lat,
                    &lon);
    assert_near(lat, BERLIN_LAT, 1e-9);
    assert_near(lon, BERLIN_LON, 1e-9);
}

static void destination_across_the_antimeridian_wraps_longitude(void **state)
{
    (void)state;
    double lat, lon;
    geo_destination(0, 179.9, 90.0, 0.2 * 111195.0802335329, &lat, &lon);
    assert_near(lat, 0.0, 1e-9);
    assert_near(lon, -179.9, 1e-9);
}

static void destination_at_zero_distance_is_the_start(void **state)
{
    (void)state;
    double lat, lon;
    geo_destination(MUNICH_LAT, MUNICH_LON, 123.0, 0.0, &lat, &lon);
    assert_near(lat, MUNICH_LAT, 1e-12);
    assert_near(lon, MUNICH_LON, 1e-12);
}

/* ---- implied speed ----------------------------------------------------- */

static void implied_speed_of_1_km_in_36_s_is_100_kmh(void **state)
{
    (void)state;
    assert_near(geo_implied_speed_kmh(1000.0, 36000), 100.0, 1e-9);
}

static void implied_speed_ignores_order_in_time(void **state)
{
    (void)state;
    assert_near(geo_implied_speed_kmh(1000.0, -36000), 100.0, 1e-9);
    double s = geo_implied_speed_kmh(1.0, INT64_MIN);
    assert_true(isfinite(s) && s > 0);
}

static void implied_speed_of_a_jump_within_one_timestamp_is_infinite(void **state)
{
    (void)state;
    assert_true(isinf(geo_implied_speed_kmh(400000.0, 0)));
    assert_true(geo_implied_speed_kmh(400000.0, 0) > 1000.0);
}

static void implied_speed_of_a_duplicate_reading_is_zero(void **state)
{
    (void)state;
    assert_true(geo_implied_speed_kmh(0.0, 0) == 0.0);
    assert_true(geo_implied_speed_kmh(0.0, 5000) == 0.0);
}

/* ---- polygons ---------------------------------------------------------- */

/* Unit square 10..11 E, 50..51 N, with an optional hole 10.4..10.6 / 50.4..50.6. */
static struct geo_lonlat square_pts[] = {{10, 50}, {11, 50}, {11, 51}, {10, 51}};
static struct geo_lonlat hole_pts[] = {{10.4, 50.4}, {10.4, 50.6}, {10.6, 50.6}, {10.6, 50.4}};
static const struct geo_ring square_with_hole[] = {{square_pts, 4}, {hole_pts, 4}};

static void polygon_contains_inner_point_and_excludes_outer(void **state)
{
    (void)state;
    assert_int_equal(geo_polygon_contains(square_with_hole, 1, 50.5, 10.5), 1);
    assert_int_equal(geo_polygon_contains(square_with_hole, 1, 50.5, 11.5), 0);
    assert_int_equal(geo_polygon_contains(square_with_hole, 1, 49.9, 10.5), 0);
}

static void polygon_boundary_counts_as_inside(void **state)
{
    (void)state;
    assert_int_equal(geo_polygon_contains(square_with_hole, 1, 50.0, 10.5), 1); /* bottom edge */
    assert_int_equal(geo_polygon_contains(square_with_hole, 1, 50.7, 11.0), 1); /* right edge */
    assert_int_equal(geo_polygon_contains(square_with_hole, 1, 51.0, 10.0), 1); /* vertex */
    assert_int_equal(geo_polygon_contains(square_with_hole, 1, 51.0 + 1e-6, 10.5), 0);
}

static void polygon_hole_is_excluded_but_its_edge_is_inside(void **state)
{
    (void)state;
    assert_int_equal(geo_polygon_contains(square_with_hole, 2, 50.5, 10.5), 0);
    assert_int_equal(geo_polygon_contains(square_with_hole, 2, 50.4, 10.5), 1);
    assert_int_equal(geo_polygon_contains(square_with_hole, 2, 50.2, 10.2), 1);
}

static void concave_polygon_excludes_its_notch(void **state)
{
    (void)state;
    /* A U opening north: arms 0..1 and 2..3 E, joined by 0..1 N, up to 3 N. */
    static struct geo_lonlat u_pts[] = {{0, 0}, {3, 0}, {3, 3}, {2, 3}, {2, 1}, {1, 1}, {1, 3}, {0, 3}};
    const struct geo_ring u = {u_pts, 8};
    assert_int_equal(geo_polygon_contains(&u, 1, 2.0, 0.5), 1); /* west arm */
    assert_int_equal(geo_polygon_contains(&u, 1, 2.0, 2.5), 1); /* east arm */
    assert_int_equal(geo_polygon_contains(&u, 1, 0.5, 1.5), 1); /* base */
    assert_int_equal(geo_polygon_contains(&u, 1, 2.0, 1.5), 0); /* notch */
    assert_int_equal(geo_polygon_contains(&u, 1, 1.0, 1.5), 1); /* notch floor is boundary */
}

static void polygon_without_rings_contains_nothing(void **state)
{
    (void)state;
    assert_int_equal(geo_polygon_contains(NULL, 0, 50.5, 10.5), 0);
}

/* ---- circles ----------------------------------------------------------- */

static void circle_contains_points_within_its_radius(void **state)
{
    (void)state;
    double lat, lon;
    assert_int_equal(geo_circle_contains(MUNICH_LAT, MUNICH_LON, 500, MUNICH_LAT, MUNICH_LON), 1);
    geo_destination(MUNICH_LAT, MUNICH_LON, 45, 499.999, &lat, &lon);
    assert_int_equal(geo_circle_contains(MUNICH_LAT, MUNICH_LON, 500, lat, lon), 1);
    geo_destination(MUNICH_LAT, MUNICH_LON, 45, 500.001, &lat, &lon);
    assert_int_equal(geo_circle_contains(MUNICH_LAT, MUNICH_LON, 500, lat, lon), 0);
}

/* The bbox prefilter must never cut off part of the circle: check all
 * around the edge at high latitude, where a degree of longitude is short. */
static void circle_fence_bbox_keeps_its_whole_edge(void **state)
{
    (void)state;
    struct geo_fence_set s;
    char err[256];
    assert_int_equal(load_str("{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\","
                              "\"properties\":{\"id\":\"north\",\"radius_m\":50000},"
                              "\"geometry\":{\"type\":\"Point\",\"coordinates\":[18.95,69.65]}}]}",
                              &s, err, sizeof(err)),
                     0);
    for (int b = 0; b < 360; b += 5) {
        double lat, lon;
        geo_destination(69.65, 18.95, b, 49999.0, &lat, &lon);
        if (!geo_fence_contains(&s.fences[0], lat, lon))
            fail_msg("bearing %d at 49999 m is outside", b);
        geo_destination(69.65, 18.95, b, 50001.0, &lat, &lon);
        if (geo_fence_contains(&s.fences[0], lat, lon))
            fail_msg("bearing %d at 50001 m is inside", b);
    }
    geo_fence_set_release(&s);
}

static void circle_fence_on_the_antimeridian_contains_both_sides(void **state)
{
    (void)state;
    struct geo_fence_set s;
    char err[256];
    assert_int_equal(load_str("{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\","
                              "\"properties\":{\"id\":\"dateline\",\"radius_m\":1000},"
                              "\"geometry\":{\"type\":\"Point\",\"coordinates\":[179.999,-17]}}]}",
                              &s, err, sizeof(err)),
                     0);
    assert_int_equal(geo_fence_contains(&s.fences[0], -17, 179.9995), 1);
    assert_int_equal(geo_fence_contains(&s.fences[0], -17, -179.9995), 1);
    assert_int_equal(geo_fence_contains(&s.fences[0], -17, -179.98), 0);
    geo_fence_set_release(&s);
}

/* ---- time windows ------------------------------------------------------ */

static void fence_without_window_is_always_active(void **state)
{
    (void)state;
    struct geo_fence f = {.has_window = 0};
    assert_int_equal(geo_fence_active(&f, AT(0, 0)), 1);
    assert_int_equal(geo_fence_active(&f, AT(13, 37)), 1);
}

static void day_window_is_active_from_start_until_before_end(void **state)
{
    (void)state;
    struct geo_fence f = {.has_window = 1, .window_start_min = 8 * 60, .window_end_min = 18 * 60};
    assert_int_equal(geo_fence_active(&f, AT(8, 0) - 1), 0);
    assert_int_equal(geo_fence_active(&f, AT(8, 0)), 1);
    assert_int_equal(geo_fence_active(&f, AT(17, 59)), 1);
    assert_int_equal(geo_fence_active(&f, AT(18, 0)), 0);
    assert_int_equal(geo_fence_active(&f, AT(23, 0)), 0);
}

static void night_window_wraps_past_midnight(void **state)
{
    (void)state;
    struct geo_fence f = {.has_window = 1, .window_start_min = 22 * 60, .window_end_min = 6 * 60};
    assert_int_equal(geo_fence_active(&f, AT(21, 59)), 0);
    assert_int_equal(geo_fence_active(&f, AT(22, 0)), 1);
    assert_int_equal(geo_fence_active(&f, AT(23, 59)), 1);
    assert_int_equal(geo_fence_active(&f, AT(24, 0)), 1); /* next midnight */
    assert_int_equal(geo_fence_active(&f, AT(5, 59)), 1);
    assert_int_equal(geo_fence_active(&f, AT(6, 0)), 0);
    assert_int_equal(geo_fence_active(&f, AT(12, 0)), 0);
}

static void window_uses_utc_time_of_day_before_1970_too(void **state)
{
    (void)state;
    struct geo_fence f = {.has_window = 1, .window_start_min = 22 * 60, .window_end_min = 6 * 60};
    assert_int_equal(geo_fence_active(&f, -1), 1);              /* 1969-12-31T23:59:59.999Z */
    assert_int_equal(geo_fence_active(&f, -12 * 3600000LL), 0); /* 1969-12-31T12:00Z */
}

/* ---- loading the valid fixture ----------------------------------------- */

static void depots_fixture_loads_every_fence_in_order(void **state)
{
    (void)state;
    struct geo_fence_set s = load_fixture("depots.geojson");
    assert_int_equal(s.count, 4);
    assert_string_equal(s.fences[0].id, "depot-munich");
    assert_string_equal(s.fences[1].id, "port-hamburg-altenwerder");
    assert_string_equal(s.fences[2].id, "yard-duisburg-logport");
    assert_string_equal(s.fences[3].id, "depot-venlo");
    geo_fence_set_release(&s);
    assert_null(s.fences);
    assert_int_equal(s.count, 0);
}

static void depot_munich_is_a_500_m_circle(void **state)
{
    (void)state;
    struct geo_fence_set s = load_fixture("depots.geojson");
    const struct geo_fence *f = geo_fences_find(&s, "depot-munich");
    assert_non_null(f);
    assert_int_equal(f->kind, GEO_FENCE_CIRCLE);
    assert_near(f->radius_m, 500.0, 0);
    assert_near(f->center_lat, 48.1285, 0);
    assert_near(f->center_lon, 11.6745, 0);
    double lat, lon;
    geo_destination(f->center_lat, f->center_lon, 0, 450, &lat, &lon);
    assert_int_equal(geo_fence_contains(f, lat, lon), 1);
    geo_destination(f->center_lat, f->center_lon, 0, 600, &lat, &lon);
    assert_int_equal(geo_fence_contains(f, lat, lon), 0);
    assert_int_equal(f->has_window, 0);
    geo_fence_set_release(&s);
}

static void hamburg_port_polygon_has_a_hole(void **state)
{
    (void)state;
    struct geo_fence_set s = load_fixture("depots.geojson");
    const struct geo_fence *f = geo_fences_find(&s, "port-hamburg-altenwerder");
    assert_non_null(f);
    assert_int_equal(f->kind, GEO_FENCE_POLYGON);
    assert_int_equal(f->ring_count, 2);
    assert_int_equal(f->rings[0].count, 4); /* closing position dropped */
    assert_int_equal(geo_fence_contains(f, 53.500, 9.920), 1);
    assert_int_equal(geo_fence_contains(f, 53.507, 9.930), 0); /* in the hole */
    assert_int_equal(geo_fence_contains(f, 53.520, 9.930), 0); /* north of the yard */
    geo_fence_set_release(&s);
}

static void fixture_windows_are_parsed_in_minutes(void **state)
{
    (void)state;
    struct geo_fence_set s = load_fixture("depots.geojson");
    const struct geo_fence *night = geo_fences_find(&s, "yard-duisburg-logport");
    const struct geo_fence *day = geo_fences_find(&s, "depot-venlo");
    assert_non_null(night);
    assert_non_null(day);
    assert_int_equal(night->has_window, 1);
    assert_int_equal(night->window_start_min, 22 * 60);
    assert_int_equal(night->window_end_min, 6 * 60);
    assert_int_equal(geo_fence_active(night, AT(23, 30)), 1);
    assert_int_equal(day->window_start_min, 8 * 60);
    assert_int_equal(day->window_end_min, 18 * 60);
    assert_int_equal(geo_fence_active(day, AT(23, 30)), 0);
    geo_fence_set_release(&s);
}

static void find_returns_null_for_unknown_id(void **state)
{
    (void)state;
    struct geo_fence_set s = load_fixture("depots.geojson");
    assert_null(geo_fences_find(&s, "depot-paris"));
    assert_null(geo_fences_find(&s, NULL));
    assert_null(geo_fences_find(NULL, "depot-munich"));
    geo_fence_set_release(&s);
}

static void empty_feature_collection_loads_no_fences(void **state)
{
    (void)state;
    struct geo_fence_set s;
    char err[256];
    assert_int_equal(load_str("{\"type\":\"FeatureCollection\",\"features\":[]}", &s, err, sizeof(err)), 0);
    assert_int_equal(s.count, 0);
    geo_fence_set_release(&s);
}

/* ---- loading errors: one fixture each ---------------------------------- */

static void rejects_not_a_feature_collection(void **state)
{
    (void)state;
    expect_load_error("not_feature_collection.geojson", "not a GeoJSON FeatureCollection");
}

static void rejects_ring_with_two_positions(void **state)
{
    (void)state;
    expect_load_error("bad_ring.geojson",
                      "feature 2 (id \"yard-short\"): outer ring has 2 positions, needs at least 4");
}

static void rejects_hole_with_three_positions(void **state)
{
    (void)state;
    expect_load_error("bad_hole.geojson", "feature 1 (id \"port-hamburg\"): hole 1 has 3 positions, needs at least 4");
}

static void rejects_unclosed_ring(void **state)
{
    (void)state;
    expect_load_error("unclosed_ring.geojson", "outer ring is not closed");
}

static void rejects_feature_without_id(void **state)
{
    (void)state;
    expect_load_error("missing_id.geojson", "feature 1: needs properties.id");
}

static void rejects_duplicate_fence_id(void **state)
{
    (void)state;
    expect_load_error("duplicate_id.geojson", "feature 2 (id \"depot-munich\"): fence id is already used by feature 1");
}

static void rejects_point_without_radius(void **state)
{
    (void)state;
    expect_load_error("radius_missing.geojson", "feature 1 (id \"depot-munich\"): Point needs properties.radius_m > 0");
}

static void rejects_window_with_hour_25(void **state)
{
    (void)state;
    expect_load_error("bad_window.geojson", "properties.active \"25:00-06:00\": hours must be 00-23");
}

static void rejects_invalid_json_with_its_line(void **state)
{
    (void)state;
    expect_load_error("invalid_json.geojson", "invalid JSON at line 4");
}

static void rejects_duplicate_json_key(void **state)
{
    (void)state;
    expect_load_error("duplicate_key.geojson", "duplicate object key");
}

static void rejects_multipolygon(void **state)
{
    (void)state;
    expect_load_error("multipolygon.geojson", "unsupported geometry type MultiPolygon");
}

static void rejects_latitude_out_of_range(void **state)
{
    (void)state;
    expect_load_error("lat_out_of_range.geojson",
                      "feature 1 (id \"depot-munich\"): Point position [11.6745, 148.1285] is out of range");
}

static void rejects_ring_crossing_the_antimeridian(void **state)
{
    (void)state;
    expect_load_error("antimeridian.geojson", "outer ring crosses the antimeridian between positions 1 and 2");
}

static void missing_file_error_names_the_path(void **state)
{
    (void)state;
    struct geo_fence_set s;
    char err[512];
    assert_int_equal(geo_fences_load_file("/nonexistent/fences.geojson", &s, err, sizeof(err)), -1);
    assert_string_equal(err, "cannot read geofences from /nonexistent/fences.geojson: No such file or directory");
    assert_int_equal(s.count, 0);
}

/* ---- loading errors: inline cases -------------------------------------- */

static void rejects_window_with_equal_start_and_end(void **state)
{
    (void)state;
    struct geo_fence_set s;
    char err[512];
    assert_int_equal(load_str("{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\","
                              "\"properties\":{\"id\":\"d\",\"radius_m\":5,\"active\":\"06:00-06:00\"},"
                              "\"geometry\":{\"type\":\"Point\",\"coordinates\":[0,0]}}]}",
                              &s, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "starts and ends at the same time"));
}

static void rejects_window_in_another_format(void **state)
{
    (void)state;
    struct geo_fence_set s;
    char err[512];
    assert_int_equal(load_str("{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\","
                              "\"properties\":{\"id\":\"d\",\"radius_m\":5,\"active\":\"8:00-18:00\"},"
                              "\"geometry\":{\"type\":\"Point\",\"coordinates\":[0,0]}}]}",
                              &s, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "is not \"HH:MM-HH:MM\""));
}

static void rejects_id_with_control_characters(void **state)
{
    (void)state;
    struct geo_fence_set s;
    char err[512];
    assert_int_equal(load_str("{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\","
                              "\"properties\":{\"id\":\"a\\nb\",\"radius_m\":5},"
                              "\"geometry\":{\"type\":\"Point\",\"coordinates\":[0,0]}}]}",
                              &s, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "control characters"));
    assert_null(strchr(err, '\n'));
}

static void rejects_id_longer_than_64_bytes(void **state)
{
    (void)state;
    struct geo_fence_set s;
    char json[512], err[512], id[66];
    memset(id, 'x', 65);
    id[65] = '\0';
    snprintf(json, sizeof(json),
             "{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"properties\":{\"id\":\"%s\","
             "\"radius_m\":5},\"geometry\":{\"type\":\"Point\",\"coordinates\":[0,0]}}]}",
             id);
    assert_int_equal(load_str(json, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "properties.id must be 1-64 bytes long (got 65)"));
    id[64] = '\0';
    snprintf(json, sizeof(json),
             "{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"properties\":{\"id\":\"%s\","
             "\"radius_m\":5},\"geometry\":{\"type\":\"Point\",\"coordinates\":[0,0]}}]}",
             id);
    assert_int_equal(load_str(json, &s, err, sizeof(err)), 0);
    geo_fence_set_release(&s);
}

/* ---- limits and hostile input ------------------------------------------ */

static void features(struct text *t, size_t n)
{
    text_add(t, "{\"type\":\"FeatureCollection\",\"features\":[");
    for (size_t k = 0; k < n; k++)
        text_add(t,
                 "%s{\"type\":\"Feature\",\"properties\":{\"id\":\"f%zu\",\"radius_m\":10},"
                 "\"geometry\":{\"type\":\"Point\",\"coordinates\":[0,0]}}",
                 k ? "," : "", k);
    text_add(t, "]}");
}

static void accepts_ten_thousand_fences(void **state)
{
    (void)state;
    struct text t = {0};
    struct geo_fence_set s;
    char err[512];
    features(&t, GEO_MAX_FENCES);
    assert_int_equal(geo_fences_load_buf(t.p, t.n, &s, err, sizeof(err)), 0);
    assert_int_equal(s.count, GEO_MAX_FENCES);
    assert_non_null(geo_fences_find(&s, "f9999"));
    geo_fence_set_release(&s);
    free(t.p);
}

static void rejects_more_than_ten_thousand_fences(void **state)
{
    (void)state;
    struct text t = {0};
    struct geo_fence_set s;
    char err[512];
    features(&t, GEO_MAX_FENCES + 1);
    assert_int_equal(geo_fences_load_buf(t.p, t.n, &s, err, sizeof(err)), -1);
    assert_string_equal(err, "10001 features, more than the limit of 10000 fences");
    free(t.p);
}

/* A closed ring of n positions (n - 1 vertices on a small circle). */
static void polygon_with_positions(struct text *t, size_t n)
{
    text_add(t, "{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"properties\":{\"id\":\"big\"},"
                "\"geometry\":{\"type\":\"Polygon\",\"coordinates\":[[");
    for (size_t v = 0; v < n; v++) {
        double a = 2 * M_PI * (double)(v % (n - 1)) / (double)(n - 1);
        text_add(t, "%s[%.9f,%.9f]", v ? "," : "", 10 + 0.01 * cos(a), 50 + 0.01 * sin(a));
    }
    text_add(t, "]]}}]}");
}

static void accepts_polygon_with_100000_positions(void **state)
{
    (void)state;
    struct text t = {0};
    struct geo_fence_set s;
    char err[512];
    polygon_with_positions(&t, GEO_MAX_FENCE_VERTICES);
    if (geo_fences_load_buf(t.p, t.n, &s, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(s.fences[0].rings[0].count, GEO_MAX_FENCE_VERTICES - 1);
    assert_int_equal(geo_fence_contains(&s.fences[0], 50, 10), 1);
    geo_fence_set_release(&s);
    free(t.p);
}

static void rejects_polygon_with_more_than_100000_positions(void **state)
{
    (void)state;
    struct text t = {0};
    struct geo_fence_set s;
    char err[512];
    polygon_with_positions(&t, GEO_MAX_FENCE_VERTICES + 1);
    assert_int_equal(geo_fences_load_buf(t.p, t.n, &s, err, sizeof(err)), -1);
    assert_string_equal(err, "feature 1 (id \"big\"): Polygon has more than 100000 positions; simplify it");
    free(t.p);
}

static void rejects_buffer_over_16_mib_without_parsing(void **state)
{
    (void)state;
    size_t len = GEO_MAX_FILE_BYTES + 1;
    char *buf = malloc(len), err[512];
    struct geo_fence_set s;
    assert_non_null(buf);
    memset(buf, ' ', len);
    assert_int_equal(geo_fences_load_buf(buf, len, &s, err, sizeof(err)), -1);
    assert_string_equal(err, "geofences are larger than the limit of 16 MiB");
    free(buf);
}

static void rejects_file_over_16_mib(void **state)
{
    (void)state;
    char path[] = "/tmp/test_geo_XXXXXX", err[512];
    struct geo_fence_set s;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)GEO_MAX_FILE_BYTES + 4096), 0); /* sparse */
    close(fd);
    assert_int_equal(geo_fences_load_file(path, &s, err, sizeof(err)), -1);
    unlink(path);
    assert_non_null(strstr(err, "geofences are larger than the limit of 16 MiB"));
    assert_int_equal(strncmp(err, path, strlen(path)), 0);
}

static void deeply_nested_input_is_an_error_not_a_crash(void **state)
{
    (void)state;
    size_t depth = 100000;
    char *buf = malloc(2 * depth), err[512];
    struct geo_fence_set s;
    assert_non_null(buf);
    memset(buf, '[', depth);
    memset(buf + depth, ']', depth);
    assert_int_equal(geo_fences_load_buf(buf, 2 * depth, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "invalid JSON"));
    free(buf);
}

static void every_truncation_of_a_valid_file_is_an_error(void **state)
{
    (void)state;
    FILE *f = fopen(fixture("depots.geojson"), "rb");
    char buf[8192], err[512];
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    assert_true(n > 0 && n < sizeof(buf));
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        n--; /* trailing whitespace is still complete JSON */
    for (size_t len = 0; len < n; len++) {
        struct geo_fence_set s;
        if (geo_fences_load_buf(buf, len, &s, err, sizeof(err)) != -1)
            fail_msg("a prefix of %zu bytes loaded", len);
    }
}

static void error_fits_a_small_buffer(void **state)
{
    (void)state;
    struct geo_fence_set s;
    char err[8];
    assert_int_equal(load_str("[]", &s, err, sizeof(err)), -1);
    assert_int_equal(strlen(err), sizeof(err) - 1);
    assert_int_equal(load_str("[]", &s, NULL, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(munich_to_berlin_is_about_504_km),
        cmocka_unit_test(one_degree_of_longitude_on_the_equator_is_111195_m),
        cmocka_unit_test(antipodes_are_half_the_circumference_apart),
        cmocka_unit_test(same_point_is_zero_metres_apart),
        cmocka_unit_test(distance_is_symmetric),
        cmocka_unit_test(bearing_to_cardinal_directions),
        cmocka_unit_test(bearing_munich_to_berlin_is_about_14_degrees),
        cmocka_unit_test(bearing_just_west_of_north_stays_below_360),
        cmocka_unit_test(destination_lies_at_the_given_distance_and_bearing),
        cmocka_unit_test(destination_towards_berlin_reaches_berlin),
        cmocka_unit_test(destination_across_the_antimeridian_wraps_longitude),
        cmocka_unit_test(destination_at_zero_distance_is_the_start),
        cmocka_unit_test(implied_speed_of_1_km_in_36_s_is_100_kmh),
        cmocka_unit_test(implied_speed_ignores_order_in_time),
        cmocka_unit_test(implied_speed_of_a_jump_within_one_timestamp_is_infinite),
        cmocka_unit_test(implied_speed_of_a_duplicate_reading_is_zero),
        cmocka_unit_test(polygon_contains_inner_point_and_excludes_outer),
        cmocka_unit_test(polygon_boundary_counts_as_inside),
        cmocka_unit_test(polygon_hole_is_excluded_but_its_edge_is_inside),
        cmocka_unit_test(concave_polygon_excludes_its_notch),
        cmocka_unit_test(polygon_without_rings_contains_nothing),
        cmocka_unit_test(circle_contains_points_within_its_radius),
        cmocka_unit_test(circle_fence_bbox_keeps_its_whole_edge),
        cmocka_unit_test(circle_fence_on_the_antimeridian_contains_both_sides),
        cmocka_unit_test(fence_without_window_is_always_active),
        cmocka_unit_test(day_window_is_active_from_start_until_before_end),
        cmocka_unit_test(night_window_wraps_past_midnight),
        cmocka_unit_test(window_uses_utc_time_of_day_before_1970_too),
        cmocka_unit_test(depots_fixture_loads_every_fence_in_order),
        cmocka_unit_test(depot_munich_is_a_500_m_circle),
        cmocka_unit_test(hamburg_port_polygon_has_a_hole),
        cmocka_unit_test(fixture_windows_are_parsed_in_minutes),
        cmocka_unit_test(find_returns_null_for_unknown_id),
        cmocka_unit_test(empty_feature_collection_loads_no_fences),
        cmocka_unit_test(rejects_not_a_feature_collection),
        cmocka_unit_test(rejects_ring_with_two_positions),
        cmocka_unit_test(rejects_hole_with_three_positions),
        cmocka_unit_test(rejects_unclosed_ring),
        cmocka_unit_test(rejects_feature_without_id),
        cmocka_unit_test(rejects_duplicate_fence_id),
        cmocka_unit_test(rejects_point_without_radius),
        cmocka_unit_test(rejects_window_with_hour_25),
        cmocka_unit_test(rejects_invalid_json_with_its_line),
        cmocka_unit_test(rejects_duplicate_json_key),
        cmocka_unit_test(rejects_multipolygon),
        cmocka_unit_test(rejects_latitude_out_of_range),
        cmocka_unit_test(rejects_ring_crossing_the_antimeridian),
        cmocka_unit_test(missing_file_error_names_the_path),
        cmocka_unit_test(rejects_window_with_equal_start_and_end),
        cmocka_unit_test(rejects_window_in_another_format),
        cmocka_unit_test(rejects_id_with_control_characters),
        cmocka_unit_test(rejects_id_longer_than_64_bytes),
        cmocka_unit_test(accepts_ten_thousand_fences),
        cmocka_unit_test(rejects_more_than_ten_thousand_fences),
        cmocka_unit_test(accepts_polygon_with_100000_positions),
        cmocka_unit_test(rejects_polygon_with_more_than_100000_positions),
        cmocka_unit_test(rejects_buffer_over_16_mib_without_parsing),
        cmocka_unit_test(rejects_file_over_16_mib),
        cmocka_unit_test(deeply_nested_input_is_an_error_not_a_crash),
        cmocka_unit_test(every_truncation_of_a_valid_file_is_an_error),
        cmocka_unit_test(error_fits_a_small_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
