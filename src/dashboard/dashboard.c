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
#include "core/sig.h"
#include "core/telemetry.h"
#include "core/tmscan.h"
#include "core/topics.h"
#include "dashboard/server.h"

#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_GROUP        "fleetsync-dashboard"
#define DEFAULT_REBUILD_MS   (5LL * 60 * 1000)
#define DEFAULT_ALERTS_MS    (60LL * 60 * 1000)
#define DEFAULT_MAX_TRUCKS   2000000u
#define DEFAULT_MAX_CLIENTS  128
#define DEFAULT_SESSION_MS   (12LL * 3600 * 1000)
#define DEFAULT_RATE         100  /* requests per second per client address */
#define LOGIN_BURST          20   /* failed logins per address at once, */
#define LOGIN_PER_MIN        10   /* then this many per minute */
#define BATCH_MAX            5000
#define BATCH_MS             5

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

static void apply_telemetry(struct consumer *k, const rd_kafka_message_t *m, long long now)
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
    dr = (struct ds_reading){.ts_ms = f.ts_ms, .seq = f.seq, .lat = f.lat, .lon = f.lon,
                             .speed_kmh = f.speed_kmh, .ignition = f.ignition,
                             .has_heading = f.heading_s.n > 0, .heading_deg = f.heading_deg,
                             .has_fuel = f.fuel_s.n > 0, .fuel_pct = f.fuel_pct,
                             .has_odometer = f.odometer_s.n > 0, .odometer_km = f.odometer_km};
    snprintf(id, sizeof(id), "%.*s", (int)f.truck_id.n, f.truck_id.p);
    enum ds_apply a = ds_store_reading(&k->d->store, id, strlen(id), &dr);
    if (a == DS_STALE)
        metric_add(k->m_stale, 1);
    else if (a == DS_FULL)
        metric_add(k->m_refused, 1);
    else if (a == DS_APPLIED && now >= dr.ts_ms)
        metric_observe(k->m_age, (double)(now - dr.ts_ms) / 1000.0);
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

static int consume_loop(struct consumer *k)
{
    struct buf fresh = {.max = 1u << 20};
    int rc = 0;
    while (!sig_stopping() && !(rc = kafka_consumer_fatal(k->rk, k->group))) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, 100);
        if (!m)
            continue;
        int n = 0, applied = 0;
        long long start = fs_wall_ms(), now = start;
        pthread_mutex_lock(&k->d->lock);
        while (m) {
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    log_warn("consumer: %s", rd_kafka_message_errstr(m));
            } else {
                int t = topic_of(k, rd_kafka_topic_name(m->rkt));
                if (t >= 0)
                    metric_add(k->m_consumed[t], 1);
                if (t == T_TELEMETRY)
                    apply_telemetry(k, m, now);
                else if (t == T_STATUS)
                    apply_status(k, m);
                else if (t == T_ALERTS)
                    apply_alert(k, m, &fresh);
                applied++;
            }
            rd_kafka_message_destroy(m);
            if (++n >= BATCH_MAX || ((n & 63) == 0 && (now = fs_wall_ms()) - start >= BATCH_MS))
                break;
            m = rd_kafka_consumer_poll(k->rk, 0);
        }
        atomic_store_explicit(&k->d->version, k->d->store.version, memory_order_relaxed);
        pthread_mutex_unlock(&k->d->lock);
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
    buf_release(&fresh);
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
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    const char *candidates[4] = {0};
    char c1[PATH_MAX + 16], c2[PATH_MAX + 16];
    int nc = 0;
    if (!web)
        web = getenv("FLEETSYNC_WEB_DIR");
    if (web) {
        candidates[nc++] = web;
    } else {
        if (n > 0) {
            exe[n] = '\0';
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

/* A duration as every command takes it (core/timeparse.h: "90s", "5m",
 * "2h", "7d"), at most 30 days, in ms; -1 if malformed. */
static long long parse_duration_ms(const char *s)
{
    int64_t ms;
    return time_parse_duration(s, 30 * FS_DAY_MS, &ms, NULL, 0) == 0 ? (long long)ms : -1;
}

/* ---- command ------------------------------------------------------------- */

static void dashboard_usage(FILE *out)
{
    fprintf(out,
            "usage: fleetsync dashboard [options]\n\n"
            "The live map: consumer group fleetsync-dashboard on truck-telemetry, truck-status and\n"
            "truck-alerts, the latest state of every truck in memory, served over HTTP and WebSocket\n"
            "on --listen (default 127.0.0.1:8080): the page at /, the API at /api/fleet,\n"
            "/api/trucks/{id}, /api/trucks?bbox=minLon,minLat,maxLon,maxLat, /api/alerts?since=MS,\n"
            "/healthz, /metrics (loopback only) and /ws (protocol: docs/dashboard.md).\n"
            "Nothing is written to disk: on a restart the map is rebuilt by reading back the\n"
            "last --rebuild of each partition.\n\n"
            "Options:\n"
            "  --rebuild DUR       how far back a restart reads telemetry and presence (default 5m;\n"
            "                      s, m, h suffixes)\n"
            "  --alert-window DUR  how far back a restart reads alerts (default 1h)\n"
            "  --max-trucks N      trucks kept at most (default %u; memory bound)\n"
            "  --max-alerts N      recent alerts kept (default 4096)\n"
            "  --max-clients N     WebSocket clients at once (default %d)\n"
            "  --auth-file FILE    who may watch: NAME:HASH lines written by --hash-password or\n"
            "                      --hash-token; required to --listen on anything but loopback.\n"
            "                      Browsers sign in at /login (a session cookie), scripts send\n"
            "                      Authorization: Bearer TOKEN or Basic; /healthz stays open.\n"
            "                      Without it (loopback only) there is no login, but a WebSocket\n"
            "                      from another site's page, or a request whose Host is not a\n"
            "                      loopback name, is refused (403)\n"
            "  --tls               serve HTTPS with the data dir's tls/dashboard.crt and .key, signed by\n"
            "                      the local CA that `fleetsync services start --tls` makes\n"
            "  --tls-cert FILE --tls-key FILE  serve HTTPS with this certificate chain and key (PEM)\n"
            "  --insecure-http     allow plain HTTP on a non-loopback --listen (a TLS proxy in front);\n"
            "                      without it such a --listen needs --tls or --tls-cert (exit 2)\n"
            "  --allowed-host NAME a Host name requests may carry besides loopback names and the\n"
            "                      --listen address (repeatable, 15 at most); others get 403, which\n"
            "                      stops DNS rebinding. A wildcard --listen with --auth-file also\n"
            "                      answers any IP address\n"
            "  --hash-password NAME  read a password from stdin, print NAME:$pbkdf2-sha256$... for\n"
            "                      the auth file, and exit\n"
            "  --hash-token NAME   read an API token (32+ characters, e.g. openssl rand -hex 32) from\n"
            "                      stdin, print NAME:$token-sha256$... for the auth file, and exit\n"
            "  --session-ttl DUR   how long a login lasts (default 12h); every session ends when the\n"
            "                      dashboard restarts\n"
            "  --rate-limit N      requests (and WebSocket upgrades) per second per client address,\n"
            "                      bursts of 10 x N (default %d); beyond: 429\n"
            "  --tile-url URL      online map tiles ({z}/{x}/{y} template); default: none, the page\n"
            "                      uses its offline basemap and nothing leaves this machine\n"
            "  --web-dir DIR       the page (default: web/ of the checkout, or /usr/share/fleetsync/web;\n"
            "                      env FLEETSYNC_WEB_DIR)\n"
            "  --node-modules DIR  the page's npm libraries (default WEB_DIR/../node_modules, installed\n"
            "                      by scripts/bootstrap; env FLEETSYNC_NODE_MODULES)\n"
            "  -h, --help          this text\n\n"
            "--metrics-port is not used: /metrics is served on --listen itself.\n\n"
            "Examples:\n"
            "  fleetsync dashboard --hash-password ops >> dash.auth    (type the password)\n"
            "  fleetsync dashboard --listen 0.0.0.0:8443 --auth-file dash.auth --tls --allowed-host dash.example.org\n"
            "Exit status: 0 after a clean stop (SIGINT/SIGTERM), 1 runtime failure (a Kafka fatal\n"
            "consumer error: restart it, it rejoins the group), 2 usage error (also a non-loopback\n"
            "--listen without --auth-file, or without TLS or --insecure-http).\n\n%s",
            DEFAULT_MAX_TRUCKS, DEFAULT_MAX_CLIENTS, DEFAULT_RATE, cfg_options_help);
}

int cmd_dashboard(int argc, char **argv)
{
    enum { OPT_REBUILD = 1, OPT_ALERT_WINDOW, OPT_MAX_TRUCKS, OPT_MAX_ALERTS, OPT_MAX_CLIENTS, OPT_AUTH, OPT_TILES,
           OPT_WEB, OPT_MODULES, OPT_HASH_PW, OPT_HASH_TOKEN, OPT_SESSION_TTL, OPT_RATE, OPT_TLS, OPT_TLS_CERT,
           OPT_TLS_KEY, OPT_INSECURE_HTTP, OPT_ALLOWED_HOST };
    static const struct option longopts[] = {
        {"rebuild", required_argument, NULL, OPT_REBUILD},
        {"alert-window", required_argument, NULL, OPT_ALERT_WINDOW},
        {"max-trucks", required_argument, NULL, OPT_MAX_TRUCKS},
        {"max-alerts", required_argument, NULL, OPT_MAX_ALERTS},
        {"max-clients", required_argument, NULL, OPT_MAX_CLIENTS},
        {"auth-file", required_argument, NULL, OPT_AUTH},
        {"hash-password", required_argument, NULL, OPT_HASH_PW},
        {"hash-token", required_argument, NULL, OPT_HASH_TOKEN},
        {"session-ttl", required_argument, NULL, OPT_SESSION_TTL},
        {"rate-limit", required_argument, NULL, OPT_RATE},
        {"tls", no_argument, NULL, OPT_TLS},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
        {"insecure-http", no_argument, NULL, OPT_INSECURE_HTTP},
        {"allowed-host", required_argument, NULL, OPT_ALLOWED_HOST},
        {"tile-url", required_argument, NULL, OPT_TILES},
        {"web-dir", required_argument, NULL, OPT_WEB},
        {"node-modules", required_argument, NULL, OPT_MODULES},
        {"help", no_argument, NULL, 'h'},
        CFG_LONG_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    struct fs_config cfg;
    static struct dash d; /* large; one per process */
    struct consumer k;
    const char *auth_file = NULL, *web = NULL, *modules = NULL, *tls_cert = NULL, *tls_key = NULL;
    int tls_local = 0, insecure_http = 0;
    char local_cert[PATH_MAX], local_key[PATH_MAX];
    long long max_trucks = DEFAULT_MAX_TRUCKS, max_alerts = 4096, session_ms = DEFAULT_SESSION_MS, rate = DEFAULT_RATE;
    static struct ds_auth auth;
    char err[512], host[256];
    int c, rc = 2, port = 0;

    memset(&d, 0, sizeof(d));
    memset(&k, 0, sizeof(k));
    pthread_mutex_init(&d.lock, NULL);
    pthread_mutex_init(&d.wake_lock, NULL);
    pthread_mutex_init(&d.clients_lock, NULL);
    pthread_mutex_init(&d.rate_lock, NULL);
    pthread_mutex_init(&d.track_lock, NULL);
    pthread_cond_init(&d.wake, NULL);
    d.max_clients = DEFAULT_MAX_CLIENTS;
    k.d = &d;
    k.rebuild_ms = DEFAULT_REBUILD_MS;
    k.alerts_ms = DEFAULT_ALERTS_MS;
    cfg_init(&cfg);
    cfg.kafka_user = KA_USER_DASHBOARD;
    d.cfg = &cfg;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h" CFG_SHORT_OPTIONS, longopts, NULL)) != -1) {
        const char *bad = NULL;
        switch (c) {
        case 'h':
            dashboard_usage(stdout);
            rc = 0;
            goto out;
        case OPT_REBUILD:
            if ((k.rebuild_ms = parse_duration_ms(optarg)) < 0)
                bad = "--rebuild needs a duration such as 5m or 300s";
            break;
        case OPT_ALERT_WINDOW:
            if ((k.alerts_ms = parse_duration_ms(optarg)) < 0)
                bad = "--alert-window needs a duration such as 1h";
            break;
        case OPT_MAX_TRUCKS:
            max_trucks = atoll(optarg);
            if (max_trucks < 1 || max_trucks > 50000000)
                bad = "--max-trucks is 1-50000000";
            break;
        case OPT_MAX_ALERTS:
            max_alerts = atoll(optarg);
            if (max_alerts < 1 || max_alerts > 100000)
                bad = "--max-alerts is 1-100000";
            break;
        case OPT_MAX_CLIENTS:
            d.max_clients = atoi(optarg);
            if (d.max_clients < 1 || d.max_clients > 1000)
                bad = "--max-clients is 1-1000";
            break;
        case OPT_AUTH:
            auth_file = optarg;
            break;
        case OPT_HASH_PW:
        case OPT_HASH_TOKEN:
            rc = hash_command(optarg, c == OPT_HASH_TOKEN);
            goto out;
        case OPT_SESSION_TTL:
            session_ms = parse_duration_ms(optarg);
            if (session_ms < 1000 || session_ms > 30 * FS_DAY_MS)
                bad = "--session-ttl is a duration from 1s to 720h, such as 12h";
            break;
        case OPT_RATE:
            rate = atoll(optarg);
            if (rate < 1 || rate > 100000)
                bad = "--rate-limit is 1-100000 requests per second";
            break;
        case OPT_TLS:
            tls_local = 1;
            break;
        case OPT_TLS_CERT:
            tls_cert = optarg;
            break;
        case OPT_TLS_KEY:
            tls_key = optarg;
            break;
        case OPT_INSECURE_HTTP:
            insecure_http = 1;
            break;
        case OPT_ALLOWED_HOST:
            if (d.n_allowed_hosts >= DS_ALLOWED_HOSTS_MAX - 1)
                bad = "at most 15 --allowed-host names";
            else if (!*optarg || strlen(optarg) > 253 || strpbrk(optarg, ":/ \t"))
                bad = "--allowed-host is a host name or address as browsers send it, without port or scheme";
            else
                d.allowed_hosts[d.n_allowed_hosts++] = optarg;
            break;
        case OPT_TILES:
            d.tile_url = optarg;
            if (strncmp(optarg, "http://", 7) != 0 && strncmp(optarg, "https://", 8) != 0)
                bad = "--tile-url is an http(s):// URL template such as https://tile.example/{z}/{x}/{y}.png";
            break;
        case OPT_WEB:
            web = optarg;
            break;
        case OPT_MODULES:
            modules = optarg;
            break;
        default:
            if (cfg_option(&cfg, c, optarg, err, sizeof(err)) == 1)
                break;
            if (c != '?')
                fprintf(stderr, "fleetsync dashboard: %s\n", err);
            dashboard_usage(stderr);
            goto out;
        }
        if (bad) {
            fprintf(stderr, "fleetsync dashboard: %s\n", bad);
            goto out;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "fleetsync dashboard: unexpected argument '%s'\n", argv[optind]);
        goto out;
    }
    if (cfg_parse_host_port(cfg.listen, host, sizeof(host), &port) != 0 || port < 1 || port > 65535) {
        fprintf(stderr, "fleetsync dashboard: --listen needs HOST:PORT, not '%s'\n", cfg.listen);
        goto out;
    }
    if (auth_file) {
        if (ds_auth_init(&auth, session_ms, err, sizeof(err)) != 0 ||
            ds_auth_load(&auth, auth_file, err, sizeof(err)) != 0) {
            fprintf(stderr, "fleetsync dashboard: %s\n", err);
            goto out;
        }
        d.auth = &auth;
        if (auth.plain)
            log_warn("--auth-file %s holds %d password(s) in plain text: replace each line with the output of "
                     "fleetsync dashboard --hash-password NAME", auth_file, auth.plain);
    }
    if (!netaddr_loopback(host) && !d.auth) {
        fprintf(stderr,
                "fleetsync dashboard: refusing to listen on %s:%d without authentication: anyone who can reach it "
                "would see the fleet. Give --auth-file FILE (lines from --hash-password NAME), or listen on "
                "127.0.0.1\n",
                host, port);
        goto out;
    }
    if ((tls_cert != NULL) != (tls_key != NULL) || (tls_local && tls_cert)) {
        fprintf(stderr, "fleetsync dashboard: give --tls-cert and --tls-key together, or --tls for the data dir's "
                        "certificate, not both\n");
        goto out;
    }
    if (tls_local) {
        snprintf(local_cert, sizeof(local_cert), "%s/tls/dashboard.crt", cfg.data_dir);
        snprintf(local_key, sizeof(local_key), "%s/tls/dashboard.key", cfg.data_dir);
        if (access(local_cert, R_OK) != 0 || access(local_key, R_OK) != 0) {
            fprintf(stderr,
                    "fleetsync dashboard: --tls needs %s and its key, signed by the data dir's local CA: run "
                    "fleetsync services start --tls (it makes them), or give --tls-cert FILE --tls-key FILE\n",
                    local_cert);
            goto out;
        }
        tls_cert = local_cert;
        tls_key = local_key;
    }
    if (!netaddr_loopback(host) && !tls_cert && !insecure_http) {
        fprintf(stderr,
                "fleetsync dashboard: refusing to listen on %s:%d over plain HTTP: passwords and session cookies "
                "would cross the network in the clear. Give --tls (the local CA of services start --tls) or "
                "--tls-cert FILE --tls-key FILE, or --insecure-http if a TLS proxy in front takes care of it\n",
                host, port);
        goto out;
    }
    if (tls_cert && !(d.tls_ctx = ds_tls_server_context(tls_cert, tls_key, err, sizeof(err)))) {
        fprintf(stderr, "fleetsync dashboard: %s\n", err);
        goto out;
    }
    /* Host names requests may carry (DNS rebinding): the listen host unless
     * it is a wildcard, which with a login accepts any IP address. */
    if (wildcard_host(host))
        d.host_any_ip = 1;
    else if (!netaddr_loopback(host))
        d.allowed_hosts[d.n_allowed_hosts++] = host;
    d.req_rate = malloc(sizeof(*d.req_rate));
    d.login_rate = malloc(sizeof(*d.login_rate));
    if (!d.req_rate || !d.login_rate) {
        log_error("out of memory");
        rc = 1;
        goto out;
    }
    ds_rate_init(d.req_rate, (double)rate, 10.0 * (double)rate);
    ds_rate_init(d.login_rate, LOGIN_PER_MIN / 60.0, LOGIN_BURST);
    ds_server_headers(&d);
    rc = 1;
    if (find_files(&d, web, modules, err, sizeof(err)) != 0) {
        log_error("%s", err);
        goto out;
    }
    cfg_topic(&cfg, TOPIC_TELEMETRY, k.topics[T_TELEMETRY], sizeof(k.topics[T_TELEMETRY]));
    cfg_topic(&cfg, TOPIC_STATUS, k.topics[T_STATUS], sizeof(k.topics[T_STATUS]));
    cfg_topic(&cfg, TOPIC_ALERTS, k.topics[T_ALERTS], sizeof(k.topics[T_ALERTS]));

    if (ds_store_init(&d.store, (uint32_t)max_trucks) != 0 || ds_alerts_init(&d.alerts, (size_t)max_alerts) != 0) {
        log_error("out of memory for the truck store");
        goto out;
    }
    sig_install();

    d.metrics = metrics_new();
    static const char *const names[T_COUNT] = {"telemetry", "status", "alerts"};
    for (int i = 0; i < T_COUNT; i++) {
        char label[64];
        snprintf(label, sizeof(label), "topic=\"%s\"", names[i]);
        k.m_consumed[i] = metrics_counter(d.metrics, "fleetsync_dashboard_consumed_total", "Records consumed, by topic.",
                                          label);
        k.m_invalid[i] = metrics_counter(d.metrics, "fleetsync_dashboard_invalid_total",
                                         "Records skipped as invalid, by topic.", label);
    }
    k.m_stale = metrics_counter(d.metrics, "fleetsync_dashboard_stale_total",
                                "Readings not newer than the truck's latest (late or repeated).", NULL);
    k.m_refused = metrics_counter(d.metrics, "fleetsync_dashboard_refused_total",
                                  "Readings of new trucks refused because the store is full (--max-trucks).", NULL);
    k.m_rebuilds = metrics_counter(d.metrics, "fleetsync_dashboard_rebuilds_total",
                                   "Assignments that read back --rebuild to restore the map.", NULL);
    static const double age_bounds[] = {0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 5, 10, 30, 60, 300};
    k.m_age = metrics_histogram(d.metrics, "fleetsync_dashboard_reading_age_seconds",
                                "Wall clock minus the reading's ts when it is applied.", NULL, age_bounds,
                                (int)(sizeof(age_bounds) / sizeof(age_bounds[0])));
    d.m_clients = metrics_gauge(d.metrics, "fleetsync_dashboard_ws_clients", "Connected WebSocket clients.", NULL);
    d.m_frames = metrics_counter(d.metrics, "fleetsync_dashboard_frames_total", "Map frames written.", NULL);
    d.m_skipped = metrics_counter(d.metrics, "fleetsync_dashboard_frames_skipped_total",
                                  "Frame builds skipped because the client had not taken its last frame.", NULL);
    d.m_client_errors = metrics_counter(d.metrics, "fleetsync_dashboard_client_errors_total",
                                        "Bad messages from WebSocket clients.", NULL);
    d.m_queue_dropped = metrics_counter(d.metrics, "fleetsync_dashboard_queue_dropped_total",
                                        "Messages dropped because a client's queue was full.", NULL);
    d.m_trucks = metrics_gauge(d.metrics, "fleetsync_dashboard_trucks", "Trucks with a position in memory.", NULL);
    d.m_refused_auth = metrics_counter(d.metrics, "fleetsync_dashboard_refused_requests_total",
                                       "Requests and WebSocket upgrades refused, by reason.", "reason=\"login\"");
    d.m_refused_origin = metrics_counter(d.metrics, "fleetsync_dashboard_refused_requests_total",
                                         "Requests and WebSocket upgrades refused, by reason.", "reason=\"origin\"");
    d.m_refused_rate = metrics_counter(d.metrics, "fleetsync_dashboard_refused_requests_total",
                                       "Requests and WebSocket upgrades refused, by reason.", "reason=\"rate\"");
    d.m_logins = metrics_counter(d.metrics, "fleetsync_dashboard_logins_total", "Successful logins at /login.", NULL);

    static const char *const defaults[] = {"group.id", DEFAULT_GROUP, "client.id", "fleetsync-dashboard",
                                           "enable.auto.commit", "true", "auto.offset.reset", "latest",
                                           "fetch.wait.max.ms", "100", NULL};
    rd_kafka_conf_t *conf = kafka_conf_new(&cfg, defaults, err, sizeof(err));
    if (!conf) {
        log_error("%s", err);
        goto out;
    }
    if (cfg.group && rd_kafka_conf_set(conf, "group.id", cfg.group, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        log_error("%s", err);
        goto out;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, &k);
    k.group = cfg.group ? cfg.group : DEFAULT_GROUP;
    k.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!k.rk) {
        rd_kafka_conf_destroy(conf);
        log_error("cannot create the Kafka consumer: %s", err);
        goto out;
    }
    rd_kafka_poll_set_consumer(k.rk);
    if (kafka_wait_ready(k.rk, 30000, err, sizeof(err)) != 0) {
        log_error("cannot reach Kafka at %s: %s", cfg.brokers, err);
        goto out;
    }
    if (ds_server_start(&d, host, port, err, sizeof(err)) != 0) {
        log_error("%s", err);
        goto out;
    }
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(T_COUNT);
    for (int i = 0; i < T_COUNT; i++)
        rd_kafka_topic_partition_list_add(subs, k.topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t se = rd_kafka_subscribe(k.rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (se) {
        log_error("cannot subscribe to %s, %s, %s: %s", k.topics[0], k.topics[1], k.topics[2], rd_kafka_err2str(se));
        goto out;
    }
    log_info("serving %s://%s:%d/ (page %s); consuming %s, %s, %s from %s as group %s", d.tls ? "https" : "http", host,
             port, d.web_dir, k.topics[0], k.topics[1], k.topics[2], cfg.brokers, cfg.group ? cfg.group : DEFAULT_GROUP);
    rc = consume_loop(&k);
    log_info("stopping: %u trucks in memory", d.store.count);

out:
    ds_server_stop(&d);
    if (k.rk)
        kafka_consumer_destroy(k.rk); /* leaves the group, commits the offsets */
    ds_store_release(&d.store); /* both are safe on a zeroed or released object */
    ds_alerts_release(&d.alerts);
    metrics_free(d.metrics);
    free(d.req_rate);
    free(d.login_rate);
    if (d.auth)
        ds_auth_release(d.auth);
    cfg_release(&cfg);
    return rc;
}
