/* core/mqttconn: one non-blocking MQTT client connection against a plain
 * TCP listener on the loopback that plays the broker: connect, CONNECT and
 * CONNACK, a queue written only by mqc_flush, reads, keepalive, close. */
#include "core/mqttconn.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

struct peer {
    int listen_fd, fd;
    struct sockaddr_in addr;
    struct mqc c;
    char err[256];
};

static int setup(void **state)
{
    static struct peer p;
    p = (struct peer){.fd = -1};
    mqc_init(&p.c);
    p.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    p.addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(p.addr);
    if (p.listen_fd < 0 || bind(p.listen_fd, (struct sockaddr *)&p.addr, sizeof(p.addr)) != 0 ||
        listen(p.listen_fd, 4) != 0 || getsockname(p.listen_fd, (struct sockaddr *)&p.addr, &len) != 0)
        return -1;
    *state = &p;
    return 0;
}

static int teardown(void **state)
{
    struct peer *p = *state;
    mqc_release(&p->c);
    if (p->fd >= 0)
        close(p->fd);
    close(p->listen_fd);
    return 0;
}

static void wait_for(int fd, short events)
{
    struct pollfd pf = {.fd = fd, .events = events};
    assert_int_equal(poll(&pf, 1, 5000), 1);
}

/* Connects p->c to the listener and accepts; the transport is ready. */
static void connect_tcp(struct peer *p)
{
    assert_int_equal(
        mqc_start(&p->c, (struct sockaddr *)&p->addr, sizeof(p->addr), NULL, 0, 1000, p->err, sizeof(p->err)), 0);
    assert_int_equal(p->c.state, MQC_TCP);
    assert_true(p->c.fd >= 0);
    p->fd = accept(p->listen_fd, NULL, NULL);
    assert_true(p->fd >= 0);
    wait_for(p->c.fd, POLLOUT);
    assert_int_equal(mqc_step(&p->c, NULL, "127.0.0.1", p->err, sizeof(p->err)), 1);
}

/* CONNECT written and read by the peer, its CONNACK (return code rc) read
 * back and handed to mqc_connack; returns what that said. */
static int handshake(struct peer *p, uint8_t rc)
{
    connect_tcp(p);
    struct mqw_connect m = {.client_id = "T-1", .keepalive_s = 60, .clean_session = 1};
    assert_int_equal(mqc_queue_connect(&p->c, &m), 0);
    assert_int_equal(p->c.state, MQC_CONNACK);
    assert_int_equal(mqc_flush(&p->c, 2000, p->err, sizeof(p->err)), 1);
    assert_int_equal(p->c.last_out_ms, 2000);
    uint8_t in[256];
    wait_for(p->fd, POLLIN);
    ssize_t n = read(p->fd, in, sizeof(in));
    assert_true(n > 2);
    assert_int_equal(in[0], 0x10); /* CONNECT */
    uint8_t connack[4] = {0x20, 2, 0, rc};
    assert_int_equal(write(p->fd, connack, 4), 4);
    wait_for(p->c.fd, POLLIN);
    int empty = 0;
    assert_int_equal(mqc_read(&p->c, in, sizeof(in), &empty, p->err, sizeof(p->err)), 4);
    assert_int_equal(empty, 1); /* a read that did not fill the buffer took everything */
    struct mqw_packet pk;
    assert_int_equal(mqw_parse(in, 4, &pk), 4);
    assert_int_equal(pk.type, MQW_CONNACK);
    return mqc_connack(&p->c, &pk);
}

static void an_accepted_connack_brings_the_connection_up(void **state)
{
    struct peer *p = *state;
    assert_int_equal(handshake(p, 0), 0);
    assert_int_equal(p->c.state, MQC_UP);
}

static void a_refused_connack_is_told_apart(void **state)
{
    struct peer *p = *state;
    assert_int_equal(handshake(p, 5), 1);
    assert_int_equal(p->c.state, MQC_CONNACK);
}

static void a_connack_nobody_waits_for_is_unexpected(void **state)
{
    struct peer *p = *state;
    assert_int_equal(handshake(p, 0), 0);
    struct mqw_packet pk = {.type = MQW_CONNACK};
    assert_int_equal(mqc_connack(&p->c, &pk), -1);
}

static void nothing_is_written_until_flush_and_then_all_of_it(void **state)
{
    struct peer *p = *state;
    assert_int_equal(handshake(p, 0), 0);
    for (uint16_t mid = 1; mid <= 300; mid++) {
        uint8_t ack[4];
        mqw_encode_puback(ack, sizeof(ack), mid);
        assert_int_equal(mqc_append(&p->c, ack, sizeof(ack)), 0);
    }
    assert_true(mqc_pending_out(&p->c));
    uint8_t in[2048];
    assert_int_equal(recv(p->fd, in, sizeof(in), MSG_DONTWAIT), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    assert_int_equal(mqc_flush(&p->c, 3000, p->err, sizeof(p->err)), 1);
    assert_false(mqc_pending_out(&p->c));
    size_t got = 0;
    while (got < 1200) {
        wait_for(p->fd, POLLIN);
        ssize_t n = read(p->fd, in + got, sizeof(in) - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_int_equal(got, 1200);
    assert_int_equal(in[0], 0x40);
    assert_int_equal(in[1196], 0x40);
    assert_int_equal(in[1198] << 8 | in[1199], 300);
}

static void a_packet_is_encoded_in_place(void **state)
{
    struct peer *p = *state;
    assert_int_equal(handshake(p, 0), 0);
    size_t sz = mqw_publish_size(3, 2, 0);
    assert_int_equal(mqc_reserve(&p->c, sz), 0);
    size_t n = mqw_encode_publish((uint8_t *)p->c.out.p + p->c.out.len, sz, "a/b", 3, "hi", 2, 0, 0, 0);
    assert_int_equal(n, sz);
    mqc_commit(&p->c, n);
    assert_int_equal(mqc_flush(&p->c, 3000, p->err, sizeof(p->err)), 1);
    uint8_t in[64];
    wait_for(p->fd, POLLIN);
    assert_int_equal(read(p->fd, in, sizeof(in)), (ssize_t)sz);
    assert_int_equal(in[0], 0x30);
    assert_memory_equal(in + sz - 2, "hi", 2);
}

static void keepalive_pings_at_three_quarters_and_gives_up_after_a_whole(void **state)
{
    struct peer *p = *state;
    assert_int_equal(handshake(p, 0), 0); /* last write at 2000 ms */
    assert_int_equal(mqc_keepalive(&p->c, 2000 + 44999, 60000, 1, p->err, sizeof(p->err)), 0);
    assert_false(mqc_pending_out(&p->c));
    assert_int_equal(mqc_keepalive(&p->c, 2000 + 45000, 60000, 1, p->err, sizeof(p->err)), 0);
    assert_int_equal(p->c.out.len, 2);
    assert_int_equal((uint8_t)p->c.out.p[0], 0xc0); /* PINGREQ */
    assert_int_equal(p->c.ping_ms, 47000);
    /* One PINGREQ waits for its answer: no second one while reading. */
    assert_int_equal(mqc_keepalive(&p->c, 47000 + 59999, 60000, 1, p->err, sizeof(p->err)), 0);
    assert_int_equal(p->c.out.len, 2);
    assert_int_equal(mqc_keepalive(&p->c, 47000 + 60000, 60000, 1, p->err, sizeof(p->err)), -1);
    assert_non_null(strstr(p->err, "PINGRESP"));
    /* Not reading (PINGRESPs wait unread): no verdict, and it pings on. */
    assert_int_equal(mqc_keepalive(&p->c, 47000 + 60000, 60000, 0, p->err, sizeof(p->err)), 0);
    assert_int_equal(p->c.out.len, 4);
    mqc_pong(&p->c);
    assert_int_equal(p->c.ping_ms, 0);
}

static void a_closed_peer_is_read_as_closed(void **state)
{
    struct peer *p = *state;
    assert_int_equal(handshake(p, 0), 0);
    close(p->fd);
    p->fd = -1;
    wait_for(p->c.fd, POLLIN);
    uint8_t in[64];
    int empty;
    assert_int_equal(mqc_read(&p->c, in, sizeof(in), &empty, p->err, sizeof(p->err)), -1);
    assert_string_equal(p->err, "connection closed by the broker");
    mqc_close(&p->c);
    assert_int_equal(p->c.state, MQC_DOWN);
    assert_int_equal(p->c.fd, -1);
    assert_false(mqc_pending_out(&p->c));
}

static void nothing_to_read_is_not_an_error(void **state)
{
    struct peer *p = *state;
    assert_int_equal(handshake(p, 0), 0);
    uint8_t in[64];
    int empty = 0;
    assert_int_equal(mqc_read(&p->c, in, sizeof(in), &empty, p->err, sizeof(p->err)), 0);
    assert_int_equal(empty, 1);
}

static void a_refused_connect_says_so(void **state)
{
    struct peer *p = *state;
    struct sockaddr_in to = p->addr;
    close(p->listen_fd); /* nobody listens on that port now */
    p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(mqc_start(&p->c, (struct sockaddr *)&to, sizeof(to), NULL, 0, 0, p->err, sizeof(p->err)), 0);
    wait_for(p->c.fd, POLLOUT);
    assert_int_equal(mqc_step(&p->c, NULL, "127.0.0.1", p->err, sizeof(p->err)), -1);
    assert_string_equal(p->err, strerror(ECONNREFUSED));
    mqc_close(&p->c);
    assert_int_equal(p->c.fd, -1);
}

static void a_burst_is_trimmed_once_written(void **state)
{
    struct peer *p = *state;
    assert_int_equal(handshake(p, 0), 0);
    static uint8_t big[40000];
    assert_int_equal(mqc_append(&p->c, big, sizeof(big)), 0);
    mqc_trim(&p->c, 16384); /* not written yet: kept */
    assert_true(p->c.out.cap > 16384);
    uint8_t sink[65536];
    while (mqc_flush(&p->c, 3000, p->err, sizeof(p->err)) == 0)
        (void)!read(p->fd, sink, sizeof(sink));
    mqc_trim(&p->c, 16384);
    assert_int_equal(p->c.out.cap, 0);
    assert_int_equal(mqc_append(&p->c, big, 4), 0); /* and it grows again */
}

static void names_resolve_to_addresses(void **state)
{
    (void)state;
    struct mqc_addrs to;
    char err[256];
    assert_int_equal(mqc_resolve("127.0.0.1", 1883, AF_UNSPEC, &to, err, sizeof(err)), 0);
    assert_int_equal(to.n, 1);
    assert_int_equal(ntohs(((struct sockaddr_in *)&to.addr[0])->sin_port), 1883);
    assert_int_equal(mqc_resolve("127.0.0.1", 1883, AF_INET6, &to, err, sizeof(err)), -1);
    assert_int_equal(to.n, 0);
    assert_non_null(strstr(err, "cannot resolve 127.0.0.1"));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(an_accepted_connack_brings_the_connection_up),
        T(a_refused_connack_is_told_apart),
        T(a_connack_nobody_waits_for_is_unexpected),
        T(nothing_is_written_until_flush_and_then_all_of_it),
        T(a_packet_is_encoded_in_place),
        T(keepalive_pings_at_three_quarters_and_gives_up_after_a_whole),
        T(a_closed_peer_is_read_as_closed),
        T(nothing_to_read_is_not_an_error),
        T(a_refused_connect_says_so),
        T(a_burst_is_trimmed_once_written),
        cmocka_unit_test(names_resolve_to_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
