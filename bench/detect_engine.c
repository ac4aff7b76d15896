/*
 * bench/detect_engine.c - the detector's rule engine in-process: events per
 * second on one core (detect_engine_feed only: no Kafka, no JSON) and bytes
 * of engine state per truck.  Targets (docs/design.md): >= 1,000,000 events/s,
 * <= 150 bytes per truck.
 *
 *   build/bench/detect_engine [--trucks N] [--partitions P] [--runs R] [--rounds K]
 *
 * Without --trucks it measures 1,000 and then 1,000,000 trucks.  --rounds
 * defaults to enough rounds for 10 million timed events per run (at least
 * 10).
 * A synthetic fleet reports every 10 s of event time: about 60 % of the
 * trucks drive (40-90 km/h, turning now and then), 30 % are parked with the
 * engine off, 10 % idle with the engine on (so stationary_engine_on fires
 * after 20 min); trucks change mode every few hundred readings.  Within a
 * round, readings come partition by partition in truck order, each truck at
 * its own second of the 10 s interval, so the engine sees the usual small
 * reordering.  Each run builds a fresh engine, warms it up for 15 rounds
 * (table built, 2 min of held readings), then times K rounds; the figure is
 * the median of R runs.  Generating readings is not timed.
 */
#include "detect/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define T0 1764201600000LL

struct sim_truck {
    double lat, lon, heading, speed, fuel;
    int mode; /* 0 drive, 1 parked off, 2 idling */
    int left; /* readings until the next mode change */
};

static uint64_t rng = 88172645463325252ull;
static double rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static void new_mode(struct sim_truck *t)
{
    double u = rnd();
    t->mode = u < 0.6 ? 0 : u < 0.9 ? 1 : 2;
    t->speed = t->mode == 0 ? 40 + 50 * rnd() : 0;
    t->left = 60 + (int)(rnd() * 300);
}

static void step(struct sim_truck *t)
{
    if (--t->left <= 0)
        new_mode(t);
    if (t->mode == 0) {
        if (rnd() < 0.05)
            t->heading += (rnd() - 0.5) * 90;
        double d = t->speed / 3.6 * 10; /* metres in 10 s */
        double h = t->heading * 3.14159265358979 / 180;
        t->lat += d * cos(h) / 111195.0;
        t->lon += d * sin(h) / (111195.0 * cos(t->lat * 3.14159265358979 / 180));
        t->fuel -= d / 1000 * 0.05;
        if (t->fuel < 10)
            t->fuel = 95;
    }
}

static void on_alert(void *ctx, const struct detect_alert *a)
{
    (void)a;
    (*(uint64_t *)ctx)++;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench(long trucks, long parts, long runs, long rounds);

int main(int argc, char **argv)
{
    long trucks = 0, parts = 6, runs = 5, rounds = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--trucks") == 0)
            trucks = atol(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--partitions") == 0)
            parts = atol(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--runs") == 0)
            runs = atol(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--rounds") == 0)
            rounds = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--trucks N] [--partitions P] [--runs R] [--rounds K]\n", argv[0]);
            return 2;
        }
    }
    if (trucks < 0 || parts < 1 || runs < 1 || runs > 99 || rounds < 0) {
        fprintf(stderr, "detect_engine bench: counts must be positive (runs at most 99)\n");
        return 2;
    }
    if (trucks)
        return bench(trucks, parts, runs, rounds ? rounds : (10000000 + trucks - 1) / trucks);
    int rc = bench(1000, parts, runs, rounds ? rounds : 10000);
    return rc ? rc : bench(1000000, parts, runs, rounds ? rounds : 10);
}

static int bench(long trucks, long parts, long runs, long rounds)
{
    if (rounds < 10)
        rounds = 10;
    const int warmup = 15;
    struct sim_truck *fleet = malloc((size_t)trucks * sizeof(*fleet));
    char *ids = malloc((size_t)trucks * 16);
    struct detect_reading *batch = malloc((size_t)trucks * sizeof(*batch));
    int *order = malloc((size_t)trucks * sizeof(*order));
    if (!fleet || !ids || !batch || !order) {
        fprintf(stderr, "detect_engine bench: out of memory\n");
        return 1;
    }
    /* readings grouped by partition (truck i is in partition i % parts) */
    long k = 0;
    for (long p = 0; p < parts; p++)
        for (long i = p; i < trucks; i += parts)
            order[k++] = (int)i;

    double rate[100];
    size_t bytes = 0;
    uint64_t alerts = 0;
    struct detect_stats st = {0};
    for (long run = 0; run < runs; run++) {
        rng = 88172645463325252ull;
        for (long i = 0; i < trucks; i++) {
            fleet[i] = (struct sim_truck){
                .lat = 47 + 7 * rnd(), .lon = 6 + 9 * rnd(), .heading = 360 * rnd(), .fuel = 30 + 60 * rnd()};
            new_mode(&fleet[i]);
            snprintf(ids + i * 16, 16, "TRK-%06d", (int)((i + 1) % 100000000));
        }
        struct detect_rules rules;
        detect_rules_defaults(&rules);
        /* --lateness 120, as docs/bench/detect.md measured it: the ordering
         * path (held readings) is the heavier one; the default (0) holds none */
        rules.lateness_ms = 120000;
        alerts = 0;
        struct detect_engine *e = detect_engine_new(&rules, NULL, (int)parts, on_alert, &alerts);
        double busy = 0;
        long events = 0;
        for (int round = 0; round < warmup + rounds; round++) {
            for (long j = 0; j < trucks; j++) {
                long i = order[j];
                struct sim_truck *t = &fleet[i];
                step(t);
                double jit = t->mode == 0 ? 0 : (rnd() - 0.5) * 20 / 111195.0;
                batch[j] = (struct detect_reading){.truck_id = ids + i * 16,
                                                   .truck_id_len = strlen(ids + i * 16),
                                                   .ts_ms = T0 + round * 10000LL + (i % 10) * 1000,
                                                   .seq = round,
                                                   .lat = t->lat + jit,
                                                   .lon = t->lon + jit,
                                                   .speed_kmh = t->speed,
                                                   .ignition = t->mode != 1,
                                                   .fuel_pct = t->fuel};
            }
            double t0 = now_s();
            for (long j = 0; j < trucks; j++)
                if (detect_engine_feed(e, order[j] % (int)parts, &batch[j])) {
                    fprintf(stderr, "detect_engine bench: feed failed (out of memory)\n");
                    return 1;
                }
            double dt = now_s() - t0;
            if (round >= warmup) {
                busy += dt;
                events += trucks;
            }
        }
        rate[run] = events / busy;
        bytes = detect_engine_bytes_per_truck(e);
        detect_engine_stats(e, &st);
        detect_engine_free(e);
        fprintf(stderr, "run %ld: %.0f events/s\n", run + 1, rate[run]);
    }
    qsort(rate, (size_t)runs, sizeof(rate[0]), cmp_double);
    printf("detect engine: %ld trucks, %ld partitions, %ld timed rounds of 10 s: %.0f events/s (median of %ld runs, "
           "min %.0f, max %.0f); %zu bytes per truck; %llu held readings; %llu alerts in the last run\n",
           trucks, parts, rounds, rate[runs / 2], runs, rate[0], rate[runs - 1], bytes, (unsigned long long)st.held,
           (unsigned long long)alerts);
    printf("  raised in the last run:");
    for (int r = 0; r < DR_COUNT; r++)
        printf(" %s %llu", detect_rule_name((enum detect_rule)r), (unsigned long long)st.raised[r]);
    printf("\n");
    free(fleet);
    free(ids);
    free(batch);
    free(order);
    return 0;
}
