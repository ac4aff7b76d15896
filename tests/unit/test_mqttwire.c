/* sim/mqttwire: CONNECT and PUBLISH byte for byte as MQTT 3.1.1 lays them
 * out (checked against bytes written from the standard, not against the
 * encoder), the remaining length at its size boundaries, and the parser:
 * the broker's packets, a packet cut anywhere, and malformed ones. */
#include "sim/mqttwire.h"

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
        0x10, 69,                                            /* CONNECT, remaining length */
        0, 4, 'M', 'Q', 'T', 'T', 4,                         /* protocol name, level 4 = 3.1.1 */
        0xee,                                                /* user, password, will retain, will QoS 1, will, clean */
        0, 60,                                               /* keepalive */
        0, 10, 'T', 'R', 'K', '-', '0', '0', '0', '0', '0', '1', /* client id */
        0, 30, 'f', 'l', 'e', 'e', 't', '/', 't', 'r', 'u', 'c', 'k', 's', '/', 'T', 'R', 'K', '-', '0', '0', '0',
        '0', '0', '1', '/', 's', 't', 'a', 't', 'u', 's',    /* will topic */
        0, 7, 'o', 'f', 'f', 'l', 'i', 'n', 'e',             /* will message */
        0, 1, 'u', 0, 1, 'p'};                               /* user, password */
    struct mqw_connect c = {.client_id = "TRK-000001", .keepalive_s = 60, .clean_session = 1,
                            .will_topic = "fleet/trucks/TRK-000001/status", .will_payload = "offline", .will_len = 7,
                            .will_qos = 1, .will_retain = 1, .user = "u", .pass = "p"};
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
