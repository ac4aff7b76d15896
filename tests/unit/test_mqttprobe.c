/* core/mqttprobe: the health probe's one exchange against a listener on the
 * loopback that plays the broker in a thread: the CONNACK's code is the
 * answer (a refusal too), DISCONNECT follows an acceptance, and a peer that
 * is not there, says nothing or does not speak MQTT is no answer. */
#include "core/mqttprobe.h"

#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

enum peer_mode { ANSWER, SILENT, NOT_MQTT };

struct peer {
    int listen_fd, port;
    enum peer_mode mode;
    uint8_t code;     /* the CONNACK's return code */
    uint8_t got[512]; /* everything the client wrote */
    size_t got_len;
    pthread_t thread;
};

/* Reads what the client writes until it closes or 2 s pass. */
static void read_all(struct peer *p, int fd)
{
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (;;) {
        ssize_t n = read(fd, p->got + p->got_len, sizeof(p->got) - p->got_len);
        if (n <= 0)
            return;
        p->got_len += (size_t)n;
        if (p->got_len == sizeof(p->got))
            return;
        if (p->mode == ANSWER && p->got_len >= 2 && p->got[0] == 0x10 && p->got_len == (size_t)p->got[1] + 2u) {
            /* the whole CONNECT (short: one length byte): answer it */
            uint8_t connack[4] = {0x20, 0x02, 0x00, p->code};
            if (write(fd, connack, sizeof(connack)) != sizeof(connack))
                return;
        }
        if (p->mode == NOT_MQTT) {
            static const char http[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
            if (write(fd, http, sizeof(http) - 1) < 0)
                return;
        }
    }
}

static void *peer_main(void *arg)
{
    struct peer *p = arg;
    int fd = accept(p->listen_fd, NULL, NULL);
    if (fd >= 0) {
        read_all(p, fd);
        close(fd);
    }
    return NULL;
}

static int setup(void **state)
{
    static struct peer p;
    p = (struct peer){0};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    p.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p.listen_fd < 0 || bind(p.listen_fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(p.listen_fd, 4) != 0 ||
        getsockname(p.listen_fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    p.port = ntohs(a.sin_port);
    *state = &p;
    return 0;
}

static int teardown(void **state)
{
    struct peer *p = *state;
    if (p->listen_fd >= 0)
        close(p->listen_fd);
    return 0;
}

static void start_peer(struct peer *p, enum peer_mode mode, uint8_t code)
{
    p->mode = mode;
    p->code = code;
    assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

static int probe(struct peer *p, const char *user, const char *pass, int timeout_ms, int *code, char *err,
                 size_t err_size)
{
    struct mqttprobe_target t = {
        .host = "127.0.0.1", .port = p->port, .client_id = "fleetsync-probe-1", .user = user, .pass = pass};
    return mqttprobe_connack(&t, timeout_ms, code, err, err_size);
}

static int got_contains(const struct peer *p, const char *s)
{
    return memmem(p->got, p->got_len, s, strlen(s)) != NULL;
}

static void an_accepting_broker_answers_0_and_is_sent_disconnect(void **state)
{
    struct peer *p = *state;
    char err[256];
    int code = -1;
    start_peer(p, ANSWER, 0);
    assert_int_equal(probe(p, NULL, NULL, 2000, &code, err, sizeof(err)), 0);
    pthread_join(p->thread, NULL);
    assert_int_equal(code, MQTTPROBE_ACCEPTED);
    assert_true(p->got_len >= 4);
    assert_int_equal(p->got[0], 0x10); /* CONNECT */
    assert_true(got_contains(p, "MQTT"));
    assert_true(got_contains(p, "fleetsync-probe-1"));
    /* MQTT 3.1.1, clean session, no credentials */
    const uint8_t *v = memmem(p->got, p->got_len, "MQTT", 4);
    assert_int_equal(v[4], 4);
    assert_int_equal(v[5], 0x02);
    static const uint8_t disconnect[2] = {0xE0, 0x00};
    assert_memory_equal(p->got + p->got_len - 2, disconnect, 2);
}

static void a_refusal_is_an_answer_with_its_code(void **state)
{
    struct peer *p = *state;
    char err[256];
    int code = -1;
    start_peer(p, ANSWER, MQTTPROBE_NOT_AUTHORISED);
    assert_int_equal(probe(p, NULL, NULL, 2000, &code, err, sizeof(err)), 0);
    pthread_join(p->thread, NULL);
    assert_int_equal(code, MQTTPROBE_NOT_AUTHORISED);
    assert_int_equal(p->got_len, (size_t)p->got[1] + 2); /* CONNECT only: no DISCONNECT after a refusal */
}

static void credentials_go_into_connect(void **state)
{
    struct peer *p = *state;
    char err[256];
    int code = -1;
    start_peer(p, ANSWER, 0);
    assert_int_equal(probe(p, "ops", "s3cret", 2000, &code, err, sizeof(err)), 0);
    pthread_join(p->thread, NULL);
    const uint8_t *v = memmem(p->got, p->got_len, "MQTT", 4);
    assert_non_null(v);
    assert_int_equal(v[5], 0xC2); /* user, password, clean session */
    assert_true(got_contains(p, "ops"));
    assert_true(got_contains(p, "s3cret"));
}

static void a_silent_peer_is_no_answer_within_the_timeout(void **state)
{
    struct peer *p = *state;
    char err[256] = "";
    int code = -1;
    start_peer(p, SILENT, 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(probe(p, NULL, NULL, 300, &code, err, sizeof(err)), -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms >= 290 && ms < 1500);
    assert_non_null(strstr(err, "no CONNACK within 300 ms"));
    pthread_join(p->thread, NULL);
    assert_int_equal(p->got[0], 0x10); /* CONNECT was sent */
}

static void a_peer_that_is_not_mqtt_is_no_answer(void **state)
{
    struct peer *p = *state;
    char err[256] = "";
    int code = -1;
    start_peer(p, NOT_MQTT, 0);
    assert_int_equal(probe(p, NULL, NULL, 2000, &code, err, sizeof(err)), -1);
    pthread_join(p->thread, NULL);
    assert_non_null(strstr(err, "not an MQTT broker"));
}

static void nothing_listening_is_no_answer(void **state)
{
    struct peer *p = *state;
    char err[256] = "";
    int code = -1;
    close(p->listen_fd);
    p->listen_fd = -1;
    assert_int_equal(probe(p, NULL, NULL, 2000, &code, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "refused"));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(an_accepting_broker_answers_0_and_is_sent_disconnect),
        T(a_refusal_is_an_answer_with_its_code),
        T(credentials_go_into_connect),
        T(a_silent_peer_is_no_answer_within_the_timeout),
        T(a_peer_that_is_not_mqtt_is_no_answer),
        T(nothing_listening_is_no_answer),
    };
    return cmocka_run_group_tests_name("mqttprobe", tests, NULL, NULL);
}
