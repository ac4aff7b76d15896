/*
 * mqttconn.h - one non-blocking MQTT client connection: the transport and
 * session plumbing that the bridge's subscriber (bridge/mqttsub.c, one
 * connection) and the simulator's pool (sim/mqttpool.c, thousands of them on
 * one epoll set) both drive.
 *
 * A connection goes through
 *
 *   DOWN -> TCP -> [TLS] -> CONNACK -> UP
 *     ^                                 |
 *     +---- mqc_close (any failure) ----+
 *
 *   DOWN     no socket (fd -1, no TLS session, empty output queue).
 *   TCP      mqc_start() began a non-blocking connect; the driver waits for
 *            the socket to be writable and calls mqc_step().
 *   TLS      the handshake runs; mqc_step() on every socket event.
 *   CONNACK  mqc_step() said the transport is ready and the driver queued
 *            its CONNECT with mqc_queue_connect(); waiting for the answer.
 *   UP       mqc_connack() accepted the broker's CONNACK.
 *
 * What is here is mechanism; the drivers keep the policy: which address to
 * try and when to try again, what CONNECT says, which packets they take,
 * when the output queue is written.  Nothing is written except by
 * mqc_flush(), and mqc_read() is one read(2) (or SSL_read) into the
 * driver's buffer, so a driver writes a whole batch of packets with one
 * system call and reads everything the socket holds with one more.
 *
 * Failures: a function that finds the connection broken returns -1 with a
 * reason in the caller's err buffer and leaves the socket open; the driver
 * counts or logs it and calls mqc_close().  The struct is embedded in the
 * driver's own per-connection state; its fields are read by drivers, and
 * changed only through these functions.  Not thread-safe: one thread per
 * connection.
 */
#ifndef FS_CORE_MQTTCONN_H
#define FS_CORE_MQTTCONN_H

#include "core/buf.h"
#include "core/mqttwire.h"

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum mqc_state { MQC_DOWN, MQC_TCP, MQC_TLS, MQC_CONNACK, MQC_UP };

/* OpenSSL may need the other direction first (the handshake, a
 * renegotiation, a TLS 1.3 key update): the waiting operation is retried
 * when that one is ready. */
#define MQC_READ_WANTS_WRITE 1 /* the handshake or the last read waits for the socket to be writable */
#define MQC_WRITE_WANTS_READ 2 /* the last write waits for the socket to be readable */

struct mqc {
    SSL *ssl;       /* TLS session, or NULL */
    struct buf out; /* packets to write: out.p[out_off..out.len) are not written yet */
    size_t out_off;
    int64_t last_out_ms; /* the last write (or the connect): keepalive counts from it */
    int64_t ping_ms;     /* a PINGREQ not yet answered, or 0 */
    int fd;              /* -1 while DOWN */
    uint8_t state;       /* enum mqc_state */
    uint8_t tls_wait;    /* MQC_READ_WANTS_WRITE | MQC_WRITE_WANTS_READ */
};

/* The addresses a broker's name resolves to, tried in turn. */
#define MQC_MAX_ADDRS 8
struct mqc_addrs {
    struct sockaddr_storage addr[MQC_MAX_ADDRS];
    socklen_t len[MQC_MAX_ADDRS];
    unsigned n;
};

/* Makes c an idle connection (DOWN, no socket, empty queue). */
void mqc_init(struct mqc *c);
/* Closes and frees the output queue's memory. */
void mqc_release(struct mqc *c);

/* Looks host:port up, keeping at most MQC_MAX_ADDRS stream addresses of
 * family (AF_UNSPEC: any).  Returns 0, or -1 with a reason in err (and
 * out->n 0). */
int mqc_resolve(const char *host, int port, int family, struct mqc_addrs *out, char *err, size_t err_size);

/* Starts a non-blocking TCP connect to `to` (from `from` when not NULL,
 * its port left to connect()) with Nagle off: the drivers batch their
 * writes.  c must be DOWN; on success it is TCP with fd set, and the driver
 * waits for the socket to be writable.  Returns 0, or -1 with a reason in
 * err and c still DOWN (no socket). */
int mqc_start(struct mqc *c, const struct sockaddr *to, socklen_t to_len, const struct sockaddr *from,
              socklen_t from_len, int64_t now_ms, char *err, size_t err_size);

/* Advances TCP and TLS on a socket event: checks the connect's outcome,
 * starts TLS when ctx is not NULL (verifying host), runs the handshake.
 * Returns 1 when the transport is ready (the driver queues CONNECT now),
 * 0 when it waits for the socket (see tls_wait), -1 with a reason in err. */
int mqc_step(struct mqc *c, SSL_CTX *ctx, const char *host, char *err, size_t err_size);

/* Queues CONNECT and moves to CONNACK.  Returns 0, or -1 if it cannot be
 * encoded (a client id or credentials too long) or memory is short. */
int mqc_queue_connect(struct mqc *c, const struct mqw_connect *m);

/* The broker's CONNACK: returns 0 if accepted (c is UP), 1 if refused
 * (pk->return_code says why), -1 if c was not waiting for one. */
int mqc_connack(struct mqc *c, const struct mqw_packet *pk);

/* Appends a packet to the output queue.  Returns 0, or -1 if memory is
 * short (the queue keeps what it had). */
int mqc_append(struct mqc *c, const void *pkt, size_t n);

/* Room for n more bytes at out.p + out.len, for encoding a packet in
 * place; the caller then adds its length with mqc_commit().  Returns 0 or
 * -1 (memory short). */
int mqc_reserve(struct mqc *c, size_t n);
void mqc_commit(struct mqc *c, size_t n);

/* 1 if the output queue holds bytes not written yet. */
static inline int mqc_pending_out(const struct mqc *c)
{
    return c->out_off < c->out.len;
}

/* Writes the output queue as far as the socket takes it: one send(2) (or
 * SSL_write) for everything queued.  Returns 1 when the queue is empty
 * (its memory kept), 0 when the socket took only part, -1 with a reason in
 * err when the connection is broken. */
int mqc_flush(struct mqc *c, int64_t now_ms, char *err, size_t err_size);

/* Frees the output queue's memory if it grew past keep bytes and is empty:
 * a burst does not stay allocated on each of thousands of connections. */
void mqc_trim(struct mqc *c, size_t keep);

/* One read(2) (or SSL_read) of up to room bytes into buf.  Returns the
 * number of bytes, 0 when there is nothing now (for TLS, tls_wait says
 * which direction it waits for), -1 with a reason in err when the
 * connection is closed or broken.  *empty is set to 1 when the socket is
 * known to hold nothing more (a plain read that did not fill room), so a
 * driver reads a batch with one system call. */
long mqc_read(struct mqc *c, uint8_t *buf, size_t room, int *empty, char *err, size_t err_size);

/* Decrypted bytes OpenSSL holds that poll() cannot see. */
int mqc_tls_pending(const struct mqc *c);

/* Keepalive for a connection past CONNECT: queues PINGREQ when nothing was
 * written for three quarters of keepalive_ms.  While reading, a PINGREQ
 * unanswered for keepalive_ms loses the connection (-1 with a reason in
 * err); while not reading (a driver that leaves its socket unread, so
 * PINGRESPs wait unread) it pings on regardless, so the broker keeps the
 * connection.  Call mqc_pong() on PINGRESP.  Returns 0 or -1. */
int mqc_keepalive(struct mqc *c, int64_t now_ms, int64_t keepalive_ms, int reading, char *err, size_t err_size);
static inline void mqc_pong(struct mqc *c)
{
    c->ping_ms = 0;
}

/* Sends TLS's close_notify (when TLS is up): for a clean end only, after
 * DISCONNECT was written. */
void mqc_tls_shutdown(struct mqc *c);

/* Closes the socket and the TLS session; the output queue is emptied (its
 * memory kept).  c is DOWN.  Safe on a DOWN connection. */
void mqc_close(struct mqc *c);

#endif
