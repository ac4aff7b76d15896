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

#include "core/clock.h"
#include "core/config.h"
#include "core/kafkaauth.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/mqttauth.h"
#include "core/opts.h"
#include "core/sig.h"
#include "core/telemetry.h"
#include "core/timeparse.h"
#include "sim/clock.h"
#include "sim/fleet.h"
#include "sim/kafkaout.h"
#include "sim/mqttpool.h"
#include "sim/payload.h"
#include "sim/scenario.h"

#include <errno.h>
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
#define BATCH 65536
#define MAX_TOTAL_INFLIGHT 200000
#define MAX_SOURCE_IPS 64

struct sim_opts {
    long trucks;
    double interval_s;
    long connections;  /* 0 = one per truck */
    double duration_s; /* 0 = until stopped */
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

static const char sim_about[] = "Simulates a fleet of trucks driving jobs between European logistics hubs and\n"
                                "publishes their telemetry v1 over MQTT, as real trucks do: one reading per truck\n"
                                "every --interval seconds, spread evenly over time, QoS 1, a per-truck seq,\n"
                                "retained online/offline presence, reconnects with backoff and resends.";

#define STR_(x) #x
#define STR(x) STR_(x)
static const char sim_after[] =
    "Credentials: with no user:pass in --mqtt, each connection of the data dir's own\n"
    "broker logs in as its truck (or gateway) id with the password derived from\n"
    "DIR/mqtt/secret, once 'fleetsync trucks add' has made it (docs/security.md).\n\n"
    "Exit status: 0 all readings delivered, 1 some could not be delivered or a runtime\n"
    "failure, 2 usage error. Metrics on --metrics-port (default " STR(DEFAULT_METRICS_PORT) ", -1 = off).";

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

struct name_ctx {
    const char *prefix;
    size_t prefix_len;
    int gateway;
};

static void conn_name(void *ud, uint32_t conn, char *buf, size_t size)
{
    const struct name_ctx *n = ud;
    if (n->gateway)
        tm_format_gateway_id(buf, size, n->prefix, n->prefix_len, conn);
    else
        tm_format_truck_id(buf, size, n->prefix, n->prefix_len, conn);
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

/* --id-prefix: at most 40 characters that are safe in a topic and an id. */
static int parse_prefix(void *value, const char *arg, char *err, size_t err_size)
{
    size_t n = strlen(arg);
    if (n > 40 || !tm_id_chars(arg, n)) {
        snprintf(err, err_size, "may hold at most 40 characters of [A-Za-z0-9._-] (got '%s')", arg);
        return -1;
    }
    *(const char **)value = arg;
    return 0;
}

static int parse_seed(void *value, const char *arg, char *err, size_t err_size)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 0);
    if (errno || end == arg || *end) {
        snprintf(err, err_size, "must be an unsigned integer (got '%s')", arg);
        return -1;
    }
    *(uint64_t *)value = v;
    return 0;
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
    /* What the pool's and the scenario's configurations point into. */
    struct sim_fences fences;
    struct cfg_mqtt_url url;
    struct sim_auth auth;
    struct name_ctx names;
    char cafile_buf[4096];
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
    r->m_pub =
        metrics_counter(r->metrics, "fleetsync_sim_messages_published_total", "telemetry readings published", NULL);
    r->m_ack = metrics_counter(r->metrics, "fleetsync_sim_messages_acked_total",
                               "readings acknowledged by the broker (QoS 0: written)", NULL);
    r->m_fail =
        metrics_counter(r->metrics, "fleetsync_sim_messages_failed_total", "readings that could not be sent", NULL);
    r->m_rec = metrics_counter(r->metrics, "fleetsync_sim_reconnects_total", "MQTT reconnections", NULL);
    r->m_err = metrics_counter(r->metrics, "fleetsync_sim_connection_errors_total", "MQTT connection failures", NULL);
    r->m_inflight =
        metrics_gauge(r->metrics, "fleetsync_sim_inflight", "readings published, not yet acknowledged", NULL);
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

/* Where the publishing loop of run_sim() stands: the schedule (reading s
 * is truck s % n's reading of round s / n), the simulated clock and the
 * figures of the last status line. */
struct loop {
    struct sim_clock clk;
    int64_t start_ms, end_ms, interval_ms;
    uint64_t n, s;
    uint32_t conns;
    size_t plen;
    int tty;
    int64_t mono_start, next_status, last_status_ms, sim_now;
    uint64_t last_pub, last_ack;
    double ack_rate;    /* acknowledged per second, over the last status period */
    uint64_t resume_at; /* flow control: publish again once at most this many are in flight */
};

/* Connects every MQTT connection first (bounded), so the first readings do
 * not meet connections still waiting for their CONNACK.  -1 if the pool
 * failed. */
static int connect_first(struct run *r, uint32_t conns)
{
    struct mqp_stats st;
    int64_t until = fs_mono_ms() + 15000;
    do {
        if (mqp_poll(r->pool, 20) != 0)
            return -1;
        mqp_get_stats(r->pool, &st);
    } while (st.up < conns && fs_mono_ms() < until && !sig_stopping());
    if (st.up < conns)
        log_warn("%u of %u MQTT connections are up after 15 s; sending anyway, the others keep retrying", st.up, conns);
    return 0;
}

/* 1 when the next reading must wait (flow control); *drop when its
 * connection is down with a full buffer, so the reading is lost, as a
 * device would lose it. */
static int flow_blocked(struct run *r, struct loop *L, uint32_t conn, int *drop)
{
    struct mqp_stats st;
    *drop = 0;
    if (r->pool) {
        mqp_get_stats(r->pool, &st);
        /* A full window reopens once a tenth of it is acknowledged, so the
         * next readings go out in batches, not one by one as
         * acknowledgements trickle in. */
        if (st.inflight >= MAX_TOTAL_INFLIGHT)
            L->resume_at = MAX_TOTAL_INFLIGHT - MAX_TOTAL_INFLIGHT / 10;
        if (st.inflight > L->resume_at)
            return 1;
        L->resume_at = UINT64_MAX;
        if (!mqp_can_publish(r->pool, conn)) {
            /* A slow connection holds the schedule back; a dead one drops. */
            if (mqp_conn_up(r->pool, conn))
                return 1;
            *drop = 1;
        }
    } else if (r->kout) {
        kafkaout_get_stats(r->kout, &st);
        if (st.inflight >= MAX_TOTAL_INFLIGHT)
            return 1;
    }
    return 0;
}

/* Samples truck i at due and sends the reading: to Kafka (--kafka), over
 * MQTT connection conn, or to stdout (--dry-run --print). */
static void send_reading(struct run *r, struct loop *L, uint64_t i, int64_t due, uint32_t conn, int drop)
{
    char id[96], topic[160], payload[512];
    struct fleet_sample smp;
    fleet_sample(r->fleet, (uint32_t)i, due, &smp);
    L->sim_now = due;
    L->s++;
    if (r->scen.n)
        write_truth(r);
    if (smp.skip) {
        r->skipped++;
        return;
    }
    tm_format_truck_id(id, sizeof(id), r->o->id_prefix, L->plen, (uint32_t)i);
    if (r->kout) {
        int len = sim_format_normalized(payload, sizeof(payload), id, due, &smp);
        if (len <= 0) /* cannot happen: payload holds SIM_PAYLOAD_MAX */
            kafkaout_count_refused(r->kout);
        else
            kafkaout_produce(r->kout, id, strlen(id), payload, (size_t)len, fs_wall_ms());
        return;
    }
    int len = sim_format_reading(payload, sizeof(payload), id, due, &smp);
    sim_format_topic(topic, sizeof(topic), id);
    if (drop) {
        mqp_count_lost(r->pool);
    } else if (r->pool) {
        mqp_publish(r->pool, conn, topic, payload, len);
    } else {
        r->dry_sent++;
        if (r->o->print)
            printf("%s %s\n", topic, payload);
    }
}

/* Sends up to BATCH readings that are due by lim (the simulated clock's
 * limit).  *due: the schedule time of the next reading; *finished once the
 * schedule ends.  Returns 1 when flow control stopped it. */
static int publish_due(struct run *r, struct loop *L, int64_t wall, int64_t lim, int64_t *due, int *finished)
{
    for (int b = 0; b < BATCH; b++) {
        uint64_t round_k = L->s / L->n, i = L->s % L->n;
        *due = L->start_ms + (int64_t)round_k * L->interval_ms + (int64_t)(i * (uint64_t)L->interval_ms / L->n);
        if (*due >= L->end_ms || (r->o->until_now && *due > wall)) {
            *finished = 1;
            return 0;
        }
        if (*due > lim)
            return 0;
        uint32_t conn = (uint32_t)(i % L->conns);
        int drop;
        if (flow_blocked(r, L, conn, &drop))
            return 1;
        send_reading(r, L, i, *due, conn, drop);
    }
    return 0;
}

/* Once a second: the status line (on a terminal) and the metrics. */
static void tick_status(struct run *r, struct loop *L)
{
    int64_t mnow = fs_mono_ms();
    if (mnow < L->next_status)
        return;
    struct mqp_stats st;
    get_stats(r, &st);
    double rate = (double)(st.published - L->last_pub) * 1000.0 / (double)(mnow - L->last_status_ms);
    L->ack_rate = (double)(st.acked - L->last_ack) * 1000.0 / (double)(mnow - L->last_status_ms);
    L->last_pub = st.published;
    L->last_ack = st.acked;
    L->last_status_ms = mnow;
    L->next_status = mnow + 1000;
    if (L->tty)
        status_line(r, L->sim_now, rate);
    update_metrics(r, L->sim_now);
}

/* Waits for the next reading's time (or for room, when blocked) while the
 * connections do their I/O.  -1 if the pool or the producer failed. */
static int wait_next(struct run *r, struct loop *L, int blocked, int64_t due, int64_t lim, int64_t wall)
{
    int timeout = 0;
    if (blocked) {
        timeout = 5;
    } else if (due > lim) {
        int64_t w = sim_clock_wall_due(&L->clk, due, wall) - wall;
        timeout = (int)(w > 1000 ? 1000 : w < 1 ? 1 : w);
    }
    if (r->pool && (blocked || (timeout > 0 && timeout < r->o->batch_ms))) {
        /* Write what was published, then sleep instead of waking for each
         * acknowledgement, so that one write and one read per connection
         * serve many readings.  When the next reading is due within
         * --batch-ms, the readings of that time come due meanwhile and go
         * out together (late by at most batch_ms, never early).  While the
         * broker is the slower side (blocked), about as long as it takes to
         * acknowledge a tenth of what is in flight: long enough for many
         * acknowledgements to gather, short enough that it never runs out
         * of work (1 ms to batch_ms). */
        int nap = r->o->batch_ms;
        if (blocked) {
            struct mqp_stats st;
            mqp_get_stats(r->pool, &st);
            double t = L->ack_rate > 0 ? (double)st.inflight * 100.0 / L->ack_rate : 1;
            nap = t > r->o->batch_ms ? r->o->batch_ms : (int)t;
            if (nap < 1)
                nap = 1;
        }
        struct timespec ts = {nap / 1000, (long)(nap % 1000) * 1000000L};
        if (mqp_poll(r->pool, 0) != 0)
            return -1;
        nanosleep(&ts, NULL);
        if (!blocked)
            timeout = 0;
    }
    if (r->pool)
        return mqp_poll(r->pool, timeout) != 0 ? -1 : 0;
    if (r->kout)
        return kafkaout_poll(r->kout, timeout) != 0 ? -1 : 0;
    if (timeout > 0) {
        struct timespec ts = {timeout / 1000, (long)(timeout % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* Waits (up to --drain) for the acknowledgements of what was sent. */
static void drain(struct run *r, struct loop *L)
{
    if (!r->pool && !r->kout)
        return;
    int64_t until = fs_mono_ms() + (int64_t)(r->o->drain_s * 1000);
    struct mqp_stats st;
    for (;;) {
        get_stats(r, &st);
        if (st.inflight == 0 || fs_mono_ms() >= until)
            break;
        if (r->pool ? mqp_poll(r->pool, 50) != 0 : kafkaout_poll(r->kout, 50) != 0)
            break;
        if (L->tty && fs_mono_ms() >= L->next_status) {
            L->next_status = fs_mono_ms() + 1000;
            status_line(r, L->sim_now, 0);
        }
    }
}

/* The closing summary; 1 when readings were not delivered. */
static int summarize(struct run *r, const struct fs_config *cfg, const struct loop *L, double cpu_start)
{
    const struct sim_opts *o = r->o;
    struct mqp_stats st;
    get_stats(r, &st);
    double wall_s = (double)(fs_mono_ms() - L->mono_start) / 1000.0, cpu_s = cpu_seconds() - cpu_start;
    char a[32], b[32];
    sim_clock_format(L->start_ms, a, sizeof(a));
    sim_clock_format(L->sim_now, b, sizeof(b));
    uint64_t lost = st.failed + st.inflight;
    FILE *out = o->print ? stderr : stdout;
    fprintf(out,
            "fleetsync sim: %ld trucks, %u connection(s), simulated %s .. %s in %.1f s wall, %.1f s CPU\n"
            "  published %" PRIu64 ", acknowledged %" PRIu64 ", failed %" PRIu64 ", in flight at the end %" PRIu64
            ", reconnects %" PRIu64 ", connection errors %" PRIu64 "\n"
            "  incidents injected %" PRIu64 ", readings withheld (offline) %" PRIu64 "\n"
            "  %.0f msgs per CPU-second, peak RSS %.1f MiB (%.0f bytes per truck)\n",
            o->trucks,
            r->pool   ? L->conns
            : r->kout ? 1
                      : 0,
            a, b, wall_s, cpu_s, st.published, st.acked, st.failed, st.inflight, st.reconnects, st.errors, r->incidents,
            r->skipped, cpu_s > 0 ? (double)st.published / cpu_s : 0.0, peak_rss_kb() / 1024.0,
            (double)peak_rss_kb() * 1024.0 / (double)o->trucks);
    fflush(out);
    if (lost) {
        char shown[CFG_MASKED_MAX];
        log_error("%" PRIu64 " reading(s) could not be delivered to %s", lost,
                  r->kout ? cfg->brokers : cfg_mask_secrets(cfg->mqtt, shown, sizeof(shown)));
        return 1;
    }
    return 0;
}

/* Publishes the fleet's readings on schedule from start_ms until the
 * duration ends (or SIGINT/SIGTERM), then drains and sums up.  Returns the
 * exit status: 0, or 1 when readings were lost or the transport failed. */
static int run_sim(struct run *r, const struct fs_config *cfg, int64_t start_ms)
{
    const struct sim_opts *o = r->o;
    struct loop L = {
        .start_ms = start_ms,
        .end_ms = o->duration_s > 0 ? start_ms + (int64_t)llround(o->duration_s * 1000) : INT64_MAX,
        .interval_ms = (int64_t)llround(o->interval_s * 1000),
        .n = (uint64_t)o->trucks,
        .conns = (uint32_t)(o->connections ? o->connections : o->trucks),
        .plen = strlen(o->id_prefix),
        .tty = !o->quiet && isatty(2),
        .sim_now = start_ms,
        .resume_at = UINT64_MAX,
    };
    double cpu_start = cpu_seconds();
    int rc = 0;

    if (r->pool && connect_first(r, L.conns) != 0)
        return 1;
    int64_t wall_start = fs_wall_ms();
    L.mono_start = fs_mono_ms();
    L.next_status = L.mono_start + 1000;
    L.last_status_ms = L.mono_start;
    sim_clock_init(&L.clk, start_ms, wall_start, o->speedup);
    while (!sig_stopping()) {
        int64_t wall = fs_wall_ms();
        int64_t lim = sim_clock_limit(&L.clk, wall);
        int64_t due = 0;
        int finished = 0;
        int blocked = publish_due(r, &L, wall, lim, &due, &finished);
        tick_status(r, &L);
        if (finished)
            break;
        if (wait_next(r, &L, blocked, due, lim, wall) != 0) {
            rc = 1;
            break;
        }
    }
    drain(r, &L);
    if (L.tty)
        fprintf(stderr, "\r\033[K");
    update_metrics(r, L.sim_now);
    return summarize(r, cfg, &L, cpu_start) ? 1 : rc;
}

/* Parses and checks the options into o and cfg, and the start into
 * *start_ms.  Returns OPT_PARSED, OPT_HELP (the help was printed) or
 * OPT_USAGE_ERROR (what is wrong was said). */
static int sim_parse(int argc, char **argv, struct sim_opts *o, struct fs_config *cfg, int64_t *start_ms)
{
    int trucks = 100, connections = 0, qos = -1, max_inflight = 0, rest;
    const char *source_ips = NULL;
    *o = (struct sim_opts){
        .interval_s = 10, .speedup = 1, .start = "now", .seed = 1, .id_prefix = "TRK-", .drain_s = 30, .batch_ms = -1};
    const struct opt opts[] = {
        OPT_HEADING("Fleet:"),
        OPT_INTEGER("trucks", "N", &trucks, 1, 10000000, "trucks to simulate (default 100)"),
        OPT_DBL("interval", "S", &o->interval_s, 0.001, 86400, "seconds between two readings of a truck (default 10)"),
        OPT_CB("id-prefix", "P", &o->id_prefix, parse_prefix, "truck ids are P + at least six digits (default TRK-)"),
        OPT_CB("seed", "N", &o->seed, parse_seed, "the fleet's randomness: same seed, same readings (default 1)"),
        OPT_HEADING("MQTT:"),
        OPT_INTEGER("connections", "C", &connections, 1, 10000000,
                    "MQTT connections (default: one per truck, each with its own\n"
                    "presence fleet/trucks/{id}/status); C < N makes them gateways\n"
                    "(presence fleet/gateways/{P}GW0001/status, trucks round robin)"),
        OPT_INTEGER("qos", "0|1", &qos, 0, 1, "telemetry QoS (default 1)"),
        OPT_STR("source-ips", "A,B", &source_ips,
                "local addresses to connect from, round robin (e.g. 127.0.0.2,\n"
                "127.0.0.3) to open more than ~28k connections (default: any)"),
        /* each unacknowledged reading needs a packet id of its own */
        OPT_INTEGER("max-inflight", "N", &max_inflight, 1, 65000,
                    "unacknowledged readings per connection before it waits\n"
                    "(default 100 with own connections, 256 for gateways)"),
        OPT_INTEGER("batch-ms", "MS", &o->batch_ms, 0, 1000,
                    "write the readings that come due within MS milliseconds together:\n"
                    "one write per connection, not one per reading; a reading goes\n"
                    "out at most MS late, never early (default: 100 with gateways,\n"
                    "0 = each when due with a connection per truck)"),
        OPT_DBL("drain-timeout", "S", &o->drain_s, 0, 86400,
                "at the end, wait up to S seconds for acknowledgements (default 30)"),
        OPT_BOOLEAN("clear-presence", &o->clear_presence,
                    "a clean end clears the retained presence instead of leaving\n"
                    "'offline' (for test and benchmark fleets that will not return)"),
        OPT_STR("cafile", "FILE", &o->cafile,
                "CA certificate that signs the broker's for mqtts:// (default:\n"
                "DIR/tls/ca.crt for the data dir's own broker, else the system's)"),
        OPT_HEADING("Time:"),
        OPT_STR("start", "T", &o->start,
                "simulated start: ISO 8601 UTC (2026-10-27T00:00:00Z) or now-30d,\n"
                "now-6h, now-90m (default now)"),
        OPT_DBL("speedup", "X", &o->speedup, 0, 1e9,
                "simulated seconds per wall second (default 1); 0 = as fast as\n"
                "the broker accepts. The simulated clock never runs ahead of the\n"
                "wall clock: once it reaches now the run continues in real time"),
        OPT_BOOLEAN("until-now", &o->until_now, "end the run when the simulated clock reaches now instead"),
        OPT_DBL("duration", "S", &o->duration_s, 0, 1e10, "stop after S simulated seconds (default: until Ctrl-C)"),
        OPT_HEADING("Incidents (ground truth for the detector):"),
        OPT_STR("scenario", "F", &o->scenario,
                "JSON lines, one incident each (see docs/sim.md); at_s counts\n"
                "simulated seconds from the start"),
        OPT_STR("geofences", "F", &o->geofences, "GeoJSON fences that geofence_exit incidents leave"),
        OPT_STR("truth", "F", &o->truth, "write each injected incident with start_ms and end_ms"),
        OPT_HEADING("Output:"),
        OPT_BOOLEAN("quiet", &o->quiet, "no status line (a final summary is always printed)"),
        OPT_BOOLEAN("dry-run", &o->dry_run, "generate readings without MQTT (to measure the model)"),
        OPT_BOOLEAN("kafka", &o->kafka,
                    "produce the readings straight into Kafka's truck-telemetry\n"
                    "(--brokers, --topic-prefix), as the bridge would have\n"
                    "written them, instead of MQTT: for loads above what the\n"
                    "MQTT broker carries (benchmarks of the pipelines); no\n"
                    "presence, and the MQTT options are refused"),
        OPT_BOOLEAN("print", &o->print, "with --dry-run: print 'topic payload' lines to stdout"),
        OPT_END_MARK,
    };
    const struct opt_command cmd = {.no_args = 1,
                                    .name = "sim",
                                    .usage = "fleetsync sim [options]",
                                    .about = sim_about,
                                    .after = sim_after,
                                    .opts = opts,
                                    .shared = 1};

    int rc = opt_parse(&cmd, cfg, argc, argv, &rest);
    if (rc != OPT_PARSED)
        return rc;
    o->trucks = trucks;
    o->connections = connections;
    o->qos_given = qos >= 0;
    o->qos = qos >= 0 ? qos : 1;
    o->max_inflight = (uint32_t)max_inflight;
    o->source_ips_arg = (char *)source_ips; /* argv's own string: split in place */
    if (o->connections > o->trucks)
        return opt_error(&cmd, "--connections %ld is more than --trucks %ld", o->connections, o->trucks);
    if (o->kafka && o->dry_run)
        return opt_error(&cmd, "--kafka and --dry-run exclude each other");
    if (o->kafka && (o->connections || o->qos_given || o->source_ips_arg || o->max_inflight || o->cafile ||
                     o->clear_presence || o->batch_ms >= 0))
        return opt_error(&cmd, "--connections, --qos, --source-ips, --max-inflight, --batch-ms, --cafile "
                               "and --clear-presence are MQTT options; --kafka does not use MQTT");
    if (o->print && !o->dry_run)
        return opt_error(&cmd, "--print needs --dry-run");
    if (o->truth && !o->scenario)
        return opt_error(&cmd, "--truth needs --scenario");
    if (o->source_ips_arg) {
        for (char *save = NULL, *tok = strtok_r(o->source_ips_arg, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (o->n_source_ips == MAX_SOURCE_IPS)
                return opt_error(&cmd, "at most %d --source-ips", MAX_SOURCE_IPS);
            o->source_ips[o->n_source_ips++] = tok;
        }
    }
    int64_t now = fs_wall_ms();
    char terr[160];
    if (time_parse_moment(o->start, now, 3650 * FS_DAY_MS, start_ms, terr, sizeof(terr)) != 0)
        return opt_error(&cmd, "--start: %s", terr);
    if (*start_ms > now + 1000)
        return opt_error(&cmd, "--start is in the future; the simulated clock never runs ahead of the wall clock");
    if (o->speedup != 1 && *start_ms >= now - 1000 && !(o->speedup < 1 && o->speedup > 0))
        return opt_error(&cmd,
                         "--speedup %g needs --start in the past (the simulated clock never runs ahead of the "
                         "wall clock), e.g. --start now-30d",
                         o->speedup);
    int gateways = o->connections && o->connections < o->trucks;
    o->max_inflight = o->max_inflight ? o->max_inflight : (gateways ? 256 : 100);
    /* A gateway forwards its trucks' readings in batches; a truck of its own
     * sends each reading when it is due. */
    if (o->batch_ms < 0)
        o->batch_ms = gateways ? 100 : 0;
    return OPT_PARSED;
}

/* Loads what the run needs and opens its outputs: fences, scenario, truth
 * file, credentials, the fleet, metrics, and the MQTT pool or the Kafka
 * producer.  Everything that can be wrong with the input is found here,
 * before anything is sent.  Returns 0, or the exit status (said why). */
static int sim_set_up(struct run *r, struct sim_opts *o, struct fs_config *cfg, int64_t start_ms)
{
    char err[512];
    r->o = o;
    if (o->geofences && sim_fences_load(o->geofences, &r->fences, err, sizeof(err)) != 0)
        goto fail;
    if (o->scenario) {
        struct scenario_params sp = {
            .id_prefix = o->id_prefix, .trucks = (uint32_t)o->trucks, .start_ms = start_ms, .fences = &r->fences};
        if (scenario_load(o->scenario, &sp, &r->scen, err, sizeof(err)) != 0)
            goto fail;
    }
    if (o->truth && !(r->truth = fopen(o->truth, "w"))) {
        snprintf(err, sizeof(err), "cannot write %s: %s", o->truth, strerror(errno));
        goto fail;
    }
    if (cfg_parse_mqtt_url(cfg->mqtt, &r->url, err, sizeof(err)) != 0) {
        fprintf(stderr, "fleetsync sim: %s\n", err);
        return 2;
    }
    if (r->url.tls && !o->cafile)
        o->cafile = mqa_default_cafile(cfg->data_dir, &r->url, r->cafile_buf, sizeof(r->cafile_buf));
    r->auth.data_dir = cfg->data_dir;
    if (!o->dry_run && !o->kafka && !*r->url.user && mqa_is_own_broker(cfg->data_dir, &r->url)) {
        int k = mqa_secret_load(cfg->data_dir, &r->auth.secret, err, sizeof(err));
        if (k < 0)
            goto fail;
        r->auth.on = k == 0; /* 1: no credentials store, anonymous as before */
    }
    sig_install();
    signal(SIGPIPE, SIG_IGN);
    struct fleet_options fo = {.trucks = (uint32_t)o->trucks, .seed = o->seed, .start_ms = start_ms};
    r->fleet = fleet_new(&fo, r->scen.inc, r->scen.n);
    if (!r->fleet) {
        snprintf(err, sizeof(err), "out of memory for %ld trucks", o->trucks);
        goto fail;
    }
    if (r->scen.n)
        write_truth(r); /* incidents that began while the fleet warmed up */
    if (setup_metrics(r, cfg) != 0)
        return 1;
    r->names = (struct name_ctx){.prefix = o->id_prefix,
                                 .prefix_len = strlen(o->id_prefix),
                                 .gateway = o->connections && o->connections < o->trucks};
    if (o->kafka) {
        r->kout = kafkaout_new(cfg, 15000, err, sizeof(err));
        if (!r->kout)
            goto fail;
    } else if (!o->dry_run) {
        struct mqp_config mc = {.host = r->url.host,
                                .port = r->url.port,
                                .user = r->url.user,
                                .pass = r->url.pass,
                                .qos = o->qos,
                                .keepalive_s = 60,
                                .gateway = r->names.gateway,
                                .source_ips = o->source_ips,
                                .n_source_ips = o->n_source_ips,
                                .max_inflight = o->max_inflight,
                                .name = conn_name,
                                .name_ud = &r->names,
                                .password = r->auth.on ? auth_password : NULL,
                                .password_ud = &r->auth,
                                .tls = r->url.tls,
                                .cafile = o->cafile,
                                .clear_presence = o->clear_presence};
        r->pool = mqp_new(&mc, (uint32_t)(o->connections ? o->connections : o->trucks), err, sizeof(err));
        if (!r->pool)
            goto fail;
    }
    if (!o->quiet && r->auth.on)
        log_info("logging in with the credentials of %s/mqtt/ (each connection as its %s id)", cfg->data_dir,
                 r->names.gateway ? "gateway" : "truck");
    char mqtt_shown[CFG_MASKED_MAX];
    if (!o->quiet)
        log_info("%ld trucks, %s, interval %g s, speedup %g, seed %" PRIu64 ", %zu incident(s)", o->trucks,
                 o->dry_run ? "dry run"
                 : o->kafka ? cfg->brokers
                            : cfg_mask_secrets(cfg->mqtt, mqtt_shown, sizeof(mqtt_shown)),
                 o->interval_s, o->speedup, o->seed, r->scen.n);
    return 0;
fail:
    fprintf(stderr, "fleetsync sim: %s\n", err);
    return 1;
}

int cmd_sim(int argc, char **argv)
{
    struct sim_opts o;
    struct fs_config cfg;
    struct run r;
    int64_t start_ms = 0;
    int rc;

    memset(&r, 0, sizeof(r));
    cfg_init(&cfg);
    cfg.kafka_user = KA_USER_SIM;
    if (opt_leave(sim_parse(argc, argv, &o, &cfg, &start_ms), &rc))
        goto out;
    rc = sim_set_up(&r, &o, &cfg, start_ms);
    if (rc == 0)
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
    sim_fences_release(&r.fences);
    cfg_release(&cfg);
    return rc;
}
