/*
 * session.h - one client connection's MQTT protocol in the ingest, without
 * I/O: bytes in, answers out, records handed to the caller, PUBACKs
 * released in order as Kafka acknowledges (see session.c).
 *
 * server.c owns the socket and feeds what it reads to ises_input, writes
 * out what the session has in out, and tells it of each delivery report
 * (ises_delivered).  tests/fuzz/fuzz_ingest_session.c drives it alone.
 */
#ifndef FS_INGEST_SESSION_H
#define FS_INGEST_SESSION_H

#include "core/mqttauth.h"
#include "core/mqttwire.h"
#include "ingest/ingest.h"

#include <stddef.h>
#include <stdint.h>

/* Answers a client has not taken past out_max (at most this) are a slow
 * reader's: its session ends. */
#define ISES_OUT_MAX (64 * 1024)

struct ises;

/* One QoS 1 PUBLISH waiting for its record's delivery report. */
struct ises_pend {
    struct ises *s;
    uint16_t mid;
    uint8_t done;
    uint8_t rc;     /* the PUBACK's reason code (MQTT 5) */
    uint8_t failed; /* Kafka did not take the record */
    int64_t t_ms;   /* when the PUBLISH was read (the caller's clock) */
};

struct ises_ops {
    /* A CONNECT: 0 with the account's name in account (MQA_ID_MAX + 1
     * bytes), or the MQTT 5 reason code that refuses it. */
    uint8_t (*login)(void *ctx, struct ises *s, const struct mqw_connect_in *m, char *account);
    /* 1 if account may publish to topic. */
    int (*may_publish)(void *ctx, const char *account, const char *topic, size_t topic_len);
    /* Hands one message to Kafka: 0 taken (when slot is not NULL, its
     * delivery report comes back through ises_delivered), 1 no room now
     * (the same message is offered again later), -1 failed. */
    int (*produce)(void *ctx, const char *topic, size_t topic_len, const void *payload, size_t payload_len,
                   struct ises_pend *slot);
    void (*refused)(void *ctx, enum ing_refusal why);
    /* A PUBACK left for a PUBLISH read at t_ms (for the latency). */
    void (*acked)(void *ctx, int64_t t_ms);
    int64_t (*now_ms)(void *ctx);
};

/* States: WAIT_CONNECT --CONNECT accepted--> OPEN --ises_end--> CLOSED.
 * Every refusal, a DISCONNECT and a Kafka failure end the session too. */
/* The slots a connection's ring starts with. */
#define ISES_RING_START 8

enum ises_state { ISES_WAIT_CONNECT, ISES_OPEN, ISES_CLOSED };

struct ises {
    enum ises_state state;
    int version; /* 4 or 5 once OPEN */
    char account[MQA_ID_MAX + 1];
    uint16_t keepalive_s;
    char *will_topic; /* NULL: none */
    uint8_t *will_payload;
    size_t will_len;
    struct ises_pend *ring; /* cap slots (ISES_RING_START doubling up to receive_max); head - tail in use */
    uint32_t cap, head, tail;
    uint32_t refs; /* records produced whose delivery report has not come */
    int blocked;   /* the ring is full: input waits for a slot */
    int will_sent; /* ises_end produced the will */
    int defer;     /* set by the caller: delivery reports release nothing, ises_release_done does */
    uint8_t *out;  /* answers not yet written to the socket */
    size_t out_len, out_cap;
    size_t out_max; /* ISES_OUT_MAX unless the caller lowers it after ises_init */
    size_t max_packet;
    uint16_t receive_max;
    const struct ises_ops *ops;
    void *ctx;
};

void ises_init(struct ises *s, const struct ises_ops *ops, void *ctx, size_t max_packet, uint16_t receive_max);

/* Frees what the session holds (not s itself).  Only once refs is 0: the
 * delivery reports point into the ring. */
void ises_release(struct ises *s);

enum ises_status {
    ISES_MORE,    /* all complete packets taken: more bytes needed */
    ISES_STALLED, /* stopped before a packet the ring or Kafka has no room for: offer it again later */
    ISES_ENDED,   /* the session ended (state CLOSED): write out what out holds, then close */
};

/* Takes the packets at the start of buf (len bytes); *used says how many
 * bytes were taken. */
enum ises_status ises_input(struct ises *s, const uint8_t *buf, size_t len, size_t *used);

/* Ends the session: its will is produced when send_will (and it is OPEN and
 * has one), an MQTT 5 DISCONNECT with rc is put in out when rc is not 0. */
void ises_end(struct ises *s, int send_will, uint8_t rc);

/* The delivery report of slot's record (ok: Kafka has it).  The done prefix
 * of the ring goes out as PUBACKs; a failed record ends the session without
 * its PUBACK.  Returns 1 if slots were freed while the ring was full (input
 * may go on), else 0. */
int ises_delivered(struct ises_pend *slot, int ok);

/* With defer set, ises_delivered only marks its slot: the done prefix leaves
 * (PUBACKs, a failed record's end, as ises_delivered would) when the caller
 * is about to write, so that several reports' PUBACKs leave together and
 * each is counted (ops->acked) when it is written.  Returns as
 * ises_delivered. */
int ises_release_done(struct ises *s);

#endif
