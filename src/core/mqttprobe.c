/*
 * mqttprobe.c - one blocking CONNECT/CONNACK exchange (see mqttprobe.h).
 *
 * The connection goes through mqttconn's states (TCP, TLS, CONNACK); each
 * turn of the loop polls the socket for what the state waits for, so the
 * whole exchange, name resolution aside, is bounded by one deadline.
 */
#include "core/mqttprobe.h"

#include "core/clock.h"
#include "core/mqttconn.h"
#include "core/mqttwire.h"
#include "core/tlsclient.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Enough for a CONNACK of either version with its properties. */
#define IN_SIZE 512

/* What the connection waits for in its state. */
static short wanted_events(const struct mqc *c)
{
    if (c->state == MQC_TCP)
        return POLLOUT;
    if (c->state == MQC_TLS)
        return (c->tls_wait & MQC_READ_WANTS_WRITE) ? POLLOUT : POLLIN;
    if (mqc_pending_out(c))
        return (c->tls_wait & MQC_WRITE_WANTS_READ) ? POLLIN : POLLOUT;
    return (c->tls_wait & MQC_READ_WANTS_WRITE) ? POLLOUT : POLLIN;
}

/* Runs the exchange on a started connection until the CONNACK or the
 * deadline.  Returns 0 with *code, or -1 (err). */
static int exchange(struct mqc *c, SSL_CTX *ctx, const char *host, const struct mqw_connect *m, int64_t deadline,
                    int timeout_ms, int *code, char *err, size_t err_size)
{
    uint8_t in[IN_SIZE];
    size_t in_len = 0;
    for (;;) {
        if (!(c->state == MQC_CONNACK && !mqc_pending_out(c) && mqc_tls_pending(c))) {
            int64_t left = deadline - fs_mono_ms();
            if (left <= 0) {
                snprintf(err, err_size, "no CONNACK within %d ms", timeout_ms);
                return -1;
            }
            struct pollfd pf = {.fd = c->fd, .events = wanted_events(c)};
            int r = poll(&pf, 1, (int)left);
            if (r < 0 && errno != EINTR) {
                snprintf(err, err_size, "poll: %s", strerror(errno));
                return -1;
            }
            if (r <= 0)
                continue;
        }
        if (c->state == MQC_TCP || c->state == MQC_TLS) {
            int s = mqc_step(c, ctx, host, err, err_size);
            if (s < 0)
                return -1;
            if (s > 0 && mqc_queue_connect(c, m) != 0) {
                snprintf(err, err_size, "cannot build CONNECT (client id or credentials too long?)");
                return -1;
            }
            continue;
        }
        if (mqc_pending_out(c)) {
            if (mqc_flush(c, fs_mono_ms(), err, err_size) < 0)
                return -1;
            continue;
        }
        int empty;
        long n = mqc_read(c, in + in_len, sizeof(in) - in_len, &empty, err, err_size);
        if (n < 0)
            return -1;
        in_len += (size_t)n;
        if (in_len == 0)
            continue;
        struct mqw_packet pk;
        int p = mqw_parse_in(in, in_len, 4, sizeof(in), &pk);
        /* The first byte a broker sends is CONNACK's (0x20). */
        if (in[0] != 0x20 || p < 0 || (p == 0 && in_len == sizeof(in)) || (p > 0 && pk.type != MQW_CONNACK)) {
            snprintf(err, err_size, "the peer does not answer CONNECT with CONNACK: not an MQTT broker?");
            return -1;
        }
        if (p > 0) {
            *code = pk.return_code;
            mqc_connack(c, &pk);
            return 0;
        }
    }
}

/* After an accepted CONNACK: DISCONNECT, as far as the socket takes it at
 * once, then TLS's close_notify. */
static void say_goodbye(struct mqc *c)
{
    uint8_t d[2];
    char why[128];
    if (mqw_encode_empty(d, sizeof(d), MQW_DISCONNECT) == sizeof(d) && mqc_append(c, d, sizeof(d)) == 0)
        mqc_flush(c, fs_mono_ms(), why, sizeof(why));
    mqc_tls_shutdown(c);
}

int mqttprobe_connack(const struct mqttprobe_target *t, int timeout_ms, int *return_code, char *err, size_t err_size)
{
    int rc = -1;
    struct mqc c;
    SSL_CTX *ctx = NULL;
    struct mqc_addrs to;
    int64_t deadline = fs_mono_ms() + (timeout_ms > 0 ? timeout_ms : 1);
    int has_user = t->user && *t->user;
    struct mqw_connect m = {.client_id = t->client_id ? t->client_id : "",
                            .keepalive_s = 10,
                            .clean_session = 1,
                            .user = has_user ? t->user : NULL,
                            .pass = has_user ? t->pass : NULL,
                            .version = 4};

    /* A peer that closes while we write must not kill the process: SIGPIPE
     * is held for this thread, and one it raised is taken back. */
    sigset_t pipe_set, old_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    int pipe_was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);

    mqc_init(&c);
    snprintf(err, err_size, "no CONNACK within %d ms", timeout_ms);
    if (t->tls && !(ctx = tls_client_context(NULL, t->host, err, err_size)))
        goto out;
    if (mqc_resolve(t->host, t->port, AF_UNSPEC, &to, err, err_size) != 0)
        goto out;
    for (unsigned k = 0; k < to.n && fs_mono_ms() < deadline; k++) {
        char why[256];
        if (mqc_start(&c, (const struct sockaddr *)&to.addr[k], to.len[k], NULL, 0, fs_mono_ms(), why, sizeof(why)) ==
                0 &&
            exchange(&c, ctx, t->host, &m, deadline, timeout_ms, return_code, why, sizeof(why)) == 0) {
            if (*return_code == MQTTPROBE_ACCEPTED)
                say_goodbye(&c);
            rc = 0;
            break;
        }
        snprintf(err, err_size, "%s", why);
        mqc_close(&c);
    }
out:
    mqc_close(&c);
    mqc_release(&c);
    if (ctx)
        SSL_CTX_free(ctx);
    if (!pipe_was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old_set, NULL);
    return rc;
}
