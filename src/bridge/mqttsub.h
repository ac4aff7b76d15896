/*
 * mqttsub.h - the bridge's MQTT subscriber: one connection (MQTT 5 or
 * 3.1.1, plain or TLS) to one broker, a persistent session, and QoS 1
 * messages read in batches whose acknowledgements leave only when the
 * bridge says they may.
 *
 * A QoS 1 message is the bridge's once the broker has its PUBACK.  So the
 * subscriber hands each PUBLISH to the message callback and only queues its
 * PUBACK; msub_flush() writes the queue, and the bridge calls it after the
 * messages are in the spool.  One read() takes everything the socket holds
 * (hundreds of messages under load) and one write() acknowledges them all:
 * two system calls for a batch, where a packet-at-a-time client makes five
 * per message.
 *
 * Single-threaded and non-blocking: the bridge polls msub_fd() for
 * msub_events() and calls msub_handle() with what poll returned, then
 * msub_flush() and msub_tick().  The connection is made, kept alive
 * (PINGREQ) and made again (backoff 0.5 s doubling to 30 s, each resolved
 * address in turn) here.
 */
#ifndef FS_BRIDGE_MQTTSUB_H
#define FS_BRIDGE_MQTTSUB_H

#include <stddef.h>
#include <stdint.h>

/* The largest packet read whole; a longer PUBLISH is handed over with its
 * payload cut to MSUB_MAX_PAYLOAD (and flagged) and the rest skipped. */
#define MSUB_MAX_PAYLOAD (1024 * 1024)

struct msub_config {
    const char *host;
    int port;
    int tls;
    const char *cafile;      /* NULL: the system's CAs */
    const char *user, *pass; /* NULL or "": none */
    const char *client_id;
    int version; /* 5 or 311 */
    int keepalive_s;
    uint32_t session_expiry_s; /* MQTT 5 */
    uint16_t receive_max;      /* MQTT 5: QoS 1 messages the broker may have unacknowledged */
    const char *const *filters;
    int nfilters;
};

/* Called for every PUBLISH, in order.  cut: the payload was longer than
 * MSUB_MAX_PAYLOAD and only its start is given.  Returns 0 when the message
 * is taken (its PUBACK is queued), -1 to refuse it: msub_handle stops and
 * returns -1, and no PUBACK for it is ever written. */
typedef int (*msub_message_fn)(void *ud, const char *topic, size_t topic_len, const uint8_t *payload,
                               size_t payload_len, size_t full_len, int cut);

struct msub;

/* Copies cfg; sets up TLS.  Returns NULL with a reason in err. */
struct msub *msub_new(const struct msub_config *cfg, msub_message_fn on_message, void *ud, char *err, size_t err_size);
void msub_free(struct msub *s);

/* The socket to poll (-1 while there is none) and the events to ask for.
 * reading: whether the bridge takes messages now (backpressure); the
 * connection's own handshake is read regardless. */
int msub_fd(const struct msub *s);
short msub_events(const struct msub *s, int reading);

/* 1 if TLS holds decrypted bytes poll() cannot see: poll with timeout 0 and
 * call msub_handle (which reads them) even without revents. */
int msub_pending(const struct msub *s);

/* Acts on poll's revents: connects, reads and parses.  Returns the number
 * of messages handed to the callback, or -1 if the callback refused one
 * (the connection is then closed without acknowledging it). */
long msub_handle(struct msub *s, short revents, int reading);

/* Writes the queued packets (PUBACKs among them): call it only once every
 * message handed over so far is safe.  Returns 0 or -1 (connection lost). */
int msub_flush(struct msub *s);

/* Time-driven work: a connect attempt when due, PINGREQ, timeouts.  Writes
 * like msub_flush.  active: 0 while the bridge takes no messages (paused or
 * stopping): an absent connection stays absent, and a PINGRESP that waits
 * unread behind messages is not missed. */
void msub_tick(struct msub *s, int active);

/* 1 once subscribed, 0 otherwise. */
int msub_up(const struct msub *s);
/* Connection attempts that reached the broker (CONNECT sent). */
uint64_t msub_connects(const struct msub *s);

/* Acknowledges what is queued, sends DISCONNECT (the session stays with
 * the broker) and closes. */
void msub_disconnect(struct msub *s);

#endif
