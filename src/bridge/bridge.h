/*
 * bridge.h - "fleetsync bridge": MQTT in, Kafka out, nothing lost.
 */
#ifndef FS_BRIDGE_H
#define FS_BRIDGE_H

#include "bridge/spool.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/* The most of a payload a dead letter keeps: well under librdkafka's
 * message.max.bytes (1,000,000) and Kafka's (1 MiB), headers and key
 * included, so an oversized message never blocks the records behind it. */
#define BRIDGE_MAX_KEPT (512 * 1024)

int cmd_bridge(int argc, char **argv);

/* Where one spooled MQTT message goes in Kafka: the routing decision alone,
 * without I/O, so it can be tested.  Strings point into the route's own
 * buffers or the record; valid until the next route_record call. */
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

/* Validates and normalizes one message received on topic at received_ms
 * (which is also "now" for the ts_in_future check, so a resend after a
 * restart routes exactly as the first try did). */
void route_record(const struct spool_record *rec, struct route *out);

#endif
