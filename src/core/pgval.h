/*
 * pgval.h - values checked and written the way PostgreSQL reads them, before
 * the sinks (history, billing) send them.
 *
 * The sinks store records that anyone who can produce to Kafka can write.
 * A value PostgreSQL refuses fails the whole batch's transaction, so every
 * value is checked here first: timestamps lie in the years 0001-9999 (inside
 * PostgreSQL's range, and four-digit years for every formatter), numbers are
 * finite and written in a form float8 reads as the same value, array
 * elements are quoted.  What pgsink does with a record PostgreSQL still
 * refuses is in pgsink.h.
 */
#ifndef FS_PGVAL_H
#define FS_PGVAL_H

#include "core/buf.h"

#include <stddef.h>
#include <stdint.h>

#define PGVAL_TS_MIN_MS (-62135596800000LL) /* 0001-01-01T00:00:00.000Z */
#define PGVAL_TS_MAX_MS 253402300799999LL   /* 9999-12-31T23:59:59.999Z */

/* 1 when ms since the epoch lies in [PGVAL_TS_MIN_MS, PGVAL_TS_MAX_MS]. */
int pgval_ts_ok(int64_t ms);

/* Appends the COPY text of a double precision value given as the digits of a
 * JSON number, p[0..n), with v the double a reader computed from them
 * (strtod()'s value).  The digits themselves when PostgreSQL reads them as v
 * (the common case: nothing is reformatted); otherwise v as "%.17g": a
 * mantissa that underflows ("1e-400") is 0 in C, but PostgreSQL's float8
 * refuses the text, so "0" is written.  Returns 0, or -1 (nothing appended)
 * when v is not finite. */
int pgval_put_float8_span(struct buf *b, const char *p, size_t n, double v);

/* The value PostgreSQL stores for those digits, as pgval_put_float8_span()
 * writes them, for binary COPY: v, or 0 for a mantissa that underflows.
 * Returns 0 with *out set, or -1 when v is not finite. */
int pgval_float8_span(const char *p, size_t n, double v, double *out);

/* Appends s[0..n) as one element of a PostgreSQL array literal: in double
 * quotes, with '"' and '\' escaped, so that no element is read as NULL
 * ("NULL", "null") or split (",", "{}", blanks).  The caller writes the
 * braces and the commas.  Returns 0, or -1 (nothing appended) when s holds a
 * NUL byte, which text cannot store. */
int pgval_put_array_elem(struct buf *b, const char *s, size_t n);

#endif
