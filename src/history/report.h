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
 * Besides cmd_report, this header exposes the parsing and formatting helpers
 * the command is made of, so they can be tested without a database.
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

/* "2026-11-01T08:00:00Z", with ".250" only when there are milliseconds.
 * buf needs 32 bytes.  Returns buf. */
char *report_format_time(int64_t ms, char *buf, size_t size);

/* A duration for people, rounded to the second: "45s", "12m 05s",
 * "2h 05m 03s" (hours are not folded into days).  Returns buf. */
char *report_format_duration(double seconds, char *buf, size_t size);

/* A number with a fixed count of decimals ("-0.000" prints as "0.000"), or
 * "" when it is not finite.  Returns buf. */
char *report_format_number(double v, int decimals, char *buf, size_t size);

/* Writes s as a JSON string, quotes included; control characters as \u00XX.
 * s is NUL-terminated text of any bytes (not checked for UTF-8). */
void report_json_string(FILE *out, const char *s);

/* Writes s as one CSV field (RFC 4180): quoted, with quotes doubled, when it
 * holds a comma, a quote, CR or LF, or starts or ends with a space. */
void report_csv_field(FILE *out, const char *s);

/* Writes s as XML character data or attribute text: & < > " ' escaped,
 * characters XML 1.0 does not allow replaced by '?'. */
void report_xml_text(FILE *out, const char *s);

/* ---- tables ------------------------------------------------------------- */

enum report_format { REPORT_TABLE, REPORT_JSON, REPORT_CSV };

struct report_col {
    const char *key;   /* JSON key and CSV heading, e.g. "moving_s" */
    const char *title; /* table heading, e.g. "moving"; NULL = key */
    int right;         /* right-aligned in the table (numbers) */
};

/* One cell: what a table shows, and the value JSON and CSV get. */
struct report_cell {
    char *text;  /* table text; never NULL */
    char *value; /* NULL = null (JSON null, empty CSV field) */
    int raw;     /* value is a JSON literal (a number, or JSON text) */
};

/* Rows built cell by cell, left to right, top to bottom.  The add functions
 * never fail: running out of memory is remembered and reported by
 * report_table_print(). */
struct report_table {
    const struct report_col *cols; /* not owned */
    size_t ncols;
    struct report_cell *cells; /* row-major, count of them */
    size_t count, cap;
    int oom;
};

void report_table_init(struct report_table *t, const struct report_col *cols, size_t ncols);
/* A text cell; NULL is null, shown as null_text (NULL = "-"). */
void report_table_str(struct report_table *t, const char *s, const char *null_text);
/* A number with fixed decimals; not finite = null ("-"). */
void report_table_num(struct report_table *t, double v, int decimals);
/* A time (report_format_time); INT64_MIN = null ("-"). */
void report_table_time(struct report_table *t, int64_t ms);
/* Seconds: a duration for people in the table, a number in JSON and CSV. */
void report_table_dur(struct report_table *t, double seconds);
/* JSON text (e.g. a jsonb column): raw in JSON, a string in CSV and the
 * table; NULL = null. */
void report_table_json(struct report_table *t, const char *json);
size_t report_table_rows(const struct report_table *t);

/* Prints the table: TABLE as aligned columns with a heading line (control
 * characters shown as '?'), JSON as an array of objects (one per line), CSV
 * with a heading line and LF line ends (as psql --csv).  Returns 0, or -1 when a cell could not be stored
 * (out of memory) or out reports an error. */
int report_table_print(const struct report_table *t, enum report_format f, FILE *out);

/* Frees the cells; the table can be reused after report_table_init(). */
void report_table_release(struct report_table *t);

#endif
