/*
 * telemetry.c - Telemetry v1 validation (tm_parse) and normalization
 * (tm_serialize).
 *
 * jansson does the JSON grammar: it already refuses NaN/Infinity, invalid
 * UTF-8, \u0000, numbers that overflow, trailing garbage and (on request)
 * duplicate keys.  This file adds the schema (docs/design.md) on top, one field
 * at a time in table order so that the first fault found is the one
 * reported, and writes the normalized form itself: jansson prints reals with
 * 17 digits ("0.10000000000000001"), while the contract asks for the
 * shortest form that reads back as the same double.
 *
 * Invariant (fuzzed by tests/fuzz/fuzz_telemetry.c): an accepted reading's
 * normalized form is at most TM_MAX_PAYLOAD bytes and normalizes to itself.
 * Two details keep it true: -0 prints as 0 (jansson reads "-0" as the
 * integer 0, which would print differently the second time), and a reading
 * whose normalized form would outgrow TM_MAX_PAYLOAD is refused, as a
 * second pass would refuse it.  Every buffer has a fixed bound: the input is
 * at most TM_MAX_PAYLOAD bytes before jansson sees it, and the unknown
 * fields are serialized into a TM_MAX_PAYLOAD stack buffer before the one
 * allocation that keeps them.
 */
#include "core/telemetry.h"

#include "core/jsonesc.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Known field names, in the table order of docs/design.md (the order of checks and of
 * the normalized form). */
static const char *const known_fields[] = {"v",         "truck_id", "ts",          "seq",      "lat",        "lon",
                                           "speed_kmh", "ignition", "heading_deg", "fuel_pct", "odometer_km"};

/* An upper bound of the normalized form without the unknown fields: keys
 * and punctuation (~150 bytes), a 64-byte truck_id, two 20-digit integers,
 * six numbers of at most 24 characters.  Only when the unknown fields come
 * closer than this to TM_MAX_PAYLOAD is the exact length computed. */
#define TM_KNOWN_PART_MAX 512

static const char *const reason_names[TM_REASON_COUNT] = {
    [TM_OK] = "ok",
    [TM_INVALID_JSON] = "invalid_json",
    [TM_TOO_LARGE] = "too_large",
    [TM_DUPLICATE_KEY] = "duplicate_key",
    [TM_UNSUPPORTED_VERSION] = "unsupported_version",
    [TM_MISSING_FIELD] = "missing_field",
    [TM_WRONG_TYPE] = "wrong_type",
    [TM_OUT_OF_RANGE] = "out_of_range",
    [TM_BAD_TRUCK_ID] = "bad_truck_id",
    [TM_TOPIC_MISMATCH] = "topic_mismatch",
    [TM_TS_IN_FUTURE] = "ts_in_future",
    [TM_TS_TOO_OLD] = "ts_too_old",
};

const char *tm_reason_name(enum tm_reason r)
{
    if ((int)r < 0 || r >= TM_REASON_COUNT)
        return "unknown";
    return reason_names[r];
}

/* ---- detail text ------------------------------------------------------- */

/* detail ends up in a Kafka header and in logs; parts of it (a duplicated
 * key, jansson's "near '...'") come from the payload, so anything but
 * printable ASCII becomes '?': no control characters, and no UTF-8 sequence
 * cut in half by the truncation. */
__attribute__((format(printf, 3, 4))) static void set_detail(char *detail, size_t size, const char *fmt, ...)
{
    if (!detail || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, size, fmt, ap);
    va_end(ap);
    for (char *p = detail; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
}

/* ---- bounded writer ---------------------------------------------------- */

/* A known field's value as the checks see it, whichever parser read it. */
enum fv_type { FV_ABSENT, FV_INT, FV_REAL, FV_STRING, FV_TRUE, FV_FALSE, FV_NULL, FV_OTHER };
struct fv {
    enum fv_type t;
    int64_t i;     /* FV_INT */
    double d;      /* FV_INT (as a double) and FV_REAL */
    const char *s; /* FV_STRING, not NUL-terminated; a number's text as sent (scan_flat only, else NULL) */
    size_t n;
};
enum { F_V, F_TRUCK_ID, F_TS, F_SEQ, F_LAT, F_LON, F_SPEED, F_IGNITION, F_HEADING, F_FUEL, F_ODOMETER, F_COUNT };

/* Appends up to size bytes and counts everything, as snprintf does, so one
 * pass both writes and tells whether (and by how much) it did not fit. */
struct wbuf {
    char *p;
    size_t size;
    size_t len;
};

static void w_put(struct wbuf *w, const char *s, size_t n)
{
    if (w->len < w->size) {
        size_t room = w->size - w->len;
        memcpy(w->p + w->len, s, n < room ? n : room);
    }
    w->len += n;
}

static void w_str(struct wbuf *w, const char *s)
{
    w_put(w, s, strlen(s));
}

static void w_char(struct wbuf *w, char c)
{
    w_put(w, &c, 1);
}

/* A JSON string literal.  Only what RFC 8259 requires is escaped: jansson
 * has already checked the UTF-8, so other bytes pass through unchanged. */
static void w_put_ud(void *w, const char *s, size_t n)
{
    w_put(w, s, n);
}

static void w_json_string(struct wbuf *w, const char *s, size_t n)
{
    w_char(w, '"');
    jsonesc_write(s, n, JSONESC_SHORT, w_put_ud, w);
    w_char(w, '"');
}

/* Decimal digits of v into out (no NUL); returns their count. */
static size_t format_u64(uint64_t v, char *out)
{
    char rev[20];
    size_t n = 0;
    do {
        rev[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    return n;
}

#define TM_NUM_MAX 32

/* The fast path of format_double() for 1e-4 <= |d| < 1e15, not integral:
 * the plain decimals most telemetry consists of (48.137154).  It finds the
 * fewest fractional digits k for which m / 10^k == |d|, m = round(|d| 10^k),
 * without printf or strtod.  This is the very string the %.Ng scan prints:
 *   - m / 10^k is one correctly rounded IEEE division of two exact values,
 *     so it equals strtod("m e-k");
 *   - a decimal of at most 15 significant digits that reads back as d is
 *     the only one of its length within d's rounding interval (decimals that
 *     short are further apart than the interval is wide), so it is also the
 *     correctly rounded one %.Ng prints, and round() finds it: |d| 10^k
 *     lies within 0.2 of it while it stays below 1e15;
 *   - %g prints such a value without exponent and without trailing zeros.
 * Returns 0 when it does not apply, and the slow path decides. */
static size_t format_decimal(double d, char out[TM_NUM_MAX])
{
    static const double pow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    double a = fabs(d);

    if (!(a >= 1e-4 && a < 1e15))
        return 0;
    for (int k = 1; k <= 15; k++) {
        double t = a * pow10[k];
        if (t >= 1e15)
            return 0;
        double m = nearbyint(t);
        if (m / pow10[k] != a)
            continue;
        uint64_t mi = (uint64_t)m, scale = (uint64_t)pow10[k], frac = mi % scale;
        if (frac % 10 == 0) /* integral or trailing zero: cannot happen, see above */
            return 0;
        size_t n = 0;
        if (d < 0)
            out[n++] = '-';
        n += format_u64(mi / scale, out + n);
        out[n++] = '.';
        char digits[20];
        size_t nd = format_u64(frac, digits);
        for (size_t z = nd; z < (size_t)k; z++)
            out[n++] = '0';
        memcpy(out + n, digits, nd);
        n += nd;
        out[n] = '\0';
        return n;
    }
    return 0;
}

/* Shortest text that strtod() reads back as d: the first of %.1g .. %.17g
 * that does (17 digits always do), with two house rules.  Integral values
 * below 2^53 print as integers ("72", "100"): %g would choose "1e+02" for
 * 100, shortest but not what a person expects of a speed.  The exponent
 * loses its '+' and leading zeros ("1e+20" -> "1e20", "1e-05" -> "1e-5").
 * The scan costs up to 17 snprintf + strtod pairs, so ordinary decimals take
 * format_decimal() instead, which gives the same string.  Assumes the C
 * locale (FleetSync never calls setlocale), where the radix is '.'. */
static size_t format_double(double d, char out[TM_NUM_MAX])
{
    size_t n;

    if (d == 0) { /* also -0: JSON "-0" reads back as the integer 0 */
        memcpy(out, "0", 2);
        return 1;
    }
    if (fabs(d) < 9007199254740992.0 && d == trunc(d)) {
        n = 0;
        if (d < 0)
            out[n++] = '-';
        n += format_u64((uint64_t)fabs(d), out + n);
        out[n] = '\0';
        return n;
    }
    n = format_decimal(d, out);
    if (n)
        return n;
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, TM_NUM_MAX, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            break;
    }
    char *e = strchr(out, 'e');
    if (e) {
        char *src = e + 1, *dst = e + 1;
        if (*src == '-')
            *dst++ = *src++;
        else if (*src == '+')
            src++;
        while (*src == '0' && src[1] != '\0')
            src++;
        while (*src)
            *dst++ = *src++;
        *dst = '\0';
    }
    return strlen(out);
}

/* NaN and infinities never come out of tm_parse(); from a reading built by
 * hand they print as null, valid JSON that tm_parse() refuses as wrong_type. */
static void w_double(struct wbuf *w, double d)
{
    char num[TM_NUM_MAX];
    if (!isfinite(d)) {
        w_str(w, "null");
        return;
    }
    w_put(w, num, format_double(d, num));
}

static void w_int64(struct wbuf *w, long long v)
{
    char num[TM_NUM_MAX];
    size_t n = 0;
    if (v < 0)
        num[n++] = '-';
    /* 0 - (unsigned)v: the magnitude, also of LLONG_MIN */
    n += format_u64(v < 0 ? 0 - (uint64_t)v : (uint64_t)v, num + n);
    w_put(w, num, n);
}

/* Any JSON value in normalized form.  Recursion depth is bounded by
 * jansson's parser (at most 2048 levels, and a 4 KiB payload cannot nest
 * deeper than 2048 anyway). */
static void w_json_value(struct wbuf *w, json_t *v)
{
    const char *key;
    json_t *item;
    size_t i;
    bool first = true;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        w_char(w, '{');
        json_object_foreach(v, key, item)
        {
            if (!first)
                w_char(w, ',');
            first = false;
            w_json_string(w, key, strlen(key));
            w_char(w, ':');
            w_json_value(w, item);
        }
        w_char(w, '}');
        break;
    case JSON_ARRAY:
        w_char(w, '[');
        json_array_foreach(v, i, item)
        {
            if (i > 0)
                w_char(w, ',');
            w_json_value(w, item);
        }
        w_char(w, ']');
        break;
    case JSON_STRING:
        w_json_string(w, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        w_int64(w, (long long)json_integer_value(v));
        break;
    case JSON_REAL:
        w_double(w, json_real_value(v));
        break;
    case JSON_TRUE:
        w_str(w, "true");
        break;
    case JSON_FALSE:
        w_str(w, "false");
        break;
    case JSON_NULL:
        w_str(w, "null");
        break;
    }
}

/* ---- serialization ----------------------------------------------------- */

/* The normalized text of a number field as scan_flat() read it, straight
 * from the digits the device sent: the fraction's trailing zeros dropped
 * ("12.50" -> "12.5", "7.0" -> "7"), "-0" and "0.0" as "0".  That is
 * format_double()'s text for the same double whenever the number has no
 * exponent, at most 15 significant digits and, unless integral, a magnitude
 * of at least 1e-4: an integral value below 10^15 prints as its digits, and
 * the rest is format_decimal()'s range, whose shortest fraction is this one
 * (a decimal of at most 15 significant digits is the only one that short
 * reading back as its double).  Returns 0 for anything else, and
 * format_double() decides. */
static size_t plain_number(const char *s, size_t n, char out[TM_NUM_MAX])
{
    const char *p = s, *end = s + n, *ip, *fp = NULL;
    size_t il, fl = 0, sig;
    bool neg = p < end && *p == '-';

    p += neg;
    for (ip = p; p < end && *p >= '0' && *p <= '9'; p++)
        ;
    il = (size_t)(p - ip);
    if (p < end && *p == '.')
        for (fp = ++p; p < end && *p >= '0' && *p <= '9'; p++)
            fl++;
    if (p != end || il == 0 || il > 15) /* an exponent, or not a number scan_flat took */
        return 0;
    while (fl && fp[fl - 1] == '0')
        fl--;
    if (il == 1 && ip[0] == '0') {
        size_t lead = 0;
        while (lead < fl && fp[lead] == '0')
            lead++;
        if (lead == fl) {
            out[0] = '0';
            return 1;
        }
        if (lead > 3) /* below 1e-4: format_double() writes an exponent */
            return 0;
        sig = fl - lead;
    } else {
        sig = il + fl;
    }
    if (sig > 15)
        return 0;
    size_t k = 0;
    if (neg)
        out[k++] = '-';
    memcpy(out + k, ip, il);
    k += il;
    if (fl) {
        out[k++] = '.';
        memcpy(out + k, fp, fl);
        k += fl;
    }
    return k;
}

/* A double field: from its text as sent when plain_number() applies (f: the
 * field scan_flat() read, NULL: none), else format_double(). */
static void w_number(struct wbuf *w, double d, const struct fv *f)
{
    char num[TM_NUM_MAX];
    size_t n = f && f->s ? plain_number(f->s, f->n, num) : 0;
    if (n)
        w_put(w, num, n);
    else
        w_double(w, d);
}

/* f: the fields scan_flat() read r from (their numbers' text is reused), or
 * NULL. */
static void w_reading(struct wbuf *w, const struct tm_reading *r, const struct fv *f)
{
    w_str(w, "{\"v\":1,\"truck_id\":");
    if (f) {
        /* checked by tm_valid_id(): nothing to escape */
        size_t n = strlen(r->truck_id);
        w_char(w, '"');
        w_put(w, r->truck_id, n);
        w_char(w, '"');
    } else {
        /* From tm_parse() truck_id needs no escaping, but a reading built by
         * hand (the simulator) gets valid JSON too. */
        w_json_string(w, r->truck_id, strnlen(r->truck_id, sizeof(r->truck_id)));
    }
    w_str(w, ",\"ts\":");
    w_int64(w, r->ts_ms);
    w_str(w, ",\"seq\":");
    w_int64(w, r->seq);
    w_str(w, ",\"lat\":");
    w_number(w, r->lat, f ? &f[F_LAT] : NULL);
    w_str(w, ",\"lon\":");
    w_number(w, r->lon, f ? &f[F_LON] : NULL);
    w_str(w, ",\"speed_kmh\":");
    w_number(w, r->speed_kmh, f ? &f[F_SPEED] : NULL);
    w_str(w, r->ignition ? ",\"ignition\":true" : ",\"ignition\":false");
    if (r->has_heading) {
        w_str(w, ",\"heading_deg\":");
        w_number(w, r->heading_deg, f ? &f[F_HEADING] : NULL);
    }
    if (r->has_fuel) {
        w_str(w, ",\"fuel_pct\":");
        w_number(w, r->fuel_pct, f ? &f[F_FUEL] : NULL);
    }
    if (r->has_odometer) {
        w_str(w, ",\"odometer_km\":");
        w_number(w, r->odometer_km, f ? &f[F_ODOMETER] : NULL);
    }
    if (r->extra && r->extra_len > 0) {
        w_char(w, ',');
        w_put(w, r->extra, r->extra_len);
    }
    w_char(w, '}');
}

/* The normalized form into buf (size bytes, NUL-terminated): its length, or
 * -1 when it does not fit (buf then holds ""). */
static int serialize(const struct tm_reading *r, const struct fv *f, char *buf, size_t size)
{
    struct wbuf w = {.p = buf, .size = buf ? size : 0, .len = 0};

    w_reading(&w, r, f);
    if (w.len >= w.size || w.len > INT_MAX) {
        if (buf && size > 0)
            buf[0] = '\0';
        return -1;
    }
    buf[w.len] = '\0';
    return (int)w.len;
}

int tm_serialize(const struct tm_reading *r, char *buf, size_t size)
{
    return serialize(r, NULL, buf, size);
}

/* ---- validation -------------------------------------------------------- */

int tm_id_chars(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!tm_id_char(s[i]))
            return 0;
    return 1;
}

int tm_valid_id(const char *s, size_t n)
{
    return n >= 1 && n <= TM_TRUCK_ID_MAX && tm_id_chars(s, n);
}

/* prefix + tag + index + 1 in at least min_digits digits (no snprintf: the
 * simulator names every truck of a large fleet). */
static size_t format_id(char *buf, size_t size, const char *prefix, size_t prefix_len, const char *tag, size_t tag_len,
                        int min_digits, uint32_t index)
{
    char digits[16];
    int nd = 0;
    uint64_t v = (uint64_t)index + 1;
    while (v) {
        digits[nd++] = (char)('0' + v % 10);
        v /= 10;
    }
    while (nd < min_digits)
        digits[nd++] = '0';
    size_t len = prefix_len + tag_len + (size_t)nd;
    if (len + 1 > size) {
        if (size)
            buf[0] = '\0';
        return 0;
    }
    memcpy(buf, prefix, prefix_len);
    memcpy(buf + prefix_len, tag, tag_len);
    for (int k = 0; k < nd; k++)
        buf[prefix_len + tag_len + (size_t)k] = digits[nd - 1 - k];
    buf[len] = '\0';
    return len;
}

size_t tm_format_truck_id(char *buf, size_t size, const char *prefix, size_t prefix_len, uint32_t index)
{
    return format_id(buf, size, prefix, prefix_len, "", 0, 6, index);
}

size_t tm_format_gateway_id(char *buf, size_t size, const char *prefix, size_t prefix_len, uint32_t index)
{
    return format_id(buf, size, prefix, prefix_len, "GW", 2, 4, index);
}

static bool is_known_field(const char *key)
{
    for (size_t i = 0; i < sizeof(known_fields) / sizeof(known_fields[0]); i++)
        if (strcmp(key, known_fields[i]) == 0)
            return true;
    return false;
}

/* jansson reports a duplicate as: duplicate object key near '"<raw key>"',
 * the key as written, escapes included.  Decoding that literal gives the
 * field name for error_detail; failing that, or for the empty key, the raw
 * text will do ("" rather than an empty detail). */
static void duplicate_key_detail(const char *text, char *detail, size_t detail_size)
{
    const char *start = strstr(text, "near '");
    const char *end = strrchr(text, '\'');

    if (!start || !end || end < start + 6) {
        set_detail(detail, detail_size, "%s", text);
        return;
    }
    start += 6;
    json_t *key = json_loadb(start, (size_t)(end - start), JSON_DECODE_ANY, NULL);
    if (json_is_string(key) && json_string_length(key) > 0)
        set_detail(detail, detail_size, "%s", json_string_value(key));
    else
        set_detail(detail, detail_size, "%.*s", (int)(end - start), start);
    json_decref(key);
}

/* Decodes the payload.  Returns the root object, or NULL with the reason. */
static json_t *load_object(const char *buf, size_t len, enum tm_reason *why, char *detail, size_t detail_size)
{
    json_error_t err;
    /* RFC 8259 allows no raw NUL anywhere, but jansson skips one between
     * tokens: {"v":1<NUL>} would pass. */
    const char *nul = memchr(buf, '\0', len);
    if (nul) {
        *why = TM_INVALID_JSON;
        set_detail(detail, detail_size, "byte %zu: NUL byte", (size_t)(nul - buf));
        return NULL;
    }
    /* JSON_DECODE_ANY so that "1" or "[]" fail below with one clear message
     * instead of jansson's "'[' or '{' expected". */
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);

    if (!root && json_error_code(&err) == json_error_duplicate_key) {
        /* jansson stops at the first problem in reading order, but a
         * document that is not JSON at all must say invalid_json even when
         * a duplicate key comes before its syntax error: parse again with
         * duplicates allowed to tell the two apart. */
        json_error_t err2;
        json_t *again = json_loadb(buf, len, JSON_DECODE_ANY, &err2);
        if (again) {
            json_decref(again);
            *why = TM_DUPLICATE_KEY;
            duplicate_key_detail(err.text, detail, detail_size);
            return NULL;
        }
        err = err2;
    }
    if (!root) {
        *why = TM_INVALID_JSON;
        set_detail(detail, detail_size, "byte %d: %s", err.position, err.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        *why = TM_INVALID_JSON;
        set_detail(detail, detail_size, "top level is not an object");
        return NULL;
    }
    return root;
}

/* The known fields of a jansson object. */
static void fields_from_json(json_t *root, struct fv f[F_COUNT])
{
    for (int k = 0; k < F_COUNT; k++) {
        json_t *v = json_object_get(root, known_fields[k]);
        struct fv *x = &f[k];
        memset(x, 0, sizeof(*x));
        if (!v)
            x->t = FV_ABSENT;
        else if (json_is_integer(v)) {
            x->t = FV_INT;
            x->i = (int64_t)json_integer_value(v);
            x->d = (double)x->i;
        } else if (json_is_real(v)) {
            x->t = FV_REAL;
            x->d = json_real_value(v);
        } else if (json_is_string(v)) {
            x->t = FV_STRING;
            x->s = json_string_value(v);
            x->n = json_string_length(v);
        } else
            x->t = json_is_true(v) ? FV_TRUE : json_is_false(v) ? FV_FALSE : json_is_null(v) ? FV_NULL : FV_OTHER;
    }
}

/* Integers must be JSON integers: 3.0 or 1.7e12 are reals to jansson and a
 * wrong_type here, so a device that sends floats for ts is noticed. */
static enum tm_reason int_field(const struct fv *v, int64_t *dst)
{
    if (v->t == FV_ABSENT)
        return TM_MISSING_FIELD;
    if (v->t != FV_INT)
        return TM_WRONG_TYPE;
    *dst = v->i;
    return TM_OK;
}

/* A number (integer or real) in [lo, hi], or [lo, hi) when hi_open.  An
 * optional field's null is a wrong_type, not an absence: a device that sends
 * null means something, and we would rather hear about it. */
static enum tm_reason num_field(const struct fv *v, bool required, double lo, double hi, bool hi_open, double *dst,
                                bool *has)
{
    if (v->t == FV_ABSENT)
        return required ? TM_MISSING_FIELD : TM_OK;
    if (v->t != FV_INT && v->t != FV_REAL)
        return TM_WRONG_TYPE;
    double d = v->d;
    if (!(d >= lo && (hi_open ? d < hi : d <= hi)))
        return TM_OUT_OF_RANGE;
    *dst = d;
    if (has)
        *has = true;
    return TM_OK;
}

/* The fields in table order; stops at the first fault with *failed naming
 * the field.  expect_id, if not NULL, is the MQTT topic's truck id. */
static enum tm_reason check_fields(const struct fv f[F_COUNT], int64_t now_ms, const char *expect_id,
                                   struct tm_reading *out, const char **failed)
{
    enum tm_reason rc;
    const struct fv *v;

    *failed = "v";
    v = &f[F_V];
    if (v->t == FV_ABSENT)
        return TM_MISSING_FIELD;
    if (v->t != FV_INT)
        return TM_WRONG_TYPE;
    if (v->i != 1)
        return TM_UNSUPPORTED_VERSION;

    *failed = "truck_id";
    v = &f[F_TRUCK_ID];
    if (v->t == FV_ABSENT)
        return TM_MISSING_FIELD;
    if (v->t != FV_STRING)
        return TM_WRONG_TYPE;
    if (!tm_valid_id(v->s, v->n))
        return TM_BAD_TRUCK_ID;
    memcpy(out->truck_id, v->s, v->n);
    out->truck_id[v->n] = '\0';
    if (expect_id && strcmp(out->truck_id, expect_id) != 0)
        return TM_TOPIC_MISMATCH;

    *failed = "ts";
    if ((rc = int_field(&f[F_TS], &out->ts_ms)))
        return rc;
    if (out->ts_ms < TM_TS_MIN_MS)
        return TM_TS_TOO_OLD;
    /* Saturate rather than overflow when now_ms is absurd. */
    int64_t limit = now_ms > INT64_MAX - TM_TS_AHEAD_MS ? INT64_MAX : now_ms + TM_TS_AHEAD_MS;
    if (out->ts_ms > limit)
        return TM_TS_IN_FUTURE;

    *failed = "seq";
    if ((rc = int_field(&f[F_SEQ], &out->seq)))
        return rc;
    if (out->seq < 0)
        return TM_OUT_OF_RANGE;

    *failed = "lat";
    if ((rc = num_field(&f[F_LAT], true, -90, 90, false, &out->lat, NULL)))
        return rc;
    *failed = "lon";
    if ((rc = num_field(&f[F_LON], true, -180, 180, false, &out->lon, NULL)))
        return rc;
    *failed = "speed_kmh";
    if ((rc = num_field(&f[F_SPEED], true, 0, 400, false, &out->speed_kmh, NULL)))
        return rc;

    *failed = "ignition";
    v = &f[F_IGNITION];
    if (v->t == FV_ABSENT)
        return TM_MISSING_FIELD;
    if (v->t != FV_TRUE && v->t != FV_FALSE)
        return TM_WRONG_TYPE;
    out->ignition = v->t == FV_TRUE;

    *failed = "heading_deg";
    if ((rc = num_field(&f[F_HEADING], false, 0, 360, true, &out->heading_deg, &out->has_heading)))
        return rc;
    *failed = "fuel_pct";
    if ((rc = num_field(&f[F_FUEL], false, 0, 100, false, &out->fuel_pct, &out->has_fuel)))
        return rc;
    *failed = "odometer_km";
    if ((rc = num_field(&f[F_ODOMETER], false, 0, HUGE_VAL, false, &out->odometer_km, &out->has_odometer)))
        return rc;

    *failed = NULL;
    return TM_OK;
}

/* ---- fast path --------------------------------------------------------- */

/* Almost every payload is a flat object of known fields with plain values,
 * as devices write them.  scan_flat() reads exactly that shape without
 * building a tree, and gives up (returns false) on anything else: an
 * unknown or repeated key, an escape, a byte outside printable ASCII in a
 * string, a nested value, a number jansson might read differently (more
 * than 18 digits, out of a double's range), a syntax error.  jansson then
 * reads the payload as before, so every error and every unknown field keeps
 * its one code path.  Where scan_flat() succeeds, its values are the ones
 * jansson would give (fuzz_telemetry.c compares the two on every input). */
static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && is_ws(*p))
        p++;
    return p;
}

/* A string without escapes or bytes outside printable ASCII; *p at the
 * opening quote.  Returns false to give up. */
static bool scan_string(const char **p, const char *end, const char **s, size_t *n)
{
    const char *q = *p + 1;
    const char *start = q;
    while (q < end && *q != '"') {
        unsigned char c = (unsigned char)*q;
        if (c < 0x20 || c > 0x7e || c == '\\')
            return false;
        q++;
    }
    if (q >= end)
        return false;
    *s = start;
    *n = (size_t)(q - start);
    *p = q + 1;
    return true;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The double nearest to a decimal of at most 15 significant digits and a
 * power of ten of at most 22, without strtod: both the digits and the power
 * are exact doubles, so one IEEE multiplication or division rounds the
 * result once, correctly, to what strtod gives (Clinger's fast path).
 * [p, end) is a valid JSON number without its sign.  Returns false when
 * the number is outside that range. */
static bool exact_decimal(const char *p, const char *end, bool neg, double *out)
{
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    uint64_t m = 0;
    int digits = 0, scale = 0;
    for (; p < end && is_digit(*p); p++) {
        if (m || *p != '0')
            digits++;
        m = m * 10 + (uint64_t)(*p - '0');
        if (digits > 15)
            return false;
    }
    if (p < end && *p == '.')
        for (p++; p < end && is_digit(*p); p++) {
            if (m || *p != '0')
                digits++;
            m = m * 10 + (uint64_t)(*p - '0');
            scale--;
            if (digits > 15)
                return false;
        }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int eneg = 0, e = 0;
        if (*p == '+' || *p == '-')
            eneg = *p++ == '-';
        for (; p < end && is_digit(*p); p++) {
            e = e * 10 + (*p - '0');
            if (e > 400)
                return false;
        }
        scale += eneg ? -e : e;
    }
    if (scale < -22 || scale > 22)
        return false;
    double d = (double)m;
    d = scale < 0 ? d / pow10[-scale] : d * pow10[scale];
    *out = neg ? -d : d;
    return true;
}

/* A JSON number by RFC 8259's grammar: an integer of at most 18 digits is
 * FV_INT, anything with a fraction or exponent FV_REAL (as jansson has it). */
static bool scan_number(const char **p, const char *end, struct fv *v)
{
    const char *q = *p, *start = *p;
    bool neg = false, real = false;
    if (q < end && *q == '-') {
        neg = true;
        q++;
    }
    const char *digits = q;
    if (q >= end || !is_digit(*q))
        return false;
    if (*q == '0')
        q++;
    else
        while (q < end && is_digit(*q))
            q++;
    size_t ndigits = (size_t)(q - digits);
    if (q < end && *q == '.') {
        real = true;
        q++;
        if (q >= end || !is_digit(*q))
            return false;
        while (q < end && is_digit(*q))
            q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        real = true;
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (q >= end || !is_digit(*q))
            return false;
        while (q < end && is_digit(*q))
            q++;
    }
    if (!real) {
        if (ndigits > 18)
            return false;
        int64_t x = 0;
        for (const char *d = digits; d < q; d++)
            x = x * 10 + (*d - '0');
        v->t = FV_INT;
        v->i = neg ? -x : x;
        v->d = (double)v->i;
    } else if (!exact_decimal(digits, q, neg, &v->d)) {
        char tmp[64];
        size_t n = (size_t)(q - start);
        if (n >= sizeof(tmp))
            return false;
        memcpy(tmp, start, n);
        tmp[n] = '\0';
        errno = 0;
        char *e;
        double d = strtod(tmp, &e);
        if (errno || e != tmp + n)
            return false;
        v->t = FV_REAL;
        v->d = d;
    } else {
        v->t = FV_REAL;
    }
    v->s = start; /* the text as sent: plain_number() may reuse it */
    v->n = (size_t)(q - start);
    *p = q;
    return true;
}

static bool scan_literal(const char **p, const char *end, const char *word, size_t n)
{
    if ((size_t)(end - *p) < n || memcmp(*p, word, n) != 0)
        return false;
    *p += n;
    return true;
}

static int known_index(const char *key, size_t n)
{
    static const uint8_t len[F_COUNT] = {1, 8, 2, 3, 3, 3, 9, 8, 11, 8, 11};
    for (int k = 0; k < F_COUNT; k++)
        if (len[k] == n && key[0] == known_fields[k][0] && memcmp(known_fields[k], key, n) == 0)
            return k;
    return -1;
}

static bool scan_flat(const char *buf, size_t len, struct fv f[F_COUNT])
{
    const char *p = buf, *end = buf + len;
    unsigned seen = 0;
    memset(f, 0, sizeof(struct fv) * F_COUNT);
    p = skip_ws(p, end);
    if (p >= end || *p++ != '{')
        return false;
    p = skip_ws(p, end);
    if (p < end && *p == '}') {
        p++;
    } else {
        for (;;) {
            const char *key;
            size_t kn;
            if (p >= end || *p != '"' || !scan_string(&p, end, &key, &kn))
                return false;
            int k = known_index(key, kn);
            if (k < 0 || (seen & 1u << k))
                return false;
            seen |= 1u << k;
            p = skip_ws(p, end);
            if (p >= end || *p++ != ':')
                return false;
            p = skip_ws(p, end);
            if (p >= end)
                return false;
            struct fv *v = &f[k];
            switch (*p) {
            case '"':
                v->t = FV_STRING;
                if (!scan_string(&p, end, &v->s, &v->n))
                    return false;
                break;
            case 't':
                v->t = FV_TRUE;
                if (!scan_literal(&p, end, "true", 4))
                    return false;
                break;
            case 'f':
                v->t = FV_FALSE;
                if (!scan_literal(&p, end, "false", 5))
                    return false;
                break;
            case 'n':
                v->t = FV_NULL;
                if (!scan_literal(&p, end, "null", 4))
                    return false;
                break;
            default:
                if (!scan_number(&p, end, v))
                    return false;
            }
            p = skip_ws(p, end);
            if (p >= end)
                return false;
            if (*p == '}') {
                p++;
                break;
            }
            if (*p++ != ',')
                return false;
            p = skip_ws(p, end);
        }
    }
    return skip_ws(p, end) == end;
}

enum extra_result { EXTRA_OK, EXTRA_TOO_LARGE, EXTRA_NO_MEMORY };

/* The unknown fields, normalized, in their original order (jansson keeps
 * object keys in insertion order).  On failure *extra stays NULL. */
static enum extra_result collect_extra(json_t *root, char **extra, size_t *extra_len)
{
    char tmp[TM_MAX_PAYLOAD];
    struct wbuf w = {.p = tmp, .size = sizeof(tmp), .len = 0};
    const char *key;
    json_t *v;

    *extra = NULL;
    *extra_len = 0;
    json_object_foreach(root, key, v)
    {
        if (is_known_field(key))
            continue;
        if (w.len > 0)
            w_char(&w, ',');
        w_json_string(&w, key, strlen(key));
        w_char(&w, ':');
        w_json_value(&w, v);
        if (w.len > sizeof(tmp))
            return EXTRA_TOO_LARGE;
    }
    if (w.len == 0)
        return EXTRA_OK;
    *extra = malloc(w.len + 1);
    if (!*extra)
        return EXTRA_NO_MEMORY;
    memcpy(*extra, tmp, w.len);
    (*extra)[w.len] = '\0';
    *extra_len = w.len;
    return EXTRA_OK;
}

/* Length of the normalized form, counted without writing it. */
static size_t normalized_len(const struct tm_reading *r)
{
    struct wbuf w = {.p = NULL, .size = 0, .len = 0};
    w_reading(&w, r, NULL);
    return w.len;
}

/* norm, when not NULL: an accepted reading's normalized form goes there as
 * serialize() writes it (*norm_len: its length, or -1 if it did not fit
 * norm_size bytes); from scan_flat()'s fields when it read the payload. */
static enum tm_reason parse(const char *buf, size_t len, int64_t now_ms, const char *expect_id, bool fast,
                            struct tm_reading *out, char *detail, size_t detail_size, char *norm, size_t norm_size,
                            int *norm_len)
{
    enum tm_reason rc = TM_OK;
    const char *failed = NULL;
    json_t *root = NULL;

    memset(out, 0, sizeof(*out));
    set_detail(detail, detail_size, "%s", "");

    if (len > TM_MAX_PAYLOAD) {
        rc = TM_TOO_LARGE;
        set_detail(detail, detail_size, "%zu bytes, limit %d", len, TM_MAX_PAYLOAD);
        goto out;
    }
    if (!buf)
        buf = "";
    struct fv f[F_COUNT];
    if (fast && scan_flat(buf, len, f)) {
        /* Known fields only: nothing else to collect. */
        rc = check_fields(f, now_ms, expect_id, out, &failed);
        if (rc)
            set_detail(detail, detail_size, "%s", failed);
        else if (norm)
            *norm_len = serialize(out, f, norm, norm_size);
        goto out;
    }
    root = load_object(buf, len, &rc, detail, detail_size);
    if (!root)
        goto out;
    fields_from_json(root, f);
    rc = check_fields(f, now_ms, expect_id, out, &failed);
    if (rc) {
        set_detail(detail, detail_size, "%s", failed);
        goto out;
    }
    switch (collect_extra(root, &out->extra, &out->extra_len)) {
    case EXTRA_OK:
        if (out->extra_len + TM_KNOWN_PART_MAX > TM_MAX_PAYLOAD && normalized_len(out) > TM_MAX_PAYLOAD) {
            rc = TM_TOO_LARGE;
            set_detail(detail, detail_size, "normalized");
        }
        break;
    case EXTRA_TOO_LARGE:
        rc = TM_TOO_LARGE;
        set_detail(detail, detail_size, "normalized");
        break;
    case EXTRA_NO_MEMORY:
        /* No rejection reason fits; at 4 KiB a failed malloc means the
         * process is in trouble anyway, and refusing one reading is safe. */
        rc = TM_TOO_LARGE;
        set_detail(detail, detail_size, "out of memory");
        break;
    }
    if (!rc && norm)
        *norm_len = serialize(out, NULL, norm, norm_size);

out:
    json_decref(root);
    if (rc) {
        free(out->extra);
        memset(out, 0, sizeof(*out));
    }
    return rc;
}

enum tm_reason tm_parse(const char *buf, size_t len, int64_t now_ms, struct tm_reading *out, char *detail,
                        size_t detail_size)
{
    return parse(buf, len, now_ms, NULL, true, out, detail, detail_size, NULL, 0, NULL);
}

enum tm_reason tm_parse_reference(const char *buf, size_t len, int64_t now_ms, struct tm_reading *out, char *detail,
                                  size_t detail_size)
{
    return parse(buf, len, now_ms, NULL, false, out, detail, detail_size, NULL, 0, NULL);
}

void tm_reading_release(struct tm_reading *r)
{
    if (!r)
        return;
    free(r->extra);
    r->extra = NULL;
    r->extra_len = 0;
}

/* ---- MQTT topics ------------------------------------------------------- */

enum tm_topic_kind tm_topic_parse(const char *topic, char *id, size_t id_size)
{
    static const char trucks[] = "fleet/trucks/", gateways[] = "fleet/gateways/";
    const char *rest;
    bool is_truck;

    if (id && id_size > 0)
        id[0] = '\0';
    if (!topic)
        return TM_TOPIC_UNKNOWN;
    if (strncmp(topic, trucks, sizeof(trucks) - 1) == 0) {
        rest = topic + sizeof(trucks) - 1;
        is_truck = true;
    } else if (strncmp(topic, gateways, sizeof(gateways) - 1) == 0) {
        rest = topic + sizeof(gateways) - 1;
        is_truck = false;
    } else {
        return TM_TOPIC_UNKNOWN;
    }

    /* The id is exactly one level: wildcards, empty levels and extra levels
     * all fail here or in the strcmp of the last level. */
    const char *slash = strchr(rest, '/');
    if (!slash || !tm_valid_id(rest, (size_t)(slash - rest)))
        return TM_TOPIC_UNKNOWN;
    size_t n = (size_t)(slash - rest);
    const char *last = slash + 1;

    enum tm_topic_kind kind = TM_TOPIC_UNKNOWN;
    if (is_truck && strcmp(last, "telemetry") == 0)
        kind = TM_TOPIC_TELEMETRY;
    else if (strcmp(last, "status") == 0)
        kind = is_truck ? TM_TOPIC_TRUCK_STATUS : TM_TOPIC_GATEWAY_STATUS;
    if (kind == TM_TOPIC_UNKNOWN || !id || id_size < n + 1)
        return TM_TOPIC_UNKNOWN;
    memcpy(id, rest, n);
    id[n] = '\0';
    return kind;
}

enum tm_reason tm_parse_mqtt(const char *topic, const char *buf, size_t len, int64_t now_ms, struct tm_reading *out,
                             char *detail, size_t detail_size)
{
    char id[TM_TRUCK_ID_MAX + 1];
    enum tm_topic_kind kind = tm_topic_parse(topic, id, sizeof(id));

    if (kind != TM_TOPIC_TELEMETRY) {
        memset(out, 0, sizeof(*out));
        set_detail(detail, detail_size, "topic");
        return kind == TM_TOPIC_UNKNOWN ? TM_BAD_TRUCK_ID : TM_TOPIC_MISMATCH;
    }
    return parse(buf, len, now_ms, id, true, out, detail, detail_size, NULL, 0, NULL);
}

enum tm_reason tm_normalize(const char *buf, size_t len, int64_t now_ms, const char *expect_id, struct tm_reading *out,
                            char *norm, size_t norm_size, int *norm_len, char *detail, size_t detail_size)
{
    *norm_len = -1;
    if (norm && norm_size)
        norm[0] = '\0';
    return parse(buf, len, now_ms, expect_id, true, out, detail, detail_size, norm, norm_size, norm_len);
}
