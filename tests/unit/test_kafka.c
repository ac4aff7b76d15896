/* core/kafka: creating a client hands over its conf either way; the
 * telemetry clients' batching defaults, which -X overrides. */
#include "core/kafka.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static void kafka_new_takes_the_conf_when_librdkafka_refuses_it(void **state)
{
    (void)state;
    char err[512] = "";
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err)), RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "acks", "1", err, sizeof(err)), RD_KAFKA_CONF_OK);
    /* An idempotent producer needs acks=all: rd_kafka_new refuses, and the
     * conf is destroyed (the sanitizer build sees a leak otherwise). */
    assert_null(kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)));
    assert_non_null(strstr(err, "acks"));
}

static void kafka_new_gives_a_handle(void **state)
{
    (void)state;
    char err[512] = "";
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", "127.0.0.1:1", err, sizeof(err)), RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    assert_non_null(rk);
    rd_kafka_destroy(rk);
}

/* A config on no data dir (so no SASL) with the given -X pairs. */
static void test_cfg(struct fs_config *cfg, const char *const *xs)
{
    cfg_init(cfg);
    cfg->brokers = "127.0.0.1:1";
    cfg->data_dir = "/nonexistent/fleetsync-test";
    for (; xs && xs[0]; xs += 2) {
        cfg->kafka_props[cfg->kafka_prop_count].key = strdup(xs[0]);
        cfg->kafka_props[cfg->kafka_prop_count].value = strdup(xs[1]);
        cfg->kafka_prop_count++;
    }
}

static void assert_conf(rd_kafka_conf_t *conf, const char *key, const char *want)
{
    char got[256];
    size_t size = sizeof(got);
    assert_int_equal(rd_kafka_conf_get(conf, key, got, &size), RD_KAFKA_CONF_OK);
    assert_string_equal(got, want);
}

static void telemetry_producers_linger_20_ms_with_lz4(void **state)
{
    (void)state;
    static const char *const defaults[] = {KAFKA_TELEMETRY_PRODUCER_DEFAULTS, NULL};
    struct fs_config cfg;
    char err[512] = "";
    test_cfg(&cfg, NULL);
    rd_kafka_conf_t *conf = kafka_conf_new(&cfg, defaults, err, sizeof(err));
    assert_non_null(conf);
    assert_conf(conf, "linger.ms", "20");
    assert_conf(conf, "compression.type", "lz4");
    assert_conf(conf, "acks", "-1"); /* all */
    rd_kafka_conf_destroy(conf);
    cfg_release(&cfg);
}

static void telemetry_consumers_wait_for_256_kib_or_100_ms(void **state)
{
    (void)state;
    static const char *const defaults[] = {KAFKA_TELEMETRY_CONSUMER_DEFAULTS, "group.id", "g", NULL};
    struct fs_config cfg;
    char err[512] = "";
    test_cfg(&cfg, NULL);
    rd_kafka_conf_t *conf = kafka_conf_new(&cfg, defaults, err, sizeof(err));
    assert_non_null(conf);
    assert_conf(conf, "fetch.min.bytes", "262144");
    assert_conf(conf, "fetch.wait.max.ms", "100");
    rd_kafka_conf_destroy(conf);
    cfg_release(&cfg);
}

static void dash_x_overrides_the_batching_defaults(void **state)
{
    (void)state;
    static const char *const defaults[] = {KAFKA_TELEMETRY_PRODUCER_DEFAULTS, KAFKA_TELEMETRY_CONSUMER_DEFAULTS, NULL};
    static const char *const xs[] = {"linger.ms", "0", "fetch.min.bytes", "1", "fetch.wait.max.ms", "10", NULL};
    struct fs_config cfg;
    char err[512] = "";
    test_cfg(&cfg, xs);
    rd_kafka_conf_t *conf = kafka_conf_new(&cfg, defaults, err, sizeof(err));
    assert_non_null(conf);
    assert_conf(conf, "linger.ms", "0");
    assert_conf(conf, "fetch.min.bytes", "1");
    assert_conf(conf, "fetch.wait.max.ms", "10");
    rd_kafka_conf_destroy(conf);
    cfg_release(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kafka_new_takes_the_conf_when_librdkafka_refuses_it),
        cmocka_unit_test(kafka_new_gives_a_handle),
        cmocka_unit_test(telemetry_producers_linger_20_ms_with_lz4),
        cmocka_unit_test(telemetry_consumers_wait_for_256_kib_or_100_ms),
        cmocka_unit_test(dash_x_overrides_the_batching_defaults),
    };
    return cmocka_run_group_tests_name("kafka", tests, NULL, NULL);
}
