/*
 * auth.h - who may watch the fleet: the dashboard's credentials file,
 * password and token checks, signed session cookies, the Origin and Host
 * checks and per-address rate limits (docs/dashboard.md "Access").
 *
 * The credentials file (--auth-file) has one entry per line, "NAME:SECRET";
 * blank lines and lines starting with '#' are skipped:
 *   NAME:$pbkdf2-sha256$ITER$SALT$HASH   a login (form or HTTP Basic): PBKDF2-
 *                                        HMAC-SHA256, salt and hash in hex;
 *   NAME:$token-sha256$HASH              an API token (Authorization: Bearer),
 *                                        SHA-256 of the token in hex (tokens
 *                                        are random, at least 32 characters);
 *   NAME:password                        the old plain-text form: accepted, the
 *                                        caller warns (ds_auth.plain counts them).
 * `fleetsync dashboard --hash-password NAME` / `--hash-token NAME` print lines.
 *
 * Sessions are stateless: "EXPIRY_MS.ENTRY.NONCE.MAC", MAC = HMAC-SHA256 over
 * the rest with a key drawn at start (so every session ends when the process
 * does).  Secrets are compared in constant time.
 *
 * Threads: after ds_auth_load() the object is read-only except for the Basic
 * cache (its own lock): any thread may check.  struct ds_rate is not locked:
 * the caller serializes.
 */
#ifndef FS_DASHBOARD_AUTH_H
#define FS_DASHBOARD_AUTH_H

#include <pthread.h>
#include <stddef.h>

#define DS_AUTH_MAX_ENTRIES 64
#define DS_AUTH_NAME_MAX 63
#define DS_AUTH_SECRET_MAX 255 /* a password or token, in bytes */
#define DS_AUTH_ITER 600000    /* PBKDF2 iterations written by --hash-password */
#define DS_AUTH_ITER_MIN 10000
#define DS_AUTH_TOKEN_MIN 32   /* characters of an API token */
#define DS_AUTH_PASSWORD_MIN 8 /* characters --hash-password accepts */
#define DS_AUTH_COOKIE_MAX 160 /* bytes of a session cookie value */
#define DS_AUTH_CACHE 16       /* Basic headers remembered after a good check */

enum ds_cred_kind { DS_CRED_PBKDF2 = 1, DS_CRED_TOKEN, DS_CRED_PLAIN };

struct ds_cred {
    char name[DS_AUTH_NAME_MAX + 1];
    enum ds_cred_kind kind;
    unsigned iter;
    unsigned char salt[64];
    size_t salt_len;
    unsigned char hash[32];
    char plain[DS_AUTH_SECRET_MAX + 1]; /* DS_CRED_PLAIN only */
};

struct ds_auth {
    struct ds_cred cred[DS_AUTH_MAX_ENTRIES];
    int n, plain, logins, tokens;
    unsigned char key[32]; /* session MAC key */
    long long ttl_ms;      /* session lifetime */
    pthread_mutex_t cache_lock;
    unsigned char cache[DS_AUTH_CACHE][32]; /* SHA-256 of good Basic headers */
    int cache_n, cache_next;
};

/* Parses one line (without its newline).  Returns 0 and fills *c, 1 for a
 * blank or comment line, -1 with a reason in err. */
int ds_auth_parse_line(const char *line, struct ds_cred *c, char *err, size_t err_size);

/* An empty object with a fresh random session key and ttl_ms; then
 * ds_auth_load() reads a file.  Returns 0, or -1 with a reason in err
 * (a file with no entry is an error).  ds_auth_release() frees nothing but
 * the lock and wipes the secrets. */
int ds_auth_init(struct ds_auth *a, long long ttl_ms, char *err, size_t err_size);
int ds_auth_load(struct ds_auth *a, const char *path, char *err, size_t err_size);
void ds_auth_release(struct ds_auth *a);

/* "$pbkdf2-sha256$ITER$SALT$HASH" for a password (random salt), or
 * "$token-sha256$HASH" for a token, into out.  Returns 0, or -1 (out too
 * small, randomness unavailable). */
int ds_auth_hash_password(const char *pw, size_t len, unsigned iter, char *out, size_t out_size);
int ds_auth_hash_token(const char *tok, size_t len, char *out, size_t out_size);

/* The index of the login entry whose name and password match, or -1.  The
 * cost is one KDF run whether or not the name exists. */
int ds_auth_check_password(const struct ds_auth *a, const char *name, const char *pw, size_t pw_len);
/* The index of the token entry matching, or -1. */
int ds_auth_check_token(const struct ds_auth *a, const char *tok, size_t len);
/* An "Authorization" header value: "Bearer TOKEN" or "Basic BASE64"
 * (a login entry; good headers are cached so a script's requests cost one
 * KDF run).  Returns the entry index, or -1. */
int ds_auth_check_header(struct ds_auth *a, const char *value);

/* A session for entry idx valid until now_ms + ttl_ms, as a cookie value.
 * Returns 0, or -1. */
int ds_auth_session_new(const struct ds_auth *a, int idx, long long now_ms, char *out, size_t out_size);
/* 0 and the entry index in *idx for a valid session; -1 forged or malformed;
 * -2 signed but expired. */
int ds_auth_session_check(const struct ds_auth *a, const char *value, size_t len, long long now_ms, int *idx);

/* The value of cookie `name` in a Cookie header, copied into out (NUL-
 * terminated).  Returns its length, or -1 if absent or longer than out. */
int ds_auth_cookie(const char *header, const char *name, char *out, size_t out_size);

/* 1 when a browser's Origin header names the host the request was sent to
 * (the Host header): "http://HOST" or "https://HOST", ports included,
 * case-insensitive.  A missing Origin (not a browser) is the caller's call. */
int ds_auth_origin_ok(const char *origin, const char *host);
/* 1 when a Host header names a loopback address ("127.x.y.z", "localhost",
 * "[::1]", with or without ":PORT"). */
int ds_auth_host_loopback(const char *host);

/* 1 when a Host header may be answered (DNS rebinding: a foreign site's
 * name made to resolve to this server must not reach it): a loopback
 * name or address, one of names (case-insensitive, the port ignored), or,
 * with any_ip, any IPv4 or [IPv6] address (an address is no name another
 * site controls).  A malformed Host is not allowed. */
int ds_auth_host_allowed(const char *host, const char *const *names, int n_names, int any_ip);

/* Token buckets per client address, in a fixed table (the stalest of a
 * probe run is replaced when it is full, so memory is bounded whatever the
 * number of addresses). */
#define DS_RATE_SLOTS 1024
#define DS_RATE_PROBE 8
struct ds_rate_slot {
    char addr[48];
    double tokens;
    long long last_ms;
};
struct ds_rate {
    double per_sec, burst;
    struct ds_rate_slot slot[DS_RATE_SLOTS];
};
void ds_rate_init(struct ds_rate *r, double per_sec, double burst);
/* Takes one token for addr at now_ms: 1 if there was one, 0 if not. */
int ds_rate_take(struct ds_rate *r, const char *addr, long long now_ms);
/* 1 if addr has a token at now_ms (none is taken). */
int ds_rate_peek(struct ds_rate *r, const char *addr, long long now_ms);
/* Gives back a token taken for addr (at most up to the burst).  A check
 * that costs a token takes it before it runs and refunds it when it
 * succeeds: then concurrent checks can never run more than the tokens
 * there are. */
void ds_rate_refund(struct ds_rate *r, const char *addr, long long now_ms);

#endif
