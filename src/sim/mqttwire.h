/*
 * mqttwire.h - the MQTT 3.1.1 packets a publishing device exchanges with its
 * broker, encoded into and parsed from caller-owned buffers.
 *
 * The simulator's connection pool (mqttpool.c) writes many packets with one
 * system call and reads every acknowledgement waiting on a socket with one
 * more; this file is only the byte layout (OASIS MQTT 3.1.1, sections 2
 * and 3), with no I/O and no allocation, so it is tested and fuzzed alone.
 *
 * A device sends CONNECT, PUBLISH (QoS 0 or 1), PINGREQ and DISCONNECT, and
 * reads CONNACK, PUBACK and PINGRESP.  mqw_parse() takes any packet type
 * the broker may send and leaves it to the caller to refuse the others.
 */
#ifndef FS_SIM_MQTTWIRE_H
#define FS_SIM_MQTTWIRE_H

#include <stddef.h>
#include <stdint.h>

enum {
    MQW_CONNECT = 1,
    MQW_CONNACK = 2,
    MQW_PUBLISH = 3,
    MQW_PUBACK = 4,
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
    const char *user, *pass; /* NULL: none (a password needs a user) */
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

struct mqw_packet {
    uint8_t type;            /* MQW_* */
    uint8_t flags;           /* low nibble of byte 0 */
    uint8_t session_present; /* CONNACK */
    uint8_t return_code;     /* CONNACK */
    uint16_t mid;            /* PUBACK */
    uint32_t length;         /* the whole packet */
};

/* Parses the packet at the start of buf.  Returns its length (> 0) with
 * *pkt filled, 0 if buf holds only part of it, or -1 if it is malformed:
 * a reserved type, wrong flags or length for CONNACK, PUBACK or PINGRESP,
 * a remaining length of more than four bytes, or a packet longer than
 * MQW_MAX_INCOMING. */
int mqw_parse(const uint8_t *buf, size_t len, struct mqw_packet *pkt);

/* What a CONNACK return code means. */
const char *mqw_connack_string(int rc);

#endif
