/*
 * mqttwire.h - the MQTT packets FleetSync's two clients exchange with a
 * broker, encoded into and parsed from caller-owned buffers.
 *
 * The simulator's connection pool (sim/mqttpool.c) and the bridge's
 * subscriber (bridge/mqttsub.c), both on core/mqttconn.c's connection, write
 * many packets with one system call and read everything waiting on a socket
 * with one more; this file is only the byte layout (OASIS MQTT 3.1.1 and
 * MQTT 5.0, sections 2 and 3), with no I/O and no allocation, so it is
 * tested and fuzzed alone.
 *
 * A device (3.1.1) sends CONNECT, PUBLISH (QoS 0 or 1), PINGREQ and
 * DISCONNECT, and reads CONNACK, PUBACK and PINGRESP.  The bridge (3.1.1 or
 * 5) sends CONNECT, SUBSCRIBE, PUBACK, PINGREQ and DISCONNECT, and reads
 * CONNACK, SUBACK, PUBLISH, PINGRESP and (MQTT 5) DISCONNECT.  The parsers
 * take any packet type a broker may send and leave it to the caller to
 * refuse the others.
 */
#ifndef FS_CORE_MQTTWIRE_H
#define FS_CORE_MQTTWIRE_H

#include <stddef.h>
#include <stdint.h>

enum {
    MQW_CONNECT = 1,
    MQW_CONNACK = 2,
    MQW_PUBLISH = 3,
    MQW_PUBACK = 4,
    MQW_SUBSCRIBE = 8,
    MQW_SUBACK = 9,
    MQW_PINGREQ = 12,
    MQW_PINGRESP = 13,
    MQW_DISCONNECT = 14,
};

/* The longest packet mqw_parse() accepts, fixed header included: a device
 * that subscribes to nothing only ever reads 2- and 4-byte packets. */
#define MQW_MAX_INCOMING 64

/* A PUBLISH sent again carries the DUP flag, bit 3 of its first byte. */
#define MQW_DUP_BIT 0x08

struct mqw_connect {
    const char *client_id;
    uint16_t keepalive_s;
    int clean_session;
    const char *will_topic; /* NULL: no will */
    const void *will_payload;
    size_t will_len;
    int will_qos, will_retain;
    const char *user, *pass;   /* NULL: none (a password needs a user) */
    int version;               /* 5 = MQTT 5.0; anything else 3.1.1 */
    uint32_t session_expiry_s; /* MQTT 5: Session Expiry Interval (0: none) */
    uint16_t receive_max;      /* MQTT 5: Receive Maximum (0: none) */
};

/* Encodes CONNECT into out; returns its length, or 0 if it does not fit in
 * size or a string is longer than 65535 bytes. */
size_t mqw_encode_connect(uint8_t *out, size_t size, const struct mqw_connect *c);

/* The length of a PUBLISH of that topic and payload length. */
size_t mqw_publish_size(size_t topic_len, size_t payload_len, int qos);

/* Encodes PUBLISH (qos 0: mid is not written); returns its length, or 0 if
 * it does not fit in size or the topic is longer than 65535 bytes. */
size_t mqw_encode_publish(uint8_t *out, size_t size, const char *topic, size_t topic_len, const void *payload,
                          size_t payload_len, int qos, int retain, uint16_t mid);

/* Writes a 2-byte packet with no variable part (PINGREQ, DISCONNECT). */
size_t mqw_encode_empty(uint8_t *out, size_t size, int type);

/* Encodes SUBSCRIBE of n filters at the given QoS (MQTT 5: no properties,
 * subscription options = the QoS); returns its length, or 0 if it does not
 * fit or a filter is longer than 65535 bytes. */
size_t mqw_encode_subscribe(uint8_t *out, size_t size, uint16_t mid, const char *const *filters, int n, int qos,
                            int version);

/* Encodes a PUBACK for mid (4 bytes; in MQTT 5 the omitted reason code
 * means success).  Returns 4, or 0 if size is less. */
size_t mqw_encode_puback(uint8_t *out, size_t size, uint16_t mid);

struct mqw_packet {
    uint8_t type;            /* MQW_* */
    uint8_t flags;           /* low nibble of byte 0 */
    uint8_t session_present; /* CONNACK */
    uint8_t return_code;     /* CONNACK; MQTT 5 DISCONNECT reason */
    uint16_t mid;            /* PUBACK, SUBACK, PUBLISH with QoS 1 or 2 */
    uint8_t qos;             /* PUBLISH */
    uint32_t length;         /* the whole packet */
    /* Read by mqw_parse_in only: */
    const char *topic; /* PUBLISH: not NUL-terminated */
    size_t topic_len;
    const uint8_t *payload; /* PUBLISH: the payload (or its start, see mqw_parse_in) */
    size_t payload_len;
    const uint8_t *codes; /* SUBACK: one return code per filter */
    size_t ncodes;
    uint16_t server_keepalive; /* MQTT 5 CONNACK: Server Keep Alive, 0 if not given */
    const char *reason;        /* MQTT 5 CONNACK, DISCONNECT: Reason String, or NULL */
    size_t reason_len;
};

/* Parses the packet at the start of buf.  Returns its length (> 0) with
 * *pkt filled, 0 if buf holds only part of it, or -1 if it is malformed:
 * a reserved type, wrong flags or length for CONNACK, PUBACK or PINGRESP,
 * a remaining length of more than four bytes, or a packet longer than
 * MQW_MAX_INCOMING. */
int mqw_parse(const uint8_t *buf, size_t len, struct mqw_packet *pkt);

/* As mqw_parse, for a client speaking the given version (5 or 3.1.1) that
 * takes packets up to max_len bytes and reads PUBLISH, SUBACK and MQTT 5
 * properties too.  A PUBLISH longer than max_len whose head (fixed header,
 * topic, packet id and properties) lies within len returns -2 with *pkt
 * filled, payload and payload_len being the part of the payload in buf and
 * length the whole packet's: the caller takes what it needs and skips the
 * rest as it arrives.  Any other packet longer than max_len is malformed
 * (-1); max_len must be at least 64. */
int mqw_parse_in(const uint8_t *buf, size_t len, int version, size_t max_len, struct mqw_packet *pkt);

/* What a CONNACK return code (3.1.1) or reason code (MQTT 5) means. */
const char *mqw_connack_string(int rc);

/* What a reason code in an MQTT 5 SUBACK or DISCONNECT means. */
const char *mqw_reason_string(int rc);

#endif
