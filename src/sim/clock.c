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

int64_t sim_clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sim_clock_parse_time(const char *s, int64_t wall_now_ms, int64_t *out_ms)
{
    if (strncmp(s, "now", 3) == 0) {
        const char *p = s + 3;
        if (!*p) {
            *out_ms = wall_now_ms;
            return 0;
        }
        if (*p != '-')
            return -1;
        char *end;
        double v = strtod(p + 1, &end);
        if (end == p + 1 || v < 0)
            return -1;
        double unit = !strcmp(end, "d") ? 86400e3 : !strcmp(end, "h") ? 3600e3 : !strcmp(end, "m") ? 60e3
                    : !strcmp(end, "s") ? 1e3 : -1;
        if (unit < 0)
            return -1;
        *out_ms = wall_now_ms - (int64_t)(v * unit);
        return 0;
    }
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
        return -1;
    const char *p = s + n;
    double frac = 0;
    if (*p == 'T' || *p == ' ') {
        int m = 0;
        if (sscanf(p + 1, "%2d:%2d:%2d%n", &h, &mi, &sec, &m) != 3 || m != 8)
            return -1;
        p += 1 + m;
        if (*p == '.') {
            char *end;
            frac = strtod(p, &end);
            p = end;
        }
    }
    if (*p == 'Z')
        p++;
    else if (!strncmp(p, "+00:00", 6))
        p += 6;
    if (*p)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970)
        return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out_ms = (int64_t)t * 1000 + (int64_t)(frac * 1000);
    return 0;
}

void sim_clock_format(int64_t ms, char *buf, unsigned size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
