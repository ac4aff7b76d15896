/*
 * trips.c - trips and stops of a truck's readings (see trips.h for the rules).
 *
 * Three passes over the readings, none of which allocates per reading: find
 * the candidate trips between stop candidates, keep those long enough, then
 * take the spans between kept trips that hold a stop candidate as stops.
 */
#include "report/trips.h"

#include "core/grow.h"

#include <stdlib.h>
#include <string.h>

void trips_params_default(struct trips_params *p)
{
    p->min_stop_ms = TRIPS_DEFAULT_MIN_STOP_MS;
    p->min_trip_km = TRIPS_DEFAULT_MIN_TRIP_KM;
}

void trips_result_release(struct trips_result *r)
{
    free(r->trips);
    free(r->stops);
    memset(r, 0, sizeof(*r));
}

/* Whether the interval ending at reading k (k >= 1) is moving. */
static int is_moving(const struct rollup_point *pts, size_t k, double *dist_km, double *dt_s)
{
    double d, t;
    enum rollup_kind kind = rollup_interval(&pts[k - 1], &pts[k], &d, &t);
    if (dist_km)
        *dist_km = d;
    if (dt_s)
        *dt_s = t;
    return kind == ROLLUP_MOVING;
}

/* The stationary run whose first interval ends at reading k (not moving):
 * returns b, its last reading; the run spans readings k - 1 .. b. */
static size_t run_end(const struct rollup_point *pts, size_t n, size_t k)
{
    size_t b = k;
    while (b + 1 < n && !is_moving(pts, b + 1, NULL, NULL))
        b++;
    return b;
}

/* Whether the run of readings a..b is a stop candidate. */
static int run_is_stop(const struct rollup_point *pts, size_t a, size_t b, const struct trips_params *p)
{
    if (pts[b].ts_ms - pts[a].ts_ms >= p->min_stop_ms)
        return 1;
    for (size_t i = a; i <= b; i++)
        if (!pts[i].ignition)
            return 1;
    return 0;
}

/* Whether readings s..e hold a stop candidate.  s..e must start at the
 * data's start or at the end of a moving interval, and end at the data's end
 * or at the start of one, so that the runs found in it are maximal. */
static int span_has_stop(const struct rollup_point *pts, size_t s, size_t e, const struct trips_params *p)
{
    size_t k = s + 1;
    while (k <= e) {
        if (is_moving(pts, k, NULL, NULL)) {
            k++;
            continue;
        }
        size_t b = run_end(pts, e + 1, k);
        if (run_is_stop(pts, k - 1, b, p))
            return 1;
        k = b + 1;
    }
    return 0;
}

static void trip_fill(const struct rollup_point *pts, size_t first, size_t last, struct trip *t)
{
    memset(t, 0, sizeof(*t));
    t->first = first;
    t->last = last;
    t->start_ms = pts[first].ts_ms;
    t->end_ms = pts[last].ts_ms;
    t->start_lat = pts[first].lat;
    t->start_lon = pts[first].lon;
    t->end_lat = pts[last].lat;
    t->end_lon = pts[last].lon;
    t->duration_s = (double)(t->end_ms - t->start_ms) / 1000.0;
    t->max_speed_kmh = pts[first].speed_kmh;
    for (size_t k = first + 1; k <= last; k++) {
        double d, dt;
        if (is_moving(pts, k, &d, &dt)) {
            t->distance_km += d;
            t->moving_s += dt;
        }
        if (pts[k].speed_kmh > t->max_speed_kmh)
            t->max_speed_kmh = pts[k].speed_kmh;
    }
    t->avg_speed_kmh = t->moving_s > 0 ? t->distance_km / t->moving_s * 3600.0 : 0;
}

static void stop_fill(const struct rollup_point *pts, size_t first, size_t last, struct stop *s)
{
    memset(s, 0, sizeof(*s));
    s->first = first;
    s->last = last;
    s->start_ms = pts[first].ts_ms;
    s->end_ms = pts[last].ts_ms;
    s->lat = pts[first].lat;
    s->lon = pts[first].lon;
    s->duration_s = (double)(s->end_ms - s->start_ms) / 1000.0;
    for (size_t k = first + 1; k <= last; k++) {
        double d, dt;
        if (rollup_interval(&pts[k - 1], &pts[k], &d, &dt) != ROLLUP_NONE && pts[k - 1].ignition)
            s->engine_on_s += dt;
    }
}

/* Keeps candidate trip first..last if it is long enough. */
static int trip_close(const struct rollup_point *pts, size_t first, size_t last, const struct trips_params *p,
                      struct trips_result *out, size_t *cap)
{
    struct trip t;
    trip_fill(pts, first, last, &t);
    if (t.distance_km < p->min_trip_km)
        return 0;
    if (grow_one(&out->trips, cap, out->trip_count, sizeof(t), 16) < 0)
        return -1;
    out->trips[out->trip_count++] = t;
    return 0;
}

static int stop_add(const struct rollup_point *pts, size_t first, size_t last, const struct trips_params *p,
                    struct trips_result *out, size_t *cap)
{
    if (last <= first || !span_has_stop(pts, first, last, p))
        return 0;
    if (grow_one(&out->stops, cap, out->stop_count, sizeof(struct stop), 16) < 0)
        return -1;
    stop_fill(pts, first, last, &out->stops[out->stop_count++]);
    return 0;
}

int trips_segment(const struct rollup_point *pts, size_t n, const struct trips_params *p, struct trips_result *out)
{
    size_t trip_cap = 0, stop_cap = 0;
    memset(out, 0, sizeof(*out));
    if (n < 2)
        return 0;

    /* Candidate trips: moving intervals joined across pauses. */
    int open = 0;
    size_t first = 0, last = 0, k = 1;
    while (k < n) {
        if (is_moving(pts, k, NULL, NULL)) {
            if (!open) {
                open = 1;
                first = k - 1;
            }
            last = k++;
            continue;
        }
        size_t b = run_end(pts, n, k);
        if (open && run_is_stop(pts, k - 1, b, p)) {
            if (trip_close(pts, first, last, p, out, &trip_cap) < 0)
                goto fail;
            open = 0;
        }
        k = b + 1;
    }
    if (open && trip_close(pts, first, last, p, out, &trip_cap) < 0)
        goto fail;

    /* Stops: the spans around the kept trips that hold a stop candidate. */
    size_t from = 0;
    for (size_t i = 0; i < out->trip_count; i++) {
        if (stop_add(pts, from, out->trips[i].first, p, out, &stop_cap) < 0)
            goto fail;
        from = out->trips[i].last;
    }
    if (stop_add(pts, from, n - 1, p, out, &stop_cap) < 0)
        goto fail;
    return 0;
fail:
    trips_result_release(out);
    return -1;
}
