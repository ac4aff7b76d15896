/*
 * session.c - one client connection's MQTT protocol in the ingest (see
 * session.h).
 *
 * States and what moves them:
 *
 *   WAIT_CONNECT  only a CONNECT may come.  Accepted (login, will checked):
 *                 CONNACK 0, OPEN.  Refused: CONNACK with the reason (3.1.1:
 *                 the closest return code), CLOSED.  Anything else: CLOSED.
 *   OPEN          PUBLISH QoS 0/1, PINGREQ, SUBSCRIBE and UNSUBSCRIBE (each
 *                 refused with its ack), DISCONNECT (CLOSED, no will).  A
 *                 malformed packet, one past max_packet, QoS 2, (MQTT 5) a
 *                 retained PUBLISH, more QoS 1 in flight than Receive Maximum
 *                 (MQTT 5), a record Kafka refused: CLOSED with the will and
 *                 (MQTT 5) a DISCONNECT saying why.
 *   CLOSED        nothing comes in or goes out any more; delivery reports of
 *                 records still in flight only count down refs.
 *
 * Invariants: PUBACKs leave in the order their PUBLISHes came (the ring's
 * done prefix is released, never a later slot before an earlier one); a
 * PUBACK of a produced record leaves only after its delivery report said
 * Kafka has it; at most cap QoS 1 PUBLISHes wait; out never holds more than
 * out_max (<= ISES_OUT_MAX) bytes.
 */
#include "ingest/session.h"

#include <stdlib.h>
#include <string.h>

void ises_init(struct ises *s, const struct ises_ops *ops, void *ctx, size_t max_packet, uint16_t receive_max)
{
    memset(s, 0, sizeof(*s));
    s->ops = ops;
    s->ctx = ctx;
    s->max_packet = max_packet;
    s->receive_max = receive_max ? receive_max : 1;
    s->out_max = ISES_OUT_MAX;
}

void ises_release(struct ises *s)
{
    free(s->out);
    free(s->ring);
    free(s->will_topic);
    free(s->will_payload);
    s->out = NULL;
    s->ring = NULL;
    s->will_topic = NULL;
    s->will_payload = NULL;
}

/* Appends to out; 0, or -1 past out_max (or out of memory). */
static int put(struct ises *s, const uint8_t *p, size_t n)
{
    if (s->out_len + n > s->out_max || s->out_len + n > ISES_OUT_MAX)
        return -1;
    if (s->out_len + n > s->out_cap) {
        size_t cap = s->out_cap ? s->out_cap * 2 : 256;
        while (cap < s->out_len + n)
            cap *= 2;
        uint8_t *o = realloc(s->out, cap);
        if (!o)
            return -1;
        s->out = o;
        s->out_cap = cap;
    }
    memcpy(s->out + s->out_len, p, n);
    s->out_len += n;
    return 0;
}

void ises_end(struct ises *s, int send_will, uint8_t rc)
{
    if (s->state == ISES_CLOSED)
        return;
    if (rc && s->version == 5 && s->state == ISES_OPEN) {
        uint8_t d[3];
        put(s, d, mqw_encode_disconnect(d, sizeof(d), rc));
    }
    if (send_will && s->state == ISES_OPEN && s->will_topic)
        s->will_sent =
            s->ops->produce(s->ctx, s->will_topic, strlen(s->will_topic), s->will_payload, s->will_len, NULL) == 0;
    s->state = ISES_CLOSED;
}

/* An empty ring below Receive Maximum doubles (up to it): nothing points
 * into an empty ring, so it may move.  0, or -1 (out of memory: it stays). */
static int grow(struct ises *s)
{
    uint32_t cap = s->cap * 2 < s->receive_max ? s->cap * 2 : s->receive_max;
    struct ises_pend *r = realloc(s->ring, cap * sizeof(*r));
    if (!r)
        return -1;
    s->ring = r;
    s->cap = cap;
    s->head = s->tail = 0;
    return 0;
}

/* The done prefix of the ring leaves as PUBACKs, in order.  1 if slots
 * were freed while the ring was full and input may go on. */
static int release(struct ises *s)
{
    int freed = 0;
    while (s->tail != s->head && s->ring[s->tail % s->cap].done) {
        struct ises_pend *p = &s->ring[s->tail % s->cap];
        if (p->failed && s->state == ISES_OPEN)
            ises_end(s, 1, MQW_RC_UNSPECIFIED); /* no PUBACK: the client sends it again */
        if (s->state == ISES_OPEN) {
            uint8_t a[5];
            if (put(s, a, mqw_encode_puback_rc(a, sizeof(a), s->version, p->mid, p->rc)) != 0) {
                s->ops->refused(s->ctx, REF_SLOW_READER);
                ises_end(s, 1, 0);
            } else {
                s->ops->acked(s->ctx, p->t_ms);
            }
        }
        s->tail++;
        freed = 1;
    }
    if (freed && s->blocked) {
        /* A ring smaller than Receive Maximum was full: input waits until
         * it is empty and has doubled (a failed grow: any free slot will do). */
        if (s->cap < s->receive_max && s->state == ISES_OPEN) {
            if (s->head != s->tail)
                return 0;
            grow(s);
        }
        s->blocked = 0;
        return s->state == ISES_OPEN;
    }
    return 0;
}

int ises_delivered(struct ises_pend *slot, int ok)
{
    struct ises *s = slot->s;
    slot->done = 1;
    slot->failed = !ok;
    s->refs--;
    return s->state == ISES_CLOSED || s->defer ? 0 : release(s);
}

int ises_release_done(struct ises *s)
{
    return s->state == ISES_CLOSED ? 0 : release(s);
}

/* A 3.1.1 CONNACK return code for an MQTT 5 reason. */
static uint8_t v3_code(uint8_t rc)
{
    switch (rc) {
    case MQW_RC_BAD_VERSION:
        return 1;
    case MQW_RC_BAD_CLIENT_ID:
        return 2;
    case MQW_RC_SERVER_BUSY:
        return 3;
    case MQW_RC_BAD_LOGIN:
        return 4;
    default:
        return 5;
    }
}

static enum ing_refusal refusal_of(uint8_t rc)
{
    switch (rc) {
    case MQW_RC_BAD_LOGIN:
        return REF_BAD_LOGIN;
    case MQW_RC_BAD_VERSION:
        return REF_BAD_VERSION;
    case MQW_RC_QOS_UNSUPPORTED:
        return REF_QOS2;
    case MQW_RC_RETAIN_UNSUPPORTED:
        return REF_RETAIN;
    case MQW_RC_SERVER_BUSY:
        return REF_TOO_MANY;
    default:
        return REF_NOT_AUTHORIZED;
    }
}

static void refuse_connect(struct ises *s, int version, uint8_t rc)
{
    uint8_t out[64];
    size_t n = version == 5 ? mqw_encode_connack(out, sizeof(out), 5, 0, rc, NULL)
                            : mqw_encode_connack(out, sizeof(out), 4, 0, v3_code(rc), NULL);
    put(s, out, n);
    s->ops->refused(s->ctx, refusal_of(rc));
    s->state = ISES_CLOSED;
}

static void on_connect(struct ises *s, const struct mqw_connect_in *m)
{
    int v = m->version;
    char account[MQA_ID_MAX + 1] = "";
    uint8_t rc = 0;
    if (m->will_topic && m->will_qos == 2 && v == 5)
        rc = MQW_RC_QOS_UNSUPPORTED;
    else if (m->will_topic && m->will_retain && v == 5)
        rc = MQW_RC_RETAIN_UNSUPPORTED;
    if (!rc)
        rc = s->ops->login(s->ctx, s, m, account);
    if (!rc && m->will_topic && !s->ops->may_publish(s->ctx, account, m->will_topic, m->will_topic_len))
        rc = MQW_RC_NOT_AUTHORIZED;
    if (!rc && m->will_topic) {
        s->will_topic = malloc(m->will_topic_len + 1);
        s->will_payload = malloc(m->will_len ? m->will_len : 1);
        if (!s->will_topic || !s->will_payload)
            rc = MQW_RC_SERVER_BUSY;
        else {
            memcpy(s->will_topic, m->will_topic, m->will_topic_len);
            s->will_topic[m->will_topic_len] = '\0';
            memcpy(s->will_payload, m->will_payload, m->will_len);
            s->will_len = m->will_len;
        }
    }
    /* The ring starts small and doubles while a client keeps it full (most
     * trucks have one reading in flight at a time): memory per connection
     * follows what the client uses, not the Receive Maximum it was told. */
    s->cap = s->receive_max < ISES_RING_START ? s->receive_max : ISES_RING_START;
    if (!rc && !(s->ring = calloc(s->cap, sizeof(*s->ring))))
        rc = MQW_RC_SERVER_BUSY;
    if (rc) {
        refuse_connect(s, v, rc);
        return;
    }
    memcpy(s->account, account, sizeof(account));
    s->version = v;
    s->keepalive_s = m->keepalive_s;
    s->state = ISES_OPEN;
    uint8_t out[128];
    struct mqw_connack_props p = {.receive_max = s->receive_max,
                                  .max_packet_size = (uint32_t)s->max_packet,
                                  .assigned_client_id = m->client_id_len ? NULL : s->account};
    if (put(s, out, mqw_encode_connack(out, sizeof(out), v, 0, 0, &p)) != 0)
        ises_end(s, 0, 0);
}

/* A PUBLISH: 0 taken, 1 offered again later (ring or Kafka full). */
static int on_publish(struct ises *s, const struct mqw_in *in)
{
    if (in->qos == 2) {
        s->ops->refused(s->ctx, REF_QOS2);
        ises_end(s, 1, MQW_RC_QOS_UNSUPPORTED); /* 3.1.1: no way to refuse but closing */
        return 0;
    }
    if (in->retain && s->version == 5) {
        s->ops->refused(s->ctx, REF_RETAIN);
        ises_end(s, 1, MQW_RC_RETAIN_UNSUPPORTED);
        return 0;
    }
    if (in->qos == 1 && s->head - s->tail >= s->cap) {
        if (s->version == 5 && s->cap >= s->receive_max) { /* more than the Receive Maximum it was told */
            s->ops->refused(s->ctx, REF_MALFORMED);
            ises_end(s, 1, MQW_RC_RECEIVE_MAX);
            return 0;
        }
        s->blocked = 1;
        return 1;
    }
    if (!s->ops->may_publish(s->ctx, s->account, in->topic, in->topic_len)) {
        /* 3.1.1 has no refusal: acknowledged and dropped, as the broker
         * does; MQTT 5 says "not authorized" in the PUBACK. */
        s->ops->refused(s->ctx, REF_NOT_AUTHORIZED);
        if (in->qos == 1) {
            struct ises_pend *p = &s->ring[s->head++ % s->cap];
            *p = (struct ises_pend){
                .s = s, .mid = in->mid, .done = 1, .rc = MQW_RC_NOT_AUTHORIZED, .t_ms = s->ops->now_ms(s->ctx)};
            release(s);
        }
        return 0;
    }
    struct ises_pend *p = NULL;
    if (in->qos == 1) {
        p = &s->ring[s->head % s->cap];
        *p = (struct ises_pend){.s = s, .mid = in->mid, .t_ms = s->ops->now_ms(s->ctx)};
    }
    int r = s->ops->produce(s->ctx, in->topic, in->topic_len, in->payload, in->payload_len, p);
    if (r == 1)
        return 1;
    if (r < 0) {
        ises_end(s, 1, MQW_RC_UNSPECIFIED);
        return 0;
    }
    if (p) {
        s->head++;
        s->refs++;
    }
    return 0;
}

/* One packet: 0 taken, 1 offered again later. */
static int on_packet(struct ises *s, const struct mqw_in *in)
{
    uint8_t out[64];
    size_t n = 0;
    switch (in->type) {
    case MQW_CONNECT:
        on_connect(s, &in->connect);
        return 0;
    case MQW_PUBLISH:
        return on_publish(s, in);
    case MQW_PINGREQ:
        n = mqw_encode_empty(out, sizeof(out), MQW_PINGRESP);
        break;
    case MQW_SUBSCRIBE:
        s->ops->refused(s->ctx, REF_SUBSCRIBE);
        if (in->nfilters <= 32)
            n = mqw_encode_suback_refusal(out, sizeof(out), s->version, in->mid, in->nfilters, MQW_RC_NOT_AUTHORIZED);
        break;
    case MQW_UNSUBSCRIBE:
        if (in->nfilters <= 32)
            n = mqw_encode_unsuback(out, sizeof(out), s->version, in->mid, in->nfilters);
        break;
    case MQW_DISCONNECT:
        ises_end(s, s->version == 5 && in->reason == 0x04, 0);
        return 0;
    default:
        break;
    }
    if (!n || put(s, out, n) != 0) {
        if (!n)
            s->ops->refused(s->ctx, REF_MALFORMED); /* more filters than we answer */
        else
            s->ops->refused(s->ctx, REF_SLOW_READER);
        ises_end(s, 1, 0);
    }
    return 0;
}

enum ises_status ises_input(struct ises *s, const uint8_t *buf, size_t len, size_t *used)
{
    size_t off = 0;
    enum ises_status st = ISES_MORE;
    while (s->state != ISES_CLOSED && off < len) {
        struct mqw_in in;
        uint8_t why;
        int version = s->state == ISES_WAIT_CONNECT ? 0 : s->version;
        int n = mqw_parse_client(buf + off, len - off, version, s->max_packet, &in, &why);
        if (n == 0)
            break;
        if (n == MQW_IN_TOO_LARGE) {
            s->ops->refused(s->ctx, REF_TOO_LARGE);
            ises_end(s, 1, MQW_RC_PACKET_TOO_LARGE);
            break;
        }
        if (n < 0) {
            if (s->state == ISES_WAIT_CONNECT && why == MQW_RC_BAD_VERSION) {
                refuse_connect(s, in.connect.version, MQW_RC_BAD_VERSION);
                break;
            }
            s->ops->refused(s->ctx, REF_MALFORMED);
            ises_end(s, 1, why);
            break;
        }
        if (on_packet(s, &in) != 0) {
            st = ISES_STALLED;
            break;
        }
        off += (size_t)n;
    }
    *used = off;
    return s->state == ISES_CLOSED ? ISES_ENDED : st;
}
