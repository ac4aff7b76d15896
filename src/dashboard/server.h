/*
 * server.h - the dashboard's HTTP + WebSocket side (civetweb): the page and
 * its libraries, the JSON API (docs/design.md), /healthz, /metrics and /ws.
 *
 * Threads and locks:
 *   - civetweb's worker threads answer HTTP requests and read WebSocket
 *     messages; they take d->lock (store, alerts) only to read.
 *   - one pusher thread builds frames (view.h) for every client whose last
 *     frame has been written, at most one per DS_FRAME_INTERVAL_MS each;
 *   - one writer thread per client writes its frame and queued messages to
 *     the socket, so a slow client only delays itself: while its frame is
 *     unwritten no newer one is built for it (intermediate states are
 *     dropped), and its queue of small messages (alerts, errors) is bounded.
 * Lock order: clients_lock -> a client's lock -> d->lock.  The consumer
 * holds d->lock only while it applies records, never while it notifies.
 */
#ifndef FS_DASHBOARD_SERVER_H
#define FS_DASHBOARD_SERVER_H

#include "core/metrics.h"
#include "dashboard/alerts.h"
#include "dashboard/auth.h"
#include "core/config.h"
#include "dashboard/store.h"
#include "dashboard/tlsfront.h"

#include <limits.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdint.h>

#define DS_FRAME_INTERVAL_MS 50
#define DS_CLIENT_QUEUE_MAX (256u << 10) /* bytes of queued small messages per client */
#define DS_ALLOWED_HOSTS_MAX 16

struct ds_client;

struct dash {
    pthread_mutex_t lock; /* store and alerts */
    struct ds_store store;
    struct ds_alerts alerts;
    _Atomic int assigned;     /* partitions assigned to the consumer; set in the rebalance callback, which may
                               * run inside the consumer's locked batch, so it takes no lock */
    _Atomic uint32_t version; /* store.version after the last batch: the pusher's hint, read without the lock */

    pthread_mutex_t wake_lock;
    pthread_cond_t wake;
    int wake_pending;

    pthread_mutex_t clients_lock;
    struct ds_client *clients;
    int nclients, max_clients;
    char fleet_msg[256]; /* the latest "fleet" message, for clients that connect (under clients_lock) */

    int stopping;
    pthread_t pusher;
    int pusher_started;
    struct mg_context *mg;

    char web_dir[PATH_MAX];
    char modules_dir[PATH_MAX];
    const char *tile_url;
    const struct fs_config *cfg; /* for today's track, read from history's PostgreSQL */
    /* One PostgreSQL connection for the track panel, used by one request at
     * a time (track_lock); the others wait at most DS_TRACK_WAIT_MS, a query
     * runs at most DS_TRACK_TIMEOUT_MS, and after a failed connect none is
     * tried for DS_TRACK_RETRY_MS: a slow or dead database cannot hold the
     * web workers that serve the live map. */
    pthread_mutex_t track_lock;
    PGconn *track_pg;
    long long track_retry_at; /* mono_ms before which no connect is tried */
    struct ds_auth *auth;     /* NULL: no login (loopback without --auth-file) */
    /* Per client address (under rate_lock): every request and WebSocket
     * upgrade but /healthz and /metrics; failed logins and credentials. */
    pthread_mutex_t rate_lock;
    struct ds_rate *req_rate, *login_rate;
    char headers[1024]; /* security headers of every response, "\r\n"-separated, no final one */
    /* Host names requests may carry besides loopback ones (DNS rebinding):
     * the --listen host when it is a name or a specific address, and each
     * --allowed-host; with host_any_ip (a wildcard --listen with a login)
     * any IP address too. */
    const char *allowed_hosts[DS_ALLOWED_HOSTS_MAX + 1];
    int n_allowed_hosts, host_any_ip;
    /* HTTPS (tlsfront.h): the context until the server starts, then the
     * front; civetweb itself listens on an ephemeral loopback port. */
    SSL_CTX *tls_ctx;
    struct ds_tlsfront *front;
    int tls;
    char peer_token[DS_PEER_TOKEN_LEN + 1];

    struct metrics *metrics;
    struct metric *m_clients, *m_frames, *m_skipped, *m_client_errors, *m_queue_dropped, *m_trucks;
    struct metric *m_refused_auth, *m_refused_origin, *m_refused_rate, *m_logins;
};

/* The Content-Security-Policy and other headers of every response into
 * d->headers; tile_url's origin is allowed for images. */
void ds_server_headers(struct dash *d);

#define DS_TRACK_WAIT_MS 1000
#define DS_TRACK_TIMEOUT_MS 2000
#define DS_TRACK_RETRY_MS 5000

/* Starts civetweb on host:port and the pusher thread; with d->tls_ctx,
 * the TLS front on host:port (which then owns the context) and civetweb on
 * a loopback port behind it.  Returns 0, or -1 with a reason in err
 * (nothing left running then). */
int ds_server_start(struct dash *d, const char *host, int port, char *err, size_t err_size);

/* Stops the TLS front, civetweb (closing every WebSocket) and the
 * pusher; safe if not started. */
void ds_server_stop(struct dash *d);

/* The store changed: wake the pusher.  Any thread, no lock held. */
void ds_server_notify(struct dash *d);

/* Queues {"type":"alert","alert":<json>} for every client.  Any thread,
 * without d->lock. */
void ds_server_alert(struct dash *d, const char *json, size_t len);

#endif
