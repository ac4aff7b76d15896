/*
 * kafkaout.h - the simulator's other output: readings produced straight
 * into truck-telemetry (`fleetsync sim --kafka`), skipping MQTT and the
 * bridge.
 *
 * It exists for loads one machine's MQTT broker cannot carry (the hot
 * pipeline's benchmark at 100,000 msg/s): what reaches Kafka is what the
 * bridge would have produced for the same reading, byte for byte — key =
 * truck_id, value = the normalized JSON (sim_format_normalized()), record
 * timestamp = the wall clock when produced.  Presence is not produced.
 *
 * The producer is idempotent with acks=all; every delivery report is
 * counted, as acknowledged or failed, in the same stats as MQTT's.
 */
#ifndef FS_SIM_KAFKAOUT_H
#define FS_SIM_KAFKAOUT_H

#include "core/config.h"
#include "sim/mqttpool.h"

#include <stddef.h>
#include <stdint.h>

struct kafkaout;

/* Connects to cfg's brokers (waiting up to wait_ms for them to answer) and
 * produces to cfg's prefixed truck-telemetry.  Returns NULL with a reason
 * in err. */
struct kafkaout *kafkaout_new(const struct fs_config *cfg, int wait_ms, char *err, size_t err_size);

/* Queues one record; while librdkafka's queue is full it serves delivery
 * reports and tries again.  Returns 0; 1 when a stop was requested while
 * the queue was full (the record is not sent and not counted); -1 when
 * librdkafka refused it (counted as failed, the first one logged). */
int kafkaout_produce(struct kafkaout *k, const char *key, size_t key_len, const char *value, size_t value_len,
                     int64_t ts_ms);

/* Counts a reading that could not be offered to librdkafka as failed. */
void kafkaout_count_refused(struct kafkaout *k);

/* Serves delivery reports, waiting up to timeout_ms for one.  Returns 0, or
 * -1 when the producer hit a fatal error (logged). */
int kafkaout_poll(struct kafkaout *k, int timeout_ms);

/* published = queued, acked = delivered, failed = refused or reported
 * undelivered, inflight = queued and not yet reported; up/conns are 1/1. */
void kafkaout_get_stats(const struct kafkaout *k, struct mqp_stats *out);

/* Waits up to wait_ms for what is queued to be delivered, then frees
 * everything.  k may be NULL. */
void kafkaout_free(struct kafkaout *k, int wait_ms);

#endif
