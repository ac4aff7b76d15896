/*
 * auth.c - credentials, sessions, Origin/Host checks and rate limits (see
 * auth.h).  Cryptography is OpenSSL's libcrypto: PBKDF2-HMAC-SHA256 for
 * passwords, SHA-256 for tokens, HMAC-SHA256 for sessions, RAND_bytes for
 * salts, nonces and the session key, CRYPTO_memcmp for every comparison of a
 * secret.
 */
#include "dashboard/auth.h"

#include "core/hex.h"
#include "core/netaddr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PW_PREFIX "$pbkdf2-sha256$"
#define TOK_PREFIX "$token-sha256$"

static void sha256(const void *p, size_t n, unsigned char out[32])
{
    unsigned int len = 32;
    EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

static void hmac256(const unsigned char *key, size_t key_len, const void *p, size_t n, unsigned char out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, (int)key_len, p, n, out, &len);
}

static int pbkdf2(const char *pw, size_t len, const unsigned char *salt, size_t salt_len, unsigned iter,
                  unsigned char out[32])
{
    return PKCS5_PBKDF2_HMAC(pw, (int)len, salt, (int)salt_len, (int)iter, EVP_sha256(), 32, out) == 1 ? 0 : -1;
}

static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n > DS_AUTH_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._@-", s[i]))
            return 0;
    return 1;
}

/* ---- the credentials file ------------------------------------------------ */

int ds_auth_parse_line(const char *line, struct ds_cred *c, char *err, size_t err_size)
{
    memset(c, 0, sizeof(*c));
    while (*line == ' ' || *line == '\t')
        line++;
    if (!*line || *line == '#')
        return 1;
    const char *colon = strchr(line, ':');
    if (!colon || !name_ok(line, (size_t)(colon - line))) {
        snprintf(err, err_size, "expected NAME:SECRET with a name of 1-%d characters [A-Za-z0-9._@-]",
                 DS_AUTH_NAME_MAX);
        return -1;
    }
    memcpy(c->name, line, (size_t)(colon - line));
    const char *s = colon + 1;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (strncmp(s, PW_PREFIX, strlen(PW_PREFIX)) == 0) {
        const char *p = s + strlen(PW_PREFIX), *end = s + n;
        char *e;
        errno = 0;
        unsigned long iter = strtoul(p, &e, 10);
        const char *salt = e + 1, *d2 = e < end && *e == '$' ? memchr(salt, '$', (size_t)(end - salt)) : NULL;
        int sl = d2 ? hex_decode(salt, (size_t)(d2 - salt), c->salt, sizeof(c->salt)) : -1;
        int hl = d2 ? hex_decode(d2 + 1, (size_t)(end - d2 - 1), c->hash, sizeof(c->hash)) : -1;
        if (errno || e == p || iter < DS_AUTH_ITER_MIN || iter > 10000000 || sl < 8 || hl != 32) {
            snprintf(err, err_size,
                     "a password hash is %sITERATIONS$SALT$HASH (iterations %d-10000000, hex salt of "
                     "8-64 bytes, hex SHA-256 hash): write it with fleetsync dashboard --hash-password NAME",
                     PW_PREFIX, DS_AUTH_ITER_MIN);
            return -1;
        }
        c->kind = DS_CRED_PBKDF2;
        c->iter = (unsigned)iter;
        c->salt_len = (size_t)sl;
        return 0;
    }
    if (strncmp(s, TOK_PREFIX, strlen(TOK_PREFIX)) == 0) {
        const char *p = s + strlen(TOK_PREFIX);
        if (hex_decode(p, n - strlen(TOK_PREFIX), c->hash, sizeof(c->hash)) != 32) {
            snprintf(err, err_size,
                     "a token hash is %sHASH (hex SHA-256): write it with fleetsync dashboard "
                     "--hash-token NAME",
                     TOK_PREFIX);
            return -1;
        }
        c->kind = DS_CRED_TOKEN;
        return 0;
    }
    if (s[0] == '$') {
        snprintf(err, err_size, "unknown hash scheme (known: %s, %s)", PW_PREFIX, TOK_PREFIX);
        return -1;
    }
    if (n == 0 || n > DS_AUTH_SECRET_MAX) {
        snprintf(err, err_size, "the password is empty or longer than %d bytes", DS_AUTH_SECRET_MAX);
        return -1;
    }
    memcpy(c->plain, s, n);
    c->kind = DS_CRED_PLAIN;
    return 0;
}

int ds_auth_init(struct ds_auth *a, long long ttl_ms, char *err, size_t err_size)
{
    memset(a, 0, sizeof(*a));
    a->ttl_ms = ttl_ms;
    pthread_mutex_init(&a->cache_lock, NULL);
    if (RAND_bytes(a->key, sizeof(a->key)) != 1) {
        snprintf(err, err_size, "no randomness for the session key");
        return -1;
    }
    return 0;
}

int ds_auth_load(struct ds_auth *a, const char *path, char *err, size_t err_size)
{
    char line[1024], why[300];
    int lineno = 0, rc = -1;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_size, "cannot read --auth-file %s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            snprintf(err, err_size, "--auth-file %s line %d: longer than %zu bytes", path, lineno, sizeof(line) - 2);
            goto out;
        }
        line[strcspn(line, "\r\n")] = '\0';
        struct ds_cred c;
        int r = ds_auth_parse_line(line, &c, why, sizeof(why));
        if (r == 1)
            continue;
        if (r < 0) {
            snprintf(err, err_size, "--auth-file %s line %d: %s", path, lineno, why);
            goto out;
        }
        if (a->n == DS_AUTH_MAX_ENTRIES) {
            snprintf(err, err_size, "--auth-file %s: more than %d entries", path, DS_AUTH_MAX_ENTRIES);
            goto out;
        }
        for (int i = 0; i < a->n; i++) {
            int same_kind = (a->cred[i].kind == DS_CRED_TOKEN) == (c.kind == DS_CRED_TOKEN);
            if (same_kind && strcmp(a->cred[i].name, c.name) == 0) {
                snprintf(err, err_size, "--auth-file %s line %d: %s is there twice", path, lineno, c.name);
                goto out;
            }
        }
        a->cred[a->n++] = c;
        if (c.kind == DS_CRED_PLAIN)
            a->plain++;
        if (c.kind == DS_CRED_TOKEN)
            a->tokens++;
        else
            a->logins++;
    }
    if (ferror(f)) {
        snprintf(err, err_size, "cannot read --auth-file %s: %s", path, strerror(errno));
        goto out;
    }
    if (a->n == 0) {
        snprintf(err, err_size, "--auth-file %s has no entry (NAME:HASH lines, see --hash-password)", path);
        goto out;
    }
    rc = 0;
out:
    OPENSSL_cleanse(line, sizeof(line));
    fclose(f);
    return rc;
}

void ds_auth_release(struct ds_auth *a)
{
    pthread_mutex_destroy(&a->cache_lock);
    OPENSSL_cleanse(a, sizeof(*a));
}

int ds_auth_hash_password(const char *pw, size_t len, unsigned iter, char *out, size_t out_size)
{
    unsigned char salt[16], hash[32];
    char salt_hex[33], hash_hex[65];
    if (RAND_bytes(salt, sizeof(salt)) != 1 || pbkdf2(pw, len, salt, sizeof(salt), iter, hash) != 0)
        return -1;
    hex_encode(salt, sizeof(salt), salt_hex);
    hex_encode(hash, sizeof(hash), hash_hex);
    int n = snprintf(out, out_size, PW_PREFIX "%u$%s$%s", iter, salt_hex, hash_hex);
    return n > 0 && (size_t)n < out_size ? 0 : -1;
}

int ds_auth_hash_token(const char *tok, size_t len, char *out, size_t out_size)
{
    unsigned char hash[32];
    char hash_hex[65];
    sha256(tok, len, hash);
    hex_encode(hash, sizeof(hash), hash_hex);
    int n = snprintf(out, out_size, TOK_PREFIX "%s", hash_hex);
    return n > 0 && (size_t)n < out_size ? 0 : -1;
}

/* ---- checks -------------------------------------------------------------- */

int ds_auth_check_password(const struct ds_auth *a, const char *name, const char *pw, size_t pw_len)
{
    int found = -1;
    for (int i = 0; i < a->n; i++)
        if (a->cred[i].kind != DS_CRED_TOKEN && strcmp(a->cred[i].name, name) == 0)
            found = i;
    if (pw_len > DS_AUTH_SECRET_MAX)
        return -1;
    unsigned char hash[32];
    if (found < 0 || a->cred[found].kind == DS_CRED_PBKDF2) {
        /* An unknown name costs the same KDF run as a known one. */
        static const unsigned char dummy_salt[16];
        const struct ds_cred *c = found >= 0 ? &a->cred[found] : NULL;
        if (pbkdf2(pw, pw_len, c ? c->salt : dummy_salt, c ? c->salt_len : sizeof(dummy_salt),
                   c ? c->iter : DS_AUTH_ITER, hash) != 0 ||
            !c)
            return -1;
        return CRYPTO_memcmp(hash, c->hash, 32) == 0 ? found : -1;
    }
    /* Plain text: compare digests, so the time does not depend on where the
     * strings differ, nor on their lengths. */
    unsigned char want[32];
    sha256(pw, pw_len, hash);
    sha256(a->cred[found].plain, strlen(a->cred[found].plain), want);
    return CRYPTO_memcmp(hash, want, 32) == 0 ? found : -1;
}

int ds_auth_check_token(const struct ds_auth *a, const char *tok, size_t len)
{
    unsigned char hash[32];
    int found = -1;
    sha256(tok, len, hash);
    for (int i = 0; i < a->n; i++)
        if (a->cred[i].kind == DS_CRED_TOKEN && CRYPTO_memcmp(hash, a->cred[i].hash, 32) == 0)
            found = i;
    return found;
}

/* Standard base64 of n bytes of s into out (at most max bytes).  Returns the
 * byte count, or -1. */
static int b64_decode(const char *s, size_t n, unsigned char *out, size_t max)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=') {
            pad++;
            continue;
        }
        const char *p = s[i] ? strchr(b64, s[i]) : NULL;
        if (!p || pad)
            return -1;
        acc = acc << 6 | (uint32_t)(p - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == max)
                return -1;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (pad > 2 || (n % 4) != 0)
        return -1;
    return (int)o;
}

int ds_auth_check_header(struct ds_auth *a, const char *value)
{
    size_t vlen = strlen(value);
    if (vlen > 1024)
        return -1;
    if (strncasecmp(value, "Bearer ", 7) == 0) {
        const char *t = value + 7;
        while (*t == ' ')
            t++;
        return ds_auth_check_token(a, t, strlen(t));
    }
    if (strncasecmp(value, "Basic ", 6) != 0)
        return -1;
    const char *b = value + 6;
    while (*b == ' ')
        b++;
    unsigned char digest[32], raw[DS_AUTH_NAME_MAX + DS_AUTH_SECRET_MAX + 4];
    char name[DS_AUTH_NAME_MAX + 1];
    int n = b64_decode(b, strlen(b), raw, sizeof(raw) - 1), idx = -1;
    if (n < 0)
        return -1;
    raw[n] = '\0';
    unsigned char *colon = memchr(raw, ':', (size_t)n);
    if (!colon || colon == raw || (size_t)(colon - raw) > DS_AUTH_NAME_MAX)
        goto out;
    memcpy(name, raw, (size_t)(colon - raw));
    name[colon - raw] = '\0';
    /* The cache holds HMAC(key, header) of good headers: a script's requests
     * after the first cost no KDF run. */
    hmac256(a->key, sizeof(a->key), b, strlen(b), digest);
    pthread_mutex_lock(&a->cache_lock);
    int hit = 0;
    for (int i = 0; i < a->cache_n; i++)
        hit |= CRYPTO_memcmp(digest, a->cache[i], 32) == 0;
    pthread_mutex_unlock(&a->cache_lock);
    if (hit) {
        for (int i = 0; i < a->n; i++)
            if (a->cred[i].kind != DS_CRED_TOKEN && strcmp(a->cred[i].name, name) == 0)
                idx = i;
        goto out;
    }
    idx = ds_auth_check_password(a, name, (const char *)colon + 1, (size_t)(raw + n - colon - 1));
    if (idx >= 0) {
        pthread_mutex_lock(&a->cache_lock);
        memcpy(a->cache[a->cache_next], digest, 32);
        a->cache_next = (a->cache_next + 1) % DS_AUTH_CACHE;
        if (a->cache_n < DS_AUTH_CACHE)
            a->cache_n++;
        pthread_mutex_unlock(&a->cache_lock);
    }
out:
    OPENSSL_cleanse(raw, sizeof(raw));
    return idx;
}

/* ---- sessions ------------------------------------------------------------ */

int ds_auth_session_new(const struct ds_auth *a, int idx, long long now_ms, char *out, size_t out_size)
{
    unsigned char nonce[16], mac[32];
    char nonce_hex[33], mac_hex[65], body[96];
    if (idx < 0 || idx >= a->n || RAND_bytes(nonce, sizeof(nonce)) != 1)
        return -1;
    hex_encode(nonce, sizeof(nonce), nonce_hex);
    int n = snprintf(body, sizeof(body), "%lld.%d.%s", now_ms + a->ttl_ms, idx, nonce_hex);
    hmac256(a->key, sizeof(a->key), body, (size_t)n, mac);
    hex_encode(mac, sizeof(mac), mac_hex);
    n = snprintf(out, out_size, "%s.%s", body, mac_hex);
    return n > 0 && (size_t)n < out_size ? 0 : -1;
}

int ds_auth_session_check(const struct ds_auth *a, const char *value, size_t len, long long now_ms, int *idx)
{
    unsigned char mac[32], want[32];
    if (len < 66 || len >= DS_AUTH_COOKIE_MAX || value[len - 65] != '.')
        return -1;
    size_t body_len = len - 65;
    if (hex_decode(value + body_len + 1, 64, want, sizeof(want)) != 32)
        return -1;
    hmac256(a->key, sizeof(a->key), value, body_len, mac);
    if (CRYPTO_memcmp(mac, want, 32) != 0)
        return -1;
    /* Signed by this process: the body is ours, "EXPIRY.IDX.NONCE". */
    char body[DS_AUTH_COOKIE_MAX];
    memcpy(body, value, body_len);
    body[body_len] = '\0';
    long long expiry;
    int i;
    if (sscanf(body, "%lld.%d.", &expiry, &i) != 2 || i < 0 || i >= a->n)
        return -1;
    if (now_ms >= expiry)
        return -2;
    *idx = i;
    return 0;
}

int ds_auth_cookie(const char *header, const char *name, char *out, size_t out_size)
{
    size_t nl = strlen(name);
    for (const char *p = header; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t vl = n - nl - 1;
            while (vl && p[nl + 1 + vl - 1] == ' ')
                vl--;
            if (vl + 1 > out_size)
                return -1;
            memcpy(out, p + nl + 1, vl);
            out[vl] = '\0';
            return (int)vl;
        }
        p = end;
    }
    return -1;
}

/* ---- Origin and Host ----------------------------------------------------- */

int ds_auth_origin_ok(const char *origin, const char *host)
{
    if (!origin || !host || !*host)
        return 0;
    const char *rest = strncasecmp(origin, "http://", 7) == 0    ? origin + 7
                       : strncasecmp(origin, "https://", 8) == 0 ? origin + 8
                                                                 : NULL;
    return rest && strcasecmp(rest, host) == 0;
}

int ds_auth_host_loopback(const char *host)
{
    char h[300];
    if (!host || strlen(host) >= sizeof(h))
        return 0;
    snprintf(h, sizeof(h), "%s", host);
    char *port = h[0] == '[' ? strchr(h, ']') : h;
    if (!port)
        return 0;
    port = strchr(port, ':');
    if (port) {
        if (!port[1] || strspn(port + 1, "0123456789") != strlen(port + 1))
            return 0;
        *port = '\0';
    }
    return netaddr_loopback(h);
}

/* The host part of a Host header ("name", "1.2.3.4", "[::1]") into out,
 * without the port.  Returns 0, or -1 for a malformed one. */
static int host_part(const char *host, char *out, size_t size)
{
    size_t n = strlen(host);
    const char *end = host + n;
    if (host[0] == '[') {
        const char *rb = strchr(host, ']');
        if (!rb)
            return -1;
        end = rb + 1;
    } else if (strchr(host, ':')) {
        end = strchr(host, ':');
    }
    if (*end == ':' && (!end[1] || strspn(end + 1, "0123456789") != strlen(end + 1)))
        return -1;
    if (*end && *end != ':')
        return -1;
    n = (size_t)(end - host);
    if (n == 0 || n >= size)
        return -1;
    memcpy(out, host, n);
    out[n] = '\0';
    if (n > 1 && out[n - 1] == '.')
        out[n - 1] = '\0'; /* "example.com." names example.com */
    return 0;
}

int ds_auth_host_allowed(const char *host, const char *const *names, int n_names, int any_ip)
{
    char h[300];
    if (!host || host_part(host, h, sizeof(h)) != 0)
        return 0;
    if (ds_auth_host_loopback(host))
        return 1;
    size_t hl = strlen(h);
    for (int i = 0; i < n_names; i++) {
        if (!names[i])
            continue;
        if (strcasecmp(h, names[i]) == 0)
            return 1;
        /* an IPv6 --listen is named without brackets, its Host with them */
        if (h[0] == '[' && strlen(names[i]) == hl - 2 && strncasecmp(h + 1, names[i], hl - 2) == 0)
            return 1;
    }
    if (!any_ip)
        return 0;
    /* An address is no name a foreign site can point at us. */
    unsigned char a[16];
    if (h[0] == '[') {
        h[strlen(h) - 1] = '\0';
        return inet_pton(AF_INET6, h + 1, a) == 1;
    }
    return inet_pton(AF_INET, h, a) == 1;
}

/* ---- rate limits --------------------------------------------------------- */

void ds_rate_init(struct ds_rate *r, double per_sec, double burst)
{
    memset(r, 0, sizeof(*r));
    r->per_sec = per_sec;
    r->burst = burst;
}

/* addr's slot (found or taken over), its tokens refilled to now_ms. */
static struct ds_rate_slot *rate_slot(struct ds_rate *r, const char *addr, long long now_ms)
{
    uint32_t h = 2166136261u;
    for (const char *p = addr; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    struct ds_rate_slot *use = NULL, *stalest = NULL;
    for (int i = 0; i < DS_RATE_PROBE && !use; i++) {
        struct ds_rate_slot *s = &r->slot[(h + (uint32_t)i) % DS_RATE_SLOTS];
        if (s->addr[0] && strncmp(s->addr, addr, sizeof(s->addr) - 1) == 0)
            use = s;
        else if (!stalest || !s->addr[0] || (stalest->addr[0] && s->last_ms < stalest->last_ms))
            stalest = s;
    }
    if (!use) {
        use = stalest;
        snprintf(use->addr, sizeof(use->addr), "%s", addr);
        use->tokens = r->burst;
        use->last_ms = now_ms;
    }
    if (now_ms > use->last_ms) {
        use->tokens += (double)(now_ms - use->last_ms) / 1000.0 * r->per_sec;
        if (use->tokens > r->burst)
            use->tokens = r->burst;
    }
    use->last_ms = now_ms > use->last_ms ? now_ms : use->last_ms;
    return use;
}

int ds_rate_take(struct ds_rate *r, const char *addr, long long now_ms)
{
    struct ds_rate_slot *s = rate_slot(r, addr, now_ms);
    if (s->tokens < 1)
        return 0;
    s->tokens -= 1;
    return 1;
}

int ds_rate_peek(struct ds_rate *r, const char *addr, long long now_ms)
{
    return rate_slot(r, addr, now_ms)->tokens >= 1;
}

void ds_rate_refund(struct ds_rate *r, const char *addr, long long now_ms)
{
    struct ds_rate_slot *s = rate_slot(r, addr, now_ms);
    s->tokens = s->tokens + 1 > r->burst ? r->burst : s->tokens + 1;
}
