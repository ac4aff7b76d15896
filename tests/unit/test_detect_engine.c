/* The detector's rules and state (src/detect/engine.h): hand-built sequences
 * of 10 s readings per rule, thresholds at -1 s and at the threshold, normal
 * traffic that must stay silent, ordering, duplicates, offline, checkpoints. */
#include "detect/engine.h"

#include "core/geo.h"

#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define T0 1764201600000LL /* 2025-11-27 00:00 UTC */
#define S 1000LL
#define MIN (60 * S)
#define LAT0 48.137154
#define LON0 11.576124

struct rec {
    char id[80];
    enum detect_rule rule;
    enum detect_alert_state state;
    int64_t started, detected, ended;
    int wallclock;
    char details[192];
};

struct sink {
    struct rec v[256];
    int n;
};

static void on_alert(void *ctx, const struct detect_alert *a)
{
    struct sink *s = ctx;
    assert_true(s->n < 256);
    struct rec *r = &s->v[s->n++];
    snprintf(r->id, sizeof(r->id), "%.*s", (int)a->truck_id_len, a->truck_id);
    r->rule = a->rule;
    r->state = a->state;
    r->started = a->started_ms;
    r->detected = a->detected_ms;
    r->ended = a->ended_ms;
    r->wallclock = a->wallclock;
    snprintf(r->details, sizeof(r->details), "%s", a->details);
}

/* Test fixture: an engine with lateness 0 (each reading is processed as it
 * is fed) unless a test changes the rules first. */
struct fx {
    struct detect_rules rules;
    struct detect_engine *e;
    struct sink sink;
    int64_t seq;
};

static struct fx *fx_new(const struct detect_rules *r, const struct geo_fence_set *fences, int partitions)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    if (r) {
        f->rules = *r;
    } else {
        detect_rules_defaults(&f->rules);
        f->rules.lateness_ms = 0;
    }
    f->e = detect_engine_new(&f->rules, fences, partitions, on_alert, &f->sink);
    assert_non_null(f->e);
    return f;
}

static void fx_free(struct fx *f)
{
    detect_engine_free(f->e);
    free(f);
}

/* A position dx metres east and dy metres north of (LAT0, LON0). */
static void pos(double dx, double dy, double *lat, double *lon)
{
    *lat = LAT0 + dy / 111194.9;
    *lon = LON0 + dx / (111194.9 * cos(LAT0 * 3.14159265358979 / 180.0));
}

static void feed_p(struct fx *f, int part, const char *id, int64_t ts, double dx, double dy, double speed, bool ign,
                   double fuel)
{
    struct detect_reading r = {.truck_id = id,
                               .truck_id_len = strlen(id),
                               .ts_ms = ts,
                               .seq = f->seq++,
                               .speed_kmh = speed,
                               .ignition = ign,
                               .fuel_pct = fuel};
    pos(dx, dy, &r.lat, &r.lon);
    assert_int_equal(detect_engine_feed(f->e, part, &r), 0);
}

static void feed(struct fx *f, int64_t ts, double dx, double dy, double speed, bool ign, double fuel)
{
    feed_p(f, 0, "TRK-000001", ts, dx, dy, speed, ign, fuel);
}

static int count(const struct fx *f, enum detect_rule rule, enum detect_alert_state st)
{
    int n = 0;
    for (int i = 0; i < f->sink.n; i++)
        n += f->sink.v[i].rule == rule && f->sink.v[i].state == st;
    return n;
}

static const struct rec *find(const struct fx *f, enum detect_rule rule, enum detect_alert_state st)
{
    for (int i = 0; i < f->sink.n; i++)
        if (f->sink.v[i].rule == rule && f->sink.v[i].state == st)
            return &f->sink.v[i];
    return NULL;
}

/* deterministic jitter in [-15, 15] metres */
static double jit(int k, int salt)
{
    return (double)(((k * 7919 + salt * 104729) % 31) - 15);
}

/* ---- stationary_engine_on ---- */

/* Engine on, jittering +-15 m, readings every 10 s up to last_s, then the
 * truck drives off at last_s + 10. */
static struct fx *parked_engine_on(int64_t last_s)
{
    struct fx *f = fx_new(NULL, NULL, 1);
    int k = 0;
    for (int64_t s = 0; s < last_s; s += 10, k++)
        feed(f, T0 + s * S, jit(k, 1), jit(k, 2), 0, true, 50);
    feed(f, T0 + last_s * S, jit(k, 1), jit(k, 2), 0, true, 50);
    feed(f, T0 + (last_s + 10) * S, 300, 0, 40, true, 50);
    return f;
}

static void stationary_19m59s_with_jitter_raises_nothing(void **state)
{
    (void)state;
    struct fx *f = parked_engine_on(1199);
    assert_int_equal(f->sink.n, 0);
    fx_free(f);
}

static void stationary_20m_raises_once_and_clears_once(void **state)
{
    (void)state;
    struct fx *f = parked_engine_on(1200);
    assert_int_equal(count(f, DR_STATIONARY_ENGINE_ON, DA_RAISED), 1);
    assert_int_equal(count(f, DR_STATIONARY_ENGINE_ON, DA_CLEARED), 1);
    const struct rec *r = find(f, DR_STATIONARY_ENGINE_ON, DA_RAISED);
    assert_int_equal(r->started, T0);
    assert_int_equal(r->detected, T0 + 1200 * S);
    assert_string_equal(r->details, "{\"minutes\":20,\"radius_m\":50}");
    const struct rec *c = find(f, DR_STATIONARY_ENGINE_ON, DA_CLEARED);
    assert_int_equal(c->started, T0);
    assert_int_equal(c->ended, T0 + 1210 * S);
    assert_int_equal(f->sink.n, 2);
    fx_free(f);
}

static void stationary_for_80_minutes_raises_no_repeats(void **state)
{
    (void)state;
    struct fx *f = parked_engine_on(80 * 60);
    assert_int_equal(count(f, DR_STATIONARY_ENGINE_ON, DA_RAISED), 1);
    assert_int_equal(count(f, DR_STATIONARY_ENGINE_ON, DA_CLEARED), 1);
    assert_int_equal(f->sink.n, 2);
    fx_free(f);
}

static void crawling_jam_3kmh_engine_on_30min_raises_nothing(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL, NULL, 1);
    for (int s = 0; s <= 1800; s += 10)
        feed(f, T0 + s * S, s * 3.0 / 3.6, jit(s, 3) / 5, 3, true, 50 - s * 1e-4);
    assert_int_equal(f->sink.n, 0);
    fx_free(f);
}

static void red_lights_and_stop_and_go_raise_nothing(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL, NULL, 1);
    double x = 0;
    for (int s = 0; s <= 3600; s += 10) {
        bool red = (s / 60) % 3 == 0; /* 1 min stopped, 2 min at 50 km/h */
        if (!red)
            x += 50 / 3.6 * 10;
        feed(f, T0 + s * S, x, 0, red ? 0 : 50, true, 60);
    }
    assert_int_equal(f->sink.n, 0);
    fx_free(f);
}

static void loading_stop_engine_off_2h_raises_nothing(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL, NULL, 1);
    for (int s = 0; s <= 7200; s += 10)
        feed(f, T0 + s * S, jit(s, 4), jit(s, 5), 0, false, 40 + (s % 3) * 0.2);
    assert_int_equal(f->sink.n, 0);
    fx_free(f);
}

static void rest_break_then_driving_raises_nothing(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL, NULL, 1);
    int s = 0;
    double x = 0;
    for (; s < 3600; s += 10, x += 80 / 3.6 * 10) /* 1 h at 80 */
        feed(f, T0 + s * S, x, 0, 80, true, 70 - x / 1000 * 0.05);
    for (int k = 0; k < 60; k++, s += 10) /* engine idles 10 min, under the threshold */
        feed(f, T0 + s * S, x + jit(k, 1), jit(k, 2), 0, true, 66);
    for (int k = 0; k < 270; k++, s += 10) /* 45 min off */
        feed(f, T0 + s * S, x + jit(k, 3), jit(k, 4), 0, false, 66);
    for (int k = 0; k < 60; k++, s += 10, x += 80 / 3.6 * 10)
        feed(f, T0 + s * S, x, 0, 80, true, 66);
    assert_int_equal(f->sink.n, 0);
    fx_free(f);
}

static void refuel_raises_nothing(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL, NULL, 1);
    for (int s = 0; s <= 1200; s += 10) {
        double fuel = s < 300 ? 20 : s < 600 ? 20 + (s - 300) * 0.2 : 80; /* +60 points in 5 min */
        feed(f, T0 + s * S, jit(s, 1), jit(s, 2), 0, false, fuel);
    }
    assert_int_equal(f->sink.n, 0);
    fx_free(f);
}

static void driving_4h_at_85kmh_raises_nothing(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL, NULL, 1);
    double x = 0;
    for (int s = 0; s <= 4 * 3600; s += 10, x += 85 / 3.6 * 10)
        feed(f, T0 + s * S, x, jit(s, 7) / 3, 85 + jit(s, 8) / 5, true, 90 - x / 1000 * 0.05);
    assert_int_equal(f->sink.n, 0);
    fx_free(f);
}

/* ---- moving_ignition_off ---- */

/* Ignition off and moving at 30 km/h from 0 s to last_s, then stopped. */
static struct fx *towed(int64_t last_s)
{
    struct fx *f = fx_new(NULL, NULL, 1);
    feed(f, T0 - 10 * S, -30 / 3.6 * 10, 0, 0, false, 50);
    int64_t s = 0;
    for (; s < last_s; s += 10)
        feed(f, T0 + s * S, s * 30 / 3.6, 0, 30, false, 50);
    feed(f, T0 + last_s * S, last_s * 30 / 3.6, 0, 30, false, 50);
    feed(f, T0 + (last_s + 10) * S, last_s * 30 / 3.6, 0, 0, false, 50);
    return f;
}

static void towing_59s_raises_nothing(void **state)
{
    (void)state;
    struct fx *f = towed(59);
    assert_int_equal(f->sink.n, 0);
    fx_free(f);
}

static void towing_60s_raises_and_clears(void **state)
{
    (void)state;
    struct fx *f = towed(60);
    const struct rec *r = find(f, DR_MOVING_IGNITION_OFF, DA_RAISED);
    assert_non_null(r);
    assert_int_equal(r->started, T0);
    assert_int_equal(r->detected, T0 + 60 * S);
    const struct rec *c = find(f, DR_MOVING_IGNITION_OFF, DA_CLEARED);
    assert_non_null(c);
    assert_int_equal(c->ended, T0 + 70 * S);
    assert_int_equal(f->sink.n, 2);
    fx_free(f);
}

static void gps_jitter_with_speed_noise_while_off_is_not_towing(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL, NULL, 1);
    /* the speed sensor reads 12 km/h but the position only jitters */
    for (int s = 0; s <= 1800; s += 10)
        feed(f, T0 + s * S, jit(s, 1), jit(s, 2), 12, false, 50);
    assert_int_equal(f->sink.n, 0);
    fx_free(f);
}

/* ---- overspeed ---- */

static struct fx *speeding(int64_t last_s, double kmh)
{
    struct fx *f = fx_new(NULL, NULL, 1);
    double x = 0;
    feed(f, T0 - 10 * S, -90 / 3.6 * 10, 0, 90, true, 50);
    int64_t s = 0;
    for (; s < last_s; s += 10, x += kmh / 3.6 * 10)
        feed(f, T0 + s * S, x, 0, kmh, true, 50);
    x = last_s * kmh / 3.6;
    feed(f, T0 + last_s * S, x, 0, kmh, true, 50);
    feed(f, T0 + (last_s + 10) * S, x + 250, 0, 90, true, 50);
    return f;
}

static void overspeed_59s_raises_nothing(void **state)
{
    (void)state;
    struct fx *f = speeding(59, 125);
    assert_int_equal(f->sink.n, 0);
    fx_free(f);
}

static void overspeed_60s_raises_and_clears(void **state)
{
    (void)state;
    struct fx *f = speeding(60, 125);
    const struct rec *r = find(f, DR_OVERSPEED, DA_RAISED);
    assert_non_null(r);
    assert_int_equal(r->started, T0);
    assert_int_equal(r->detected, T0 + 60 * S);
    assert_non_null(find(f, DR_OVERSPEED, DA_CLEARED));
    assert_int_equal(find(f, DR_OVERSPEED, DA_CLEARED)->ended, T0 + 70 * S);
    assert_int_equal(f->sink.n, 2);
    fx_free(f);
}

static void exactly_100kmh_is_not_overspeed(void **state)
{
    (void)state;
    struct fx *f = speeding(600, 100);
    assert_int_equal(f->sink.n, 0);
    fx_free(f);
}

/* ---- gps_jump ---- */

static void gps_jump_out_and_back_is_one_alert(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL, NULL, 1);
    double x = 0;
    for (int s = 0; s < 300; s += 10, x += 250)
        feed(f, T0 + s * S, x, 0, 90, true, 50);
    feed(f, T0 + 300 * S, x + 400000, 0, 90, true, 50); /* 400 km off */
    feed(f, T0 + 310 * S, x + 250, 0, 90, true, 50);    /* back */
    for (int s = 320; s < 600; s += 10)
        feed(f, T0 + s * S, x + 250 * (s - 300) / 10.0, 0, 90, true, 50);
    assert_int_equal(count(f, DR_GPS_JUMP, DA_RAISED), 1);
    assert_int_equal(count(f, DR_GPS_JUMP, DA_CLEARED), 1);
    const struct rec *r = find(f, DR_GPS_JUMP, DA_RAISED);
    assert_int_equal(r->started, T0 + 300 * S);
    assert_string_equal(r->details, "{\"km\":400.2}"); /* from the last good position */
    assert_int_equal(find(f, DR_GPS_JUMP, DA_CLEARED)->ended, T0 + 310 * S);
    assert_int_equal(f->sink.n, 2);
    fx_free(f);
}

static void gps_jump_to_a_place_that_stays_clears_after_three_readings(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL, NULL, 1);
    for (int s = 0; s < 300; s += 10)
        feed(f, T0 + s * S, jit(s, 1), jit(s, 2), 0, false, 50);
    /* the device reappears 50 km away (it was moved while off) and stays */
    for (int s = 300; s < 3000; s += 10)
        feed(f, T0 + s * S, 50000 + jit(s, 3), jit(s, 4), 0, false, 50);
    assert_int_equal(count(f, DR_GPS_JUMP, DA_RAISED), 1);
    assert_int_equal(count(f, DR_GPS_JUMP, DA_CLEARED), 1);
    assert_int_equal(find(f, DR_GPS_JUMP, DA_CLEARED)->ended, T0 + 330 * S);
    assert_int_equal(f->sink.n, 2);
    fx_free(f);
}

static void gps_jump_reading_is_no_stop_anchor(void **state)
{
    (void)state;
    /* parked with the engine on for 25 min with one wild fix at 10 min: the
     * stop continues, one stationary incident from the first reading */
    struct fx *f = fx_new(NULL, NULL, 1);
    for (int s = 0; s <= 1500; s += 10)
        feed(f, T0 + s * S, s == 600 ? 5000 : jit(s, 1), jit(s, 2), 0, true, 50);
    assert_int_equal(count(f, DR_GPS_JUMP, DA_RAISED), 1);
    assert_int_equal(count(f, DR_STATIONARY_ENGINE_ON, DA_RAISED), 1);
    assert_int_equal(find(f, DR_STATIONARY_ENGINE_ON, DA_RAISED)->started, T0);
    fx_free(f);
}

/* ---- fuel_drop ---- */

static void fuel_drop_30pct_over_5min_while_parked_raises(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL, NULL, 1);
    for (int s = 0; s <= 2400; s += 10) {
        double fuel = s <= 600 ? 70 : s <= 900 ? 70 - (s - 600) * 0.1 : 40; /* 30 points in 300 s */
        feed(f, T0 + s * S, jit(s, 1), jit(s, 2), 0, false, fuel);
    }
    assert_int_equal(count(f, DR_FUEL_DROP, DA_RAISED), 1);
    assert_int_equal(count(f, DR_FUEL_DROP, DA_CLEARED), 1);
    const struct rec *r = find(f, DR_FUEL_DROP, DA_RAISED);
    assert_int_equal(r->started, T0 + 600 * S);  /* the last reading before the fall */
    assert_int_equal(r->detected, T0 + 710 * S); /* 11 points down */
    /* cleared once nothing fell for 5 min after the last fall at 900 s */
    assert_int_equal(find(f, DR_FUEL_DROP, DA_CLEARED)->ended, T0 + 1200 * S);
    assert_int_equal(f->sink.n, 2);
    fx_free(f);
}

static void fuel_drop_is_cleared_by_refuelling(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL, NULL, 1);
    for (int s = 0; s <= 1200; s += 10) {
        double fuel = s <= 300 ? 70 : s <= 420 ? 70 - (s - 300) * 0.2 : s <= 600 ? 46 : 90; /* siphoned, then filled */
        feed(f, T0 + s * S, jit(s, 1), jit(s, 2), 0, false, fuel);
    }
    assert_int_equal(count(f, DR_FUEL_DROP, DA_RAISED), 1);
    assert_int_equal(count(f, DR_FUEL_DROP, DA_CLEARED), 1);
    assert_int_equal(find(f, DR_FUEL_DROP, DA_CLEARED)->ended, T0 + 610 * S);
    assert_int_equal(f->sink.n, 2);
    fx_free(f);
}

static void fuel_slow_leak_under_threshold_raises_nothing(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL, NULL, 1);
    for (int s = 0; s <= 7200; s += 10) /* 1 point per 5 min */
        feed(f, T0 + s * S, jit(s, 1), jit(s, 2), 0, true, 80 - s / 300.0);
    assert_int_equal(count(f, DR_FUEL_DROP, DA_RAISED), 0);
    fx_free(f);
}

/* ---- geofence_exit ---- */

static const char FENCES[] =
    "{\"type\":\"FeatureCollection\",\"features\":["
    "{\"type\":\"Feature\",\"properties\":{\"id\":\"depot-munich\",\"radius_m\":500},"
    "\"geometry\":{\"type\":\"Point\",\"coordinates\":[11.576124,48.137154]}},"
    "{\"type\":\"Feature\",\"properties\":{\"id\":\"yard-night\",\"active\":\"22:00-06:00\"},"
    "\"geometry\":{\"type\":\"Polygon\",\"coordinates\":[[[11.676,48.127],[11.696,48.127],[11.696,48.147],"
    "[11.676,48.147],[11.676,48.127]]]}}]}";

/* Starts inside at dx0, drives east past the fence and back. */
static struct fx *fence_trip(struct geo_fence_set *fs, int64_t t0, double dx0)
{
    char err[256];
    assert_int_equal(geo_fences_load_buf(FENCES, strlen(FENCES), fs, err, sizeof(err)), 0);
    struct fx *f = fx_new(NULL, fs, 1);
    for (int s = 0; s <= 600; s += 10)
        feed(f, t0 + s * S, dx0 + 25 + s * 5, 0, 18, true, 50); /* 3 km out */
    for (int s = 610; s <= 1200; s += 10)
        feed(f, t0 + s * S, dx0 + 25 + (1200 - s) * 5, 0, 18, true, 50); /* and back */
    return f;
}

static void geofence_exit_circle_raises_and_clears(void **state)
{
    (void)state;
    struct geo_fence_set fs;
    struct fx *f = fence_trip(&fs, T0 + 12 * 3600 * S, 0);
    assert_int_equal(count(f, DR_GEOFENCE_EXIT, DA_RAISED), 1);
    assert_int_equal(count(f, DR_GEOFENCE_EXIT, DA_CLEARED), 1);
    const struct rec *r = find(f, DR_GEOFENCE_EXIT, DA_RAISED);
    assert_int_equal(r->started, T0 + 12 * 3600 * S + 100 * S); /* 525 m east: the first reading outside 500 m */
    assert_string_equal(r->details, "{\"fence\":\"depot-munich\"}");
    assert_int_equal(f->sink.n, 2);
    fx_free(f);
    geo_fence_set_release(&fs);
}

static void geofence_exit_polygon_only_inside_active_window(void **state)
{
    (void)state;
    struct geo_fence_set fs;
    /* the polygon spans 11.676-11.696 E: start at its middle (~7.4 km east) */
    double dx0 = (11.686 - LON0) * 111194.9 * cos(LAT0 * 3.14159265358979 / 180.0);
    struct fx *day = fence_trip(&fs, T0 + 12 * 3600 * S, dx0);
    assert_int_equal(count(day, DR_GEOFENCE_EXIT, DA_RAISED), 0);
    fx_free(day);
    geo_fence_set_release(&fs);
    struct fx *night = fence_trip(&fs, T0 + 23 * 3600 * S, dx0);
    assert_int_equal(count(night, DR_GEOFENCE_EXIT, DA_RAISED), 1);
    assert_int_equal(count(night, DR_GEOFENCE_EXIT, DA_CLEARED), 1);
    assert_string_equal(find(night, DR_GEOFENCE_EXIT, DA_RAISED)->details, "{\"fence\":\"yard-night\"}");
    fx_free(night);
    geo_fence_set_release(&fs);
}

/* A fence id that escapes to more than fits in the details (quotes and
 * backslashes double, a multi-byte character must stay whole): the raised
 * alert's JSON parses (jansson checks UTF-8 too) and names a prefix of the
 * id, cut between characters. */
static void geofence_id_cut_keeps_the_alert_json_valid(void **state)
{
    (void)state;
    const char *ids[] = {
        "a\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\""
        "\"\"\"\"\"\"\"\"\"", /* 'a' + 63 quotes */
        NULL,                 /* 'x' and 63 backslashes */
        NULL,                 /* 58 quotes and two euro signs: the cut falls inside the second */
        "\xc3\xa9\"\xe2\x82\xac\\\xf0\x9f\x9a\x9a\"\xc3\xa9\"\xe2\x82\xac\\\xf0\x9f\x9a\x9a\"\xc3\xa9\"\xe2\x82\xac\\"
        "\xf0\x9f\x9a\x9a\"\xc3\xa9\"\xe2\x82\xac\\\xf0\x9f\x9a\x9a\"\xc3\xa9\"\xe2\x82\xac\\\x41", /* é"€\🚚" ... */
    };
    char quotes_euro[65];
    memset(quotes_euro, '"', 58);
    memcpy(quotes_euro + 58, "\xe2\x82\xac\xe2\x82\xac", 6);
    quotes_euro[64] = 0;
    ids[2] = quotes_euro;
    char backslashes[65];
    backslashes[0] = 'x';
    memset(backslashes + 1, '\\', 63);
    backslashes[64] = 0;
    ids[1] = backslashes;
    for (size_t k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
        const char *fid = ids[k];
        assert_true(strlen(fid) <= GEO_FENCE_ID_MAX);
        json_t *fc = json_pack("{s:s,s:[{s:s,s:{s:s,s:i},s:{s:s,s:[f,f]}}]}", "type", "FeatureCollection", "features",
                               "type", "Feature", "properties", "id", fid, "radius_m", 500, "geometry", "type", "Point",
                               "coordinates", LON0, LAT0);
        assert_non_null(fc);
        char *text = json_dumps(fc, JSON_COMPACT);
        json_decref(fc);
        struct geo_fence_set fs;
        char err[256];
        assert_int_equal(geo_fences_load_buf(text, strlen(text), &fs, err, sizeof(err)), 0);
        free(text);
        struct fx *f = fx_new(NULL, &fs, 1);
        for (int s = 0; s <= 600; s += 10)
            feed(f, T0 + 12 * 3600 * S + s * S, 25 + s * 5, 0, 18, true, 50);
        const struct rec *r = find(f, DR_GEOFENCE_EXIT, DA_RAISED);
        assert_non_null(r);
        struct detect_alert a = {.truck_id = "TRK-000001",
                                 .truck_id_len = 10,
                                 .rule = DR_GEOFENCE_EXIT,
                                 .state = DA_RAISED,
                                 .started_ms = r->started,
                                 .detected_ms = r->detected,
                                 .lat = LAT0,
                                 .lon = LON0};
        snprintf(a.details, sizeof(a.details), "%s", r->details);
        char buf[1024];
        assert_true(detect_alert_json(&a, buf, sizeof(buf)) > 0);
        json_error_t je;
        json_t *alert = json_loads(buf, 0, &je);
        if (!alert)
            fail_msg("id %zu: the alert is not JSON (%s): %s", k, je.text, buf);
        const char *got = json_string_value(json_object_get(json_object_get(alert, "details"), "fence"));
        assert_non_null(got);
        size_t n = strlen(got);
        assert_true(n > 0 && n <= strlen(fid));
        assert_memory_equal(got, fid, n);                    /* a prefix of the id */
        assert_true(((unsigned char)fid[n] & 0xC0) != 0x80); /* cut between characters */
        json_decref(alert);
        fx_free(f);
        geo_fence_set_release(&fs);
    }
}

/* ---- offline ---- */

static void offline_by_partition_watermark(void **state)
{
    (void)state;
    struct detect_rules r;
    detect_rules_defaults(&r); /* lateness 2 min */
    struct fx *f = fx_new(&r, NULL, 1);
    for (int s = 0; s <= 3600; s += 10) {
        feed_p(f, 0, "TRK-A", T0 + s * S, s * 20, 0, 72, true, 50);
        if (s <= 600 || s >= 2400) /* B is silent from 600 s to 2400 s */
            feed_p(f, 0, "TRK-B", T0 + s * S, 0, s * 20, 72, true, 50);
    }
    detect_engine_flush_partition(f->e, 0);
    assert_int_equal(count(f, DR_OFFLINE, DA_RAISED), 1);
    assert_int_equal(count(f, DR_OFFLINE, DA_CLEARED), 1);
    const struct rec *o = find(f, DR_OFFLINE, DA_RAISED);
    assert_string_equal(o->id, "TRK-B");
    assert_int_equal(o->started, T0 + 600 * S);
    assert_true(o->detected >= T0 + 1200 * S && o->detected <= T0 + 1260 * S);
    assert_int_equal(o->wallclock, 0);
    assert_int_equal(find(f, DR_OFFLINE, DA_CLEARED)->ended, T0 + 2400 * S);
    assert_int_equal(f->sink.n, 2);
    fx_free(f);
}

static void offline_9min_gap_raises_nothing(void **state)
{
    (void)state;
    struct detect_rules r;
    detect_rules_defaults(&r);
    struct fx *f = fx_new(&r, NULL, 1);
    for (int s = 0; s <= 3600; s += 10) {
        feed_p(f, 0, "TRK-A", T0 + s * S, s * 20, 0, 72, true, 50);
        if (s <= 600 || s >= 1140)
            feed_p(f, 0, "TRK-B", T0 + s * S, 0, s * 20, 72, true, 50);
    }
    detect_engine_flush_partition(f->e, 0);
    assert_int_equal(f->sink.n, 0);
    fx_free(f);
}

static void offline_wallclock_fallback_for_a_silent_partition(void **state)
{
    (void)state;
    struct detect_rules r;
    detect_rules_defaults(&r);
    struct fx *f = fx_new(&r, NULL, 2);
    for (int s = 0; s <= 300; s += 10)
        feed_p(f, 1, "TRK-C", T0 + s * S, s * 20, 0, 72, true, 50);
    detect_engine_idle(f->e, 1, T0 + 1000 * S, 9 * MIN); /* not silent long enough */
    assert_int_equal(f->sink.n, 0);
    detect_engine_idle(f->e, 1, T0 + 1000 * S, 10 * MIN);
    assert_int_equal(count(f, DR_OFFLINE, DA_RAISED), 1);
    const struct rec *o = find(f, DR_OFFLINE, DA_RAISED);
    assert_int_equal(o->wallclock, 1);
    assert_int_equal(o->started, T0 + 300 * S); /* held readings were processed first */
    assert_int_equal(o->detected, T0 + 1000 * S);
    assert_string_equal(o->details, "{\"source\":\"wallclock\"}");
    detect_engine_idle(f->e, 1, T0 + 2000 * S, 20 * MIN); /* no repeat */
    assert_int_equal(count(f, DR_OFFLINE, DA_RAISED), 1);
    feed_p(f, 1, "TRK-C", T0 + 2000 * S, 8000, 0, 72, true, 50);
    detect_engine_flush_partition(f->e, 1);
    assert_int_equal(count(f, DR_OFFLINE, DA_CLEARED), 1);
    assert_int_equal(find(f, DR_OFFLINE, DA_CLEARED)->started, T0 + 300 * S);
    fx_free(f);
}

/* ---- ordering, duplicates, lateness ---- */

/* A mixed day for three trucks in one partition: overspeed, a stop with the
 * engine on, a GPS jump. */
struct rd {
    const char *id;
    int64_t ts;
    double dx, dy, speed;
    bool ign;
};

static int make_day(struct rd *v, int max)
{
    int n = 0;
    double x2 = 0;
    for (int s = 0; s <= 3600 && n + 3 <= max; s += 10) {
        double x = s < 1800 ? s * 25.0 : 1800 * 25.0;
        v[n++] = (struct rd){"TRK-1", T0 + s * S, x, 0, s < 1800 ? 90 : 0, true};
        double sp = (s >= 600 && s < 900) ? 120 : 80;
        x2 += sp / 3.6 * 10;
        v[n++] = (struct rd){"TRK-2", T0 + s * S + 3 * S, x2, 1000, sp, true};
        v[n++] = (struct rd){"TRK-3", T0 + s * S + 7 * S, s == 1200 ? 900000 : s * 10.0, 2000, 36, true};
    }
    return n;
}

static void feed_rd(struct fx *f, const struct rd *r, int64_t seq)
{
    struct detect_reading d = {.truck_id = r->id,
                               .truck_id_len = strlen(r->id),
                               .ts_ms = r->ts,
                               .seq = seq,
                               .speed_kmh = r->speed,
                               .ignition = r->ign,
                               .fuel_pct = NAN};
    pos(r->dx, r->dy, &d.lat, &d.lon);
    assert_int_equal(detect_engine_feed(f->e, 0, &d), 0);
}

static int sink_equal(const struct sink *a, const struct sink *b)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++) {
        const struct rec *x = &a->v[i], *y = &b->v[i];
        if (strcmp(x->id, y->id) || x->rule != y->rule || x->state != y->state || x->started != y->started ||
            x->detected != y->detected || x->ended != y->ended || strcmp(x->details, y->details))
            return 0;
    }
    return 1;
}

static void out_of_order_within_lateness_gives_the_same_alerts(void **state)
{
    (void)state;
    static struct rd v[1200];
    int n = make_day(v, 1200);
    struct detect_rules r;
    detect_rules_defaults(&r);
    r.lateness_ms = 2 * MIN; /* --lateness 120: readings are held and ordered */
    struct fx *sorted = fx_new(&r, NULL, 1), *shuffled = fx_new(&r, NULL, 1);
    for (int i = 0; i < n; i++)
        feed_rd(sorted, &v[i], (int64_t)(v[i].ts / 1000));
    detect_engine_flush_partition(sorted->e, 0);
    /* reverse every block of 24 readings (80 s): late by up to 80 s */
    for (int b = 0; b < n; b += 24)
        for (int i = (b + 24 < n ? b + 24 : n) - 1; i >= b; i--)
            feed_rd(shuffled, &v[i], (int64_t)(v[i].ts / 1000));
    detect_engine_flush_partition(shuffled->e, 0);
    assert_true(sorted->sink.n >= 4);
    assert_int_equal(count(sorted, DR_OVERSPEED, DA_RAISED), 1);
    assert_int_equal(count(sorted, DR_GPS_JUMP, DA_RAISED), 1);
    assert_int_equal(count(sorted, DR_STATIONARY_ENGINE_ON, DA_RAISED), 1);
    assert_true(sink_equal(&sorted->sink, &shuffled->sink));
    struct detect_stats st;
    detect_engine_stats(shuffled->e, &st);
    assert_int_equal(st.too_late, 0);
    assert_int_equal(st.processed, (uint64_t)n);
    fx_free(sorted);
    fx_free(shuffled);
}

static void duplicates_and_too_late_are_counted_and_change_nothing(void **state)
{
    (void)state;
    struct detect_rules r;
    detect_rules_defaults(&r);
    r.lateness_ms = 2 * MIN;
    struct fx *f = fx_new(&r, NULL, 1);
    struct detect_reading d = {.truck_id = "TRK-1",
                               .truck_id_len = 5,
                               .speed_kmh = 50,
                               .ignition = true,
                               .fuel_pct = NAN,
                               .lat = LAT0,
                               .lon = LON0};
    for (int s = 0; s <= 600; s += 10) {
        d.ts_ms = T0 + s * S;
        d.seq = s;
        d.lon = LON0 + s * 2e-5;
        assert_int_equal(detect_engine_feed(f->e, 0, &d), 0);
        assert_int_equal(detect_engine_feed(f->e, 0, &d), 0); /* QoS 1 redelivery while held */
    }
    d.ts_ms = T0 + 300 * S; /* processed long ago: at or before the truck's last */
    d.seq = 300;
    assert_int_equal(detect_engine_feed(f->e, 0, &d), 0);
    d.ts_ms = T0 + 305 * S; /* new, but 5 min late */
    d.seq = 9999;
    assert_int_equal(detect_engine_feed(f->e, 0, &d), 0);
    struct detect_stats st;
    detect_engine_stats(f->e, &st);
    assert_int_equal(st.readings, 61 * 2 + 2);
    assert_int_equal(st.duplicates, 61);
    assert_int_equal(st.too_late, 2);
    assert_int_equal(st.trucks, 1);
    assert_int_equal(st.held, 12); /* arrived after 480 s: within 120 s of the partition time */
    detect_engine_flush_partition(f->e, 0);
    detect_engine_stats(f->e, &st);
    assert_int_equal(st.processed, 61);
    assert_int_equal(st.held, 0);
    fx_free(f);
}

static void clock_skewed_truck_is_still_detected(void **state)
{
    (void)state;
    struct detect_rules r;
    detect_rules_defaults(&r);
    struct fx *f = fx_new(&r, NULL, 1);
    /* TRK-LAG's clock is 10 min behind the other truck in its partition,
     * TRK-LAG30's 30 min and it reports every 3 min: silence is measured in
     * partition time at arrival, not in the trucks' own ts */
    double x = 0;
    for (int s = 0; s <= 1800; s += 10) {
        feed_p(f, 0, "TRK-OK", T0 + s * S, s * 20, 0, 72, true, 50);
        double sp = (s >= 300 && s < 600) ? 125 : 80;
        x += sp / 3.6 * 10;
        feed_p(f, 0, "TRK-LAG", T0 + s * S - 10 * MIN, x, 500, sp, true, 50);
        if (s % 180 == 0)
            feed_p(f, 0, "TRK-LAG30", T0 + s * S - 30 * MIN, s * 20, 1000, 72, true, 50);
    }
    detect_engine_flush_partition(f->e, 0);
    const struct rec *o = find(f, DR_OVERSPEED, DA_RAISED);
    assert_non_null(o);
    assert_string_equal(o->id, "TRK-LAG");
    assert_int_equal(o->started, T0 + 300 * S - 10 * MIN);
    assert_int_equal(count(f, DR_OFFLINE, DA_RAISED), 0);
    struct detect_stats st;
    detect_engine_stats(f->e, &st);
    assert_int_equal(st.too_late, 0);
    fx_free(f);
}

/* One truck whose clock runs an hour ahead: without a cap its readings
 * would carry the partition's time an hour forward and make every other
 * truck there look offline; with the cap (the service passes the wall clock
 * plus a minute) they do not, and the truck itself is still evaluated. */
static void clock_ahead_truck_moves_partition_time_only_to_the_cap(void **state)
{
    (void)state;
    struct detect_rules r;
    detect_rules_defaults(&r);
    for (int capped = 0; capped <= 1; capped++) {
        struct fx *f = fx_new(&r, NULL, 1);
        for (int s = 0; s <= 1800; s += 10) {
            if (capped)
                detect_engine_cap_time(f->e, T0 + s * S + MIN); /* "now" + 1 min */
            feed_p(f, 0, "TRK-OK1", T0 + s * S, s * 20, 0, 72, true, 50);
            feed_p(f, 0, "TRK-OK2", T0 + s * S, s * 20, 300, 72, true, 50);
            double sp = (s >= 300 && s < 600) ? 125 : 80;
            feed_p(f, 0, "TRK-AHEAD", T0 + s * S + 60 * MIN, s * 22, 600, sp, true, 50);
        }
        if (capped) {
            assert_int_equal(count(f, DR_OFFLINE, DA_RAISED), 0);
            /* nobody's readings wait behind the ahead truck's */
            struct detect_stats st;
            detect_engine_stats(f->e, &st);
            assert_true(st.processed >= 3 * 181 - 3 * 14);
            assert_non_null(find(f, DR_OVERSPEED, DA_RAISED));
            detect_engine_flush_partition(f->e, 0);
            const struct rec *o = find(f, DR_OVERSPEED, DA_RAISED);
            assert_non_null(o);
            assert_string_equal(o->id, "TRK-AHEAD");
            assert_int_equal(o->started, T0 + 300 * S + 60 * MIN);
        } else {
            /* the failure the cap prevents: the other trucks look offline */
            assert_true(count(f, DR_OFFLINE, DA_RAISED) >= 2);
        }
        fx_free(f);
    }
}

/* ---- on arrival (lateness 0, the default) ---- */

/* With the default rules the alert comes out of the feed of the reading
 * that crosses the threshold; with --lateness 120 the same reading is held
 * and nothing comes out until the partition's time moves 2 min past it. */
static void on_arrival_alert_comes_out_of_the_crossing_feed(void **state)
{
    (void)state;
    struct detect_rules r;
    detect_rules_defaults(&r);
    assert_int_equal(r.lateness_ms, 0);
    struct fx *f = fx_new(&r, NULL, 1);
    struct detect_stats st;
    for (int s = 0; s <= 50; s += 10) {
        feed(f, T0 + s * S, s * 125 / 3.6, 0, 125, true, 50);
        detect_engine_stats(f->e, &st);
        assert_int_equal(st.held, 0);
        assert_int_equal(st.processed, (uint64_t)(s / 10 + 1)); /* processed by its own feed */
    }
    assert_int_equal(f->sink.n, 0);
    feed(f, T0 + 60 * S, 60 * 125 / 3.6, 0, 125, true, 50); /* 60 s over the limit */
    assert_int_equal(f->sink.n, 1);
    assert_int_equal(f->sink.v[0].rule, DR_OVERSPEED);
    assert_int_equal(f->sink.v[0].state, DA_RAISED);
    assert_int_equal(f->sink.v[0].started, T0);
    assert_int_equal(f->sink.v[0].detected, T0 + 60 * S);
    feed(f, T0 + 70 * S, 70 * 125 / 3.6, 0, 90, true, 50);
    assert_int_equal(f->sink.n, 2);
    assert_int_equal(f->sink.v[1].state, DA_CLEARED);
    fx_free(f);

    r.lateness_ms = 2 * MIN;
    f = fx_new(&r, NULL, 1);
    for (int s = 0; s <= 70; s += 10)
        feed(f, T0 + s * S, s * 125 / 3.6, 0, s < 70 ? 125 : 90, true, 50);
    assert_int_equal(f->sink.n, 0); /* held for the lateness bound */
    detect_engine_stats(f->e, &st);
    assert_int_equal(st.held, 8);
    detect_engine_flush_partition(f->e, 0);
    assert_int_equal(count(f, DR_OVERSPEED, DA_RAISED), 1);
    assert_int_equal(find(f, DR_OVERSPEED, DA_RAISED)->detected, T0 + 60 * S);
    fx_free(f);
}

/* Lateness 0: a truck's reading older than its last processed one is
 * counted as too late and skipped by every rule: it neither breaks the
 * overspeed run it falls into (speed 50), nor raises a GPS jump (500 km
 * away), nor moves anything else.  Another truck of the partition whose
 * clock is 20 min behind is not late: lateness is per truck. */
static void late_reading_is_counted_and_skipped_by_every_rule(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL, NULL, 1);
    for (int s = 0; s <= 50; s += 10)
        feed(f, T0 + s * S, s * 120 / 3.6, 0, 120, true, 50);
    feed(f, T0 + 25 * S, 25 * 120 / 3.6, 0, 50, true, 50);         /* late, slow */
    feed(f, T0 + 35 * S, 500000, 0, 120, true, 50);                /* late, far away */
    feed_p(f, 0, "TRK-BEHIND", T0 - 20 * MIN, 0, 0, 0, false, 50); /* its own first reading */
    feed_p(f, 0, "TRK-BEHIND", T0 - 20 * MIN + 10 * S, 0, 0, 0, false, 50);
    struct detect_reading dup = {.truck_id = "TRK-000001",
                                 .truck_id_len = 10,
                                 .ts_ms = T0 + 50 * S,
                                 .seq = 5, /* the 50 s reading's (ts, seq) */
                                 .speed_kmh = 0,
                                 .fuel_pct = NAN};
    pos(0, 0, &dup.lat, &dup.lon);
    assert_int_equal(detect_engine_feed(f->e, 0, &dup), 0);
    assert_int_equal(f->sink.n, 0);
    feed(f, T0 + 60 * S, 60 * 120 / 3.6, 0, 120, true, 50);
    assert_int_equal(f->sink.n, 1);
    const struct rec *o = find(f, DR_OVERSPEED, DA_RAISED);
    assert_non_null(o);
    assert_int_equal(o->started, T0); /* the run the late reading fell into */
    assert_int_equal(o->detected, T0 + 60 * S);
    assert_int_equal(count(f, DR_GPS_JUMP, DA_RAISED), 0);
    struct detect_stats st;
    detect_engine_stats(f->e, &st);
    assert_int_equal(st.too_late, 2);
    assert_int_equal(st.duplicates, 1);
    assert_int_equal(st.processed, 7 + 2);
    assert_int_equal(st.held, 0);
    fx_free(f);
}

/* TRK-BK drives for 10 min, goes silent for 30 min of partition time (TRK-LIVE
 * keeps reporting), then uploads its buffered readings in order: 2 min
 * driving, 25 min stopped with the engine on, driving off, a GPS jump 300 km
 * away and back.  Then both report live.  Fed as the records arrive
 * (log_order), this is what a partition looks like for the detector. */
enum { BK_GAP_FROM = 600, BK_GAP_TO = 2400, BK_STOP = 720, BK_GO = 2220, BK_JUMP = 2340, BK_END = 2700 };

static void bk_reading(int s, double *dx, double *dy, double *speed)
{
    const double v = 60 / 3.6; /* m/s */
    *dy = 5000;
    if (s < BK_STOP) {
        *dx = s * v;
        *speed = 60;
    } else if (s < BK_GO) {
        *dx = BK_STOP * v + jit(s, 11);
        *dy += jit(s, 12);
        *speed = 0;
    } else {
        *dx = BK_STOP * v + (s - BK_GO) * v;
        *speed = 60;
    }
    if (s == BK_JUMP)
        *dx += 300000;
}

static void feed_bk(struct fx *f, int s)
{
    double dx, dy, sp;
    bk_reading(s, &dx, &dy, &sp);
    feed_p(f, 0, "TRK-BK", T0 + s * S, dx, dy, sp, true, 50);
}

static void feed_live(struct fx *f, int s)
{
    feed_p(f, 0, "TRK-LIVE", T0 + s * S, s * 20.0, 0, 72, true, 50);
}

/* Feeds the whole partition in log order; checkpoints (save + load into a
 * fresh engine) after `ckpt_at` backlog readings when >= 0. */
static struct sink backlog_run(int ckpt_at, int *raised_before_live)
{
    struct fx *f = fx_new(NULL, NULL, 1);
    for (int s = 0; s < BK_GAP_FROM; s += 10) {
        feed_live(f, s);
        feed_bk(f, s);
    }
    for (int s = BK_GAP_FROM; s < BK_GAP_TO; s += 10)
        feed_live(f, s);
    struct sink done = {.n = 0};
    int k = 0;
    for (int s = BK_GAP_FROM; s < BK_GAP_TO; s += 10, k++) {
        if (k == ckpt_at) {
            char *buf = NULL;
            size_t len = 0, cap = 0;
            assert_int_equal(detect_engine_save_partition(f->e, 0, &buf, &len, &cap), 0);
            done = f->sink;
            int64_t seq = f->seq;
            fx_free(f);
            f = fx_new(NULL, NULL, 1);
            f->seq = seq;
            assert_int_equal(detect_engine_load_partition(f->e, 0, buf, len), 0);
            free(buf);
        }
        feed_bk(f, s);
    }
    *raised_before_live = done.n + f->sink.n;
    for (int s = BK_GAP_TO; s <= BK_END; s += 10) {
        feed_live(f, s);
        feed_bk(f, s);
    }
    struct detect_stats st;
    detect_engine_stats(f->e, &st);
    assert_int_equal(st.too_late, 0);
    assert_int_equal(st.held, 0);
    for (int i = 0; i < f->sink.n; i++)
        done.v[done.n++] = f->sink.v[i];
    fx_free(f);
    return done;
}

static const struct rec *sink_find(const struct sink *k, enum detect_rule rule, enum detect_alert_state st)
{
    for (int i = 0; i < k->n; i++)
        if (k->v[i].rule == rule && k->v[i].state == st)
            return &k->v[i];
    return NULL;
}

static void backlog_after_30_minutes_offline_is_evaluated_in_full(void **state)
{
    (void)state;
    int before_live;
    struct sink k = backlog_run(-1, &before_live);
    /* offline while silent, cleared by the first buffered reading */
    const struct rec *o = sink_find(&k, DR_OFFLINE, DA_RAISED);
    assert_non_null(o);
    assert_string_equal(o->id, "TRK-BK");
    assert_int_equal(o->started, T0 + (BK_GAP_FROM - 10) * S);
    assert_int_equal(o->detected, T0 + (BK_GAP_FROM - 10 + 600 + 10) * S); /* the next 1-min sweep */
    assert_int_equal(sink_find(&k, DR_OFFLINE, DA_CLEARED)->ended, T0 + BK_GAP_FROM * S);
    /* the stop with the engine on inside the backlog */
    const struct rec *a = sink_find(&k, DR_STATIONARY_ENGINE_ON, DA_RAISED);
    assert_non_null(a);
    assert_string_equal(a->id, "TRK-BK");
    assert_int_equal(a->started, T0 + BK_STOP * S);
    assert_int_equal(a->detected, T0 + (BK_STOP + 1200) * S);
    /* driving off: the first reading outside the stop's radius */
    assert_int_equal(sink_find(&k, DR_STATIONARY_ENGINE_ON, DA_CLEARED)->ended, T0 + (BK_GO + 10) * S);
    /* the GPS jump inside the backlog */
    const struct rec *j = sink_find(&k, DR_GPS_JUMP, DA_RAISED);
    assert_non_null(j);
    assert_int_equal(j->started, T0 + BK_JUMP * S);
    assert_int_equal(sink_find(&k, DR_GPS_JUMP, DA_CLEARED)->ended, T0 + (BK_JUMP + 10) * S);
    /* nothing else, and all of it while the backlog was read */
    assert_int_equal(k.n, 6);
    assert_int_equal(before_live, 6);
    /* the same alerts after a checkpoint taken inside the backlog (in the
     * stop, before it raised) and restored into a fresh engine */
    for (int at = 1; at < (BK_GAP_TO - BK_GAP_FROM) / 10; at += 37) {
        struct sink c = backlog_run(at, &before_live);
        assert_true(sink_equal(&k, &c));
    }
}

/* ---- checkpoints ---- */

/* The checkpoint describes exactly the state after the readings fed so far:
 * on arrival (lateness 0, nothing held) and with a lateness bound (held
 * readings saved too). */
static void checkpoint_midway(int64_t lateness_ms)
{
    static struct rd v[1200];
    int n = make_day(v, 1200);
    struct detect_rules r;
    detect_rules_defaults(&r);
    r.lateness_ms = lateness_ms;
    struct fx *whole = fx_new(&r, NULL, 2);
    for (int i = 0; i < n; i++)
        feed_rd(whole, &v[i], i);
    detect_engine_flush_partition(whole->e, 0);

    struct fx *first = fx_new(&r, NULL, 2);
    int half = n / 2 + 5; /* mid-incident, with readings held */
    for (int i = 0; i < half; i++)
        feed_rd(first, &v[i], i);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    assert_int_equal(detect_engine_save_partition(first->e, 0, &buf, &len, &cap), 0);
    struct fx *second = fx_new(&r, NULL, 2);
    assert_int_equal(detect_engine_load_partition(second->e, 0, buf, len), 0);
    struct detect_stats st;
    detect_engine_stats(second->e, &st);
    assert_int_equal(st.trucks, 3);
    if (lateness_ms > 0)
        assert_true(st.held > 0);
    else
        assert_int_equal(st.held, 0);
    for (int i = half; i < n; i++)
        feed_rd(second, &v[i], i);
    detect_engine_flush_partition(second->e, 0);
    struct sink joined = first->sink;
    for (int i = 0; i < second->sink.n; i++)
        joined.v[joined.n++] = second->sink.v[i];
    assert_true(whole->sink.n >= 4);
    assert_true(sink_equal(&whole->sink, &joined));

    /* torn and foreign bytes are refused and leave the partition empty */
    assert_int_equal(detect_engine_load_partition(second->e, 0, buf, len - 1), -1);
    detect_engine_stats(second->e, &st);
    assert_int_equal(st.trucks, 0);
    buf[len / 2] ^= 1;
    assert_int_equal(detect_engine_load_partition(second->e, 0, buf, len), -1);
    assert_int_equal(detect_engine_load_partition(second->e, 0, "garbage", 7), -1);
    assert_int_equal(detect_engine_load_partition(second->e, 0, "", 0), -1);
    free(buf);
    fx_free(whole);
    fx_free(first);
    fx_free(second);
}

static void checkpoint_midway_gives_the_same_alerts(void **state)
{
    (void)state;
    checkpoint_midway(0);
}

static void checkpoint_midway_with_lateness_gives_the_same_alerts(void **state)
{
    (void)state;
    checkpoint_midway(2 * MIN);
}

static void reset_partition_forgets_its_trucks_only(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL, NULL, 2);
    feed_p(f, 0, "TRK-A", T0, 0, 0, 0, true, 50);
    feed_p(f, 1, "TRK-B", T0, 0, 0, 0, true, 50);
    detect_engine_reset_partition(f->e, 0);
    struct detect_stats st;
    detect_engine_stats(f->e, &st);
    assert_int_equal(st.trucks, 1);
    assert_true(detect_engine_bytes_per_truck(f->e) > 0);
    fx_free(f);
}

/* ---- records ---- */

static void alert_records_are_designs_json(void **state)
{
    (void)state;
    struct detect_alert a = {.truck_id = "TRK-000042xyz",
                             .truck_id_len = 10,
                             .rule = DR_STATIONARY_ENGINE_ON,
                             .state = DA_RAISED,
                             .started_ms = 1764201600123,
                             .detected_ms = 1764202800123,
                             .lat = 48.1,
                             .lon = 11.5};
    snprintf(a.details, sizeof(a.details), "{\"minutes\":20}");
    char buf[512];
    assert_int_equal(detect_alert_id(&a, buf, sizeof(buf)), strlen("TRK-000042:stationary_engine_on:1764201600123"));
    assert_string_equal(buf, "TRK-000042:stationary_engine_on:1764201600123");
    size_t n = detect_alert_json(&a, buf, sizeof(buf));
    assert_int_equal(n, strlen(buf));
    assert_string_equal(buf, "{\"alert_id\":\"TRK-000042:stationary_engine_on:1764201600123\",\"state\":\"raised\","
                             "\"truck_id\":\"TRK-000042\",\"rule\":\"stationary_engine_on\","
                             "\"started_ms\":1764201600123,\"detected_ms\":1764202800123,"
                             "\"lat\":48.1000000,\"lon\":11.5000000,\"details\":{\"minutes\":20}}");
    a.state = DA_CLEARED;
    a.ended_ms = 1764203000000;
    assert_true(detect_alert_json(&a, buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, "\"state\":\"cleared\""));
    assert_non_null(strstr(buf, "\"ended_ms\":1764203000000,"));
    assert_int_equal(detect_alert_json(&a, buf, 40), 0); /* does not fit */
}

static void disabled_rule_raises_nothing(void **state)
{
    (void)state;
    struct detect_rules r;
    detect_rules_defaults(&r);
    r.lateness_ms = 0;
    r.enabled[DR_OVERSPEED] = false;
    struct fx *f = fx_new(&r, NULL, 1);
    for (int s = 0; s <= 600; s += 10)
        feed(f, T0 + s * S, s * 125 / 3.6, 0, 125, true, 50);
    assert_int_equal(f->sink.n, 0);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stationary_19m59s_with_jitter_raises_nothing),
        cmocka_unit_test(stationary_20m_raises_once_and_clears_once),
        cmocka_unit_test(stationary_for_80_minutes_raises_no_repeats),
        cmocka_unit_test(crawling_jam_3kmh_engine_on_30min_raises_nothing),
        cmocka_unit_test(red_lights_and_stop_and_go_raise_nothing),
        cmocka_unit_test(loading_stop_engine_off_2h_raises_nothing),
        cmocka_unit_test(rest_break_then_driving_raises_nothing),
        cmocka_unit_test(refuel_raises_nothing),
        cmocka_unit_test(driving_4h_at_85kmh_raises_nothing),
        cmocka_unit_test(towing_59s_raises_nothing),
        cmocka_unit_test(towing_60s_raises_and_clears),
        cmocka_unit_test(gps_jitter_with_speed_noise_while_off_is_not_towing),
        cmocka_unit_test(overspeed_59s_raises_nothing),
        cmocka_unit_test(overspeed_60s_raises_and_clears),
        cmocka_unit_test(exactly_100kmh_is_not_overspeed),
        cmocka_unit_test(gps_jump_out_and_back_is_one_alert),
        cmocka_unit_test(gps_jump_to_a_place_that_stays_clears_after_three_readings),
        cmocka_unit_test(gps_jump_reading_is_no_stop_anchor),
        cmocka_unit_test(fuel_drop_30pct_over_5min_while_parked_raises),
        cmocka_unit_test(fuel_drop_is_cleared_by_refuelling),
        cmocka_unit_test(fuel_slow_leak_under_threshold_raises_nothing),
        cmocka_unit_test(geofence_exit_circle_raises_and_clears),
        cmocka_unit_test(geofence_exit_polygon_only_inside_active_window),
        cmocka_unit_test(geofence_id_cut_keeps_the_alert_json_valid),
        cmocka_unit_test(offline_by_partition_watermark),
        cmocka_unit_test(offline_9min_gap_raises_nothing),
        cmocka_unit_test(offline_wallclock_fallback_for_a_silent_partition),
        cmocka_unit_test(out_of_order_within_lateness_gives_the_same_alerts),
        cmocka_unit_test(duplicates_and_too_late_are_counted_and_change_nothing),
        cmocka_unit_test(clock_skewed_truck_is_still_detected),
        cmocka_unit_test(clock_ahead_truck_moves_partition_time_only_to_the_cap),
        cmocka_unit_test(on_arrival_alert_comes_out_of_the_crossing_feed),
        cmocka_unit_test(late_reading_is_counted_and_skipped_by_every_rule),
        cmocka_unit_test(backlog_after_30_minutes_offline_is_evaluated_in_full),
        cmocka_unit_test(checkpoint_midway_gives_the_same_alerts),
        cmocka_unit_test(checkpoint_midway_with_lateness_gives_the_same_alerts),
        cmocka_unit_test(reset_partition_forgets_its_trucks_only),
        cmocka_unit_test(alert_records_are_designs_json),
        cmocka_unit_test(disabled_rule_raises_nothing),
    };
    return cmocka_run_group_tests_name("detect_engine", tests, NULL, NULL);
}
