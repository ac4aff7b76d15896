/*
 * topics.c - topic creation through the Kafka admin API (see topics.h).
 */
#include "core/topics.h"

#include "core/clock.h"
#include "core/log.h"

#include <stdio.h>
#include <string.h>

const struct topic_spec topic_specs[] = {
    {TOPIC_TELEMETRY, 6, "delete", 7 * FS_DAY_MS},   {TOPIC_STATUS, 6, "compact", -1},
    {TOPIC_DLQ, 3, "delete", 7 * FS_DAY_MS},         {TOPIC_ALERTS, 6, "delete", 30 * FS_DAY_MS},
    {TOPIC_ALERTS_DLQ, 3, "delete", 30 * FS_DAY_MS},
};
const int topic_spec_count = (int)(sizeof(topic_specs) / sizeof(topic_specs[0]));

int topics_ensure(rd_kafka_t *rk, const struct fs_config *cfg, int rf, int partitions_override, int timeout_ms,
                  char *err, size_t err_size)
{
    rd_kafka_NewTopic_t *nt[8] = {0};
    rd_kafka_AdminOptions_t *opts = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    int rc = -1;
    char why[256];

    for (int i = 0; i < topic_spec_count; i++) {
        const struct topic_spec *s = &topic_specs[i];
        char name[256], retention[32];
        int parts = s->partitions;
        if (partitions_override > 0 && strcmp(s->name, TOPIC_TELEMETRY) == 0)
            parts = partitions_override;
        cfg_topic(cfg, s->name, name, sizeof(name));
        /* rf <= 0: the brokers' default.replication.factor (and their
         * min.insync.replicas), 1 on the single broker, 3 on a cluster. */
        nt[i] = rd_kafka_NewTopic_new(name, parts, rf > 0 ? rf : -1, why, sizeof(why));
        if (!nt[i]) {
            snprintf(err, err_size, "topic %s: %s", name, why);
            goto out;
        }
        snprintf(retention, sizeof(retention), "%lld", s->retention_ms);
        if (rd_kafka_NewTopic_set_config(nt[i], "cleanup.policy", s->cleanup) ||
            rd_kafka_NewTopic_set_config(nt[i], "retention.ms", retention)) {
            snprintf(err, err_size, "topic %s: cannot set config", name);
            goto out;
        }
        if (rf > 1 && rd_kafka_NewTopic_set_config(nt[i], "min.insync.replicas", "2")) {
            snprintf(err, err_size, "topic %s: cannot set min.insync.replicas", name);
            goto out;
        }
    }

    opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, why, sizeof(why));
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, why, sizeof(why));
    q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, nt, (size_t)topic_spec_count, opts, q);
    ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    if (!ev) {
        snprintf(err, err_size, "CreateTopics: no answer within %d ms", timeout_ms);
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        snprintf(err, err_size, "CreateTopics: %s", rd_kafka_event_error_string(ev));
        goto out;
    }
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t n;
    const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
        if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            continue;
        if (e) {
            snprintf(err, err_size, "cannot create topic %s: %s", rd_kafka_topic_result_name(tr[i]),
                     rd_kafka_topic_result_error_string(tr[i]));
            goto out;
        }
        log_info("created topic %s", rd_kafka_topic_result_name(tr[i]));
    }
    rc = 0;
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (q)
        rd_kafka_queue_destroy(q);
    if (opts)
        rd_kafka_AdminOptions_destroy(opts);
    for (int i = 0; i < topic_spec_count; i++)
        if (nt[i])
            rd_kafka_NewTopic_destroy(nt[i]);
    return rc;
}
