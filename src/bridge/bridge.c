/*
 * bridge.c - "fleetsync bridge": MQTT -> spool -> Kafka.
 *
 * One thread runs one poll loop over the MQTT socket, librdkafka's queue
 * wake-up pipe and the signal pipe.  A message's life:
 *
 *   1. The subscriber (mqttsub.c) reads everything the socket holds, hands
 *      each PUBLISH to on_message, which appends it to the spool's write
 *      buffer, and queues its PUBACK.
 *   2. The loop flushes the spool (write(2): in the page cache, safe from
 *      SIGKILL) and only then lets msub_flush() send the PUBACKs.
 *   3. The producer side reads records back from the spool, routes each one
 *      (route_record: telemetry, presence or dead letter) and hands it to
 *      librdkafka (idempotent, acks=all).
 *   4. A delivery report acknowledges the record in the spool; the spool's
 *      acknowledged position is checkpointed every 100 ms.
 *
 * After a crash the bridge produces again whatever lies between the last
 * checkpoint and the spool's end: at-least-once, with repeats that carry the
 * same (truck_id, ts, seq), which every consumer deduplicates.  When Kafka is
 * away the spool grows up to --spool-budget; past it the bridge stops
 * reading MQTT (the broker queues for the persistent session) until Kafka
 * has caught up.  A fatal idempotent-producer error destroys the producer,
 * makes a new one and resends everything unacknowledged from the spool.
 */
#include "bridge/bridge.h"
#include "bridge/mqttsub.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/kafka.h"
#include "core/kafkaauth.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/mqttauth.h"
#include "core/opts.h"
#include "core/sig.h"
#include "core/telemetry.h"
#include "core/topics.h"
#include "core/units.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BRIDGE_DEFAULT_METRICS_PORT 9101

/* ---- routing (pure) ---------------------------------------------------- */

void route_record(const struct spool_record *rec, struct route *out)
{
    route_message(rec->topic, rec->payload, rec->payload_len, rec->received_ms, out);
}

/* ---- the running bridge ------------------------------------------------ */

struct bridge_opts {
    const char *client_id;
    const char *share;
    const char *cafile;
    const char *spool_dir;
    int mqtt_version;
    int keepalive_s;
    int session_expiry_s;
    uint64_t spool_budget;
    int spool_fsync;
    int max_in_flight;
    int quiet;
    uint64_t test_fatal_after; /* testing: raise a fatal producer error after this many acks */
};

struct bridge {
    struct fs_config *cfg;
    struct bridge_opts *o;
    struct cfg_mqtt_url url;

    struct msub *mq;
    uint64_t mqtt_connects;
    int paused; /* spool over budget: not reading MQTT */
    int spool_failed;

    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    int wake[2]; /* librdkafka writes here when its queue has events */
    int fatal;
    int rewind_pending;
    char topic_telemetry[256], topic_status[256], topic_dlq[256];

    struct spool *spool;
    struct metrics *metrics;
    struct metric *m_received, *m_produced[3], *m_acked, *m_dlq[TM_REASON_COUNT], *m_delivery_errors, *m_recreated,
        *m_spool_bytes, *m_queue, *m_connected, *m_reconnects, *m_backpressure, *m_latency, *m_damaged,
        *m_damaged_bytes, *m_damaged_files;
    uint64_t received, acked, dlq, errors;
    long long wall_ms; /* the wall clock when the loop last woke: receive and ack times */
    long long produce_error_logged_ms;
};

/* ---- MQTT side --------------------------------------------------------- */

static int on_message(void *ud, const char *topic, size_t topic_len, const uint8_t *payload, size_t payload_len,
                      size_t full_len, int cut)
{
    struct bridge *b = ud;
    if (b->spool_failed)
        return -1;
    /* A topic or payload past what a record can carry is kept cut: the
     * router sends it to the dead letters (a truck id is short, a reading
     * small), and the cut payload fits in a Kafka record. */
    if (topic_len > SPOOL_MAX_TOPIC)
        topic_len = SPOOL_MAX_TOPIC;
    if (payload_len > BRIDGE_MAX_KEPT) {
        payload_len = BRIDGE_MAX_KEPT;
        cut = 1;
    }
    if (cut)
        log_warn("a message of %zu bytes on %.*s: keeping its first %zu bytes for the dead letters", full_len,
                 (int)(topic_len < 200 ? topic_len : 200), topic, payload_len);
    if (spool_append(b->spool, b->wall_ms, topic, topic_len, payload, payload_len) != 0) {
        log_error("cannot append to the spool: %s", strerror(errno));
        b->spool_failed = 1;
        return -1;
    }
    b->received++;
    metric_add(b->m_received, 1);
    return 0;
}

static int mqtt_setup(struct bridge *b, char *err, size_t err_size)
{
    static const char *const patterns[] = {"fleet/trucks/+/telemetry", "fleet/trucks/+/status",
                                           "fleet/gateways/+/status"};
    static char buf[3][300];
    const char *subs[3];
    for (int i = 0; i < 3; i++) {
        if (b->o->share)
            snprintf(buf[i], sizeof(buf[i]), "$share/%s/%s", b->o->share, patterns[i]);
        else
            snprintf(buf[i], sizeof(buf[i]), "%s", patterns[i]);
        subs[i] = buf[i];
    }
    struct msub_config mc = {
        .host = b->url.host,
        .port = b->url.port,
        .tls = b->url.tls,
        .cafile = b->o->cafile,
        .user = b->url.user,
        .pass = b->url.pass,
        .client_id = b->o->client_id,
        .version = b->o->mqtt_version,
        .keepalive_s = b->o->keepalive_s,
        .session_expiry_s = (uint32_t)b->o->session_expiry_s,
        .receive_max = 1000,
        .filters = subs,
        .nfilters = 3,
    };
    b->mq = msub_new(&mc, on_message, b, err, err_size);
    return b->mq ? 0 : -1;
}

/* ---- spool damage ------------------------------------------------------ */

/* The spool skipped a damaged range (or cut a torn write off its end on
 * open): say where and how much, and count it. */
static void on_spool_damage(const struct spool_damage *d, void *ctx)
{
    struct bridge *b = ctx;
    if (d->torn) {
        log_info("spool segment %s: cut off %llu bytes at byte %llu, a write torn by a crash (its messages were "
                 "never acknowledged to MQTT, so the broker sends them again)",
                 d->segment, (unsigned long long)d->bytes, (unsigned long long)d->seg_offset);
        return;
    }
    metric_add(b->m_damaged, 1);
    metric_add(b->m_damaged_bytes, d->bytes);
    metric_set(b->m_damaged_files, d->kept_files);
    log_error("spool segment %s is damaged (%s): skipped %llu bytes at byte %llu; the messages in them are lost, "
              "the intact records after them are delivered; %s%s (%d damaged segment files in the spool dir, at "
              "most %d: the oldest are deleted)",
              d->segment, d->why, (unsigned long long)d->bytes, (unsigned long long)d->seg_offset,
              d->kept_as ? "segment kept as " : "could not keep a copy of the segment", d->kept_as ? d->kept_as : "",
              d->kept_files, SPOOL_MAX_DAMAGED_FILES);
}

/* ---- Kafka side -------------------------------------------------------- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct bridge *b = opaque;
    uint64_t offset = (uint64_t)(uintptr_t)m->_private;
    if (m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
            return;
        b->errors++;
        metric_add(b->m_delivery_errors, 1);
        if (!b->rewind_pending)
            log_error("delivery to %s failed: %s; will resend from the spool", rd_kafka_topic_name(m->rkt),
                      rd_kafka_err2str(m->err));
        b->rewind_pending = 1;
        return;
    }
    spool_ack(b->spool, offset);
    b->acked++;
    if (b->o->test_fatal_after && b->acked == b->o->test_fatal_after) {
        log_warn("--test-fatal-after %llu: raising a fatal producer error", (unsigned long long)b->acked);
        rd_kafka_test_fatal_error(rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, "injected by --test-fatal-after");
    }
    metric_add(b->m_acked, 1);
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    if (ts > 0)
        metric_observe(b->m_latency, (double)(b->wall_ms - ts) / 1000.0);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct bridge *b = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof(why));
        log_error("Kafka producer fatal error: %s", why);
        b->fatal = 1;
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        log_warn("all Kafka brokers are down (%s); messages wait in the spool", reason);
    else
        log_debug("Kafka: %s: %s", rd_kafka_err2str((rd_kafka_resp_err_t)err), reason);
}

static int producer_new(struct bridge *b, char *err, size_t err_size)
{
    static const char *const defaults[] = {
        KAFKA_TELEMETRY_PRODUCER_DEFAULTS,
        "queue.buffering.max.kbytes",
        "524288",
        /* Never give up on a message: while Kafka is away it waits here and
         * in the spool, and the spool applies the backpressure. */
        "message.timeout.ms",
        "0",
        "client.id",
        "fleetsync-bridge",
        NULL,
    };
    rd_kafka_conf_t *conf = kafka_conf_new(b->cfg, defaults, err, err_size);
    if (!conf)
        return -1;
    rd_kafka_conf_set_opaque(conf, b);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    b->rk = kafka_new(RD_KAFKA_PRODUCER, conf, err, err_size);
    if (!b->rk)
        return -1;
    b->mainq = rd_kafka_queue_get_main(b->rk);
    rd_kafka_queue_io_event_enable(b->mainq, b->wake[1], "x", 1);
    return 0;
}

static void producer_destroy(struct bridge *b)
{
    if (!b->rk)
        return;
    rd_kafka_queue_io_event_enable(b->mainq, -1, NULL, 0);
    rd_kafka_queue_destroy(b->mainq);
    rd_kafka_destroy(b->rk);
    b->rk = NULL;
    b->mainq = NULL;
}

/* Fatal producer error: the producer cannot go on.  Purge it (its delivery
 * reports say "purged" and acknowledge nothing), make a new one, and resend
 * everything unacknowledged from the spool. */
static int producer_recreate(struct bridge *b)
{
    char err[512];
    rd_kafka_purge(b->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(b->rk, 0);
    producer_destroy(b);
    spool_rewind(b->spool);
    b->fatal = 0;
    b->rewind_pending = 0;
    if (producer_new(b, err, sizeof(err)) != 0) {
        log_error("cannot recreate the Kafka producer: %s", err);
        return -1;
    }
    metric_add(b->m_recreated, 1);
    log_warn("Kafka producer recreated; resending %llu unacknowledged bytes from the spool",
             (unsigned long long)(spool_head(b->spool) - spool_acked(b->spool)));
    return 0;
}

/* The topics must exist (auto-creation is off on purpose).  A topic created a
 * moment ago may take a few seconds to show in a broker's metadata: wait up to
 * 15 s before calling it missing. */
static int check_topics(struct bridge *b, char *err, size_t err_size)
{
    const char *need[3] = {b->topic_telemetry, b->topic_status, b->topic_dlq};
    long long deadline = fs_mono_ms() + 15000;
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(b->rk, 1, NULL, &md, 10000);
        if (e) {
            snprintf(err, err_size, "no answer from Kafka at %s: %s", b->cfg->brokers, rd_kafka_err2str(e));
            return -1;
        }
        const char *missing = NULL;
        for (int i = 0; i < 3 && !missing; i++) {
            int found = 0;
            for (int t = 0; t < md->topic_cnt; t++)
                if (strcmp(md->topics[t].topic, need[i]) == 0 && !md->topics[t].err)
                    found = 1;
            if (!found)
                missing = need[i];
        }
        if (!missing) {
            rd_kafka_metadata_destroy(md);
            return 0;
        }
        snprintf(err, err_size,
                 "topic %s does not exist at %s (fleetsync services start creates the topics; check "
                 "--topic-prefix)",
                 missing, b->cfg->brokers);
        rd_kafka_metadata_destroy(md);
        if (fs_mono_ms() >= deadline || sig_stopping())
            return -1;
        usleep(250 * 1000);
    }
}

/* Hands records from the spool to librdkafka while it has room. */
static void produce_some(struct bridge *b)
{
    static struct route r; /* 8 KiB of buffers: not on the stack */
    struct spool_record rec;
    const char *const topics[3] = {b->topic_telemetry, b->topic_status, b->topic_dlq};
    if (b->rewind_pending || b->fatal)
        return;
    for (int n = 0; n < 10000; n++) {
        if (rd_kafka_outq_len(b->rk) >= b->o->max_in_flight)
            return;
        int got = spool_next(b->spool, &rec);
        if (got == 0)
            return;
        if (got < 0) {
            log_error("cannot read the spool at offset %llu: %s", (unsigned long long)spool_read_pos(b->spool),
                      strerror(errno));
            b->spool_failed = 1;
            return;
        }
        route_record(&rec, &r);
        rd_kafka_resp_err_t e =
            route_produce(b->rk, topics, &r, rec.topic, rec.received_ms, (void *)(uintptr_t)rec.offset);
        if (e) {
            spool_unread_last(b->spool);
            if (e == RD_KAFKA_RESP_ERR__FATAL)
                b->fatal = 1;
            else if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL && fs_mono_ms() - b->produce_error_logged_ms >= 10000) {
                /* Retried on every pass: said once per 10 s, not per try. */
                log_error("cannot produce to %s: %s (retrying)", topics[r.dest], rd_kafka_err2str(e));
                b->produce_error_logged_ms = fs_mono_ms();
            }
            return;
        }
        metric_add(b->m_produced[r.dest], 1);
        if (r.dest == ROUTE_DLQ) {
            b->dlq++;
            for (int i = 0; i < TM_REASON_COUNT; i++)
                if (b->m_dlq[i] && strcmp(tm_reason_name((enum tm_reason)i), r.error) == 0)
                    metric_add(b->m_dlq[i], 1);
        }
    }
}

/* ---- loop -------------------------------------------------------------- */

static void status_line(struct bridge *b, uint64_t *last_received, uint64_t *last_acked, double dt_s)
{
    char spool[32];
    units_format_bytes(spool_pending_bytes(b->spool), spool, sizeof(spool));
    fprintf(stderr,
            "\r\033[KMQTT %-4s | in %6.0f/s | acked %6.0f/s, %llu total | DLQ %llu | spool %s%s | queue %d | "
            "p99 %.0f ms",
            msub_up(b->mq) ? "up" : "down", (double)(b->received - *last_received) / dt_s,
            (double)(b->acked - *last_acked) / dt_s, (unsigned long long)b->acked, (unsigned long long)b->dlq, spool,
            b->paused ? " (full: paused)" : "", rd_kafka_outq_len(b->rk), metric_quantile(b->m_latency, 0.99) * 1000);
    *last_received = b->received;
    *last_acked = b->acked;
}

static void drain_wake(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

static int bridge_run(struct bridge *b)
{
    long long last_ckpt = fs_mono_ms(), last_status = fs_mono_ms();
    /* Read coalescing: after a small batch, let the socket fill for a couple
     * of milliseconds before reading again.  Every wake-up costs a poll, a
     * spool write, a spool read and a PUBACK write, so batching them is most
     * of the bridge's efficiency at a few ms of latency. */
    long long next_read_ms = 0;
    uint64_t last_received = 0, last_acked = 0;
    int tty = isatty(STDERR_FILENO) && !b->o->quiet;
    long long stop_deadline = 0;

    for (;;) {
        long long now = fs_mono_ms();
        b->wall_ms = fs_wall_ms();
        int stopping = sig_stopping();
        if (stopping && !stop_deadline) {
            log_info("stopping: no more MQTT reads; producing what the spool holds");
            stop_deadline = now + 30000;
        }
        if (b->spool_failed) {
            /* PUBACKs for what could not be spooled must never leave. */
            log_error("the spool failed; exiting without acknowledging the last MQTT messages");
            return 1;
        }

        /* Backpressure on the spool's size. */
        uint64_t pending = spool_pending_bytes(b->spool);
        if (!b->paused && pending > b->o->spool_budget) {
            b->paused = 1;
            metric_set(b->m_backpressure, 1);
            log_warn("spool holds %llu bytes (budget %llu): pausing MQTT reads until Kafka catches up",
                     (unsigned long long)pending, (unsigned long long)b->o->spool_budget);
        } else if (b->paused && pending < b->o->spool_budget / 10 * 9) {
            b->paused = 0;
            metric_set(b->m_backpressure, 0);
            log_info("spool below budget again: resuming MQTT reads");
        }
        int reading = !b->paused && !stopping;

        if (b->fatal && producer_recreate(b) != 0)
            return 1;
        if (b->rewind_pending && rd_kafka_outq_len(b->rk) == 0) {
            spool_rewind(b->spool);
            b->rewind_pending = 0;
        }
        produce_some(b);

        if (stopping && (spool_acked(b->spool) == spool_head(b->spool) || now >= stop_deadline))
            break;

        struct pollfd p[3];
        int n = 0, mq = -1;
        p[n++] = (struct pollfd){.fd = sig_fd(), .events = POLLIN};
        p[n++] = (struct pollfd){.fd = b->wake[0], .events = POLLIN};
        if (msub_fd(b->mq) >= 0) {
            short ev = msub_events(b->mq, reading && now >= next_read_ms);
            mq = n;
            p[n++] = (struct pollfd){.fd = msub_fd(b->mq), .events = ev};
        }
        int timeout = now < next_read_ms ? (int)(next_read_ms - now) : 100;
        if (spool_read_pos(b->spool) < spool_head(b->spool) && !b->rewind_pending)
            timeout = 1; /* more to produce once librdkafka has room */
        if (reading && msub_pending(b->mq))
            timeout = 0;
        poll(p, (nfds_t)n, timeout);
        b->wall_ms = fs_wall_ms();

        if (p[1].revents & POLLIN)
            drain_wake(b->wake[0]);
        rd_kafka_poll(b->rk, 0);

        if (mq >= 0 && (p[mq].revents || (reading && msub_pending(b->mq)))) {
            long got = msub_handle(b->mq, p[mq].revents, reading);
            if (got < 0 || b->spool_failed)
                continue; /* the top of the loop exits */
            if (got > 0 && got < 512)
                next_read_ms = fs_mono_ms() + 2;
            /* The spool is on disk before any PUBACK leaves (msub_flush). */
            if (spool_flush(b->spool) != 0) {
                log_error("cannot write the spool: %s", strerror(errno));
                b->spool_failed = 1;
                continue;
            }
            if (got > 0)
                produce_some(b);
        }
        msub_flush(b->mq);
        msub_tick(b->mq, reading);
        int up = msub_up(b->mq);
        metric_set(b->m_connected, up);
        if (msub_connects(b->mq) != b->mqtt_connects) {
            metric_add(b->m_reconnects, (double)(msub_connects(b->mq) - b->mqtt_connects));
            b->mqtt_connects = msub_connects(b->mq);
        }
        now = fs_mono_ms();
        if (now - last_ckpt >= 100) {
            spool_checkpoint(b->spool);
            metric_set(b->m_spool_bytes, (double)spool_pending_bytes(b->spool));
            metric_set(b->m_queue, rd_kafka_outq_len(b->rk));
            last_ckpt = now;
        }
        if (tty && now - last_status >= 1000) {
            status_line(b, &last_received, &last_acked, (double)(now - last_status) / 1000.0);
            last_status = now;
        }
    }
    if (tty)
        fputc('\n', stderr);

    /* Clean shutdown: everything produced is flushed, the checkpoint says
     * so, and the MQTT session stays for our return. */
    b->wall_ms = fs_wall_ms();
    rd_kafka_flush(b->rk, 5000);
    spool_checkpoint(b->spool);
    msub_disconnect(b->mq);
    uint64_t left = spool_head(b->spool) - spool_acked(b->spool);
    if (left)
        log_warn("%llu bytes of messages are not yet acknowledged by Kafka; they stay in the spool and are "
                 "produced on the next start",
                 (unsigned long long)left);
    log_info("stopped: received %llu, acknowledged by Kafka %llu (dead letters %llu), delivery errors %llu",
             (unsigned long long)b->received, (unsigned long long)b->acked, (unsigned long long)b->dlq,
             (unsigned long long)b->errors);
    return 0;
}

/* ---- command ----------------------------------------------------------- */

static int opt_client_id(void *value, const char *arg, char *err, size_t err_size)
{
    if (!*arg || strlen(arg) > 128 || strchr(arg, '/')) {
        snprintf(err, err_size, "must be 1-128 characters without '/'");
        return -1;
    }
    *(const char **)value = arg;
    return 0;
}

static int opt_share(void *value, const char *arg, char *err, size_t err_size)
{
    if (!*arg || strpbrk(arg, "/+#")) {
        snprintf(err, err_size, "needs a group name without '/', '+' or '#'");
        return -1;
    }
    *(const char **)value = arg;
    return 0;
}

static int opt_mqtt_version(void *value, const char *arg, char *err, size_t err_size)
{
    int v = strcmp(arg, "5") == 0 ? 5 : strcmp(arg, "311") == 0 ? 311 : 0;
    if (!v) {
        snprintf(err, err_size, "is 5 or 311");
        return -1;
    }
    *(int *)value = v;
    return 0;
}

static int opt_size(void *value, const char *arg, char *err, size_t err_size)
{
    if (units_parse_bytes(arg, value) != 0) {
        snprintf(err, err_size, "needs a size such as 512M or 2G");
        return -1;
    }
    return 0;
}

static int opt_count(void *value, const char *arg, char *err, size_t err_size)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (errno || end == arg || *end || arg[0] == '-') {
        snprintf(err, err_size, "is a whole number, not '%s'", arg);
        return -1;
    }
    *(uint64_t *)value = v;
    return 0;
}

#define STR_(x) #x
#define STR(x) STR_(x)

static const char bridge_about[] =
    "Subscribes to fleet/trucks/+/telemetry, fleet/trucks/+/status and fleet/gateways/+/status\n"
    "(QoS 1, persistent session), validates every message and produces it to Kafka:\n"
    "telemetry -> truck-telemetry (key truck_id, normalized JSON), presence -> truck-status,\n"
    "anything invalid -> truck-telemetry-dlq with headers error, error_detail, mqtt_topic,\n"
    "received_ms. Every message is written to a local spool before the broker gets its\n"
    "acknowledgement, and stays there until Kafka has acknowledged it: a killed bridge\n"
    "loses nothing and resends on restart.";

static const char bridge_after[] = "Metrics on --metrics-port (default " STR(
    BRIDGE_DEFAULT_METRICS_PORT) "): fleetsync_bridge_* counters, spool "
                                 "bytes,\nKafka queue, MQTT state and the receive->ack latency histogram.";

/* The data dir's own broker with credentials (fleetsync trucks add): the
 * bridge logs in as the account named by its client id (the broker makes
 * every client id its account's name, docs/security.md), and trusts the
 * local CA.  0, or -1 with the reason in err. */
static int bridge_login(struct bridge *b, struct bridge_opts *o, char *cafile_buf, size_t cafile_size, char *err,
                        size_t err_size)
{
    const struct fs_config *cfg = b->cfg;
    if (b->url.tls && !o->cafile)
        o->cafile = mqa_default_cafile(cfg->data_dir, &b->url, cafile_buf, cafile_size);
    int auth =
        mqa_client_password(cfg->data_dir, &b->url, o->client_id, b->url.pass, sizeof(b->url.pass), err, err_size);
    if (auth == 1 && !mqa_valid_id(o->client_id)) {
        snprintf(err, err_size, "--client-id %s cannot be an account of %s/mqtt/ ([A-Za-z0-9._-], 1..%d characters)",
                 o->client_id, cfg->data_dir, MQA_ID_MAX);
        return -1;
    }
    if (auth < 0)
        return -1;
    if (auth == 1) {
        snprintf(b->url.user, sizeof(b->url.user), "%s", o->client_id);
        log_info("logging in to MQTT as %s (credentials of %s/mqtt/%s)", o->client_id, cfg->data_dir,
                 strcmp(o->client_id, MQA_BRIDGE_USER) == 0 ? ""
                                                            : "; the account is made by fleetsync trucks add --bridge");
    }
    return 0;
}

/* The bridge's metrics, registered before anything can happen.  0, or -1
 * when memory ran out. */
static int bridge_metrics(struct bridge *b)
{
    b->metrics = metrics_new();
    b->m_received = metrics_counter(b->metrics, "fleetsync_bridge_received_total", "MQTT messages received.", NULL);
    b->m_produced[ROUTE_TELEMETRY] = metrics_counter(b->metrics, "fleetsync_bridge_produced_total",
                                                     "Records handed to Kafka, by topic.", "topic=\"telemetry\"");
    b->m_produced[ROUTE_STATUS] = metrics_counter(b->metrics, "fleetsync_bridge_produced_total",
                                                  "Records handed to Kafka, by topic.", "topic=\"status\"");
    b->m_produced[ROUTE_DLQ] = metrics_counter(b->metrics, "fleetsync_bridge_produced_total",
                                               "Records handed to Kafka, by topic.", "topic=\"dlq\"");
    b->m_acked = metrics_counter(b->metrics, "fleetsync_bridge_acked_total", "Records acknowledged by Kafka.", NULL);
    for (int i = 1; i < TM_REASON_COUNT; i++) {
        char label[64];
        snprintf(label, sizeof(label), "reason=\"%s\"", tm_reason_name((enum tm_reason)i));
        b->m_dlq[i] = metrics_counter(b->metrics, "fleetsync_bridge_dlq_total", "Dead letters, by reason.", label);
    }
    b->m_delivery_errors = metrics_counter(b->metrics, "fleetsync_bridge_delivery_errors_total",
                                           "Failed deliveries (resent from the spool).", NULL);
    b->m_recreated = metrics_counter(b->metrics, "fleetsync_bridge_producer_recreated_total",
                                     "Producers recreated after a fatal error.", NULL);
    b->m_spool_bytes =
        metrics_gauge(b->metrics, "fleetsync_bridge_spool_bytes", "Spooled bytes not yet acknowledged by Kafka.", NULL);
    b->m_queue =
        metrics_gauge(b->metrics, "fleetsync_bridge_kafka_queue", "Messages in the Kafka producer queue.", NULL);
    b->m_connected = metrics_gauge(b->metrics, "fleetsync_bridge_mqtt_connected", "1 while connected to MQTT.", NULL);
    b->m_reconnects = metrics_counter(b->metrics, "fleetsync_bridge_mqtt_connects_total",
                                      "MQTT connection attempts "
                                      "that reached the broker.",
                                      NULL);
    b->m_backpressure = metrics_gauge(b->metrics, "fleetsync_bridge_backpressure",
                                      "1 while MQTT reads pause because the spool is over budget.", NULL);
    b->m_damaged = metrics_counter(b->metrics, "fleetsync_bridge_spool_damaged_total",
                                   "Damaged spool ranges skipped (their messages are lost).", NULL);
    b->m_damaged_bytes = metrics_counter(b->metrics, "fleetsync_bridge_spool_damaged_bytes_total",
                                         "Bytes of damaged spool ranges skipped.", NULL);
    b->m_damaged_files = metrics_gauge(b->metrics, "fleetsync_bridge_spool_damaged_files",
                                       "Damaged segment files kept aside in the spool dir.", NULL);
    static const double lat_bounds[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60};
    b->m_latency =
        metrics_histogram(b->metrics, "fleetsync_bridge_ack_latency_seconds", "MQTT receive to Kafka acknowledgement.",
                          NULL, lat_bounds, (int)(sizeof(lat_bounds) / sizeof(lat_bounds[0])));
    return b->metrics && b->m_received && b->m_acked && b->m_latency ? 0 : -1;
}

/* Opens the spool: --spool-dir, else DATA_DIR/bridge/CLIENT_ID.  0, or -1
 * after logging why. */
static int bridge_open_spool(struct bridge *b, char *spool_dir, size_t spool_dir_size, char *err, size_t err_size)
{
    const struct bridge_opts *o = b->o;
    const struct fs_config *cfg = b->cfg;
    if (o->spool_dir) {
        snprintf(spool_dir, spool_dir_size, "%s", o->spool_dir);
    } else {
        char bdir[PATH_MAX - 200];
        snprintf(bdir, sizeof(bdir), "%s/bridge", cfg->data_dir);
        /* The bridge's state is telemetry: DATA_DIR/bridge is the owner's
         * only (tightened if an older version made it 0755). */
        mkdir(cfg->data_dir, 0755);
        struct stat bst;
        if ((mkdir(bdir, 0700) != 0 && errno != EEXIST) || stat(bdir, &bst) != 0 ||
            ((bst.st_mode & 077) && chmod(bdir, 0700) != 0)) {
            log_error("cannot create %s (mode 0700): %s", bdir, strerror(errno));
            return -1;
        }
        snprintf(spool_dir, spool_dir_size, "%s/%s", bdir, o->client_id);
    }
    struct spool_options so = {.fsync = o->spool_fsync, .on_damage = on_spool_damage, .ctx = b};
    if (spool_open(spool_dir, &so, &b->spool, err, err_size) != 0) {
        log_error("%s", err);
        return -1;
    }
    metric_set(b->m_damaged_files, spool_damaged_files(b->spool));
    if (spool_damaged_files(b->spool))
        log_warn("spool %s keeps %d damaged segment files (*.damaged) for inspection; delete them when done", spool_dir,
                 spool_damaged_files(b->spool));
    if (spool_head(b->spool) > spool_acked(b->spool))
        log_info("spool %s holds %llu bytes not yet acknowledged by Kafka: producing them first", spool_dir,
                 (unsigned long long)(spool_head(b->spool) - spool_acked(b->spool)));
    return 0;
}

int cmd_bridge(int argc, char **argv)
{
    struct fs_config cfg;
    struct bridge_opts o = {.client_id = "fleetsync-bridge",
                            .mqtt_version = 5,
                            .keepalive_s = 30,
                            .session_expiry_s = 604800,
                            .spool_budget = 1ull << 30,
                            .max_in_flight = 200000};
    struct bridge b;
    char err[512], spool_dir[PATH_MAX];
    int rest, rc = 2;
    const struct opt opts[] = {
        OPT_CB("client-id", "ID", &o.client_id, opt_client_id,
               "MQTT client id, also names the spool (default fleetsync-bridge);\n"
               "with the data dir's credentials also the account it logs in as\n"
               "(fleetsync trucks add --bridge ID)"),
        OPT_CB("share", "GROUP", &o.share, opt_share,
               "shared subscription $share/GROUP/...: bridges with the same GROUP\n"
               "split the traffic (give each its own --client-id)"),
        OPT_CB("mqtt-version", "V", &o.mqtt_version, opt_mqtt_version, "5 (default) or 311"),
        OPT_STR("cafile", "FILE", &o.cafile,
                "CA certificate for mqtts:// (default: DIR/tls/ca.crt for the\n"
                "data dir's own broker, else the system's CAs)"),
        OPT_INTEGER("keepalive", "S", &o.keepalive_s, 5, 65535, "MQTT keep-alive in seconds (default 30)"),
        OPT_INTEGER("session-expiry", "S", &o.session_expiry_s, 0, INT_MAX,
                    "how long the broker keeps our session while we are away (MQTT 5;\n"
                    "default 604800 = 7 days)"),
        OPT_STR("spool-dir", "DIR", &o.spool_dir, "default DATA_DIR/bridge/CLIENT_ID"),
        OPT_CB("spool-budget", "SIZE", &o.spool_budget, opt_size,
               "spool size at which MQTT reads pause (default 1G; K, M, G suffixes)"),
        OPT_BOOLEAN("spool-fsync", &o.spool_fsync,
                    "fdatasync the spool before acknowledging (survives power loss; slower)"),
        OPT_INTEGER("max-in-flight", "N", &o.max_in_flight, 1, 1000000,
                    "messages handed to Kafka and not yet acknowledged (default 200000)"),
        OPT_BOOLEAN("quiet", &o.quiet, "no status line"),
        OPT_CB("test-fatal-after", "N", &o.test_fatal_after, opt_count,
               "testing: make librdkafka raise a fatal error after N acks, to\n"
               "exercise the producer's recovery"),
        OPT_END_MARK,
    };
    const struct opt_command cmd = {
        .no_args = 1,
        .name = "bridge",
        .usage = "fleetsync bridge [options]",
        .about = bridge_about,
        .after = bridge_after,
        .opts = opts,
        .shared = 1,
    };

    memset(&b, 0, sizeof(b));
    b.wake[0] = b.wake[1] = -1;
    cfg_init(&cfg);
    cfg.kafka_user = KA_USER_BRIDGE;
    if (opt_parse_or_leave(&cmd, &cfg, argc, argv, &rest, &rc))
        goto out;
    rc = 1;
    b.cfg = &cfg;
    b.o = &o;
    if (cfg_parse_mqtt_url(cfg.mqtt, &b.url, err, sizeof(err)) != 0) {
        fprintf(stderr, "fleetsync bridge: %s\n", err);
        rc = 2;
        goto out;
    }
    char cafile_buf[4096];
    if (bridge_login(&b, &o, cafile_buf, sizeof(cafile_buf), err, sizeof(err)) != 0) {
        fprintf(stderr, "fleetsync bridge: %s\n", err);
        goto out;
    }
    cfg_topic(&cfg, TOPIC_TELEMETRY, b.topic_telemetry, sizeof(b.topic_telemetry));
    cfg_topic(&cfg, TOPIC_STATUS, b.topic_status, sizeof(b.topic_status));
    cfg_topic(&cfg, TOPIC_DLQ, b.topic_dlq, sizeof(b.topic_dlq));

    sig_install();

    if (bridge_metrics(&b) != 0) {
        log_error("out of memory");
        goto out;
    }
    if (metrics_serve_option(b.metrics, cfg.metrics_port, BRIDGE_DEFAULT_METRICS_PORT) != 0)
        goto out;

    if (bridge_open_spool(&b, spool_dir, sizeof(spool_dir), err, sizeof(err)) != 0)
        goto out;

    if (pipe2(b.wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        log_error("pipe: %s", strerror(errno));
        goto out;
    }
    if (producer_new(&b, err, sizeof(err)) != 0) {
        log_error("cannot create the Kafka producer: %s", err);
        goto out;
    }
    if (check_topics(&b, err, sizeof(err)) != 0) {
        log_error("%s", err);
        goto out;
    }
    if (mqtt_setup(&b, err, sizeof(err)) != 0) {
        log_error("%s", err);
        goto out;
    }
    log_info("bridging MQTT %s:%d -> Kafka %s (topics %s, %s, %s); spool %s", b.url.host, b.url.port, cfg.brokers,
             b.topic_telemetry, b.topic_status, b.topic_dlq, spool_dir);
    rc = bridge_run(&b);

out:
    msub_free(b.mq);
    producer_destroy(&b);
    if (b.spool)
        spool_close(b.spool);
    if (b.wake[0] >= 0) {
        close(b.wake[0]);
        close(b.wake[1]);
    }
    metrics_free(b.metrics);
    cfg_release(&cfg);
    return rc;
}
