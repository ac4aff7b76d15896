/*
 * pgbin.c - see pgbin.h.
 */
#include "core/pgbin.h"

#include "core/clock.h"
#include "core/pg.h"

#include <stdio.h>
#include <string.h>

#define PG_EPOCH_DAY 10957 /* 2000-01-01 in days since 1970-01-01 */

static void put_be(struct buf *b, uint64_t v, int bytes)
{
    unsigned char x[8];
    for (int i = 0; i < bytes; i++)
        x[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    buf_put(b, x, (size_t)bytes);
}

void pgbin_row(struct buf *b, int nfields)
{
    if (b->len == 0) {
        static const char sig[11] = "PGCOPY\n\377\r\n\0";
        buf_put(b, sig, sizeof(sig));
        put_be(b, 0, 4); /* flags */
        put_be(b, 0, 4); /* header extension */
    }
    put_be(b, (uint16_t)nfields, 2);
}

void pgbin_text(struct buf *b, const char *s, size_t n)
{
    put_be(b, (uint32_t)n, 4);
    buf_put(b, s, n);
}

void pgbin_int4(struct buf *b, int32_t v)
{
    put_be(b, 4, 4);
    put_be(b, (uint32_t)v, 4);
}

void pgbin_int8(struct buf *b, int64_t v)
{
    put_be(b, 8, 4);
    put_be(b, (uint64_t)v, 8);
}

void pgbin_float8(struct buf *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    put_be(b, 8, 4);
    put_be(b, u, 8);
}

void pgbin_bool(struct buf *b, int v)
{
    put_be(b, 1, 4);
    buf_putc(b, v ? 1 : 0);
}

void pgbin_timestamptz_ms(struct buf *b, int64_t ms)
{
    pgbin_int8(b, (ms - (int64_t)PG_EPOCH_DAY * FS_DAY_MS) * 1000);
}

void pgbin_null(struct buf *b)
{
    put_be(b, 0xffffffffu, 4);
}

void pgbin_date_of_ms(struct buf *b, int64_t ms)
{
    pgbin_int4(b, (int32_t)(fs_day_of(ms) - PG_EPOCH_DAY));
}

int pgbin_copy(PGconn *conn, const char *target, struct buf *data, char *err, size_t err_size)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "COPY %s FROM STDIN (FORMAT binary)", target);
    put_be(data, 0xffff, 2); /* the trailer: a field count of -1 */
    return pg_copy(conn, sql, data, err, err_size);
}
