/*
 * mqttwire.c - MQTT 3.1.1 packets of a publishing device (see mqttwire.h).
 */
#include "sim/mqttwire.h"

#include <string.h>

/* The remaining length: 7 bits per byte, low first, bit 7 = more follows. */
static size_t varint_size(size_t v)
{
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

static uint8_t *put_varint(uint8_t *p, size_t v)
{
    do {
        uint8_t b = (uint8_t)(v & 0x7f);
        v >>= 7;
        *p++ = v ? (uint8_t)(b | 0x80) : b;
    } while (v);
    return p;
}

static uint8_t *put_u16(uint8_t *p, size_t v)
{
    *p++ = (uint8_t)(v >> 8);
    *p++ = (uint8_t)v;
    return p;
}

static uint8_t *put_str(uint8_t *p, const void *s, size_t n)
{
    p = put_u16(p, n);
    if (n)
        memcpy(p, s, n);
    return p + n;
}

/* The largest remaining length four bytes can express. */
#define MAX_REMAINING 268435455u

size_t mqw_encode_connect(uint8_t *out, size_t size, const struct mqw_connect *c)
{
    size_t id = strlen(c->client_id);
    size_t wt = c->will_topic ? strlen(c->will_topic) : 0;
    size_t wl = c->will_topic ? c->will_len : 0;
    size_t us = c->user ? strlen(c->user) : 0;
    size_t pw = c->user && c->pass ? strlen(c->pass) : 0;
    if (id > 65535 || wt > 65535 || wl > 65535 || us > 65535 || pw > 65535)
        return 0;
    size_t rem = 10 + 2 + id;
    if (c->will_topic)
        rem += 2 + wt + 2 + wl;
    if (c->user)
        rem += 2 + us;
    if (c->user && c->pass)
        rem += 2 + pw;
    size_t total = 1 + varint_size(rem) + rem;
    if (total > size)
        return 0;
    uint8_t flags = c->clean_session ? 0x02 : 0;
    if (c->will_topic)
        flags |= (uint8_t)(0x04 | (c->will_qos & 3) << 3 | (c->will_retain ? 0x20 : 0));
    if (c->user)
        flags |= 0x80;
    if (c->user && c->pass)
        flags |= 0x40;
    uint8_t *p = out;
    *p++ = MQW_CONNECT << 4;
    p = put_varint(p, rem);
    p = put_str(p, "MQTT", 4);
    *p++ = 4; /* protocol level: 3.1.1 */
    *p++ = flags;
    p = put_u16(p, c->keepalive_s);
    p = put_str(p, c->client_id, id);
    if (c->will_topic) {
        p = put_str(p, c->will_topic, wt);
        p = put_str(p, c->will_payload, wl);
    }
    if (c->user)
        p = put_str(p, c->user, us);
    if (c->user && c->pass)
        p = put_str(p, c->pass, pw);
    return (size_t)(p - out);
}

size_t mqw_publish_size(size_t topic_len, size_t payload_len, int qos)
{
    size_t rem = 2 + topic_len + (qos ? 2 : 0) + payload_len;
    return 1 + varint_size(rem) + rem;
}

size_t mqw_encode_publish(uint8_t *out, size_t size, const char *topic, size_t topic_len, const void *payload,
                          size_t payload_len, int qos, int retain, uint16_t mid)
{
    size_t rem = 2 + topic_len + (qos ? 2 : 0) + payload_len;
    if (topic_len > 65535 || rem > MAX_REMAINING || 1 + varint_size(rem) + rem > size)
        return 0;
    uint8_t *p = out;
    *p++ = (uint8_t)(MQW_PUBLISH << 4 | (qos & 3) << 1 | (retain ? 1 : 0));
    p = put_varint(p, rem);
    p = put_str(p, topic, topic_len);
    if (qos)
        p = put_u16(p, mid);
    if (payload_len)
        memcpy(p, payload, payload_len);
    return (size_t)(p - out) + payload_len;
}

size_t mqw_encode_empty(uint8_t *out, size_t size, int type)
{
    if (size < 2)
        return 0;
    out[0] = (uint8_t)(type << 4);
    out[1] = 0;
    return 2;
}

int mqw_parse(const uint8_t *buf, size_t len, struct mqw_packet *pkt)
{
    if (len < 2)
        return 0;
    uint8_t type = buf[0] >> 4, flags = buf[0] & 0x0f;
    if (type == 0 || type == 15)
        return -1;
    size_t rem = 0, i = 1;
    for (int shift = 0;; shift += 7) {
        if (i > 4)
            return -1; /* a fifth length byte */
        if (i >= len)
            return 0;
        uint8_t b = buf[i++];
        rem |= (size_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    if (i + rem > MQW_MAX_INCOMING)
        return -1;
    if (len < i + rem)
        return 0;
    memset(pkt, 0, sizeof(*pkt));
    pkt->type = type;
    pkt->flags = flags;
    pkt->length = (uint32_t)(i + rem);
    const uint8_t *v = buf + i;
    switch (type) {
    case MQW_CONNACK:
        if (flags || rem != 2 || (v[0] & 0xfe))
            return -1;
        pkt->session_present = v[0];
        pkt->return_code = v[1];
        break;
    case MQW_PUBACK:
        if (flags || rem != 2)
            return -1;
        pkt->mid = (uint16_t)(v[0] << 8 | v[1]);
        break;
    case MQW_PINGRESP:
        if (flags || rem != 0)
            return -1;
        break;
    default:
        break;
    }
    return (int)pkt->length;
}

const char *mqw_connack_string(int rc)
{
    switch (rc) {
    case 0:
        return "connection accepted";
    case 1:
        return "connection refused: unacceptable protocol version";
    case 2:
        return "connection refused: identifier rejected";
    case 3:
        return "connection refused: broker unavailable";
    case 4:
        return "connection refused: bad user name or password";
    case 5:
        return "connection refused: not authorised";
    default:
        return "connection refused: unknown reason";
    }
}
