/*
 * trips.h - a truck's day cut into trips and stops, as pure functions (no
 * I/O, no globals), for `fleetsync report trips|stops`.
 *
 * Input: a truck's readings ordered by (ts, seq).  The intervals between
 * consecutive readings are classified exactly as the hourly rollups do
 * (rollup_interval() in core/rollup.h): "moving" when either end is faster
 * than ROLLUP_MOVING_KMH, else idle or parked; an interval longer than
 * ROLLUP_MAX_GAP_MS (no data) or not positive in time is not moving and has
 * no distance.  So the distance of the trips of a day is the day's rollup
 * distance minus the discarded short trips.
 *
 * Segmentation, in the spirit of Traccar's trips and stops reports:
 *   1. A stationary run is a maximal run of consecutive non-moving intervals,
 *      from reading a to reading b.  It is a stop candidate when it lasts at
 *      least min_stop_ms (ts[b] - ts[a]) or when any of its readings has the
 *      ignition off; a shorter run with the engine on (a red light, a jam) is
 *      a pause inside a trip.
 *   2. Between stop candidates (and the ends of the data) lie candidate
 *      trips: from the last reading before the truck is seen moving to the
 *      first reading at which it is seen standing (the first and last
 *      readings of its moving intervals), so a trip's first and last
 *      intervals, which carry distance, belong to it.
 *   3. A candidate trip shorter than min_trip_km is discarded: its readings
 *      join the stationary time around it.
 *   4. The stops are what lies between the kept trips (and before the first,
 *      after the last), provided it holds a stop candidate; a stop is
 *      positioned at its first reading (where the truck arrived).
 * Every reading therefore belongs to at most one trip and one stop, a trip
 * and the stop after it share the arrival reading, and trips and stops
 * alternate.
 */
#ifndef FS_TRIPS_H
#define FS_TRIPS_H

#include "core/rollup.h"

#include <stddef.h>
#include <stdint.h>

#define TRIPS_DEFAULT_MIN_STOP_MS 300000 /* 5 min */
#define TRIPS_DEFAULT_MIN_TRIP_KM 0.5

struct trips_params {
    int64_t min_stop_ms; /* >= 0 */
    double min_trip_km;  /* >= 0 */
};

struct trip {
    size_t first, last; /* indices of the departure and arrival readings */
    int64_t start_ms, end_ms;
    double start_lat, start_lon, end_lat, end_lon;
    double distance_km;   /* over its moving intervals */
    double duration_s;    /* end - start, pauses included */
    double moving_s;      /* time in moving intervals */
    double avg_speed_kmh; /* distance_km / moving_s (docs/design.md); > 0 */
    double max_speed_kmh; /* highest reading speed, first..last */
};

struct stop {
    size_t first, last; /* indices of its first and last readings */
    int64_t start_ms, end_ms;
    double lat, lon; /* of the first reading */
    double duration_s;
    double engine_on_s; /* intervals (gaps excluded) whose earlier reading has the ignition on */
};

struct trips_result {
    struct trip *trips; /* in time order, trip_count of them */
    size_t trip_count;
    struct stop *stops; /* in time order */
    size_t stop_count;
};

/* The defaults: a 5 min stop, a 0.5 km trip. */
void trips_params_default(struct trips_params *p);

/* Cuts pts[0..n-1], ordered by (ts, seq) (rollup_cmp), into trips and stops.
 * Returns 0 and fills *out (arrays owned by *out, freed by
 * trips_result_release(); both may be empty), or -1 when memory runs out
 * (then *out is empty).  pts is not modified. */
int trips_segment(const struct rollup_point *pts, size_t n, const struct trips_params *p, struct trips_result *out);

/* Frees the arrays and empties *r; safe on an empty or released result. */
void trips_result_release(struct trips_result *r);

#endif
