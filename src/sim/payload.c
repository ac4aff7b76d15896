/*
 * payload.c - telemetry v1 payloads and topics, formatted without printf
 * (the simulator's hot path; see payload.h).
 */
#include "sim/payload.h"

#include "core/telemetry.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static char *put_str(char *p, const char *s)
{
    while (*s)
        *p++ = *s++;
    return p;
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* v rounded to dec decimals, e.g. 48.137154 */
static char *put_fixed(char *p, double v, int dec)
{
    static const double scale[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    static const uint64_t iscale[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    if (v < 0) {
        double r = llround(-v * scale[dec]);
        if (r > 0)
            *p++ = '-';
        v = -v;
    }
    uint64_t n = (uint64_t)llround(v * scale[dec]);
    p = put_u64(p, n / iscale[dec]);
    if (dec) {
        *p++ = '.';
        uint64_t frac = n % iscale[dec];
        for (int k = dec - 1; k >= 0; k--) {
            p[k] = (char)('0' + frac % 10);
            frac /= 10;
        }
        p += dec;
    }
    return p;
}

int sim_format_reading(char *buf, size_t size, const char *id, int64_t ts, const struct fleet_sample *s)
{
    if (size < SIM_PAYLOAD_MAX || strlen(id) > 64)
        return -1;
    char *p = buf;
    double hdg = round(s->heading_deg * 10) / 10;
    if (hdg >= 360 || hdg < 0)
        hdg = 0;
    p = put_str(p, "{\"v\":1,\"truck_id\":\"");
    p = put_str(p, id);
    p = put_str(p, "\",\"ts\":");
    p = put_u64(p, (uint64_t)ts);
    p = put_str(p, ",\"seq\":");
    p = put_u64(p, s->seq);
    p = put_str(p, ",\"lat\":");
    p = put_fixed(p, fmin(fmax(s->lat, -90), 90), 6);
    p = put_str(p, ",\"lon\":");
    p = put_fixed(p, fmin(fmax(s->lon, -180), 180), 6);
    p = put_str(p, ",\"speed_kmh\":");
    p = put_fixed(p, fmin(fmax(s->speed_kmh, 0), 400), 1);
    p = put_str(p, ",\"heading_deg\":");
    p = put_fixed(p, hdg, 1);
    p = put_str(p, s->ignition ? ",\"ignition\":true" : ",\"ignition\":false");
    p = put_str(p, ",\"fuel_pct\":");
    p = put_fixed(p, fmin(fmax(s->fuel_pct, 0), 100), 1);
    p = put_str(p, ",\"odometer_km\":");
    p = put_fixed(p, fmax(s->odometer_km, 0), 1);
    *p++ = '}';
    *p = '\0';
    return (int)(p - buf);
}

/* The number put_fixed(v, dec) writes, as strtod reads it back: the integer
 * m = llround(v 10^dec) over 10^dec is one correctly rounded division of
 * exact values, the very double strtod makes of "m e-dec". */
static double fixed_value(double v, int dec)
{
    static const double scale[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    return (double)llround(v * scale[dec]) / scale[dec];
}

int sim_format_normalized(char *buf, size_t size, const char *id, int64_t ts, const struct fleet_sample *s)
{
    struct tm_reading r = {.ts_ms = ts,
                           .seq = (int64_t)s->seq,
                           .ignition = s->ignition,
                           .has_heading = true,
                           .has_fuel = true,
                           .has_odometer = true};
    if (size < SIM_PAYLOAD_MAX || strlen(id) > 64)
        return -1;
    double hdg = round(s->heading_deg * 10) / 10;
    if (hdg >= 360 || hdg < 0)
        hdg = 0;
    snprintf(r.truck_id, sizeof(r.truck_id), "%s", id);
    r.lat = fixed_value(fmin(fmax(s->lat, -90), 90), 6);
    r.lon = fixed_value(fmin(fmax(s->lon, -180), 180), 6);
    r.speed_kmh = fixed_value(fmin(fmax(s->speed_kmh, 0), 400), 1);
    r.heading_deg = fixed_value(hdg, 1);
    r.fuel_pct = fixed_value(fmin(fmax(s->fuel_pct, 0), 100), 1);
    r.odometer_km = fixed_value(fmax(s->odometer_km, 0), 1);
    return tm_serialize(&r, buf, size);
}

int sim_format_topic(char *buf, size_t size, const char *id)
{
    size_t n = strlen(id);
    if (n + sizeof("fleet/trucks//telemetry") > size)
        return -1;
    char *p = put_str(buf, "fleet/trucks/");
    p = put_str(p, id);
    p = put_str(p, "/telemetry");
    *p = '\0';
    return (int)(p - buf);
}
