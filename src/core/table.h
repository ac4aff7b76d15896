/*
 * table.h - a report's rows, printed for people and for programs from the
 * same cells: an aligned text table, CSV (RFC 4180, core/csv.h) or JSON
 * (`fleetsync report ...` and `fleetsync report invoice`).
 *
 * A cell holds two things: the text the aligned table shows ("2h 05m 03s",
 * "-" for nothing) and the value CSV and JSON get (7503, null).  Rows are
 * built cell by cell, left to right, top to bottom; a rule row (a line of
 * dashes above a total) is shown in the aligned table only.
 */
#ifndef FS_TABLE_H
#define FS_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum table_format { TABLE_TEXT, TABLE_JSON, TABLE_CSV };

struct table_col {
    const char *key;   /* JSON key and CSV heading, e.g. "moving_s" */
    const char *title; /* text heading, e.g. "moving"; NULL = key */
    int right;         /* right-aligned in the text table (numbers) */
    /* 0: as wide as its widest cell; N: N columns for every cell, as
     * printf's "%-*s" (a longer cell pushes the rest of its line). */
    int width;
};

enum table_cell_kind { TABLE_CELL, TABLE_RULE_BLANK, TABLE_RULE_DASHES };

struct table_cell {
    char *text;  /* text table; never NULL */
    char *value; /* NULL = null (JSON null, empty CSV field) */
    int raw;     /* value is a JSON literal (a number, true, JSON text) */
    enum table_cell_kind kind;
};

/* The add functions never fail: running out of memory is remembered and
 * reported by table_print(). */
struct table {
    const struct table_col *cols; /* not owned */
    size_t ncols;
    const char *gap;          /* between the text table's columns; table_init sets "  " */
    struct table_cell *cells; /* row-major, count of them */
    size_t count, cap;
    int oom;
};

void table_init(struct table *t, const struct table_col *cols, size_t ncols);
/* A text cell (a copy is kept); NULL is null, shown as null_text (NULL = "-"). */
void table_str(struct table *t, const char *s, const char *null_text);
/* A number with fixed decimals (table_format_number); not finite = null ("-"). */
void table_num(struct table *t, double v, int decimals);
/* A time (table_format_time); INT64_MIN = null ("-"). */
void table_time(struct table *t, int64_t ms);
/* Seconds: a duration for people in the text table, a number in JSON and CSV. */
void table_dur(struct table *t, double seconds);
/* JSON text (e.g. a jsonb column): raw in JSON, a string in CSV and the
 * text table; NULL = null. */
void table_json(struct table *t, const char *json);
/* A JSON literal the caller formatted (a number, true, false): the same
 * text everywhere, unquoted in JSON. */
void table_literal(struct table *t, const char *literal);
/* A rule row: dashes as wide as the column under the columns of mask (bit
 * i = column i), blanks under the others.  Only the text table shows it. */
void table_rule(struct table *t, uint64_t mask);
/* Rows, rule rows included. */
size_t table_rows(const struct table *t);

/* Prints the table: TEXT as aligned columns under a heading line (control
 * characters shown as '?', no trailing blanks after a left-aligned last
 * column), JSON as an array of objects (one per line, "[]" when empty), CSV
 * with a heading line and LF line ends (as psql --csv).  Returns 0, or -1
 * when a cell could not be stored (out of memory) or out reports an error. */
int table_print(const struct table *t, enum table_format f, FILE *out);

/* Writes row as one JSON object, of the columns from first_col on (an
 * invoice's total leaves out its truck_id). */
void table_json_object(const struct table *t, size_t row, size_t first_col, FILE *out);

/* Frees the cells; the table can be used again after table_init(). */
void table_release(struct table *t);

/* ---- the formats of the cells ------------------------------------------ */

/* "2026-11-01T08:00:00Z", with ".250" only when there are milliseconds.
 * buf needs 32 bytes.  Returns buf. */
char *table_format_time(int64_t ms, char *buf, size_t size);

/* A duration for people, rounded to the second: "45s", "12m 05s",
 * "2h 05m 03s" (hours are not folded into days); "-" when not finite.
 * Returns buf. */
char *table_format_duration(double seconds, char *buf, size_t size);

/* A number with a fixed count of decimals ("-0.000" prints as "0.000"), or
 * "" when it is not finite.  Returns buf. */
char *table_format_number(double v, int decimals, char *buf, size_t size);

/* Writes s as a JSON string, quotes included; control characters as \n, \r,
 * \t or \u00XX.  s is NUL-terminated text of any bytes (not checked for
 * UTF-8). */
void table_json_string(FILE *out, const char *s);

#endif
