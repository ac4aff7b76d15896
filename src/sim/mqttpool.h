/*
 * mqttpool.h - many libmosquitto connections driven by one epoll loop.
 *
 * libmosquitto's own loop uses select() and refuses descriptors >= 1024, so
 * the pool registers each connection's socket in an epoll set and calls
 * mosquitto_loop_read / _write / _misc itself: EPOLLOUT is asked for only
 * while mosquitto_want_write() says there is something to send; keepalive
 * runs from a one-second timer.  No libmosquitto threads are used, so every
 * function must be called from the thread that created the pool.
 *
 * Connection states: DOWN (waiting for retry_ms) -> CONNECTING (TCP up,
 * CONNECT sent) -> UP (CONNACK accepted) -> DOWN on any error, with an
 * exponential backoff of 0.5 s doubling to 30 s (with jitter).  A reconnect
 * reuses the same mosquitto object, so QoS 1 messages not yet acknowledged
 * are sent again after the new CONNACK, as a device would.
 *
 * Presence: each connection has a will, retained, "offline", on its
 * presence topic, and publishes "online" retained on every CONNACK; a clean
 * close publishes "offline" first.  Truck mode uses fleet/trucks/{id}/status,
 * gateway mode fleet/gateways/{id}/status.
 */
#ifndef FS_SIM_MQTTPOOL_H
#define FS_SIM_MQTTPOOL_H

#include <stddef.h>
#include <stdint.h>

struct mqttpool;

/* Writes connection i's client id (a truck or gateway id) into buf. */
typedef void (*mqp_name_fn)(void *ud, uint32_t conn, char *buf, size_t size);

/* Writes the password of account user (a connection's client id) into buf;
 * returns 0, or -1 to connect without credentials. */
typedef int (*mqp_password_fn)(void *ud, const char *user, char *buf, size_t size);

struct mqp_config {
    const char *host;
    int port;
    const char *user, *pass;       /* NULL or "" for none */
    int qos;                       /* 0 or 1 */
    int keepalive_s;
    int gateway;                   /* presence under fleet/gateways/ */
    const char *const *source_ips; /* local addresses to bind, round robin; may be NULL */
    size_t n_source_ips;
    uint32_t max_inflight;         /* per connection, unacknowledged telemetry */
    mqp_name_fn name;
    void *name_ud;
    /* Per-connection credentials (the data dir's broker, docs/security.md):
     * when set, each connection logs in as its client id with this password,
     * instead of user/pass. */
    mqp_password_fn password;
    void *password_ud;
    /* mqtts://: verify the broker's certificate against cafile (NULL = the
     * system's CAs) and host.  One TLS context is shared by all connections. */
    int tls;
    const char *cafile;
    /* At a clean end, clear the retained presence (an empty retained
     * message) instead of leaving "offline": for runs whose trucks do not
     * exist afterwards (fleetsync bench detect). */
    int clear_presence;
};

struct mqp_stats {
    uint64_t published;  /* telemetry accepted by mqp_publish */
    uint64_t acked;      /* QoS 1: PUBACK received; QoS 0: written to the socket */
    uint64_t failed;     /* refused by mqp_publish (QoS 0 while down, errors) */
    uint64_t reconnects; /* connections re-established after a loss */
    uint64_t errors;     /* connection failures and losses */
    uint64_t inflight;   /* published, not yet acknowledged */
    uint32_t up;         /* connections with an accepted CONNACK */
    uint32_t conns;
};

/* Creates n connections (none opened yet).  Returns NULL with a reason in
 * err.  The config's strings must outlive the pool. */
struct mqttpool *mqp_new(const struct mqp_config *cfg, uint32_t n, char *err, size_t err_size);

/* Publishes telemetry on connection c.  Returns 0 if libmosquitto took it
 * (QoS 1 is kept for resending while the connection is down), -1 if it was
 * lost (counted in failed). */
int mqp_publish(struct mqttpool *p, uint32_t c, const char *topic, const char *payload, int len);

/* 1 if connection c may take another message now (flow control). */
int mqp_can_publish(const struct mqttpool *p, uint32_t c);

/* Runs the event loop once: waits up to timeout_ms for socket events,
 * handles them, keepalives, and (re)connections that are due.  Returns 0,
 * or -1 on a fatal epoll error. */
int mqp_poll(struct mqttpool *p, int timeout_ms);

/* 1 if connection c has an accepted CONNACK. */
int mqp_conn_up(const struct mqttpool *p, uint32_t c);

/* Counts a reading the caller dropped (a device buffer that is full while
 * its connection is down) as failed. */
void mqp_count_lost(struct mqttpool *p);

void mqp_get_stats(const struct mqttpool *p, struct mqp_stats *out);

/* Publishes "offline" on every connection that is up, disconnects cleanly,
 * waits up to wait_ms for that to be written, frees everything. */
void mqp_free(struct mqttpool *p, int wait_ms);

#endif
