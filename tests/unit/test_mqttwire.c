/* core/mqttwire: CONNECT, PUBLISH, SUBSCRIBE and PUBACK byte for byte as
 * MQTT 3.1.1 and 5.0 lay them out (checked against bytes written from the
 * standards, not against the encoder), the remaining length at its size
 * boundaries, and the parsers: the broker's packets to a device and to the
 * bridge (MQTT 5 properties included), a packet cut anywhere, a PUBLISH
 * longer than the reader takes, and malformed ones. */
#include "core/mqttwire.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

static void connect_with_will_and_login(void **state)
{
    (void)state;
    static const uint8_t want[] = {
        0x10, 69,                         /* CONNECT, remaining length */
        0,    4,   'M', 'Q', 'T', 'T', 4, /* protocol name, level 4 = 3.1.1 */
        0xee,                             /* user, password, will retain, will QoS 1, will, clean */
        0,    60,                         /* keepalive */
        0,    10,  'T', 'R', 'K', '-', '0', '0', '0', '0', '0', '1', /* client id */
        0,    30,  'f', 'l', 'e', 'e', 't', '/', 't', 'r', 'u', 'c', 'k', 's', '/', 'T',
        'R',  'K', '-', '0', '0', '0', '0', '0', '1', '/', 's', 't', 'a', 't', 'u', 's', /* will topic */
        0,    7,   'o', 'f', 'f', 'l', 'i', 'n', 'e',                                    /* will message */
        0,    1,   'u', 0,   1,   'p'};                                                  /* user, password */
    struct mqw_connect c = {.client_id = "TRK-000001",
                            .keepalive_s = 60,
                            .clean_session = 1,
                            .will_topic = "fleet/trucks/TRK-000001/status",
                            .will_payload = "offline",
                            .will_len = 7,
                            .will_qos = 1,
                            .will_retain = 1,
                            .user = "u",
                            .pass = "p"};
    uint8_t out[256];
    assert_int_equal(mqw_encode_connect(out, sizeof(out), &c), sizeof(want));
    assert_memory_equal(out, want, sizeof(want));
    /* exactly big enough, and one byte short */
    assert_int_equal(mqw_encode_connect(out, sizeof(want), &c), sizeof(want));
    assert_int_equal(mqw_encode_connect(out, sizeof(want) - 1, &c), 0);
}

static void connect_bare(void **state)
{
    (void)state;
    static const uint8_t want[] = {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x00, 0, 0, 0, 1, 'x'};
    struct mqw_connect c = {.client_id = "x", .pass = "ignored without a user"};
    uint8_t out[64];
    assert_int_equal(mqw_encode_connect(out, sizeof(out), &c), sizeof(want));
    assert_memory_equal(out, want, sizeof(want));
    /* a user without a password: only the user flag */
    c.user = "u";
    c.pass = NULL;
    c.clean_session = 1;
    assert_int_equal(mqw_encode_connect(out, sizeof(out), &c), sizeof(want) + 3);
    assert_int_equal(out[1], 16);
    assert_int_equal(out[9], 0x82);
}

static void publish_qos1_and_qos0(void **state)
{
    (void)state;
    static const uint8_t q1[] = {0x32, 9, 0, 3, 'a', '/', 'b', 0x12, 0x34, 'h', 'i'};
    static const uint8_t q0r[] = {0x31, 7, 0, 3, 'a', '/', 'b', 'h', 'i'};
    uint8_t out[64];
    assert_int_equal(mqw_publish_size(3, 2, 1), sizeof(q1));
    assert_int_equal(mqw_encode_publish(out, sizeof(out), "a/b", 3, "hi", 2, 1, 0, 0x1234), sizeof(q1));
    assert_memory_equal(out, q1, sizeof(q1));
    assert_int_equal(mqw_publish_size(3, 2, 0), sizeof(q0r));
    assert_int_equal(mqw_encode_publish(out, sizeof(out), "a/b", 3, "hi", 2, 0, 1, 0x1234), sizeof(q0r));
    assert_memory_equal(out, q0r, sizeof(q0r));
    /* an empty retained message clears the retained value */
    assert_int_equal(mqw_encode_publish(out, sizeof(out), "a/b", 3, NULL, 0, 1, 1, 7), 9);
    assert_int_equal(out[0], 0x33);
    assert_int_equal(out[1], 7);
    assert_int_equal(mqw_encode_publish(out, sizeof(q1) - 1, "a/b", 3, "hi", 2, 1, 0, 1), 0);
}

/* The remaining length takes 1, 2 or 3 bytes at 127/128 and 16383/16384. */
static void remaining_length_boundaries(void **state)
{
    (void)state;
    static uint8_t payload[20000], out[20100];
    static const struct {
        size_t rem;
        uint8_t bytes[3];
        size_t n;
    } cases[] = {{127, {0x7f}, 1}, {128, {0x80, 0x01}, 2}, {16383, {0xff, 0x7f}, 2}, {16384, {0x80, 0x80, 0x01}, 3}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t pl = cases[k].rem - 2 - 1 - 2; /* topic "t", QoS 1 */
        size_t n = mqw_encode_publish(out, sizeof(out), "t", 1, payload, pl, 1, 0, 1);
        assert_int_equal(n, 1 + cases[k].n + cases[k].rem);
        assert_int_equal(n, mqw_publish_size(1, pl, 1));
        assert_memory_equal(out + 1, cases[k].bytes, cases[k].n);
    }
}

static void parse_broker_packets(void **state)
{
    (void)state;
    struct mqw_packet pk;
    static const uint8_t ok[] = {0x20, 2, 0, 0};
    assert_int_equal(mqw_parse(ok, sizeof(ok), &pk), 4);
    assert_int_equal(pk.type, MQW_CONNACK);
    assert_int_equal(pk.return_code, 0);
    static const uint8_t refused[] = {0x20, 2, 1, 5};
    assert_int_equal(mqw_parse(refused, sizeof(refused), &pk), 4);
    assert_int_equal(pk.session_present, 1);
    assert_int_equal(pk.return_code, 5);
    assert_string_equal(mqw_connack_string(5), "connection refused: not authorised");
    /* two PUBACKs and a PINGRESP in one read */
    static const uint8_t stream[] = {0x40, 2, 0x12, 0x34, 0x40, 2, 0xff, 0xff, 0xd0, 0};
    assert_int_equal(mqw_parse(stream, sizeof(stream), &pk), 4);
    assert_int_equal(pk.type, MQW_PUBACK);
    assert_int_equal(pk.mid, 0x1234);
    assert_int_equal(mqw_parse(stream + 4, sizeof(stream) - 4, &pk), 4);
    assert_int_equal(pk.mid, 0xffff);
    assert_int_equal(mqw_parse(stream + 8, 2, &pk), 2);
    assert_int_equal(pk.type, MQW_PINGRESP);
    /* a type a device does not expect is parsed; the caller refuses it */
    static const uint8_t suback[] = {0x90, 3, 0, 1, 0};
    assert_int_equal(mqw_parse(suback, sizeof(suback), &pk), 5);
    assert_int_equal(pk.type, MQW_SUBACK);
}

/* Every cut of a packet asks for more; the whole of it parses. */
static void parse_cut_anywhere(void **state)
{
    (void)state;
    struct mqw_packet pk;
    uint8_t pub[64];
    size_t n = mqw_encode_publish(pub, sizeof(pub), "fleet/x", 7, "0123456789", 10, 1, 0, 9);
    assert_true(n > 0 && n <= MQW_MAX_INCOMING);
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(mqw_parse(pub, cut, &pk), 0);
    assert_int_equal(mqw_parse(pub, n, &pk), (int)n);
    assert_int_equal(pk.type, MQW_PUBLISH);
    assert_int_equal(pk.flags, 2);
    static const uint8_t half_length[] = {0x30, 0x80};
    assert_int_equal(mqw_parse(half_length, sizeof(half_length), &pk), 0);
}

static void parse_malformed(void **state)
{
    (void)state;
    struct mqw_packet pk;
    static const uint8_t bad[][7] = {
        {0x00, 0},                         /* reserved type 0 */
        {0xf0, 0},                         /* reserved type 15 */
        {0x42, 2, 0, 1},                   /* PUBACK with flags */
        {0x40, 3, 0, 1, 0},                /* PUBACK of 3 bytes */
        {0x20, 2, 2, 0},                   /* CONNACK, reserved bit */
        {0x20, 3, 0, 0, 0},                /* CONNACK of 3 bytes */
        {0xd0, 1, 0},                      /* PINGRESP with a body */
        {0x30, 0xff, 0xff, 0xff, 0xff, 1}, /* a fifth length byte */
        {0x30, 0x80, 0x01},                /* 128 bytes: longer than a device reads */
    };
    static const size_t len[] = {2, 2, 4, 5, 4, 5, 3, 6, 3};
    for (size_t k = 0; k < sizeof(len) / sizeof(len[0]); k++)
        assert_int_equal(mqw_parse(bad[k], len[k], &pk), -1);
    assert_int_equal(mqw_encode_empty((uint8_t[2]){0}, 1, MQW_PINGREQ), 0);
    uint8_t ping[2];
    assert_int_equal(mqw_encode_empty(ping, sizeof(ping), MQW_DISCONNECT), 2);
    assert_int_equal(ping[0], 0xe0);
    assert_int_equal(ping[1], 0);
}

/* MQTT 5 CONNECT (3.1.2): properties after the keep-alive, none for the will. */
static void connect_v5_persistent(void **state)
{
    (void)state;
    static const uint8_t want[] = {0x10, 35,                                     /* CONNECT, remaining length */
                                   0,    4,    'M',  'Q',  'T',  'T', 5,         /* protocol name, level 5 */
                                   0xc0,                                         /* user, password; clean start 0 */
                                   0,    30,                                     /* keepalive */
                                   8,                                            /* property length */
                                   0x11, 0x00, 0x09, 0x3a, 0x80,                 /* session expiry 604800 */
                                   0x21, 0x03, 0xe8,                             /* receive maximum 1000 */
                                   0,    6,    'b',  'r',  'i',  'd', 'g', 'e',  /* client id */
                                   0,    2,    'u',  's',  0,    2,   'p', 'w'}; /* user, password */
    struct mqw_connect c = {.client_id = "bridge",
                            .keepalive_s = 30,
                            .user = "us",
                            .pass = "pw",
                            .version = 5,
                            .session_expiry_s = 604800,
                            .receive_max = 1000};
    uint8_t out[128];
    assert_int_equal(mqw_encode_connect(out, sizeof(out), &c), sizeof(want));
    assert_memory_equal(out, want, sizeof(want));
    /* no properties: a zero property length; a will gets empty properties */
    struct mqw_connect w = {.client_id = "x", .version = 5, .will_topic = "t", .will_payload = "o", .will_len = 1};
    static const uint8_t want_w[] = {0x10, 21, 0, 4,   'M', 'Q', 'T', 'T', 5, 0x04, 0,  0,
                                     0,    0,  1, 'x', 0,   0,   1,   't', 0, 1,    'o'};
    assert_int_equal(mqw_encode_connect(out, sizeof(out), &w), sizeof(want_w));
    assert_memory_equal(out, want_w, sizeof(want_w));
}

static void subscribe_and_puback(void **state)
{
    (void)state;
    const char *filters[] = {"a/+", "$share/g/b"};
    static const uint8_t v3[] = {0x82, 21,  0,   7,   0,   3,   'a', '/', '+', 1,   0, 10,
                                 '$',  's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'b', 1};
    static const uint8_t v5[] = {0x82, 22,  0,   7,   0,   0,   3,   'a', '/', '+', 1,   0,
                                 10,   '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'b', 1};
    uint8_t out[64];
    assert_int_equal(mqw_encode_subscribe(out, sizeof(out), 7, filters, 2, 1, 4), sizeof(v3));
    assert_memory_equal(out, v3, sizeof(v3));
    assert_int_equal(mqw_encode_subscribe(out, sizeof(out), 7, filters, 2, 1, 5), sizeof(v5));
    assert_memory_equal(out, v5, sizeof(v5));
    assert_int_equal(mqw_encode_subscribe(out, sizeof(v5) - 1, 7, filters, 2, 1, 5), 0);
    assert_int_equal(mqw_encode_subscribe(out, sizeof(out), 7, filters, 0, 1, 5), 0);
    static const uint8_t ack[] = {0x40, 2, 0xbe, 0xef};
    assert_int_equal(mqw_encode_puback(out, sizeof(out), 0xbeef), 4);
    assert_memory_equal(out, ack, 4);
    assert_int_equal(mqw_encode_puback(out, 3, 1), 0);
}

/* What the bridge reads: PUBLISH in both versions, SUBACK, CONNACK and
 * DISCONNECT with MQTT 5 properties. */
static void parse_subscriber_packets(void **state)
{
    (void)state;
    struct mqw_packet pk;
    /* 3.1.1 PUBLISH QoS 1, DUP */
    static const uint8_t p3[] = {0x3a, 9, 0, 3, 'a', '/', 'b', 0x01, 0x02, 'h', 'i'};
    assert_int_equal(mqw_parse_in(p3, sizeof(p3), 4, 1024, &pk), sizeof(p3));
    assert_int_equal(pk.type, MQW_PUBLISH);
    assert_int_equal(pk.qos, 1);
    assert_int_equal(pk.mid, 0x0102);
    assert_int_equal(pk.topic_len, 3);
    assert_memory_equal(pk.topic, "a/b", 3);
    assert_int_equal(pk.payload_len, 2);
    assert_memory_equal(pk.payload, "hi", 2);
    /* MQTT 5 PUBLISH QoS 1 with a content type and a user property */
    static const uint8_t p5[] = {0x32, 25, 0, 1,   't', 0, 9,   13,  0x03, 0,   3,   'j', 's', 'n',
                                 0x26, 0,  1, 'k', 0,   1, 'v', '{', '}',  '!', '!', '!', '!'};
    assert_int_equal(mqw_parse_in(p5, sizeof(p5), 5, 1024, &pk), sizeof(p5));
    assert_int_equal(pk.mid, 9);
    assert_int_equal(pk.topic_len, 1);
    assert_int_equal(pk.payload_len, 6);
    assert_memory_equal(pk.payload, "{}!!!!", 6);
    /* the same bytes read as 3.1.1 are a different (valid) packet: no properties */
    assert_int_equal(mqw_parse_in(p5, sizeof(p5), 4, 1024, &pk), sizeof(p5));
    assert_int_equal(pk.payload_len, 20);
    /* QoS 0: no packet id; MQTT 5 with an empty property set */
    static const uint8_t q0[] = {0x30, 5, 0, 1, 't', 0, 'x'};
    assert_int_equal(mqw_parse_in(q0, sizeof(q0), 5, 1024, &pk), sizeof(q0));
    assert_int_equal(pk.qos, 0);
    assert_int_equal(pk.payload_len, 1);
    /* SUBACK: 3.1.1 with a failure code, MQTT 5 with a reason string */
    static const uint8_t s3[] = {0x90, 5, 0, 1, 1, 1, 0x80};
    assert_int_equal(mqw_parse_in(s3, sizeof(s3), 4, 1024, &pk), sizeof(s3));
    assert_int_equal(pk.type, MQW_SUBACK);
    assert_int_equal(pk.mid, 1);
    assert_int_equal(pk.ncodes, 3);
    assert_int_equal(pk.codes[2], 0x80);
    static const uint8_t s5[] = {0x90, 9, 0, 1, 4, 0x1f, 0, 1, 'n', 0x01, 0x9e};
    assert_int_equal(mqw_parse_in(s5, sizeof(s5), 5, 1024, &pk), sizeof(s5));
    assert_int_equal(pk.ncodes, 2);
    assert_int_equal(pk.codes[1], 0x9e);
    assert_int_equal(pk.reason_len, 1);
    assert_string_equal(mqw_reason_string(0x9e), "shared subscriptions not supported");
    /* CONNACK v5: session present, server keep alive 20 */
    static const uint8_t c5[] = {0x20, 6, 1, 0, 3, 0x13, 0, 20};
    assert_int_equal(mqw_parse_in(c5, sizeof(c5), 5, 1024, &pk), sizeof(c5));
    assert_int_equal(pk.session_present, 1);
    assert_int_equal(pk.return_code, 0);
    assert_int_equal(pk.server_keepalive, 20);
    assert_string_equal(mqw_connack_string(0x87), "not authorized");
    /* DISCONNECT v5: session taken over, no properties; and the bare form */
    static const uint8_t d5[] = {0xe0, 2, 0x8e, 0};
    assert_int_equal(mqw_parse_in(d5, sizeof(d5), 5, 1024, &pk), sizeof(d5));
    assert_int_equal(pk.type, MQW_DISCONNECT);
    assert_int_equal(pk.return_code, 0x8e);
    static const uint8_t d0[] = {0xe0, 0};
    assert_int_equal(mqw_parse_in(d0, sizeof(d0), 5, 1024, &pk), 2);
    assert_int_equal(pk.return_code, 0);
}

/* A PUBLISH longer than the reader takes: its head once that is in, -2. */
static void parse_publish_longer_than_max(void **state)
{
    (void)state;
    struct mqw_packet pk;
    /* remaining length 300: topic "t", mid 5, MQTT 5 no properties, 294 payload bytes; 100 of them here */
    static uint8_t big[1 + 2 + 300];
    memset(big, 'x', sizeof(big));
    static const uint8_t head[] = {0x32, 0xac, 0x02, 0, 1, 't', 0, 5, 0};
    memcpy(big, head, sizeof(head));
    assert_int_equal(mqw_parse_in(big, 5, 5, 128, &pk), 0); /* topic not yet in */
    assert_int_equal(mqw_parse_in(big, 109, 5, 128, &pk), -2);
    assert_int_equal(pk.length, 303);
    assert_int_equal(pk.mid, 5);
    assert_int_equal(pk.topic_len, 1);
    assert_ptr_equal(pk.payload, big + sizeof(head));
    assert_int_equal(pk.payload_len, 100);
    /* the whole packet within the limit is an ordinary PUBLISH */
    assert_int_equal(mqw_parse_in(big, sizeof(big), 5, 1024, &pk), 303);
    assert_int_equal(pk.payload_len, 294);
    /* other packets longer than the limit are malformed; so is a head that cannot fit */
    static const uint8_t long_suback[] = {0x90, 0xac, 0x02, 0, 1};
    assert_int_equal(mqw_parse_in(long_suback, sizeof(long_suback), 5, 128, &pk), -1);
    static uint8_t long_topic[128] = {0x32, 0xac, 0x02, 0x01, 0x00};
    assert_int_equal(mqw_parse_in(long_topic, sizeof(long_topic), 5, 128, &pk), -1);
}

static void parse_subscriber_malformed(void **state)
{
    (void)state;
    struct mqw_packet pk;
    static const struct {
        uint8_t b[12];
        size_t n;
        int version;
    } bad[] = {
        {{0x36, 5, 0, 1, 't', 0, 1}, 7, 4},       /* PUBLISH QoS 3 */
        {{0x32, 5, 0, 1, 't', 0, 0}, 7, 4},       /* packet id 0 */
        {{0x32, 4, 0, 3, 'a', 'b'}, 6, 4},        /* topic longer than the packet */
        {{0x30, 3, 0, 1, 't'}, 5, 5},             /* MQTT 5 without a property length */
        {{0x30, 5, 0, 1, 't', 2, 0x01}, 7, 5},    /* properties past the packet */
        {{0x30, 6, 0, 1, 't', 2, 0x7f, 0}, 8, 5}, /* an unknown property */
        {{0x90, 2, 0, 1}, 4, 4},                  /* SUBACK without return codes */
        {{0x90, 3, 0, 1, 0}, 5, 5},               /* MQTT 5 SUBACK: properties, no codes */
        {{0x20, 4, 0, 0, 2, 0x13}, 6, 5},         /* CONNACK property cut short */
        {{0x20, 3, 0, 0, 0}, 5, 4},               /* 3.1.1 CONNACK of 3 bytes */
        {{0xe0, 1, 0}, 3, 4},                     /* 3.1.1 DISCONNECT with a body */
        {{0xe0, 3, 0x8e, 1, 0x11}, 5, 5},         /* DISCONNECT property cut short */
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        int n = mqw_parse_in(bad[k].b, bad[k].n, bad[k].version, 1024, &pk);
        if (n != -1)
            fail_msg("case %zu: %d, not -1", k, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connect_with_will_and_login),
        cmocka_unit_test(connect_bare),
        cmocka_unit_test(publish_qos1_and_qos0),
        cmocka_unit_test(remaining_length_boundaries),
        cmocka_unit_test(parse_broker_packets),
        cmocka_unit_test(parse_cut_anywhere),
        cmocka_unit_test(parse_malformed),
        cmocka_unit_test(connect_v5_persistent),
        cmocka_unit_test(subscribe_and_puback),
        cmocka_unit_test(parse_subscriber_packets),
        cmocka_unit_test(parse_publish_longer_than_max),
        cmocka_unit_test(parse_subscriber_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
