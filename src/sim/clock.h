/*
 * clock.h - the simulated clock: a start in the past, a speedup, and the
 * rule that it never runs ahead of the wall clock (docs/design.md).
 *
 * sim_clock_limit() says up to which simulated time readings may be sent
 * at a given wall time.  With speedup X the simulated time advances X
 * times faster than the wall clock from start_ms; with X = 0 it is bounded
 * only by the wall clock (the sender goes as fast as the broker accepts).
 * Either way it is capped at the wall clock, so a run that catches up with
 * "now" continues in real time.  Pure functions: the caller passes wall
 * times, which makes it testable.
 */
#ifndef FS_SIM_CLOCK_H
#define FS_SIM_CLOCK_H

#include <stdint.h>

struct sim_clock {
    int64_t start_ms; /* simulated time at the start */
    int64_t wall0_ms; /* wall time at the start */
    double speedup;   /* 0 = as fast as possible */
};

void sim_clock_init(struct sim_clock *c, int64_t start_ms, int64_t wall_now_ms, double speedup);

/* The latest simulated time that may be reached at wall time wall_now_ms;
 * never more than wall_now_ms. */
int64_t sim_clock_limit(const struct sim_clock *c, int64_t wall_now_ms);

/* Wall time at which simulated time sim_ms becomes due (for sleeping);
 * wall_now_ms if already due or speedup is 0. */
int64_t sim_clock_wall_due(const struct sim_clock *c, int64_t sim_ms, int64_t wall_now_ms);

/* Formats ms as "2026-10-27T00:00:00Z" into buf (at least 24 bytes). */
void sim_clock_format(int64_t ms, char *buf, unsigned size);

#endif
