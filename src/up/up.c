/*
 * up.c - "fleetsync up", the main job: the whole stack in one command.
 *
 * It starts the embedded services, then the FleetSync processes (the MQTT
 * edge: fleetsync ingest, or the bridge behind Mosquitto; the pipelines:
 * history, billing, detect, dashboard, notify when a routes file exists;
 * and the simulator), each a child running this same binary with the same
 * endpoints, in its own process group so that a Ctrl-C reaches only us.  It
 * prints where everything is and watches: a child that exits is restarted
 * with backoff and reported, a service that died is started again, and one
 * status line tells trucks, messages per second, lag per group and alerts.  On Ctrl-C or SIGTERM
 * it stops the children in reverse start order (each flushes and commits on
 * SIGTERM), then the services, and exits 0.  Data stays in the data dir, so a
 * second "up" resumes where the first stopped.  Children log to
 * DATA_DIR/log/<name>.log.
 */
#include "up/up.h"

#include "core/config.h"
#include "core/kafkaauth.h"
#include "core/log.h"
#include "core/mqttauth.h"
#include "core/nofollow.h"
#include "core/opts.h"
#include "core/pg.h"
#include "core/proc.h"
#include "core/sig.h"
#include "stack/services.h"
#include "admin/status.h"

#include "core/clock.h"
#include "core/topics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char up_about[] = "Starts the embedded Kafka and PostgreSQL (as 'fleetsync services start'), the\n"
                               "MQTT edge (fleetsync ingest, or Mosquitto + bridge: --edge), every pipeline\n"
                               "(history and billing into PostgreSQL, detect raising alerts, the live dashboard\n"
                               "on --listen) and the truck simulator, keeps them running (whatever dies is\n"
                               "restarted with backoff), shows one status line (trucks, messages/s, lag per\n"
                               "group, alerts) and stops them all on Ctrl-C.\n"
                               "With a routes file (DATA_DIR/notify.json, or --notify-routes F) it also runs\n"
                               "'fleetsync notify', which POSTs alerts to webhooks (docs/notify.md).\n"
                               "Data stays in the data dir: a second 'up' resumes. Logs: DATA_DIR/log/.";

#define CHILD_MAX_ARGS 20

struct child {
    const char *name;
    const char *args[CHILD_MAX_ARGS]; /* subcommand and its own options; NULL-terminated */
    int metrics_off;                  /* its metrics port is --metrics-base + this (docs/design.md: 9101...); 0 none */
    int off;                          /* not run (notify without a routes file) */
    pid_t pid;
    int backoff_s;
    time_t next_start;
    int restarts;
};

/* In start order; stopped in reverse (the simulator first, so nothing is
 * left unbridged). */
static char sim_trucks[24] = "1000", sim_interval[24] = "10";
static char notify_routes[PATH_MAX]; /* notify runs only with a routes file (up_notify_routes) */
static struct child children[] = {
    {.name = "bridge", .args = {"bridge", "--quiet", NULL}, .metrics_off = 1},
    /* --edge ingest: instead of the bridge, on the MQTT port (up_edge). */
    {.name = "ingest", .args = {"ingest", "--quiet", NULL}, .metrics_off = 7, .off = 1},
    {.name = "history", .args = {"history", NULL}, .metrics_off = 2},
    {.name = "billing", .args = {"billing", NULL}, .metrics_off = 4},
    {.name = "detect", .args = {"detect", NULL}, .metrics_off = 3},
    {.name = "dashboard", .args = {"dashboard", NULL}},
    {.name = "notify", .args = {"notify", "--routes", notify_routes, NULL}, .metrics_off = 6, .off = 1},
    {.name = "sim",
     .args = {"sim", "--quiet", "--trucks", sim_trucks, "--interval", sim_interval, NULL},
     .metrics_off = 5},
};
static int nchildren = (int)(sizeof(children) / sizeof(children[0]));
static int metrics_base = 9100;
#define NCHILDREN nchildren
static enum svc_edge edge = SVC_EDGE_KEEP; /* --edge; KEEP: the data dir's (up_edge) */
static int mqtt_port, tls_port;            /* the ingest's ports (tls_port 0: no TLS listener) */

/* The named child. */
static struct child *child_named(const char *name)
{
    for (int i = 0; i < (int)(sizeof(children) / sizeof(children[0])); i++)
        if (strcmp(children[i].name, name) == 0)
            return &children[i];
    return NULL;
}

/* Whether notify runs (a routes file was found). */
static int notify_routes_on(void)
{
    for (int i = 0; i < nchildren; i++)
        if (strcmp(children[i].name, "notify") == 0)
            return !children[i].off;
    return 0;
}

/* Appends "opt value" to the named child's options.  Returns 0, or -1 when
 * they are full. */
static int child_arg(const char *name, const char *opt, const char *value)
{
    for (int i = 0; i < (int)(sizeof(children) / sizeof(children[0])); i++) {
        if (strcmp(children[i].name, name) != 0)
            continue;
        int n = 0;
        while (children[i].args[n])
            n++;
        if (n + 3 > CHILD_MAX_ARGS)
            return -1;
        children[i].args[n] = opt;
        children[i].args[n + 1] = value;
        children[i].args[n + 2] = NULL;
        return 0;
    }
    return -1;
}

/* Puts the MQTT URL and the PostgreSQL conninfo into the environment every
 * child inherits (each command reads FLEETSYNC_MQTT and FLEETSYNC_PG): the
 * environment of a process is readable by its user and root only, its
 * command line by everyone.  Returns 0 or -1. */
static int up_export_secrets(const struct fs_config *cfg)
{
    const char *m = getenv("FLEETSYNC_MQTT"), *p = getenv("FLEETSYNC_PG");
    if (!(m && strcmp(m, cfg->mqtt) == 0) && setenv("FLEETSYNC_MQTT", cfg->mqtt, 1) != 0)
        return -1;
    if (!(p && strcmp(p, cfg->pg) == 0) && setenv("FLEETSYNC_PG", cfg->pg, 1) != 0)
        return -1;
    return 0;
}

static int child_start(struct child *ch, const struct fs_config *cfg)
{
    char exe[PATH_MAX], logp[PATH_MAX + 64];
    if (proc_self_path(exe, sizeof(exe)) != 0)
        return -1;
    snprintf(logp, sizeof(logp), "%s/log/%s.log", cfg->data_dir, ch->name);
    const char *argv[CHILD_MAX_ARGS + 16];
    int a = 0;
    argv[a++] = exe;
    for (int i = 0; ch->args[i]; i++)
        argv[a++] = ch->args[i];
    /* The MQTT URL and the conninfo may hold passwords: they reach the
     * children as FLEETSYNC_MQTT / FLEETSYNC_PG (up_export_secrets), never on
     * a command line that ps shows to every user. */
    const char *shared[] = {"--brokers",   cfg->brokers,     "--data-dir",
                            cfg->data_dir, "--topic-prefix", cfg->topic_prefix};
    for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
        argv[a++] = shared[i];
    char mport[16];
    if (ch->metrics_off) {
        snprintf(mport, sizeof(mport), "%d", metrics_base > 0 ? metrics_base + ch->metrics_off : -1);
        argv[a++] = "--metrics-port";
        argv[a++] = mport;
    }
    argv[a] = NULL;
    /* D/log belongs to the service user when the services run as root:
     * never through a link planted there (core/nofollow.h). */
    char rel[64];
    snprintf(rel, sizeof(rel), "log/%s.log", ch->name);
    int fd = nf_open(cfg->data_dir, rel, O_WRONLY | O_CREAT | O_APPEND, 0644);
    struct proc_spec spec = {
        .path = exe, .argv = (char *const *)argv, .log_fd = fd, .default_signals = 1, .group = PROC_GROUP_OWN};
    pid_t pid;
    if (proc_spawn_logged(&spec, &pid) != 0)
        return -1;
    ch->pid = pid;
    log_info("started %s (pid %d, log %s)", ch->name, (int)pid, logp);
    return 0;
}

/* Reaps children that exited and schedules their restart. */
static void children_reap(void)
{
    int st;
    pid_t pid;
    while ((pid = proc_reap_any(&st)) > 0) {
        for (int i = 0; i < NCHILDREN; i++) {
            struct child *ch = &children[i];
            if (ch->pid != pid)
                continue;
            ch->pid = 0;
            if (sig_stopping())
                break;
            ch->backoff_s = ch->backoff_s ? (ch->backoff_s < 30 ? ch->backoff_s * 2 : 60) : 1;
            ch->next_start = time(NULL) + ch->backoff_s;
            ch->restarts++;
            if (WIFEXITED(st))
                log_warn("%s exited with status %d; restarting in %d s (see its log)", ch->name, WEXITSTATUS(st),
                         ch->backoff_s);
            else
                log_warn("%s was killed by signal %d; restarting in %d s", ch->name, WTERMSIG(st), ch->backoff_s);
        }
    }
}

/* Whether the bridge reports itself subscribed (its gauge
 * fleetsync_bridge_mqtt_connected is 1 once the broker acknowledged its
 * subscriptions). */
static int bridge_subscribed(void)
{
    static char body[1 << 18];
    char ebuf[128];
    struct mg_connection *conn = mg_download("127.0.0.1", metrics_base + 1, 0, ebuf, sizeof(ebuf),
                                             "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    if (!conn)
        return 0;
    size_t n = 0;
    int r;
    while (n < sizeof(body) - 1 && (r = mg_read(conn, body + n, sizeof(body) - 1 - n)) > 0)
        n += (size_t)r;
    body[n] = '\0';
    mg_close_connection(conn);
    return strstr(body, "\nfleetsync_bridge_mqtt_connected 1") != NULL;
}

/* Whether something accepts TCP connections on 127.0.0.1:port. */
static int port_listening(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* Probes Kafka's groups for notify_positioned(); set while up runs. */
static struct status_probe *sim_probe;

/* Whether notify, when it runs, has committed a position on each partition
 * of truck-alerts.  A new group starts at the end of the topic ("latest"),
 * as it is when notify gets its partitions: alerts the simulator provokes
 * before then (a backfill's come within seconds) would be skipped.  Its
 * first commit, within a second of its assignment, fixes where it reads. */
static int notify_positioned(void)
{
    if (!notify_routes_on() || !sim_probe)
        return 1;
    struct status_report r;
    int ok = 0;
    status_probe_refresh(sim_probe, &r);
    for (size_t i = 0; i < r.group_count; i++) {
        const struct status_group *g = &r.groups[i];
        if (strcmp(g->name, "fleetsync-notify") != 0 || !g->count)
            continue;
        ok = 1;
        for (size_t j = 0; j < g->count; j++)
            ok &= g->parts[j].committed >= 0;
    }
    status_report_release(&r);
    return ok;
}

/* The simulator starts once the edge takes its readings and notify (when
 * it runs) has its position.  The bridge: once it has subscribed; until
 * then the broker has no subscriber to queue readings for, and a backfill
 * (--start, --speedup 0) published in the first moments would be dropped.
 * The ingest: once it listens (it has checked Kafka's topics first), so
 * that the trucks' first connections are not refused.  After 30 s without
 * it, the simulator starts anyway (with a warning). */
static int sim_may_start(time_t now)
{
    static int ready;
    static time_t since;
    int ingest = edge == SVC_EDGE_INGEST;
    if (ready || (metrics_base <= 0 && !ingest))
        return 1;
    if (!since)
        since = now;
    int edge_ready = ingest ? port_listening(mqtt_port) : bridge_subscribed();
    if (edge_ready && notify_positioned())
        return ready = 1;
    if (now - since >= 30) {
        log_warn("%s within 30 s: starting the simulator anyway",
                 !edge_ready ? (ingest ? "the ingest does not listen" : "the bridge has not subscribed")
                             : "notify has no position in truck-alerts");
        return ready = 1;
    }
    return 0;
}

static void children_tick(const struct fs_config *cfg)
{
    children_reap();
    time_t now = time(NULL);
    for (int i = 0; i < NCHILDREN; i++) {
        struct child *ch = &children[i];
        if (ch->off)
            continue;
        if (!ch->pid && strcmp(ch->name, "sim") == 0 && !sim_may_start(now))
            continue;
        if (!ch->pid && now >= ch->next_start && child_start(ch, cfg) != 0)
            log_error("cannot start %s: %s", ch->name, strerror(errno));
        /* A child that stayed up a minute has earned a fresh backoff. */
        if (ch->pid && now - ch->next_start > 60)
            ch->backoff_s = 0;
    }
}

/* SIGTERM to each child in reverse start order, waiting for each. */
static void children_stop(void)
{
    for (int i = NCHILDREN - 1; i >= 0; i--) {
        struct child *ch = &children[i];
        if (!ch->pid)
            continue;
        log_info("stopping %s (pid %d)", ch->name, (int)ch->pid);
        if (proc_stop(ch->pid, SIGTERM, 30000, 0, NULL) == 1)
            log_warn("%s did not stop within 30 s; killing it", ch->name);
        ch->pid = 0;
    }
}

/* --- the status line ---------------------------------------------------- */

/* The dashboard's truck count (GET /api/fleet), or -1 when it does not
 * answer. */
static long fleet_trucks(const struct fs_config *cfg)
{
    char host[256], ebuf[256], body[4096];
    const char *colon = strrchr(cfg->listen, ':');
    if (!colon || (size_t)(colon - cfg->listen) >= sizeof(host))
        return -1;
    memcpy(host, cfg->listen, (size_t)(colon - cfg->listen));
    host[colon - cfg->listen] = '\0';
    if (!strcmp(host, "0.0.0.0") || !host[0])
        snprintf(host, sizeof(host), "127.0.0.1");
    struct mg_connection *conn =
        mg_download(host, atoi(colon + 1), 0, ebuf, sizeof(ebuf), "GET /api/fleet HTTP/1.0\r\nHost: %s\r\n\r\n", host);
    if (!conn)
        return -1;
    long trucks = -1;
    const struct mg_response_info *ri = mg_get_response_info(conn);
    size_t n = 0;
    int r;
    while (n < sizeof(body) - 1 && (r = mg_read(conn, body + n, sizeof(body) - 1 - n)) > 0)
        n += (size_t)r;
    if (ri && ri->status_code == 200) {
        json_t *j = json_loadb(body, n, 0, NULL);
        json_t *t = json_object_get(j, "trucks");
        if (json_is_integer(t))
            trucks = (long)json_integer_value(t);
        json_decref(j);
    }
    mg_close_connection(conn);
    return trucks;
}

/* The sum over partitions of a topic's end offsets, as the groups of r saw
 * them (each partition once); -1 when none is known. */
static int64_t topic_end_sum(const struct status_report *r, const char *topic)
{
    int64_t sum = -1;
    int32_t seen[256];
    int nseen = 0;
    for (size_t i = 0; i < r->group_count; i++) {
        const struct status_group *g = &r->groups[i];
        for (size_t j = 0; j < g->count; j++) {
            const struct status_part *p = &g->parts[j];
            if (strcmp(p->topic, topic) != 0 || p->end < 0)
                continue;
            int dup = 0;
            for (int k = 0; k < nseen; k++)
                dup |= seen[k] == p->partition;
            if (dup || nseen == (int)(sizeof(seen) / sizeof(seen[0])))
                continue;
            seen[nseen++] = p->partition;
            sum = (sum < 0 ? 0 : sum) + p->end;
        }
    }
    return sum;
}

struct line_state {
    int64_t telemetry_end, at_ms;
};

/* "trucks 200 · 19 msg/s · lag dashboard 0, detector 0, history 3, billing 0 ·
 * alerts 4 records", from one status refresh and the dashboard. */
static void status_line(struct status_probe *probe, const struct fs_config *cfg, struct line_state *ls, char *out,
                        size_t size)
{
    struct status_report r;
    char topic[512];
    size_t n = 0;
    status_probe_refresh(probe, &r);
    long trucks = fleet_trucks(cfg);
    if (trucks >= 0)
        n += (size_t)snprintf(out + n, size - n, "trucks %ld", trucks);
    else
        n += (size_t)snprintf(out + n, size - n, "trucks ?");
    snprintf(topic, sizeof(topic), "%s%s", cfg->topic_prefix, TOPIC_TELEMETRY);
    int64_t end = topic_end_sum(&r, topic), now = fs_mono_ms();
    if (end >= 0 && ls->telemetry_end >= 0 && now > ls->at_ms && end >= ls->telemetry_end)
        n += (size_t)snprintf(out + n, size - n, " | %.0f msg/s",
                              (double)(end - ls->telemetry_end) * 1000.0 / (double)(now - ls->at_ms));
    ls->telemetry_end = end;
    ls->at_ms = now;
    if (r.kafka_error[0]) {
        n += (size_t)snprintf(out + n, size - n, " | Kafka: not answering");
    } else {
        n += (size_t)snprintf(out + n, size - n, " | lag");
        for (size_t i = 0; i < r.group_count && n < size; i++) {
            const char *g = r.groups[i].name;
            if (strncmp(g, "fleetsync-", 10) != 0)
                continue;
            if (r.groups[i].lag >= 0)
                n += (size_t)snprintf(out + n, size - n, " %s %lld", g + 10, (long long)r.groups[i].lag);
            else
                n += (size_t)snprintf(out + n, size - n, " %s ?", g + 10);
        }
        snprintf(topic, sizeof(topic), "%s%s", cfg->topic_prefix, TOPIC_ALERTS);
        int64_t alerts = topic_end_sum(&r, topic);
        if (alerts >= 0 && n < size)
            n += (size_t)snprintf(out + n, size - n, " | alert records %lld", (long long)alerts);
    }
    for (int i = 0; i < r.service_count && n < size; i++)
        if (!r.services[i].healthy)
            n += (size_t)snprintf(out + n, size - n, " | %s DOWN", r.services[i].name);
    status_report_release(&r);
}

/* The demo's incidents, unless --scenario or --no-incidents: within the
 * first two minutes one truck's position jumps 400 km and another drives at
 * 125 km/h for three minutes, and from minute 1 a third stands with its
 * engine running, which the theft rule reports at its 20th minute.  So whoever
 * runs 'make demo' sees the intelligence pipeline on the map within minutes. */
static const char demo_incidents[] =
    "{\"truck_id\":\"TRK-000001\",\"rule\":\"gps_jump\",\"at_s\":20,\"km\":400}\n"
    "{\"truck_id\":\"TRK-000002\",\"rule\":\"overspeed\",\"at_s\":45,\"duration_s\":180,\"speed_kmh\":125}\n"
    "{\"truck_id\":\"TRK-000003\",\"rule\":\"stationary_engine_on\",\"at_s\":60,\"duration_s\":1800}\n";
#define DEMO_INCIDENT_TRUCKS 3

/* Writes demo_incidents to DATA_DIR/demo-incidents.jsonl for the simulator.
 * Returns 0, or -1 (said why). */
static int write_demo_incidents(const char *data_dir, char *path, size_t size)
{
    snprintf(path, size, "%s/demo-incidents.jsonl", data_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    size_t len = sizeof(demo_incidents) - 1;
    ssize_t n = write(fd, demo_incidents, len);
    int saved = errno;
    close(fd);
    if (n != (ssize_t)len) {
        log_error("cannot write %s: %s", path, n < 0 ? strerror(saved) : "short write");
        return -1;
    }
    return 0;
}

/* Waits up to ms for a stop request; returns 1 if one came. */
static int wait_stop(int ms)
{
    struct pollfd p = {.fd = sig_fd(), .events = POLLIN};
    if (!sig_stopping())
        poll(&p, 1, ms);
    return sig_stopping();
}

static int opt_kafka_brokers(void *value, const char *arg, char *err, size_t err_size)
{
    if (strcmp(arg, "1") != 0 && strcmp(arg, "3") != 0) {
        snprintf(err, err_size, "is 1 or 3");
        return -1;
    }
    *(int *)value = atoi(arg);
    return 0;
}

static int opt_metrics_base(void *value, const char *arg, char *err, size_t err_size)
{
    long v;
    if (cfg_parse_long(arg, -1, 65535 - 7, &v) != 0 || v == 0) {
        snprintf(err, err_size, "is a port number (1-65528), or -1");
        return -1;
    }
    *(int *)value = (int)v;
    return 0;
}

/* The MQTT edge (--edge; without it the data dir's choice, else the ingest
 * in a new data dir): the bridge behind Mosquitto, or the ingest on the MQTT
 * port (127.0.0.1, as Mosquitto listens), with a TLS listener on the TLS
 * port (D/run/mqtt-tls, else the MQTT port + 53) when the data dir has the
 * broker's certificate (D/tls/, services start --tls).  The ingest reads the
 * trucks' accounts of D/mqtt/ itself.  Returns 0, or 2 (said why). */
static int up_edge(const struct fs_config *cfg, struct svc_options *opt)
{
    if (edge == SVC_EDGE_KEEP) {
        /* The data dir's choice; a data dir whose Mosquitto ran before
         * (its persistence may hold the bridge's queued readings) keeps it;
         * a new one gets the ingest. */
        char path[PATH_MAX + 32];
        snprintf(path, sizeof(path), "%s/mqtt-edge", cfg->data_dir);
        int saved = access(path, F_OK) == 0;
        snprintf(path, sizeof(path), "%s/mosquitto", cfg->data_dir);
        if (saved)
            edge = svc_edge_saved(cfg->data_dir);
        else if (access(path, F_OK) == 0)
            edge = SVC_EDGE_MOSQUITTO;
        else
            edge = SVC_EDGE_INGEST;
        if (!saved && edge == SVC_EDGE_MOSQUITTO)
            log_info("%s ran Mosquitto before: keeping Mosquitto + bridge as the MQTT edge (--edge ingest "
                     "switches)",
                     cfg->data_dir);
    }
    opt->edge = edge;
    if (edge != SVC_EDGE_INGEST)
        return 0;
    static char listen[32], tls_listen[32];
    mqtt_port = opt->ports.mqtt;
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", mqtt_port);
    child_named("bridge")->off = 1;
    child_named("ingest")->off = 0;
    child_arg("ingest", "--listen", listen);
    /* The ingest acknowledges a reading once Kafka has it, not at once as
     * Mosquitto does: with the simulator's default of 100 readings in
     * flight per truck, a backfill's (--speedup 0) trucks would run up to
     * 100 readings (1,000 s at 10 s) apart in truck-telemetry, which
     * detect's offline rule (10 minutes of a partition's time) takes for
     * trucks gone silent.  10 keeps them within 100 s. */
    child_arg("sim", "--max-inflight", "10");
    char crt[PATH_MAX + 32], key[PATH_MAX + 32];
    snprintf(crt, sizeof(crt), "%s/tls/server.crt", cfg->data_dir);
    snprintf(key, sizeof(key), "%s/tls/server.key", cfg->data_dir);
    if (access(crt, R_OK) == 0 && access(key, R_OK) == 0) {
        tls_port = mqa_tls_port(cfg->data_dir);
        if (!tls_port)
            tls_port = mqtt_port + 53;
        if (tls_port > 65535) {
            fprintf(stderr, "fleetsync up: MQTT port %d + 53 is no port for the ingest's TLS listener\n", mqtt_port);
            return 2;
        }
        snprintf(tls_listen, sizeof(tls_listen), "127.0.0.1:%d", tls_port);
        child_arg("ingest", "--tls", tls_listen);
    }
    return 0;
}

/* D/run/mqtt-tls names the ingest's TLS port to the data dir's clients
 * (core/mqttauth.h); D/run/ingest-metrics its metrics port to fleetsync
 * status.  Written once the services are up, removed when up stops.
 * Returns 0, or -1 (said why). */
static int up_edge_files(const struct fs_config *cfg, int on)
{
    char text[32];
    if (edge != SVC_EDGE_INGEST)
        return 0;
    if (!on) {
        nf_unlink(cfg->data_dir, "run/ingest-metrics");
        if (tls_port)
            nf_unlink(cfg->data_dir, "run/mqtt-tls");
        return 0;
    }
    if (tls_port) {
        snprintf(text, sizeof(text), "mqtts=%d\n", tls_port);
        if (nf_write(cfg->data_dir, "run/mqtt-tls", text, strlen(text), 0644, (uid_t)-1, (gid_t)-1) != 0) {
            log_error("cannot write %s/run/mqtt-tls: %s", cfg->data_dir, strerror(errno));
            return -1;
        }
    }
    if (metrics_base > 0) {
        snprintf(text, sizeof(text), "%d\n", metrics_base + child_named("ingest")->metrics_off);
        if (nf_write(cfg->data_dir, "run/ingest-metrics", text, strlen(text), 0644, (uid_t)-1, (gid_t)-1) != 0) {
            log_error("cannot write %s/run/ingest-metrics: %s", cfg->data_dir, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* What up's command line asks for besides cfg and opt. */
struct up_args {
    int trucks, interval_s, check_s, no_sim, no_incidents;
    const char *scenario, *geofences, *start, *speedup, *notify_routes;
};

/* Runs `fleetsync notify --check --routes path`, which prints what the file
 * routes, or what is wrong with it.  Returns its exit status (0: good). */
static int notify_check(const char *path)
{
    char exe[PATH_MAX];
    if (proc_self_path(exe, sizeof(exe)) != 0)
        return 1;
    const char *argv[] = {exe, "notify", "--check", "--routes", path, NULL};
    struct proc_spec spec = {.path = exe, .argv = (char *const *)argv, .log_fd = -1, .stdin_null = 1};
    pid_t pid;
    int st;
    if (proc_spawn(&spec, &pid) != 0 || proc_wait(pid, &st) != 0)
        return 1;
    return proc_exit_code(st);
}

/* Decides whether notify runs: with --notify-routes F, or when
 * DATA_DIR/notify.json exists, after checking the file.  Returns 0, or 2
 * (said why: an unreadable or bad file). */
static int up_notify_routes(const struct fs_config *cfg, const struct up_args *a)
{
    if (a->notify_routes)
        snprintf(notify_routes, sizeof(notify_routes), "%s", a->notify_routes);
    else if (snprintf(notify_routes, sizeof(notify_routes), "%s/notify.json", cfg->data_dir) > 0 &&
             access(notify_routes, F_OK) != 0)
        return 0; /* no routes file: no notify */
    if (access(notify_routes, R_OK) != 0) {
        fprintf(stderr, "fleetsync up: cannot read the routes file %s: %s\n", notify_routes, strerror(errno));
        return 2;
    }
    if (notify_check(notify_routes) != 0) {
        fprintf(stderr, "fleetsync up: %s is not a good routes file (above); fix it%s\n", notify_routes,
                a->notify_routes ? "" : " or move it away to run without notify");
        return 2;
    }
    for (int i = 0; i < nchildren; i++)
        if (strcmp(children[i].name, "notify") == 0)
            children[i].off = 0;
    return 0;
}

/* Reads the command line into cfg, opt and a, and hands the simulator's and
 * the detector's options to their children.  Returns -1 when up is to run,
 * else the exit status (0 after --help, 2 after a usage error). */
static int up_parse(int argc, char **argv, struct fs_config *cfg, struct svc_options *opt, struct up_args *a)
{
    const struct opt opts[] = {
        OPT_INTEGER("trucks", "N", &a->trucks, 1, 10000000, "simulated trucks (default 1000)"),
        OPT_INTEGER("interval", "S", &a->interval_s, 1, 86400,
                    "seconds between two readings of a simulated truck (default 10)"),
        OPT_STR("scenario", "F", &a->scenario,
                "incidents for the simulator to inject (docs/sim.md); without it\n"
                "three trucks misbehave early, so alerts show within minutes"),
        OPT_BOOLEAN("no-incidents", &a->no_incidents, "a quiet fleet: no incidents unless --scenario gives some"),
        OPT_STR("geofences", "F", &a->geofences, "GeoJSON fences, for the simulator and the detector"),
        OPT_STR("start", "T", &a->start, "simulated clock start (ISO 8601 or now-2h), with --speedup X"),
        OPT_STR("speedup", "X", &a->speedup, "run the simulated clock X times faster until it reaches now"),
        OPT_BOOLEAN("no-sim", &a->no_sim, "no simulator: real trucks publish to the MQTT broker"),
        OPT_CB("kafka-brokers", "N", &opt->kafka_brokers, opt_kafka_brokers,
               "1 (default) or 3: a local 3-broker Kafka cluster (docs/cluster.md);\n"
               "the data dir remembers it"),
        OPT_CB("edge", "ingest|mosquitto", &edge, svc_edge_option,
               "what takes the trucks' MQTT: ingest (default in a new data dir):\n"
               "'fleetsync ingest' on the MQTT port, PUBACK once Kafka has the\n"
               "reading, TLS on the TLS port when DATA_DIR/tls/ has certificates,\n"
               "no Mosquitto; mosquitto: the embedded Mosquitto and 'fleetsync\n"
               "bridge' (a data dir where Mosquitto ran keeps it).  The data dir\n"
               "remembers the choice (docs/up.md)"),
        OPT_CB("metrics-base", "N", &metrics_base, opt_metrics_base,
               "metrics ports: bridge N+1, history N+2, detect N+3, billing\n"
               "N+4, simulator N+5, notify N+6, ingest N+7 (default 9100; -1: no\n"
               "metrics endpoints)"),
        OPT_STR("notify-routes", "F", &a->notify_routes,
                "run 'fleetsync notify' with this routes file (default: when\n"
                "DATA_DIR/notify.json exists; docs/notify.md)"),
        OPT_INTEGER("check-interval", "S", &a->check_s, 1, 86400, "seconds between health checks (default 5)"),
        OPT_END_MARK,
    };
    const struct opt_command cmd = {
        .no_args = 1,
        .name = "up",
        .usage = "fleetsync up [options]",
        .about = up_about,
        .opts = opts,
        .shared = 1,
    };
    char err[512];
    int rest, rc;

    if (opt_parse_or_leave(&cmd, cfg, argc, argv, &rest, &rc))
        return rc;
    /* The simulator checks --scenario, --start and --speedup (and says what
     * is wrong) when it starts; a file must exist now, as the children run
     * from the same place. */
    if (a->scenario && access(a->scenario, R_OK) != 0) {
        fprintf(stderr, "fleetsync up: cannot read --scenario %s: %s\n", a->scenario, strerror(errno));
        return 2;
    }
    if (a->geofences && access(a->geofences, R_OK) != 0) {
        fprintf(stderr, "fleetsync up: cannot read --geofences %s: %s\n", a->geofences, strerror(errno));
        return 2;
    }
    if (svc_ports_from_config(cfg, &opt->ports, err, sizeof(err)) != 0) {
        fprintf(stderr, "fleetsync up: %s\n", err);
        return 2;
    }
    if (up_notify_routes(cfg, a) != 0 || up_edge(cfg, opt) != 0)
        return 2;
    snprintf(sim_trucks, sizeof(sim_trucks), "%d", a->trucks);
    snprintf(sim_interval, sizeof(sim_interval), "%d", a->interval_s);
    if (a->scenario)
        child_arg("sim", "--scenario", a->scenario);
    if (a->start)
        child_arg("sim", "--start", a->start);
    if (a->speedup)
        child_arg("sim", "--speedup", a->speedup);
    if (a->geofences) {
        child_arg("sim", "--geofences", a->geofences);
        child_arg("detect", "--geofences", a->geofences);
    }
    if (a->no_sim)
        nchildren--; /* the simulator is last */
    return -1;
}

int cmd_up(int argc, char **argv)
{
    struct fs_config cfg;
    struct svc_options opt = {.timeout_s = 120};
    struct up_args a = {.trucks = 1000, .interval_s = 10, .check_s = 5};
    int rc, check_s, no_sim, incidents;

    cfg_init(&cfg);
    cfg.kafka_user = KA_USER_ADMIN;
    if ((rc = up_parse(argc, argv, &cfg, &opt, &a)) >= 0)
        goto out;
    check_s = a.check_s;
    no_sim = a.no_sim;
    incidents = !a.scenario && !a.no_incidents;
    sig_install();
    mg_init_library(0);
    rc = 1;
    if (svc_start(&cfg, &opt) != 0)
        goto done;
    if (up_edge_files(&cfg, 1) != 0) {
        svc_stop(&cfg, 60);
        goto done;
    }
    static char incidents_path[PATH_MAX + 32];
    if (!no_sim && incidents && atol(sim_trucks) >= DEMO_INCIDENT_TRUCKS) {
        if (write_demo_incidents(cfg.data_dir, incidents_path, sizeof(incidents_path)) != 0) {
            svc_stop(&cfg, 60);
            goto done;
        }
        child_arg("sim", "--scenario", incidents_path);
    }
    char data_dir[PATH_MAX];
    if (!realpath(cfg.data_dir, data_dir))
        snprintf(data_dir, sizeof(data_dir), "%s", cfg.data_dir);
    /* On a cluster the children get every broker, so that they start even
     * while the first one is down (unless --brokers named a list). */
    static char bootstrap[512];
    if (!strchr(cfg.brokers, ',') && svc_kafka_bootstrap(&cfg, bootstrap, sizeof(bootstrap)) > 1)
        cfg.brokers = bootstrap;

    char sim_line[256], edge_line[256], notify_line[PATH_MAX + 64], mqtt_shown[CFG_MASKED_MAX],
        pg_shown[CFG_MASKED_MAX];
    if (notify_routes_on())
        snprintf(notify_line, sizeof(notify_line), "alerts to webhooks, routes %s", notify_routes);
    else
        snprintf(notify_line, sizeof(notify_line), "off: no %s/notify.json (docs/notify.md)", data_dir);
    char tls_part[64] = "";
    if (tls_port)
        snprintf(tls_part, sizeof(tls_part), " and TLS on 127.0.0.1:%d", tls_port);
    if (edge == SVC_EDGE_INGEST)
        snprintf(edge_line, sizeof(edge_line),
                 "ingest      MQTT -> Kafka on 127.0.0.1:%d%s, PUBACK once Kafka has a reading", mqtt_port, tls_part);
    else
        snprintf(edge_line, sizeof(edge_line), "bridge      MQTT -> Kafka");
    if (!no_sim)
        snprintf(sim_line, sizeof(sim_line), "%s trucks, one reading each every %s s (--no-sim for real trucks)%s",
                 sim_trucks, sim_interval,
                 incidents_path[0] ? ";\n              TRK-000001..3 misbehave: alerts from about minute 3 "
                                     "(--no-incidents for a quiet fleet)"
                                   : "");
    else
        snprintf(sim_line, sizeof(sim_line), "off (--no-sim): real trucks publish to the broker");
    printf("\nFleetSync is up.\n"
           "  MQTT        %s   (publish telemetry to fleet/trucks/{id}/telemetry)\n"
           "  Kafka       %s   (topics %struck-telemetry, truck-status, truck-alerts, truck-*-dlq)\n"
           "  PostgreSQL  %s   (its password: %s/" PG_PASSFILE "; psql needs PGPASSFILE=%s/" PG_PASSFILE ")\n"
           "  data, logs  %s\n"
           "  %s (logs of every process in %s/log/)\n"
           "  dashboard   http://%s/   (the live map)\n"
           "  history     every reading into PostgreSQL: fleetsync report avg-speed --fleet --since 1d\n"
           "  billing     per truck and day: fleetsync report invoice --month YYYY-MM --rate-per-km X\n"
           "  detect      alerts into %struck-alerts (and on the map)\n"
           "  notify      %s\n"
           "  simulator   %s\n"
           "Ctrl-C stops everything.\n\n",
           cfg_mask_secrets(cfg.mqtt, mqtt_shown, sizeof(mqtt_shown)), cfg.brokers, cfg.topic_prefix,
           cfg_mask_secrets(cfg.pg, pg_shown, sizeof(pg_shown)), data_dir, data_dir, data_dir, edge_line, data_dir,
           cfg.listen, cfg.topic_prefix, notify_line, sim_line);
    fflush(stdout);
    if (up_export_secrets(&cfg) != 0) {
        log_error("cannot pass the endpoints to the services: %s", strerror(errno));
        goto done;
    }

    int backoff_s = 1, tty = isatty(STDOUT_FILENO);
    time_t started = time(NULL), last_check = 0, last_line = 0;
    struct status_probe *probe = status_probe_new(&cfg, 3000);
    sim_probe = probe;
    struct line_state ls = {.telemetry_end = -1};
    opt.quiet = 1;
    children_tick(&cfg);
    while (!wait_stop(1000)) {
        children_tick(&cfg);
        if (time(NULL) - last_check < check_s)
            continue;
        last_check = time(NULL);
        struct svc_state st[SVC_COUNT];
        if (svc_probe(&cfg, st) != 0)
            continue;
        int down = 0;
        char line[512];
        size_t n = 0;
        for (int i = 0; i < SVC_COUNT; i++) {
            if (st[i].off)
                continue; /* Mosquitto when the ingest is the edge */
            n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s %s", n ? ", " : "", st[i].name,
                                  st[i].healthy ? "ok"
                                  : st[i].pid   ? "unhealthy"
                                                : "DOWN");
            down |= !st[i].pid || st[i].brokers_running < st[i].brokers; /* a cluster's dead broker too */
        }
        for (int i = 0; i < NCHILDREN && n < sizeof(line); i++)
            if (!children[i].pid && !children[i].off)
                n += (size_t)snprintf(line + n, sizeof(line) - n, ", %s RESTARTING", children[i].name);
        long up_s = (long)(time(NULL) - started);
        char facts[768];
        if (probe && !down) {
            status_line(probe, &cfg, &ls, facts, sizeof(facts));
            /* One line, rewritten in place on a terminal; every 30 s in a log. */
            if (tty) {
                printf("\r\033[K[%02ld:%02ld:%02ld] %s | %s", up_s / 3600, up_s / 60 % 60, up_s % 60, facts, line);
                fflush(stdout);
            } else if (time(NULL) - last_line >= 30) {
                printf("[%02ld:%02ld:%02ld] %s | %s\n", up_s / 3600, up_s / 60 % 60, up_s % 60, facts, line);
                fflush(stdout);
                last_line = time(NULL);
            }
        }
        if (down) {
            if (tty)
                printf("\n");
            log_warn("%s; restarting in %d s", line, backoff_s);
            if (wait_stop(backoff_s * 1000))
                break;
            if (svc_start(&cfg, &opt) == 0) {
                log_info("services restarted");
                backoff_s = 1;
            } else if (backoff_s < 60) {
                backoff_s *= 2;
            }
        }
    }
    if (tty)
        printf("\n");
    sim_probe = NULL;
    status_probe_free(probe);
    log_info("stopping");
    children_stop();
    up_edge_files(&cfg, 0);
    rc = svc_stop(&cfg, 60);
done:
    mg_exit_library();
out:
    cfg_release(&cfg);
    return rc;
}
