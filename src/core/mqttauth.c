/*
 * mqttauth.c - MQTT identities of the embedded broker (see mqttauth.h).
 */
#include "core/mqttauth.h"

#include "core/hex.h"
#include "core/randbytes.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *mqa_path(const char *data_dir, const char *rel, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/%s", data_dir, rel);
    if (n < 0 || (size_t)n >= size)
        buf[0] = '\0';
    return buf;
}

int mqa_valid_id(const char *id)
{
    return id && tm_valid_id(id, strlen(id));
}

int mqa_derive(const struct mqa_secret *s, const char *user, char *out, size_t size)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (size < MQA_PASS_CHARS + 1 || !user)
        return -1;
    if (!HMAC(EVP_sha256(), s->key, sizeof(s->key), (const unsigned char *)user, strlen(user), mac, &len) ||
        len * 2 < MQA_PASS_CHARS)
        return -1;
    hex_encode(mac, MQA_PASS_CHARS / 2, out);
    return 0;
}

int mqa_secret_load(const char *data_dir, struct mqa_secret *s, char *err, size_t err_size)
{
    char path[4096], text[2 * MQA_SECRET_BYTES + 8];
    mqa_path(data_dir, "mqtt/secret", path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 1;
        snprintf(err, err_size, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n < 2 * MQA_SECRET_BYTES) {
        snprintf(err, err_size, "%s is truncated (want %d hex digits)", path, 2 * MQA_SECRET_BYTES);
        return -1;
    }
    if (hex_decode(text, 2 * MQA_SECRET_BYTES, s->key, sizeof(s->key)) != MQA_SECRET_BYTES) {
        snprintf(err, err_size, "%s is not %d hex digits", path, 2 * MQA_SECRET_BYTES);
        return -1;
    }
    return 0;
}

int mqa_secret_ensure(const char *data_dir, struct mqa_secret *s, char *err, size_t err_size)
{
    int rc = mqa_secret_load(data_dir, s, err, err_size);
    if (rc <= 0)
        return rc;
    char dir[4096], path[4096], tmp[4200], text[2 * MQA_SECRET_BYTES + 2];
    mqa_path(data_dir, "mqtt", dir, sizeof(dir));
    if (mkdir(data_dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create %s: %s", data_dir, strerror(errno));
        return -1;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    if (randbytes_fill(s->key, sizeof(s->key), err, err_size) != 0)
        return -1;
    hex_encode(s->key, MQA_SECRET_BYTES, text);
    text[2 * MQA_SECRET_BYTES] = '\n';
    mqa_path(data_dir, "mqtt/secret", path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, err_size, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    ssize_t w = write(fd, text, 2 * MQA_SECRET_BYTES + 1);
    int ok = w == 2 * MQA_SECRET_BYTES + 1 && fsync(fd) == 0;
    close(fd);
    /* link() rather than rename(): two concurrent first `trucks add` must not
     * each install a secret of their own. */
    if (ok && link(tmp, path) != 0) {
        unlink(tmp);
        if (errno == EEXIST)
            return mqa_secret_load(data_dir, s, err, err_size) == 0 ? 0 : -1;
        snprintf(err, err_size, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    unlink(tmp);
    if (!ok) {
        snprintf(err, err_size, "cannot write %s", tmp);
        return -1;
    }
    return 0;
}

int mqa_hash_line(const char *user, const char *pass, const unsigned char salt[MQA_SALT_BYTES], int iterations,
                  char *out, size_t size)
{
    unsigned char hash[64];
    unsigned char salt64[MQA_SALT_BYTES * 2], hash64[sizeof(hash) * 2];
    if (!mqa_valid_id(user) || !pass || iterations < 1)
        return -1;
    if (PKCS5_PBKDF2_HMAC(pass, (int)strlen(pass), salt, MQA_SALT_BYTES, iterations, EVP_sha512(), sizeof(hash),
                          hash) != 1)
        return -1;
    EVP_EncodeBlock(salt64, salt, MQA_SALT_BYTES);
    EVP_EncodeBlock(hash64, hash, sizeof(hash));
    int n = snprintf(out, size, "%s:$7$%d$%s$%s\n", user, iterations, (char *)salt64, (char *)hash64);
    return n < 0 || (size_t)n >= size ? -1 : n;
}

/* Appends to a bounded buffer, counting what the whole text needs. */
struct sbuf {
    char *p;
    size_t size, len;
};

static void sb_put(struct sbuf *b, const char *s1, const char *s2, const char *s3)
{
    const char *parts[3] = {s1, s2, s3};
    for (int i = 0; i < 3; i++) {
        if (!parts[i])
            continue;
        size_t n = strlen(parts[i]);
        if (b->len < b->size) {
            size_t room = b->size - b->len - 1, k = n < room ? n : room;
            memcpy(b->p + b->len, parts[i], k);
            b->p[b->len + k] = '\0';
        }
        b->len += n;
    }
}

size_t mqa_acl_text(char *buf, size_t size, const char *const *gateways, size_t n_gateways, const char *const *bridges,
                    size_t n_bridges)
{
    struct sbuf b = {buf, size, 0};
    if (size)
        buf[0] = '\0';
    sb_put(&b,
           "# Generated by fleetsync trucks; changes are overwritten.\n"
           "# Nothing is allowed unless a line below allows it.  Every account (a truck's\n"
           "# username is its id) may write its own subtree and read nothing.\n"
           "pattern write fleet/trucks/%u/#\n"
           "\n# The bridge reads everything under fleet/.\n"
           "user " MQA_BRIDGE_USER "\n"
           "topic read fleet/#\n",
           NULL, NULL);
    for (size_t i = 0; i < n_bridges; i++) {
        sb_put(&b, "\n# bridge instance: reads everything under fleet/\nuser ", bridges[i], "\n");
        sb_put(&b, "topic read fleet/#\n", NULL, NULL);
    }
    for (size_t i = 0; i < n_gateways; i++) {
        sb_put(&b, "\n# gateway: any truck's topics and its own presence\nuser ", gateways[i], "\n");
        sb_put(&b, "topic write fleet/trucks/+/#\n", NULL, NULL);
        sb_put(&b, "topic write fleet/gateways/", gateways[i], "/#\n");
    }
    return b.len;
}

/* The addresses of the data dir's own broker, which listens on 127.0.0.1
 * only: narrower than core/netaddr.h's loopback on purpose, so that no
 * password goes to whatever listens on another 127.x address. */
static int is_loopback(const char *host)
{
    return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "[::1]") == 0;
}

int mqa_tls_port(const char *data_dir)
{
    char path[4096];
    int port = 0;
    FILE *f = fopen(mqa_path(data_dir, "run/mqtt-tls", path, sizeof(path)), "r");
    if (!f)
        return 0;
    if (fscanf(f, "mqtts=%d", &port) != 1)
        port = 0;
    fclose(f);
    return port;
}

int mqa_is_own_broker(const char *data_dir, const struct cfg_mqtt_url *url)
{
    if (!data_dir || !url || !is_loopback(url->host))
        return 0;
    if (url->tls)
        return url->port > 0 && url->port == mqa_tls_port(data_dir);
    char path[4096];
    int port = 0;
    FILE *f = fopen(mqa_path(data_dir, "run/ports", path, sizeof(path)), "r");
    if (!f)
        return 0;
    if (fscanf(f, "mqtt=%d", &port) != 1)
        port = 0;
    fclose(f);
    return port > 0 && port == url->port;
}

int mqa_client_password(const char *data_dir, const struct cfg_mqtt_url *url, const char *user, char *pass,
                        size_t pass_size, char *err, size_t err_size)
{
    struct mqa_secret s;
    if (*url->user || !mqa_is_own_broker(data_dir, url))
        return 0;
    int rc = mqa_secret_load(data_dir, &s, err, err_size);
    if (rc != 0)
        return rc > 0 ? 0 : -1;
    rc = mqa_derive(&s, user, pass, pass_size);
    memset(&s, 0, sizeof(s));
    if (rc != 0) {
        snprintf(err, err_size, "cannot derive the password of %s", user);
        return -1;
    }
    return 1;
}

const char *mqa_default_cafile(const char *data_dir, const struct cfg_mqtt_url *url, char *buf, size_t size)
{
    if (!url->tls || !mqa_is_own_broker(data_dir, url))
        return NULL;
    mqa_path(data_dir, "tls/ca.crt", buf, size);
    return *buf && access(buf, R_OK) == 0 ? buf : NULL;
}
