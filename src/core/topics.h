/*
 * topics.h - the Kafka topics (docs/design.md "Kafka contract") and their settings.
 *
 * Every component names topics through this table (plus cfg->topic_prefix),
 * so a rename or a new setting happens in one place.
 */
#ifndef FS_TOPICS_H
#define FS_TOPICS_H

#include "core/config.h"

#include <librdkafka/rdkafka.h>

#define TOPIC_TELEMETRY "truck-telemetry"
#define TOPIC_STATUS "truck-status"
#define TOPIC_DLQ "truck-telemetry-dlq"
#define TOPIC_ALERTS "truck-alerts"
#define TOPIC_ALERTS_DLQ "truck-alerts-dlq"

struct topic_spec {
    const char *name; /* without prefix */
    int partitions;
    const char *cleanup; /* "delete" or "compact" */
    long long retention_ms;
};

extern const struct topic_spec topic_specs[];
extern const int topic_spec_count;

/* Creates every topic of topic_specs (prefixed) that does not exist yet, with
 * replication factor rf (rf > 1 also sets min.insync.replicas=2; rf <= 0 takes
 * the brokers' defaults: `services start` configures 1, or 3 with
 * min.insync.replicas=2 on a --kafka-brokers 3 cluster, so a caller that does
 * not know the cluster passes 0).  partitions_override > 0 replaces the
 * partition count of truck-telemetry.  Existing topics are left alone.  Returns 0, or -1 with
 * the first failure in err. */
int topics_ensure(rd_kafka_t *rk, const struct fs_config *cfg, int rf, int partitions_override, int timeout_ms,
                  char *err, size_t err_size);

#endif
