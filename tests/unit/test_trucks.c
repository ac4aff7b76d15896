/* MQTT identities: password derivation, Mosquitto's hash lines, the ACL text,
 * names, and which broker counts as the data dir's own. */
#include "core/mqttauth.h"
#include "admin/trucks.h"

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

/* Expected values computed independently with Python's hmac and hashlib. */
static void password_is_hmac_sha256_of_the_id(void **state)
{
    (void)state;
    struct mqa_secret s;
    memset(s.key, 7, sizeof(s.key));
    char pass[MQA_PASS_CHARS + 1];
    assert_int_equal(mqa_derive(&s, "TRK-000001", pass, sizeof(pass)), 0);
    assert_string_equal(pass, "5c4424300915fb655ff6320ea80063d0");
    char other[MQA_PASS_CHARS + 1];
    assert_int_equal(mqa_derive(&s, "TRK-000002", other, sizeof(other)), 0);
    assert_string_not_equal(pass, other);
    s.key[0] ^= 1; /* another data dir's secret: another password */
    assert_int_equal(mqa_derive(&s, "TRK-000001", other, sizeof(other)), 0);
    assert_string_not_equal(pass, other);
    assert_int_equal(mqa_derive(&s, "TRK-000001", other, MQA_PASS_CHARS), -1); /* no room for the NUL */
}

static void hash_line_is_mosquitto_pbkdf2_sha512(void **state)
{
    (void)state;
    unsigned char salt[MQA_SALT_BYTES];
    for (int i = 0; i < MQA_SALT_BYTES; i++)
        salt[i] = (unsigned char)i;
    char line[MQA_HASH_LINE_MAX];
    int n = mqa_hash_line("TRK-000001", "secret-pass", salt, 101, line, sizeof(line));
    const char *want = "TRK-000001:$7$101$AAECAwQFBgcICQoL$FW8OJ28XCWY/zRAdq6ZPOJg5fYsX61LI/ch4bLrkbvgX3a1/"
                       "Ut2e9PYAvFVQCA+38APS0ri9InjC3fk80eYi+g==\n";
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(line, want);
    /* too small a buffer, a bad user name: refused, not cut */
    assert_int_equal(mqa_hash_line("TRK-000001", "secret-pass", salt, 101, line, 40), -1);
    assert_int_equal(mqa_hash_line("a:b", "x", salt, 101, line, sizeof(line)), -1);
    assert_int_equal(mqa_hash_line("fleet/#", "x", salt, 101, line, sizeof(line)), -1);
}

static void ids_exclude_wildcards_and_separators(void **state)
{
    (void)state;
    assert_true(mqa_valid_id("TRK-000001"));
    assert_true(mqa_valid_id("gw_1.eu"));
    assert_false(mqa_valid_id(""));
    assert_false(mqa_valid_id("a+b"));
    assert_false(mqa_valid_id("a#"));
    assert_false(mqa_valid_id("a/b"));
    assert_false(mqa_valid_id("a:b"));
    assert_false(mqa_valid_id("a b"));
    assert_false(mqa_valid_id("%u"));
    char long_id[MQA_ID_MAX + 2];
    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[MQA_ID_MAX + 1] = '\0';
    assert_false(mqa_valid_id(long_id));
    long_id[MQA_ID_MAX] = '\0';
    assert_true(mqa_valid_id(long_id));
}

/* A truck's account is its telemetry truck_id: an account telemetry would
 * refuse (every reading to the DLQ) cannot be made. */
static void account_ids_are_at_most_a_telemetry_truck_id(void **state)
{
    (void)state;
    assert_int_equal(MQA_ID_MAX, TM_TRUCK_ID_MAX);
    char id[TM_TRUCK_ID_MAX + 2];
    memset(id, 'T', sizeof(id) - 1);
    id[TM_TRUCK_ID_MAX] = '\0';
    assert_true(mqa_valid_id(id));
    id[TM_TRUCK_ID_MAX] = 'T';
    id[TM_TRUCK_ID_MAX + 1] = '\0';
    assert_false(mqa_valid_id(id));
}

static void acl_grants_only_what_the_contract_says(void **state)
{
    (void)state;
    const char *gws[] = {"TRK-GW0001", "TRK-GW0002"};
    const char *brs[] = {"bridge-b"};
    size_t need = mqa_acl_text(NULL, 0, gws, 2, brs, 1);
    char *text = malloc(need + 1);
    assert_non_null(text);
    assert_int_equal(mqa_acl_text(text, need + 1, gws, 2, brs, 1), need);
    assert_int_equal(strlen(text), need);
    /* trucks: one pattern line, write only */
    assert_non_null(strstr(text, "\npattern write fleet/trucks/%u/#\n"));
    assert_null(strstr(text, "pattern read"));
    assert_null(strstr(text, "pattern readwrite"));
    /* the bridge reads fleet/# */
    assert_non_null(strstr(text, "\nuser fleetsync-bridge\ntopic read fleet/#\n"));
    /* so does each further bridge instance's account */
    assert_non_null(strstr(text, "\nuser bridge-b\ntopic read fleet/#\n"));
    /* each gateway: any truck, its own presence */
    assert_non_null(
        strstr(text, "\nuser TRK-GW0001\ntopic write fleet/trucks/+/#\ntopic write fleet/gateways/TRK-GW0001/#\n"));
    assert_non_null(
        strstr(text, "\nuser TRK-GW0002\ntopic write fleet/trucks/+/#\ntopic write fleet/gateways/TRK-GW0002/#\n"));
    /* no topic line before the first user line (it would be anonymous's) */
    char *first_topic = strstr(text, "\ntopic "), *first_user = strstr(text, "\nuser ");
    assert_true(first_user && first_topic && first_user < first_topic);
    /* a short buffer gets a NUL-terminated prefix and the full length */
    char small[32];
    assert_int_equal(mqa_acl_text(small, sizeof(small), gws, 2, brs, 1), need);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_memory_equal(small, text, sizeof(small) - 1);
    free(text);
}

static void password_file_lines_name_their_account(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(trucks_line_user("TRK-1:$7$101$a$b\n", buf, sizeof(buf)), 5);
    assert_string_equal(buf, "TRK-1");
    assert_int_equal(trucks_line_user("# comment\n", buf, sizeof(buf)), -1);
    assert_int_equal(trucks_line_user(":nouser\n", buf, sizeof(buf)), -1);
    assert_int_equal(trucks_line_user("a/b:x\n", buf, sizeof(buf)), -1);
}

static void own_broker_is_loopback_on_the_recorded_port(void **state)
{
    (void)state;
    char dir[] = "/tmp/fs-test-trucks.XXXXXX", path[256], err[256], pass[MQA_PASS_CHARS + 1];
    assert_non_null(mkdtemp(dir));
    struct cfg_mqtt_url url = {.tls = 0, .host = "127.0.0.1", .port = 28830};
    assert_false(mqa_is_own_broker(dir, &url)); /* no run/ports */
    snprintf(path, sizeof(path), "%s/run", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/run/ports", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("mqtt=28830 kafka=29092 controller=29093 pg=25432\n", f);
    fclose(f);
    assert_true(mqa_is_own_broker(dir, &url));
    url.port = 28831;
    assert_false(mqa_is_own_broker(dir, &url));
    url.port = 28830;
    snprintf(url.host, sizeof(url.host), "10.0.0.1");
    assert_false(mqa_is_own_broker(dir, &url));
    snprintf(url.host, sizeof(url.host), "localhost");
    /* no store: anonymous as before */
    assert_int_equal(mqa_client_password(dir, &url, "TRK-000001", pass, sizeof(pass), err, sizeof(err)), 0);
    struct mqa_secret s1, s2;
    assert_int_equal(mqa_secret_ensure(dir, &s1, err, sizeof(err)), 0);
    assert_int_equal(mqa_secret_ensure(dir, &s2, err, sizeof(err)), 0); /* the same secret the second time */
    assert_memory_equal(s1.key, s2.key, sizeof(s1.key));
    snprintf(path, sizeof(path), "%s/mqtt/secret", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char want[MQA_PASS_CHARS + 1];
    assert_int_equal(mqa_derive(&s1, "TRK-000001", want, sizeof(want)), 0);
    assert_int_equal(mqa_client_password(dir, &url, "TRK-000001", pass, sizeof(pass), err, sizeof(err)), 1);
    assert_string_equal(pass, want);
    /* a user in the URL wins */
    snprintf(url.user, sizeof(url.user), "someone");
    assert_int_equal(mqa_client_password(dir, &url, "TRK-000001", pass, sizeof(pass), err, sizeof(err)), 0);
    url.user[0] = '\0';
    /* mqtts:// counts only on the recorded TLS port */
    url.tls = 1;
    url.port = 28883;
    assert_false(mqa_is_own_broker(dir, &url));
    snprintf(path, sizeof(path), "%s/run/mqtt-tls", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("mqtts=28883\n", f);
    fclose(f);
    assert_true(mqa_is_own_broker(dir, &url));
    assert_int_equal(mqa_tls_port(dir), 28883);
    assert_null(mqa_default_cafile(dir, &url, path, sizeof(path))); /* no ca.crt yet */
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* The ingest's login check: the password file's PBKDF2 lines and the ACL's
 * rules, as the broker applies them, reloaded when `trucks add` rewrites. */
static void store_checks_logins_and_acl_as_the_broker(void **state)
{
    (void)state;
    char dir[] = "/tmp/fs-test-store.XXXXXX", path[256], err[256], line[MQA_HASH_LINE_MAX], acl[2048];
    assert_non_null(mkdtemp(dir));
    struct mqa_store *st = NULL;
    assert_int_equal(mqa_store_open(dir, &st, err, sizeof(err)), 1); /* no store: anonymous */
    snprintf(path, sizeof(path), "%s/mqtt", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    static const unsigned char salt[MQA_SALT_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    snprintf(path, sizeof(path), "%s/mqtt/passwd", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    const char *users[] = {"TRK-2", "GW-1", "TRK-1"};
    for (int i = 0; i < 3; i++) {
        assert_true(mqa_hash_line(users[i], users[i][0] == 'G' ? "gwpass" : "trkpass", salt, 101, line, sizeof(line)) >
                    0);
        fputs(line, f);
    }
    fclose(f);
    const char *gws[] = {"GW-1"};
    mqa_acl_text(acl, sizeof(acl), gws, 1, NULL, 0);
    snprintf(path, sizeof(path), "%s/mqtt/acl", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(acl, f);
    fclose(f);
    assert_int_equal(mqa_store_open(dir, &st, err, sizeof(err)), 0);
    assert_int_equal(mqa_store_accounts(st), 3);
    assert_true(mqa_store_login(st, "TRK-1", "trkpass", 7));
    assert_true(mqa_store_login(st, "TRK-2", "trkpass", 7));
    assert_true(mqa_store_login(st, "GW-1", "gwpass", 6));
    assert_false(mqa_store_login(st, "TRK-1", "trkpas", 6));
    assert_false(mqa_store_login(st, "TRK-1", "trkpass\0", 8));
    assert_false(mqa_store_login(st, "TRK-3", "trkpass", 7));
    assert_false(mqa_store_login(st, "TRK", "trkpass", 7));
    const char *t = "fleet/trucks/TRK-1/telemetry";
    assert_true(mqa_store_may_publish(st, "TRK-1", t, strlen(t)));
    assert_false(mqa_store_may_publish(st, "TRK-2", t, strlen(t)));
    assert_false(mqa_store_may_publish(st, "TRK-", t, strlen(t)));
    assert_true(mqa_store_may_publish(st, "GW-1", t, strlen(t)));
    t = "fleet/gateways/GW-1/status";
    assert_true(mqa_store_may_publish(st, "GW-1", t, strlen(t)));
    assert_false(mqa_store_may_publish(st, "TRK-1", t, strlen(t)));
    t = "fleet/gateways/GW-10/status";
    assert_false(mqa_store_may_publish(st, "GW-1", t, strlen(t)));
    t = "other/topic";
    assert_false(mqa_store_may_publish(st, "GW-1", t, strlen(t)));
    /* a removed account is refused once the file changes */
    snprintf(path, sizeof(path), "%s/mqtt/passwd", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_true(mqa_hash_line("TRK-2", "trkpass", salt, 101, line, sizeof(line)) > 0);
    fputs(line, f);
    fputs(line, f); /* another size than before */
    fclose(f);
    assert_int_equal(mqa_store_refresh(st, err, sizeof(err)), 0);
    assert_false(mqa_store_login(st, "TRK-1", "trkpass", 7));
    assert_true(mqa_store_login(st, "TRK-2", "trkpass", 7));
    mqa_store_free(st);
    unlink(path);
    snprintf(path, sizeof(path), "%s/mqtt/acl", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/mqtt", dir);
    rmdir(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(password_is_hmac_sha256_of_the_id),
        cmocka_unit_test(hash_line_is_mosquitto_pbkdf2_sha512),
        cmocka_unit_test(ids_exclude_wildcards_and_separators),
        cmocka_unit_test(account_ids_are_at_most_a_telemetry_truck_id),
        cmocka_unit_test(acl_grants_only_what_the_contract_says),
        cmocka_unit_test(password_file_lines_name_their_account),
        cmocka_unit_test(own_broker_is_loopback_on_the_recorded_port),
        cmocka_unit_test(store_checks_logins_and_acl_as_the_broker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
