/*
 * pack.c - a truck-hour of readings as one row of PostgreSQL arrays and back
 * (the layout is in pack.h).  The decoder trusts nothing: every array is
 * read with its length checked against n, every number against its type's
 * range, and the readings it returns obey what the encoder requires, so a
 * decoded hour can always be packed again.
 */
#include "core/pack.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double p10[PACK_MAX_SCALE + 1] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};

/* The six numbers stored as fixed-point or raw floats, in column order. */
struct field {
    const char *name;
    int delta;    /* differences to the previous present value */
    int nullable; /* may be absent (NAN) */
    size_t off;
};

#define NFIELDS 6
static const struct field fields[NFIELDS] = {
    {"lat", 1, 0, offsetof(struct pack_reading, lat)},
    {"lon", 1, 0, offsetof(struct pack_reading, lon)},
    {"speed_kmh", 0, 0, offsetof(struct pack_reading, speed_kmh)},
    {"heading_deg", 0, 1, offsetof(struct pack_reading, heading_deg)},
    {"fuel_pct", 1, 1, offsetof(struct pack_reading, fuel_pct)},
    {"odometer_km", 1, 1, offsetof(struct pack_reading, odometer_km)},
};

static double get(const struct pack_reading *r, const struct field *f)
{
    double v;
    memcpy(&v, (const char *)r + f->off, sizeof(v));
    return v;
}

static void set(struct pack_reading *r, const struct field *f, double v)
{
    memcpy((char *)r + f->off, &v, sizeof(v));
}

static void fail(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(char *err, size_t err_size, const char *fmt, ...)
{
    if (!err || !err_size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

static int fits_i32(int64_t v)
{
    return v >= INT32_MIN && v <= INT32_MAX;
}

/* ---- encoding ----------------------------------------------------------------- */

static void put_i64(struct buf *b, int64_t v)
{
    char tmp[24];
    int i = (int)sizeof(tmp);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--i] = '-';
    buf_put(b, tmp + i, sizeof(tmp) - (size_t)i);
}

/* The shortest of %.15g..%.17g that reads back as v (float8in reads it). */
static void put_double(struct buf *b, double v)
{
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    buf_puts(b, tmp);
}

/* The integer k with (double)k / 10^s == v bit for bit and |k| within
 * int32, or -1. */
static int fixed(double v, int s, int64_t *k)
{
    double x = v * p10[s];
    if (!(x > -2147483648.5 && x < 2147483647.5))
        return -1;
    long long r = llround(x);
    if (!fits_i32(r))
        return -1;
    double back = (double)r / p10[s];
    if (memcmp(&back, &v, sizeof(v)) != 0)
        return -1;
    *k = r;
    return 0;
}

/* The smallest scale at which every present value of f is exact with its
 * k (or its differences, for a delta field) within int4; -1 if none. */
static int choose_scale(const struct pack_reading *r, size_t n, const struct field *f)
{
    for (int s = 0; s <= PACK_MAX_SCALE; s++) {
        int64_t prev = 0, k;
        size_t i;
        for (i = 0; i < n; i++) {
            double v = get(&r[i], f);
            if (isnan(v))
                continue;
            if (fixed(v, s, &k) < 0 || (f->delta && !fits_i32(k - prev)))
                break;
            if (f->delta)
                prev = k;
        }
        if (i == n)
            return s;
    }
    return -1;
}

static int check_readings(const struct pack_reading *r, size_t n, int64_t hour_ms, char *err, size_t err_size)
{
    if (n == 0) {
        fail(err, err_size, "no readings to pack");
        return -1;
    }
    if (hour_ms > INT64_MAX - PACK_HOUR_MS) {
        fail(err, err_size, "hour %" PRId64 " out of range", hour_ms);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (r[i].ts_ms < hour_ms || r[i].ts_ms >= hour_ms + PACK_HOUR_MS) {
            fail(err, err_size, "reading %zu: ts %" PRId64 " is not in the hour starting %" PRId64, i, r[i].ts_ms,
                 hour_ms);
            return -1;
        }
        if (i > 0 && (r[i].ts_ms < r[i - 1].ts_ms || (r[i].ts_ms == r[i - 1].ts_ms && r[i].seq <= r[i - 1].seq))) {
            fail(err, err_size, "reading %zu: not after the previous one in (ts, seq) order", i);
            return -1;
        }
        for (int j = 0; j < NFIELDS; j++) {
            double v = get(&r[i], &fields[j]);
            if (isnan(v) ? !fields[j].nullable : !isfinite(v)) {
                fail(err, err_size, "reading %zu: %s is %s", i, fields[j].name, isnan(v) ? "missing" : "not finite");
                return -1;
            }
        }
    }
    return 0;
}

/* The array separator before element i. */
static void sep(struct buf *b, size_t i)
{
    if (i)
        buf_putc(b, ',');
}

int pack_encode(const struct pack_reading *r, size_t n, int64_t hour_ms, struct buf *out, char *err, size_t err_size)
{
    if (check_readings(r, n, hour_ms, err, err_size) < 0)
        return -1;
    struct buf *b = out;
    int scale[NFIELDS], present[NFIELDS], any_raw = 0;
    for (int j = 0; j < NFIELDS; j++) {
        present[j] = 0;
        for (size_t i = 0; i < n; i++)
            present[j] |= !isnan(get(&r[i], &fields[j]));
        scale[j] = present[j] ? choose_scale(r, n, &fields[j]) : -1;
        any_raw |= present[j] && scale[j] < 0;
    }
    int seq_small = fits_i32(r[0].seq), recv_small = 1, any_recv = 0;
    for (size_t i = 1; i < n && seq_small; i++) {
        int64_t d;
        seq_small = !__builtin_sub_overflow(r[i].seq, r[i - 1].seq, &d) && fits_i32(d);
    }
    for (size_t i = 0; i < n; i++) {
        int64_t d;
        if (!r[i].has_recv)
            continue;
        any_recv = 1;
        if (__builtin_sub_overflow(r[i].recv_ms, r[i].ts_ms, &d) || !fits_i32(d))
            recv_small = 0;
    }

    put_i64(b, (int64_t)n);
    buf_put(b, "\t{", 2);
    for (int j = 0; j < NFIELDS; j++) {
        sep(b, (size_t)j);
        if (scale[j] < 0)
            buf_put(b, "NULL", 4);
        else
            put_i64(b, scale[j]);
    }
    buf_put(b, "}\t{", 3);

    int64_t prev = hour_ms;
    for (size_t i = 0; i < n; i++) { /* 0: ts */
        sep(b, i);
        put_i64(b, r[i].ts_ms - prev);
        prev = r[i].ts_ms;
    }
    for (size_t i = 0; i < n; i++) { /* 1: seq */
        buf_putc(b, ',');
        if (!seq_small)
            buf_put(b, "NULL", 4);
        else
            put_i64(b, i ? r[i].seq - r[i - 1].seq : r[i].seq);
    }
    for (size_t i = 0; i < n; i++) /* 2: ignition */
        buf_put(b, r[i].ignition ? ",1" : ",0", 2);
    for (size_t i = 0; i < n; i++) { /* 3: record time */
        buf_putc(b, ',');
        if (!r[i].has_recv || !recv_small)
            buf_put(b, "NULL", 4);
        else
            put_i64(b, r[i].recv_ms - r[i].ts_ms);
    }
    for (int j = 0; j < NFIELDS; j++) { /* 4-9: the fields */
        const struct field *f = &fields[j];
        int64_t last = 0, k = 0;
        for (size_t i = 0; i < n; i++) {
            double v = get(&r[i], f);
            buf_putc(b, ',');
            if (scale[j] < 0 || isnan(v)) {
                buf_put(b, "NULL", 4);
                continue;
            }
            fixed(v, scale[j], &k);
            put_i64(b, k - last);
            if (f->delta)
                last = k;
        }
    }
    buf_putc(b, '}');

    if (!any_raw) {
        buf_put(b, "\t\\N", 3);
    } else {
        buf_put(b, "\t{", 2);
        for (int j = 0; j < NFIELDS; j++) {
            for (size_t i = 0; i < n; i++) {
                double v = get(&r[i], &fields[j]);
                sep(b, (size_t)j * n + i);
                if (scale[j] >= 0 || isnan(v))
                    buf_put(b, "NULL", 4);
                else
                    put_double(b, v);
            }
        }
        buf_putc(b, '}');
    }

    if (seq_small && (recv_small || !any_recv)) {
        buf_put(b, "\t\\N", 3);
    } else {
        buf_put(b, "\t{", 2);
        for (size_t i = 0; i < n; i++) {
            sep(b, i);
            if (seq_small)
                buf_put(b, "NULL", 4);
            else
                put_i64(b, r[i].seq);
        }
        for (size_t i = 0; i < n; i++) {
            buf_putc(b, ',');
            if (recv_small || !r[i].has_recv)
                buf_put(b, "NULL", 4);
            else
                put_i64(b, r[i].recv_ms);
        }
        buf_putc(b, '}');
    }
    return 0;
}

/* ---- decoding ----------------------------------------------------------------- */

enum elem { E_I16, E_I32, E_I64, E_F64 };

/* One array element's value; null marks an SQL NULL element. */
struct cell {
    int null;
    int64_t i;
    double f;
};

/* Reads one element ending at ',' or '}' from *s. */
static int parse_elem(const char **s, enum elem kind, struct cell *c)
{
    const char *p = *s, *e = p;
    while (*e && *e != ',' && *e != '}')
        e++;
    size_t len = (size_t)(e - p);
    char tok[40];
    if (len == 0 || len >= sizeof(tok))
        return -1;
    memcpy(tok, p, len);
    tok[len] = '\0';
    *s = e;
    c->null = 0;
    if (strcmp(tok, "NULL") == 0) {
        c->null = 1;
        return 0;
    }
    char *end;
    errno = 0;
    if (kind == E_F64) {
        if (!(tok[0] == '-' || tok[0] == '.' || (tok[0] >= '0' && tok[0] <= '9')))
            return -1;
        c->f = strtod(tok, &end);
        /* ERANGE for an underflow is fine: PostgreSQL stores what it read. */
        return *end || end == tok || !isfinite(c->f) ? -1 : 0;
    }
    if (!(tok[0] == '-' || (tok[0] >= '0' && tok[0] <= '9')))
        return -1;
    c->i = strtoll(tok, &end, 10);
    if (errno || *end || end == tok)
        return -1;
    if (kind == E_I32 && !fits_i32(c->i))
        return -1;
    if (kind == E_I16 && (c->i < -32768 || c->i > 32767))
        return -1;
    return 0;
}

/* Reads the array literal s of exactly n elements of kind into cells. */
static int parse_array(const char *s, enum elem kind, size_t n, struct cell *cells)
{
    if (*s++ != '{')
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && *s++ != ',')
            return -1;
        if (parse_elem(&s, kind, &cells[i]) < 0)
            return -1;
    }
    return s[0] == '}' && s[1] == '\0' ? 0 : -1;
}

static int parse_int(const char *s, int64_t min, int64_t max, int64_t *v)
{
    char *end;
    if (!s || !(*s == '-' || (*s >= '0' && *s <= '9')))
        return -1;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || *end || x < min || x > max)
        return -1;
    *v = x;
    return 0;
}

enum col { C_N, C_S, C_D, C_R, C_B };
enum { S_TS, S_SEQ, S_IGN, S_RECV, S_FIELDS };

/* Field j from its scale (< 0: raw) and d's and r's sections. */
static int decode_field(int j, int scale, const struct cell *d, const struct cell *r, struct pack_reading *out,
                        size_t n, char *err, size_t err_size)
{
    const struct field *f = &fields[j];
    int64_t cum = 0;
    for (size_t i = 0; i < n; i++) {
        const struct cell *k = &d[i], *raw = r ? &r[i] : NULL;
        if (scale >= 0 ? !(raw == NULL || raw->null) : !k->null) {
            fail(err, err_size, "%s: reading %zu is in both d and r", f->name, i);
            return -1;
        }
        const struct cell *v = scale >= 0 ? k : raw;
        if (!v || v->null) {
            if (!f->nullable) {
                fail(err, err_size, "%s: reading %zu has none", f->name, i);
                return -1;
            }
            set(&out[i], f, NAN);
            continue;
        }
        if (scale < 0) {
            set(&out[i], f, v->f);
            continue;
        }
        int64_t x = v->i;
        if (f->delta)
            x = cum += x; /* |x| < 2^31 and n < 2^31: no overflow */
        set(&out[i], f, (double)x / p10[scale]);
    }
    return 0;
}

int pack_decode(const char *const cols[PACK_NCOLS], int64_t hour_ms, struct pack_reading *out, size_t max, size_t *n,
                char *err, size_t err_size)
{
    int64_t count;
    struct cell sc[NFIELDS], *d = NULL, *r = NULL, *b = NULL;
    int rc = -1;
    *n = 0;
    if (hour_ms > INT64_MAX - PACK_HOUR_MS) {
        fail(err, err_size, "hour %" PRId64 " out of range", hour_ms);
        return -1;
    }
    if (parse_int(cols[C_N], 1, max > INT32_MAX / 10 ? INT32_MAX / 10 : (int64_t)max, &count) < 0) {
        fail(err, err_size, "n: not a count from 1 to %zu", max);
        return -1;
    }
    size_t cnt = (size_t)count;
    if (!cols[C_S] || parse_array(cols[C_S], E_I16, NFIELDS, sc) < 0) {
        fail(err, err_size, "s: not an array of %d int2", NFIELDS);
        return -1;
    }
    for (int j = 0; j < NFIELDS; j++)
        if (!sc[j].null && (sc[j].i < 0 || sc[j].i > PACK_MAX_SCALE)) {
            fail(err, err_size, "s: %s's scale is not from 0 to %d", fields[j].name, PACK_MAX_SCALE);
            return -1;
        }
    if (!(d = calloc(10 * cnt, sizeof(*d))) || (cols[C_R] && !(r = calloc(NFIELDS * cnt, sizeof(*r)))) ||
        (cols[C_B] && !(b = calloc(2 * cnt, sizeof(*b))))) {
        fail(err, err_size, "out of memory for %zu readings", cnt);
        goto out;
    }
    if (!cols[C_D] || parse_array(cols[C_D], E_I32, 10 * cnt, d) < 0) {
        fail(err, err_size, "d: not an array of %zu int4", 10 * cnt);
        goto out;
    }
    if (r && parse_array(cols[C_R], E_F64, NFIELDS * cnt, r) < 0) {
        fail(err, err_size, "r: not an array of %zu float8", NFIELDS * cnt);
        goto out;
    }
    if (b && parse_array(cols[C_B], E_I64, 2 * cnt, b) < 0) {
        fail(err, err_size, "b: not an array of %zu int8", 2 * cnt);
        goto out;
    }
    memset(out, 0, cnt * sizeof(*out));

    const struct cell *ts = d + S_TS * cnt, *seq = d + S_SEQ * cnt, *ign = d + S_IGN * cnt, *recv = d + S_RECV * cnt;
    int64_t t = 0, sq = 0;
    int seq_small = !seq[0].null;
    for (size_t i = 0; i < cnt; i++) {
        if (ts[i].null || (i > 0 && ts[i].i < 0) || (t += ts[i].i) < 0 || t >= PACK_HOUR_MS) {
            fail(err, err_size, "ts: reading %zu is not in the hour, in order", i);
            goto out;
        }
        out[i].ts_ms = hour_ms + t;

        const struct cell *big = b ? &b[i] : NULL;
        if (seq[i].null == seq_small || (seq_small ? (big && !big->null) : (!big || big->null))) {
            fail(err, err_size, "seq: reading %zu needs it in d or else in b, as the others", i);
            goto out;
        }
        out[i].seq = seq_small ? (sq += seq[i].i) : big->i; /* sq: |d| < 2^31, n < 2^31 */
        if (i > 0 && out[i].ts_ms == out[i - 1].ts_ms && out[i].seq <= out[i - 1].seq) {
            fail(err, err_size, "seq: reading %zu is not after the previous one", i);
            goto out;
        }

        if (ign[i].null || (ign[i].i != 0 && ign[i].i != 1)) {
            fail(err, err_size, "ignition: reading %zu is not 0 or 1", i);
            goto out;
        }
        out[i].ignition = (int)ign[i].i;

        big = b ? &b[cnt + i] : NULL;
        if (!recv[i].null && big && !big->null) {
            fail(err, err_size, "recv: reading %zu is in both d and b", i);
            goto out;
        }
        if (!recv[i].null) {
            out[i].has_recv = 1;
            if (__builtin_add_overflow(out[i].ts_ms, recv[i].i, &out[i].recv_ms)) {
                fail(err, err_size, "recv: reading %zu overflows", i);
                goto out;
            }
        } else if (big && !big->null) {
            out[i].has_recv = 1;
            out[i].recv_ms = big->i;
        }
    }
    for (int j = 0; j < NFIELDS; j++)
        if (decode_field(j, sc[j].null ? -1 : (int)sc[j].i, d + (S_FIELDS + j) * cnt, r ? r + j * cnt : NULL, out, cnt,
                         err, err_size) < 0)
            goto out;
    *n = cnt;
    rc = 0;
out:
    free(d);
    free(r);
    free(b);
    return rc;
}
