/*
 * fuzz_ingest_session.c - libFuzzer target for the ingest's per-connection
 * state machine (src/ingest/session.c), driven without sockets or Kafka.
 *
 * The input is a script: each step's first byte picks what happens next —
 * the client's next bytes arrive (as many as the following byte says), the
 * oldest or any outstanding record gets its delivery report (ok or
 * failed), Kafka's queue fills or drains, the server ends the session.
 * The first byte also picks whether the ACL lets everything through.
 *
 * Properties checked on every input (abort() on violation):
 *   - every byte the session writes parses, as a client reads it
 *     (mqw_parse_in), into whole packets of types a server sends;
 *   - the first packet is a CONNACK, and only an accepted CONNECT is
 *     followed by anything;
 *   - with everything allowed, the PUBACKs' packet ids come in exactly the
 *     order their records were produced, and each only after its record's
 *     delivery report said ok; a failed record gets no PUBACK and ends the
 *     session;
 *   - no more than Receive Maximum records wait; out stays within
 *     ISES_OUT_MAX; nothing is written once the session ended; input is
 *     never consumed past what was given.
 */
#include "ingest/session.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RECV_MAX 20 /* above ISES_RING_START: the ring grows */
#define RECS 8192

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_ingest_session: %s\n", what);
        abort();
    }
}

/* A QoS 1 record the session produced, in the order produced. */
struct rec {
    struct ises_pend *slot;
    uint16_t mid;
    int status; /* 0 waiting for its report, 1 ok, 2 failed */
};

struct world {
    int allow_all;
    int full; /* Kafka's queue is full */
    struct rec recs[RECS];
    size_t nrecs, pubacks;
    int saw_connack, accepted, ended, version;
};

static uint8_t login(void *ctx, struct ises *s, const struct mqw_connect_in *m, char *account)
{
    (void)ctx;
    (void)s;
    if (m->user_len == 3 && memcmp(m->user, "bad", 3) == 0)
        return MQW_RC_BAD_LOGIN;
    snprintf(account, MQA_ID_MAX + 1, "T1");
    return 0;
}

static int may_publish(void *ctx, const char *account, const char *topic, size_t topic_len)
{
    struct world *w = ctx;
    (void)account;
    (void)topic;
    return w->allow_all || topic_len % 2 == 0;
}

static int waiting(const struct world *w)
{
    int n = 0;
    for (size_t i = 0; i < w->nrecs; i++)
        n += w->recs[i].status == 0;
    return n;
}

static int produce(void *ctx, const char *topic, size_t topic_len, const void *payload, size_t payload_len,
                   struct ises_pend *slot)
{
    struct world *w = ctx;
    (void)topic;
    (void)topic_len;
    (void)payload;
    (void)payload_len;
    if (w->full && slot)
        return 1;
    if (slot) {
        check(waiting(w) < RECV_MAX, "more records in flight than Receive Maximum");
        check(w->nrecs < RECS, "script too long");
        w->recs[w->nrecs++] = (struct rec){slot, slot->mid, 0};
    }
    return 0;
}

static void refused(void *ctx, enum ing_refusal why)
{
    (void)ctx;
    check(why < REF_COUNT, "unknown refusal");
}

static void acked(void *ctx, int64_t t_ms)
{
    (void)ctx;
    (void)t_ms;
}

static int64_t now_ms(void *ctx)
{
    (void)ctx;
    return 0;
}

static const struct ises_ops ops = {login, may_publish, produce, refused, acked, now_ms};

/* Takes what the session wrote, as the client would read it. */
static void drain(struct world *w, struct ises *s)
{
    size_t off = 0;
    check(s->out_len <= ISES_OUT_MAX, "out past its bound");
    if (w->ended)
        check(s->out_len == 0, "written after the session ended");
    while (off < s->out_len) {
        struct mqw_packet pk;
        /* before OPEN the version is the CONNECT's: an MQTT 5 CONNACK is longer */
        int v = w->version ? w->version : s->out_len - off > 1 && s->out[off + 1] > 2 ? 5 : 4;
        int n = mqw_parse_in(s->out + off, s->out_len - off, v, 1024, &pk);
        if (n <= 0) { /* say what it was */
            for (size_t k = off; k < s->out_len; k++)
                fprintf(stderr, "%02x ", s->out[k]);
            fprintf(stderr, "(read as MQTT %s)\n", v == 5 ? "5" : "3.1.1");
        }
        check(n > 0, "the session wrote something a client cannot parse");
        if (!w->saw_connack) {
            check(pk.type == MQW_CONNACK, "the first packet is not a CONNACK");
            w->saw_connack = 1;
            w->accepted = pk.return_code == 0;
        } else {
            check(w->accepted, "a packet after a refused CONNECT");
            check(pk.type == MQW_PUBACK || pk.type == MQW_PINGRESP || pk.type == MQW_SUBACK ||
                      pk.type == MQW_UNSUBACK || pk.type == MQW_DISCONNECT,
                  "a packet a server does not send");
        }
        if (pk.type == MQW_PUBACK && w->allow_all) {
            check(w->pubacks < w->nrecs, "a PUBACK for no PUBLISH");
            check(w->recs[w->pubacks].status == 1, "a PUBACK before Kafka acknowledged its record");
            check(pk.mid == w->recs[w->pubacks].mid, "PUBACKs out of the PUBLISHes' order");
            w->pubacks++;
        }
        off += (size_t)n;
    }
    s->out_len = 0;
}

/* The k-th (mod their number) record still waiting gets its report. */
static void deliver(struct world *w, int k, int ok)
{
    int n = waiting(w);
    if (!n)
        return;
    k %= n;
    for (size_t i = 0; i < w->nrecs; i++)
        if (w->recs[i].status == 0 && k-- == 0) {
            w->recs[i].status = ok ? 1 : 2;
            ises_delivered(w->recs[i].slot, ok);
            return;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct world w;
    struct ises s;
    memset(&w, 0, sizeof(w));
    if (!size)
        return 0;
    w.allow_all = data[0] & 1;
    ises_init(&s, &ops, &w, 512, RECV_MAX);
    uint8_t buf[1024];
    size_t blen = 0, i = 1;
    while (i < size) {
        uint8_t op = data[i++];
        switch (op % 5) {
        case 0:
        case 1: { /* bytes arrive */
            size_t n = i < size ? data[i++] : 0;
            if (n > size - i)
                n = size - i;
            if (n > sizeof(buf) - blen)
                n = sizeof(buf) - blen;
            memcpy(buf + blen, data + i, n);
            blen += n;
            i += n;
            break;
        }
        case 2: /* a record's delivery report: which one, ok or failed */
            deliver(&w, i < size ? data[i++] : 0, !(op & 0x80));
            break;
        case 3:
            w.full = !w.full;
            break;
        case 4: /* the server ends it (timer, takeover, EOF) */
            ises_end(&s, op & 0x80, op & 0x40 ? MQW_RC_KEEPALIVE_TIMEOUT : 0);
            break;
        }
        if (s.state != ISES_CLOSED) {
            size_t used = 0;
            enum ises_status st = ises_input(&s, buf, blen, &used);
            check(used <= blen, "consumed past the input");
            memmove(buf, buf + used, blen - used);
            blen -= used;
            if (s.version)
                w.version = s.version; /* set on CONNACK 0, kept when it ends */
            check((st == ISES_ENDED) == (s.state == ISES_CLOSED), "ENDED without CLOSED");
        }
        check(s.head - s.tail <= s.cap, "ring overflow");
        drain(&w, &s);
        if (s.state == ISES_CLOSED)
            w.ended = 1;
    }
    while (waiting(&w))
        deliver(&w, 0, 1);
    drain(&w, &s);
    check(s.refs == 0, "reports outstanding after all were delivered");
    ises_release(&s);
    return 0;
}
