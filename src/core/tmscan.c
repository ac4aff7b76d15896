/*
 * tmscan.c - one-pass reader of normalized telemetry (see tmscan.h).
 */
#include "core/tmscan.h"

#include "core/telemetry.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cur {
    const char *p, *end;
};

static int lit(struct cur *c, const char *s, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0)
        return 0;
    c->p += n;
    return 1;
}
#define LIT(c, s) lit((c), (s), sizeof(s) - 1)

/* What number() saw of a span's digits, for num_double(): the digits as
 * one integer (m; exact while digits <= 19), the count of significant
 * digits (from the first non-zero one), of those after the point, and
 * whether there was a sign or an exponent. */
struct numval {
    uint64_t m;
    int digits, frac;
    bool neg, exp;
};

/* A JSON number as tm_serialize() writes it: -?digits(.digits)?(e-?digits)?
 * with no leading zeros, no '+'.  Sets the span and *v; 0 if not that shape. */
static int number(struct cur *c, struct tm_span *sp, struct numval *v)
{
    const char *s = c->p, *p = c->p;
    uint64_t m = 0;
    int digits = 0, frac = 0;
    v->neg = v->exp = false;
    if (p < c->end && *p == '-') {
        v->neg = true;
        p++;
    }
    const char *d = p;
    for (; p < c->end && *p >= '0' && *p <= '9'; p++) {
        m = m * 10 + (uint64_t)(*p - '0');
        digits += m != 0;
    }
    if (p == d || (*d == '0' && p - d > 1))
        return 0;
    if (p < c->end && *p == '.') {
        const char *f = ++p;
        for (; p < c->end && *p >= '0' && *p <= '9'; p++) {
            m = m * 10 + (uint64_t)(*p - '0');
            digits += m != 0;
        }
        if (p == f)
            return 0;
        frac = (int)(p - f);
    }
    if (p < c->end && *p == 'e') {
        v->exp = true;
        p++;
        if (p < c->end && *p == '-')
            p++;
        const char *e = p;
        while (p < c->end && *p >= '0' && *p <= '9')
            p++;
        if (p == e)
            return 0;
    }
    if (p - s > 32)
        return 0;
    sp->p = s;
    sp->n = (uint16_t)(p - s);
    c->p = p;
    v->m = m;
    v->digits = digits;
    v->frac = frac;
    return 1;
}

/* Exact powers of ten as doubles (10^22 is the last one a double holds). */
static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The double nearest to the span, as strtod() gives it.  The common case —
 * plain decimals with at most 15 significant digits — is an exact integer
 * divided by an exact power of ten, which IEEE division rounds correctly;
 * anything else (exponents, long mantissas) goes to strtod(). */
static double num_double(const struct tm_span *sp, const struct numval *v)
{
    if (!v->exp && v->digits <= 15 && v->frac <= 22) {
        double d = (double)v->m;
        if (v->frac > 0)
            d /= pow10_exact[v->frac];
        return v->neg ? -d : d;
    }
    char tmp[40];
    memcpy(tmp, sp->p, sp->n);
    tmp[sp->n] = '\0';
    return strtod(tmp, NULL);
}

/* A non-negative integer span below 2^63 (digits only). */
static int span_i64(const struct tm_span *sp, int64_t *v)
{
    if (sp->n == 0 || sp->n > 19 || sp->p[0] == '-')
        return 0;
    uint64_t x = 0;
    for (uint16_t i = 0; i < sp->n; i++) {
        if (sp->p[i] < '0' || sp->p[i] > '9')
            return 0;
        x = x * 10 + (uint64_t)(sp->p[i] - '0'); /* 19 digits fit in uint64_t */
    }
    if (x > (uint64_t)INT64_MAX)
        return 0;
    *v = (int64_t)x;
    return 1;
}

int tm_scan(const char *buf, size_t len, int64_t now_ms, int allow_extra, struct tm_fast *out)
{
    struct cur c = {buf, buf + len};
    struct tm_span ts_s;
    memset(out, 0, sizeof(*out));
    out->heading_deg = out->fuel_pct = out->odometer_km = NAN;

    if (len > TM_MAX_PAYLOAD || !LIT(&c, "{\"v\":1,\"truck_id\":\""))
        return 0;
    const char *id = c.p;
    while (c.p < c.end && tm_id_char(*c.p))
        c.p++;
    if (c.p == id || c.p - id > TM_TRUCK_ID_MAX)
        return 0;
    out->truck_id.p = id;
    out->truck_id.n = (uint16_t)(c.p - id);

    struct numval nv, lat_v, lon_v, speed_v, heading_v, fuel_v, odometer_v;
    if (!LIT(&c, "\",\"ts\":") || !number(&c, &ts_s, &nv) || !span_i64(&ts_s, &out->ts_ms))
        return 0;
    if (out->ts_ms < TM_TS_MIN_MS || out->ts_ms > now_ms + TM_TS_AHEAD_MS)
        return 0;
    if (!LIT(&c, ",\"seq\":") || !number(&c, &out->seq_s, &nv) || !span_i64(&out->seq_s, &out->seq))
        return 0;
    if (!LIT(&c, ",\"lat\":") || !number(&c, &out->lat_s, &lat_v))
        return 0;
    if (!LIT(&c, ",\"lon\":") || !number(&c, &out->lon_s, &lon_v))
        return 0;
    if (!LIT(&c, ",\"speed_kmh\":") || !number(&c, &out->speed_s, &speed_v))
        return 0;
    if (LIT(&c, ",\"ignition\":true"))
        out->ignition = true;
    else if (LIT(&c, ",\"ignition\":false"))
        out->ignition = false;
    else
        return 0;
    if (LIT(&c, ",\"heading_deg\":") && !number(&c, &out->heading_s, &heading_v))
        return 0;
    if (LIT(&c, ",\"fuel_pct\":") && !number(&c, &out->fuel_s, &fuel_v))
        return 0;
    if (LIT(&c, ",\"odometer_km\":") && !number(&c, &out->odometer_s, &odometer_v))
        return 0;
    if (c.p < c.end && *c.p == ',') {
        if (!allow_extra || c.end[-1] != '}')
            return 0;
        out->has_extra = true;
    } else if (!(c.p + 1 == c.end && *c.p == '}')) {
        return 0;
    }

    out->lat = num_double(&out->lat_s, &lat_v);
    out->lon = num_double(&out->lon_s, &lon_v);
    out->speed_kmh = num_double(&out->speed_s, &speed_v);
    if (!(out->lat >= -90 && out->lat <= 90) || !(out->lon >= -180 && out->lon <= 180) ||
        !(out->speed_kmh >= 0 && out->speed_kmh <= 400))
        return 0;
    if (out->heading_s.n) {
        out->heading_deg = num_double(&out->heading_s, &heading_v);
        if (!(out->heading_deg >= 0 && out->heading_deg < 360))
            return 0;
    }
    if (out->fuel_s.n) {
        out->fuel_pct = num_double(&out->fuel_s, &fuel_v);
        if (!(out->fuel_pct >= 0 && out->fuel_pct <= 100))
            return 0;
    }
    if (out->odometer_s.n) {
        out->odometer_km = num_double(&out->odometer_s, &odometer_v);
        if (!(out->odometer_km >= 0) || isinf(out->odometer_km))
            return 0;
    }
    return 1;
}

enum tm_reason tm_read(const char *buf, size_t len, int64_t now_ms, char *norm, size_t norm_size, int *normalized,
                       struct tm_fast *out, char *detail, size_t detail_size)
{
    *normalized = 0;
    if (detail && detail_size)
        detail[0] = '\0';
    if (!buf) {
        if (detail && detail_size)
            snprintf(detail, detail_size, "the record has no value");
        return TM_INVALID_JSON;
    }
    if (tm_scan(buf, len, now_ms, 0, out))
        return TM_OK;
    struct tm_reading r;
    enum tm_reason why = tm_parse(buf, len, now_ms, &r, detail, detail_size);
    if (why != TM_OK)
        return why;
    int n = tm_serialize(&r, norm, norm_size);
    tm_reading_release(&r);
    if (n <= 0 || !tm_scan(norm, (size_t)n, now_ms, 1, out)) {
        if (detail && detail_size)
            snprintf(detail, detail_size, "the normalized form does not fit in %zu bytes", norm_size);
        return TM_TOO_LARGE;
    }
    *normalized = 1;
    return TM_OK;
}
