/*
 * sim.c - "fleetsync sim": options, the send schedule, status, summary.
 *
 * Schedule.  Readings are numbered by slot s = k * N + i (truck i, round k)
 * and slot s is due at start + k * interval + i * interval / N: each truck
 * reports every interval, and the fleet's reports are spread evenly over
 * the interval instead of arriving in one burst.  Slots are sent in order
 * as soon as the simulated clock (clock.h: speedup, never ahead of the wall
 * clock) reaches them and flow control allows (a bounded number of
 * unacknowledged messages per connection and in total), so one counter is
 * the whole scheduler state.
 *
 * Exit status: 0 when every reading was acknowledged (QoS 1) or written
 * (QoS 0) by the end, 1 if any could not be delivered or on a runtime
 * failure, 2 on a usage error.
 */
#include "sim/sim.h"

#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/mqttauth.h"
#include "core/sig.h"
#include "core/timeparse.h"
#include "sim/clock.h"
#include "sim/fleet.h"
#include "sim/kafkaout.h"
#include "sim/mqttpool.h"
#include "sim/payload.h"
#include "sim/scenario.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_METRICS_PORT 9105
#define BATCH                65536
#define MAX_TOTAL_INFLIGHT   200000
#define MAX_SOURCE_IPS       64

struct sim_opts {
    long trucks;
    double interval_s;
    long connections;     /* 0 = one per truck */
    double duration_s;    /* 0 = until stopped */
    int qos;
    double speedup;
    const char *start;
    uint64_t seed;
    const char *id_prefix;
    const char *scenario, *truth, *geofences;
    char *source_ips_arg;
    const char *source_ips[MAX_SOURCE_IPS];
    size_t n_source_ips;
    int quiet, dry_run, print, until_now, clear_presence, kafka, qos_given;
    double drain_s;
    int batch_ms; /* -1 until given or defaulted */
    uint32_t max_inflight;
    const char *cafile;
};

static void sim_usage(FILE *out)
{
    fprintf(out,
            "usage: fleetsync sim [options]\n\n"
            "Simulates a fleet of trucks driving jobs between European logistics hubs and\n"
            "publishes their telemetry v1 over MQTT, as real trucks do: one reading per truck\n"
            "every --interval seconds, spread evenly over time, QoS 1, a per-truck seq,\n"
            "retained online/offline presence, reconnects with backoff and resends.\n\n"
            "Fleet:\n"
            "  --trucks N          trucks to simulate (default 100)\n"
            "  --interval S        seconds between two readings of a truck (default 10)\n"
            "  --id-prefix P       truck ids are P + at least six digits (default TRK-)\n"
            "  --seed N            the fleet's randomness: same seed, same readings (default 1)\n"
            "MQTT:\n"
            "  --connections C     MQTT connections (default: one per truck, each with its own\n"
            "                      presence fleet/trucks/{id}/status); C < N makes them gateways\n"
            "                      (presence fleet/gateways/{P}GW0001/status, trucks round robin)\n"
            "  --qos 0|1           telemetry QoS (default 1)\n"
            "  --source-ips A,B    local addresses to connect from, round robin (e.g. 127.0.0.2,\n"
            "                      127.0.0.3) to open more than ~28k connections (default: any)\n"
            "  --max-inflight N    unacknowledged readings per connection before it waits\n"
            "                      (default 100 with own connections, 256 for gateways)\n"
            "  --batch-ms MS       write the readings that come due within MS milliseconds together:\n"
            "                      one write per connection, not one per reading; a reading goes\n"
            "                      out at most MS late, never early (default: 100 with gateways,\n"
            "                      0 = each when due with a connection per truck)\n"
            "  --drain-timeout S   at the end, wait up to S seconds for acknowledgements (default 30)\n"
            "  --clear-presence    a clean end clears the retained presence instead of leaving\n"
            "                      'offline' (for test and benchmark fleets that will not return)\n"
            "  --cafile FILE       CA certificate that signs the broker's for mqtts:// (default:\n"
            "                      DIR/tls/ca.crt for the data dir's own broker, else the system's)\n"
            "Credentials: with no user:pass in --mqtt, each connection of the data dir's own\n"
            "broker logs in as its truck (or gateway) id with the password derived from\n"
            "DIR/mqtt/secret, once 'fleetsync trucks add' has made it (docs/security.md).\n"
            "Time:\n"
            "  --start T           simulated start: ISO 8601 UTC (2026-10-27T00:00:00Z) or now-30d,\n"
            "                      now-6h, now-90m (default now)\n"
            "  --speedup X         simulated seconds per wall second (default 1); 0 = as fast as\n"
            "                      the broker accepts. The simulated clock never runs ahead of the\n"
            "                      wall clock: once it reaches now the run continues in real time\n"
            "  --until-now         end the run when the simulated clock reaches now instead\n"
            "  --duration S        stop after S simulated seconds (default: until Ctrl-C)\n"
            "Incidents (ground truth for the detector):\n"
            "  --scenario F        JSON lines, one incident each (see docs/sim.md); at_s counts\n"
            "                      simulated seconds from the start\n"
            "  --geofences F       GeoJSON fences that geofence_exit incidents leave\n"
            "  --truth F           write each injected incident with start_ms and end_ms\n"
            "Output:\n"
            "  --quiet             no status line (a final summary is always printed)\n"
            "  --dry-run           generate readings without MQTT (to measure the model)\n"
            "  --kafka             produce the readings straight into Kafka's truck-telemetry\n"
            "                      (--brokers, --topic-prefix), as the bridge would have\n"
            "                      written them, instead of MQTT: for loads above what the\n"
            "                      MQTT broker carries (benchmarks of the pipelines); no\n"
            "                      presence, and the MQTT options are refused\n"
            "  --print             with --dry-run: print 'topic payload' lines to stdout\n"
            "  -h, --help          this text\n\n"
            "Exit status: 0 all readings delivered, 1 some could not be delivered or a runtime\n"
            "failure, 2 usage error. Metrics on --metrics-port (default %d, -1 = off).\n\n%s",
            DEFAULT_METRICS_PORT, cfg_options_help);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* --- options ----------------------------------------------------------- */

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

struct name_ctx {
    const char *prefix;
    size_t prefix_len;
    int gateway;
};

static void conn_name(void *ud, uint32_t conn, char *buf, size_t size)
{
    const struct name_ctx *n = ud;
    if (n->gateway)
        snprintf(buf, size, "%sGW%04u", n->prefix, conn + 1);
    else
        fleet_format_id(buf, size, n->prefix, n->prefix_len, conn);
}

/* The data dir's credentials (core/mqttauth.h): each connection logs in as
 * its own id. */
struct sim_auth {
    const char *data_dir;
    struct mqa_secret secret;
    int on;
};

static int auth_password(void *ud, const char *user, char *buf, size_t size)
{
    const struct sim_auth *a = ud;
    return mqa_derive(&a->secret, user, buf, size);
}

static int valid_prefix(const char *p)
{
    size_t n = strlen(p);
    if (n > 40)
        return 0;
    for (size_t k = 0; k < n; k++)
        if (!((p[k] >= 'A' && p[k] <= 'Z') || (p[k] >= 'a' && p[k] <= 'z') || (p[k] >= '0' && p[k] <= '9') ||
              p[k] == '.' || p[k] == '_' || p[k] == '-'))
            return 0;
    return 1;
}

/* --- the run ----------------------------------------------------------- */

struct run {
    const struct sim_opts *o;
    struct fleet *fleet;
    struct mqttpool *pool;
    struct kafkaout *kout; /* --kafka: instead of pool */
    struct scenario scen;
    FILE *truth;
    struct metrics *metrics;
    struct metric *m_pub, *m_ack, *m_fail, *m_rec, *m_err, *m_inflight, *m_up, *m_clock, *m_inc;
    uint64_t dry_sent, incidents, skipped;
    struct mqp_stats last;
};

static void get_stats(const struct run *r, struct mqp_stats *st)
{
    if (r->pool) {
        mqp_get_stats(r->pool, st);
    } else if (r->kout) {
        kafkaout_get_stats(r->kout, st);
    } else {
        memset(st, 0, sizeof(*st));
        st->published = st->acked = r->dry_sent;
    }
}

static void write_truth(struct run *r)
{
    int32_t idx[64];
    size_t n;
    while ((n = fleet_take_started(r->fleet, idx, 64)) > 0)
        for (size_t k = 0; k < n; k++) {
            r->incidents++;
            if (r->truth && scenario_write_truth(&r->scen, (size_t)idx[k], r->truth) != 0)
                log_error("cannot write the truth file %s: %s", r->o->truth, strerror(errno));
        }
}

static void update_metrics(struct run *r, int64_t sim_ms)
{
    struct mqp_stats st;
    get_stats(r, &st);
    if (!r->metrics)
        return;
    metric_add(r->m_pub, st.published - r->last.published);
    metric_add(r->m_ack, st.acked - r->last.acked);
    metric_add(r->m_fail, st.failed - r->last.failed);
    metric_add(r->m_rec, st.reconnects - r->last.reconnects);
    metric_add(r->m_err, st.errors - r->last.errors);
    metric_set(r->m_inflight, (double)st.inflight);
    metric_set(r->m_up, st.up);
    metric_set(r->m_clock, (double)sim_ms / 1000.0);
    metric_set(r->m_inc, (double)r->incidents);
    r->last = st;
}

static void status_line(const struct run *r, int64_t sim_ms, double rate)
{
    struct mqp_stats st;
    char clk[32];
    get_stats(r, &st);
    sim_clock_format(sim_ms, clk, sizeof(clk));
    fprintf(stderr,
            "\r\033[K%s  trucks %ld  conns %u/%u  %.0f msg/s  sent %" PRIu64 "  acked %" PRIu64 "  in flight %" PRIu64
            "  reconnects %" PRIu64 "  errors %" PRIu64,
            clk, r->o->trucks, st.up, st.conns, rate, st.published, st.acked, st.inflight, st.reconnects,
            st.errors + st.failed);
    fflush(stderr);
}

static int setup_metrics(struct run *r, const struct fs_config *cfg)
{
    int port = cfg->metrics_port == 0 ? DEFAULT_METRICS_PORT : cfg->metrics_port;
    char err[256];
    if (port < 0)
        return 0;
    r->metrics = metrics_new();
    if (!r->metrics)
        return -1;
    r->m_pub = metrics_counter(r->metrics, "fleetsync_sim_messages_published_total", "telemetry readings published", NULL);
    r->m_ack = metrics_counter(r->metrics, "fleetsync_sim_messages_acked_total",
                               "readings acknowledged by the broker (QoS 0: written)", NULL);
    r->m_fail = metrics_counter(r->metrics, "fleetsync_sim_messages_failed_total", "readings that could not be sent", NULL);
    r->m_rec = metrics_counter(r->metrics, "fleetsync_sim_reconnects_total", "MQTT reconnections", NULL);
    r->m_err = metrics_counter(r->metrics, "fleetsync_sim_connection_errors_total", "MQTT connection failures", NULL);
    r->m_inflight = metrics_gauge(r->metrics, "fleetsync_sim_inflight", "readings published, not yet acknowledged", NULL);
    r->m_up = metrics_gauge(r->metrics, "fleetsync_sim_connections_up", "MQTT connections up", NULL);
    r->m_clock = metrics_gauge(r->metrics, "fleetsync_sim_clock_seconds", "simulated clock, Unix seconds", NULL);
    r->m_inc = metrics_gauge(r->metrics, "fleetsync_sim_incidents_started", "scenario incidents injected so far", NULL);
    struct metric *tr = metrics_gauge(r->metrics, "fleetsync_sim_trucks", "simulated trucks", NULL);
    if (!r->m_pub || !r->m_ack || !r->m_fail || !r->m_rec || !r->m_err || !r->m_inflight || !r->m_up || !r->m_clock ||
        !r->m_inc || !tr)
        return -1;
    metric_set(tr, (double)r->o->trucks);
    if (metrics_serve(r->metrics, "127.0.0.1", port, err, sizeof(err)) != 0) {
        log_error("cannot serve metrics: %s (use --metrics-port N or -1)", err);
        return -1;
    }
    return 0;
}

static int run_sim(struct run *r, const struct fs_config *cfg, int64_t start_ms)
{
    const struct sim_opts *o = r->o;
    const uint64_t n = (uint64_t)o->trucks;
    const int64_t interval_ms = (int64_t)llround(o->interval_s * 1000);
    const int64_t end_ms = o->duration_s > 0 ? start_ms + (int64_t)llround(o->duration_s * 1000) : INT64_MAX;
    const size_t plen = strlen(o->id_prefix);
    const uint32_t conns = (uint32_t)(o->connections ? o->connections : o->trucks);
    struct sim_clock clk;
    int64_t wall_start = sim_clock_wall_ms(), mono_start = mono_ms();
    double cpu_start = cpu_seconds();
    int tty = !o->quiet && isatty(2);
    uint64_t s = 0;
    char id[96], topic[160], payload[512];
    int rc = 0;

    if (r->pool) {
        /* Connect first (bounded), so the first readings do not meet
         * connections still waiting for their CONNACK. */
        struct mqp_stats st;
        int64_t until = mono_ms() + 15000;
        do {
            if (mqp_poll(r->pool, 20) != 0)
                return 1;
            mqp_get_stats(r->pool, &st);
        } while (st.up < conns && mono_ms() < until && !sig_stopping());
        if (st.up < conns)
            log_warn("%u of %u MQTT connections are up after 15 s; sending anyway, the others keep retrying", st.up,
                     conns);
        wall_start = sim_clock_wall_ms();
        mono_start = mono_ms();
    }
    sim_clock_init(&clk, start_ms, wall_start, o->speedup);
    int64_t next_status = mono_start + 1000;
    uint64_t last_pub = 0;
    int64_t last_status_ms = mono_start;
    int64_t sim_now = start_ms;
    uint64_t last_ack = 0;
    double ack_rate = 0; /* acknowledged per second, over the last status period */
    uint64_t resume_at = UINT64_MAX; /* flow control: publish again once at most this many are in flight */
    for (;;) {
        if (sig_stopping())
            break;
        int64_t wall = sim_clock_wall_ms();
        int64_t lim = sim_clock_limit(&clk, wall);
        int64_t due = 0;
        int blocked = 0, finished = 0;
        for (int b = 0; b < BATCH; b++) {
            uint64_t round_k = s / n, i = s % n;
            due = start_ms + (int64_t)round_k * interval_ms + (int64_t)(i * (uint64_t)interval_ms / n);
            if (due >= end_ms || (o->until_now && due > wall)) {
                finished = 1;
                break;
            }
            if (due > lim)
                break;
            uint32_t conn = (uint32_t)(i % conns);
            int drop = 0;
            if (r->pool) {
                struct mqp_stats st;
                mqp_get_stats(r->pool, &st);
                /* A full window reopens once a tenth of it is acknowledged,
                 * so the next readings go out in batches, not one by one as
                 * acknowledgements trickle in. */
                if (st.inflight >= MAX_TOTAL_INFLIGHT)
                    resume_at = MAX_TOTAL_INFLIGHT - MAX_TOTAL_INFLIGHT / 10;
                if (st.inflight > resume_at) {
                    blocked = 1;
                    break;
                }
                resume_at = UINT64_MAX;
                if (!mqp_can_publish(r->pool, conn)) {
                    /* A slow connection holds the schedule back (flow
                     * control); a dead one with a full buffer loses the
                     * reading, as a device would. */
                    if (mqp_conn_up(r->pool, conn)) {
                        blocked = 1;
                        break;
                    }
                    drop = 1;
                }
            } else if (r->kout) {
                struct mqp_stats st;
                kafkaout_get_stats(r->kout, &st);
                if (st.inflight >= MAX_TOTAL_INFLIGHT) {
                    blocked = 1;
                    break;
                }
            }
            struct fleet_sample smp;
            fleet_sample(r->fleet, (uint32_t)i, due, &smp);
            sim_now = due;
            s++;
            if (r->scen.n)
                write_truth(r);
            if (smp.skip) {
                r->skipped++;
                continue;
            }
            fleet_format_id(id, sizeof(id), o->id_prefix, plen, (uint32_t)i);
            if (r->kout) {
                int len = sim_format_normalized(payload, sizeof(payload), id, due, &smp);
                if (len <= 0) /* cannot happen: payload holds SIM_PAYLOAD_MAX */
                    kafkaout_count_refused(r->kout);
                else
                    kafkaout_produce(r->kout, id, strlen(id), payload, (size_t)len, sim_clock_wall_ms());
                continue;
            }
            int len = sim_format_reading(payload, sizeof(payload), id, due, &smp);
            sim_format_topic(topic, sizeof(topic), id);
            if (drop) {
                mqp_count_lost(r->pool);
            } else if (r->pool) {
                mqp_publish(r->pool, conn, topic, payload, len);
            } else {
                r->dry_sent++;
                if (o->print)
                    printf("%s %s\n", topic, payload);
            }
        }
        int64_t mnow = mono_ms();
        if (mnow >= next_status) {
            struct mqp_stats st;
            get_stats(r, &st);
            double rate = (double)(st.published - last_pub) * 1000.0 / (double)(mnow - last_status_ms);
            ack_rate = (double)(st.acked - last_ack) * 1000.0 / (double)(mnow - last_status_ms);
            last_pub = st.published;
            last_ack = st.acked;
            last_status_ms = mnow;
            next_status = mnow + 1000;
            if (tty)
                status_line(r, sim_now, rate);
            update_metrics(r, sim_now);
        }
        if (finished)
            break;
        int timeout = 0;
        if (blocked)
            timeout = 5;
        else if (due > lim) {
            int64_t w = sim_clock_wall_due(&clk, due, wall) - wall;
            timeout = (int)(w > 1000 ? 1000 : w < 1 ? 1 : w);
        }
        if (r->pool && (blocked || (timeout > 0 && timeout < o->batch_ms))) {
            /* Write what was published, then sleep instead of waking for
             * each acknowledgement, so that one write and one read per
             * connection serve many readings.  When the next reading is due
             * within --batch-ms, the readings of that time come due
             * meanwhile and go out together (late by at most batch_ms, never
             * early).  While the broker is the slower side (blocked), about
             * as long as it takes to acknowledge a tenth of what is in
             * flight: long enough for many acknowledgements to gather, short
             * enough that it never runs out of work (1 ms to batch_ms). */
            int nap = o->batch_ms;
            if (blocked) {
                struct mqp_stats st;
                mqp_get_stats(r->pool, &st);
                double t = ack_rate > 0 ? (double)st.inflight * 100.0 / ack_rate : 1;
                nap = t > o->batch_ms ? o->batch_ms : (int)t;
                if (nap < 1)
                    nap = 1;
            }
            struct timespec ts = {nap / 1000, (long)(nap % 1000) * 1000000L};
            if (mqp_poll(r->pool, 0) != 0) {
                rc = 1;
                break;
            }
            nanosleep(&ts, NULL);
            if (!blocked)
                timeout = 0;
        }
        if (r->pool) {
            if (mqp_poll(r->pool, timeout) != 0) {
                rc = 1;
                break;
            }
        } else if (r->kout) {
            if (kafkaout_poll(r->kout, timeout) != 0) {
                rc = 1;
                break;
            }
        } else if (timeout > 0) {
            struct timespec ts = {timeout / 1000, (long)(timeout % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    /* Drain: wait for the acknowledgements of what was sent. */
    if (r->pool || r->kout) {
        int64_t until = mono_ms() + (int64_t)(o->drain_s * 1000);
        struct mqp_stats st;
        for (;;) {
            get_stats(r, &st);
            if (st.inflight == 0 || mono_ms() >= until)
                break;
            if (r->pool ? mqp_poll(r->pool, 50) != 0 : kafkaout_poll(r->kout, 50) != 0)
                break;
            if (tty && mono_ms() >= next_status) {
                next_status = mono_ms() + 1000;
                status_line(r, sim_now, 0);
            }
        }
    }
    if (tty)
        fprintf(stderr, "\r\033[K");
    update_metrics(r, sim_now);

    struct mqp_stats st;
    get_stats(r, &st);
    double wall_s = (double)(mono_ms() - mono_start) / 1000.0, cpu_s = cpu_seconds() - cpu_start;
    char a[32], b[32];
    sim_clock_format(start_ms, a, sizeof(a));
    sim_clock_format(sim_now, b, sizeof(b));
    uint64_t lost = st.failed + st.inflight;
    FILE *out = o->print ? stderr : stdout;
    fprintf(out,
            "fleetsync sim: %ld trucks, %u connection(s), simulated %s .. %s in %.1f s wall, %.1f s CPU\n"
            "  published %" PRIu64 ", acknowledged %" PRIu64 ", failed %" PRIu64 ", in flight at the end %" PRIu64
            ", reconnects %" PRIu64 ", connection errors %" PRIu64 "\n"
            "  incidents injected %" PRIu64 ", readings withheld (offline) %" PRIu64 "\n"
            "  %.0f msgs per CPU-second, peak RSS %.1f MiB (%.0f bytes per truck)\n",
            o->trucks, r->pool ? conns : r->kout ? 1 : 0, a, b, wall_s, cpu_s, st.published, st.acked, st.failed,
            st.inflight, st.reconnects, st.errors, r->incidents, r->skipped,
            cpu_s > 0 ? (double)st.published / cpu_s : 0.0, peak_rss_kb() / 1024.0,
            (double)peak_rss_kb() * 1024.0 / (double)o->trucks);
    fflush(out);
    if (lost) {
        log_error("%" PRIu64 " reading(s) could not be delivered to %s", lost, r->kout ? cfg->brokers : cfg->mqtt);
        rc = 1;
    }
    return rc;
}

int cmd_sim(int argc, char **argv)
{
    enum {
        OPT_TRUCKS = 1, OPT_INTERVAL, OPT_CONNECTIONS, OPT_DURATION, OPT_QOS, OPT_SPEEDUP, OPT_START, OPT_SEED,
        OPT_ID_PREFIX, OPT_SCENARIO, OPT_TRUTH, OPT_GEOFENCES, OPT_SOURCE_IPS, OPT_QUIET, OPT_DRY_RUN, OPT_PRINT,
        OPT_UNTIL_NOW, OPT_DRAIN, OPT_BATCH_MS, OPT_MAX_INFLIGHT, OPT_CAFILE, OPT_CLEAR_PRESENCE, OPT_KAFKA,
    };
    static const struct option longopts[] = {
        {"trucks", required_argument, NULL, OPT_TRUCKS},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {"connections", required_argument, NULL, OPT_CONNECTIONS},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"qos", required_argument, NULL, OPT_QOS},
        {"speedup", required_argument, NULL, OPT_SPEEDUP},
        {"start", required_argument, NULL, OPT_START},
        {"seed", required_argument, NULL, OPT_SEED},
        {"id-prefix", required_argument, NULL, OPT_ID_PREFIX},
        {"scenario", required_argument, NULL, OPT_SCENARIO},
        {"truth", required_argument, NULL, OPT_TRUTH},
        {"geofences", required_argument, NULL, OPT_GEOFENCES},
        {"source-ips", required_argument, NULL, OPT_SOURCE_IPS},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"kafka", no_argument, NULL, OPT_KAFKA},
        {"print", no_argument, NULL, OPT_PRINT},
        {"until-now", no_argument, NULL, OPT_UNTIL_NOW},
        {"drain-timeout", required_argument, NULL, OPT_DRAIN},
        {"batch-ms", required_argument, NULL, OPT_BATCH_MS},
        {"max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT},
        {"cafile", required_argument, NULL, OPT_CAFILE},
        {"clear-presence", no_argument, NULL, OPT_CLEAR_PRESENCE},
        {"help", no_argument, NULL, 'h'},
        CFG_LONG_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    struct sim_opts o = {.trucks = 100, .interval_s = 10, .qos = 1, .speedup = 1, .start = "now", .seed = 1,
                         .id_prefix = "TRK-", .drain_s = 30,
                         .batch_ms = -1};
    struct fs_config cfg;
    struct run r;
    struct sim_fences fences = {0};
    char err[512];
    int c, rc = 2;
    long v;

    memset(&r, 0, sizeof(r));
    cfg_init(&cfg);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h" CFG_SHORT_OPTIONS, longopts, NULL)) != -1) {
        const char *bad = NULL;
        switch (c) {
        case 'h':
            sim_usage(stdout);
            rc = 0;
            goto out;
        case OPT_TRUCKS:
            if (cfg_parse_long(optarg, 1, 10000000, &o.trucks))
                bad = "--trucks must be 1..10000000";
            break;
        case OPT_INTERVAL:
            if (parse_double(optarg, 0.001, 86400, &o.interval_s))
                bad = "--interval must be a number of seconds in (0, 86400]";
            break;
        case OPT_CONNECTIONS:
            if (cfg_parse_long(optarg, 1, 10000000, &o.connections))
                bad = "--connections must be at least 1";
            break;
        case OPT_DURATION:
            if (parse_double(optarg, 0, 1e10, &o.duration_s))
                bad = "--duration must be simulated seconds >= 0";
            break;
        case OPT_QOS:
            if (cfg_parse_long(optarg, 0, 1, &v))
                bad = "--qos must be 0 or 1";
            o.qos = (int)v;
            o.qos_given = 1;
            break;
        case OPT_SPEEDUP:
            if (parse_double(optarg, 0, 1e9, &o.speedup))
                bad = "--speedup must be a number >= 0 (0 = as fast as possible)";
            break;
        case OPT_START:
            o.start = optarg;
            break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            o.seed = strtoull(optarg, &end, 0);
            if (errno || end == optarg || *end)
                bad = "--seed must be an unsigned integer";
            break;
        }
        case OPT_ID_PREFIX:
            o.id_prefix = optarg;
            if (!valid_prefix(optarg))
                bad = "--id-prefix may hold at most 40 characters of [A-Za-z0-9._-]";
            break;
        case OPT_SCENARIO:
            o.scenario = optarg;
            break;
        case OPT_TRUTH:
            o.truth = optarg;
            break;
        case OPT_GEOFENCES:
            o.geofences = optarg;
            break;
        case OPT_SOURCE_IPS:
            o.source_ips_arg = optarg;
            break;
        case OPT_QUIET:
            o.quiet = 1;
            break;
        case OPT_DRY_RUN:
            o.dry_run = 1;
            break;
        case OPT_KAFKA:
            o.kafka = 1;
            break;
        case OPT_PRINT:
            o.print = 1;
            break;
        case OPT_UNTIL_NOW:
            o.until_now = 1;
            break;
        case OPT_BATCH_MS:
            if (cfg_parse_long(optarg, 0, 1000, &v))
                bad = "--batch-ms must be 0..1000 milliseconds";
            o.batch_ms = (int)v;
            break;
        case OPT_DRAIN:
            if (parse_double(optarg, 0, 86400, &o.drain_s))
                bad = "--drain-timeout must be seconds >= 0";
            break;
        case OPT_CAFILE:
            o.cafile = optarg;
            break;
        case OPT_CLEAR_PRESENCE:
            o.clear_presence = 1;
            break;
        case OPT_MAX_INFLIGHT:
            if (cfg_parse_long(optarg, 1, 65000, &v)) /* each needs a packet id of its own */
                bad = "--max-inflight must be 1..65000";
            o.max_inflight = (uint32_t)v;
            break;
        default: {
            int k = cfg_option(&cfg, c, optarg, err, sizeof(err));
            if (k == 1)
                break;
            if (c != '?' && k < 0)
                fprintf(stderr, "fleetsync sim: %s\n", err);
            sim_usage(stderr);
            goto out;
        }
        }
        if (bad) {
            fprintf(stderr, "fleetsync sim: %s (got '%s'); see fleetsync sim --help\n", bad, optarg);
            goto out;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "fleetsync sim: unexpected argument '%s'; see fleetsync sim --help\n", argv[optind]);
        goto out;
    }
    if (o.connections > o.trucks) {
        fprintf(stderr, "fleetsync sim: --connections %ld is more than --trucks %ld\n", o.connections, o.trucks);
        goto out;
    }
    if (o.kafka && o.dry_run) {
        fprintf(stderr, "fleetsync sim: --kafka and --dry-run exclude each other\n");
        goto out;
    }
    if (o.kafka && (o.connections || o.qos_given || o.source_ips_arg || o.max_inflight || o.cafile ||
                    o.clear_presence || o.batch_ms >= 0)) {
        fprintf(stderr, "fleetsync sim: --connections, --qos, --source-ips, --max-inflight, --batch-ms, --cafile "
                        "and --clear-presence are MQTT options; --kafka does not use MQTT\n");
        goto out;
    }
    if (o.print && !o.dry_run) {
        fprintf(stderr, "fleetsync sim: --print needs --dry-run\n");
        goto out;
    }
    if (o.truth && !o.scenario) {
        fprintf(stderr, "fleetsync sim: --truth needs --scenario\n");
        goto out;
    }
    if (o.source_ips_arg) {
        for (char *save = NULL, *tok = strtok_r(o.source_ips_arg, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (o.n_source_ips == MAX_SOURCE_IPS) {
                fprintf(stderr, "fleetsync sim: at most %d --source-ips\n", MAX_SOURCE_IPS);
                goto out;
            }
            o.source_ips[o.n_source_ips++] = tok;
        }
    }
    int64_t now = sim_clock_wall_ms(), start_ms;
    char terr[160];
    if (time_parse_moment(o.start, now, 3650 * TIME_DAY_MS, &start_ms, terr, sizeof(terr)) != 0) {
        fprintf(stderr, "fleetsync sim: --start: %s\n", terr);
        goto out;
    }
    if (start_ms > now + 1000) {
        fprintf(stderr, "fleetsync sim: --start is in the future; the simulated clock never runs ahead of the wall clock\n");
        goto out;
    }
    if (o.speedup != 1 && start_ms >= now - 1000 && !(o.speedup < 1 && o.speedup > 0)) {
        fprintf(stderr, "fleetsync sim: --speedup %g needs --start in the past (the simulated clock never runs ahead "
                        "of the wall clock), e.g. --start now-30d\n", o.speedup);
        goto out;
    }
    int gateways = o.connections && o.connections < o.trucks;
    o.max_inflight = o.max_inflight ? o.max_inflight : (gateways ? 256 : 100);
    /* A gateway forwards its trucks' readings in batches; a truck of its own
     * sends each reading when it is due. */
    if (o.batch_ms < 0)
        o.batch_ms = gateways ? 100 : 0;

    /* Everything that can be wrong with the input is found before sending. */
    rc = 1;
    if (o.geofences && sim_fences_load(o.geofences, &fences, err, sizeof(err)) != 0) {
        fprintf(stderr, "fleetsync sim: %s\n", err);
        goto out;
    }
    if (o.scenario) {
        struct scenario_params sp = {.id_prefix = o.id_prefix, .trucks = (uint32_t)o.trucks, .start_ms = start_ms,
                                     .fences = &fences};
        if (scenario_load(o.scenario, &sp, &r.scen, err, sizeof(err)) != 0) {
            fprintf(stderr, "fleetsync sim: %s\n", err);
            goto out;
        }
    }
    if (o.truth && !(r.truth = fopen(o.truth, "w"))) {
        fprintf(stderr, "fleetsync sim: cannot write %s: %s\n", o.truth, strerror(errno));
        goto out;
    }
    struct cfg_mqtt_url url;
    if (cfg_parse_mqtt_url(cfg.mqtt, &url, err, sizeof(err)) != 0) {
        fprintf(stderr, "fleetsync sim: %s\n", err);
        rc = 2;
        goto out;
    }
    char cafile_buf[4096];
    if (url.tls && !o.cafile)
        o.cafile = mqa_default_cafile(cfg.data_dir, &url, cafile_buf, sizeof(cafile_buf));
    struct sim_auth auth = {.data_dir = cfg.data_dir};
    if (!o.dry_run && !o.kafka && !*url.user && mqa_is_own_broker(cfg.data_dir, &url)) {
        int k = mqa_secret_load(cfg.data_dir, &auth.secret, err, sizeof(err));
        if (k < 0) {
            fprintf(stderr, "fleetsync sim: %s\n", err);
            goto out;
        }
        auth.on = k == 0; /* 1: no credentials store, anonymous as before */
    }
    r.o = &o;
    sig_install();
    signal(SIGPIPE, SIG_IGN);
    struct fleet_options fo = {.trucks = (uint32_t)o.trucks, .seed = o.seed, .start_ms = start_ms};
    r.fleet = fleet_new(&fo, r.scen.inc, r.scen.n);
    if (!r.fleet) {
        fprintf(stderr, "fleetsync sim: out of memory for %ld trucks\n", o.trucks);
        goto out;
    }
    if (r.scen.n)
        write_truth(&r); /* incidents that began while the fleet warmed up */
    if (setup_metrics(&r, &cfg) != 0)
        goto out;
    struct name_ctx names = {.prefix = o.id_prefix, .prefix_len = strlen(o.id_prefix),
                             .gateway = o.connections && o.connections < o.trucks};
    if (o.kafka) {
        r.kout = kafkaout_new(&cfg, 15000, err, sizeof(err));
        if (!r.kout) {
            fprintf(stderr, "fleetsync sim: %s\n", err);
            goto out;
        }
    } else if (!o.dry_run) {
        struct mqp_config mc = {.host = url.host, .port = url.port, .user = url.user, .pass = url.pass,
                                .qos = o.qos, .keepalive_s = 60, .gateway = names.gateway,
                                .source_ips = o.source_ips, .n_source_ips = o.n_source_ips,
                                .max_inflight = o.max_inflight, .name = conn_name, .name_ud = &names,
                                .password = auth.on ? auth_password : NULL, .password_ud = &auth,
                                .tls = url.tls, .cafile = o.cafile, .clear_presence = o.clear_presence};
        r.pool = mqp_new(&mc, (uint32_t)(o.connections ? o.connections : o.trucks), err, sizeof(err));
        if (!r.pool) {
            fprintf(stderr, "fleetsync sim: %s\n", err);
            goto out;
        }
    }
    if (!o.quiet && auth.on)
        log_info("logging in with the credentials of %s/mqtt/ (each connection as its %s id)", cfg.data_dir,
                 names.gateway ? "gateway" : "truck");
    if (!o.quiet)
        log_info("%ld trucks, %s, interval %g s, speedup %g, seed %" PRIu64 ", %zu incident(s)", o.trucks,
                 o.dry_run ? "dry run" : o.kafka ? cfg.brokers : cfg.mqtt, o.interval_s, o.speedup, o.seed, r.scen.n);
    rc = run_sim(&r, &cfg, start_ms);
out:
    if (r.pool)
        mqp_free(r.pool, 2000);
    kafkaout_free(r.kout, 0);
    metrics_free(r.metrics);
    fleet_free(r.fleet);
    if (r.truth)
        fclose(r.truth);
    scenario_release(&r.scen);
    sim_fences_release(&fences);
    cfg_release(&cfg);
    return rc;
}
