/*
 * timeparse.c - command-line times and durations (see timeparse.h).
 */
#include "core/timeparse.h"

#include "core/errmsg.h"

#include <stdio.h>
#include <string.h>

int time_parse_duration(const char *s, int64_t max_ms, int64_t *ms, char *err, size_t err_size)
{
    static const char help[] = "a number and a unit: 90s, 30m, 2h or 7d";
    size_t len = strnlen(s, 32);
    if (len == 0 || len >= 32)
        return errmsg_fail(err, err_size, "'%.32s' is not a duration (%s)", s, help);
    int64_t n = 0;
    size_t i = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        n = n * 10 + (s[i] - '0');
        if (n > max_ms) /* max_ms is far below INT64_MAX / 10: no overflow */
            return errmsg_fail(err, err_size, "'%s' is longer than %lld days", s, (long long)(max_ms / FS_DAY_MS));
    }
    if (i == 0 || i + 1 != len)
        return errmsg_fail(err, err_size, "'%s' is not a duration (%s)", s, help);
    int64_t unit_ms;
    switch (s[i]) {
    case 's':
        unit_ms = 1000;
        break;
    case 'm':
        unit_ms = 60 * 1000;
        break;
    case 'h':
        unit_ms = 3600 * 1000;
        break;
    case 'd':
        unit_ms = FS_DAY_MS;
        break;
    default:
        return errmsg_fail(err, err_size, "'%s': unknown unit '%c' (%s)", s, s[i], help);
    }
    if (n > max_ms / unit_ms)
        return errmsg_fail(err, err_size, "'%s' is longer than %lld days", s, (long long)(max_ms / FS_DAY_MS));
    *ms = n * unit_ms;
    return 0;
}

/* Reads exactly n digits at *p; returns the value or -1. */
static int digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    return v;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dim[m - 1];
}

/* "YYYY-MM-DD" at *p, advanced past it: 1 = read and valid, 0 = not that
 * shape, -1 = that shape but no such day. */
static int date_at(const char **p, int64_t *days)
{
    int y, mo, d;
    if ((y = digits(p, 4)) < 0 || *(*p)++ != '-' || (mo = digits(p, 2)) < 0 || *(*p)++ != '-' || (d = digits(p, 2)) < 0)
        return 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return -1;
    *days = days_from_civil(y, mo, d);
    return 1;
}

int time_parse_day(const char *s, int64_t *ms, char *err, size_t err_size)
{
    const char *p = s;
    int64_t days;
    int r = strnlen(s, 16) < 16 ? date_at(&p, &days) : 0;
    if (r < 0)
        return errmsg_fail(err, err_size, "'%s' is not a valid date", s);
    if (r == 0 || *p)
        return errmsg_fail(err, err_size, "'%.64s' is not a UTC day (YYYY-MM-DD, e.g. 2026-11-01)", s);
    *ms = days * FS_DAY_MS;
    return 0;
}

int time_parse_iso8601(const char *s, int date_alone, int64_t *ms, char *err, size_t err_size)
{
    static const char form[] = "YYYY-MM-DDTHH:MM[:SS[.fff]] and Z or +HH:MM, e.g. 2026-11-27T01:30:00Z";
    const char *p = s;
    int64_t days = 0, frac_ms = 0;
    int h, mi, sec = 0;

    if (strnlen(s, 64) >= 64)
        goto bad;
    int r = date_at(&p, &days);
    if (r == 0)
        goto bad;
    if (*p == '\0') {
        if (!date_alone)
            return errmsg_fail(err, err_size, "'%s' has no time of day (%s)", s, form);
        if (r < 0)
            return errmsg_fail(err, err_size, "'%s' is not a valid date", s);
        *ms = days * FS_DAY_MS;
        return 0;
    }
    if (*p != 'T' && *p != 't' && *p != ' ')
        goto bad;
    p++;
    if ((h = digits(&p, 2)) < 0 || *p++ != ':' || (mi = digits(&p, 2)) < 0)
        goto bad;
    if (*p == ':') {
        p++;
        if ((sec = digits(&p, 2)) < 0)
            goto bad;
        if (*p == '.' || *p == ',') {
            p++;
            int n = 0;
            for (; *p >= '0' && *p <= '9'; p++, n++)
                if (n < 3)
                    frac_ms = frac_ms * 10 + (*p - '0');
            if (n == 0)
                goto bad;
            for (; n < 3; n++)
                frac_ms *= 10;
        }
    }
    if (r < 0 || h > 23 || mi > 59 || sec > 59)
        return errmsg_fail(err, err_size, "'%s' is not a valid date and time", s);
    int off_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1;
        int oh, om = 0;
        if ((oh = digits(&p, 2)) < 0)
            goto bad;
        if (*p == ':')
            p++;
        if (*p && (om = digits(&p, 2)) < 0)
            goto bad;
        if (oh > 23 || om > 59)
            return errmsg_fail(err, err_size, "'%s' has an invalid UTC offset", s);
        off_min = sign * (oh * 60 + om);
    } else if (*p == '\0') {
        return errmsg_fail(err, err_size, "'%s' has no time zone: add Z for UTC or an offset such as +01:00", s);
    }
    if (*p != '\0')
        goto bad;
    *ms = (days * 86400 + h * 3600 + mi * 60 + sec - (int64_t)off_min * 60) * 1000 + frac_ms;
    return 0;
bad:
    return errmsg_fail(err, err_size, "'%.64s' is not an ISO 8601 time (%s)", s, form);
}

int time_parse_moment(const char *s, int64_t now_ms, int64_t max_back_ms, int64_t *ms, char *err, size_t err_size)
{
    if (strncmp(s, "now", 3) != 0)
        return time_parse_iso8601(s, 1, ms, err, err_size);
    if (s[3] == '\0') {
        *ms = now_ms;
        return 0;
    }
    if (s[3] != '-')
        return errmsg_fail(err, err_size, "'%.64s' is not a moment (now, now-2h, or an ISO 8601 time)", s);
    int64_t back;
    if (time_parse_duration(s + 4, max_back_ms, &back, err, err_size) != 0)
        return -1;
    *ms = now_ms - back;
    return 0;
}
