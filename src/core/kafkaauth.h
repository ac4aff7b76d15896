/*
 * kafkaauth.h - Kafka principals of a secure stack (`services start --secure`).
 *
 * A secure data dir D holds D/kafka-auth/secret: 32 random bytes (hex), mode
 * 0600 in a 0700 folder, made by the first `services start --secure`.  Its
 * presence is what makes the stack secure: every FleetSync command then
 * authenticates to the data dir's Kafka with SASL as the principal of its
 * kind (KA_USER_*), with the password derived from the secret and the
 * principal's name (the first 32 hex digits of HMAC-SHA256(secret, name)),
 * so no plaintext list of passwords is kept beside the secret.  The brokers
 * get the principals and passwords in their server.properties (0600, the
 * service user's); the Kafka ACLs (ka_acl_bindings) are created by every
 * `services start`.
 *
 * The mechanism is SASL/PLAIN, on 127.0.0.1 only.  SCRAM would keep the
 * passwords off the wire, but the librdkafka of Debian 12 (2.0.2, and every
 * release before 2.6.1) repeats the client nonce in its SCRAM final message,
 * which Kafka 3.8.1 and later refuse: no FleetSync command nor kcat could log
 * in.  On loopback only root (CAP_NET_RAW) can read the traffic, and root
 * can read the secret as well.
 *
 * Which principal may do what (Kafka ACLs; the admin is a super user):
 *   fleetsync-admin      everything: services, status, replay, bench, inter-broker
 *   fleetsync-bridge     writes truck-telemetry, truck-status, truck-telemetry-dlq
 *   fleetsync-sim        writes truck-telemetry (sim --kafka stands in for the bridge)
 *   fleetsync-detect     reads truck-telemetry, writes truck-alerts
 *   fleetsync-history    reads truck-telemetry and truck-alerts
 *   fleetsync-billing    reads truck-telemetry
 *   fleetsync-dashboard  reads truck-telemetry, truck-status and truck-alerts
 *   fleetsync-notify     reads truck-alerts, writes truck-alerts-dlq
 * Readers may use any consumer group (Group "*": --group picks any name).
 */
#ifndef FS_KAFKAAUTH_H
#define FS_KAFKAAUTH_H

#include "core/config.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#define KA_USER_ADMIN "fleetsync-admin"
#define KA_USER_BRIDGE "fleetsync-bridge"
#define KA_USER_SIM "fleetsync-sim"
#define KA_USER_DETECT "fleetsync-detect"
#define KA_USER_HISTORY "fleetsync-history"
#define KA_USER_BILLING "fleetsync-billing"
#define KA_USER_DASHBOARD "fleetsync-dashboard"
#define KA_USER_NOTIFY "fleetsync-notify"
#define KA_MECHANISM "PLAIN"
#define KA_PASS_CHARS 32 /* hex digits of a derived password */
#define KA_SECRET_BYTES 32

/* Every principal, NULL-terminated (the brokers' list of users). */
extern const char *const ka_users[];

/* 1 when D/kafka-auth/secret exists (the stack is secure), else 0. */
int ka_is_secure(const char *data_dir);

/* Creates D/kafka-auth/ (0700) and a new random secret (0600) when there is
 * none.  Returns 0, or -1 with a reason in err. */
int ka_secret_ensure(const char *data_dir, char *err, size_t err_size);

/* The password of principal user: KA_PASS_CHARS hex digits + NUL into pass
 * (pass_size >= KA_PASS_CHARS + 1).  Returns 0, 1 when the data dir is not
 * secure (no secret), -1 with a reason in err when the secret is
 * unreadable or malformed. */
int ka_password(const char *data_dir, const char *user, char *pass, size_t pass_size, char *err, size_t err_size);

/* Sets security.protocol SASL_PLAINTEXT, sasl.mechanisms KA_MECHANISM and
 * user's name and password on conf when the data dir is secure.  Returns 0
 * (set, or nothing to set), -1 with a reason in err. */
int ka_conf_set(rd_kafka_conf_t *conf, const char *data_dir, const char *user, char *err, size_t err_size);

/* The ACLs of the table above for the topics named with cfg's prefix, as
 * new bindings into out (room for max); the caller frees each with
 * rd_kafka_AclBinding_destroy().  Returns how many, or -1 + err. */
int ka_acl_bindings(const struct fs_config *cfg, rd_kafka_AclBinding_t **out, int max, char *err, size_t err_size);

#endif
