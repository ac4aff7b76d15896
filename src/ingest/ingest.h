/*
 * ingest.h - "fleetsync ingest": an MQTT 3.1.1 and 5 server for publishing
 * clients that writes their messages to Kafka itself (docs/ingest.md).
 *
 * ingest.c is the command: options, metrics, the Kafka producer and its
 * delivery reports.  server.c is the MQTT side's I/O: one epoll loop over
 * non-blocking sockets, each connection's bounded read buffer, logins
 * against the data dir's accounts.  session.c is each connection's
 * protocol without I/O: states, refusals, and the PUBACKs released in order
 * once Kafka has the records.
 */
#ifndef FS_INGEST_H
#define FS_INGEST_H

#include "core/config.h"
#include "core/metrics.h"
#include "core/mqttauth.h"
#include "core/telemetry.h"

#include <librdkafka/rdkafka.h>
#include <stdint.h>

int cmd_ingest(int argc, char **argv);

/* Why a client or one of its packets was refused: the label of
 * fleetsync_ingest_refused_total{reason}. */
enum ing_refusal {
    REF_BAD_LOGIN,      /* unknown account or wrong password */
    REF_NOT_AUTHORIZED, /* a topic (or will topic) the ACL does not allow */
    REF_BAD_VERSION,    /* a protocol other than MQTT 3.1.1 or 5 */
    REF_MALFORMED,      /* a packet against the protocol */
    REF_TOO_LARGE,      /* longer than --max-packet-size */
    REF_QOS2,           /* a QoS 2 PUBLISH or will */
    REF_RETAIN,         /* MQTT 5: a retained PUBLISH or will */
    REF_SUBSCRIBE,      /* SUBSCRIBE: nothing to subscribe to here */
    REF_CONNECT_TIMEOUT,
    REF_KEEPALIVE,
    REF_SLOW_READER,   /* its unread answers passed the write buffer's bound */
    REF_TOO_MANY,      /* over --max-connections */
    REF_TLS_HANDSHAKE, /* --tls: a handshake failed (plain text, a client that does not trust us, ...) */
    REF_TLS_TIMEOUT,   /* --tls: no handshake within --connect-timeout */
    REF_COUNT
};

struct ing_opts {
    const char *listen;
    char host[256];
    int port;
    int receive_max;     /* in-flight QoS 1 PUBLISHes per connection */
    int max_packet_size; /* bytes */
    int max_connections;
    int connect_timeout_s;
    int max_unread; /* bytes of answers a client may leave unread, in the ingest and again in the kernel */
    int quiet;
    int workers;   /* processes serving the port (--workers); 1: this one */
    int reuseport; /* a worker: the port is shared (SO_REUSEPORT) */
    char tls_host[256];
    int tls_port;         /* --tls HOST:PORT; 0: no TLS listener */
    const char *tls_cert; /* PEM chain, default DATA_DIR/tls/server.crt */
    const char *tls_key;  /* PEM key, default DATA_DIR/tls/server.key */
};

struct ing_server;

struct ingest {
    struct fs_config *cfg;
    struct ing_opts *o;
    struct mqa_store *store; /* NULL: no accounts in the data dir, anyone may publish */
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    int wake[2];
    const char *topics[3];
    rd_kafka_topic_t *rkts[3]; /* handles of topics[], once they are known to exist */
    char topic_buf[3][256];
    int kafka_full; /* librdkafka's queue refused a record: no socket is read until it drains */
    int64_t paused_since_ms;
    double paused_s;
    int64_t wall_ms;
    int64_t mono_ms; /* the loop's clock (fs_mono_ms), read once per pass */
    struct ing_server *srv;

    struct metrics *metrics;
    struct metric *m_connections, *m_connects, *m_readings, *m_acked, *m_dlq[TM_REASON_COUNT], *m_refused[REF_COUNT],
        *m_latency, *m_paused, *m_delivery_errors, *m_wills;
    struct metric_tally latency; /* this pass's PUBACK latencies, added to m_latency once per pass */
    uint64_t readings, acked, dlq, errors;
    uint64_t readings_shown, acked_shown; /* what the counters of /metrics hold */
};

extern const char *const ing_refusal_names[REF_COUNT];

/* The server: listening socket, connections, loop.  0, or -1 + err. */
int ing_server_open(struct ingest *g, char *err, size_t err_size);

/* Runs until SIGINT/SIGTERM; 0 on a clean stop. */
int ing_server_run(struct ingest *g);

/* Frees the server and every connection. */
void ing_server_free(struct ingest *g);

/* Delivery report of a record produced with opaque (NULL: no client waits
 * on it); err 0 means Kafka has it. */
void ing_server_delivered(struct ingest *g, void *opaque, rd_kafka_resp_err_t err, int64_t ts_ms);

/* --workers N (workers.c): forks N workers and supervises them until
 * SIGINT/SIGTERM, restarting one that dies.  In the parent, returns its
 * exit status once every worker stopped; in a worker, returns ING_WORKER
 * with *index set (0..N-1), and the caller goes on to serve. */
#define ING_WORKER (-1)
int ing_workers_run(int n, int *index);

/* Adds to fleetsync_ingest_readings_total and _acknowledged_total what
 * readings and acked counted since the last call, and to the PUBACK latency
 * histogram what the latency tally gathered (once per pass of the loop, not
 * atomic adds per message). */
void ing_counts_publish(struct ingest *g);

/* Counts a refusal. */
void ing_refused(struct ingest *g, enum ing_refusal why);

#endif
