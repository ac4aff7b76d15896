/*
 * kafkaout.c - readings straight into truck-telemetry (see kafkaout.h).
 */
#include "sim/kafkaout.h"

#include "core/kafka.h"
#include "core/log.h"
#include "core/sig.h"
#include "core/topics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kafkaout {
    rd_kafka_t *rk;
    rd_kafka_topic_t *topic;
    char topic_name[256];
    uint64_t published;   /* queued in librdkafka */
    uint64_t acked;       /* delivery reports without error */
    uint64_t undelivered; /* delivery reports with an error */
    uint64_t refused;     /* never queued */
    int fatal_logged;
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct kafkaout *k = opaque;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        k->acked++;
        return;
    }
    if (k->undelivered++ == 0)
        log_error("a reading was not delivered to %s: %s (further failures are only counted)", k->topic_name,
                  rd_kafka_err2str(m->err));
}

struct kafkaout *kafkaout_new(const struct fs_config *cfg, int wait_ms, char *err, size_t err_size)
{
    static const char *const defaults[] = {
        KAFKA_TELEMETRY_PRODUCER_DEFAULTS,
        "client.id",
        "fleetsync-sim",
        NULL,
    };
    struct kafkaout *k = calloc(1, sizeof(*k));
    if (!k) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    cfg_topic(cfg, TOPIC_TELEMETRY, k->topic_name, sizeof(k->topic_name));
    rd_kafka_conf_t *conf = kafka_conf_new(cfg, defaults, err, err_size);
    if (!conf)
        goto fail;
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    k->rk = kafka_new(RD_KAFKA_PRODUCER, conf, err, err_size);
    if (!k->rk)
        goto fail;
    char why[256];
    if (kafka_wait_ready(k->rk, wait_ms, why, sizeof(why)) != 0) {
        snprintf(err, err_size, "Kafka at %s does not answer: %s", cfg->brokers, why);
        goto fail;
    }
    k->topic = rd_kafka_topic_new(k->rk, k->topic_name, NULL);
    if (!k->topic) {
        snprintf(err, err_size, "topic %s: %s", k->topic_name, rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }
    return k;
fail:
    kafkaout_free(k, 0);
    return NULL;
}

int kafkaout_produce(struct kafkaout *k, const char *key, size_t key_len, const char *value, size_t value_len,
                     int64_t ts_ms)
{
    rd_kafka_resp_err_t e;
    for (;;) {
        e = rd_kafka_producev(k->rk, RD_KAFKA_V_RKT(k->topic), RD_KAFKA_V_KEY(key, key_len),
                              RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        if (sig_stopping())
            return 1;             /* the run ends before this reading: not sent, not lost */
        rd_kafka_poll(k->rk, 10); /* the queue drains as deliveries are reported */
    }
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        k->published++;
        return 0;
    }
    kafkaout_count_refused(k);
    if (k->refused == 1)
        log_error("cannot produce to %s: %s (further refusals are only counted)", k->topic_name, rd_kafka_err2str(e));
    return -1;
}

void kafkaout_count_refused(struct kafkaout *k)
{
    k->refused++;
}

int kafkaout_poll(struct kafkaout *k, int timeout_ms)
{
    rd_kafka_poll(k->rk, timeout_ms);
    char why[512];
    if (rd_kafka_fatal_error(k->rk, why, sizeof(why)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (!k->fatal_logged++)
            log_error("the Kafka producer stopped: %s", why);
        return -1;
    }
    return 0;
}

void kafkaout_get_stats(const struct kafkaout *k, struct mqp_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->published = k->published;
    out->acked = k->acked;
    out->failed = k->undelivered + k->refused;
    out->inflight = k->published - k->acked - k->undelivered;
    out->up = out->conns = 1;
}

void kafkaout_free(struct kafkaout *k, int wait_ms)
{
    if (!k)
        return;
    if (k->rk && wait_ms > 0)
        rd_kafka_flush(k->rk, wait_ms);
    if (k->topic)
        rd_kafka_topic_destroy(k->topic);
    if (k->rk)
        rd_kafka_destroy(k->rk);
    free(k);
}
