/*
 * ingest.c - "fleetsync ingest": the command, its metrics and its Kafka
 * producer (see ingest.h; the MQTT side is server.c).
 *
 * The producer is the bridge's: idempotent, acks=all, records routed and
 * produced by core/route.c, so a reading becomes the same record whichever
 * edge took it.  A delivery report (rd_kafka_poll in the loop, woken by the
 * main queue's pipe) is what lets a PUBACK leave.  Records wait in
 * librdkafka's queue only: when it is full, or Kafka is away and it fills,
 * the server stops reading sockets, and the clients' TCP windows and
 * in-flight limits hold the rest.  There is no disk spool: a reading not
 * acknowledged by Kafka is not acknowledged to its client either.
 */
#include "ingest/ingest.h"

#include "core/clock.h"
#include "core/kafka.h"
#include "core/kafkaauth.h"
#include "core/log.h"
#include "core/opts.h"
#include "core/sig.h"
#include "core/topics.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define INGEST_DEFAULT_METRICS_PORT 9107
#define INGEST_DEFAULT_LISTEN "127.0.0.1:18831"

const char *const ing_refusal_names[REF_COUNT] = {
    [REF_BAD_LOGIN] = "bad_login",
    [REF_NOT_AUTHORIZED] = "not_authorized",
    [REF_BAD_VERSION] = "bad_version",
    [REF_MALFORMED] = "malformed",
    [REF_TOO_LARGE] = "too_large",
    [REF_QOS2] = "qos2",
    [REF_RETAIN] = "retain",
    [REF_SUBSCRIBE] = "subscribe",
    [REF_CONNECT_TIMEOUT] = "connect_timeout",
    [REF_KEEPALIVE] = "keepalive",
    [REF_SLOW_READER] = "slow_reader",
    [REF_TOO_MANY] = "too_many_connections",
    [REF_TLS_HANDSHAKE] = "tls_handshake",
    [REF_TLS_TIMEOUT] = "tls_handshake_timeout",
};

void ing_refused(struct ingest *g, enum ing_refusal why)
{
    metric_add(g->m_refused[why], 1);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    rd_kafka_timestamp_type_t tt;
    ing_server_delivered(opaque, m->_private, m->err, rd_kafka_message_timestamp(m, &tt));
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof(why));
        log_error("Kafka producer fatal error: %s; stopping (clients resend what was not acknowledged)", why);
        sig_request_stop();
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        log_warn("all Kafka brokers are down (%s); readings wait unacknowledged", reason);
    else
        log_debug("Kafka: %s: %s", rd_kafka_err2str((rd_kafka_resp_err_t)err), reason);
}

static int producer_new(struct ingest *g, char *err, size_t err_size)
{
    static const char *const defaults[] = {
        KAFKA_TELEMETRY_PRODUCER_DEFAULTS,
        "queue.buffering.max.kbytes",
        "262144",
        /* A reading waits for Kafka as long as its client does: its PUBACK
         * is what the client waits for. */
        "message.timeout.ms",
        "0",
        "client.id",
        "fleetsync-ingest",
        NULL,
    };
    rd_kafka_conf_t *conf = kafka_conf_new(g->cfg, defaults, err, err_size);
    if (!conf)
        return -1;
    rd_kafka_conf_set_opaque(conf, g);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    g->rk = kafka_new(RD_KAFKA_PRODUCER, conf, err, err_size);
    if (!g->rk)
        return -1;
    g->mainq = rd_kafka_queue_get_main(g->rk);
    rd_kafka_queue_io_event_enable(g->mainq, g->wake[1], "x", 1);
    return 0;
}

static void producer_destroy(struct ingest *g)
{
    if (!g->rk)
        return;
    for (int i = 0; i < 3; i++)
        if (g->rkts[i])
            rd_kafka_topic_destroy(g->rkts[i]);
    rd_kafka_queue_io_event_enable(g->mainq, -1, NULL, 0);
    rd_kafka_queue_destroy(g->mainq);
    rd_kafka_destroy(g->rk);
    g->rk = NULL;
}

/* The topics must exist (auto-creation is off): asked once at start. */
static int check_topics(struct ingest *g, char *err, size_t err_size)
{
    int64_t deadline = fs_mono_ms() + 15000;
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(g->rk, 1, NULL, &md, 10000);
        if (e) {
            snprintf(err, err_size, "no answer from Kafka at %s: %s", g->cfg->brokers, rd_kafka_err2str(e));
            return -1;
        }
        const char *missing = NULL;
        for (int i = 0; i < 3 && !missing; i++) {
            int found = 0;
            for (int t = 0; t < md->topic_cnt; t++)
                found |= strcmp(md->topics[t].topic, g->topics[i]) == 0 && !md->topics[t].err;
            if (!found)
                missing = g->topics[i];
        }
        rd_kafka_metadata_destroy(md);
        if (!missing)
            return 0;
        snprintf(err, err_size,
                 "topic %s does not exist at %s (fleetsync services start creates the topics; check --topic-prefix)",
                 missing, g->cfg->brokers);
        if (fs_mono_ms() >= deadline || sig_stopping())
            return -1;
        usleep(250 * 1000);
    }
}

static int ingest_metrics(struct ingest *g)
{
    struct metrics *m = g->metrics = metrics_new();
    g->m_connections = metrics_gauge(m, "fleetsync_ingest_connections", "Client connections open.", NULL);
    g->m_connects = metrics_counter(m, "fleetsync_ingest_connects_total", "Clients logged in (CONNACK 0).", NULL);
    g->m_readings = metrics_counter(m, "fleetsync_ingest_readings_total",
                                    "Messages handed to Kafka (telemetry, presence, dead letters).", NULL);
    g->m_acked = metrics_counter(m, "fleetsync_ingest_acknowledged_total", "Records acknowledged by Kafka.", NULL);
    for (int i = 1; i < TM_REASON_COUNT; i++) {
        char label[64];
        snprintf(label, sizeof(label), "reason=\"%s\"", tm_reason_name((enum tm_reason)i));
        g->m_dlq[i] = metrics_counter(m, "fleetsync_ingest_dlq_total", "Dead letters, by reason.", label);
    }
    for (int i = 0; i < REF_COUNT; i++) {
        char label[64];
        snprintf(label, sizeof(label), "reason=\"%s\"", ing_refusal_names[i]);
        g->m_refused[i] =
            metrics_counter(m, "fleetsync_ingest_refused_total", "Clients or packets refused, by reason.", label);
    }
    g->m_wills = metrics_counter(m, "fleetsync_ingest_wills_total", "Last wills produced.", NULL);
    g->m_delivery_errors = metrics_counter(m, "fleetsync_ingest_delivery_errors_total",
                                           "Records Kafka did not take (their clients were not acknowledged).", NULL);
    g->m_paused = metrics_gauge(m, "fleetsync_ingest_kafka_paused_seconds",
                                "Time spent not reading clients because Kafka's queue was full, since start.", NULL);
    /* Fine between 10 and 100 ms, where a PUBACK's wait for its batch
     * (linger.ms) and Kafka's round trip fall: a quantile read from the
     * buckets tells 20 ms from 30 and 50 from 75. */
    static const double bounds[] = {0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
                                    0.1,   0.15,  0.2,   0.25, 0.5,   1,    2,     5,    10,   30,   60};
    g->m_latency = metrics_histogram(m, "fleetsync_ingest_puback_latency_seconds",
                                     "A QoS 1 PUBLISH read to its PUBACK written (Kafka's acknowledgement between).",
                                     NULL, bounds, (int)(sizeof(bounds) / sizeof(bounds[0])));
    g->latency.h = g->m_latency;
    return m && g->m_connections && g->m_acked && g->m_latency && g->m_paused ? 0 : -1;
}

/* HOST:PORT (HOST may be [v6]) into host and *port.  0, or -1 + err. */
static int parse_host_port(const char *arg, char *host, size_t host_size, int *port, char *err, size_t err_size)
{
    const char *colon = strrchr(arg, ':');
    char *end;
    long p = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || colon == arg || (size_t)(colon - arg) >= host_size || *end || p < 1 || p > 65535) {
        snprintf(err, err_size, "needs HOST:PORT, not '%s'", arg);
        return -1;
    }
    snprintf(host, host_size, "%.*s", (int)(colon - arg), arg);
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    *port = (int)p;
    return 0;
}

static int opt_listen(void *value, const char *arg, char *err, size_t err_size)
{
    struct ing_opts *o = value;
    if (parse_host_port(arg, o->host, sizeof(o->host), &o->port, err, err_size) != 0)
        return -1;
    o->listen = arg;
    return 0;
}

static int opt_tls(void *value, const char *arg, char *err, size_t err_size)
{
    struct ing_opts *o = value;
    return parse_host_port(arg, o->tls_host, sizeof(o->tls_host), &o->tls_port, err, err_size);
}

/* Each connection is a descriptor: the soft limit goes up to the hard one,
 * and --max-connections is held under what it allows (past it accept()
 * would fail with EMFILE on every wake-up), with room for Kafka's sockets,
 * the metrics server and the data dir's files. */
#define FD_RESERVE 256
static void fit_descriptor_limit(struct ing_opts *o)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)o->max_connections + FD_RESERVE > rl.rlim_cur) {
        int fit = rl.rlim_cur > 2 * FD_RESERVE ? (int)(rl.rlim_cur - FD_RESERVE) : FD_RESERVE;
        log_warn("--max-connections %d does not fit the open-files limit %llu: taking %d (raise ulimit -n, or use "
                 "--workers N: each worker has the limit)",
                 o->max_connections, (unsigned long long)rl.rlim_cur, fit);
        o->max_connections = fit;
    }
}

#define STR_(x) #x
#define STR(x) STR_(x)

static const char ingest_about[] = "An MQTT 3.1.1 and 5 server for publishing clients (trucks, gateways) that writes\n"
                                   "to Kafka itself, with the bridge's records: telemetry -> truck-telemetry,\n"
                                   "presence -> truck-status, anything invalid -> truck-telemetry-dlq.  Logins and\n"
                                   "topics are checked against DATA_DIR/mqtt/ (fleetsync trucks).  A QoS 1 PUBLISH\n"
                                   "is acknowledged once Kafka has its record, PUBACKs in the order PUBLISHes came.\n"
                                   "QoS 2, SUBSCRIBE and (MQTT 5) retained messages are refused.";

static const char ingest_after[] = "Metrics on --metrics-port (default " STR(
    INGEST_DEFAULT_METRICS_PORT) "): fleetsync_ingest_* (connections, readings,\n"
                                 "acknowledged, dlq and refused by reason, PUBLISH->PUBACK latency, time paused\n"
                                 "for Kafka).  See docs/ingest.md.";

int cmd_ingest(int argc, char **argv)
{
    struct fs_config cfg;
    struct ing_opts o = {.receive_max = 100,
                         .max_packet_size = 65536,
                         .max_connections = 100000,
                         .connect_timeout_s = 10,
                         .workers = 1,
                         .max_unread = 65536};
    struct ingest g;
    char err[512];
    int rest, rc = 2;
    opt_listen(&o, INGEST_DEFAULT_LISTEN, err, sizeof(err));
    const struct opt opts[] = {
        OPT_CB("listen", "HOST:PORT", &o, opt_listen, "where clients connect (default " INGEST_DEFAULT_LISTEN ")"),
        OPT_INTEGER("receive-max", "N", &o.receive_max, 1, 65535,
                    "QoS 1 PUBLISHes a connection may have unacknowledged (MQTT 5\n"
                    "Receive Maximum; a 3.1.1 client is not read past it); default 100"),
        OPT_INTEGER("max-packet-size", "BYTES", &o.max_packet_size, 64, 268435455,
                    "the longest packet taken (default 65536); longer ones end the connection"),
        OPT_INTEGER("max-connections", "N", &o.max_connections, 1, 10000000,
                    "per process (each worker), default 100000"),
        OPT_INTEGER("connect-timeout", "S", &o.connect_timeout_s, 1, 3600,
                    "a connection's CONNECT must come within S seconds (default 10)"),
        OPT_INTEGER("max-unread", "BYTES", &o.max_unread, 4096, 65536,
                    "answers (PUBACKs...) a client may leave unread before it is\n"
                    "closed as a slow reader: BYTES in the ingest, BYTES in the\n"
                    "socket's send buffer (default 65536)"),
        OPT_INTEGER("workers", "N", &o.workers, 1, 256,
                    "N processes on the same port (SO_REUSEPORT), each its own Kafka\n"
                    "producer and metrics port (--metrics-port + i); default 1"),
        OPT_CB("tls", "HOST:PORT", &o, opt_tls,
               "also serve MQTT over TLS (1.2 or later) there, e.g. 127.0.0.1:18883;\n"
               "a failed handshake or none within --connect-timeout ends the socket,\n"
               "counted"),
        OPT_STR("tls-cert", "F", &o.tls_cert,
                "the TLS listener's certificate chain, PEM (default\n"
                "DATA_DIR/tls/server.crt, made by services start --tls)"),
        OPT_STR("tls-key", "F", &o.tls_key, "its private key, PEM (default DATA_DIR/tls/server.key)"),
        OPT_BOOLEAN("quiet", &o.quiet, "no status line"),
        OPT_END_MARK,
    };
    const struct opt_command cmd = {
        .no_args = 1,
        .name = "ingest",
        .usage = "fleetsync ingest [options]",
        .about = ingest_about,
        .after = ingest_after,
        .opts = opts,
        .shared = 1,
    };
    memset(&g, 0, sizeof(g));
    g.wake[0] = g.wake[1] = -1;
    cfg_init(&cfg);
    cfg.kafka_user = KA_USER_BRIDGE;
    if (opt_parse_or_leave(&cmd, &cfg, argc, argv, &rest, &rc))
        goto out;
    rc = 1;
    static char tls_cert[PATH_MAX], tls_key[PATH_MAX];
    if (!o.tls_cert) {
        snprintf(tls_cert, sizeof(tls_cert), "%s/tls/server.crt", cfg.data_dir);
        o.tls_cert = tls_cert;
    }
    if (!o.tls_key) {
        snprintf(tls_key, sizeof(tls_key), "%s/tls/server.key", cfg.data_dir);
        o.tls_key = tls_key;
    }
    g.cfg = &cfg;
    g.o = &o;
    for (int i = 0; i < 3; i++)
        g.topics[i] = g.topic_buf[i];
    cfg_topic(&cfg, TOPIC_TELEMETRY, g.topic_buf[0], sizeof(g.topic_buf[0]));
    cfg_topic(&cfg, TOPIC_STATUS, g.topic_buf[1], sizeof(g.topic_buf[1]));
    cfg_topic(&cfg, TOPIC_DLQ, g.topic_buf[2], sizeof(g.topic_buf[2]));
    sig_install();
    if (o.workers > 1) {
        /* Before any thread or socket: the workers are forked from here. */
        int index;
        int port = cfg.metrics_port == 0 ? INGEST_DEFAULT_METRICS_PORT : cfg.metrics_port;
        if (port > 0)
            log_info("%d workers on %s:%d, metrics on 127.0.0.1:%d..%d", o.workers, o.host, o.port, port,
                     port + o.workers - 1);
        rc = ing_workers_run(o.workers, &index);
        if (rc != ING_WORKER)
            goto out;
        rc = 1;
        o.reuseport = 1;
        o.quiet = 1; /* one terminal, N workers: no status line */
        if (port > 0)
            cfg.metrics_port = port + index;
    }
    fit_descriptor_limit(&o);

    int st = mqa_store_open(cfg.data_dir, &g.store, err, sizeof(err));
    if (st < 0) {
        log_error("%s", err);
        goto out;
    }
    if (st > 0)
        log_warn("%s/mqtt/passwd does not exist: any client may connect and publish anywhere (fleetsync trucks add "
                 "makes accounts)",
                 cfg.data_dir);
    if (ingest_metrics(&g) != 0) {
        log_error("out of memory");
        goto out;
    }
    if (metrics_serve_option(g.metrics, cfg.metrics_port, INGEST_DEFAULT_METRICS_PORT) != 0)
        goto out;
    if (pipe2(g.wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        log_error("pipe: %s", strerror(errno));
        goto out;
    }
    if (producer_new(&g, err, sizeof(err)) != 0) {
        log_error("cannot create the Kafka producer: %s", err);
        goto out;
    }
    if (check_topics(&g, err, sizeof(err)) != 0) {
        log_error("%s", err);
        goto out;
    }
    for (int i = 0; i < 3; i++)
        if (!(g.rkts[i] = rd_kafka_topic_new(g.rk, g.topics[i], NULL))) {
            log_error("topic %s: %s", g.topics[i], rd_kafka_err2str(rd_kafka_last_error()));
            goto out;
        }
    if (ing_server_open(&g, err, sizeof(err)) != 0) {
        log_error("%s", err);
        goto out;
    }
    char tls_line[300] = "";
    if (o.tls_port)
        snprintf(tls_line, sizeof(tls_line), " and TLS on %s:%d", o.tls_host, o.tls_port);
    log_info("ingest listening on %s:%d%s -> Kafka %s (topics %s, %s, %s); %zu accounts", o.host, o.port, tls_line,
             cfg.brokers, g.topics[0], g.topics[1], g.topics[2], mqa_store_accounts(g.store));
    rc = ing_server_run(&g);
    /* Clean stop: no more reading; what Kafka still has to acknowledge is
     * flushed (its PUBACKs leave), then the clients are let go, MQTT 5 ones
     * with DISCONNECT 0x8B (server shutting down); what was not acknowledged
     * is theirs to send again. */
    log_info("stopping: flushing %d records to Kafka", rd_kafka_outq_len(g.rk));
    rd_kafka_flush(g.rk, 10000);
    rd_kafka_poll(g.rk, 0);
    ing_counts_publish(&g);
    log_info("stopped: readings %llu, acknowledged by Kafka %llu (dead letters %llu), delivery errors %llu",
             (unsigned long long)g.readings, (unsigned long long)g.acked, (unsigned long long)g.dlq,
             (unsigned long long)g.errors);
out:
    ing_server_free(&g);
    producer_destroy(&g);
    if (g.wake[0] >= 0) {
        close(g.wake[0]);
        close(g.wake[1]);
    }
    mqa_store_free(g.store);
    metrics_free(g.metrics);
    cfg_release(&cfg);
    return rc;
}
