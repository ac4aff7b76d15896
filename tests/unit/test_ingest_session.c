/* The ingest's per-connection protocol (src/ingest/session.c) without
 * sockets or Kafka: what a client is answered, and when its PUBACKs leave. */
#include "ingest/session.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

static struct {
    struct ises_pend *slots[64];
    int nslots, full, produced, wills, acks, refusals[REF_COUNT];
} w;

static uint8_t login(void *ctx, struct ises *s, const struct mqw_connect_in *m, char *account)
{
    (void)ctx;
    (void)s;
    if (!m->pass || m->pass_len != 2 || memcmp(m->pass, "pw", 2) != 0)
        return MQW_RC_BAD_LOGIN;
    snprintf(account, MQA_ID_MAX + 1, "%.*s", (int)m->user_len, m->user);
    return 0;
}

static int may_publish(void *ctx, const char *account, const char *topic, size_t topic_len)
{
    (void)ctx;
    char own[128];
    int n = snprintf(own, sizeof(own), "fleet/trucks/%s/", account);
    return topic_len > (size_t)n && memcmp(topic, own, (size_t)n) == 0;
}

static int produce(void *ctx, const char *topic, size_t topic_len, const void *payload, size_t payload_len,
                   struct ises_pend *slot)
{
    (void)ctx;
    (void)topic;
    (void)topic_len;
    (void)payload;
    if (w.full)
        return 1;
    w.produced++;
    if (slot)
        w.slots[w.nslots++] = slot;
    else if (payload_len == 7)
        w.wills++;
    return 0;
}

static void refused(void *ctx, enum ing_refusal why)
{
    (void)ctx;
    w.refusals[why]++;
}

static void acked(void *ctx, int64_t t_ms)
{
    (void)ctx;
    (void)t_ms;
    w.acks++;
}

static int64_t now_ms(void *ctx)
{
    (void)ctx;
    return 0;
}

static const struct ises_ops ops = {login, may_publish, produce, refused, acked, now_ms};
static struct ises s;

static int setup(void **state)
{
    (void)state;
    memset(&w, 0, sizeof(w));
    ises_init(&s, &ops, NULL, 1024, 4);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ises_release(&s);
    return 0;
}

static enum ises_status feed(const uint8_t *b, size_t n)
{
    size_t used = 0;
    enum ises_status st = ises_input(&s, b, n, &used);
    if (st != ISES_STALLED)
        assert_int_equal(used, n);
    return st;
}

static void connect_as(const char *user, const char *pass, int version)
{
    uint8_t b[256];
    char will[64];
    snprintf(will, sizeof(will), "fleet/trucks/%s/status", user);
    struct mqw_connect c = {.client_id = user,
                            .keepalive_s = 30,
                            .clean_session = 1,
                            .user = user,
                            .pass = pass,
                            .version = version,
                            .will_topic = will,
                            .will_payload = "offline",
                            .will_len = 7,
                            .will_qos = 1};
    feed(b, mqw_encode_connect(b, sizeof(b), &c));
}

/* A PUBLISH of "{}" in the session's version (MQTT 5: an empty property
 * list after the packet id, which the client encoder does not write). */
static size_t publish_bytes(uint8_t *b, const char *topic, int qos, uint16_t mid)
{
    size_t tl = strlen(topic), n = 0;
    size_t rem = 2 + tl + (qos ? 2 : 0) + (s.version == 5 ? 1 : 0) + 2;
    b[n++] = (uint8_t)(MQW_PUBLISH << 4 | qos << 1);
    b[n++] = (uint8_t)rem;
    b[n++] = 0;
    b[n++] = (uint8_t)tl;
    memcpy(b + n, topic, tl);
    n += tl;
    if (qos) {
        b[n++] = (uint8_t)(mid >> 8);
        b[n++] = (uint8_t)mid;
    }
    if (s.version == 5)
        b[n++] = 0;
    b[n++] = '{';
    b[n++] = '}';
    return n;
}

static void publish(const char *topic, int qos, uint16_t mid)
{
    uint8_t b[256];
    feed(b, publish_bytes(b, topic, qos, mid));
}

/* The packets in out, as a client reads them; out is emptied. */
static int take(struct mqw_packet *pk, int max)
{
    size_t off = 0;
    int n = 0;
    while (off < s.out_len && n < max) {
        int k = mqw_parse_in(s.out + off, s.out_len - off, s.version ? s.version : 4, 1024, &pk[n++]);
        assert_true(k > 0);
        off += (size_t)k;
    }
    s.out_len = 0;
    return n;
}

static void login_answers_connack_0_or_bad_login(void **state)
{
    (void)state;
    struct mqw_packet pk[4];
    connect_as("T1", "pw", 4);
    assert_int_equal(s.state, ISES_OPEN);
    assert_int_equal(take(pk, 4), 1);
    assert_int_equal(pk[0].type, MQW_CONNACK);
    assert_int_equal(pk[0].return_code, 0);
    ises_release(&s);
    ises_init(&s, &ops, NULL, 1024, 4);
    connect_as("T1", "nope", 4);
    assert_int_equal(s.state, ISES_CLOSED);
    assert_int_equal(take(pk, 4), 1);
    assert_int_equal(pk[0].return_code, 4); /* 3.1.1: bad user name or password */
    assert_int_equal(w.refusals[REF_BAD_LOGIN], 1);
}

static void pubacks_wait_for_kafka_and_keep_publish_order(void **state)
{
    (void)state;
    struct mqw_packet pk[8];
    connect_as("T1", "pw", 4);
    take(pk, 8);
    publish("fleet/trucks/T1/telemetry", 1, 11);
    publish("fleet/trucks/T1/telemetry", 1, 12);
    publish("fleet/trucks/T1/telemetry", 1, 13);
    assert_int_equal(w.nslots, 3);
    assert_int_equal(s.out_len, 0); /* nothing before Kafka answers */
    ises_delivered(w.slots[2], 1);
    ises_delivered(w.slots[1], 1);
    assert_int_equal(s.out_len, 0); /* 11 is still out: 12 and 13 wait behind it */
    ises_delivered(w.slots[0], 1);
    assert_int_equal(take(pk, 8), 3);
    assert_int_equal(pk[0].mid, 11);
    assert_int_equal(pk[1].mid, 12);
    assert_int_equal(pk[2].mid, 13);
    assert_int_equal(s.refs, 0);
}

/* Deferred (the server's way): reports only mark their slots; the PUBACKs of
 * several reports leave together, in order, when the caller releases them,
 * and each is counted then; a failed record ends the session at that point. */
static void deferred_reports_release_their_pubacks_together(void **state)
{
    (void)state;
    struct mqw_packet pk[8];
    connect_as("T1", "pw", 4);
    take(pk, 8);
    s.defer = 1;
    publish("fleet/trucks/T1/telemetry", 1, 21);
    publish("fleet/trucks/T1/telemetry", 1, 22);
    publish("fleet/trucks/T1/telemetry", 1, 23);
    publish("fleet/trucks/T1/telemetry", 1, 24);
    ises_delivered(w.slots[0], 1);
    ises_delivered(w.slots[1], 1);
    assert_int_equal(s.out_len, 0); /* nothing until released */
    assert_int_equal(w.acks, 0);
    assert_int_equal(s.refs, 2);
    ises_delivered(w.slots[2], 1);
    assert_int_equal(ises_release_done(&s), 0);
    assert_int_equal(w.acks, 3);
    assert_int_equal(take(pk, 8), 3);
    assert_int_equal(pk[0].mid, 21);
    assert_int_equal(pk[2].mid, 23);
    ises_delivered(w.slots[3], 0); /* Kafka did not take 24 */
    assert_int_equal(s.state, ISES_OPEN);
    ises_release_done(&s);
    assert_int_equal(s.state, ISES_CLOSED);
    assert_int_equal(w.wills, 1);
    assert_int_equal(w.acks, 3);
    assert_int_equal(take(pk, 8), 0);
    assert_int_equal(s.refs, 0);
}

static void a_failed_record_gets_no_puback_and_ends_with_the_will(void **state)
{
    (void)state;
    struct mqw_packet pk[8];
    connect_as("T1", "pw", 5);
    take(pk, 8);
    publish("fleet/trucks/T1/telemetry", 1, 1);
    publish("fleet/trucks/T1/telemetry", 1, 2);
    ises_delivered(w.slots[0], 0);
    assert_int_equal(s.state, ISES_CLOSED);
    assert_int_equal(w.wills, 1);
    assert_int_equal(take(pk, 8), 1);
    assert_int_equal(pk[0].type, MQW_DISCONNECT);
    ises_delivered(w.slots[1], 1);
    assert_int_equal(s.out_len, 0);
    assert_int_equal(s.refs, 0);
}

static void a_full_ring_stalls_311_and_a_slot_resumes_it(void **state)
{
    (void)state;
    uint8_t b[64];
    size_t used;
    connect_as("T1", "pw", 4);
    s.out_len = 0;
    for (uint16_t m = 1; m <= 4; m++)
        publish("fleet/trucks/T1/telemetry", 1, m);
    size_t n = mqw_encode_publish(b, sizeof(b), "fleet/trucks/T1/telemetry", 25, "{}", 2, 1, 0, 5);
    assert_int_equal(ises_input(&s, b, n, &used), ISES_STALLED);
    assert_int_equal(used, 0);
    assert_true(s.blocked);
    assert_int_equal(ises_delivered(w.slots[0], 1), 1); /* a slot: reading may go on */
    assert_int_equal(ises_input(&s, b, n, &used), ISES_MORE);
    assert_int_equal(used, n);
    assert_int_equal(w.nslots, 5);
}

/* The ring starts at ISES_RING_START slots and doubles only once a client
 * filled it and it emptied (nothing points into an empty ring); an MQTT 5
 * client is refused only past the Receive Maximum it was told. */
static void the_ring_grows_to_receive_max_while_clients_fill_it(void **state)
{
    (void)state;
    struct mqw_packet pk[32];
    uint8_t b[64];
    size_t used;
    ises_release(&s);
    ises_init(&s, &ops, NULL, 1024, 20);
    connect_as("T1", "pw", 5);
    assert_int_equal(take(pk, 32), 1); /* CONNACK */
    assert_int_equal(s.cap, ISES_RING_START);
    for (uint16_t m = 1; m <= ISES_RING_START; m++)
        publish("fleet/trucks/T1/telemetry", 1, m);
    /* MQTT 5 as 3.1.1: a full ring below Receive Maximum stalls the input. */
    size_t n = publish_bytes(b, "fleet/trucks/T1/telemetry", 1, 9);
    assert_int_equal(ises_input(&s, b, n, &used), ISES_STALLED);
    assert_int_equal(used, 0);
    assert_int_equal(w.refusals[REF_MALFORMED], 0);
    assert_int_equal(ises_delivered(w.slots[0], 1), 0); /* not empty yet: still waiting */
    for (int i = 1; i < ISES_RING_START - 1; i++)
        assert_int_equal(ises_delivered(w.slots[i], 1), 0);
    assert_int_equal(ises_delivered(w.slots[ISES_RING_START - 1], 1), 1); /* empty: doubled */
    assert_int_equal(s.cap, 2 * ISES_RING_START);
    assert_int_equal(take(pk, 32), ISES_RING_START);
    for (int i = 0; i < ISES_RING_START; i++) {
        assert_int_equal(pk[i].type, MQW_PUBACK);
        assert_int_equal(pk[i].mid, i + 1);
    }
    int k = w.nslots;
    /* Doubling stops at Receive Maximum (20 here, not 32). */
    assert_int_equal(feed(b, n), ISES_MORE); /* the one that waited */
    for (uint16_t m = 10; m <= 8 + 2 * ISES_RING_START; m++)
        publish("fleet/trucks/T1/telemetry", 1, m);
    n = publish_bytes(b, "fleet/trucks/T1/telemetry", 1, 99);
    assert_int_equal(ises_input(&s, b, n, &used), ISES_STALLED);
    for (int i = k; i < w.nslots; i++)
        ises_delivered(w.slots[i], 1);
    assert_int_equal(s.cap, 20);
    assert_int_equal(take(pk, 32), 2 * ISES_RING_START);
    assert_int_equal(feed(b, n), ISES_MORE);
    ises_delivered(w.slots[w.nslots - 1], 1);
    assert_int_equal(take(pk, 32), 1);
    /* At Receive Maximum, one more in flight is an MQTT 5 protocol error. */
    for (uint16_t m = 100; m < 120; m++)
        publish("fleet/trucks/T1/telemetry", 1, m);
    n = publish_bytes(b, "fleet/trucks/T1/telemetry", 1, 120);
    assert_int_equal(ises_input(&s, b, n, &used), ISES_ENDED);
    assert_int_equal(w.refusals[REF_MALFORMED], 1);
}

static void kafka_full_stalls_without_consuming(void **state)
{
    (void)state;
    uint8_t b[64];
    size_t used;
    connect_as("T1", "pw", 4);
    w.full = 1;
    size_t n = mqw_encode_publish(b, sizeof(b), "fleet/trucks/T1/telemetry", 25, "{}", 2, 0, 0, 0);
    assert_int_equal(ises_input(&s, b, n, &used), ISES_STALLED);
    assert_int_equal(used, 0);
    w.full = 0;
    assert_int_equal(ises_input(&s, b, n, &used), ISES_MORE);
    assert_int_equal(used, n);
    assert_int_equal(w.produced, 1);
}

static void other_trucks_topics_311_acked_and_dropped_5_refused(void **state)
{
    (void)state;
    struct mqw_packet pk[4];
    connect_as("T1", "pw", 4);
    take(pk, 4);
    publish("fleet/trucks/T2/telemetry", 1, 7);
    assert_int_equal(w.produced, 0);
    assert_int_equal(take(pk, 4), 1);
    assert_int_equal(pk[0].type, MQW_PUBACK);
    assert_int_equal(pk[0].mid, 7);
    ises_release(&s);
    ises_init(&s, &ops, NULL, 1024, 4);
    connect_as("T1", "pw", 5);
    take(pk, 4);
    publish("fleet/trucks/T2/telemetry", 1, 8);
    assert_int_equal(w.produced, 0);
    assert_int_equal(s.out_len, 5);
    assert_int_equal(s.out[4], MQW_RC_NOT_AUTHORIZED);
    assert_int_equal(w.refusals[REF_NOT_AUTHORIZED], 2);
}

static void qos2_ends_the_session(void **state)
{
    (void)state;
    struct mqw_packet pk[4];
    connect_as("T1", "pw", 5);
    take(pk, 4);
    publish("fleet/trucks/T1/telemetry", 2, 9);
    assert_int_equal(s.state, ISES_CLOSED);
    assert_int_equal(take(pk, 4), 1);
    assert_int_equal(pk[0].type, MQW_DISCONNECT);
    assert_int_equal(pk[0].return_code, MQW_RC_QOS_UNSUPPORTED);
    assert_int_equal(w.produced, 1); /* the will only */
    assert_int_equal(w.wills, 1);
}

static void clean_disconnect_sends_no_will(void **state)
{
    (void)state;
    static const uint8_t disc[] = {0xe0, 0};
    connect_as("T1", "pw", 4);
    assert_int_equal(feed(disc, sizeof(disc)), ISES_ENDED);
    assert_int_equal(w.wills, 0);
    ises_end(&s, 1, 0); /* already ended: nothing more */
    assert_int_equal(w.wills, 0);
}

static void subscribe_is_refused_with_its_suback(void **state)
{
    (void)state;
    struct mqw_packet pk[4];
    static const uint8_t sub[] = {0x82, 6, 0, 9, 0, 1, '#', 1};
    connect_as("T1", "pw", 4);
    take(pk, 4);
    feed(sub, sizeof(sub));
    assert_int_equal(s.state, ISES_OPEN);
    assert_int_equal(take(pk, 4), 1);
    assert_int_equal(pk[0].type, MQW_SUBACK);
    assert_int_equal(pk[0].ncodes, 1);
    assert_int_equal(pk[0].codes[0], 0x80);
    assert_int_equal(w.refusals[REF_SUBSCRIBE], 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(login_answers_connack_0_or_bad_login, setup, teardown),
        cmocka_unit_test_setup_teardown(pubacks_wait_for_kafka_and_keep_publish_order, setup, teardown),
        cmocka_unit_test_setup_teardown(deferred_reports_release_their_pubacks_together, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failed_record_gets_no_puback_and_ends_with_the_will, setup, teardown),
        cmocka_unit_test_setup_teardown(a_full_ring_stalls_311_and_a_slot_resumes_it, setup, teardown),
        cmocka_unit_test_setup_teardown(the_ring_grows_to_receive_max_while_clients_fill_it, setup, teardown),
        cmocka_unit_test_setup_teardown(kafka_full_stalls_without_consuming, setup, teardown),
        cmocka_unit_test_setup_teardown(other_trucks_topics_311_acked_and_dropped_5_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(qos2_ends_the_session, setup, teardown),
        cmocka_unit_test_setup_teardown(clean_disconnect_sends_no_will, setup, teardown),
        cmocka_unit_test_setup_teardown(subscribe_is_refused_with_its_suback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
