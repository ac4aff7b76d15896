/*
 * clock.c - simulated time with a speedup, capped at the wall clock (see
 * clock.h).
 */
#include "sim/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void sim_clock_init(struct sim_clock *c, int64_t start_ms, int64_t wall_now_ms, double speedup)
{
    c->start_ms = start_ms;
    c->wall0_ms = wall_now_ms;
    c->speedup = speedup;
}

int64_t sim_clock_limit(const struct sim_clock *c, int64_t wall_now_ms)
{
    int64_t lim = wall_now_ms;
    if (c->speedup > 0) {
        double el = (double)(wall_now_ms - c->wall0_ms) * c->speedup;
        double t = (double)c->start_ms + el;
        if (t < (double)lim)
            lim = (int64_t)t;
    }
    return lim;
}

int64_t sim_clock_wall_due(const struct sim_clock *c, int64_t sim_ms, int64_t wall_now_ms)
{
    int64_t due = sim_ms; /* never ahead of the wall clock */
    if (c->speedup > 0) {
        int64_t by_speed = c->wall0_ms + (int64_t)((double)(sim_ms - c->start_ms) / c->speedup + 0.999);
        if (by_speed > due)
            due = by_speed;
    }
    return due > wall_now_ms ? due : wall_now_ms;
}

void sim_clock_format(int64_t ms, char *buf, unsigned size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
