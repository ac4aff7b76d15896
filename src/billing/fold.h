/*
 * fold.h - billing's per-truck, per-UTC-day fold, as pure functions (no I/O):
 * what one reading adds to its truck's days.
 *
 * A truck's readings, in the order they arrive (Kafka keeps a truck's order
 * in its partition, so a crash or a replay sees the same order), form
 * intervals last -> cur, classified as the history rollups do
 * (core/rollup.h: ignored when longer than 10 min or not positive in time;
 * "moving" when either end is faster than 5 km/h; otherwise idle when the
 * earlier reading has the engine on):
 *   - engine time: the interval when the earlier reading has ignition on;
 *   - idle time:   an idle interval (engine on, not moving);
 *   - distance:    a moving interval's great-circle distance, measured from
 *                  the last *good* position: a reading whose implied speed
 *                  from it exceeds BILL_MAX_KMH is a GPS jump and adds no
 *                  distance, and the reading after it is measured from the
 *                  good position again, so a jump out and back adds nothing.
 *                  Two consecutive readings that agree with each other but
 *                  not with the good position are a real relocation (a fix
 *                  after a long wrong stretch): the second becomes good;
 *   - max speed:   the highest speed_kmh of the day's readings.
 * An interval crossing 00:00 UTC is split at midnight in proportion to time
 * (distance too): each day gets the part that happened in it.
 *
 * A reading with the same (ts, seq) as the truck's last is a duplicate, an
 * earlier one is late: both are skipped, leave the state alone and add
 * nothing (the interval last -> next still covers the time and distance).
 * floor_ms (set when a replay recomputes days from floor_ms on) skips
 * readings before it and drops the parts of intervals before it: those days
 * were left alone and already hold them.
 */
#ifndef FS_BILLING_FOLD_H
#define FS_BILLING_FOLD_H

#include <stdint.h>

#define BILL_MAX_KMH 250.0

struct bill_point {
    int64_t ts_ms, seq;
    double lat, lon, speed_kmh;
    int ignition;
};

/* What billing remembers of a truck between readings (persisted in
 * billing_trucks and, per day, billing_day_end): the last reading's fields
 * and the last good position, flat so that no padding sits between them.
 * The floor is a UTC day start (a replay recomputes whole days), kept as
 * its day number. */
struct bill_state {
    int64_t last_ts_ms, last_seq;
    double last_lat, last_lon, last_speed_kmh;
    int64_t good_ts_ms;
    double good_lat, good_lon;
    int32_t floor_day; /* fs_day_of() of the floor; 0 = none */
    uint8_t last_ignition;
    uint8_t has_last;
    uint8_t has_good;  /* good_* hold the last accepted position */
    uint8_t last_good; /* the last reading's position was accepted */
};

/* Billing caches one per truck of the fleet (docs/billing.md, memory). */
_Static_assert(sizeof(struct bill_state) <= 72, "struct bill_state grew: billing's memory per truck");

/* What one reading adds to one UTC day. */
struct bill_delta {
    int64_t day_ms; /* start of the UTC day */
    double distance_km, engine_s, idle_s, max_speed_kmh;
    int has_reading; /* the reading itself lies in this day (0: only a part of an interval) */
};

struct bill_out {
    struct bill_delta d[2]; /* d[0]: the reading's day; d[1] (if n == 2): the day before */
    int n;
    int jump; /* the reading was a GPS jump (no distance, position not accepted) */
};

enum bill_result { BILL_FOLDED, BILL_DUPLICATE, BILL_LATE, BILL_BEFORE_FLOOR };

/* An empty state (a truck never seen). */
void bill_state_init(struct bill_state *s);

/* The floor in ms (0 = none), and setting it: floor_ms is a UTC day start
 * (or 0). */
int64_t bill_floor_ms(const struct bill_state *s);
void bill_set_floor_ms(struct bill_state *s, int64_t floor_ms);

/* The last reading, as a point. */
struct bill_point bill_last(const struct bill_state *s);

/* Folds cur into the truck's state *s.  On BILL_FOLDED fills *out with
 * what the reading adds (out->n days); otherwise *s is unchanged and
 * out->n is 0. */
enum bill_result bill_fold(struct bill_state *s, const struct bill_point *cur, struct bill_out *out);

#endif
