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

/* The size of the value of property id at p[i..n) (2.2.2.2).  Returns 0
 * with *need set, or -1 if the property is unknown or runs past n. */
static int prop_size(const uint8_t *p, size_t n, size_t i, uint8_t id, size_t *need)
{
    switch (id) {
    case 0x01:
    case 0x17:
    case 0x19:
    case 0x24:
    case 0x25:
    case 0x28:
    case 0x29:
    case 0x2a:
        *need = 1;
        break;
    case 0x13:
    case 0x21:
    case 0x22:
    case 0x23:
        *need = 2;
        break;
    case 0x02:
    case 0x11:
    case 0x18:
    case 0x27:
        *need = 4;
        break;
    case 0x0b: {
        size_t v;
        int k = get_varint(p + i, n - i, &v);
        if (k <= 0)
            return -1;
        *need = (size_t)k;
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
        *need = 2 + get_u16(p + i);
        break;
    case 0x26: /* user property: a pair of strings */
        if (n - i < 2 || n - i - 2 < get_u16(p + i) + 2)
            return -1;
        *need = 2 + get_u16(p + i);
        *need += 2 + get_u16(p + i + *need);
        break;
    default:
        return -1;
    }
    return *need > n - i ? -1 : 0;
}

/* Walks n bytes of MQTT 5 properties, noting the ones a client reads.
 * Returns 0, or -1 if a property is unknown or runs past n. */
static int read_props(const uint8_t *p, size_t n, struct mqw_packet *pkt)
{
    size_t i = 0;
    while (i < n) {
        uint8_t id = p[i++];
        size_t need;
        if (prop_size(p, n, i, id, &need) != 0)
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

/* ---- server side -------------------------------------------------------- */

/* A length-prefixed string or binary field at v[*at..rem).  Returns 0 and
 * advances *at, or -1 if it runs past rem. */
static int get_field(const uint8_t *v, size_t rem, size_t *at, const uint8_t **s, size_t *n)
{
    if (rem - *at < 2)
        return -1;
    *n = get_u16(v + *at);
    if (rem - *at - 2 < *n)
        return -1;
    *s = v + *at + 2;
    *at += 2 + *n;
    return 0;
}

/* The properties of a packet from a client at v[*at..rem): their length,
 * then each one, which must be one that packet may carry (allowed, a string
 * of property ids).  CONNECT's values go into c (may be NULL).  Returns 0
 * and advances *at, or -1 with *reason. */
static int client_props(const uint8_t *v, size_t rem, size_t *at, const char *allowed, struct mqw_connect_in *c,
                        uint8_t *reason)
{
    size_t plen;
    int k = get_varint(v + *at, rem - *at, &plen);
    *reason = MQW_RC_MALFORMED;
    if (k <= 0 || plen > rem - *at - (size_t)k)
        return -1;
    const uint8_t *p = v + *at + k;
    size_t i = 0;
    uint32_t seen = 0; /* the non-repeatable ones seen, by a bit of their id */
    while (i < plen) {
        uint8_t id = p[i++];
        size_t need;
        if (!strchr(allowed, (char)id) || id == 0) {
            *reason = MQW_RC_PROTOCOL_ERROR;
            return -1;
        }
        if (prop_size(p, plen, i, id, &need) != 0)
            return -1;
        if (id != 0x26) {
            uint32_t bit = 1u << (id & 31);
            if (seen & bit) {
                *reason = MQW_RC_PROTOCOL_ERROR; /* 3.1.2.11: each at most once */
                return -1;
            }
            seen |= bit;
        }
        if (c) {
            if (id == 0x11)
                c->session_expiry_s = (uint32_t)get_u16(p + i) << 16 | (uint32_t)get_u16(p + i + 2);
            if (id == 0x21)
                c->receive_max = (uint16_t)get_u16(p + i);
            if (id == 0x27)
                c->max_packet_size = (uint32_t)get_u16(p + i) << 16 | (uint32_t)get_u16(p + i + 2);
            if (id == 0x15)
                c->auth_method = 1;
            if ((id == 0x21 && !c->receive_max) || (id == 0x27 && !c->max_packet_size) ||
                ((id == 0x17 || id == 0x19) && p[i] > 1)) {
                *reason = MQW_RC_PROTOCOL_ERROR; /* 3.1.2.11.3, .4, .6, .7 */
                return -1;
            }
        }
        i += need;
    }
    *at += (size_t)k + plen;
    return 0;
}

/* CONNECT's and the will's properties (3.1.2.11, 3.1.3.2), as strings of
 * property ids. */
static const char connect_props[] = "\x11\x21\x27\x22\x19\x17\x26\x15\x16";
static const char will_props[] = "\x18\x01\x02\x03\x08\x09\x26";
/* No Topic Alias (0x23): the CONNACK announces none (Topic Alias Maximum 0). */
static const char publish_props[] = "\x01\x02\x08\x09\x26\x03";
static const char sub_props[] = "\x0b\x26";
static const char unsub_props[] = "\x26";
static const char disconnect_props[] = "\x11\x1f\x26\x1c";

static int parse_connect(const uint8_t *v, size_t rem, struct mqw_connect_in *c, uint8_t *reason)
{
    size_t at = 0, n;
    const uint8_t *s;
    *reason = MQW_RC_MALFORMED;
    if (get_field(v, rem, &at, &s, &n) != 0)
        return -1;
    if (rem - at < 1)
        return -1;
    uint8_t level = v[at++];
    int mqtt = n == 4 && memcmp(s, "MQTT", 4) == 0;
    if (n == 6 && memcmp(s, "MQIsdp", 6) == 0 && level == 3) {
        c->version = 3; /* MQTT 3.1: answered "unacceptable protocol version" */
        *reason = MQW_RC_BAD_VERSION;
        return -1;
    }
    if (!mqtt)
        return -1; /* 3.1.2.1: not MQTT at all, no CONNACK */
    if (level != 4 && level != 5) {
        c->version = level;
        *reason = MQW_RC_BAD_VERSION;
        return -1;
    }
    c->version = level;
    if (rem - at < 3)
        return -1;
    uint8_t flags = v[at];
    c->keepalive_s = (uint16_t)get_u16(v + at + 1);
    at += 3;
    c->clean_start = (flags & 0x02) != 0;
    c->will_qos = flags >> 3 & 3;
    c->will_retain = (flags & 0x20) != 0;
    /* 3.1.2.3: the reserved flag is 0; 3.1.2.9-11: will QoS and retain only
     * with a will, QoS 3 never; 3.1.1 3.1.2.9: a password needs a user. */
    if ((flags & 0x01) || c->will_qos == 3 || (!(flags & 0x04) && (c->will_qos || c->will_retain)) ||
        (level == 4 && (flags & 0x40) && !(flags & 0x80)))
        return -1;
    if (level == 5 && client_props(v, rem, &at, connect_props, c, reason) != 0)
        return -1;
    *reason = MQW_RC_MALFORMED;
    if (get_field(v, rem, &at, &s, &c->client_id_len) != 0)
        return -1;
    c->client_id = (const char *)s;
    if (flags & 0x04) {
        if (level == 5 && client_props(v, rem, &at, will_props, NULL, reason) != 0)
            return -1;
        *reason = MQW_RC_MALFORMED;
        if (get_field(v, rem, &at, &s, &c->will_topic_len) != 0)
            return -1;
        c->will_topic = (const char *)s;
        if (get_field(v, rem, &at, &c->will_payload, &c->will_len) != 0)
            return -1;
    }
    if (flags & 0x80) {
        if (get_field(v, rem, &at, &s, &c->user_len) != 0)
            return -1;
        c->user = (const char *)s;
    }
    if (flags & 0x40 && get_field(v, rem, &at, &c->pass, &c->pass_len) != 0)
        return -1;
    return at == rem ? 0 : -1;
}

/* 1 if a PUBLISH may name topic: not empty (no topic aliases here), no
 * wildcard, no NUL (4.7.3, 1.5.4). */
static int valid_topic_name(const char *t, size_t n)
{
    if (!n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (t[i] == '+' || t[i] == '#' || t[i] == '\0')
            return 0;
    return 1;
}

/* SUBSCRIBE's (each filter then an options byte) or UNSUBSCRIBE's filters. */
static int count_filters(const uint8_t *v, size_t rem, size_t at, int options, size_t *count)
{
    *count = 0;
    while (at < rem) {
        const uint8_t *s;
        size_t n;
        if (get_field(v, rem, &at, &s, &n) != 0 || (options && at++ >= rem))
            return -1;
        ++*count;
    }
    return *count ? 0 : -1; /* 3.8.3, 3.10.3: at least one */
}

int mqw_parse_client(const uint8_t *buf, size_t len, int version, size_t max_len, struct mqw_in *in, uint8_t *reason)
{
    *reason = MQW_RC_MALFORMED;
    if (len < 1)
        return 0;
    uint8_t type = buf[0] >> 4, flags = buf[0] & 0x0f;
    /* Before CONNECT only CONNECT, after it never again (3.1.0-1, -2):
     * known from the first byte, before waiting for the rest. */
    if ((version == 0) != (type == MQW_CONNECT)) {
        *reason = MQW_RC_PROTOCOL_ERROR;
        return MQW_IN_MALFORMED;
    }
    if (len < 2)
        return 0;
    size_t rem = 0, i = 1;
    for (int shift = 0;; shift += 7) {
        if (i > 4)
            return MQW_IN_MALFORMED; /* a fifth length byte */
        if (i >= len)
            return 0;
        uint8_t b = buf[i++];
        rem |= (size_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    if (i + rem > max_len)
        return MQW_IN_TOO_LARGE;
    if (len < i + rem)
        return 0;
    memset(in, 0, sizeof(*in));
    in->type = type;
    in->flags = flags;
    in->length = (uint32_t)(i + rem);
    const uint8_t *v = buf + i;
    int v5 = version == 5;
    size_t at = 0;
    switch (type) {
    case MQW_CONNECT:
        if (flags || parse_connect(v, rem, &in->connect, reason) != 0)
            return MQW_IN_MALFORMED;
        break;
    case MQW_PUBLISH: {
        struct mqw_packet pk;
        memset(&pk, 0, sizeof(pk));
        pk.qos = flags >> 1 & 3;
        /* 3.3.1.2: a QoS 0 message is never a duplicate. */
        if (pk.qos == 3 || (pk.qos == 0 && (flags & MQW_DUP_BIT)))
            return MQW_IN_MALFORMED;
        if (rem < 2 || 2 + get_u16(v) + (pk.qos ? 2u : 0u) > rem)
            return MQW_IN_MALFORMED;
        at = 2 + get_u16(v) + (pk.qos ? 2 : 0);
        if (v5 && client_props(v, rem, &at, publish_props, NULL, reason) != 0)
            return MQW_IN_MALFORMED;
        if (publish_head(v, rem, rem, v5, &pk) <= 0) {
            *reason = pk.qos && rem >= 4 && !get_u16(v + 2 + get_u16(v)) ? MQW_RC_PROTOCOL_ERROR : MQW_RC_MALFORMED;
            return MQW_IN_MALFORMED;
        }
        if (!valid_topic_name(pk.topic, pk.topic_len)) {
            *reason = MQW_RC_TOPIC_INVALID;
            return MQW_IN_MALFORMED;
        }
        in->qos = pk.qos;
        in->retain = flags & 1;
        in->mid = pk.mid;
        in->topic = pk.topic;
        in->topic_len = pk.topic_len;
        in->payload = v + at;
        in->payload_len = rem - at;
        break;
    }
    case MQW_SUBSCRIBE:
    case MQW_UNSUBSCRIBE:
        if (flags != 0x02 || rem < 2)
            return MQW_IN_MALFORMED; /* 3.8.1: reserved flags 0010 */
        in->mid = (uint16_t)get_u16(v);
        at = 2;
        if (!in->mid) {
            *reason = MQW_RC_PROTOCOL_ERROR;
            return MQW_IN_MALFORMED;
        }
        if (v5 && client_props(v, rem, &at, type == MQW_SUBSCRIBE ? sub_props : unsub_props, NULL, reason) != 0)
            return MQW_IN_MALFORMED;
        *reason = MQW_RC_MALFORMED;
        if (count_filters(v, rem, at, type == MQW_SUBSCRIBE, &in->nfilters) != 0)
            return MQW_IN_MALFORMED;
        break;
    case MQW_PINGREQ:
        if (flags || rem)
            return MQW_IN_MALFORMED;
        break;
    case MQW_DISCONNECT:
        if (flags || (!v5 && rem))
            return MQW_IN_MALFORMED;
        if (rem >= 1)
            in->reason = v[0];
        at = 1;
        if (rem > 1 && (client_props(v, rem, &at, disconnect_props, NULL, reason) != 0 || at != rem))
            return MQW_IN_MALFORMED;
        break;
    default:
        /* 0 and 15 (3.1.1) are reserved; the rest answer what a server
         * sends or need QoS 2 or enhanced authentication: none here. */
        *reason = type == 0 || (type == 15 && !v5) ? MQW_RC_MALFORMED : MQW_RC_PROTOCOL_ERROR;
        return MQW_IN_MALFORMED;
    }
    return (int)in->length;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    p = put_u16(p, v >> 16);
    return put_u16(p, v & 0xffff);
}

size_t mqw_encode_connack(uint8_t *out, size_t size, int version, int session_present, uint8_t rc,
                          const struct mqw_connack_props *props)
{
    static const struct mqw_connack_props none;
    if (version != 5) {
        if (size < 4)
            return 0;
        out[0] = MQW_CONNACK << 4;
        out[1] = 2;
        out[2] = session_present && !rc ? 1 : 0;
        out[3] = rc;
        return 4;
    }
    const struct mqw_connack_props *p = props ? props : &none;
    size_t aid = p->assigned_client_id ? strlen(p->assigned_client_id) : 0;
    size_t rs = p->reason ? strlen(p->reason) : 0;
    if (aid > 1024 || rs > 1024)
        return 0;
    size_t plen = rs ? 3 + rs : 0;
    if (!rc)
        plen += (p->receive_max ? 3 : 0) + (p->max_packet_size ? 5 : 0) + (p->server_keepalive_s ? 3 : 0) +
                (aid ? 3 + aid : 0) + 2 + 2 + 2 + 2 + 2; /* max QoS, retain, wildcard, sub ids, shared */
    size_t rem = 2 + varint_size(plen) + plen;
    if (1 + varint_size(rem) + rem > size)
        return 0;
    uint8_t *o = out;
    *o++ = MQW_CONNACK << 4;
    o = put_varint(o, rem);
    *o++ = session_present && !rc ? 1 : 0;
    *o++ = rc;
    o = put_varint(o, plen);
    if (!rc) {
        if (p->receive_max) {
            *o++ = 0x21;
            o = put_u16(o, p->receive_max);
        }
        if (p->max_packet_size) {
            *o++ = 0x27;
            o = put_u32(o, p->max_packet_size);
        }
        if (p->server_keepalive_s) {
            *o++ = 0x13;
            o = put_u16(o, p->server_keepalive_s);
        }
        if (aid) {
            *o++ = 0x12;
            o = put_str(o, p->assigned_client_id, aid);
        }
        static const uint8_t fixed[] = {0x24, 1, 0x25, 0, 0x28, 0, 0x29, 0, 0x2a, 0};
        memcpy(o, fixed, sizeof(fixed));
        o += sizeof(fixed);
    }
    if (rs) {
        *o++ = 0x1f;
        o = put_str(o, p->reason, rs);
    }
    return (size_t)(o - out);
}

size_t mqw_encode_puback_rc(uint8_t *out, size_t size, int version, uint16_t mid, uint8_t rc)
{
    if (version != 5 || !rc)
        return mqw_encode_puback(out, size, mid);
    if (size < 5)
        return 0;
    out[0] = MQW_PUBACK << 4;
    out[1] = 3;
    out[2] = (uint8_t)(mid >> 8);
    out[3] = (uint8_t)mid;
    out[4] = rc;
    return 5;
}

/* SUBACK or UNSUBACK: packet id, MQTT 5 empty properties, n codes. */
static size_t encode_acks(uint8_t *out, size_t size, int type, int version, uint16_t mid, size_t n, uint8_t code)
{
    size_t rem = 2 + (version == 5 ? 1 : 0) + n;
    if (rem > MAX_REMAINING || 1 + varint_size(rem) + rem > size)
        return 0;
    uint8_t *p = out;
    *p++ = (uint8_t)(type << 4);
    p = put_varint(p, rem);
    p = put_u16(p, mid);
    if (version == 5)
        *p++ = 0;
    memset(p, code, n);
    return (size_t)(p - out) + n;
}

size_t mqw_encode_suback_refusal(uint8_t *out, size_t size, int version, uint16_t mid, size_t n, uint8_t rc)
{
    return encode_acks(out, size, MQW_SUBACK, version, mid, n, version == 5 ? rc : 0x80);
}

size_t mqw_encode_unsuback(uint8_t *out, size_t size, int version, uint16_t mid, size_t n)
{
    return encode_acks(out, size, MQW_UNSUBACK, version, mid, version == 5 ? n : 0, MQW_RC_NO_SUBSCRIPTION);
}

size_t mqw_encode_disconnect(uint8_t *out, size_t size, uint8_t rc)
{
    if (size < 3)
        return 0;
    out[0] = MQW_DISCONNECT << 4;
    out[1] = 1;
    out[2] = rc;
    return 3;
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
