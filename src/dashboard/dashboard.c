/*
 * dashboard.c - "fleetsync dashboard": consumer group fleetsync-dashboard on
 * truck-telemetry, truck-status and truck-alerts, kept in memory (store.h,
 * alerts.h) and pushed to browsers (server.h).
 *
 * The main thread is the consumer.  It applies records in batches under
 * d->lock and wakes the pusher after each batch; it never waits for a
 * browser.  Nothing is written to disk: the picture is rebuilt from Kafka.
 *
 * Where reading starts, per assigned partition (rebalance_cb):
 *   - the group has no committed offset (first start): the end (latest),
 *     looked up before the assignment so nothing produced after it is missed;
 *   - it has one (a restart): the offset of --rebuild ago (alerts:
 *     --alert-window ago) when that is earlier, so the map is full again
 *     within seconds; records read twice are harmless (the store keeps the
 *     newest reading per truck, alerts are idempotent on (alert_id, state)).
 * Offsets are committed automatically (they only say where a restart
 * resumes; the rebuild reads back before them anyway).
 */
#include "dashboard/dashboard.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/kafka.h"
#include "core/kafkaauth.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/timeparse.h"
#include "core/metrics.h"
#include "core/opts.h"
#include "core/proc.h"
#include "core/sig.h"
#include "core/telemetry.h"
#include "core/tmscan.h"
#include "core/topics.h"
#include "dashboard/server.h"

#include <jansson.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_GROUP "fleetsync-dashboard"
#define DEFAULT_REBUILD_MS (5LL * 60 * 1000)
#define DEFAULT_ALERTS_MS (60LL * 60 * 1000)
#define DEFAULT_MAX_TRUCKS 2000000
#define DEFAULT_MAX_CLIENTS 128
#define DEFAULT_SESSION_MS (12LL * 3600 * 1000)
#define DEFAULT_RATE 100 /* requests per second per client address */
#define LOGIN_BURST 20   /* failed logins per address at once, */
#define LOGIN_PER_MIN 10 /* then this many per minute */
#define BATCH_MAX 5000
#define BATCH_MS 5

enum topic_kind { T_TELEMETRY, T_STATUS, T_ALERTS, T_COUNT };

struct consumer {
    struct dash *d;
    rd_kafka_t *rk;
    const char *group;
    char topics[T_COUNT][256];
    long long rebuild_ms, alerts_ms;
    struct metric *m_consumed[T_COUNT], *m_invalid[T_COUNT], *m_stale, *m_refused, *m_age, *m_rebuilds;
};

static int topic_of(const struct consumer *k, const char *name)
{
    for (int i = 0; i < T_COUNT; i++)
        if (strcmp(k->topics[i], name) == 0)
            return i;
    return -1;
}

/* ---- where to start reading --------------------------------------------- */

static void on_assign(struct consumer *k, rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_t *rk = k->rk;
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, parts, 10000);
    if (e)
        log_warn("cannot read the committed offsets (%s): starting at the end", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_t *times = rd_kafka_topic_partition_list_new(parts->cnt);
    long long now = fs_wall_ms();
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        if (e || p->offset < 0) {
            /* The end as of now, not as of the first fetch: a record produced
             * once the assignment is done is never skipped. */
            int64_t lo, hi;
            p->offset = rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &lo, &hi, 5000) == 0
                            ? hi
                            : RD_KAFKA_OFFSET_END;
            continue;
        }
        int t = topic_of(k, p->topic);
        rd_kafka_topic_partition_list_add(times, p->topic, p->partition)->offset =
            now - (t == T_ALERTS ? k->alerts_ms : k->rebuild_ms);
    }
    int rebuilt = 0;
    if (times->cnt > 0) {
        rd_kafka_resp_err_t te = rd_kafka_offsets_for_times(rk, times, 10000);
        if (te)
            log_warn("cannot look up offsets by time (%s): resuming at the committed offsets", rd_kafka_err2str(te));
        for (int i = 0; !te && i < times->cnt; i++) {
            rd_kafka_topic_partition_t *tp = &times->elems[i];
            rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(parts, tp->topic, tp->partition);
            if (p && !tp->err && tp->offset >= 0 && tp->offset < p->offset) {
                p->offset = tp->offset;
                rebuilt++;
            }
        }
    }
    rd_kafka_topic_partition_list_destroy(times);
    if (rebuilt) {
        metric_add(k->m_rebuilds, 1);
        log_info("restart: reading back the last %lld s of %d partition(s) to rebuild the map", k->rebuild_ms / 1000,
                 rebuilt);
    }
    rd_kafka_assign(rk, parts);
    atomic_store(&k->d->assigned, parts->cnt);
    log_info("assigned %d partition(s)", parts->cnt);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct consumer *k = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(k, parts);
        return;
    }
    rd_kafka_assign(rk, NULL);
    atomic_store(&k->d->assigned, 0);
}

/* ---- applying records (d->lock held) ------------------------------------- */

static void apply_telemetry(struct consumer *k, const rd_kafka_message_t *m, long long now, struct metric_tally *age)
{
    char id[DS_ID_MAX + 1];
    struct ds_reading dr;
    struct tm_fast f;
    char norm[TM_MAX_PAYLOAD + 1];
    int normalized;
    if (tm_read(m->payload, m->len, now, norm, sizeof(norm), &normalized, &f, NULL, 0) != TM_OK) {
        metric_add(k->m_invalid[T_TELEMETRY], 1);
        return;
    }
    ds_reading_from_scan(&f, &dr);
    size_t id_len = f.truck_id.n < sizeof(id) - 1 ? f.truck_id.n : sizeof(id) - 1;
    memcpy(id, f.truck_id.p, id_len);
    id[id_len] = '\0';
    enum ds_apply a = ds_store_reading(&k->d->store, id, id_len, &dr);
    if (a == DS_STALE)
        metric_add(k->m_stale, 1);
    else if (a == DS_FULL)
        metric_add(k->m_refused, 1);
    else if (a == DS_APPLIED && now >= dr.ts_ms)
        metric_tally_observe(age, (double)(now - dr.ts_ms) / 1000.0);
}

static void apply_status(struct consumer *k, const rd_kafka_message_t *m)
{
    json_t *o = m->len <= 1024 ? json_loadb(m->payload, m->len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *kind = json_string_value(json_object_get(o, "kind"));
    const char *status = json_string_value(json_object_get(o, "status"));
    json_t *ts = json_object_get(o, "ts");
    if (!id || !kind || !status || !json_is_integer(ts) ||
        (strcmp(status, "online") != 0 && strcmp(status, "offline") != 0)) {
        metric_add(k->m_invalid[T_STATUS], 1);
    } else if (strcmp(kind, "truck") == 0) {
        /* Gateways carry many trucks; their own presence says nothing about one. */
        if (ds_store_status(&k->d->store, id, strlen(id), strcmp(status, "offline") == 0,
                            (int64_t)json_integer_value(ts)) == DS_BAD)
            metric_add(k->m_invalid[T_STATUS], 1);
    }
    json_decref(o);
}

/* Adds an alert; a new one is appended to fresh (sent to clients after the
 * lock is released). */
static void apply_alert(struct consumer *k, const rd_kafka_message_t *m, struct buf *fresh)
{
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    const struct ds_alert *added = NULL;
    int r = ds_alerts_add(&k->d->alerts, m->payload, m->len, ts, &added);
    if (r < 0) {
        metric_add(k->m_invalid[T_ALERTS], 1);
    } else if (r == 1) {
        buf_put(fresh, added->json, added->len);
        buf_put(fresh, "\n", 1);
    }
}

/* Applies one record; returns its topic (-1: none of ours). */
static int apply_one(struct consumer *k, rd_kafka_message_t *m, long long now, struct buf *fresh,
                     struct metric_tally *age)
{
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            log_warn("consumer: %s", rd_kafka_message_errstr(m));
        return -1;
    }
    int t = topic_of(k, rd_kafka_topic_name(m->rkt));
    if (t == T_TELEMETRY)
        apply_telemetry(k, m, now, age);
    else if (t == T_STATUS)
        apply_status(k, m);
    else if (t == T_ALERTS)
        apply_alert(k, m, fresh);
    return t;
}

/* Records are taken from librdkafka CHUNK at a time (one call, one lock of
 * its queue, instead of one per record).  A chunk's readings are scanned
 * before d->lock is taken (the map's readers do not wait for the parsing),
 * then applied under it in the store's three prefetch passes (store.h: at
 * hundreds of thousands of trucks a reading costs mostly cache misses, and
 * the passes overlap them), and the records are freed after it is released.
 * Chunks follow each other for at most BATCH_MAX records or BATCH_MS; then
 * the counters and the age histogram are added and the pusher is woken. */
#define CHUNK 256
#define ID_AHEAD 8 /* readings between ds_store_prefetch_id and the apply */

/* A record of a chunk, scanned.  fast: a normalized reading (tm_scan took
 * it); every other record goes to apply_one. */
struct scanned {
    int topic; /* enum topic_kind, -1: none of ours or an error */
    int fast;
    uint32_t hash;
    struct tm_fast f;
    struct ds_reading r;
};

static void scan_chunk(struct consumer *k, rd_kafka_message_t **chunk, ssize_t got, long long now, struct scanned *sc)
{
    for (ssize_t i = 0; i < got; i++) {
        const rd_kafka_message_t *m = chunk[i];
        struct scanned *x = &sc[i];
        x->fast = 0;
        x->topic = m->err ? -1 : topic_of(k, rd_kafka_topic_name(m->rkt));
        if (x->topic != T_TELEMETRY || !m->payload || !tm_scan(m->payload, m->len, now, 0, &x->f))
            continue;
        x->fast = 1;
        ds_reading_from_scan(&x->f, &x->r);
        x->hash = ds_store_hash(x->f.truck_id.p, x->f.truck_id.n);
    }
}

static void apply_scanned(struct consumer *k, const struct scanned *x, long long now, struct metric_tally *age)
{
    enum ds_apply a = ds_store_reading_hashed(&k->d->store, x->f.truck_id.p, x->f.truck_id.n, x->hash, &x->r);
    if (a == DS_STALE)
        metric_add(k->m_stale, 1);
    else if (a == DS_FULL)
        metric_add(k->m_refused, 1);
    else if (a == DS_APPLIED && now >= x->r.ts_ms)
        metric_tally_observe(age, (double)(now - x->r.ts_ms) / 1000.0);
}

/* Applies a scanned chunk (d->lock held); counts the records of each topic
 * in consumed and returns how many were ours. */
static int apply_chunk(struct consumer *k, rd_kafka_message_t **chunk, ssize_t got, const struct scanned *sc,
                       long long now, struct buf *fresh, struct metric_tally *age, uint64_t *consumed)
{
    const struct ds_store *s = &k->d->store;
    int applied = 0;
    for (ssize_t i = 0; i < got; i++)
        if (sc[i].fast)
            ds_store_prefetch_slot(s, sc[i].hash, &sc[i].r);
    for (ssize_t i = 0; i < got; i++)
        if (sc[i].fast)
            ds_store_prefetch_truck(s, sc[i].hash);
    for (ssize_t i = 0; i < got && i < ID_AHEAD; i++)
        if (sc[i].fast)
            ds_store_prefetch_id(s, sc[i].hash);
    for (ssize_t i = 0; i < got; i++) {
        if (i + ID_AHEAD < got && sc[i + ID_AHEAD].fast)
            ds_store_prefetch_id(s, sc[i + ID_AHEAD].hash);
        int t;
        if (sc[i].fast) {
            apply_scanned(k, &sc[i], now, age);
            t = T_TELEMETRY;
        } else {
            t = apply_one(k, chunk[i], now, fresh, age);
        }
        if (t >= 0) {
            consumed[t]++;
            applied++;
        }
    }
    return applied;
}

static int consume_loop(struct consumer *k)
{
    struct buf fresh = {.max = 1u << 20};
    rd_kafka_message_t *chunk[CHUNK];
    struct scanned *sc = malloc(CHUNK * sizeof(*sc));
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(k->rk);
    struct metric_tally age = {.h = k->m_age};
    int rc = 0;
    if (!sc) {
        log_error("out of memory for the consumer's chunk");
        rd_kafka_queue_destroy(q);
        return 1;
    }
    while (!sig_stopping() && !(rc = kafka_consumer_fatal(k->rk, k->group))) {
        ssize_t got = rd_kafka_consume_batch_queue(q, 100, chunk, CHUNK);
        if (got <= 0)
            continue;
        uint64_t consumed[T_COUNT] = {0};
        int n = 0, applied = 0;
        long long start = fs_wall_ms(), now = start;
        while (got > 0) {
            scan_chunk(k, chunk, got, now, sc);
            pthread_mutex_lock(&k->d->lock);
            applied += apply_chunk(k, chunk, got, sc, now, &fresh, &age, consumed);
            atomic_store_explicit(&k->d->version, k->d->store.version, memory_order_relaxed);
            pthread_mutex_unlock(&k->d->lock);
            for (ssize_t i = 0; i < got; i++)
                rd_kafka_message_destroy(chunk[i]);
            n += (int)got;
            if (n >= BATCH_MAX || (now = fs_wall_ms()) - start >= BATCH_MS)
                break;
            got = rd_kafka_consume_batch_queue(q, 0, chunk, CHUNK);
        }
        for (int t = 0; t < T_COUNT; t++)
            if (consumed[t])
                metric_add(k->m_consumed[t], consumed[t]);
        metric_tally_flush(&age);
        if (applied)
            ds_server_notify(k->d);
        for (size_t i = 0; i < fresh.len;) {
            char *nl = memchr(fresh.p + i, '\n', fresh.len - i);
            size_t len = nl ? (size_t)(nl - (fresh.p + i)) : fresh.len - i;
            ds_server_alert(k->d, fresh.p + i, len);
            i += len + 1;
        }
        buf_reset(&fresh);
    }
    rd_kafka_queue_destroy(q);
    buf_release(&fresh);
    free(sc);
    return rc;
}

/* ---- files: the page and its npm libraries ------------------------------- */

/* The web dir: --web-dir, FLEETSYNC_WEB_DIR, then web/ next to the binary's
 * build dir (BIN/../web, BIN/../../web: a checkout), then
 * /usr/share/fleetsync/web.  The npm libraries: --node-modules,
 * FLEETSYNC_NODE_MODULES, then WEB/../node_modules. */
static int find_files(struct dash *d, const char *web, const char *modules, char *err, size_t err_size)
{
    char exe[PATH_MAX];
    int have_exe = proc_self_path(exe, sizeof(exe)) == 0;
    const char *candidates[4] = {0};
    char c1[PATH_MAX + 16], c2[PATH_MAX + 16];
    int nc = 0;
    if (!web)
        web = getenv("FLEETSYNC_WEB_DIR");
    if (web) {
        candidates[nc++] = web;
    } else {
        if (have_exe) {
            char *slash = strrchr(exe, '/');
            if (slash)
                *slash = '\0';
            snprintf(c1, sizeof(c1), "%s/../web", exe);
            snprintf(c2, sizeof(c2), "%s/../../web", exe);
            candidates[nc++] = c1;
            candidates[nc++] = c2;
        }
        candidates[nc++] = "/usr/share/fleetsync/web";
    }
    for (int i = 0; i < nc; i++) {
        char probe[2 * PATH_MAX + 64];
        snprintf(probe, sizeof(probe), "%s/index.html", candidates[i]);
        if (access(probe, R_OK) == 0 && realpath(candidates[i], d->web_dir))
            break;
    }
    if (!d->web_dir[0]) {
        snprintf(err, err_size, "cannot find the page (index.html) in %s%s: give --web-dir DIR",
                 web ? web : "BIN/../web, BIN/../../web or /usr/share/fleetsync/web", "");
        return -1;
    }
    if (!modules)
        modules = getenv("FLEETSYNC_NODE_MODULES");
    char def[PATH_MAX + 16], probe[PATH_MAX + 64];
    if (!modules) {
        snprintf(def, sizeof(def), "%.*s/../node_modules", PATH_MAX - 1, d->web_dir);
        modules = def;
    }
    if (!realpath(modules, d->modules_dir))
        snprintf(d->modules_dir, sizeof(d->modules_dir), "%.*s", PATH_MAX - 1, modules);
    snprintf(probe, sizeof(probe), "%.*s/leaflet/dist/leaflet.js", PATH_MAX - 1, d->modules_dir);
    if (access(probe, R_OK) != 0)
        log_warn("the page's libraries are missing (no %s): run scripts/bootstrap, or give --node-modules DIR", probe);
    return 0;
}

/* One line of stdin (a password or token) into buf, without echo when
 * stdin is a terminal.  Returns its length, or -1. */
static int read_secret(const char *prompt, char *buf, size_t size)
{
    struct termios old, quiet;
    int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        fprintf(stderr, "%s", prompt);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *got = fgets(buf, (int)size, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (!got)
        return -1;
    size_t n = strcspn(buf, "\r\n");
    if (n == size - 1 && buf[n] == '\0')
        return -1; /* longer than the buffer */
    buf[n] = '\0';
    return (int)n;
}

/* --hash-password NAME / --hash-token NAME: reads the secret from stdin and
 * prints the --auth-file line. */
static int hash_command(const char *name, int token)
{
    char secret[DS_AUTH_SECRET_MAX + 2], line[512], err[256];
    struct ds_cred c;
    snprintf(line, sizeof(line), "%s:x", name);
    if (ds_auth_parse_line(line, &c, err, sizeof(err)) != 0) {
        fprintf(stderr, "fleetsync dashboard: bad name '%s': %s\n", name, err);
        return 2;
    }
    int n = read_secret(token ? "token: " : "password: ", secret, sizeof(secret));
    int min = token ? DS_AUTH_TOKEN_MIN : DS_AUTH_PASSWORD_MIN;
    if (n < min) {
        fprintf(stderr, "fleetsync dashboard: %s of %d-%d characters expected on stdin%s\n",
                token ? "a token" : "a password", min, DS_AUTH_SECRET_MAX,
                token ? " (for example: openssl rand -hex 32)" : "");
        return 2;
    }
    int r = token ? ds_auth_hash_token(secret, (size_t)n, line, sizeof(line))
                  : ds_auth_hash_password(secret, (size_t)n, DS_AUTH_ITER, line, sizeof(line));
    memset(secret, 0, sizeof(secret));
    if (r != 0) {
        fprintf(stderr, "fleetsync dashboard: cannot hash (no randomness?)\n");
        return 1;
    }
    printf("%s:%s\n", name, line);
    return 0;
}

static int wildcard_host(const char *h)
{
    return !*h || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 || strcmp(h, "[::]") == 0;
}

/* ---- command line -------------------------------------------------------- */

#define STR_(x) #x
#define STR(x) STR_(x)

/* What the command line asks for besides cfg and what goes straight into
 * struct dash (--max-clients, --allowed-host, --tile-url). */
struct dash_args {
    const char *auth_file, *web, *modules, *tls_cert, *tls_key;
    const char *hash_name; /* --hash-password or --hash-token NAME, whichever came first */
    int hash_token, tls_local, insecure_http;
    int max_trucks, max_alerts, rate;
    int64_t rebuild_ms, alerts_ms, session_ms;
};

static int opt_session_ttl(void *value, const char *arg, char *err, size_t err_size)
{
    int64_t ms;
    if (time_parse_duration(arg, 30 * FS_DAY_MS, &ms, NULL, 0) != 0 || ms < 1000) {
        snprintf(err, err_size, "is a duration from 1s to 720h, such as 12h");
        return -1;
    }
    *(int64_t *)value = ms;
    return 0;
}

/* Appends to d's allowed Host names; one place stays free for the --listen
 * host. */
static int opt_allowed_host(void *value, const char *arg, char *err, size_t err_size)
{
    struct dash *d = value;
    if (d->n_allowed_hosts >= DS_ALLOWED_HOSTS_MAX - 1) {
        snprintf(err, err_size, "may be given %d times at most", DS_ALLOWED_HOSTS_MAX - 1);
        return -1;
    }
    if (!*arg || strlen(arg) > 253 || strpbrk(arg, ":/ \t")) {
        snprintf(err, err_size, "is a host name or address as browsers send it, without port or scheme");
        return -1;
    }
    d->allowed_hosts[d->n_allowed_hosts++] = arg;
    return 0;
}

static int opt_tile_url(void *value, const char *arg, char *err, size_t err_size)
{
    if (strncmp(arg, "http://", 7) != 0 && strncmp(arg, "https://", 8) != 0) {
        snprintf(err, err_size, "is an http(s):// URL template such as https://tile.example/{z}/{x}/{y}.png");
        return -1;
    }
    *(const char **)value = arg;
    return 0;
}

static void want_hash(struct dash_args *a, const char *name, int token)
{
    if (!a->hash_name) {
        a->hash_name = name;
        a->hash_token = token;
    }
}

static int opt_hash_password(void *value, const char *arg, char *err, size_t err_size)
{
    (void)err, (void)err_size;
    want_hash(value, arg, 0);
    return 0;
}

static int opt_hash_token(void *value, const char *arg, char *err, size_t err_size)
{
    (void)err, (void)err_size;
    want_hash(value, arg, 1);
    return 0;
}

static const char dashboard_about[] =
    "The live map: consumer group fleetsync-dashboard on truck-telemetry, truck-status and\n"
    "truck-alerts, the latest state of every truck in memory, served over HTTP and WebSocket\n"
    "on --listen (default 127.0.0.1:8080): the page at /, the API at /api/fleet,\n"
    "/api/trucks/{id}, /api/trucks?bbox=minLon,minLat,maxLon,maxLat, /api/alerts?since=MS,\n"
    "/healthz, /metrics (loopback only) and /ws (protocol: docs/dashboard.md).\n"
    "Nothing is written to disk: on a restart the map is rebuilt by reading back the\n"
    "last --rebuild of each partition.";

static const char dashboard_after[] =
    "--metrics-port is not used: /metrics is served on --listen itself.\n\n"
    "Examples:\n"
    "  fleetsync dashboard --hash-password ops >> dash.auth    (type the password)\n"
    "  fleetsync dashboard --listen 0.0.0.0:8443 --auth-file dash.auth --tls --allowed-host dash.example.org\n"
    "Exit status: 0 after a clean stop (SIGINT/SIGTERM), 1 runtime failure (a Kafka fatal\n"
    "consumer error: restart it, it rejoins the group), 2 usage error (also a non-loopback\n"
    "--listen without --auth-file, or without TLS or --insecure-http).";

/* The command without its option table (which points at dashboard_parse's
 * variables): the name and texts, for the checks made after parsing. */
static const struct opt_command dashboard_cmd = {
    .no_args = 1,
    .name = "dashboard",
    .usage = "fleetsync dashboard [options]",
    .about = dashboard_about,
    .after = dashboard_after,
    .shared = 1,
};

/* Reads the command line into cfg, d and a, and the --listen address into
 * host and *port.  Returns -1 when the dashboard is to run, else the exit
 * status: 0 after --help, 2 after a usage error, or that of --hash-password
 * or --hash-token. */
static int dashboard_parse(int argc, char **argv, struct fs_config *cfg, struct dash *d, struct dash_args *a,
                           char *host, size_t host_size, int *port)
{
    const struct opt opts[] = {
        OPT_DUR("rebuild", "DUR", &a->rebuild_ms, 30 * FS_DAY_MS,
                "how far back a restart reads telemetry and presence (default 5m;\n"
                "s, m, h suffixes)"),
        OPT_DUR("alert-window", "DUR", &a->alerts_ms, 30 * FS_DAY_MS,
                "how far back a restart reads alerts (default 1h)"),
        OPT_INTEGER("max-trucks", "N", &a->max_trucks, 1, 50000000,
                    "trucks kept at most (default " STR(DEFAULT_MAX_TRUCKS) "; memory bound)"),
        OPT_INTEGER("max-alerts", "N", &a->max_alerts, 1, 100000, "recent alerts kept (default 4096)"),
        OPT_INTEGER("max-clients", "N", &d->max_clients, 1, 1000,
                    "WebSocket clients at once (default " STR(DEFAULT_MAX_CLIENTS) ")"),
        OPT_STR("auth-file", "FILE", &a->auth_file,
                "who may watch: NAME:HASH lines written by --hash-password or\n"
                "--hash-token; required to --listen on anything but loopback.\n"
                "Browsers sign in at /login (a session cookie), scripts send\n"
                "Authorization: Bearer TOKEN or Basic; /healthz stays open.\n"
                "Without it (loopback only) there is no login, but a WebSocket\n"
                "from another site's page, or a request whose Host is not a\n"
                "loopback name, is refused (403)"),
        OPT_BOOLEAN("tls", &a->tls_local,
                    "serve HTTPS with the data dir's tls/dashboard.crt and .key, signed by\n"
                    "the local CA that `fleetsync services start --tls` makes"),
        OPT_STR("tls-cert", "FILE", &a->tls_cert, "serve HTTPS with this certificate chain (PEM), with --tls-key"),
        OPT_STR("tls-key", "FILE", &a->tls_key, "the certificate's key (PEM), with --tls-cert"),
        OPT_BOOLEAN("insecure-http", &a->insecure_http,
                    "allow plain HTTP on a non-loopback --listen (a TLS proxy in front);\n"
                    "without it such a --listen needs --tls or --tls-cert (exit 2)"),
        OPT_CB("allowed-host", "NAME", d, opt_allowed_host,
               "a Host name requests may carry besides loopback names and the\n"
               "--listen address (repeatable, 15 at most); others get 403, which\n"
               "stops DNS rebinding. A wildcard --listen with --auth-file also\n"
               "answers any IP address"),
        OPT_CB("hash-password", "NAME", a, opt_hash_password,
               "read a password from stdin, print NAME:$pbkdf2-sha256$... for\n"
               "the auth file, and exit"),
        OPT_CB("hash-token", "NAME", a, opt_hash_token,
               "read an API token (32+ characters, e.g. openssl rand -hex 32) from\n"
               "stdin, print NAME:$token-sha256$... for the auth file, and exit"),
        OPT_CB("session-ttl", "DUR", &a->session_ms, opt_session_ttl,
               "how long a login lasts (default 12h); every session ends when the\n"
               "dashboard restarts"),
        OPT_INTEGER("rate-limit", "N", &a->rate, 1, 100000,
                    "requests (and WebSocket upgrades) per second per client address,\n"
                    "bursts of 10 x N (default " STR(DEFAULT_RATE) "); beyond: 429"),
        OPT_CB("tile-url", "URL", &d->tile_url, opt_tile_url,
               "online map tiles ({z}/{x}/{y} template); default: none, the page\n"
               "uses its offline basemap and nothing leaves this machine"),
        OPT_STR("web-dir", "DIR", &a->web,
                "the page (default: web/ of the checkout, or /usr/share/fleetsync/web;\n"
                "env FLEETSYNC_WEB_DIR)"),
        OPT_STR("node-modules", "DIR", &a->modules,
                "the page's npm libraries (default WEB_DIR/../node_modules, installed\n"
                "by scripts/bootstrap; env FLEETSYNC_NODE_MODULES)"),
        OPT_END_MARK,
    };
    struct opt_command cmd = dashboard_cmd;
    int rest, rc;

    cmd.opts = opts;
    if (opt_parse_or_leave(&cmd, cfg, argc, argv, &rest, &rc))
        return rc;
    if (a->hash_name)
        return hash_command(a->hash_name, a->hash_token);
    if (cfg_parse_host_port(cfg->listen, host, host_size, port) != 0 || *port < 1 || *port > 65535)
        return opt_error(&cmd, "--listen needs HOST:PORT, not '%s'", cfg->listen);
    if ((a->tls_cert != NULL) != (a->tls_key != NULL) || (a->tls_local && a->tls_cert))
        return opt_error(&cmd, "give --tls-cert and --tls-key together, or --tls for the data dir's certificate, "
                               "not both");
    return -1;
}

/* Who may watch and over what: loads --auth-file, refuses a non-loopback
 * host without logins or without TLS (unless --insecure-http), makes the
 * TLS context and the list of Host names requests may carry (DNS
 * rebinding).  Returns 0, or 2 after saying why on stderr.  auth becomes
 * d->auth when --auth-file is given; d's fields are released by
 * cmd_dashboard either way. */
static int dashboard_secure(struct dash *d, struct ds_auth *auth, const struct dash_args *a,
                            const struct fs_config *cfg, const char *host, int port)
{
    char local_cert[PATH_MAX], local_key[PATH_MAX], err[512];
    const char *tls_cert = a->tls_cert, *tls_key = a->tls_key;

    if (a->auth_file) {
        if (ds_auth_init(auth, a->session_ms, err, sizeof(err)) != 0 ||
            ds_auth_load(auth, a->auth_file, err, sizeof(err)) != 0) {
            fprintf(stderr, "fleetsync dashboard: %s\n", err);
            return 2;
        }
        d->auth = auth;
        if (auth->plain)
            log_warn("--auth-file %s holds %d password(s) in plain text: replace each line with the output of "
                     "fleetsync dashboard --hash-password NAME",
                     a->auth_file, auth->plain);
    }
    if (!netaddr_loopback(host) && !d->auth)
        return opt_error(&dashboard_cmd,
                         "refusing to listen on %s:%d without authentication: anyone who can reach it would see "
                         "the fleet. Give --auth-file FILE (lines from --hash-password NAME), or listen on 127.0.0.1",
                         host, port);
    if (a->tls_local) {
        snprintf(local_cert, sizeof(local_cert), "%s/tls/dashboard.crt", cfg->data_dir);
        snprintf(local_key, sizeof(local_key), "%s/tls/dashboard.key", cfg->data_dir);
        if (access(local_cert, R_OK) != 0 || access(local_key, R_OK) != 0) {
            fprintf(stderr,
                    "fleetsync dashboard: --tls needs %s and its key, signed by the data dir's local CA: run "
                    "fleetsync services start --tls (it makes them), or give --tls-cert FILE --tls-key FILE\n",
                    local_cert);
            return 2;
        }
        tls_cert = local_cert;
        tls_key = local_key;
    }
    if (!netaddr_loopback(host) && !tls_cert && !a->insecure_http)
        return opt_error(&dashboard_cmd,
                         "refusing to listen on %s:%d over plain HTTP: passwords and session cookies would cross "
                         "the network in the clear. Give --tls (the local CA of services start --tls) or --tls-cert "
                         "FILE --tls-key FILE, or --insecure-http if a TLS proxy in front takes care of it",
                         host, port);
    if (tls_cert && !(d->tls_ctx = ds_tls_server_context(tls_cert, tls_key, err, sizeof(err)))) {
        fprintf(stderr, "fleetsync dashboard: %s\n", err);
        return 2;
    }
    /* The listen host unless it is a wildcard, which with a login accepts
     * any IP address. */
    if (wildcard_host(host))
        d->host_any_ip = 1;
    else if (!netaddr_loopback(host))
        d->allowed_hosts[d->n_allowed_hosts++] = host;
    return 0;
}

/* The dashboard's own metrics (the server's and the consumer's). */
static void dashboard_metrics(struct dash *d, struct consumer *k)
{
    static const char *const names[T_COUNT] = {"telemetry", "status", "alerts"};
    static const double age_bounds[] = {0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 5, 10, 30, 60, 300};

    d->metrics = metrics_new();
    for (int i = 0; i < T_COUNT; i++) {
        char label[64];
        snprintf(label, sizeof(label), "topic=\"%s\"", names[i]);
        k->m_consumed[i] =
            metrics_counter(d->metrics, "fleetsync_dashboard_consumed_total", "Records consumed, by topic.", label);
        k->m_invalid[i] = metrics_counter(d->metrics, "fleetsync_dashboard_invalid_total",
                                          "Records skipped as invalid, by topic.", label);
    }
    k->m_stale = metrics_counter(d->metrics, "fleetsync_dashboard_stale_total",
                                 "Readings not newer than the truck's latest (late or repeated).", NULL);
    k->m_refused = metrics_counter(d->metrics, "fleetsync_dashboard_refused_total",
                                   "Readings of new trucks refused because the store is full (--max-trucks).", NULL);
    k->m_rebuilds = metrics_counter(d->metrics, "fleetsync_dashboard_rebuilds_total",
                                    "Assignments that read back --rebuild to restore the map.", NULL);
    k->m_age = metrics_histogram(d->metrics, "fleetsync_dashboard_reading_age_seconds",
                                 "Wall clock minus the reading's ts when it is applied.", NULL, age_bounds,
                                 (int)(sizeof(age_bounds) / sizeof(age_bounds[0])));
    d->m_clients = metrics_gauge(d->metrics, "fleetsync_dashboard_ws_clients", "Connected WebSocket clients.", NULL);
    d->m_frames = metrics_counter(d->metrics, "fleetsync_dashboard_frames_total", "Map frames written.", NULL);
    d->m_skipped = metrics_counter(d->metrics, "fleetsync_dashboard_frames_skipped_total",
                                   "Frame builds skipped because the client had not taken its last frame.", NULL);
    d->m_client_errors = metrics_counter(d->metrics, "fleetsync_dashboard_client_errors_total",
                                         "Bad messages from WebSocket clients.", NULL);
    d->m_queue_dropped = metrics_counter(d->metrics, "fleetsync_dashboard_queue_dropped_total",
                                         "Messages dropped because a client's queue was full.", NULL);
    d->m_trucks = metrics_gauge(d->metrics, "fleetsync_dashboard_trucks", "Trucks with a position in memory.", NULL);
    d->m_refused_auth = metrics_counter(d->metrics, "fleetsync_dashboard_refused_requests_total",
                                        "Requests and WebSocket upgrades refused, by reason.", "reason=\"login\"");
    d->m_refused_origin = metrics_counter(d->metrics, "fleetsync_dashboard_refused_requests_total",
                                          "Requests and WebSocket upgrades refused, by reason.", "reason=\"origin\"");
    d->m_refused_rate = metrics_counter(d->metrics, "fleetsync_dashboard_refused_requests_total",
                                        "Requests and WebSocket upgrades refused, by reason.", "reason=\"rate\"");
    d->m_logins = metrics_counter(d->metrics, "fleetsync_dashboard_logins_total", "Successful logins at /login.", NULL);
}

/* Everything in memory before Kafka: rate limits, the page's files, the
 * topics' names, the store, signals and metrics.  Returns 0, or 1 after
 * logging why. */
static int dashboard_prepare(struct dash *d, struct consumer *k, const struct dash_args *a, struct fs_config *cfg)
{
    char err[512];

    k->rebuild_ms = a->rebuild_ms;
    k->alerts_ms = a->alerts_ms;
    d->req_rate = malloc(sizeof(*d->req_rate));
    d->login_rate = malloc(sizeof(*d->login_rate));
    if (!d->req_rate || !d->login_rate) {
        log_error("out of memory");
        return 1;
    }
    ds_rate_init(d->req_rate, (double)a->rate, 10.0 * (double)a->rate);
    ds_rate_init(d->login_rate, LOGIN_PER_MIN / 60.0, LOGIN_BURST);
    ds_server_headers(d);
    if (find_files(d, a->web, a->modules, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return 1;
    }
    cfg_topic(cfg, TOPIC_TELEMETRY, k->topics[T_TELEMETRY], sizeof(k->topics[T_TELEMETRY]));
    cfg_topic(cfg, TOPIC_STATUS, k->topics[T_STATUS], sizeof(k->topics[T_STATUS]));
    cfg_topic(cfg, TOPIC_ALERTS, k->topics[T_ALERTS], sizeof(k->topics[T_ALERTS]));
    if (ds_store_init(&d->store, (uint32_t)a->max_trucks) != 0 ||
        ds_alerts_init(&d->alerts, (size_t)a->max_alerts) != 0) {
        log_error("out of memory for the truck store");
        return 1;
    }
    sig_install();
    dashboard_metrics(d, k);
    return 0;
}

/* Creates k->rk, the group's consumer with rebalance_cb, and waits until
 * Kafka answers.  Returns 0, or 1 after logging why (k->rk, when set, is
 * destroyed by the caller). */
static int consumer_start(struct consumer *k, const struct fs_config *cfg)
{
    static const char *const defaults[] = {KAFKA_TELEMETRY_CONSUMER_DEFAULTS,
                                           "group.id",
                                           DEFAULT_GROUP,
                                           "client.id",
                                           "fleetsync-dashboard",
                                           "enable.auto.commit",
                                           "true",
                                           "auto.offset.reset",
                                           "latest",
                                           NULL};
    char err[512];
    rd_kafka_conf_t *conf = kafka_conf_new(cfg, defaults, err, sizeof(err));
    if (!conf) {
        log_error("%s", err);
        return 1;
    }
    if (cfg->group && rd_kafka_conf_set(conf, "group.id", cfg->group, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        log_error("%s", err);
        return 1;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, k);
    k->group = cfg->group ? cfg->group : DEFAULT_GROUP;
    k->rk = kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!k->rk) {
        log_error("cannot create the Kafka consumer: %s", err);
        return 1;
    }
    rd_kafka_poll_set_consumer(k->rk);
    if (kafka_wait_ready(k->rk, 30000, err, sizeof(err)) != 0) {
        log_error("cannot reach Kafka at %s: %s", cfg->brokers, err);
        return 1;
    }
    return 0;
}

/* Serves host:port and consumes until a signal.  Returns the exit status. */
static int dashboard_run(struct dash *d, struct consumer *k, const struct fs_config *cfg, const char *host, int port)
{
    char err[512];
    if (ds_server_start(d, host, port, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return 1;
    }
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(T_COUNT);
    for (int i = 0; i < T_COUNT; i++)
        rd_kafka_topic_partition_list_add(subs, k->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t se = rd_kafka_subscribe(k->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (se) {
        log_error("cannot subscribe to %s, %s, %s: %s", k->topics[0], k->topics[1], k->topics[2], rd_kafka_err2str(se));
        return 1;
    }
    log_info("serving %s://%s:%d/ (page %s); consuming %s, %s, %s from %s as group %s", d->tls ? "https" : "http", host,
             port, d->web_dir, k->topics[0], k->topics[1], k->topics[2], cfg->brokers, k->group);
    int rc = consume_loop(k);
    log_info("stopping: %u trucks in memory", d->store.count);
    return rc;
}

int cmd_dashboard(int argc, char **argv)
{
    static struct dash d; /* large; one per process */
    static struct ds_auth auth;
    struct consumer k;
    struct fs_config cfg;
    struct dash_args a = {
        .max_trucks = DEFAULT_MAX_TRUCKS,
        .max_alerts = 4096,
        .rate = DEFAULT_RATE,
        .rebuild_ms = DEFAULT_REBUILD_MS,
        .alerts_ms = DEFAULT_ALERTS_MS,
        .session_ms = DEFAULT_SESSION_MS,
    };
    char host[256];
    int rc, port = 0;

    memset(&d, 0, sizeof(d));
    memset(&k, 0, sizeof(k));
    pthread_mutex_init(&d.lock, NULL);
    pthread_mutex_init(&d.wake_lock, NULL);
    pthread_mutex_init(&d.clients_lock, NULL);
    pthread_mutex_init(&d.rate_lock, NULL);
    pthread_mutex_init(&d.track_lock, NULL);
    pthread_cond_init(&d.wake, NULL);
    d.max_clients = DEFAULT_MAX_CLIENTS;
    d.cfg = &cfg;
    k.d = &d;
    cfg_init(&cfg);
    cfg.kafka_user = KA_USER_DASHBOARD;

    if ((rc = dashboard_parse(argc, argv, &cfg, &d, &a, host, sizeof(host), &port)) >= 0 ||
        (rc = dashboard_secure(&d, &auth, &a, &cfg, host, port)) != 0 ||
        (rc = dashboard_prepare(&d, &k, &a, &cfg)) != 0 || (rc = consumer_start(&k, &cfg)) != 0)
        goto out;
    rc = dashboard_run(&d, &k, &cfg, host, port);

out:
    ds_server_stop(&d);
    if (k.rk)
        kafka_consumer_destroy(k.rk); /* leaves the group, commits the offsets */
    ds_store_release(&d.store);       /* both are safe on a zeroed or released object */
    ds_alerts_release(&d.alerts);
    metrics_free(d.metrics);
    free(d.req_rate);
    free(d.login_rate);
    if (d.auth)
        ds_auth_release(d.auth);
    cfg_release(&cfg);
    return rc;
}
