/*
 * kafka.c - librdkafka configuration and readiness (see kafka.h).
 */
#include "core/kafka.h"

#include "core/clock.h"
#include "core/kafkaauth.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* syslog levels: 0-3 errors, 4 warning, 5-6 info, 7 debug.  Connection
     * refusals while a broker starts are expected noise: keep them at debug
     * unless the user asked for more. */
    enum log_level l = level <= 3 ? LOG_ERROR : level == 4 ? LOG_WARN : level <= 6 ? LOG_INFO : LOG_DEBUG;
    if (l < LOG_DEBUG && strstr(buf, "Connection refused"))
        l = LOG_DEBUG;
    log_msg(l, "librdkafka %s: %s", fac, buf);
}

rd_kafka_conf_t *kafka_conf_new(const struct fs_config *cfg, const char *const *defaults, char *err, size_t err_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", cfg->brokers, err, err_size) != RD_KAFKA_CONF_OK)
        goto fail;
    for (const char *const *kv = defaults; kv && kv[0]; kv += 2) {
        if (rd_kafka_conf_set(conf, kv[0], kv[1], err, err_size) != RD_KAFKA_CONF_OK)
            goto fail;
    }
    if (ka_conf_set(conf, cfg->data_dir, cfg->kafka_user, err, err_size) != 0)
        goto fail;
    for (int i = 0; i < cfg->kafka_prop_count; i++) {
        const struct cfg_kv *kv = &cfg->kafka_props[i];
        char why[256];
        if (rd_kafka_conf_set(conf, kv->key, kv->value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
            snprintf(err, err_size, "-X %s=%s: %s", kv->key, kv->value, why);
            goto fail;
        }
    }
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_t *kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *err, size_t err_size)
{
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, err_size);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}

int kafka_wait_ready(rd_kafka_t *rk, int timeout_ms, char *err, size_t err_size)
{
    long long deadline = fs_mono_ms() + timeout_ms;
    rd_kafka_resp_err_t last = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        long long left = deadline - fs_mono_ms();
        int slice = left > 2000 ? 2000 : left < 100 ? 100 : (int)left;
        last = rd_kafka_metadata(rk, 0, NULL, &md, slice);
        if (last == RD_KAFKA_RESP_ERR_NO_ERROR) {
            int brokers = md->broker_cnt;
            rd_kafka_metadata_destroy(md);
            if (brokers > 0)
                return 0;
        }
        if (fs_mono_ms() >= deadline)
            break;
        usleep(200 * 1000);
    }
    snprintf(err, err_size, "no metadata from Kafka within %d ms: %s", timeout_ms, rd_kafka_err2str(last));
    return -1;
}

int kafka_consumer_fatal(rd_kafka_t *rk, const char *who)
{
    static long long inject_at = -1; /* -1: not read yet, 0: no injection */
    if (inject_at < 0) {
        const char *e = getenv("FLEETSYNC_TEST_CONSUMER_FATAL_MS");
        long long ms = e ? atoll(e) : 0;
        inject_at = ms > 0 ? fs_mono_ms() + ms : 0;
    }
    if (inject_at > 0 && fs_mono_ms() >= inject_at) {
        inject_at = 0;
        log_warn("FLEETSYNC_TEST_CONSUMER_FATAL_MS: raising a fatal consumer error");
        rd_kafka_test_fatal_error(rk, RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID,
                                  "injected by FLEETSYNC_TEST_CONSUMER_FATAL_MS");
    }
    char why[512];
    if (rd_kafka_fatal_error(rk, why, sizeof(why)) == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    log_error("Kafka consumer fatal error (%s): %s; exiting with status 1, a restart rejoins the group", who, why);
    return 1;
}

void kafka_consumer_destroy(rd_kafka_t *rk)
{
    if (rd_kafka_fatal_error(rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        return;
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}
