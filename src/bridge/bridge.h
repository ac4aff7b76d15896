/*
 * bridge.h - "fleetsync bridge": MQTT in, Kafka out, nothing lost.
 */
#ifndef FS_BRIDGE_H
#define FS_BRIDGE_H

#include "bridge/spool.h"
#include "core/route.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/* The most of a payload a dead letter keeps (core/route.h). */
#define BRIDGE_MAX_KEPT ROUTE_MAX_KEPT

int cmd_bridge(int argc, char **argv);

/* route_message (core/route.h) of one spooled MQTT message. */
void route_record(const struct spool_record *rec, struct route *out);

#endif
