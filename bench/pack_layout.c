/*
 * bench/pack_layout.c - readings of a synthetic fleet in the two layouts
 * history can store: one row per reading (the telemetry table's columns) and
 * one packed row per truck-hour (core/pack.h), as COPY text files, for
 * bench/pack_layout.sh to load into PostgreSQL and compare.
 *
 *   build/bench/pack_layout TRUCKS HOURS INTERVAL_S DIR
 *
 * writes DIR/rows.tsv and DIR/packed.tsv.  The readings look like the
 * simulator's (positions to 6 decimals, speed, heading, fuel and odometer to
 * 1): trucks drive 06:00-18:00 (not every fifth hour) at 40-120 km/h with a
 * wandering heading, stand still the rest of the time, and report every
 * INTERVAL_S seconds with a per-truck offset; the record time is 20-60 ms
 * after ts.  Three more trucks, EDGE-1..3, hold in their first hour the
 * readings that take the encoder's other paths: values no decimal scale
 * holds (raw floats), -0, poles and the antimeridian, a seq past int4 and
 * restarting, record times in years 0001 and 9999, absent heading, fuel and
 * odometer.  Deterministic (fixed seed).
 */
#include "core/pack.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define H0 1793491200000LL /* 2026-11-01T00:00:00Z */

static double fixed(double v, int d)
{
    double q = pow(10, d);
    return round(v * q) / q;
}

static void put_ts(FILE *f, int64_t ms)
{
    int64_t sec = ms / 1000, milli = ms % 1000;
    if (milli < 0) {
        milli += 1000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    fprintf(f, "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
            tm.tm_min, tm.tm_sec, (int)milli);
}

static void put_num(FILE *f, double v)
{
    if (isnan(v))
        fputs("\\N", f);
    else
        fprintf(f, "%.17g", v);
}

/* One row per reading and the packed row of readings r[0..n) of truck id in
 * the hour starting hour_ms.  Returns 0 or -1 (reason on stderr). */
static int put_hour(FILE *rows, FILE *packed, const char *id, const struct pack_reading *r, size_t n, int64_t hour_ms,
                    struct buf *b)
{
    char err[200];
    for (size_t i = 0; i < n; i++) {
        const struct pack_reading *p = &r[i];
        fprintf(rows, "%s\t", id);
        put_ts(rows, p->ts_ms);
        fprintf(rows, "\t%lld", (long long)p->seq);
        const double v[] = {p->lat, p->lon, p->speed_kmh, p->heading_deg};
        for (int j = 0; j < 4; j++) {
            fputc('\t', rows);
            put_num(rows, v[j]);
        }
        fprintf(rows, "\t%c\t", p->ignition ? 't' : 'f');
        put_num(rows, p->fuel_pct);
        fputc('\t', rows);
        put_num(rows, p->odometer_km);
        fputc('\t', rows);
        if (p->has_recv)
            put_ts(rows, p->recv_ms);
        else
            fputs("\\N", rows);
        fputc('\n', rows);
    }
    buf_reset(b);
    if (pack_encode(r, n, hour_ms, b, err, sizeof(err)) != 0 || b->oom) {
        fprintf(stderr, "pack_layout: %s\n", b->oom ? "out of memory" : err);
        return -1;
    }
    fprintf(packed, "%s\t", id);
    put_ts(packed, hour_ms);
    fprintf(packed, "\t%s\n", b->p);
    return 0;
}

static struct pack_reading edge(int64_t t_ms, int64_t seq, double lat, double lon)
{
    return (struct pack_reading){.ts_ms = H0 + t_ms,
                                 .seq = seq,
                                 .lat = lat,
                                 .lon = lon,
                                 .speed_kmh = 72.5,
                                 .heading_deg = 184,
                                 .fuel_pct = 63.2,
                                 .odometer_km = 123456.7,
                                 .ignition = 1,
                                 .has_recv = 1,
                                 .recv_ms = H0 + t_ms + 35};
}

static int put_edges(FILE *rows, FILE *packed, struct buf *b)
{
    struct pack_reading raw[] = {edge(0, 1, 0.1 + 0.2, 1e-300), edge(1, 2, 48.1234567891, 5e-324),
                                 edge(2, 3, -0.0, 179.9999999)};
    raw[0].odometer_km = 1e300;
    raw[1].odometer_km = 1.7976931348623157e308;
    raw[0].speed_kmh = 0.5;
    raw[1].speed_kmh = 0;
    struct pack_reading big[] = {edge(0, 0, -90, -180), edge(1, INT64_MAX, 90, 180), edge(2, INT64_MAX, 90, 180),
                                 edge(3, 0, -90, -180)};
    big[1].recv_ms = big[2].recv_ms = -62135596800000LL + 5; /* 0001-01-01 */
    big[3].recv_ms = 253402300799999LL;                      /* 9999-12-31 */
    big[0].has_recv = 0;
    struct pack_reading gaps[] = {edge(0, 1, 1, 1), edge(1, 2, 1, 1), edge(2, 3, 1, 1),
                                  edge(3599999, 4, -0.000001, 179.9999999)};
    for (int i = 0; i < 4; i++)
        gaps[i].heading_deg = gaps[i].odometer_km = NAN;
    gaps[1].fuel_pct = NAN;
    gaps[2].fuel_pct = 60.2;
    gaps[0].has_recv = gaps[3].has_recv = 0;
    return put_hour(rows, packed, "EDGE-1", raw, 3, H0, b) || put_hour(rows, packed, "EDGE-2", big, 4, H0, b) ||
                   put_hour(rows, packed, "EDGE-3", gaps, 4, H0, b)
               ? -1
               : 0;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: pack_layout TRUCKS HOURS INTERVAL_S DIR\n");
        return 2;
    }
    int trucks = atoi(argv[1]), hours = atoi(argv[2]), iv = atoi(argv[3]);
    if (trucks < 1 || hours < 1 || iv < 1 || iv > 3600) {
        fprintf(stderr, "pack_layout: TRUCKS, HOURS >= 1, INTERVAL_S in 1..3600\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/rows.tsv", argv[4]);
    FILE *rows = fopen(path, "w");
    snprintf(path, sizeof(path), "%s/packed.tsv", argv[4]);
    FILE *packed = fopen(path, "w");
    int per = 3600 / iv;
    struct pack_reading *r = calloc((size_t)per, sizeof(*r));
    struct buf b = {0};
    if (!rows || !packed || !r) {
        perror("pack_layout");
        return 1;
    }
    srand(1);
    for (int k = 0; k < trucks; k++) {
        double lat = 45 + k % 5, lon = 7 + k % 7, hd = rand() % 360, fuel = 80, odo = 10000 + k, v = 0;
        int64_t seq = 0, off = (rand() % iv) * 1000 + rand() % 1000;
        for (int h = 0; h < hours; h++) {
            int64_t hour = H0 + (int64_t)h * 3600000;
            int driving = h % 24 >= 6 && h % 24 < 18 && h % 5 != 2;
            for (int i = 0; i < per; i++) {
                struct pack_reading *p = &r[i];
                v = driving ? fmax(0, fmin(120, (v < 30 ? 70 : v) + (rand() % 100 - 50) / 10.0)) : 0;
                hd = fmod(hd + (driving ? (rand() % 40 - 20) / 4.0 : 0) + 360, 360);
                double km = v * iv / 3600.0;
                lat += km / 111.0 * cos(hd * M_PI / 180);
                lon += km / 78.0 * sin(hd * M_PI / 180);
                fuel -= km * 0.03;
                if (fuel < 10)
                    fuel = 95;
                odo += km;
                *p = (struct pack_reading){.ts_ms = hour + (int64_t)i * iv * 1000 + off,
                                           .seq = seq++,
                                           .lat = fixed(lat, 6),
                                           .lon = fixed(lon, 6),
                                           .speed_kmh = fixed(v, 1),
                                           .heading_deg = fmod(fixed(hd, 1), 360),
                                           .fuel_pct = fixed(fuel, 1),
                                           .odometer_km = fixed(odo, 1),
                                           .ignition = driving,
                                           .has_recv = 1};
                p->recv_ms = p->ts_ms + 20 + rand() % 40;
            }
            char id[32];
            snprintf(id, sizeof(id), "TRK-%06d", k + 1);
            if (put_hour(rows, packed, id, r, (size_t)per, hour, &b) < 0)
                return 1;
        }
    }
    if (put_edges(rows, packed, &b) < 0)
        return 1;
    buf_release(&b);
    free(r);
    return fclose(rows) || fclose(packed) ? 1 : 0;
}
