/* Kafka principals of a secure data dir: password derivation, what makes a
 * data dir secure, the client settings, and the ACL table. */
#include "core/kafkaauth.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

static char *make_dir(void)
{
    char tmpl[] = "/tmp/fleetsync-ka-unit.XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static void remove_dir(char *d)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
    free(d);
}

/* A secret of 32 bytes of 7, as the e2e helper (openssl) and Python's hmac
 * compute it: the first 32 hex digits of HMAC-SHA256(secret, principal). */
static void write_secret_of_sevens(const char *d)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/kafka-auth", d);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/kafka-auth/secret", d);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < KA_SECRET_BYTES; i++)
        fputs("07", f);
    fputs("\n", f);
    assert_int_equal(fclose(f), 0);
}

static void password_is_hmac_sha256_of_the_principal(void **state)
{
    (void)state;
    char *d = make_dir(), pass[KA_PASS_CHARS + 1], err[256];
    write_secret_of_sevens(d);
    assert_int_equal(ka_password(d, KA_USER_ADMIN, pass, sizeof(pass), err, sizeof(err)), 0);
    assert_string_equal(pass, "4bbd166116d640f7cc9cd55fb4753170"); /* Python hmac */
    assert_int_equal(ka_password(d, KA_USER_BRIDGE, pass, sizeof(pass), err, sizeof(err)), 0);
    assert_string_equal(pass, "0d5ac36e79cea82793a0c4740c44937d");
    assert_int_equal(ka_password(d, KA_USER_BRIDGE, pass, KA_PASS_CHARS, err, sizeof(err)), -1); /* no room for NUL */
    assert_int_equal(ka_password(d, NULL, pass, sizeof(pass), err, sizeof(err)), -1);
    remove_dir(d);
}

static void a_data_dir_without_secret_is_not_secure(void **state)
{
    (void)state;
    char *d = make_dir(), pass[KA_PASS_CHARS + 1], err[256];
    assert_int_equal(ka_is_secure(d), 0);
    assert_int_equal(ka_password(d, KA_USER_ADMIN, pass, sizeof(pass), err, sizeof(err)), 1);
    /* nothing set on the client, even without a principal */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(ka_conf_set(conf, d, NULL, err, sizeof(err)), 0);
    char v[64];
    size_t n = sizeof(v);
    assert_int_equal(rd_kafka_conf_get(conf, "security.protocol", v, &n), RD_KAFKA_CONF_OK);
    assert_string_equal(v, "plaintext");
    rd_kafka_conf_destroy(conf);
    remove_dir(d);
}

static void ensure_makes_one_private_secret_and_keeps_it(void **state)
{
    (void)state;
    char *d = make_dir(), path[512], err[256], p1[KA_PASS_CHARS + 1], p2[KA_PASS_CHARS + 1];
    struct stat st;
    assert_int_equal(ka_secret_ensure(d, err, sizeof(err)), 0);
    assert_int_equal(ka_is_secure(d), 1);
    snprintf(path, sizeof(path), "%s/kafka-auth/secret", d);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/kafka-auth", d);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(ka_password(d, KA_USER_DETECT, p1, sizeof(p1), err, sizeof(err)), 0);
    assert_int_equal(ka_secret_ensure(d, err, sizeof(err)), 0); /* a second start keeps it */
    assert_int_equal(ka_password(d, KA_USER_DETECT, p2, sizeof(p2), err, sizeof(err)), 0);
    assert_string_equal(p1, p2);
    remove_dir(d);
}

static void a_malformed_secret_is_an_error(void **state)
{
    (void)state;
    char *d = make_dir(), path[512], err[256] = "", pass[KA_PASS_CHARS + 1];
    snprintf(path, sizeof(path), "%s/kafka-auth", d);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/kafka-auth/secret", d);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not hex\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(ka_password(d, KA_USER_ADMIN, pass, sizeof(pass), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "hex digits"));
    remove_dir(d);
}

static void secure_client_logs_in_as_its_principal(void **state)
{
    (void)state;
    char *d = make_dir(), err[256], v[128];
    size_t n;
    write_secret_of_sevens(d);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(ka_conf_set(conf, d, KA_USER_BRIDGE, err, sizeof(err)), 0);
    n = sizeof(v);
    assert_int_equal(rd_kafka_conf_get(conf, "security.protocol", v, &n), RD_KAFKA_CONF_OK);
    assert_string_equal(v, "sasl_plaintext");
    n = sizeof(v);
    assert_int_equal(rd_kafka_conf_get(conf, "sasl.mechanisms", v, &n), RD_KAFKA_CONF_OK);
    assert_string_equal(v, "PLAIN");
    n = sizeof(v);
    assert_int_equal(rd_kafka_conf_get(conf, "sasl.username", v, &n), RD_KAFKA_CONF_OK);
    assert_string_equal(v, "fleetsync-bridge");
    n = sizeof(v);
    assert_int_equal(rd_kafka_conf_get(conf, "sasl.password", v, &n), RD_KAFKA_CONF_OK);
    assert_string_equal(v, "0d5ac36e79cea82793a0c4740c44937d");
    /* a secure data dir and a command without a principal: refused, not anonymous */
    assert_int_equal(ka_conf_set(conf, d, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no principal"));
    rd_kafka_conf_destroy(conf);
    remove_dir(d);
}

/* Finds the binding (type, name, principal, op) among b[0..n). */
static int has_acl(rd_kafka_AclBinding_t **b, int n, rd_kafka_ResourceType_t type, const char *name,
                   const char *principal, rd_kafka_AclOperation_t op)
{
    for (int i = 0; i < n; i++)
        if (rd_kafka_AclBinding_restype(b[i]) == type && strcmp(rd_kafka_AclBinding_name(b[i]), name) == 0 &&
            strcmp(rd_kafka_AclBinding_principal(b[i]), principal) == 0 && rd_kafka_AclBinding_operation(b[i]) == op &&
            rd_kafka_AclBinding_permission_type(b[i]) == RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW &&
            rd_kafka_AclBinding_resource_pattern_type(b[i]) == RD_KAFKA_RESOURCE_PATTERN_LITERAL)
            return 1;
    return 0;
}

static void acls_grant_telemetry_to_the_bridge_and_alerts_to_detect_only(void **state)
{
    (void)state;
    struct fs_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.topic_prefix = "t1-";
    rd_kafka_AclBinding_t *b[64];
    char err[256];
    int n = ka_acl_bindings(&cfg, b, 64, err, sizeof(err));
    assert_true(n > 0);
    const rd_kafka_ResourceType_t T = RD_KAFKA_RESOURCE_TOPIC;
    const rd_kafka_AclOperation_t W = RD_KAFKA_ACL_OPERATION_WRITE, R = RD_KAFKA_ACL_OPERATION_READ;
    assert_true(has_acl(b, n, T, "t1-truck-telemetry", "User:fleetsync-bridge", W));
    assert_true(has_acl(b, n, T, "t1-truck-telemetry", "User:fleetsync-sim", W));
    assert_true(has_acl(b, n, T, "t1-truck-alerts", "User:fleetsync-detect", W));
    assert_true(has_acl(b, n, T, "t1-truck-telemetry", "User:fleetsync-dashboard", R));
    assert_true(has_acl(b, n, RD_KAFKA_RESOURCE_GROUP, "*", "User:fleetsync-history", R));
    assert_true(has_acl(b, n, T, "t1-truck-telemetry-dlq", "User:fleetsync-history", W));
    assert_true(has_acl(b, n, T, "t1-truck-telemetry-dlq", "User:fleetsync-billing", W));
    assert_true(has_acl(b, n, T, "t1-truck-alerts", "User:fleetsync-notify", R));
    assert_true(has_acl(b, n, T, "t1-truck-alerts-dlq", "User:fleetsync-notify", W));
    /* who writes what: telemetry the bridge and sim only, alerts detect only */
    for (int i = 0; i < n; i++) {
        if (rd_kafka_AclBinding_operation(b[i]) != W)
            continue;
        const char *who = rd_kafka_AclBinding_principal(b[i]), *what = rd_kafka_AclBinding_name(b[i]);
        if (strcmp(what, "t1-truck-telemetry") == 0)
            assert_true(strcmp(who, "User:fleetsync-bridge") == 0 || strcmp(who, "User:fleetsync-sim") == 0);
        else if (strcmp(what, "t1-truck-alerts") == 0)
            assert_string_equal(who, "User:fleetsync-detect");
        else if (strcmp(what, "t1-truck-alerts-dlq") == 0) /* notify's dead letters */
            assert_string_equal(who, "User:fleetsync-notify");
        else if (strcmp(what, "t1-truck-telemetry-dlq") == 0) /* the bridge's and the sinks' dead letters */
            assert_true(strcmp(who, "User:fleetsync-bridge") == 0 || strcmp(who, "User:fleetsync-history") == 0 ||
                        strcmp(who, "User:fleetsync-billing") == 0);
        else
            assert_string_equal(who, "User:fleetsync-bridge");
    }
    for (int i = 0; i < n; i++)
        rd_kafka_AclBinding_destroy(b[i]);
    assert_int_equal(ka_acl_bindings(&cfg, b, 3, err, sizeof(err)), -1); /* no room: an error, nothing leaked */
}

/* fleetsync-notify gets what notify does and nothing more: read
 * truck-alerts, read (join, commit) a consumer group, write
 * truck-alerts-dlq. */
static void acls_grant_notify_exactly_alerts_its_group_and_dead_letters(void **state)
{
    (void)state;
    struct fs_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.topic_prefix = "t1-";
    rd_kafka_AclBinding_t *b[64];
    char err[256];
    int n = ka_acl_bindings(&cfg, b, 64, err, sizeof(err)), mine = 0;
    assert_true(n > 0);
    for (int i = 0; i < n; i++)
        if (strcmp(rd_kafka_AclBinding_principal(b[i]), "User:fleetsync-notify") == 0)
            mine++;
    assert_int_equal(mine, 3);
    assert_true(has_acl(b, n, RD_KAFKA_RESOURCE_TOPIC, "t1-truck-alerts", "User:fleetsync-notify",
                        RD_KAFKA_ACL_OPERATION_READ));
    assert_true(has_acl(b, n, RD_KAFKA_RESOURCE_GROUP, "*", "User:fleetsync-notify", RD_KAFKA_ACL_OPERATION_READ));
    assert_true(has_acl(b, n, RD_KAFKA_RESOURCE_TOPIC, "t1-truck-alerts-dlq", "User:fleetsync-notify",
                        RD_KAFKA_ACL_OPERATION_WRITE));
    for (int i = 0; i < n; i++)
        rd_kafka_AclBinding_destroy(b[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(password_is_hmac_sha256_of_the_principal),
        cmocka_unit_test(a_data_dir_without_secret_is_not_secure),
        cmocka_unit_test(ensure_makes_one_private_secret_and_keeps_it),
        cmocka_unit_test(a_malformed_secret_is_an_error),
        cmocka_unit_test(secure_client_logs_in_as_its_principal),
        cmocka_unit_test(acls_grant_telemetry_to_the_bridge_and_alerts_to_detect_only),
        cmocka_unit_test(acls_grant_notify_exactly_alerts_its_group_and_dead_letters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
