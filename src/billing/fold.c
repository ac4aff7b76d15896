/*
 * fold.c - billing's per-truck-day fold (see fold.h for the rules).
 */
#include "billing/fold.h"

#include "core/clock.h"
#include "core/geo.h"
#include "core/rollup.h"

#include <math.h>
#include <string.h>

void bill_state_init(struct bill_state *s)
{
    memset(s, 0, sizeof(*s));
}

int64_t bill_floor_ms(const struct bill_state *s)
{
    return (int64_t)s->floor_day * FS_DAY_MS;
}

void bill_set_floor_ms(struct bill_state *s, int64_t floor_ms)
{
    s->floor_day = (int32_t)fs_day_of(floor_ms);
}

struct bill_point bill_last(const struct bill_state *s)
{
    return (struct bill_point){s->last_ts_ms, s->last_seq,       s->last_lat,
                               s->last_lon,   s->last_speed_kmh, s->last_ignition};
}

static struct rollup_point to_rollup(const struct bill_point *p)
{
    return (struct rollup_point){.ts_ms = p->ts_ms,
                                 .seq = p->seq,
                                 .lat = p->lat,
                                 .lon = p->lon,
                                 .speed_kmh = p->speed_kmh,
                                 .ignition = p->ignition,
                                 .fuel_pct = NAN};
}

static int cmp_point(const struct bill_point *a, const struct bill_point *b)
{
    if (a->ts_ms != b->ts_ms)
        return a->ts_ms < b->ts_ms ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

static int plausible(double lat1, double lon1, int64_t ts1, const struct bill_point *cur, double *dist_m)
{
    *dist_m = geo_haversine_m(lat1, lon1, cur->lat, cur->lon);
    return geo_implied_speed_kmh(*dist_m, cur->ts_ms - ts1) <= BILL_MAX_KMH;
}

enum bill_result bill_fold(struct bill_state *s, const struct bill_point *cur, struct bill_out *out)
{
    memset(out, 0, sizeof(*out));
    struct bill_point last = bill_last(s);
    int64_t floor_ms = bill_floor_ms(s);
    if (s->has_last) {
        int c = cmp_point(cur, &last);
        if (c == 0)
            return BILL_DUPLICATE;
        if (c < 0)
            return BILL_LATE;
    }
    if (floor_ms && cur->ts_ms < floor_ms)
        return BILL_BEFORE_FLOOR;

    struct bill_delta *today = &out->d[0];
    today->day_ms = fs_day_start_ms(cur->ts_ms);
    today->has_reading = 1;
    today->max_speed_kmh = cur->speed_kmh;
    out->n = 1;

    /* Is cur's position believable? */
    double dist_m = 0;
    int accepted = 1;
    if (s->has_good && !plausible(s->good_lat, s->good_lon, s->good_ts_ms, cur, &dist_m)) {
        double from_last_m;
        if (s->has_last && !s->last_good && plausible(last.lat, last.lon, last.ts_ms, cur, &from_last_m)) {
            dist_m = from_last_m; /* a relocation confirmed by two readings */
        } else {
            accepted = 0;
            dist_m = 0;
            out->jump = 1;
        }
    }

    if (s->has_last) {
        struct rollup_point a = to_rollup(&last), b = to_rollup(cur);
        double unused_km, dt_s;
        enum rollup_kind kind = rollup_interval(&a, &b, &unused_km, &dt_s);
        if (kind != ROLLUP_NONE) {
            double km = kind == ROLLUP_MOVING ? dist_m / 1000.0 : 0;
            double engine = last.ignition ? dt_s : 0;
            double idle = kind == ROLLUP_IDLE ? dt_s : 0;
            double f_before = 0;
            if (last.ts_ms < today->day_ms)
                f_before = (double)(today->day_ms - last.ts_ms) / (double)(cur->ts_ms - last.ts_ms);
            today->distance_km = km * (1 - f_before);
            today->engine_s = engine * (1 - f_before);
            today->idle_s = idle * (1 - f_before);
            int64_t before_day = today->day_ms - FS_DAY_MS;
            if (f_before > 0 && (!floor_ms || before_day >= floor_ms)) {
                struct bill_delta *y = &out->d[1];
                y->day_ms = before_day;
                y->distance_km = km * f_before;
                y->engine_s = engine * f_before;
                y->idle_s = idle * f_before;
                out->n = 2;
            }
        }
    }

    if (accepted) {
        s->has_good = 1;
        s->good_ts_ms = cur->ts_ms;
        s->good_lat = cur->lat;
        s->good_lon = cur->lon;
    }
    s->last_good = accepted;
    s->last_ts_ms = cur->ts_ms;
    s->last_seq = cur->seq;
    s->last_lat = cur->lat;
    s->last_lon = cur->lon;
    s->last_speed_kmh = cur->speed_kmh;
    s->last_ignition = (uint8_t)(cur->ignition != 0);
    s->has_last = 1;
    return BILL_FOLDED;
}
