/* core/kafka: creating a client hands over its conf either way. */
#include "core/kafka.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kafka_new_takes_the_conf_when_librdkafka_refuses_it),
        cmocka_unit_test(kafka_new_gives_a_handle),
    };
    return cmocka_run_group_tests_name("kafka", tests, NULL, NULL);
}
