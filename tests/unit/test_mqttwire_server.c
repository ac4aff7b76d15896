/* core/mqttwire, the server side: what a publishing client sends (CONNECT
 * of MQTT 3.1.1 and 5 with properties, will and login; PUBLISH; SUBSCRIBE
 * and UNSUBSCRIBE to refuse; PINGREQ; DISCONNECT), checked against bytes
 * written from the standards; the size limit read from the fixed header
 * alone; malformed packets with the reason code that says why; and the
 * server's answers byte for byte. */
#include "core/mqttwire.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

static struct mqw_in in;
static uint8_t why;

static void connect_311_with_will_and_login(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x10, 69,  0,   4,   'M', 'Q', 'T', 'T', 4,   0xee, 0,   60,  0,   10,  'T',
                                'R',  'K', '-', '0', '0', '0', '0', '0', '1', 0,    30,  'f', 'l', 'e', 'e',
                                't',  '/', 't', 'r', 'u', 'c', 'k', 's', '/', 'T',  'R', 'K', '-', '0', '0',
                                '0',  '0', '0', '1', '/', 's', 't', 'a', 't', 'u',  's', 0,   7,   'o', 'f',
                                'f',  'l', 'i', 'n', 'e', 0,   1,   'u', 0,   1,    'p'};
    assert_int_equal(mqw_parse_client(b, sizeof(b), 0, 1024, &in, &why), sizeof(b));
    const struct mqw_connect_in *c = &in.connect;
    assert_int_equal(in.type, MQW_CONNECT);
    assert_int_equal(c->version, 4);
    assert_int_equal(c->keepalive_s, 60);
    assert_true(c->clean_start);
    assert_int_equal(c->client_id_len, 10);
    assert_memory_equal(c->client_id, "TRK-000001", 10);
    assert_int_equal(c->will_topic_len, 30);
    assert_memory_equal(c->will_topic, "fleet/trucks/TRK-000001/status", 30);
    assert_int_equal(c->will_len, 7);
    assert_memory_equal(c->will_payload, "offline", 7);
    assert_int_equal(c->will_qos, 1);
    assert_true(c->will_retain);
    assert_int_equal(c->user_len, 1);
    assert_memory_equal(c->user, "u", 1);
    assert_int_equal(c->pass_len, 1);
    assert_memory_equal(c->pass, "p", 1);
    /* every cut asks for more */
    for (size_t cut = 0; cut < sizeof(b); cut++)
        assert_int_equal(mqw_parse_client(b, cut, 0, 1024, &in, &why), 0);
}

static void connect_v5_properties(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x10, 39,   0,   4, 'M',  'Q',  'T', 'T', 5, 0x06, 0, 30, /* will, clean start */
                                13,   0x11, 0,   0, 0x0e, 0x10,                           /* session expiry 3600 */
                                0x21, 0,    20,                                           /* receive maximum 20 */
                                0x27, 0,    1,   0, 0,       /* maximum packet size 65536 */
                                0,    1,    'x',             /* client id */
                                5,    0x18, 0,   0, 0,    5, /* will delay 5 s */
                                0,    1,    't', 0, 1,    'w'};
    assert_int_equal(mqw_parse_client(b, sizeof(b), 0, 1024, &in, &why), sizeof(b));
    const struct mqw_connect_in *c = &in.connect;
    assert_int_equal(c->version, 5);
    assert_int_equal(c->session_expiry_s, 3600);
    assert_int_equal(c->receive_max, 20);
    assert_int_equal(c->max_packet_size, 65536);
    assert_int_equal(c->client_id_len, 1);
    assert_int_equal(c->will_topic_len, 1);
    assert_memory_equal(c->will_topic, "t", 1);
    assert_int_equal(c->will_len, 1);
    assert_null(c->user);
    assert_null(c->pass);
}

static void connect_round_trips_the_client_encoder(void **state)
{
    (void)state;
    struct mqw_connect m = {.client_id = "TRK-1",
                            .keepalive_s = 9,
                            .clean_session = 1,
                            .user = "TRK-1",
                            .pass = "secret",
                            .version = 5,
                            .session_expiry_s = 70000,
                            .receive_max = 1000};
    uint8_t buf[256];
    size_t n = mqw_encode_connect(buf, sizeof(buf), &m);
    assert_int_equal(mqw_parse_client(buf, n, 0, 1024, &in, &why), (int)n);
    assert_int_equal(in.connect.version, 5);
    assert_int_equal(in.connect.session_expiry_s, 70000);
    assert_int_equal(in.connect.receive_max, 1000);
    assert_int_equal(in.connect.pass_len, 6);
    assert_memory_equal(in.connect.pass, "secret", 6);
}

static void connect_of_other_protocols(void **state)
{
    (void)state;
    static const uint8_t v31[] = {0x10, 14, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0, 0, 10, 0, 1, 'x'};
    static const uint8_t v6[] = {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 6, 0, 0, 10, 0, 1, 'x'};
    static const uint8_t http[] = {'G', 'E', 'T', ' ', '/', ' ', 'H'};
    assert_int_equal(mqw_parse_client(v31, sizeof(v31), 0, 1024, &in, &why), MQW_IN_MALFORMED);
    assert_int_equal(why, MQW_RC_BAD_VERSION);
    assert_int_equal(in.connect.version, 3);
    assert_int_equal(mqw_parse_client(v6, sizeof(v6), 0, 1024, &in, &why), MQW_IN_MALFORMED);
    assert_int_equal(why, MQW_RC_BAD_VERSION);
    /* "GET " is a packet of type 4 (PUBACK): not a CONNECT, known from its
     * first byte */
    assert_int_equal(mqw_parse_client(http, sizeof(http), 0, 1 << 20, &in, &why), MQW_IN_MALFORMED);
    assert_int_equal(why, MQW_RC_PROTOCOL_ERROR);
}

static void connect_malformed(void **state)
{
    (void)state;
    static const struct {
        uint8_t b[24];
        size_t n;
        uint8_t why;
    } bad[] = {
        {{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x01, 0, 10, 0, 1, 'x'}, 15, MQW_RC_MALFORMED}, /* reserved flag */
        {{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x40, 0, 10, 0, 1, 'x'}, 15, MQW_RC_MALFORMED}, /* pass, no user */
        {{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x08, 0, 10, 0, 1, 'x'}, 15, MQW_RC_MALFORMED}, /* will QoS, no will */
        {{0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x00, 0, 10, 0, 1, 'x', 0}, 16, MQW_RC_MALFORMED}, /* trailing */
        {{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x00, 0, 10, 0, 2, 'x'}, 15, MQW_RC_MALFORMED},    /* id runs past */
        {{0x11, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x00, 0, 10, 0, 1, 'x'}, 15, MQW_RC_MALFORMED},    /* flags */
        {{0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x00, 0, 10, 0, 1, 'x', 0}, 16, MQW_RC_MALFORMED}, /* trailing */
        {{0x10, 13, 0, 4, 'X', 'Q', 'T', 'T', 4, 0x00, 0, 10, 0, 1, 'x'}, 15, MQW_RC_MALFORMED},    /* not MQTT */
        /* MQTT 5: receive maximum 0; a property CONNECT never carries; twice the same */
        {{0x10, 17, 0, 4, 'M', 'Q', 'T', 'T', 5, 0, 0, 10, 3, 0x21, 0, 0, 0, 1, 'x'}, 19, MQW_RC_PROTOCOL_ERROR},
        {{0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 5, 0, 0, 10, 2, 0x24, 1, 0, 1, 'x'}, 18, MQW_RC_PROTOCOL_ERROR},
        {{0x10, 18, 0, 4, 'M', 'Q', 'T', 'T', 5, 0, 0, 10, 4, 0x17, 1, 0x17, 1, 0, 1, 'x'}, 20, MQW_RC_PROTOCOL_ERROR},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        int n = mqw_parse_client(bad[k].b, bad[k].n, 0, 1024, &in, &why);
        if (n != MQW_IN_MALFORMED || why != bad[k].why)
            fail_msg("case %zu: %d, reason 0x%02x", k, n, why);
    }
}

static void connect_first_and_once(void **state)
{
    (void)state;
    static const uint8_t ping[] = {0xc0, 0};
    static const uint8_t conn[] = {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 10, 0, 1, 'x'};
    assert_int_equal(mqw_parse_client(ping, sizeof(ping), 0, 1024, &in, &why), MQW_IN_MALFORMED);
    assert_int_equal(why, MQW_RC_PROTOCOL_ERROR);
    assert_int_equal(mqw_parse_client(ping, sizeof(ping), 4, 1024, &in, &why), 2);
    assert_int_equal(in.type, MQW_PINGREQ);
    assert_int_equal(mqw_parse_client(conn, sizeof(conn), 4, 1024, &in, &why), MQW_IN_MALFORMED);
    assert_int_equal(why, MQW_RC_PROTOCOL_ERROR);
}

static void publish_from_a_client(void **state)
{
    (void)state;
    static const uint8_t q1[] = {0x32, 9, 0, 3, 'a', '/', 'b', 0x12, 0x34, 'h', 'i'};
    static const uint8_t q0r[] = {0x31, 7, 0, 3, 'a', '/', 'b', 'h', 'i'};
    static const uint8_t q2[] = {0x34, 9, 0, 3, 'a', '/', 'b', 0, 5, 'h', 'i'};
    static const uint8_t v5[] = {0x32, 12, 0, 3, 'a', '/', 'b', 0, 7, 2, 0x01, 1, 'h', 'i'};
    assert_int_equal(mqw_parse_client(q1, sizeof(q1), 4, 1024, &in, &why), sizeof(q1));
    assert_int_equal(in.qos, 1);
    assert_int_equal(in.mid, 0x1234);
    assert_int_equal(in.topic_len, 3);
    assert_memory_equal(in.topic, "a/b", 3);
    assert_int_equal(in.payload_len, 2);
    assert_memory_equal(in.payload, "hi", 2);
    assert_int_equal(mqw_parse_client(q0r, sizeof(q0r), 4, 1024, &in, &why), sizeof(q0r));
    assert_int_equal(in.qos, 0);
    assert_true(in.retain);
    assert_int_equal(in.payload_len, 2);
    /* QoS 2 parses: refusing it is the server's */
    assert_int_equal(mqw_parse_client(q2, sizeof(q2), 4, 1024, &in, &why), sizeof(q2));
    assert_int_equal(in.qos, 2);
    assert_int_equal(mqw_parse_client(v5, sizeof(v5), 5, 1024, &in, &why), sizeof(v5));
    assert_int_equal(in.mid, 7);
    assert_int_equal(in.payload_len, 2);
    assert_memory_equal(in.payload, "hi", 2);
    for (size_t cut = 0; cut < sizeof(v5); cut++)
        assert_int_equal(mqw_parse_client(v5, cut, 5, 1024, &in, &why), 0);
}

static void publish_refused_shapes(void **state)
{
    (void)state;
    static const struct {
        uint8_t b[16];
        size_t n;
        int version;
        uint8_t why;
    } bad[] = {
        {{0x32, 6, 0, 2, 'a', '#', 0, 1}, 8, 4, MQW_RC_TOPIC_INVALID},      /* wildcard */
        {{0x30, 5, 0, 3, 'a', '+', 'b'}, 7, 4, MQW_RC_TOPIC_INVALID},       /* wildcard */
        {{0x30, 4, 0, 0, 'h', 'i'}, 6, 4, MQW_RC_TOPIC_INVALID},            /* empty topic */
        {{0x32, 5, 0, 1, 'a', 0, 0}, 7, 4, MQW_RC_PROTOCOL_ERROR},          /* packet id 0 */
        {{0x36, 5, 0, 1, 'a', 0, 1}, 7, 4, MQW_RC_MALFORMED},               /* QoS 3 */
        {{0x38, 4, 0, 1, 'a', 'x'}, 6, 4, MQW_RC_MALFORMED},                /* QoS 0 with DUP */
        {{0x30, 5, 0, 9, 'a', 'b', 'c'}, 7, 4, MQW_RC_MALFORMED},           /* topic runs past */
        {{0x30, 7, 0, 1, 'a', 3, 0x23, 0, 1}, 9, 5, MQW_RC_PROTOCOL_ERROR}, /* topic alias */
        {{0x30, 5, 0, 1, 'a', 5, 0x01}, 7, 5, MQW_RC_MALFORMED},            /* properties run past */
        {{0x42, 2, 0, 1}, 4, 4, MQW_RC_PROTOCOL_ERROR},                     /* PUBACK from a client */
        {{0x62, 2, 0, 1}, 4, 5, MQW_RC_PROTOCOL_ERROR},                     /* PUBREL: no QoS 2 here */
        {{0xf0, 0}, 2, 4, MQW_RC_MALFORMED},                                /* reserved type */
        {{0xc0, 1, 0}, 3, 4, MQW_RC_MALFORMED},                             /* PINGREQ with a body */
        {{0xe0, 1, 0}, 3, 4, MQW_RC_MALFORMED},                             /* 3.1.1 DISCONNECT body */
        {{0x82, 5, 0, 1, 0, 1, 'a'}, 7, 4, MQW_RC_MALFORMED},               /* SUBSCRIBE: no options */
        {{0x80, 6, 0, 1, 0, 1, 'a', 1}, 8, 4, MQW_RC_MALFORMED},            /* SUBSCRIBE flags */
        {{0x82, 6, 0, 0, 0, 1, 'a', 1}, 8, 4, MQW_RC_PROTOCOL_ERROR},       /* SUBSCRIBE id 0 */
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        int n = mqw_parse_client(bad[k].b, bad[k].n, bad[k].version, 1024, &in, &why);
        if (n != MQW_IN_MALFORMED || why != bad[k].why)
            fail_msg("case %zu: %d, reason 0x%02x", k, n, why);
    }
}

static void too_large_from_the_fixed_header(void **state)
{
    (void)state;
    /* 268,435,455 bytes announced: refused from its first five bytes */
    static const uint8_t huge[] = {0x30, 0xff, 0xff, 0xff, 0x7f};
    static const uint8_t five[] = {0x30, 0x80, 0x80, 0x80, 0x80, 0x01};
    static const uint8_t at[] = {0x30, 62, 0, 1, 'a'}; /* 64 bytes in all */
    assert_int_equal(mqw_parse_client(huge, sizeof(huge), 4, 65536, &in, &why), MQW_IN_TOO_LARGE);
    assert_int_equal(mqw_parse_client(huge, 3, 4, 65536, &in, &why), 0);
    assert_int_equal(mqw_parse_client(five, sizeof(five), 4, 65536, &in, &why), MQW_IN_MALFORMED);
    assert_int_equal(mqw_parse_client(at, sizeof(at), 4, 64, &in, &why), 0); /* the limit itself: fine */
    assert_int_equal(mqw_parse_client(at, sizeof(at), 4, 63, &in, &why), MQW_IN_TOO_LARGE);
}

static void subscribe_unsubscribe_disconnect(void **state)
{
    (void)state;
    static const uint8_t sub[] = {0x82, 10, 0, 9, 0, 1, 'a', 1, 0, 1, 'b', 0};
    static const uint8_t sub5[] = {0x82, 9, 0, 9, 2, 0x0b, 3, 0, 1, 'a', 1};
    static const uint8_t unsub[] = {0xa2, 5, 0, 4, 0, 1, 'a'};
    static const uint8_t disc5[] = {0xe0, 1, 0x04};
    static const uint8_t disc[] = {0xe0, 0};
    assert_int_equal(mqw_parse_client(sub, sizeof(sub), 4, 1024, &in, &why), sizeof(sub));
    assert_int_equal(in.type, MQW_SUBSCRIBE);
    assert_int_equal(in.mid, 9);
    assert_int_equal(in.nfilters, 2);
    assert_int_equal(mqw_parse_client(sub5, sizeof(sub5), 5, 1024, &in, &why), sizeof(sub5));
    assert_int_equal(in.nfilters, 1);
    assert_int_equal(mqw_parse_client(unsub, sizeof(unsub), 4, 1024, &in, &why), sizeof(unsub));
    assert_int_equal(in.type, MQW_UNSUBSCRIBE);
    assert_int_equal(in.nfilters, 1);
    assert_int_equal(mqw_parse_client(disc5, sizeof(disc5), 5, 1024, &in, &why), sizeof(disc5));
    assert_int_equal(in.reason, 0x04);
    assert_int_equal(mqw_parse_client(disc, sizeof(disc), 4, 1024, &in, &why), sizeof(disc));
    assert_int_equal(in.reason, 0);
}

static void server_answers(void **state)
{
    (void)state;
    uint8_t out[128];
    static const uint8_t ca3[] = {0x20, 2, 0, 0};
    static const uint8_t ca3_refused[] = {0x20, 2, 0, 5};
    static const uint8_t ca5[] = {0x20, 21,   0, 0,    18, 0x21, 0, 100,  0x27, 0,    1, 0,
                                  0,    0x24, 1, 0x25, 0,  0x28, 0, 0x29, 0,    0x2a, 0};
    static const uint8_t ca5_refused[] = {0x20, 3, 0, 0x86, 0};
    static const uint8_t pa5[] = {0x40, 3, 0x12, 0x34, 0x87};
    static const uint8_t pa[] = {0x40, 2, 0x12, 0x34};
    static const uint8_t sa3[] = {0x90, 4, 0, 9, 0x80, 0x80};
    static const uint8_t sa5[] = {0x90, 4, 0, 9, 0, 0x87};
    static const uint8_t ua3[] = {0xb0, 2, 0, 4};
    static const uint8_t ua5[] = {0xb0, 4, 0, 4, 0, 0x11};
    static const uint8_t d5[] = {0xe0, 1, 0x8b};
    struct mqw_connack_props p = {.receive_max = 100, .max_packet_size = 65536};
    static const uint8_t ca3_present[] = {0x20, 2, 1, 0};
    assert_int_equal(mqw_encode_connack(out, sizeof(out), 4, 1, 0, NULL), 4);
    assert_memory_equal(out, ca3_present, 4);
    assert_int_equal(mqw_encode_connack(out, sizeof(out), 4, 0, 0, NULL), sizeof(ca3));
    assert_memory_equal(out, ca3, sizeof(ca3));
    assert_int_equal(mqw_encode_connack(out, sizeof(out), 4, 1, 5, NULL), sizeof(ca3_refused));
    assert_memory_equal(out, ca3_refused, sizeof(ca3_refused));
    assert_int_equal(mqw_encode_connack(out, sizeof(out), 5, 0, 0, &p), sizeof(ca5));
    assert_memory_equal(out, ca5, sizeof(ca5));
    assert_int_equal(mqw_encode_connack(out, sizeof(ca5) - 1, 5, 0, 0, &p), 0);
    assert_int_equal(mqw_encode_connack(out, sizeof(out), 5, 0, 0x86, &p), sizeof(ca5_refused));
    assert_memory_equal(out, ca5_refused, sizeof(ca5_refused));
    /* the CONNACK parses back as a client reads it */
    struct mqw_packet pk;
    size_t n = mqw_encode_connack(out, sizeof(out), 5, 0, 0, &(struct mqw_connack_props){.server_keepalive_s = 7});
    assert_int_equal(mqw_parse_in(out, n, 5, 256, &pk), (int)n);
    assert_int_equal(pk.server_keepalive, 7);
    assert_int_equal(mqw_encode_puback_rc(out, sizeof(out), 5, 0x1234, 0x87), sizeof(pa5));
    assert_memory_equal(out, pa5, sizeof(pa5));
    assert_int_equal(mqw_encode_puback_rc(out, sizeof(out), 5, 0x1234, 0), sizeof(pa));
    assert_memory_equal(out, pa, sizeof(pa));
    assert_int_equal(mqw_encode_puback_rc(out, sizeof(out), 4, 0x1234, 0x87), sizeof(pa));
    assert_memory_equal(out, pa, sizeof(pa));
    assert_int_equal(mqw_encode_suback_refusal(out, sizeof(out), 4, 9, 2, 0x87), sizeof(sa3));
    assert_memory_equal(out, sa3, sizeof(sa3));
    assert_int_equal(mqw_encode_suback_refusal(out, sizeof(out), 5, 9, 1, 0x87), sizeof(sa5));
    assert_memory_equal(out, sa5, sizeof(sa5));
    assert_int_equal(mqw_encode_unsuback(out, sizeof(out), 4, 4, 1), sizeof(ua3));
    assert_memory_equal(out, ua3, sizeof(ua3));
    assert_int_equal(mqw_encode_unsuback(out, sizeof(out), 5, 4, 1), sizeof(ua5));
    assert_memory_equal(out, ua5, sizeof(ua5));
    assert_int_equal(mqw_encode_disconnect(out, sizeof(out), 0x8b), sizeof(d5));
    assert_memory_equal(out, d5, sizeof(d5));
    assert_int_equal(mqw_encode_disconnect(out, 2, 0x8b), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connect_311_with_will_and_login),
        cmocka_unit_test(connect_v5_properties),
        cmocka_unit_test(connect_round_trips_the_client_encoder),
        cmocka_unit_test(connect_of_other_protocols),
        cmocka_unit_test(connect_malformed),
        cmocka_unit_test(connect_first_and_once),
        cmocka_unit_test(publish_from_a_client),
        cmocka_unit_test(publish_refused_shapes),
        cmocka_unit_test(too_large_from_the_fixed_header),
        cmocka_unit_test(subscribe_unsubscribe_disconnect),
        cmocka_unit_test(server_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
