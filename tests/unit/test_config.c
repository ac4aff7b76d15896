/* Shared option handling: defaults, environment, flags, URL parsing. */
#include "core/config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static void defaults_match_design(void **state)
{
    (void)state;
    unsetenv("FLEETSYNC_MQTT");
    unsetenv("FLEETSYNC_BROKERS");
    struct fs_config cfg;
    cfg_init(&cfg);
    assert_string_equal(cfg.mqtt, "mqtt://127.0.0.1:18830");
    assert_string_equal(cfg.brokers, "127.0.0.1:19092");
    assert_string_equal(cfg.data_dir, "./var");
    assert_string_equal(cfg.topic_prefix, "");
    cfg_release(&cfg);
}

static void environment_overrides_defaults(void **state)
{
    (void)state;
    setenv("FLEETSYNC_BROKERS", "10.0.0.1:9092", 1);
    setenv("FLEETSYNC_TOPIC_PREFIX", "t1-", 1);
    struct fs_config cfg;
    cfg_init(&cfg);
    assert_string_equal(cfg.brokers, "10.0.0.1:9092");
    char topic[64];
    assert_string_equal(cfg_topic(&cfg, "truck-telemetry", topic, sizeof(topic)), "t1-truck-telemetry");
    unsetenv("FLEETSYNC_BROKERS");
    unsetenv("FLEETSYNC_TOPIC_PREFIX");
    cfg_release(&cfg);
}

static void flag_overrides_environment(void **state)
{
    (void)state;
    setenv("FLEETSYNC_MQTT", "mqtt://env:1", 1);
    struct fs_config cfg;
    char err[256];
    cfg_init(&cfg);
    assert_int_equal(cfg_option(&cfg, CFG_OPT_MQTT, "mqtt://127.0.0.1:28830", err, sizeof(err)), 1);
    assert_string_equal(cfg.mqtt, "mqtt://127.0.0.1:28830");
    unsetenv("FLEETSYNC_MQTT");
    cfg_release(&cfg);
}

static void kafka_properties_are_collected(void **state)
{
    (void)state;
    struct fs_config cfg;
    char err[256];
    cfg_init(&cfg);
    assert_int_equal(cfg_option(&cfg, 'X', "security.protocol=SASL_SSL", err, sizeof(err)), 1);
    assert_int_equal(cfg_option(&cfg, 'X', "linger.ms=5", err, sizeof(err)), 1);
    assert_int_equal(cfg.kafka_prop_count, 2);
    assert_string_equal(cfg.kafka_props[0].key, "security.protocol");
    assert_string_equal(cfg.kafka_props[1].value, "5");
    assert_int_equal(cfg_option(&cfg, 'X', "novalue", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "key=value"));
    cfg_release(&cfg);
}

static void bad_values_are_usage_errors(void **state)
{
    (void)state;
    struct fs_config cfg;
    char err[256];
    cfg_init(&cfg);
    assert_int_equal(cfg_option(&cfg, CFG_OPT_METRICS_PORT, "70000", err, sizeof(err)), -1);
    assert_int_equal(cfg_option(&cfg, CFG_OPT_MQTT, "http://x:1", err, sizeof(err)), -1);
    assert_int_equal(cfg_option(&cfg, CFG_OPT_LOG_LEVEL, "loud", err, sizeof(err)), -1);
    assert_int_equal(cfg_option(&cfg, 'q', "x", err, sizeof(err)), 0);
    cfg_release(&cfg);
}

static void mqtt_url_parts(void **state)
{
    (void)state;
    struct cfg_mqtt_url u;
    char err[256];
    assert_int_equal(cfg_parse_mqtt_url("mqtts://bridge:s3cr:et@broker.example:18883", &u, err, sizeof(err)), 0);
    assert_true(u.tls);
    assert_string_equal(u.host, "broker.example");
    assert_int_equal(u.port, 18883);
    assert_string_equal(u.user, "bridge");
    assert_string_equal(u.pass, "s3cr:et");
    assert_int_equal(cfg_parse_mqtt_url("mqtt://10.1.2.3", &u, err, sizeof(err)), 0);
    assert_int_equal(u.port, 1883);
    assert_int_equal(cfg_parse_mqtt_url("mqtt://host:0", &u, err, sizeof(err)), -1);
}

static void host_port_takes_first_of_list(void **state)
{
    (void)state;
    char host[64];
    int port;
    assert_int_equal(cfg_parse_host_port("127.0.0.1:19092,127.0.0.1:19094", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 19092);
    assert_int_equal(cfg_parse_host_port("nohost", host, sizeof(host), &port), -1);
    assert_int_equal(cfg_parse_host_port("h:99999", host, sizeof(host), &port), -1);
}

static void check_mask(const char *in, const char *want)
{
    char out[CFG_MASKED_MAX];
    assert_string_equal(cfg_mask_secrets(in, out, sizeof(out)), want);
}

static void conninfo_passwords_are_masked(void **state)
{
    (void)state;
    check_mask("host=127.0.0.1 port=5432 dbname=fleetsync user=fleetsync password=s3cret",
               "host=127.0.0.1 port=5432 dbname=fleetsync user=fleetsync password=***");
    check_mask("password=s3cret host=db", "password=*** host=db");
    check_mask("host=db PASSWORD = s3cret user=u", "host=db PASSWORD = *** user=u");
    check_mask("host=db password='with space and \\' quote' user=u", "host=db password=*** user=u");
    check_mask("host=db password='' user=u", "host=db password=*** user=u");
    check_mask("host=db password=", "host=db password=***");
    /* a key that only ends in "password" is another key */
    check_mask("host=db xpassword=visible", "host=db xpassword=visible");
}

static void url_passwords_are_masked(void **state)
{
    (void)state;
    check_mask("mqtt://TRK-1:s3cret@127.0.0.1:1883", "mqtt://TRK-1:***@127.0.0.1:1883");
    check_mask("mqtts://u:p@ss/w?rd@broker:8883", "mqtts://u:***@broker:8883");
    check_mask("postgresql://fleetsync:s3cret@db:5432/fleetsync?sslmode=require",
               "postgresql://fleetsync:***@db:5432/fleetsync?sslmode=require");
    check_mask("postgresql://u@db/fleetsync?password=s3cret&sslmode=require",
               "postgresql://u@db/fleetsync?password=***&sslmode=require");
    check_mask("Kafka 127.0.0.1:9092 -> PostgreSQL postgres://u:pw@h/d (group g)",
               "Kafka 127.0.0.1:9092 -> PostgreSQL postgres://u:***@h/d (group g)");
}

static void text_without_secrets_is_unchanged(void **state)
{
    (void)state;
    check_mask("mqtt://127.0.0.1:18830", "mqtt://127.0.0.1:18830");
    check_mask("mqtt://user@127.0.0.1:18830", "mqtt://user@127.0.0.1:18830");
    check_mask(CFG_DEFAULT_PG, CFG_DEFAULT_PG);
    check_mask("", "");
    char out[8];
    assert_string_equal(cfg_mask_secrets(NULL, out, sizeof(out)), "");
}

static void masking_is_bounded(void **state)
{
    (void)state;
    char out[12];
    assert_string_equal(cfg_mask_secrets("password=s3cret host=db", out, sizeof(out)), "password=**");
    assert_string_equal(cfg_mask_secrets("mqtt://u:s3cret@h", out, 10), "mqtt://u:");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_match_design),
        cmocka_unit_test(environment_overrides_defaults),
        cmocka_unit_test(flag_overrides_environment),
        cmocka_unit_test(kafka_properties_are_collected),
        cmocka_unit_test(bad_values_are_usage_errors),
        cmocka_unit_test(mqtt_url_parts),
        cmocka_unit_test(host_port_takes_first_of_list),
        cmocka_unit_test(conninfo_passwords_are_masked),
        cmocka_unit_test(url_passwords_are_masked),
        cmocka_unit_test(text_without_secrets_is_unchanged),
        cmocka_unit_test(masking_is_bounded),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
