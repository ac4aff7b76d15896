/*
 * kafka.h - librdkafka configuration shared by every FleetSync client.
 *
 * kafka_conf_new() starts from bootstrap.servers = cfg->brokers, applies the
 * caller's defaults, then the user's -X properties (so -X always wins), and
 * routes librdkafka's log lines into log.h.
 */
#ifndef FS_KAFKA_H
#define FS_KAFKA_H

#include "core/config.h"

#include <librdkafka/rdkafka.h>

/* Returns a new conf the caller owns (rd_kafka_new() takes it on success),
 * or NULL with a reason in err.  defaults is a NULL-terminated list of
 * key, value pairs applied before -X; it may be NULL. */
rd_kafka_conf_t *kafka_conf_new(const struct fs_config *cfg, const char *const *defaults,
                                char *err, size_t err_size);

/* Waits until the cluster answers a metadata request, up to timeout_ms.
 * Returns 0 when it did, -1 with the last error in err. */
int kafka_wait_ready(rd_kafka_t *rk, int timeout_ms, char *err, size_t err_size);

#endif
