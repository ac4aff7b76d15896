/*
 * report.h - `fleetsync report`: history queries on PostgreSQL (docs/design.md,
 * PostgreSQL contract), printed as an aligned table, JSON, CSV, GeoJSON or
 * GPX.
 *
 * avg-speed and summary read only the hourly rollups (telemetry_hourly), so a
 * month of a fleet never scans raw rows; trips, stops and track read the raw
 * rows of one truck and a bounded window.  Every value from the command line
 * reaches SQL as a parameter, never as SQL text.
 *
 * Besides cmd_report, this header exposes the parsing and GPX helpers the
 * command is made of, so they can be tested without a database; the table,
 * JSON and CSV printing is core/table.h's.
 */
#ifndef FS_REPORT_H
#define FS_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* fleetsync report <avg-speed|summary|trips|stops|track|alerts> [options];
 * argv[0] is "report".  Returns the exit code: 0 ok, 1 database error, 2
 * usage error. */
int cmd_report(int argc, char **argv);

/* ---- parsing ------------------------------------------------------------ */

/* Parses a duration: a whole number and a unit s, m, h or d ("90s", "30m",
 * "2h", "7d"), at most 36500 days.  "0s" is valid.  Returns 0 and sets *ms,
 * or -1. */
int report_parse_duration(const char *s, int64_t *ms);

/* Parses an ISO 8601 time into ms since the epoch: "2026-11-01T08:00:00Z",
 * "2026-11-01T10:00:00.250+02:00", "2026-11-01T08:00Z", "...+0200"; a space
 * may replace the T.  A date alone ("2026-11-01") is that UTC day's midnight.
 * A time of day needs a zone (Z or an offset).  Returns 0 or -1. */
int report_parse_time(const char *s, int64_t *ms);

/* Parses a UTC day "YYYY-MM-DD" into the ms of its midnight.  Returns 0 or -1. */
int report_parse_day(const char *s, int64_t *ms);

/* ---- formatting --------------------------------------------------------- */

/* Writes s as XML character data or attribute text: & < > " ' escaped,
 * characters XML 1.0 does not allow replaced by '?'. */
void report_xml_text(FILE *out, const char *s);

#endif
