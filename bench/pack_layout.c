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
 * after ts.  Deterministic (fixed seed).
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
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char s[40];
    gmtime_r(&t, &tm);
    strftime(s, sizeof(s), "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(f, "%s.%03d+00", s, (int)(ms % 1000));
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
    char err[200];
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
                fprintf(rows, "TRK-%06d\t", k + 1);
                put_ts(rows, p->ts_ms);
                fprintf(rows, "\t%lld\t%.6f\t%.6f\t%.1f\t%.1f\t%c\t%.1f\t%.1f\t", (long long)p->seq, p->lat, p->lon,
                        p->speed_kmh, p->heading_deg, p->ignition ? 't' : 'f', p->fuel_pct, p->odometer_km);
                put_ts(rows, p->recv_ms);
                fputc('\n', rows);
            }
            buf_reset(&b);
            if (pack_encode(r, (size_t)per, hour, &b, err, sizeof(err)) != 0 || b.oom) {
                fprintf(stderr, "pack_layout: %s\n", b.oom ? "out of memory" : err);
                return 1;
            }
            fprintf(packed, "TRK-%06d\t", k + 1);
            put_ts(packed, hour);
            fprintf(packed, "\t%s\n", b.p);
        }
    }
    buf_release(&b);
    free(r);
    return fclose(rows) || fclose(packed) ? 1 : 0;
}
