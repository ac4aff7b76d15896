/*
 * timeparse.h - the times and durations people type on FleetSync's command
 * lines ("--since 2h", "--at 2026-11-27T01:30:00Z", "--day 2026-11-01").
 *
 * Pure; any thread.  On failure err (if not NULL) gets a reason that quotes
 * the input and shows the expected form.
 */
#ifndef FS_TIMEPARSE_H
#define FS_TIMEPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "core/clock.h" /* FS_DAY_MS */

/* A whole number and one unit, s, m, h or d ("90s", "30m", "2h", "7d"),
 * from 0 up to max_ms.  Returns 0 with *ms set, or -1. */
int time_parse_duration(const char *s, int64_t max_ms, int64_t *ms, char *err, size_t err_size);

/* ISO 8601 in UTC or with an offset: YYYY-MM-DDTHH:MM[:SS[.fff...]] then Z,
 * +HH:MM, +HHMM or +HH ('T' may be a space; digits past milliseconds are
 * dropped).  A time of day needs its zone.  With date_alone, "YYYY-MM-DD" is
 * accepted as that UTC day's midnight.  Years from 1970.  Returns 0 with ms
 * since the epoch in *ms, or -1. */
int time_parse_iso8601(const char *s, int date_alone, int64_t *ms, char *err, size_t err_size);

/* A moment: "now", "now-" and a duration ("now-2h", "now-30d"), or an ISO
 * 8601 time as time_parse_iso8601 with date_alone (a time of day needs its
 * zone).  now_ms is the wall clock.  Returns 0 with *ms set, or -1. */
int time_parse_moment(const char *s, int64_t now_ms, int64_t max_back_ms, int64_t *ms, char *err, size_t err_size);

/* Exactly "YYYY-MM-DD": the ms of that UTC midnight.  Returns 0 or -1. */
int time_parse_day(const char *s, int64_t *ms, char *err, size_t err_size);

#endif
