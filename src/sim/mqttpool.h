/*
 * mqttpool.h - many MQTT 3.1.1 device connections driven by one epoll loop.
 *
 * Each connection is a non-blocking socket (TLS through OpenSSL for
 * mqtts://) registered in one epoll set; the packets are mqttwire.c's.
 * Publishing only appends to the connection's output buffer: mqp_poll()
 * writes every connection's buffer with one system call before it waits,
 * and reads all the acknowledgements waiting on a socket with one more, so
 * a batch of readings costs a few system calls, not several per reading
 * (libmosquitto reads each PUBACK with three and writes each PUBLISH with
 * one, which bound the simulator at about 100,000 readings per
 * CPU-second).  Nothing here uses threads: every function must be called
 * from the thread that created the pool.
 *
 * Connection states: DOWN (waiting for retry_ms) -> TCP connect -> TLS
 * handshake (mqtts://) -> CONNECT sent -> UP (CONNACK accepted) -> DOWN on
 * any error, with an exponential backoff of 0.5 s doubling to 30 s (with
 * jitter).  QoS 1 messages not yet acknowledged are kept and sent again,
 * with the DUP flag, after the next CONNACK, as a device would.  Keepalive:
 * a PINGREQ after keepalive_s without writing; no PINGRESP within
 * keepalive_s more, or no CONNACK within 30 s of connecting, loses the
 * connection.
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
    const char *user, *pass; /* NULL or "" for none */
    int qos;                 /* 0 or 1 */
    int keepalive_s;
    int gateway;                   /* presence under fleet/gateways/ */
    const char *const *source_ips; /* local addresses to bind, round robin; may be NULL */
    size_t n_source_ips;
    uint32_t max_inflight; /* per connection, unacknowledged telemetry */
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
    uint64_t failed;     /* refused by mqp_publish (QoS 0 while down, errors), or
                          * QoS 0 queued on a connection that was lost */
    uint64_t reconnects; /* connections re-established after a loss */
    uint64_t errors;     /* connection failures and losses */
    uint64_t inflight;   /* published, not yet acknowledged */
    uint32_t up;         /* connections with an accepted CONNACK */
    uint32_t conns;
};

/* Creates n connections (none opened yet).  Returns NULL with a reason in
 * err.  The config's strings must outlive the pool. */
struct mqttpool *mqp_new(const struct mqp_config *cfg, uint32_t n, char *err, size_t err_size);

/* Publishes telemetry on connection c: queued, written at the next
 * mqp_poll().  Returns 0 if the pool took it (QoS 1 is kept for resending
 * while the connection is down), -1 if it was lost (counted in failed). */
int mqp_publish(struct mqttpool *p, uint32_t c, const char *topic, const char *payload, int len);

/* 1 if connection c may take another message now (flow control). */
int mqp_can_publish(const struct mqttpool *p, uint32_t c);

/* Runs the event loop once: writes what was published, waits up to
 * timeout_ms for socket events, handles them, keepalives, and
 * (re)connections that are due.  Returns 0,
 * or -1 on a fatal epoll error. */
int mqp_poll(struct mqttpool *p, int timeout_ms);

/* 1 if connection c has an accepted CONNACK. */
int mqp_conn_up(const struct mqttpool *p, uint32_t c);

/* Counts a reading the caller dropped (a device buffer that is full while
 * its connection is down) as failed. */
void mqp_count_lost(struct mqttpool *p);

void mqp_get_stats(const struct mqttpool *p, struct mqp_stats *out);

/* Publishes "offline" on every connection that is up, disconnects cleanly,
 * waits up to wait_ms for that to be written and the broker to close,
 * frees everything. */
void mqp_free(struct mqttpool *p, int wait_ms);

#endif
