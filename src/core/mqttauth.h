/*
 * mqttauth.h - MQTT identities of the embedded broker (docs/design.md "MQTT
 * contract"), shared by `fleetsync trucks`, `services`, the simulator and
 * the bridge.
 *
 * The credentials store lives in the data dir D:
 *   D/mqtt/secret   32 random bytes (hex), mode 0600, created by `trucks add`
 *   D/mqtt/passwd   Mosquitto password file: one "user:$7$..." line per
 *                   account, PBKDF2-SHA512 as Mosquitto 2 hashes it
 *   D/mqtt/acl      Mosquitto ACL file (mqa_acl_text)
 * A truck's (or gateway's) password is derived from the secret and its id:
 * the first 32 hex digits of HMAC-SHA256(secret, id).  So the simulator and
 * the bridge, which share the data dir, compute any account's password
 * without a plaintext list; `fleetsync trucks add --print` shows them for
 * provisioning real devices.  The bridge's account is MQA_BRIDGE_USER.
 *
 * TLS (`services start --tls`): D/tls/ca.crt (the local CA), server.crt,
 * server.key; D/run/mqtt-tls holds "mqtts=PORT" while the broker has a TLS
 * listener.
 */
#ifndef FS_MQTTAUTH_H
#define FS_MQTTAUTH_H

#include "core/config.h"
#include "core/telemetry.h"

#include <stddef.h>

#define MQA_BRIDGE_USER "fleetsync-bridge"
#define MQA_SECRET_BYTES 32
#define MQA_PASS_CHARS 32 /* hex digits of a derived password */
/* The longest account name, without the NUL: a truck's account is its
 * telemetry truck_id, so the two limits are one (a longer account could log
 * in, and every reading of it would go to the DLQ). */
#define MQA_ID_MAX TM_TRUCK_ID_MAX
#define MQA_SALT_BYTES 12  /* as mosquitto_passwd */
#define MQA_ITERATIONS 101 /* as mosquitto_passwd */
#define MQA_HASH_LINE_MAX (MQA_ID_MAX + 160)

struct mqa_secret {
    unsigned char key[MQA_SECRET_BYTES];
};

/* Writes D/<rel> into buf; returns buf ("" if it does not fit). */
const char *mqa_path(const char *data_dir, const char *rel, char *buf, size_t size);

/* 1 if id may be an account: 1..MQA_ID_MAX characters of [A-Za-z0-9._-]
 * (no MQTT wildcard, no '/', no ':' of the password file). */
int mqa_valid_id(const char *id);

/* Derives the password of account user: MQA_PASS_CHARS hex digits + NUL
 * into out (size >= MQA_PASS_CHARS + 1).  Returns 0 or -1. */
int mqa_derive(const struct mqa_secret *s, const char *user, char *out, size_t size);

/* Loads D/mqtt/secret.  Returns 0, 1 when there is no store (no file), -1
 * with a reason in err when it exists but cannot be read or is malformed. */
int mqa_secret_load(const char *data_dir, struct mqa_secret *s, char *err, size_t err_size);

/* Loads the secret, creating D/mqtt/ and a new random secret (0600) when
 * there is none.  Returns 0 or -1 + err. */
int mqa_secret_ensure(const char *data_dir, struct mqa_secret *s, char *err, size_t err_size);

/* One password file line "user:$7$<iterations>$<salt b64>$<hash b64>\n" as
 * Mosquitto 2 checks it (PBKDF2-HMAC-SHA512, 64-byte hash).  Returns its
 * length, or -1 if it does not fit or hashing failed. */
int mqa_hash_line(const char *user, const char *pass, const unsigned char salt[MQA_SALT_BYTES], int iterations,
                  char *out, size_t size);

/* The ACL file's text: every account writes fleet/trucks/<its name>/# (one
 * pattern line), the bridge (MQA_BRIDGE_USER and each account of bridges,
 * the further bridge instances) reads fleet/#, each gateway writes
 * fleet/trucks/+/# and fleet/gateways/<its name>/#; nothing else is allowed.
 * snprintf-like: returns the length the whole text needs. */
size_t mqa_acl_text(char *buf, size_t size, const char *const *gateways, size_t n_gateways, const char *const *bridges,
                    size_t n_bridges);

/* Reads the gateway and bridge-instance accounts back from an ACL file
 * that mqa_acl_text wrote: each is a "user NAME" block, a bridge's first
 * rule "topic read fleet/#"; add(ctx, is_bridge, name) is called for each,
 * in order, and stops the reading when it returns non-zero (returned).  A
 * missing file has none (0).  -1 + err when it cannot be read. */
int mqa_acl_read(const char *path, int (*add)(void *ctx, int is_bridge, const char *name), void *ctx, char *err,
                 size_t err_size);

/* ---- checking logins: the rules the broker applies --------------------- */

/* The accounts of D/mqtt/ loaded for checking logins and publishes as
 * Mosquitto does with the password file and ACL that `fleetsync trucks`
 * writes (use_username_as_clientid: the account is the client id). */
struct mqa_store;

/* Loads D/mqtt/passwd and D/mqtt/acl.  Returns 0 with *out (free with
 * mqa_store_free), 1 when the data dir has no password file (the broker
 * then lets anyone in: *out is NULL), -1 + err when a file cannot be read.
 * Memory: the password file's size plus 8 bytes per account. */
int mqa_store_open(const char *data_dir, struct mqa_store **out, char *err, size_t err_size);

/* Loads the files again when either changed (size or mtime), as a broker
 * rereads them on SIGHUP after `trucks add`.  Returns 0 (reloaded or not
 * needed) or -1 + err, keeping the accounts it had. */
int mqa_store_refresh(struct mqa_store *s, char *err, size_t err_size);

/* 1 if user (NUL-terminated) has an account whose password is pass
 * (pass_len bytes), checked against its PBKDF2 line; else 0. */
int mqa_store_login(const struct mqa_store *s, const char *user, const void *pass, size_t pass_len);

/* 1 if the ACL lets account user publish to topic (topic_len bytes, not
 * NUL-terminated): a truck its own fleet/trucks/<user>/#, a gateway any
 * fleet/trucks/+/# and its own fleet/gateways/<user>/#; else 0. */
int mqa_store_may_publish(const struct mqa_store *s, const char *user, const char *topic, size_t topic_len);

/* Accounts in the password file. */
size_t mqa_store_accounts(const struct mqa_store *s);

void mqa_store_free(struct mqa_store *s);

/* 1 if url names this data dir's own broker: a loopback host and the port
 * of D/run/ports (mqtt=) or, for mqtts://, of D/run/mqtt-tls. */
int mqa_is_own_broker(const char *data_dir, const struct cfg_mqtt_url *url);

/* The password a client of the data dir's own broker uses as `user`, when
 * url carries no user of its own and the store exists.  Returns 1 with the
 * password in pass, 0 when credentials do not apply (anonymous, as before),
 * -1 + err when the store is unreadable. */
int mqa_client_password(const char *data_dir, const struct cfg_mqtt_url *url, const char *user, char *pass,
                        size_t pass_size, char *err, size_t err_size);

/* D/tls/ca.crt when url is mqtts:// to the data dir's own broker and the
 * file exists; else NULL. */
const char *mqa_default_cafile(const char *data_dir, const struct cfg_mqtt_url *url, char *buf, size_t size);

/* The TLS port D/run/mqtt-tls records, or 0. */
int mqa_tls_port(const char *data_dir);

#endif
