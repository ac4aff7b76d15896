/*
 * kafkaauth.c - Kafka principals of a secure stack (see kafkaauth.h).
 */
#include "core/kafkaauth.h"

#include "core/hex.h"
#include "core/randbytes.h"
#include "core/log.h"
#include "core/topics.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const ka_users[] = {KA_USER_ADMIN,     KA_USER_BRIDGE,  KA_USER_SIM,
                                KA_USER_DETECT,    KA_USER_HISTORY, KA_USER_BILLING,
                                KA_USER_DASHBOARD, KA_USER_NOTIFY,  NULL};

static void secret_path(const char *data_dir, char *buf, size_t size)
{
    if (snprintf(buf, size, "%s/kafka-auth/secret", data_dir) >= (int)size)
        buf[0] = '\0';
}

int ka_is_secure(const char *data_dir)
{
    char path[4096];
    secret_path(data_dir, path, sizeof(path));
    return path[0] && access(path, F_OK) == 0;
}

/* Reads the secret: 0, 1 when there is none, -1 + err. */
static int secret_load(const char *data_dir, unsigned char key[KA_SECRET_BYTES], char *err, size_t err_size)
{
    char path[4096], text[2 * KA_SECRET_BYTES + 8];
    secret_path(data_dir, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 1;
        snprintf(err, err_size, "cannot read %s: %s (the Kafka credentials of this secure data dir)", path,
                 strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n < 2 * KA_SECRET_BYTES || hex_decode(text, 2 * KA_SECRET_BYTES, key, KA_SECRET_BYTES) != KA_SECRET_BYTES) {
        snprintf(err, err_size, "%s is not %d hex digits", path, 2 * KA_SECRET_BYTES);
        return -1;
    }
    return 0;
}

int ka_secret_ensure(const char *data_dir, char *err, size_t err_size)
{
    unsigned char key[KA_SECRET_BYTES];
    int rc = secret_load(data_dir, key, err, err_size);
    if (rc <= 0) {
        memset(key, 0, sizeof(key));
        return rc;
    }
    char dir[4096], path[4096], text[2 * KA_SECRET_BYTES + 2];
    snprintf(dir, sizeof(dir), "%s/kafka-auth", data_dir);
    secret_path(data_dir, path, sizeof(path));
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    chmod(dir, 0700);
    if (randbytes_fill(key, sizeof(key), err, err_size) != 0)
        return -1;
    hex_encode(key, KA_SECRET_BYTES, text);
    memset(key, 0, sizeof(key));
    text[2 * KA_SECRET_BYTES] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, err_size, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    int ok = write(fd, text, 2 * KA_SECRET_BYTES + 1) == 2 * KA_SECRET_BYTES + 1 && fsync(fd) == 0;
    memset(text, 0, sizeof(text));
    if (close(fd) != 0 || !ok) {
        unlink(path);
        snprintf(err, err_size, "cannot write %s", path);
        return -1;
    }
    return 0;
}

int ka_password(const char *data_dir, const char *user, char *pass, size_t pass_size, char *err, size_t err_size)
{
    unsigned char key[KA_SECRET_BYTES], mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (pass_size < KA_PASS_CHARS + 1 || !user) {
        snprintf(err, err_size, "no Kafka principal to find a password for");
        return -1;
    }
    int rc = secret_load(data_dir, key, err, err_size);
    if (rc != 0)
        return rc;
    rc = HMAC(EVP_sha256(), key, sizeof(key), (const unsigned char *)user, strlen(user), mac, &len) &&
                 len * 2 >= KA_PASS_CHARS
             ? 0
             : -1;
    memset(key, 0, sizeof(key));
    if (rc == 0)
        hex_encode(mac, KA_PASS_CHARS / 2, pass);
    else
        snprintf(err, err_size, "cannot derive the Kafka password of %s", user);
    memset(mac, 0, sizeof(mac));
    return rc;
}

int ka_conf_set(rd_kafka_conf_t *conf, const char *data_dir, const char *user, char *err, size_t err_size)
{
    char pass[KA_PASS_CHARS + 1];
    if (!ka_is_secure(data_dir))
        return 0;
    if (!user) {
        snprintf(err, err_size, "the Kafka of %s is secure (SASL) and this command has no principal", data_dir);
        return -1;
    }
    int rc = ka_password(data_dir, user, pass, sizeof(pass), err, err_size);
    if (rc > 0)
        return 0;
    if (rc < 0)
        return -1;
    static int said; /* once per process: a command makes several clients */
    if (!said++)
        log_info("logging in to Kafka as %s (SASL/%s, credentials of %s/kafka-auth/)", user, KA_MECHANISM, data_dir);
    rc = rd_kafka_conf_set(conf, "security.protocol", "SASL_PLAINTEXT", err, err_size) != RD_KAFKA_CONF_OK ||
                 rd_kafka_conf_set(conf, "sasl.mechanisms", KA_MECHANISM, err, err_size) != RD_KAFKA_CONF_OK ||
                 rd_kafka_conf_set(conf, "sasl.username", user, err, err_size) != RD_KAFKA_CONF_OK ||
                 rd_kafka_conf_set(conf, "sasl.password", pass, err, err_size) != RD_KAFKA_CONF_OK
             ? -1
             : 0;
    memset(pass, 0, sizeof(pass));
    return rc;
}

/* One grant of the table in kafkaauth.h. */
struct ka_grant {
    const char *user;
    rd_kafka_ResourceType_t type;
    const char *name; /* topic without prefix, or "*" for every group */
    rd_kafka_AclOperation_t op;
};

static const struct ka_grant ka_grants[] = {
    {KA_USER_BRIDGE, RD_KAFKA_RESOURCE_TOPIC, TOPIC_TELEMETRY, RD_KAFKA_ACL_OPERATION_WRITE},
    {KA_USER_BRIDGE, RD_KAFKA_RESOURCE_TOPIC, TOPIC_STATUS, RD_KAFKA_ACL_OPERATION_WRITE},
    {KA_USER_BRIDGE, RD_KAFKA_RESOURCE_TOPIC, TOPIC_DLQ, RD_KAFKA_ACL_OPERATION_WRITE},
    {KA_USER_SIM, RD_KAFKA_RESOURCE_TOPIC, TOPIC_TELEMETRY, RD_KAFKA_ACL_OPERATION_WRITE},
    {KA_USER_DETECT, RD_KAFKA_RESOURCE_TOPIC, TOPIC_TELEMETRY, RD_KAFKA_ACL_OPERATION_READ},
    {KA_USER_DETECT, RD_KAFKA_RESOURCE_TOPIC, TOPIC_ALERTS, RD_KAFKA_ACL_OPERATION_WRITE},
    {KA_USER_DETECT, RD_KAFKA_RESOURCE_GROUP, "*", RD_KAFKA_ACL_OPERATION_READ},
    {KA_USER_HISTORY, RD_KAFKA_RESOURCE_TOPIC, TOPIC_TELEMETRY, RD_KAFKA_ACL_OPERATION_READ},
    {KA_USER_HISTORY, RD_KAFKA_RESOURCE_TOPIC, TOPIC_ALERTS, RD_KAFKA_ACL_OPERATION_READ},
    {KA_USER_HISTORY, RD_KAFKA_RESOURCE_TOPIC, TOPIC_DLQ,
     RD_KAFKA_ACL_OPERATION_WRITE}, /* records PostgreSQL refuses */
    {KA_USER_HISTORY, RD_KAFKA_RESOURCE_GROUP, "*", RD_KAFKA_ACL_OPERATION_READ},
    {KA_USER_BILLING, RD_KAFKA_RESOURCE_TOPIC, TOPIC_TELEMETRY, RD_KAFKA_ACL_OPERATION_READ},
    {KA_USER_BILLING, RD_KAFKA_RESOURCE_TOPIC, TOPIC_DLQ,
     RD_KAFKA_ACL_OPERATION_WRITE}, /* records PostgreSQL refuses */
    {KA_USER_BILLING, RD_KAFKA_RESOURCE_GROUP, "*", RD_KAFKA_ACL_OPERATION_READ},
    {KA_USER_DASHBOARD, RD_KAFKA_RESOURCE_TOPIC, TOPIC_TELEMETRY, RD_KAFKA_ACL_OPERATION_READ},
    {KA_USER_DASHBOARD, RD_KAFKA_RESOURCE_TOPIC, TOPIC_STATUS, RD_KAFKA_ACL_OPERATION_READ},
    {KA_USER_DASHBOARD, RD_KAFKA_RESOURCE_TOPIC, TOPIC_ALERTS, RD_KAFKA_ACL_OPERATION_READ},
    {KA_USER_DASHBOARD, RD_KAFKA_RESOURCE_GROUP, "*", RD_KAFKA_ACL_OPERATION_READ},
    {KA_USER_NOTIFY, RD_KAFKA_RESOURCE_TOPIC, TOPIC_ALERTS, RD_KAFKA_ACL_OPERATION_READ},
    {KA_USER_NOTIFY, RD_KAFKA_RESOURCE_TOPIC, TOPIC_ALERTS_DLQ, RD_KAFKA_ACL_OPERATION_WRITE},
    {KA_USER_NOTIFY, RD_KAFKA_RESOURCE_GROUP, "*", RD_KAFKA_ACL_OPERATION_READ},
};

int ka_acl_bindings(const struct fs_config *cfg, rd_kafka_AclBinding_t **out, int max, char *err, size_t err_size)
{
    int n = 0;
    for (size_t i = 0; i < sizeof(ka_grants) / sizeof(ka_grants[0]); i++) {
        const struct ka_grant *g = &ka_grants[i];
        char principal[64], name[512];
        if (n >= max) {
            snprintf(err, err_size, "more ACLs than room for them (%d)", max);
            goto fail;
        }
        snprintf(principal, sizeof(principal), "User:%s", g->user);
        if (g->type == RD_KAFKA_RESOURCE_TOPIC)
            cfg_topic(cfg, g->name, name, sizeof(name));
        else
            snprintf(name, sizeof(name), "%s", g->name);
        out[n] = rd_kafka_AclBinding_new(g->type, name, RD_KAFKA_RESOURCE_PATTERN_LITERAL, principal, "*", g->op,
                                         RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, err, err_size);
        if (!out[n])
            goto fail;
        n++;
    }
    return n;
fail:
    while (n > 0)
        rd_kafka_AclBinding_destroy(out[--n]);
    return -1;
}
