/*
 * mqttauth.c - MQTT identities of the embedded broker (see mqttauth.h).
 */
#include "core/mqttauth.h"

#include "core/hex.h"
#include "core/randbytes.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

int mqa_acl_read(const char *path, int (*add)(void *ctx, int is_bridge, const char *name), void *ctx, char *err,
                 size_t err_size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : (snprintf(err, err_size, "cannot read %s: %s", path, strerror(errno)), -1);
    char line[512], name[MQA_ID_MAX + 2] = "";
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        char word[MQA_ID_MAX + 2];
        _Static_assert(MQA_ID_MAX + 1 == 65, "the sscanf width below is MQA_ID_MAX + 1");
        if (sscanf(line, "user %65s", word) == 1) {
            snprintf(name, sizeof(name), "%s", mqa_valid_id(word) && strcmp(word, MQA_BRIDGE_USER) ? word : "");
            continue;
        }
        if (!*name || strncmp(line, "topic ", 6) != 0)
            continue;
        rc = add(ctx, strcmp(line, "topic read fleet/#\n") == 0, name);
        *name = '\0';
    }
    fclose(f);
    return rc;
}

/* ---- checking logins ----------------------------------------------------- */

struct mqa_store {
    char passwd[4096], acl[4096];
    struct stat passwd_st, acl_st;
    char *text;     /* the password file, each line's '\n' made '\0' */
    uint32_t *line; /* offsets of its account lines, sorted by account */
    size_t n;
    char **gateways; /* sorted */
    size_t n_gateways;
};

static const struct mqa_store *sort_store;

/* The account name of the line at offset a, up to its ':'. */
static int cmp_user(const char *x, const char *line)
{
    const char *colon = strchr(line, ':');
    size_t n = colon ? (size_t)(colon - line) : strlen(line);
    int c = strncmp(x, line, n);
    return c ? c : (x[n] != '\0');
}

static int cmp_lines(const void *a, const void *b)
{
    const char *x = sort_store->text + *(const uint32_t *)a, *y = sort_store->text + *(const uint32_t *)b;
    const char *cx = strchr(x, ':'), *cy = strchr(y, ':');
    size_t nx = (size_t)(cx - x), ny = (size_t)(cy - y);
    int c = memcmp(x, y, nx < ny ? nx : ny);
    return c ? c : (nx > ny) - (nx < ny);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int gateway_add(void *ctx, int is_bridge, const char *name)
{
    struct mqa_store *s = ctx;
    if (is_bridge)
        return 0;
    char **g = realloc(s->gateways, (s->n_gateways + 1) * sizeof(*g));
    if (!g)
        return -1;
    s->gateways = g;
    if (!(g[s->n_gateways] = strdup(name)))
        return -1;
    s->n_gateways++;
    return 0;
}

static void store_release(struct mqa_store *s)
{
    free(s->text);
    free(s->line);
    for (size_t i = 0; i < s->n_gateways; i++)
        free(s->gateways[i]);
    free(s->gateways);
    s->text = NULL;
    s->line = NULL;
    s->gateways = NULL;
    s->n = s->n_gateways = 0;
}

/* Reads both files into s (released first by the caller).  0 or -1. */
static int store_load(struct mqa_store *s, char *err, size_t err_size)
{
    FILE *f = fopen(s->passwd, "r");
    if (!f) {
        snprintf(err, err_size, "cannot read %s: %s", s->passwd, strerror(errno));
        return -1;
    }
    int rc = -1;
    if (fstat(fileno(f), &s->passwd_st) != 0 || s->passwd_st.st_size >= (off_t)UINT32_MAX) {
        snprintf(err, err_size, "cannot read %s: %s", s->passwd, strerror(errno ? errno : EFBIG));
        goto out;
    }
    size_t size = (size_t)s->passwd_st.st_size;
    s->text = malloc(size + 1);
    s->line = malloc((size / 8 + 1) * sizeof(*s->line)); /* a line is longer than 8 bytes */
    if (!s->text || !s->line || fread(s->text, 1, size, f) != size) {
        snprintf(err, err_size, "cannot read %s: %s", s->passwd, s->text && s->line ? "short read" : "out of memory");
        goto out;
    }
    s->text[size] = '\0';
    for (size_t at = 0; at < size;) {
        char *nl = memchr(s->text + at, '\n', size - at);
        size_t end = nl ? (size_t)(nl - s->text) : size;
        s->text[end] = '\0';
        if (strchr(s->text + at, ':') && end - at > 8)
            s->line[s->n++] = (uint32_t)at;
        at = end + 1;
    }
    sort_store = s;
    qsort(s->line, s->n, sizeof(*s->line), cmp_lines);
    if (stat(s->acl, &s->acl_st) != 0)
        memset(&s->acl_st, 0, sizeof(s->acl_st));
    if (mqa_acl_read(s->acl, gateway_add, s, err, err_size) != 0) {
        if (!*err)
            snprintf(err, err_size, "out of memory reading %s", s->acl);
        goto out;
    }
    qsort(s->gateways, s->n_gateways, sizeof(*s->gateways), cmp_str);
    rc = 0;
out:
    fclose(f);
    return rc;
}

int mqa_store_open(const char *data_dir, struct mqa_store **out, char *err, size_t err_size)
{
    *out = NULL;
    struct mqa_store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    mqa_path(data_dir, "mqtt/passwd", s->passwd, sizeof(s->passwd));
    mqa_path(data_dir, "mqtt/acl", s->acl, sizeof(s->acl));
    if (access(s->passwd, F_OK) != 0 && errno == ENOENT) {
        free(s);
        return 1;
    }
    *err = '\0';
    if (store_load(s, err, err_size) != 0) {
        mqa_store_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_size == b->st_size && a->st_ino == b->st_ino && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

int mqa_store_refresh(struct mqa_store *s, char *err, size_t err_size)
{
    struct stat p, a;
    if (stat(s->passwd, &p) != 0)
        return 0; /* being replaced: keep what we have */
    if (stat(s->acl, &a) != 0)
        memset(&a, 0, sizeof(a));
    if (same_file(&p, &s->passwd_st) && same_file(&a, &s->acl_st))
        return 0;
    struct mqa_store fresh;
    memset(&fresh, 0, sizeof(fresh));
    memcpy(fresh.passwd, s->passwd, sizeof(s->passwd));
    memcpy(fresh.acl, s->acl, sizeof(s->acl));
    *err = '\0';
    if (store_load(&fresh, err, err_size) != 0) {
        store_release(&fresh);
        return -1;
    }
    store_release(s);
    *s = fresh;
    return 0;
}

static const char *find_line(const struct mqa_store *s, const char *user)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_user(user, s->text + s->line[mid]);
        if (!c)
            return s->text + s->line[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

int mqa_store_login(const struct mqa_store *s, const char *user, const void *pass, size_t pass_len)
{
    char pw[256], want[MQA_HASH_LINE_MAX], line[MQA_HASH_LINE_MAX];
    const char *l = s && mqa_valid_id(user) ? find_line(s, user) : NULL;
    if (!l || pass_len >= sizeof(pw) || memchr(pass, '\0', pass_len))
        return 0;
    memcpy(pw, pass, pass_len);
    pw[pass_len] = '\0';
    /* user:$7$<iterations>$<salt b64>$<hash b64> */
    int iterations = 0, at = 0;
    const char *fields = l + strlen(user) + 1;
    if (sscanf(fields, "$7$%d$%n", &iterations, &at) != 1 || !at || iterations < 1 || iterations > 1000000)
        return 0;
    const char *salt64 = fields + at, *dollar = strchr(salt64, '$');
    unsigned char salt[32];
    if (!dollar || dollar - salt64 != 16 || EVP_DecodeBlock(salt, (const unsigned char *)salt64, 16) != 12)
        return 0;
    int n = snprintf(line, sizeof(line), "%s\n", l);
    int m = mqa_hash_line(user, pw, salt, iterations, want, sizeof(want));
    memset(pw, 0, sizeof(pw));
    return n > 0 && m == n && CRYPTO_memcmp(want, line, (size_t)n) == 0;
}

/* 1 if topic is prefix, or prefix then '/' and anything ("prefix/#"). */
static int under(const char *topic, size_t n, const char *prefix, size_t pn)
{
    return n >= pn && memcmp(topic, prefix, pn) == 0 && (n == pn || topic[pn] == '/');
}

int mqa_store_may_publish(const struct mqa_store *s, const char *user, const char *topic, size_t topic_len)
{
    char own[64 + MQA_ID_MAX];
    int k = snprintf(own, sizeof(own), "fleet/trucks/%s", user);
    if (k > 0 && (size_t)k < sizeof(own) && under(topic, topic_len, own, (size_t)k))
        return 1; /* pattern write fleet/trucks/%u/# */
    if (!s || !bsearch(&user, s->gateways, s->n_gateways, sizeof(*s->gateways), cmp_str))
        return 0;
    /* fleet/trucks/+/#: '+' takes any one level, even an empty one */
    if (topic_len >= 13 && memcmp(topic, "fleet/trucks/", 13) == 0)
        return 1;
    k = snprintf(own, sizeof(own), "fleet/gateways/%s", user);
    return k > 0 && (size_t)k < sizeof(own) && under(topic, topic_len, own, (size_t)k);
}

size_t mqa_store_accounts(const struct mqa_store *s)
{
    return s ? s->n : 0;
}

void mqa_store_free(struct mqa_store *s)
{
    if (!s)
        return;
    store_release(s);
    free(s);
}
