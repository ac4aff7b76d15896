/*
 * kafka.h - librdkafka configuration shared by every FleetSync client.
 *
 * kafka_conf_new() starts from bootstrap.servers = cfg->brokers, applies the
 * caller's defaults, then, when the data dir is secure (core/kafkaauth.h),
 * SASL as the principal cfg->kafka_user, then the user's -X properties (so
 * -X always wins), and routes librdkafka's log lines into log.h.
 */
#ifndef FS_KAFKA_H
#define FS_KAFKA_H

#include "core/config.h"

#include <librdkafka/rdkafka.h>

/* How long a producer lingers to fill a batch.  The broker's CPU follows
 * requests, not records: at 100,000 readings/s it spends half a core with a
 * 5 ms linger and an eighth with 20 ms (docs/bench/kafka.md), and a record
 * waits at most this long more. */
#define KAFKA_LINGER_MS "20"

/* The producer settings of truck-telemetry's writers (the bridge, and the
 * simulator's --kafka that stands in for it), as key, value pairs to open a
 * kafka_conf_new() defaults list: idempotent, acks=all, lz4, batches of up to
 * 10,000 messages lingering KAFKA_LINGER_MS. */
#define KAFKA_TELEMETRY_PRODUCER_DEFAULTS                                                                              \
    "enable.idempotence", "true", "acks", "all", "compression.type", "lz4", "linger.ms", KAFKA_LINGER_MS,              \
        "batch.num.messages", "10000", "batch.size", "1000000", "queue.buffering.max.messages", "1000000"

/* The settings of a producer whose records must all arrive, once each and
 * in order (detect's alerts, notify's dead letters): idempotent, acks=all,
 * lz4, lingering KAFKA_LINGER_MS, never timing out; key, value pairs to open
 * a kafka_conf_new() defaults list. */
#define KAFKA_RELIABLE_PRODUCER_DEFAULTS                                                                               \
    "enable.idempotence", "true", "acks", "all", "linger.ms", KAFKA_LINGER_MS, "compression.type", "lz4",              \
        "message.timeout.ms", "0"

/* The fetch settings of truck-telemetry's consumers (history, billing,
 * detect, the dashboard), as key, value pairs for a kafka_conf_new() defaults
 * list: a broker answers a fetch once it holds 256 KiB for it or after
 * 100 ms, so at high volume each request carries thousands of readings
 * instead of a few, and at low volume a reading waits at most 100 ms more.
 * Low-volume consumers (notify on truck-alerts, status) keep librdkafka's
 * fetch.min.bytes of 1 and answer at once. */
#define KAFKA_TELEMETRY_CONSUMER_DEFAULTS "fetch.wait.max.ms", "100", "fetch.min.bytes", "262144"

/* Returns a new conf the caller owns (kafka_new() takes it),
 * or NULL with a reason in err.  defaults is a NULL-terminated list of
 * key, value pairs applied before -X; it may be NULL. */
rd_kafka_conf_t *kafka_conf_new(const struct fs_config *cfg, const char *const *defaults, char *err, size_t err_size);

/* rd_kafka_new() that always takes conf: the handle, or NULL with
 * librdkafka's reason in err and conf destroyed.  Either way the caller
 * no longer owns conf. */
rd_kafka_t *kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *err, size_t err_size);

/* Waits until the cluster answers a metadata request, up to timeout_ms.
 * Returns 0 when it did, -1 with the last error in err. */
int kafka_wait_ready(rd_kafka_t *rk, int timeout_ms, char *err, size_t err_size);

/* A consumer's fatal error.  librdkafka makes some consumer errors fatal
 * (a static member fenced by a newer instance with its group.instance.id,
 * librdkafka bug 3437 of its own tracker, seen when a broker of a cluster dies); the handle
 * then reads nothing more, while the process would look healthy.  Called
 * once per poll loop: returns 1, having logged the reason, when rk has
 * raised a fatal error, so the caller stops and exits with status 1 (a
 * restart, or `fleetsync up`, rejoins the group); else 0.
 *
 * Testing: with FLEETSYNC_TEST_CONSUMER_FATAL_MS=N in the environment, the
 * first call N ms or more after the first call raises a fabricated fatal
 * error (rd_kafka_test_fatal_error) on rk. */
int kafka_consumer_fatal(rd_kafka_t *rk, const char *who);

/* Closes and destroys a consumer: rd_kafka_consumer_close() (leaves the
 * group, runs the revoke callback) then rd_kafka_destroy(); after a fatal
 * error only the destroy, without the close, which would wait for a group
 * the handle can no longer speak to. */
void kafka_consumer_destroy(rd_kafka_t *rk);

#endif
