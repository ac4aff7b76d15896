/*
 * mqttwire.c - MQTT 3.1.1 and 5.0 packets of FleetSync's clients (see
 * mqttwire.h).
 */
#include "core/mqttwire.h"

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
    int v5 = c->version == 5;
    if (id > 65535 || wt > 65535 || wl > 65535 || us > 65535 || pw > 65535)
        return 0;
    /* MQTT 5: properties after the keep-alive (3.1.2.11), and an empty set
     * of will properties before the will topic (3.1.3.2). */
    size_t props = v5 ? (c->session_expiry_s ? 5 : 0) + (c->receive_max ? 3 : 0) : 0;
    size_t rem = 10 + (v5 ? 1 + props : 0) + 2 + id;
    if (c->will_topic)
        rem += (v5 ? 1 : 0) + 2 + wt + 2 + wl;
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
    *p++ = v5 ? 5 : 4; /* protocol level */
    *p++ = flags;
    p = put_u16(p, c->keepalive_s);
    if (v5) {
        *p++ = (uint8_t)props;
        if (c->session_expiry_s) {
            *p++ = 0x11;
            p = put_u16(p, c->session_expiry_s >> 16);
            p = put_u16(p, c->session_expiry_s & 0xffff);
        }
        if (c->receive_max) {
            *p++ = 0x21;
            p = put_u16(p, c->receive_max);
        }
    }
    p = put_str(p, c->client_id, id);
    if (c->will_topic) {
        if (v5)
            *p++ = 0;
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

size_t mqw_encode_subscribe(uint8_t *out, size_t size, uint16_t mid, const char *const *filters, int n, int qos,
                            int version)
{
    size_t rem = 2 + (version == 5 ? 1 : 0);
    for (int k = 0; k < n; k++) {
        size_t fl = strlen(filters[k]);
        if (fl > 65535)
            return 0;
        rem += 2 + fl + 1;
    }
    if (n < 1 || rem > MAX_REMAINING || 1 + varint_size(rem) + rem > size)
        return 0;
    uint8_t *p = out;
    *p++ = MQW_SUBSCRIBE << 4 | 0x02; /* 3.8.1: reserved flags 0010 */
    p = put_varint(p, rem);
    p = put_u16(p, mid);
    if (version == 5)
        *p++ = 0; /* no properties */
    for (int k = 0; k < n; k++) {
        p = put_str(p, filters[k], strlen(filters[k]));
        *p++ = (uint8_t)(qos & 3);
    }
    return (size_t)(p - out);
}

size_t mqw_encode_puback(uint8_t *out, size_t size, uint16_t mid)
{
    if (size < 4)
        return 0;
    out[0] = MQW_PUBACK << 4;
    out[1] = 2;
    out[2] = (uint8_t)(mid >> 8);
    out[3] = (uint8_t)mid;
    return 4;
}

/* Reads a variable byte integer of at most four bytes at p[0..n).  Returns
 * the bytes it took, 0 if they run past n, or -1 if malformed. */
static int get_varint(const uint8_t *p, size_t n, size_t *v)
{
    *v = 0;
    for (size_t i = 0; i < 4; i++) {
        if (i >= n)
            return 0;
        *v |= (size_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80))
            return (int)i + 1;
    }
    return -1;
}

static size_t get_u16(const uint8_t *p)
{
    return (size_t)p[0] << 8 | p[1];
}

/* Walks n bytes of MQTT 5 properties (2.2.2.2), noting the ones a client
 * reads.  Returns 0, or -1 if a property is unknown or runs past n. */
static int read_props(const uint8_t *p, size_t n, struct mqw_packet *pkt)
{
    size_t i = 0;
    while (i < n) {
        uint8_t id = p[i++];
        size_t need;
        switch (id) {
        case 0x01:
        case 0x17:
        case 0x19:
        case 0x24:
        case 0x25:
        case 0x28:
        case 0x29:
        case 0x2a:
            need = 1;
            break;
        case 0x13:
        case 0x21:
        case 0x22:
        case 0x23:
            need = 2;
            break;
        case 0x02:
        case 0x11:
        case 0x18:
        case 0x27:
            need = 4;
            break;
        case 0x0b: {
            size_t v;
            int k = get_varint(p + i, n - i, &v);
            if (k <= 0)
                return -1;
            need = (size_t)k;
            break;
        }
        case 0x03:
        case 0x08:
        case 0x09:
        case 0x12:
        case 0x15:
        case 0x16:
        case 0x1a:
        case 0x1c:
        case 0x1f:
            if (n - i < 2)
                return -1;
            need = 2 + get_u16(p + i);
            break;
        case 0x26: /* user property: a pair of strings */
            if (n - i < 2 || n - i - 2 < get_u16(p + i) + 2)
                return -1;
            need = 2 + get_u16(p + i);
            need += 2 + get_u16(p + i + need);
            break;
        default:
            return -1;
        }
        if (need > n - i)
            return -1;
        if (id == 0x13)
            pkt->server_keepalive = (uint16_t)get_u16(p + i);
        if (id == 0x1f) {
            pkt->reason = (const char *)p + i + 2;
            pkt->reason_len = need - 2;
        }
        i += need;
    }
    return 0;
}

/* Reads the properties starting at v[*at] within rem bytes; advances *at. */
static int props_at(const uint8_t *v, size_t rem, size_t *at, struct mqw_packet *pkt)
{
    size_t plen;
    int k = get_varint(v + *at, rem - *at, &plen);
    if (k <= 0 || plen > rem - *at - (size_t)k)
        return -1;
    if (read_props(v + *at + (size_t)k, plen, pkt) != 0)
        return -1;
    *at += (size_t)k + plen;
    return 0;
}

/* The head of a PUBLISH: topic, packet id, properties.  v holds have bytes
 * (at most rem) of the rem-byte variable part.  Returns the payload's offset
 * in v, 0 if the head is not all in have, or -1 if malformed. */
static long publish_head(const uint8_t *v, size_t have, size_t rem, int v5, struct mqw_packet *pkt)
{
    if (pkt->qos == 3 || rem < 2)
        return -1;
    if (have < 2)
        return 0;
    size_t tl = get_u16(v), at = 2 + tl + (pkt->qos ? 2 : 0);
    if (at > rem || (v5 && at == rem))
        return -1; /* MQTT 5: the property length is missing */
    if (have < at + (v5 ? 1 : 0))
        return 0;
    if (v5) {
        size_t plen;
        int k = get_varint(v + at, have - at, &plen);
        if (k < 0)
            return -1;
        if (k == 0)
            return have >= rem ? -1 : 0;
        if (plen > rem - at - (size_t)k)
            return -1;
        if (have < at + (size_t)k + plen)
            return 0;
        if (read_props(v + at + (size_t)k, plen, pkt) != 0)
            return -1;
        at += (size_t)k + plen;
    }
    pkt->topic = (const char *)v + 2;
    pkt->topic_len = tl;
    if (pkt->qos) {
        pkt->mid = (uint16_t)get_u16(v + 2 + tl);
        if (!pkt->mid)
            return -1; /* 2.3.1: a packet id is never 0 */
    }
    return (long)at;
}

int mqw_parse(const uint8_t *buf, size_t len, struct mqw_packet *pkt)
{
    /* A device subscribes to nothing: a longer packet is wrong at once. */
    pkt->length = 0;
    int n = mqw_parse_in(buf, len, 4, MQW_MAX_INCOMING, pkt);
    return n == -2 || (n == 0 && pkt->length > MQW_MAX_INCOMING) ? -1 : n;
}

int mqw_parse_in(const uint8_t *buf, size_t len, int version, size_t max_len, struct mqw_packet *pkt)
{
    if (len < 2)
        return 0;
    uint8_t type = buf[0] >> 4, flags = buf[0] & 0x0f;
    int v5 = version == 5;
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
    memset(pkt, 0, sizeof(*pkt));
    pkt->type = type;
    pkt->flags = flags;
    pkt->length = (uint32_t)(i + rem);
    const uint8_t *v = buf + i;
    if (i + rem > max_len) {
        /* Too long to take whole: a PUBLISH is read by its head. */
        if (type != MQW_PUBLISH)
            return -1;
        pkt->qos = (uint8_t)(flags >> 1 & 3);
        size_t have = len - i < rem ? len - i : rem;
        long at = publish_head(v, have, rem, v5, pkt);
        if (at < 0 || (at == 0 && len >= max_len))
            return -1; /* not even its head fits */
        if (at == 0)
            return 0;
        pkt->payload = v + at;
        pkt->payload_len = have - (size_t)at;
        return -2;
    }
    if (len < i + rem)
        return 0;
    size_t at = 0;
    switch (type) {
    case MQW_CONNACK:
        if (flags || rem < 2 || (!v5 && rem != 2) || (v[0] & 0xfe))
            return -1;
        pkt->session_present = v[0];
        pkt->return_code = v[1];
        at = 2;
        if (v5 && rem > 2 && (props_at(v, rem, &at, pkt) != 0 || at != rem))
            return -1;
        break;
    case MQW_PUBACK:
        if (flags || rem < 2 || (!v5 && rem != 2))
            return -1;
        pkt->mid = (uint16_t)get_u16(v);
        break;
    case MQW_PINGRESP:
        if (flags || rem != 0)
            return -1;
        break;
    case MQW_PUBLISH: {
        pkt->qos = (uint8_t)(flags >> 1 & 3);
        long off = publish_head(v, rem, rem, v5, pkt);
        if (off <= 0)
            return -1;
        pkt->payload = v + off;
        pkt->payload_len = rem - (size_t)off;
        break;
    }
    case MQW_SUBACK:
        if (flags || rem < 3)
            return -1;
        pkt->mid = (uint16_t)get_u16(v);
        at = 2;
        if (v5 && props_at(v, rem, &at, pkt) != 0)
            return -1;
        if (at >= rem)
            return -1; /* no return codes */
        pkt->codes = v + at;
        pkt->ncodes = rem - at;
        break;
    case MQW_DISCONNECT:
        if (flags || (!v5 && rem != 0))
            return -1;
        if (rem >= 1)
            pkt->return_code = v[0];
        at = 1;
        if (rem > 1 && (props_at(v, rem, &at, pkt) != 0 || at != rem))
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
        return rc >= 0x80 ? mqw_reason_string(rc) : "connection refused: unknown reason";
    }
}

const char *mqw_reason_string(int rc)
{
    switch (rc) {
    case 0x00:
        return "success";
    case 0x01:
        return "granted QoS 1";
    case 0x02:
        return "granted QoS 2";
    case 0x04:
        return "disconnect with will message";
    case 0x80:
        return "unspecified error";
    case 0x81:
        return "malformed packet";
    case 0x82:
        return "protocol error";
    case 0x83:
        return "implementation specific error";
    case 0x84:
        return "unsupported protocol version";
    case 0x85:
        return "client identifier not valid";
    case 0x86:
        return "bad user name or password";
    case 0x87:
        return "not authorized";
    case 0x88:
        return "server unavailable";
    case 0x89:
        return "server busy";
    case 0x8a:
        return "banned";
    case 0x8b:
        return "server shutting down";
    case 0x8d:
        return "keep alive timeout";
    case 0x8e:
        return "session taken over";
    case 0x8f:
        return "topic filter invalid";
    case 0x91:
        return "packet identifier in use";
    case 0x93:
        return "receive maximum exceeded";
    case 0x95:
        return "packet too large";
    case 0x97:
        return "quota exceeded";
    case 0x9c:
        return "use another server";
    case 0x9d:
        return "server moved";
    case 0x9e:
        return "shared subscriptions not supported";
    case 0x9f:
        return "connection rate exceeded";
    case 0xa1:
        return "subscription identifiers not supported";
    case 0xa2:
        return "wildcard subscriptions not supported";
    default:
        return "unknown reason";
    }
}
