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
 *
 * The server side (the ingest, src/ingest/) reads what a publishing client
 * sends, mqw_parse_client: CONNECT with its MQTT 5 properties, will and
 * login, PUBLISH, SUBSCRIBE and UNSUBSCRIBE (to refuse them), PINGREQ and
 * DISCONNECT; and writes CONNACK, PUBACK with a reason code, PINGRESP,
 * SUBACK and UNSUBACK refusals and the MQTT 5 DISCONNECT.  Every packet is
 * checked against a maximum size before any of its body is looked at.
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
    MQW_PUBREC = 5,
    MQW_PUBREL = 6,
    MQW_PUBCOMP = 7,
    MQW_SUBSCRIBE = 8,
    MQW_SUBACK = 9,
    MQW_UNSUBSCRIBE = 10,
    MQW_UNSUBACK = 11,
    MQW_PINGREQ = 12,
    MQW_PINGRESP = 13,
    MQW_DISCONNECT = 14,
    MQW_AUTH = 15,
};

/* MQTT 5 reason codes the server side writes (2.4, 3.2.2.2, 3.14.2.1). */
enum {
    MQW_RC_SUCCESS = 0x00,
    MQW_RC_NO_SUBSCRIPTION = 0x11,
    MQW_RC_UNSPECIFIED = 0x80,
    MQW_RC_MALFORMED = 0x81,
    MQW_RC_PROTOCOL_ERROR = 0x82,
    MQW_RC_IMPL_SPECIFIC = 0x83,
    MQW_RC_BAD_VERSION = 0x84,
    MQW_RC_BAD_CLIENT_ID = 0x85,
    MQW_RC_BAD_LOGIN = 0x86,
    MQW_RC_NOT_AUTHORIZED = 0x87,
    MQW_RC_SERVER_BUSY = 0x89,
    MQW_RC_SHUTTING_DOWN = 0x8b,
    MQW_RC_BAD_AUTH_METHOD = 0x8c,
    MQW_RC_KEEPALIVE_TIMEOUT = 0x8d,
    MQW_RC_TAKEN_OVER = 0x8e,
    MQW_RC_TOPIC_INVALID = 0x90,
    MQW_RC_RECEIVE_MAX = 0x93,
    MQW_RC_PACKET_TOO_LARGE = 0x95,
    MQW_RC_QUOTA_EXCEEDED = 0x97,
    MQW_RC_RETAIN_UNSUPPORTED = 0x9a,
    MQW_RC_QOS_UNSUPPORTED = 0x9b,
    MQW_RC_SHARED_UNSUPPORTED = 0x9e,
    MQW_RC_SUBID_UNSUPPORTED = 0xa1,
    MQW_RC_WILDCARD_UNSUPPORTED = 0xa2,
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

/* ---- server side ------------------------------------------------------- */

/* A client's CONNECT (3.1), its strings pointing into the packet (not
 * NUL-terminated). */
struct mqw_connect_in {
    uint8_t version; /* 4 = MQTT 3.1.1, 5 = MQTT 5.0 */
    uint8_t clean_start;
    uint16_t keepalive_s;
    const char *client_id;
    size_t client_id_len;
    const char *will_topic; /* NULL: no will */
    size_t will_topic_len;
    const uint8_t *will_payload;
    size_t will_len;
    uint8_t will_qos, will_retain;
    const char *user; /* NULL: none */
    size_t user_len;
    const uint8_t *pass; /* NULL: none */
    size_t pass_len;
    uint32_t session_expiry_s; /* MQTT 5, 0 if not given */
    uint16_t receive_max;      /* MQTT 5, 0 if not given (= 65535) */
    uint32_t max_packet_size;  /* MQTT 5, 0 if not given (no limit) */
    uint8_t auth_method;       /* MQTT 5: the client asks for enhanced authentication */
};

/* One packet from a client. */
struct mqw_in {
    uint8_t type, flags;
    uint32_t length;   /* the whole packet */
    uint16_t mid;      /* PUBLISH with QoS 1 or 2, SUBSCRIBE, UNSUBSCRIBE */
    uint8_t qos;       /* PUBLISH */
    uint8_t retain;    /* PUBLISH */
    uint8_t reason;    /* MQTT 5 DISCONNECT: its reason code (0 if absent) */
    size_t nfilters;   /* SUBSCRIBE, UNSUBSCRIBE: topic filters in it */
    const char *topic; /* PUBLISH: not NUL-terminated */
    size_t topic_len;
    const uint8_t *payload;
    size_t payload_len;
    struct mqw_connect_in connect; /* CONNECT */
};

/* mqw_parse_client's answers besides a length (> 0) and 0 (need more). */
enum {
    MQW_IN_MALFORMED = -1, /* *reason: the MQTT 5 reason code that says why */
    MQW_IN_TOO_LARGE = -2, /* the fixed header says more than max_len bytes */
};

/* Parses the packet a client sent at the start of buf (len bytes), for a
 * connection that speaks version (4 or 5; 0 before its CONNECT, which then
 * must be the packet).  Returns the packet's length with *in filled, 0 if
 * buf holds only part of it, MQW_IN_TOO_LARGE as soon as the fixed header
 * says it is longer than max_len (before reading any more of it), or
 * MQW_IN_MALFORMED with *reason set: MQW_RC_MALFORMED (wrong layout),
 * MQW_RC_PROTOCOL_ERROR (a packet or property a client must not send),
 * MQW_RC_BAD_VERSION (a CONNECT of another protocol level; in->connect.
 * version then says which, 3 for MQTT 3.1), MQW_RC_TOPIC_INVALID (a PUBLISH
 * topic with a wildcard or an empty one).  A QoS 2 or retained PUBLISH, a
 * SUBSCRIBE or a second CONNECT parse; refusing them is the caller's. */
int mqw_parse_client(const uint8_t *buf, size_t len, int version, size_t max_len, struct mqw_in *in, uint8_t *reason);

/* What an MQTT 5 CONNACK announces besides its reason code (3.2.2.3);
 * zeros are left out.  The server always says: Maximum QoS 1, no retained
 * messages, no wildcard, shared or identified subscriptions. */
struct mqw_connack_props {
    uint16_t receive_max;
    uint32_t max_packet_size;
    uint16_t server_keepalive_s;
    const char *assigned_client_id; /* NULL: none */
    const char *reason;             /* NULL: no Reason String */
};

/* Encodes CONNACK: version 4 takes a 3.1.1 return code (0..5), version 5 a
 * reason code and props (NULL: none; only a Reason String is written when
 * rc is not success).  Returns its length, or 0 if it does not fit. */
size_t mqw_encode_connack(uint8_t *out, size_t size, int version, int session_present, uint8_t rc,
                          const struct mqw_connack_props *props);

/* PUBACK for mid: 4 bytes, or 5 with the reason code in MQTT 5 when rc is
 * not success.  Returns its length, or 0 if size is less. */
size_t mqw_encode_puback_rc(uint8_t *out, size_t size, int version, uint16_t mid, uint8_t rc);

/* SUBACK for a SUBSCRIBE of n filters, each refused: 0x80 (3.1.1), rc
 * (MQTT 5).  Returns its length, or 0 if it does not fit. */
size_t mqw_encode_suback_refusal(uint8_t *out, size_t size, int version, uint16_t mid, size_t n, uint8_t rc);

/* UNSUBACK for n filters (MQTT 5: each "no subscription existed"). */
size_t mqw_encode_unsuback(uint8_t *out, size_t size, int version, uint16_t mid, size_t n);

/* The MQTT 5 DISCONNECT a server sends, with reason code rc.  Returns 3 (or
 * 0 if size is less). */
size_t mqw_encode_disconnect(uint8_t *out, size_t size, uint8_t rc);

/* What a CONNACK return code (3.1.1) or reason code (MQTT 5) means. */
const char *mqw_connack_string(int rc);

/* What a reason code in an MQTT 5 SUBACK or DISCONNECT means. */
const char *mqw_reason_string(int rc);

#endif
