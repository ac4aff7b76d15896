/*
 * rollup.h - the hourly per-truck aggregates of the cold pipeline, as pure
 * functions (no I/O), shared by the history sink and the reports.
 *
 * A truck's readings, ordered by (ts, seq), form intervals prev -> cur.  An
 * interval belongs to the UTC hour of cur (the later reading).  It is
 *   - ignored when it is longer than ROLLUP_MAX_GAP_MS (the truck was
 *     offline: no time, no distance) or not positive in time;
 *   - "moving" when either end is faster than ROLLUP_MOVING_KMH: its
 *     great-circle distance and its duration count as driving;
 *   - otherwise "idle" when prev has the engine on, "parked" when off
 *     (distance not counted: a parked truck's fix only jitters).
 * fuel_used_pct sums the decreases of fuel_pct between readings (a refuel is
 * a rise and counts nothing).  samples counts the readings of the hour,
 * max_speed_kmh is their highest speed.  Average speed (docs/design.md) is
 * distance_km / moving_s.
 */
#ifndef FS_ROLLUP_H
#define FS_ROLLUP_H

#include <stdint.h>

#define ROLLUP_MAX_GAP_MS 600000
#define ROLLUP_MOVING_KMH 5.0
#define ROLLUP_HOUR_MS 3600000LL

struct rollup_point {
    int64_t ts_ms;
    int64_t seq;
    double lat, lon;
    double speed_kmh;
    int ignition;
    double fuel_pct; /* NAN when the reading has none */
};

enum rollup_kind { ROLLUP_NONE, ROLLUP_MOVING, ROLLUP_IDLE, ROLLUP_PARKED };

struct rollup_hour {
    int64_t hour_ms; /* start of the UTC hour */
    int64_t samples;
    double distance_km;
    double moving_s, idle_s, parked_s;
    double max_speed_kmh;
    double fuel_used_pct;
    struct rollup_point last; /* the latest reading folded in */
};

/* The start of the UTC hour holding ts_ms. */
int64_t rollup_hour_of(int64_t ts_ms);

/* Classifies prev -> cur; sets the distance (km) and duration (s) it adds. */
enum rollup_kind rollup_interval(const struct rollup_point *prev, const struct rollup_point *cur, double *dist_km,
                                 double *dt_s);

/* Starts an empty hour row. */
void rollup_hour_init(struct rollup_hour *h, int64_t hour_ms);

/* Folds reading cur (in the hour of h) into h; prev is the reading before it
 * (possibly in an earlier hour) or NULL for a truck's first reading.  Readings
 * must come in (ts, seq) order. */
void rollup_fold(struct rollup_hour *h, const struct rollup_point *prev, const struct rollup_point *cur);

/* Adds b, the rollup of readings of the same truck-hour that follow a's, to
 * a: sums add up, the maximum is kept, last becomes b's.  Folding a run of
 * readings in two parts and adding them gives what folding the run in one
 * part gives (the sums up to rounding). */
void rollup_hour_add(struct rollup_hour *a, const struct rollup_hour *b);

/* Orders two readings by (ts, seq): <0, 0, >0. */
int rollup_cmp(const struct rollup_point *a, const struct rollup_point *b);

#endif
