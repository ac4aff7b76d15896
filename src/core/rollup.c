/*
 * rollup.c - hourly per-truck aggregates (see rollup.h for the rules).
 */
#include "core/rollup.h"

#include "core/geo.h"

#include <math.h>
#include <string.h>

int64_t rollup_hour_of(int64_t ts_ms)
{
    int64_t h = ts_ms / ROLLUP_HOUR_MS;
    if (ts_ms % ROLLUP_HOUR_MS < 0)
        h--;
    return h * ROLLUP_HOUR_MS;
}

int rollup_cmp(const struct rollup_point *a, const struct rollup_point *b)
{
    if (a->ts_ms != b->ts_ms)
        return a->ts_ms < b->ts_ms ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

enum rollup_kind rollup_interval(const struct rollup_point *prev, const struct rollup_point *cur, double *dist_km,
                                 double *dt_s)
{
    *dist_km = 0;
    *dt_s = 0;
    int64_t dt = cur->ts_ms - prev->ts_ms;
    if (dt <= 0 || dt > ROLLUP_MAX_GAP_MS)
        return ROLLUP_NONE;
    *dt_s = (double)dt / 1000.0;
    if (prev->speed_kmh > ROLLUP_MOVING_KMH || cur->speed_kmh > ROLLUP_MOVING_KMH) {
        *dist_km = geo_haversine_m(prev->lat, prev->lon, cur->lat, cur->lon) / 1000.0;
        return ROLLUP_MOVING;
    }
    return prev->ignition ? ROLLUP_IDLE : ROLLUP_PARKED;
}

void rollup_hour_init(struct rollup_hour *h, int64_t hour_ms)
{
    memset(h, 0, sizeof(*h));
    h->hour_ms = hour_ms;
    h->last.fuel_pct = NAN;
}

void rollup_hour_add(struct rollup_hour *a, const struct rollup_hour *b)
{
    if (b->samples == 0)
        return;
    if (a->samples == 0) {
        *a = *b;
        return;
    }
    a->samples += b->samples;
    a->distance_km += b->distance_km;
    a->moving_s += b->moving_s;
    a->idle_s += b->idle_s;
    a->parked_s += b->parked_s;
    if (b->max_speed_kmh > a->max_speed_kmh)
        a->max_speed_kmh = b->max_speed_kmh;
    a->fuel_used_pct += b->fuel_used_pct;
    a->last = b->last;
}

void rollup_fold(struct rollup_hour *h, const struct rollup_point *prev, const struct rollup_point *cur)
{
    h->samples++;
    if (cur->speed_kmh > h->max_speed_kmh)
        h->max_speed_kmh = cur->speed_kmh;
    if (prev) {
        double km, s;
        switch (rollup_interval(prev, cur, &km, &s)) {
        case ROLLUP_MOVING:
            h->distance_km += km;
            h->moving_s += s;
            break;
        case ROLLUP_IDLE:
            h->idle_s += s;
            break;
        case ROLLUP_PARKED:
            h->parked_s += s;
            break;
        case ROLLUP_NONE:
            break;
        }
        if (!isnan(prev->fuel_pct) && !isnan(cur->fuel_pct) && cur->fuel_pct < prev->fuel_pct)
            h->fuel_used_pct += prev->fuel_pct - cur->fuel_pct;
    }
    h->last = *cur;
}
