/*
 * pgval.c - values in the form PostgreSQL reads them (see pgval.h).
 */
#include "core/pgval.h"

#include <math.h>
#include <string.h>

int pgval_ts_ok(int64_t ms)
{
    return ms >= PGVAL_TS_MIN_MS && ms <= PGVAL_TS_MAX_MS;
}

/* 1 when the mantissa of the number text (the part before an exponent) has
 * a digit other than 0: the text is not a zero, whatever strtod() made of it. */
static int nonzero_mantissa(const char *p, size_t n)
{
    for (size_t i = 0; i < n && p[i] != 'e' && p[i] != 'E'; i++)
        if (p[i] >= '1' && p[i] <= '9')
            return 1;
    return 0;
}

int pgval_put_float8_span(struct buf *b, const char *p, size_t n, double v)
{
    if (!isfinite(v))
        return -1;
    /* PostgreSQL's float8in() is strtod() plus one refusal: ERANGE with a
     * result of 0 or +-HUGE_VAL.  A finite v rules out the latter; a zero v
     * of a text that is not zero is the former. */
    if (v == 0 && nonzero_mantissa(p, n)) {
        buf_put(b, "0", 1);
        return 0;
    }
    buf_put(b, p, n);
    return 0;
}

int pgval_float8_span(const char *p, size_t n, double v, double *out)
{
    if (!isfinite(v))
        return -1;
    *out = v == 0 && nonzero_mantissa(p, n) ? 0.0 : v;
    return 0;
}

int pgval_put_array_elem(struct buf *b, const char *s, size_t n)
{
    if (memchr(s, '\0', n))
        return -1;
    buf_putc(b, '"');
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '"' && s[i] != '\\')
            continue;
        buf_put(b, s + from, i - from);
        buf_putc(b, '\\');
        from = i;
    }
    buf_put(b, s + from, n - from);
    buf_putc(b, '"');
    return 0;
}
