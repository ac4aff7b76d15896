/*
 * route.h - where one MQTT message goes in Kafka, and the record it becomes.
 *
 * Both MQTT edges, the bridge (MQTT broker -> Kafka) and the ingest (MQTT
 * server -> Kafka), route every message here and produce it with
 * route_produce, so the two write byte-identical records: same topic, key,
 * value, timestamp and dead-letter headers (docs/design.md "Kafka contract").
 */
#ifndef FS_CORE_ROUTE_H
#define FS_CORE_ROUTE_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/* The most of a payload a dead letter keeps: well under librdkafka's
 * message.max.bytes (1,000,000) and Kafka's (1 MiB), headers and key
 * included, so an oversized message never blocks the records behind it. */
#define ROUTE_MAX_KEPT (512 * 1024)

/* The longest MQTT topic a record keeps (a dead letter's key and its
 * mqtt_topic header): an edge cuts a longer one to this many bytes. */
#define ROUTE_MAX_TOPIC 1024

/* The routing decision alone, without I/O, so it can be tested.  Strings
 * point into the route's own buffers or the message; valid until the next
 * route_message call with the same route. */
enum route_dest { ROUTE_TELEMETRY, ROUTE_STATUS, ROUTE_DLQ };

struct route {
    enum route_dest dest;
    const char *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    const char *error;     /* DLQ only: a telemetry v1 rejection reason */
    char error_detail[64]; /* DLQ only: the field, or a short reason */
    char keybuf[128];
    char valbuf[8192];
};

/* Validates and normalizes one message received on topic (NUL-terminated)
 * at received_ms, which is also "now" for the ts_in_future check, so a
 * resend after a restart routes exactly as the first try did. */
void route_message(const char *topic, const void *payload, size_t payload_len, int64_t received_ms, struct route *out);

/* Hands r, routed from a message on topic received at received_ms, to
 * librdkafka (copied): to topics[r->dest] (telemetry, status, dead letters,
 * each with the prefix applied), timestamp received_ms, a dead letter with
 * the headers error, error_detail, mqtt_topic and received_ms.  opaque is
 * the message's delivery-report opaque.  Returns librdkafka's error (0:
 * queued; RD_KAFKA_RESP_ERR__QUEUE_FULL: try again once it drained).
 * Thread: the producer's owner. */
rd_kafka_resp_err_t route_produce(rd_kafka_t *rk, const char *const topics[3], const struct route *r, const char *topic,
                                  int64_t received_ms, void *opaque);

/* route_produce with topic handles (rd_kafka_topic_new of the same three
 * names) instead of names: the same record, without librdkafka looking the
 * topic up by name for each message.  Thread: the producer's owner. */
rd_kafka_resp_err_t route_produce_rkt(rd_kafka_t *rk, rd_kafka_topic_t *const rkts[3], const struct route *r,
                                      const char *topic, int64_t received_ms, void *opaque);

#endif
