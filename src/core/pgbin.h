/*
 * pgbin.h - rows in PostgreSQL's binary COPY format (COPY ... FROM STDIN
 * (FORMAT binary)), built in a struct buf: numbers go over as their bytes,
 * so a float8 arrives bit for bit and neither side formats or parses text
 * (printf("%.17g") of a double costs about a microsecond).
 *
 * A buffer holds one COPY's data: pgbin_row() writes the header first when
 * the buffer is empty, pgbin_copy() adds the trailer and sends it.  Values
 * are big-endian; a date is days since 2000-01-01.
 */
#ifndef FS_PGBIN_H
#define FS_PGBIN_H

#include "core/buf.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* Starts a row of nfields fields (the header first in an empty buffer). */
void pgbin_row(struct buf *b, int nfields);

void pgbin_text(struct buf *b, const char *s, size_t n);
void pgbin_int4(struct buf *b, int32_t v);
void pgbin_int8(struct buf *b, int64_t v);
void pgbin_float8(struct buf *b, double v);
void pgbin_bool(struct buf *b, int v);
/* A timestamptz of ms since 1970 (microseconds since 2000-01-01 on the wire). */
void pgbin_timestamptz_ms(struct buf *b, int64_t ms);
/* A NULL field. */
void pgbin_null(struct buf *b);
/* The UTC day of ms (a timestamp in ms since 1970) as a date. */
void pgbin_date_of_ms(struct buf *b, int64_t ms);

/* COPY table [(columns)] FROM STDIN (FORMAT binary) with data's rows
 * (target: "table" or "table (col, ...)"); 0, or -1 with err.  data gets
 * the trailer (reset it before the next rows). */
int pgbin_copy(PGconn *conn, const char *target, struct buf *data, char *err, size_t err_size);

#endif
