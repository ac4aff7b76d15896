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

static void put_field(struct buf *b, const struct pack_reading *r, size_t n, const struct field *f)
{
    size_t present = 0;
    for (size_t i = 0; i < n; i++)
        present += !isnan(get(&r[i], f));
    if (present == 0) {
        buf_put(b, "\t\\N\t\\N\t\\N", 9);
        return;
    }
    int s = choose_scale(r, n, f);
    if (s < 0) {
        buf_put(b, "\t\\N\t\\N\t{", 8);
        for (size_t i = 0; i < n; i++) {
            double v = get(&r[i], f);
            if (i)
                buf_putc(b, ',');
            if (isnan(v))
                buf_put(b, "NULL", 4);
            else
                put_double(b, v);
        }
        buf_putc(b, '}');
        return;
    }
    buf_putc(b, '\t');
    put_i64(b, s);
    buf_put(b, "\t{", 2);
    int64_t prev = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        double v = get(&r[i], f);
        if (i)
            buf_putc(b, ',');
        if (isnan(v)) {
            buf_put(b, "NULL", 4);
            continue;
        }
        fixed(v, s, &k);
        put_i64(b, k - prev);
        if (f->delta)
            prev = k;
    }
    buf_put(b, "}\t\\N", 4);
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

int pack_encode(const struct pack_reading *r, size_t n, int64_t hour_ms, struct buf *out, char *err, size_t err_size)
{
    if (check_readings(r, n, hour_ms, err, err_size) < 0)
        return -1;
    struct buf *b = out;
    put_i64(b, (int64_t)n);

    buf_put(b, "\t{", 2);
    int64_t prev = hour_ms;
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        put_i64(b, r[i].ts_ms - prev);
        prev = r[i].ts_ms;
    }
    buf_putc(b, '}');

    int seq_small = fits_i32(r[0].seq);
    for (size_t i = 1; i < n && seq_small; i++) {
        int64_t d;
        seq_small = !__builtin_sub_overflow(r[i].seq, r[i - 1].seq, &d) && fits_i32(d);
    }
    buf_put(b, seq_small ? "\t{" : "\t\\N\t{", seq_small ? 2 : 5);
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        put_i64(b, seq_small && i ? r[i].seq - r[i - 1].seq : r[i].seq);
    }
    buf_put(b, seq_small ? "}\t\\N" : "}", seq_small ? 4 : 1);

    buf_put(b, "\t{", 2);
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        buf_putc(b, r[i].ignition ? 't' : 'f');
    }
    buf_putc(b, '}');

    size_t recv_n = 0;
    int recv_small = 1;
    for (size_t i = 0; i < n; i++) {
        if (!r[i].has_recv)
            continue;
        int64_t d;
        recv_n++;
        if (__builtin_sub_overflow(r[i].recv_ms, r[i].ts_ms, &d) || !fits_i32(d))
            recv_small = 0;
    }
    if (recv_n == 0) {
        buf_put(b, "\t\\N\t\\N", 6);
    } else {
        buf_put(b, recv_small ? "\t{" : "\t\\N\t{", recv_small ? 2 : 5);
        for (size_t i = 0; i < n; i++) {
            if (i)
                buf_putc(b, ',');
            if (!r[i].has_recv)
                buf_put(b, "NULL", 4);
            else
                put_i64(b, recv_small ? r[i].recv_ms - r[i].ts_ms : r[i].recv_ms);
        }
        buf_put(b, recv_small ? "}\t\\N" : "}", recv_small ? 4 : 1);
    }

    for (int j = 0; j < NFIELDS; j++)
        put_field(b, r, n, &fields[j]);
    return 0;
}

/* ---- decoding ----------------------------------------------------------------- */

enum elem { E_I32, E_I64, E_F64, E_BOOL };

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
    switch (kind) {
    case E_BOOL:
        if (len != 1 || (tok[0] != 't' && tok[0] != 'f'))
            return -1;
        c->i = tok[0] == 't';
        return 0;
    case E_I32:
    case E_I64:
        if (!(tok[0] == '-' || (tok[0] >= '0' && tok[0] <= '9')))
            return -1;
        c->i = strtoll(tok, &end, 10);
        if (errno || *end || end == tok || (kind == E_I32 && !fits_i32(c->i)))
            return -1;
        return 0;
    case E_F64:
        if (!(tok[0] == '-' || tok[0] == '.' || (tok[0] >= '0' && tok[0] <= '9')))
            return -1;
        c->f = strtod(tok, &end);
        /* ERANGE for an underflow is fine: PostgreSQL stores what it read. */
        if (*end || end == tok || !isfinite(c->f))
            return -1;
        return 0;
    }
    return -1;
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

enum col {
    C_N,
    C_TS,
    C_SEQ,
    C_SEQ_RAW,
    C_IGN,
    C_RECV,
    C_RECV_RAW,
    C_FIELDS /* then scale, ints, raw for each field */
};

static int decode_field(const char *const cols[PACK_NCOLS], const struct field *f, int col, struct pack_reading *out,
                        size_t n, struct cell *cells, char *err, size_t err_size)
{
    const char *scale = cols[col], *ints = cols[col + 1], *raw = cols[col + 2];
    if (!scale && !ints && !raw) {
        if (!f->nullable) {
            fail(err, err_size, "%s: every column is NULL", f->name);
            return -1;
        }
        for (size_t i = 0; i < n; i++)
            set(&out[i], f, NAN);
        return 0;
    }
    int64_t s = 0;
    if (scale ? (!ints || raw || parse_int(scale, 0, PACK_MAX_SCALE, &s) < 0) : (ints || !raw)) {
        fail(err, err_size, "%s: needs a scale from 0 to %d with its integers, or the raw values alone", f->name,
             PACK_MAX_SCALE);
        return -1;
    }
    if (parse_array(scale ? ints : raw, scale ? E_I32 : E_F64, n, cells) < 0) {
        fail(err, err_size, "%s: not an array of %zu %s", f->name, n, scale ? "int4" : "float8");
        return -1;
    }
    int64_t cum = 0;
    for (size_t i = 0; i < n; i++) {
        if (cells[i].null) {
            if (!f->nullable) {
                fail(err, err_size, "%s: reading %zu has none", f->name, i);
                return -1;
            }
            set(&out[i], f, NAN);
            continue;
        }
        if (!scale) {
            set(&out[i], f, cells[i].f);
            continue;
        }
        int64_t k = cells[i].i;
        if (f->delta) {
            if (__builtin_add_overflow(cum, k, &cum)) {
                fail(err, err_size, "%s: sum overflows", f->name);
                return -1;
            }
            k = cum;
        }
        set(&out[i], f, (double)k / p10[s]);
    }
    return 0;
}

int pack_decode(const char *const cols[PACK_NCOLS], int64_t hour_ms, struct pack_reading *out, size_t max, size_t *n,
                char *err, size_t err_size)
{
    int64_t count;
    struct cell *cells = NULL;
    int rc = -1;
    *n = 0;
    if (hour_ms > INT64_MAX - PACK_HOUR_MS) {
        fail(err, err_size, "hour %" PRId64 " out of range", hour_ms);
        return -1;
    }
    if (parse_int(cols[C_N], 1, max > INT32_MAX ? INT32_MAX : (int64_t)max, &count) < 0) {
        fail(err, err_size, "n: not a count from 1 to %zu", max);
        return -1;
    }
    size_t cnt = (size_t)count;
    if (!(cells = calloc(cnt, sizeof(*cells)))) {
        fail(err, err_size, "out of memory for %zu readings", cnt);
        return -1;
    }
    memset(out, 0, cnt * sizeof(*out));

    if (!cols[C_TS] || parse_array(cols[C_TS], E_I32, cnt, cells) < 0) {
        fail(err, err_size, "ts_d: not an array of %zu int4", cnt);
        goto out;
    }
    int64_t t = 0;
    for (size_t i = 0; i < cnt; i++) {
        if (cells[i].null || (i > 0 && cells[i].i < 0) || (t += cells[i].i) < 0 || t >= PACK_HOUR_MS) {
            fail(err, err_size, "ts_d: reading %zu is not in the hour, in order", i);
            goto out;
        }
        out[i].ts_ms = hour_ms + t;
    }

    int small = cols[C_SEQ] != NULL;
    if (small == (cols[C_SEQ_RAW] != NULL) ||
        parse_array(small ? cols[C_SEQ] : cols[C_SEQ_RAW], small ? E_I32 : E_I64, cnt, cells) < 0) {
        fail(err, err_size, "seq: needs one of seq_d, seq_raw with %zu elements", cnt);
        goto out;
    }
    int64_t seq = 0;
    for (size_t i = 0; i < cnt; i++) {
        if (cells[i].null || (small ? __builtin_add_overflow(seq, cells[i].i, &seq) : ((seq = cells[i].i), 0))) {
            fail(err, err_size, "seq: reading %zu has none", i);
            goto out;
        }
        out[i].seq = seq;
        if (i > 0 && out[i].ts_ms == out[i - 1].ts_ms && out[i].seq <= out[i - 1].seq) {
            fail(err, err_size, "seq: reading %zu is not after the previous one", i);
            goto out;
        }
    }

    if (!cols[C_IGN] || parse_array(cols[C_IGN], E_BOOL, cnt, cells) < 0) {
        fail(err, err_size, "ignition: not an array of %zu bool", cnt);
        goto out;
    }
    for (size_t i = 0; i < cnt; i++) {
        if (cells[i].null) {
            fail(err, err_size, "ignition: reading %zu has none", i);
            goto out;
        }
        out[i].ignition = (int)cells[i].i;
    }

    if (cols[C_RECV] || cols[C_RECV_RAW]) {
        small = cols[C_RECV] != NULL;
        if (small == (cols[C_RECV_RAW] != NULL) ||
            parse_array(small ? cols[C_RECV] : cols[C_RECV_RAW], small ? E_I32 : E_I64, cnt, cells) < 0) {
            fail(err, err_size, "recv: needs one of recv_d, recv_raw with %zu elements", cnt);
            goto out;
        }
        for (size_t i = 0; i < cnt; i++) {
            if (cells[i].null)
                continue;
            if (small ? __builtin_add_overflow(out[i].ts_ms, cells[i].i, &out[i].recv_ms)
                      : ((out[i].recv_ms = cells[i].i), 0)) {
                fail(err, err_size, "recv: reading %zu overflows", i);
                goto out;
            }
            out[i].has_recv = 1;
        }
    }

    for (int j = 0; j < NFIELDS; j++)
        if (decode_field(cols, &fields[j], C_FIELDS + 3 * j, out, cnt, cells, err, err_size) < 0)
            goto out;
    *n = cnt;
    rc = 0;
out:
    free(cells);
    return rc;
}
