/*
 * clock.h - FleetSync's two clocks in milliseconds, and the length of a day.
 *
 * fs_mono_ms() is CLOCK_MONOTONIC: for deadlines, timeouts and rates, never
 * shown to people and never stored (it does not jump when the wall clock is
 * set).  fs_wall_ms() is CLOCK_REALTIME, ms since the Unix epoch: for
 * timestamps that are stored, compared with readings' ts, or printed.
 *
 * Both are small inline functions (hot loops of the dashboard and the
 * detector read them per message).  Any thread.
 */
#ifndef FS_CORE_CLOCK_H
#define FS_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds in a (UTC) day. */
#define FS_DAY_MS (24LL * 3600 * 1000)

/* The UTC day holding ms (ms since the epoch): days since 1970-01-01,
 * rounded down, so times before 1970 fall in negative days. */
static inline int64_t fs_day_of(int64_t ms)
{
    return ms >= 0 ? ms / FS_DAY_MS : (ms - FS_DAY_MS + 1) / FS_DAY_MS;
}

/* The start (UTC midnight) of the day holding ms. */
static inline int64_t fs_day_start_ms(int64_t ms)
{
    return fs_day_of(ms) * FS_DAY_MS;
}

static inline int64_t fs_clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic ms (arbitrary origin): deadlines and intervals. */
static inline int64_t fs_mono_ms(void)
{
    return fs_clock_ms(CLOCK_MONOTONIC);
}

/* Wall-clock ms since the Unix epoch. */
static inline int64_t fs_wall_ms(void)
{
    return fs_clock_ms(CLOCK_REALTIME);
}

#endif
