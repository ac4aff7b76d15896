/*
 * server.c - HTTP, WebSocket clients and the frame pusher (see server.h).
 *
 * A client's life: civetweb accepts the upgrade (connect: authentication
 * and the client limit), ready creates the client and its writer thread and
 * queues "hello", each text message goes through ds_proto_parse (a bad one
 * queues an "error" message), close unlinks it, stops and joins its writer
 * and frees it.  Only the pusher touches a client's view; the frame slot
 * belongs to the pusher while empty and to the writer while full.
 */
#include "dashboard/server.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/pg.h"
#include "dashboard/jbuf.h"
#include "dashboard/proto.h"
#include "dashboard/view.h"

#include <civetweb.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define API_MAX_BYTES (64u << 20)
#define API_MAX_TRUCKS 10000
#define API_MAX_ALERTS 1000
#define FRAME_MAX_BYTES (4u << 20)

struct ds_client {
    struct ds_client *next;
    struct dash *d;
    struct mg_connection *conn;
    pthread_t writer;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int closing;
    /* From the reader (under lock): the latest viewport asked for. */
    int new_viewport;
    struct ds_bbox want_bbox;
    double want_zoom;
    /* Small messages, '\n'-separated (under lock); dropped when full. */
    struct buf queue;
    int queue_dropped;
    /* The frame slot: filled by the pusher, emptied by the writer. */
    struct buf slot;
    int slot_full;
    /* Pusher only. */
    struct ds_view view;
    uint32_t seen_version;
    long long next_frame_ms, next_check_ms;
};

void ds_server_notify(struct dash *d)
{
    pthread_mutex_lock(&d->wake_lock);
    d->wake_pending = 1;
    pthread_cond_signal(&d->wake);
    pthread_mutex_unlock(&d->wake_lock);
}

/* Queues one message for a client (its lock held). */
static void client_queue(struct ds_client *c, const char *msg, size_t len)
{
    if (c->queue.len + len + 1 > DS_CLIENT_QUEUE_MAX) {
        c->queue_dropped = 1;
        metric_add(c->d->m_queue_dropped, 1);
        return;
    }
    buf_put(&c->queue, msg, len);
    buf_put(&c->queue, "\n", 1);
    pthread_cond_signal(&c->cond);
}

void ds_server_alert(struct dash *d, const char *json, size_t len)
{
    struct buf m = {.max = len + 64};
    buf_puts(&m, "{\"type\":\"alert\",\"alert\":");
    buf_put(&m, json, len);
    buf_puts(&m, "}");
    if (!m.oom) {
        pthread_mutex_lock(&d->clients_lock);
        for (struct ds_client *c = d->clients; c; c = c->next) {
            pthread_mutex_lock(&c->lock);
            client_queue(c, m.p, m.len);
            pthread_mutex_unlock(&c->lock);
        }
        pthread_mutex_unlock(&d->clients_lock);
    }
    buf_release(&m);
}

/* ---- writer: one per client ---------------------------------------------- */

static int ws_send(struct ds_client *c, const char *p, size_t n)
{
    return mg_websocket_write(c->conn, MG_WEBSOCKET_OPCODE_TEXT, p, n) > 0 ? 0 : -1;
}

static void *writer_main(void *arg)
{
    struct ds_client *c = arg;
    struct buf q = {.max = DS_CLIENT_QUEUE_MAX + 1};
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->closing && !c->slot_full && c->queue.len == 0 && !c->queue_dropped)
            pthread_cond_wait(&c->cond, &c->lock);
        if (c->closing)
            break;
        /* Take the queue; the slot stays full (the pusher leaves it alone). */
        struct buf tmp = q;
        q = c->queue;
        c->queue = tmp;
        buf_reset(&c->queue);
        int dropped = c->queue_dropped;
        c->queue_dropped = 0;
        int frame = c->slot_full;
        pthread_mutex_unlock(&c->lock);

        int failed = 0;
        for (size_t i = 0; i < q.len && !failed;) {
            char *nl = memchr(q.p + i, '\n', q.len - i);
            size_t n = nl ? (size_t)(nl - (q.p + i)) : q.len - i;
            failed = ws_send(c, q.p + i, n) != 0;
            i += n + 1;
        }
        if (dropped && !failed) {
            static const char m[] = "{\"type\":\"dropped\",\"what\":\"alerts\","
                                    "\"detail\":\"messages were dropped for a slow client; fetch /api/alerts\"}";
            failed = ws_send(c, m, sizeof(m) - 1) != 0;
        }
        if (frame && !failed) {
            failed = ws_send(c, c->slot.p, c->slot.len) != 0;
            if (!failed)
                metric_add(c->d->m_frames, 1);
        }
        buf_reset(&q);
        pthread_mutex_lock(&c->lock);
        if (frame)
            c->slot_full = 0;
        if (failed) {
            c->closing = 1;
            break;
        }
        if (frame) {
            pthread_mutex_unlock(&c->lock);
            ds_server_notify(c->d); /* room for the next frame */
            pthread_mutex_lock(&c->lock);
        }
    }
    pthread_mutex_unlock(&c->lock);
    buf_release(&q);
    return NULL;
}

/* ---- pusher -------------------------------------------------------------- */

static void push_fleet(struct dash *d, uint32_t *last)
{
    uint32_t counts[DS_STATE_COUNT];
    pthread_mutex_lock(&d->lock);
    uint32_t total = ds_store_fleet(&d->store, fs_wall_ms(), counts);
    pthread_mutex_unlock(&d->lock);
    metric_set(d->m_trucks, total);
    if (total == last[DS_STATE_COUNT] && memcmp(counts, last, sizeof(counts)) == 0 && last[DS_STATE_COUNT + 1])
        return;
    last[DS_STATE_COUNT + 1] = 1; /* the first rendering is sent even when all is zero */
    memcpy(last, counts, sizeof(counts));
    last[DS_STATE_COUNT] = total;
    char m[256];
    int n = snprintf(m, sizeof(m),
                     "{\"type\":\"fleet\",\"server_ms\":%lld,\"trucks\":%u,\"moving\":%u,\"idle\":%u,\"parked\":%u,"
                     "\"offline\":%u}",
                     (long long)fs_wall_ms(), total, counts[DS_MOVING], counts[DS_IDLE], counts[DS_PARKED],
                     counts[DS_OFFLINE]);
    pthread_mutex_lock(&d->clients_lock);
    snprintf(d->fleet_msg, sizeof(d->fleet_msg), "%s", m);
    for (struct ds_client *c = d->clients; c; c = c->next) {
        pthread_mutex_lock(&c->lock);
        client_queue(c, m, (size_t)n);
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&d->clients_lock);
}

static void *pusher_main(void *arg)
{
    struct dash *d = arg;
    uint32_t fleet[DS_STATE_COUNT + 2] = {0}; /* counts, total, sent once */
    long long next_fleet = 0, wait_ms = 100;
    for (;;) {
        pthread_mutex_lock(&d->wake_lock);
        if (!d->wake_pending && !d->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += wait_ms / 1000;
            ts.tv_nsec += (wait_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&d->wake, &d->wake_lock, &ts);
        }
        d->wake_pending = 0;
        int stop = d->stopping;
        pthread_mutex_unlock(&d->wake_lock);
        if (stop)
            break;

        long long now = fs_mono_ms();
        wait_ms = 100; /* shortened below to the next client that is due */
        if (now >= next_fleet) {
            push_fleet(d, fleet);
            next_fleet = now + 1000;
        }

        pthread_mutex_lock(&d->clients_lock);
        for (struct ds_client *c = d->clients; c; c = c->next) {
            pthread_mutex_lock(&c->lock);
            if (c->closing) {
                pthread_mutex_unlock(&c->lock);
                continue;
            }
            if (c->new_viewport) {
                ds_view_set(&c->view, &c->want_bbox, c->want_zoom);
                c->new_viewport = 0;
                c->next_check_ms = 0;
            }
            if (c->slot_full) {
                metric_add(d->m_skipped, 1);
                pthread_mutex_unlock(&c->lock);
                continue;
            }
            pthread_mutex_unlock(&c->lock);
            /* The slot is ours while empty: build without the client's lock. */
            uint32_t version = atomic_load_explicit(&d->version, memory_order_relaxed);
            int due = c->view.has_viewport && (c->view.reset || version != c->seen_version || now >= c->next_check_ms);
            if (due && now < c->next_frame_ms && c->next_frame_ms - now < wait_ms)
                wait_ms = c->next_frame_ms - now;
            if (!due || now < c->next_frame_ms)
                continue;
            pthread_mutex_lock(&d->lock);
            c->seen_version = d->store.version;
            int r = ds_view_frame(&c->view, &d->store, fs_wall_ms(), &c->slot);
            pthread_mutex_unlock(&d->lock);
            c->next_check_ms = now + 1000; /* derived states change with time alone */
            if (r < 0)
                log_warn("a frame exceeded %u bytes; skipped", FRAME_MAX_BYTES);
            if (r != 1)
                continue;
            c->next_frame_ms = now + DS_FRAME_INTERVAL_MS;
            pthread_mutex_lock(&c->lock);
            c->slot_full = 1;
            pthread_cond_signal(&c->cond);
            pthread_mutex_unlock(&c->lock);
        }
        pthread_mutex_unlock(&d->clients_lock);
    }
    return NULL;
}

/* ---- access (docs/dashboard.md "Access") -------------------------------- */

#define LOGIN_BODY_MAX 4096
#define SESSION_COOKIE "fs_session"

/* The client's address into out: the TCP peer, or, when the dashboard
 * serves HTTPS, the address the TLS front's peer line vouches for with
 * its token (tlsfront.h).  Returns 0, or -1 for a request that did not
 * come through the front (someone on this host at civetweb's inner port). */
static int client_addr(struct dash *d, const struct mg_connection *conn, char *out, size_t size)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (!d->tls) {
        snprintf(out, size, "%s", ri->remote_addr);
        return 0;
    }
    const char *v = mg_get_header(conn, DS_PEER_HEADER); /* the first: the front's line */
    if (!v || strlen(v) < DS_PEER_TOKEN_LEN + 2 || v[DS_PEER_TOKEN_LEN] != ' ' ||
        CRYPTO_memcmp(v, d->peer_token, DS_PEER_TOKEN_LEN) != 0)
        return -1;
    snprintf(out, size, "%s", v + DS_PEER_TOKEN_LEN + 1);
    return 0;
}

static const char *status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 303:
        return "See Other";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 421:
        return "Misdirected Request";
    case 429:
        return "Too Many Requests";
    default:
        return "Error";
    }
}

/* One complete response; extra is more header lines ("Name: value\r\n"...)
 * or NULL. */
static void reply_with(struct dash *d, struct mg_connection *conn, int status, const char *extra, const char *type,
                       const char *body, size_t len)
{
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n%s\r\n%s"
              "Connection: close\r\n\r\n",
              status, status_text(status), type, len, d->headers, extra ? extra : "");
    mg_write(conn, body, len);
}

/* Takes a token of r for one request from addr: 1 if it may go on. */
static int rate_ok(struct dash *d, struct ds_rate *r, const char *addr)
{
    if (!r)
        return 1; /* no table: not limited */
    long long now = fs_mono_ms();
    pthread_mutex_lock(&d->rate_lock);
    int ok = ds_rate_take(r, addr, now);
    pthread_mutex_unlock(&d->rate_lock);
    return ok;
}

/* Gives back the token a credential check took: it succeeded. */
static void rate_refund(struct dash *d, struct ds_rate *r, const char *addr)
{
    if (!r)
        return;
    long long now = fs_mono_ms();
    pthread_mutex_lock(&d->rate_lock);
    ds_rate_refund(r, addr, now);
    pthread_mutex_unlock(&d->rate_lock);
}

enum access { ACCESS_OK, ACCESS_NONE, ACCESS_BAD, ACCESS_THROTTLED };

/* Who is asking: ACCESS_OK when no login is configured, or a valid session
 * cookie or Authorization header came; ACCESS_NONE when nothing (or an
 * expired session) came, ACCESS_BAD for wrong credentials or a forged
 * cookie, ACCESS_THROTTLED when this address failed too often. */
static enum access check_access(struct dash *d, const struct mg_connection *conn, const char *addr)
{
    if (!d->auth)
        return ACCESS_OK;
    const char *cookies = mg_get_header(conn, "Cookie");
    char v[DS_AUTH_COOKIE_MAX + 1];
    int n = cookies ? ds_auth_cookie(cookies, SESSION_COOKIE, v, sizeof(v)) : -1, idx;
    enum access got = ACCESS_NONE;
    if (n >= 0) {
        int r = ds_auth_session_check(d->auth, v, (size_t)n, fs_wall_ms(), &idx);
        if (r == 0)
            return ACCESS_OK;
        got = r == -2 ? ACCESS_NONE : ACCESS_BAD;
    }
    const char *h = mg_get_header(conn, "Authorization");
    if (h) {
        /* Credentials cost a login attempt, taken before the check (so
         * parallel guesses cannot all pass a peek) and given back when they
         * are right; a cookie cannot be guessed and costs nothing. */
        if (!rate_ok(d, d->login_rate, addr))
            return ACCESS_THROTTLED;
        if (ds_auth_check_header(d->auth, h) >= 0) {
            rate_refund(d, d->login_rate, addr);
            return ACCESS_OK;
        }
        got = ACCESS_BAD;
    }
    return got;
}

static void refuse_access(struct dash *d, struct mg_connection *conn, enum access a)
{
    metric_add(a == ACCESS_THROTTLED ? d->m_refused_rate : d->m_refused_auth, 1);
    if (a == ACCESS_THROTTLED) {
        static const char m[] = "{\"error\":\"too many failed logins from this address; wait a minute\"}";
        reply_with(d, conn, 429, "Retry-After: 60\r\n", "application/json", m, sizeof(m) - 1);
        return;
    }
    static const char m[] = "{\"error\":\"login required\"}";
    reply_with(d, conn, 401, "WWW-Authenticate: Bearer realm=\"fleetsync\"\r\n", "application/json", m, sizeof(m) - 1);
}

/* The dashboard answers only requests that name it by a loopback name, a
 * name or address it listens on or an --allowed-host (DNS rebinding: a
 * page of another site whose name now points at this server); with a
 * login on a wildcard --listen, any IP address too.  A browser's
 * cross-origin request is refused. */
static const char *request_refusal(struct dash *d, const struct mg_connection *conn, int websocket)
{
    const char *host = mg_get_header(conn, "Host"), *origin = mg_get_header(conn, "Origin");
    if (host && !ds_auth_host_allowed(host, d->allowed_hosts, d->n_allowed_hosts, d->auth ? d->host_any_ip : 0))
        return d->auth ? "the Host header names no address or name of this dashboard (add it with --allowed-host)"
                       : "this dashboard has no login (no --auth-file) and answers only to a loopback Host or an "
                         "--allowed-host";
    if (origin && (websocket || strcmp(mg_get_request_info(conn)->request_method, "POST") == 0) &&
        !ds_auth_origin_ok(origin, host))
        return "cross-origin request refused";
    return NULL;
}

/* The sign-in page (the form posts to /login); msg is shown above it. */
static void login_page(struct dash *d, struct mg_connection *conn, int status, const char *msg)
{
    char page[2048];
    int n = snprintf(page, sizeof(page),
                     "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                     "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                     "<title>FleetSync — sign in</title>\n<link rel=\"icon\" href=\"data:,\">\n"
                     "<link rel=\"stylesheet\" href=\"/style.css\">\n</head>\n<body class=\"login\">\n"
                     "<form method=\"post\" action=\"/login\" id=\"login\">\n<h1>FleetSync</h1>\n%s%s%s"
                     "<label>User <input name=\"user\" autocomplete=\"username\" required autofocus></label>\n"
                     "<label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" "
                     "required></label>\n<button type=\"submit\">Sign in</button>\n</form>\n</body>\n</html>\n",
                     msg ? "<p class=\"error\">" : "", msg ? msg : "", msg ? "</p>\n" : "");
    reply_with(d, conn, status, status == 429 ? "Retry-After: 60\r\n" : NULL, "text/html; charset=utf-8", page,
               (size_t)n);
}

static void redirect(struct dash *d, struct mg_connection *conn, const char *to, const char *cookie)
{
    char extra[512];
    snprintf(extra, sizeof(extra), "Location: %s\r\n%s%s%s", to, cookie ? "Set-Cookie: " : "", cookie ? cookie : "",
             cookie ? "\r\n" : "");
    reply_with(d, conn, 303, extra, "text/plain", "", 0);
}

/* POST /login: user=..&password=.. (x-www-form-urlencoded, at most 4 KiB). */
static int do_login(struct dash *d, struct mg_connection *conn, const struct mg_request_info *ri, const char *addr)
{
    char body[LOGIN_BODY_MAX + 1], user[DS_AUTH_NAME_MAX + 2], pw[DS_AUTH_SECRET_MAX + 2];
    if (ri->content_length < 0 || ri->content_length > LOGIN_BODY_MAX) {
        static const char m[] = "{\"error\":\"a login form of at most 4096 bytes with a Content-Length\"}";
        reply_with(d, conn, 413, NULL, "application/json", m, sizeof(m) - 1);
        return 413;
    }
    /* The attempt is paid for before the KDF runs and refunded on success:
     * however many arrive at once, at most the budget is evaluated. */
    if (!rate_ok(d, d->login_rate, addr)) {
        metric_add(d->m_refused_rate, 1);
        login_page(d, conn, 429, "Too many attempts from this address: wait a minute.");
        return 429;
    }
    size_t len = 0;
    while (len < (size_t)ri->content_length) {
        int r = mg_read(conn, body + len, (size_t)ri->content_length - len);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    body[len] = '\0';
    int idx = -1;
    if (ds_form_login(body, len, user, sizeof(user), pw, sizeof(pw)) == 0)
        idx = ds_auth_check_password(d->auth, user, pw, strlen(pw));
    memset(pw, 0, sizeof(pw));
    memset(body, 0, sizeof(body));
    char value[DS_AUTH_COOKIE_MAX + 1], cookie[DS_AUTH_COOKIE_MAX + 128];
    if (idx < 0 || ds_auth_session_new(d->auth, idx, fs_wall_ms(), value, sizeof(value)) != 0) {
        metric_add(d->m_refused_auth, 1);
        log_warn("failed login from %s", addr);
        login_page(d, conn, 401, "Wrong user or password.");
        return 401;
    }
    rate_refund(d, d->login_rate, addr);
    metric_add(d->m_logins, 1);
    log_info("login of %s from %s", d->auth->cred[idx].name, addr);
    snprintf(cookie, sizeof(cookie), SESSION_COOKIE "=%s; Path=/; Max-Age=%lld; HttpOnly; SameSite=Strict%s", value,
             d->auth->ttl_ms / 1000, d->tls ? "; Secure" : "");
    redirect(d, conn, "/", cookie);
    return 303;
}

void ds_server_headers(struct dash *d)
{
    char img[300] = "";
    if (d->tile_url) {
        /* The tile server's origin: scheme://host[:port]. */
        const char *p = strstr(d->tile_url, "://");
        size_t n = p ? (size_t)(p + 3 - d->tile_url) + strcspn(p + 3, "/?#{") : 0;
        if (n && n < sizeof(img) - 1)
            snprintf(img, sizeof(img), " %.*s", (int)n, d->tile_url);
    }
    snprintf(d->headers, sizeof(d->headers),
             "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'; "
             "img-src 'self' data:%s; connect-src 'self'; object-src 'none'; base-uri 'none'; "
             "form-action 'self'; frame-ancestors 'none'\r\n"
             "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\nReferrer-Policy: same-origin",
             img);
}

/* ---- HTTP ---------------------------------------------------------------- */

static void reply(struct mg_connection *conn, int status, const char *type, const char *body, size_t len)
{
    reply_with(mg_get_user_data(mg_get_context(conn)), conn, status, NULL, type, body, len);
}

static void reply_json(struct mg_connection *conn, int status, struct buf *b)
{
    if (b->oom) {
        static const char m[] = "{\"error\":\"response too large\"}";
        reply(conn, 500, "application/json", m, sizeof(m) - 1);
        return;
    }
    reply(conn, status, "application/json", b->p ? b->p : "", b->len);
}

static void reply_error(struct mg_connection *conn, int status, const char *msg)
{
    struct buf b = {.max = 1024};
    buf_puts(&b, "{\"error\":");
    jbuf_str(&b, msg, strlen(msg));
    buf_puts(&b, "}");
    reply_json(conn, status, &b);
    buf_release(&b);
}

static void api_fleet(struct dash *d, struct mg_connection *conn)
{
    uint32_t counts[DS_STATE_COUNT];
    pthread_mutex_lock(&d->lock);
    uint32_t total = ds_store_fleet(&d->store, fs_wall_ms(), counts);
    pthread_mutex_unlock(&d->lock);
    char m[256];
    int n = snprintf(m, sizeof(m), "{\"trucks\":%u,\"moving\":%u,\"idle\":%u,\"parked\":%u,\"offline\":%u}", total,
                     counts[DS_MOVING], counts[DS_IDLE], counts[DS_PARKED], counts[DS_OFFLINE]);
    reply(conn, 200, "application/json", m, (size_t)n);
}

static void api_truck(struct dash *d, struct mg_connection *conn, const char *id)
{
    struct buf b = {.max = 4096};
    pthread_mutex_lock(&d->lock);
    int64_t idx = ds_store_find(&d->store, id, strlen(id));
    if (idx >= 0 && (d->store.trucks[idx].flags & DS_F_POSITION))
        ds_json_truck(&b, &d->store, (uint32_t)idx, fs_wall_ms(), 1);
    pthread_mutex_unlock(&d->lock);
    if (b.len)
        reply_json(conn, 200, &b);
    else
        reply_error(conn, 404, "no such truck");
    buf_release(&b);
}

/* Today's (UTC) track of one truck, read from the history pipeline's
 * telemetry table: {"truck_id":..,"history":true,"points":[[lon,lat,ts_ms],...]}.
 * The live map does not depend on it: when PostgreSQL (or the history
 * schema) is not there the answer is still 200, with "history":false and
 * the reason, so the page says so instead of logging a failed request. */
static void track_unavailable(struct mg_connection *conn, const char *id, size_t id_len, const char *why)
{
    struct buf b = {.max = 4096};
    buf_puts(&b, "{\"truck_id\":");
    jbuf_str(&b, id, id_len);
    buf_puts(&b, ",\"history\":false,\"error\":");
    jbuf_str(&b, why, strlen(why));
    buf_puts(&b, ",\"points\":[]}");
    reply_json(conn, 200, &b);
    buf_release(&b);
}

/* The track connection, connected when needed; called under track_lock.
 * NULL while the database cannot be reached (why in err). */
static PGconn *track_conn(struct dash *d, char *err, size_t err_size)
{
    if (d->track_pg && PQstatus(d->track_pg) == CONNECTION_OK)
        return d->track_pg;
    if (d->track_pg) {
        PQfinish(d->track_pg);
        d->track_pg = NULL;
    }
    if (fs_mono_ms() < d->track_retry_at) {
        snprintf(err, err_size, "not retried yet");
        return NULL;
    }
    char timeout[64];
    snprintf(timeout, sizeof(timeout), "SET statement_timeout = %d", DS_TRACK_TIMEOUT_MS);
    d->track_pg = pg_connect(d->cfg, "fleetsync-dashboard", err, err_size);
    if (d->track_pg && pg_exec(d->track_pg, timeout, err, err_size) != 0) {
        PQfinish(d->track_pg);
        d->track_pg = NULL;
    }
    if (!d->track_pg) {
        d->track_retry_at = fs_mono_ms() + DS_TRACK_RETRY_MS;
        log_warn("dashboard: today's tracks are unavailable for %d s: %s", DS_TRACK_RETRY_MS / 1000, err);
    }
    return d->track_pg;
}

static void ds_track_close(struct dash *d)
{
    pthread_mutex_lock(&d->track_lock);
    if (d->track_pg)
        PQfinish(d->track_pg);
    d->track_pg = NULL;
    pthread_mutex_unlock(&d->track_lock);
}

static void api_truck_track(struct dash *d, struct mg_connection *conn, const char *id, size_t id_len)
{
    char idbuf[DS_ID_MAX + 1], err[512];
    if (id_len == 0 || id_len > DS_ID_MAX) {
        reply_error(conn, 404, "no such truck");
        return;
    }
    memcpy(idbuf, id, id_len);
    idbuf[id_len] = '\0';
    if (!d->cfg) {
        track_unavailable(conn, idbuf, id_len, "the history database is not reachable");
        return;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += DS_TRACK_WAIT_MS / 1000;
    until.tv_nsec += (long)(DS_TRACK_WAIT_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    if (pthread_mutex_timedlock(&d->track_lock, &until) != 0) {
        track_unavailable(conn, idbuf, id_len, "the history database is busy");
        return;
    }
    PGconn *pg = track_conn(d, err, sizeof(err));
    if (!pg) {
        pthread_mutex_unlock(&d->track_lock);
        track_unavailable(conn, idbuf, id_len, "the history database is not reachable");
        return;
    }
    const char *vals[1] = {idbuf};
    PGresult *r = PQexecParams(pg,
                               "SELECT lon, lat, (extract(epoch FROM ts) * 1000)::bigint FROM telemetry "
                               "WHERE truck_id = $1 AND ts >= date_trunc('day', now()) "
                               /* the packed hours by their key (docs/history.md) */
                               "AND hour > date_trunc('day', now()) - interval '1 hour' ORDER BY ts, seq LIMIT 20000",
                               1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        int timed_out = state && strcmp(state, "57014") == 0; /* query_canceled: statement_timeout */
        PQclear(r);
        pthread_mutex_unlock(&d->track_lock);
        track_unavailable(conn, idbuf, id_len,
                          timed_out                       ? "the history database is too slow"
                          : PQstatus(pg) != CONNECTION_OK ? "the history database is not reachable"
                                                          : "no history pipeline in this database");
        return;
    }
    pthread_mutex_unlock(&d->track_lock);
    struct buf b = {.max = API_MAX_BYTES};
    buf_puts(&b, "{\"truck_id\":");
    jbuf_str(&b, idbuf, id_len);
    buf_puts(&b, ",\"history\":true,\"points\":[");
    for (int i = 0; i < PQntuples(r); i++)
        buf_printf(&b, "%s[%s,%s,%s]", i ? "," : "", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
    buf_puts(&b, "]}");
    PQclear(r);
    reply_json(conn, 200, &b);
    buf_release(&b);
}

static void api_trucks_bbox(struct dash *d, struct mg_connection *conn, const char *query)
{
    struct ds_bbox bb;
    if (ds_query_bbox(query, query ? strlen(query) : 0, &bb) != 0) {
        reply_error(conn, 400, "bbox=minLon,minLat,maxLon,maxLat is required (min <= max)");
        return;
    }
    uint32_t *idx = malloc(API_MAX_TRUCKS * sizeof(*idx));
    struct buf b = {.max = API_MAX_BYTES};
    if (!idx) {
        reply_error(conn, 500, "out of memory");
        goto out;
    }
    pthread_mutex_lock(&d->lock);
    long long now = fs_wall_ms();
    size_t total = ds_store_query(&d->store, &bb, idx, API_MAX_TRUCKS);
    size_t n = total < API_MAX_TRUCKS ? total : API_MAX_TRUCKS;
    buf_printf(&b, "{\"count\":%zu,\"truncated\":%s,\"trucks\":[", total, n < total ? "true" : "false");
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_puts(&b, ",");
        ds_json_truck(&b, &d->store, idx[i], now, 1);
    }
    pthread_mutex_unlock(&d->lock);
    buf_puts(&b, "]}");
    reply_json(conn, 200, &b);
out:
    free(idx);
    buf_release(&b);
}

static void api_alerts(struct dash *d, struct mg_connection *conn, const char *query)
{
    long long since = 0;
    if (ds_query_since(query, query ? strlen(query) : 0, &since) != 0) {
        reply_error(conn, 400, "since is a time in ms since the Unix epoch");
        return;
    }
    struct buf b = {.max = API_MAX_BYTES};
    pthread_mutex_lock(&d->lock);
    ds_alerts_json_since(&d->alerts, since, API_MAX_ALERTS, &b);
    pthread_mutex_unlock(&d->lock);
    reply_json(conn, 200, &b);
    buf_release(&b);
}

/* A static file below root: rel is checked (no "..", only [A-Za-z0-9._/-]). */
static void send_file(struct dash *d, struct mg_connection *conn, const char *root, const char *rel)
{
    char path[PATH_MAX];
    struct stat st;
    if (!*rel || strstr(rel, "..") ||
        strspn(rel, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-") != strlen(rel)) {
        reply_error(conn, 404, "not found");
        return;
    }
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", root, rel) >= sizeof(path) || stat(path, &st) != 0 ||
        !S_ISREG(st.st_mode)) {
        reply_error(conn, 404, "not found");
        return;
    }
    mg_send_mime_file2(conn, path, NULL, d->headers);
}

/* npm packages the page may load, and the part of each that is served. */
static const char *const vendor_dirs[] = {"leaflet/dist/", "topojson-client/dist/", "world-atlas/", NULL};

static int http_handler(struct mg_connection *conn, void *cbdata)
{
    struct dash *d = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *uri = ri->local_uri ? ri->local_uri : "/";
    char addr[64];
    if (client_addr(d, conn, addr, sizeof(addr)) != 0) {
        reply_error(conn, 403, "this dashboard is served over HTTPS on its --listen address only");
        return 403;
    }
    if (strcmp(uri, "/healthz") == 0) {
        int assigned = atomic_load(&d->assigned);
        pthread_mutex_lock(&d->lock);
        uint32_t trucks = d->store.count;
        pthread_mutex_unlock(&d->lock);
        char m[128];
        int n =
            snprintf(m, sizeof(m), "{\"status\":\"ok\",\"assigned_partitions\":%d,\"trucks\":%u}", assigned, trucks);
        reply(conn, 200, "application/json", m, (size_t)n);
        return 200;
    }
    if (strcmp(uri, "/metrics") == 0) {
        if (!netaddr_loopback(addr)) {
            reply_error(conn, 403, "/metrics is served to loopback clients only");
            return 403;
        }
        size_t len = 0;
        char *text = metrics_render(d->metrics, &len);
        if (!text) {
            reply_error(conn, 500, "out of memory");
            return 500;
        }
        reply(conn, 200, "text/plain; version=0.0.4", text, len);
        free(text);
        return 200;
    }
    if (!rate_ok(d, d->req_rate, addr)) {
        metric_add(d->m_refused_rate, 1);
        static const char m[] = "{\"error\":\"too many requests from this address (--rate-limit)\"}";
        reply_with(d, conn, 429, "Retry-After: 1\r\n", "application/json", m, sizeof(m) - 1);
        return 429;
    }
    const char *why = request_refusal(d, conn, 0);
    if (why) {
        metric_add(d->m_refused_origin, 1);
        reply_error(conn, 403, why);
        return 403;
    }
    int post = strcmp(ri->request_method, "POST") == 0;
    if (strcmp(uri, "/login") == 0 && d->auth) {
        if (post)
            return do_login(d, conn, ri, addr);
        login_page(d, conn, 200, NULL);
        return 200;
    }
    if (strcmp(uri, "/logout") == 0 && d->auth && post) {
        redirect(d, conn, "/login",
                 d->tls ? SESSION_COOKIE "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; Secure"
                        : SESSION_COOKIE "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
        return 303;
    }
    if (strcmp(uri, "/style.css") != 0) { /* the sign-in page's style is open */
        enum access a = check_access(d, conn, addr);
        if (a != ACCESS_OK) {
            if ((strcmp(uri, "/") == 0 || strcmp(uri, "/index.html") == 0) && a != ACCESS_THROTTLED) {
                redirect(d, conn, "/login", NULL);
                return 303;
            }
            refuse_access(d, conn, a);
            return a == ACCESS_THROTTLED ? 429 : 401;
        }
    }
    if (strcmp(ri->request_method, "GET") != 0 && strcmp(ri->request_method, "HEAD") != 0) {
        reply_error(conn, 405, "only GET");
        return 405;
    }
    if (strcmp(uri, "/api/fleet") == 0) {
        api_fleet(d, conn);
    } else if (strcmp(uri, "/api/trucks") == 0) {
        api_trucks_bbox(d, conn, ri->query_string);
    } else if (strncmp(uri, "/api/trucks/", 12) == 0) {
        const char *id = uri + 12, *slash = strchr(id, '/');
        if (slash && strcmp(slash, "/track") == 0)
            api_truck_track(d, conn, id, (size_t)(slash - id));
        else if (slash)
            reply_error(conn, 404, "no such API");
        else
            api_truck(d, conn, id);
    } else if (strcmp(uri, "/api/alerts") == 0) {
        api_alerts(d, conn, ri->query_string);
    } else if (strcmp(uri, "/api/config") == 0) {
        struct buf b = {.max = 8192};
        buf_puts(&b, "{\"tile_url\":");
        if (d->tile_url)
            jbuf_str(&b, d->tile_url, strlen(d->tile_url));
        else
            buf_puts(&b, "null");
        buf_printf(&b, ",\"frame_interval_ms\":%d,\"max_features\":%d,\"login\":%s}", DS_FRAME_INTERVAL_MS,
                   DS_VIEW_MAX_FEATURES, d->auth ? "true" : "false");
        reply_json(conn, 200, &b);
        buf_release(&b);
    } else if (strncmp(uri, "/vendor/", 8) == 0) {
        const char *rel = uri + 8;
        int ok = 0;
        for (int i = 0; vendor_dirs[i]; i++)
            ok |= strncmp(rel, vendor_dirs[i], strlen(vendor_dirs[i])) == 0;
        if (ok)
            send_file(d, conn, d->modules_dir, rel);
        else
            reply_error(conn, 404, "not found");
    } else if (strncmp(uri, "/api/", 5) == 0) {
        reply_error(conn, 404, "no such API");
    } else {
        send_file(d, conn, d->web_dir, strcmp(uri, "/") == 0 ? "index.html" : uri + 1);
    }
    return 200;
}

/* ---- WebSocket ----------------------------------------------------------- */

/* A refusal of the upgrade: civetweb sends nothing when connect returns
 * non-zero, so the answer is written here. */
static int ws_refuse(struct dash *d, const struct mg_connection *cconn, int status, const char *msg)
{
    struct mg_connection *conn = (struct mg_connection *)cconn;
    struct buf b = {.max = 1024};
    buf_puts(&b, "{\"error\":");
    jbuf_str(&b, msg, strlen(msg));
    buf_puts(&b, "}");
    reply_with(d, conn, status, status == 401 ? "WWW-Authenticate: Bearer realm=\"fleetsync\"\r\n" : NULL,
               "application/json", b.p, b.len);
    buf_release(&b);
    return 1;
}

static int ws_connect(const struct mg_connection *conn, void *cbdata)
{
    struct dash *d = cbdata;
    char addr[64];
    if (client_addr(d, conn, addr, sizeof(addr)) != 0)
        return ws_refuse(d, conn, 403, "this dashboard is served over HTTPS on its --listen address only");
    if (!rate_ok(d, d->req_rate, addr)) {
        metric_add(d->m_refused_rate, 1);
        return ws_refuse(d, conn, 429, "too many requests from this address (--rate-limit)");
    }
    const char *why = request_refusal(d, conn, 1);
    if (why) {
        metric_add(d->m_refused_origin, 1);
        log_warn("WebSocket from %s refused: %s (Origin %s)", addr, why,
                 mg_get_header(conn, "Origin") ? mg_get_header(conn, "Origin") : "none");
        return ws_refuse(d, conn, 403, why);
    }
    enum access a = check_access(d, conn, addr);
    if (a != ACCESS_OK) {
        metric_add(a == ACCESS_THROTTLED ? d->m_refused_rate : d->m_refused_auth, 1);
        return ws_refuse(d, conn, a == ACCESS_THROTTLED ? 429 : 401,
                         a == ACCESS_THROTTLED ? "too many failed logins from this address" : "login required");
    }
    pthread_mutex_lock(&d->clients_lock);
    int full = d->nclients >= d->max_clients;
    pthread_mutex_unlock(&d->clients_lock);
    if (full)
        log_warn("WebSocket client refused: %d clients already (--max-clients)", d->max_clients);
    return full ? 1 : 0;
}

static void ws_ready(struct mg_connection *conn, void *cbdata)
{
    struct dash *d = cbdata;
    struct ds_client *c = calloc(1, sizeof(*c));
    if (!c || ds_view_init(&c->view) != 0) {
        free(c);
        return;
    }
    c->d = d;
    c->conn = conn;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->queue = (struct buf){.max = DS_CLIENT_QUEUE_MAX + 1};
    c->slot = (struct buf){.max = FRAME_MAX_BYTES};
    char hello[256];
    int n = snprintf(hello, sizeof(hello),
                     "{\"type\":\"hello\",\"protocol\":1,\"server_ms\":%lld,\"frame_interval_ms\":%d,"
                     "\"max_features\":%d,\"max_trucks\":%d}",
                     (long long)fs_wall_ms(), DS_FRAME_INTERVAL_MS, DS_VIEW_MAX_FEATURES, DS_VIEW_MAX_TRUCKS);
    client_queue(c, hello, (size_t)n);
    if (pthread_create(&c->writer, NULL, writer_main, c) != 0) {
        ds_view_release(&c->view);
        buf_release(&c->queue);
        buf_release(&c->slot);
        free(c);
        return;
    }
    mg_set_user_connection_data(conn, c);
    pthread_mutex_lock(&d->clients_lock);
    if (d->fleet_msg[0]) {
        pthread_mutex_lock(&c->lock);
        client_queue(c, d->fleet_msg, strlen(d->fleet_msg));
        pthread_mutex_unlock(&c->lock);
    }
    c->next = d->clients;
    d->clients = c;
    d->nclients++;
    metric_set(d->m_clients, d->nclients);
    pthread_mutex_unlock(&d->clients_lock);
    ds_server_notify(d);
}

static int ws_data(struct mg_connection *conn, int bits, char *data, size_t len, void *cbdata)
{
    struct dash *d = cbdata;
    struct ds_client *c = mg_get_user_connection_data(conn);
    int op = bits & 0xf;
    if (op == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE)
        return 0;
    if (!c || op == MG_WEBSOCKET_OPCODE_PING || op == MG_WEBSOCKET_OPCODE_PONG)
        return 1;
    struct ds_client_msg msg;
    const char *code = "bad_json";
    char detail[256] = "binary frames are not part of the protocol";
    int ok = op == MG_WEBSOCKET_OPCODE_TEXT && ds_proto_parse(data, len, &msg, &code, detail, sizeof(detail)) == 0;
    pthread_mutex_lock(&c->lock);
    if (!ok) {
        struct buf e = {.max = 1024};
        buf_printf(&e, "{\"type\":\"error\",\"error\":\"%s\",\"detail\":", code);
        jbuf_str(&e, detail, strlen(detail));
        buf_puts(&e, "}");
        client_queue(c, e.p, e.len);
        buf_release(&e);
        metric_add(d->m_client_errors, 1);
    } else if (msg.type == DS_MSG_PING) {
        char m[96];
        int n = snprintf(m, sizeof(m), "{\"type\":\"pong\",\"server_ms\":%lld}", (long long)fs_wall_ms());
        client_queue(c, m, (size_t)n);
    } else {
        c->want_bbox = msg.bbox;
        c->want_zoom = msg.zoom;
        c->new_viewport = 1;
    }
    pthread_mutex_unlock(&c->lock);
    if (ok && msg.type == DS_MSG_VIEWPORT)
        ds_server_notify(d);
    return 1;
}

static void ws_close(const struct mg_connection *conn, void *cbdata)
{
    struct dash *d = cbdata;
    struct ds_client *c = mg_get_user_connection_data(conn);
    if (!c)
        return;
    pthread_mutex_lock(&d->clients_lock);
    for (struct ds_client **p = &d->clients; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            d->nclients--;
            break;
        }
    }
    metric_set(d->m_clients, d->nclients);
    pthread_mutex_unlock(&d->clients_lock);
    pthread_mutex_lock(&c->lock);
    c->closing = 1;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->writer, NULL);
    ds_view_release(&c->view);
    buf_release(&c->queue);
    buf_release(&c->slot);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}

/* ---- start / stop -------------------------------------------------------- */

static int log_message(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    log_debug("civetweb: %s", message);
    return 1;
}

static void mg_library_once(void)
{
    mg_init_library(0);
}

int ds_server_start(struct dash *d, const char *host, int port, char *err, size_t err_size)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, mg_library_once);
    char ports[300], threads[16];
    /* With TLS, civetweb listens on a loopback port the system picks and
     * the front takes --listen. */
    if (d->tls_ctx) {
        unsigned char rnd[DS_PEER_TOKEN_LEN / 2];
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            snprintf(err, err_size, "no randomness for the TLS front's token");
            SSL_CTX_free(d->tls_ctx);
            d->tls_ctx = NULL;
            return -1;
        }
        for (size_t i = 0; i < sizeof(rnd); i++)
            snprintf(d->peer_token + 2 * i, 3, "%02x", rnd[i]);
        d->tls = 1;
        snprintf(ports, sizeof(ports), "127.0.0.1:0");
    } else {
        snprintf(ports, sizeof(ports), "%s:%d", host, port);
    }
    snprintf(threads, sizeof(threads), "%d", d->max_clients + 16);
    /* max_request_size bounds the request line and headers. */
    const char *options[] = {"listening_ports",
                             ports,
                             "num_threads",
                             threads,
                             "request_timeout_ms",
                             "10000",
                             "enable_websocket_ping_pong",
                             "yes",
                             "websocket_timeout_ms",
                             "30000",
                             "max_request_size",
                             "16384",
                             NULL};
    if (!d->headers[0])
        ds_server_headers(d);
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.log_message = log_message;
    struct mg_init_data init = {.callbacks = &cb, .user_data = d, .configuration_options = options};
    struct mg_error_data error = {0};
    char errtext[256] = "";
    error.text = errtext;
    error.text_buffer_size = sizeof(errtext);
    d->mg = mg_start2(&init, &error);
    if (!d->mg) {
        snprintf(err, err_size, "cannot listen on %s: %s", ports, errtext[0] ? errtext : "civetweb failed to start");
        SSL_CTX_free(d->tls_ctx);
        d->tls_ctx = NULL;
        return -1;
    }
    mg_set_request_handler(d->mg, "/", http_handler, d);
    mg_set_websocket_handler(d->mg, "/ws", ws_connect, ws_ready, ws_data, ws_close, d);
    if (d->tls_ctx) {
        struct mg_server_port sp[2];
        int inner = mg_get_server_ports(d->mg, 2, sp) >= 1 ? sp[0].port : 0;
        SSL_CTX *ctx = d->tls_ctx;
        d->tls_ctx = NULL; /* the front's now, also on failure */
        if (inner <= 0) {
            snprintf(err, err_size, "civetweb did not say which loopback port it took");
            SSL_CTX_free(ctx);
        } else {
            d->front = ds_tlsfront_start(ctx, host, port, inner, d->peer_token, d->max_clients + 16, err, err_size);
        }
        if (!d->front) {
            mg_stop(d->mg);
            d->mg = NULL;
            return -1;
        }
    }
    if (pthread_create(&d->pusher, NULL, pusher_main, d) != 0) {
        snprintf(err, err_size, "cannot start the pusher thread");
        ds_tlsfront_stop(d->front);
        d->front = NULL;
        mg_stop(d->mg);
        d->mg = NULL;
        return -1;
    }
    d->pusher_started = 1;
    return 0;
}

void ds_server_stop(struct dash *d)
{
    /* civetweb first: closing the backends ends the front's connections,
     * which the front then waits for. */
    struct ds_tlsfront *front = d->front;
    d->front = NULL;
    if (d->mg) {
        mg_stop(d->mg); /* closes every WebSocket: their close handlers join the writers */
        d->mg = NULL;
    }
    ds_tlsfront_stop(front);
    SSL_CTX_free(d->tls_ctx); /* never started */
    d->tls_ctx = NULL;
    if (d->pusher_started) {
        pthread_mutex_lock(&d->wake_lock);
        d->stopping = 1;
        pthread_cond_signal(&d->wake);
        pthread_mutex_unlock(&d->wake_lock);
        pthread_join(d->pusher, NULL);
        d->pusher_started = 0;
    }
    ds_track_close(d);
}
