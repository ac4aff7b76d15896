/*
 * status.c - `fleetsync status`: services, consumer groups, lag and rates.
 *
 * One refresh builds a struct status_report (status.h) from three sources:
 *  - the services: the same probes as `services status`, also for endpoints
 *    this data dir did not start (pid 0);
 *  - Kafka: every group named fleetsync-... (and each --group), its members
 *    (DescribeConsumerGroups), committed offsets (ListConsumerGroupOffsets)
 *    and the partitions' watermarks;
 *  - PostgreSQL, when reachable: sink_offsets, where the exactly-once sinks
 *    keep their positions; for those groups the stored next_offset is the
 *    position and updated_at the last commit.
 * The rate is how far the positions moved between two samples: a first one
 * 1 s before the report, or the previous refresh under --watch.
 *
 * A source that does not answer leaves its part of the report unknown; the
 * command says so on stderr, still prints what it knows and exits 1.
 */
#include "admin/status.h"

#include "core/groups.h"
#include "admin/admin.h"
#include "admin/replay.h"
#include "core/clock.h"
#include "stack/services.h"

#include "core/config.h"
#include "core/grow.h"
#include "core/kafka.h"
#include "core/kafkaauth.h"
#include "core/log.h"
#include "core/opts.h"
#include "core/pg.h"
#include "core/sinkoffsets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --- pure logic (status.h) --------------------------------------------- */

int64_t status_lag(int64_t committed, int64_t low, int64_t end)
{
    if (end < 0)
        return STATUS_UNKNOWN;
    int64_t from = committed >= 0 ? committed : low >= 0 ? low : 0;
    return end > from ? end - from : 0;
}

static const struct status_part *find_part(const struct status_group *g, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < g->count; i++)
        if (g->parts[i].partition == partition && strcmp(g->parts[i].topic, topic) == 0)
            return &g->parts[i];
    return NULL;
}

double status_rate_per_s(const struct status_group *before, const struct status_group *after, int64_t interval_ms)
{
    if (!before || interval_ms <= 0)
        return -1;
    int64_t moved = 0;
    for (size_t i = 0; i < after->count; i++) {
        const struct status_part *a = &after->parts[i];
        const struct status_part *b = find_part(before, a->topic, a->partition);
        if (b && b->committed >= 0 && a->committed > b->committed)
            moved += a->committed - b->committed;
    }
    return (double)moved * 1000.0 / (double)interval_ms;
}

int status_group_selected(const char *group, const char *const *named, size_t named_count)
{
    if (strncmp(group, "fleetsync-", 10) == 0)
        return 1;
    for (size_t i = 0; i < named_count; i++)
        if (strcmp(group, named[i]) == 0)
            return 1;
    return 0;
}

struct status_group *status_report_group(struct status_report *r, const char *name, int create)
{
    for (size_t i = 0; i < r->group_count; i++)
        if (strcmp(r->groups[i].name, name) == 0)
            return &r->groups[i];
    if (!create)
        return NULL;
    if (grow_one(&r->groups, &r->group_cap, r->group_count, sizeof(*r->groups), 8) != 0)
        return NULL;
    struct status_group *g = &r->groups[r->group_count++];
    memset(g, 0, sizeof(*g));
    snprintf(g->name, sizeof(g->name), "%s", name);
    g->members = STATUS_UNKNOWN;
    g->lag = STATUS_UNKNOWN;
    g->rate = -1;
    g->last_commit_ms = STATUS_UNKNOWN;
    return g;
}

struct status_part *status_group_part(struct status_group *g, const char *topic, int32_t partition, int create)
{
    const struct status_part *found = find_part(g, topic, partition);
    if (found)
        return &g->parts[found - g->parts];
    if (!create)
        return NULL;
    if (grow_one(&g->parts, &g->cap, g->count, sizeof(*g->parts), 16) != 0)
        return NULL;
    struct status_part *p = &g->parts[g->count++];
    memset(p, 0, sizeof(*p));
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->partition = partition;
    p->committed = p->low = p->end = p->lag = STATUS_UNKNOWN;
    return p;
}

static int part_cmp(const void *a, const void *b)
{
    const struct status_part *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

void status_group_finish(struct status_group *g)
{
    if (g->count > 1)
        qsort(g->parts, g->count, sizeof(g->parts[0]), part_cmp);
    g->lag = STATUS_UNKNOWN;
    for (size_t i = 0; i < g->count; i++) {
        struct status_part *p = &g->parts[i];
        p->lag = status_lag(p->committed, p->low, p->end);
        if (p->lag >= 0)
            g->lag = (g->lag < 0 ? 0 : g->lag) + p->lag;
    }
}

static int group_cmp(const void *a, const void *b)
{
    return strcmp(((const struct status_group *)a)->name, ((const struct status_group *)b)->name);
}

void status_report_sort(struct status_report *r)
{
    if (r->group_count > 1)
        qsort(r->groups, r->group_count, sizeof(r->groups[0]), group_cmp);
}

void status_report_release(struct status_report *r)
{
    for (size_t i = 0; i < r->group_count; i++)
        free(r->groups[i].parts);
    free(r->groups);
    r->groups = NULL;
    r->group_count = r->group_cap = 0;
}

int status_exit_code(const struct status_report *r)
{
    if (r->kafka_error[0])
        return 1;
    for (int i = 0; i < r->service_count; i++)
        if (!r->services[i].healthy)
            return 1;
    return 0;
}

int status_ingest_add(struct status_ingest *in, const char *text)
{
    static const char *const names[] = {"fleetsync_ingest_connections", "fleetsync_ingest_readings_total",
                                        "fleetsync_ingest_acknowledged_total", "fleetsync_ingest_kafka_paused_seconds"};
    double *dst[] = {&in->connections, &in->readings, &in->acknowledged, &in->paused_s};
    int found = 0;
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        for (int i = 0; i < 4; i++) {
            size_t n = strlen(names[i]);
            if (strncmp(line, names[i], n) == 0 && line[n] == ' ') {
                *dst[i] += strtod(line + n + 1, NULL);
                found |= i == 0;
            }
        }
    }
    return found;
}

static json_t *json_offset(int64_t v)
{
    return v >= 0 ? json_integer((json_int_t)v) : json_null();
}

static const char *store_name(enum status_store s)
{
    return s == STATUS_STORE_PG ? "postgresql" : "kafka";
}

char *status_json(const struct status_report *r)
{
    json_t *root = json_object(), *services = json_array(), *groups = json_array();
    char *s = NULL;
    if (!root || !services || !groups) {
        json_decref(services);
        json_decref(groups);
        goto out;
    }
    json_object_set_new(root, "services", services);
    json_object_set_new(root, "groups", groups);
    for (int i = 0; i < r->service_count; i++) {
        const struct status_service *sv = &r->services[i];
        json_array_append_new(services, json_pack("{s:s, s:i, s:i, s:b}", "name", sv->name, "pid", sv->pid, "port",
                                                  sv->port, "healthy", sv->healthy));
    }
    for (size_t i = 0; i < r->group_count; i++) {
        const struct status_group *g = &r->groups[i];
        json_t *parts = json_array();
        for (size_t j = 0; parts && j < g->count; j++) {
            const struct status_part *p = &g->parts[j];
            json_array_append_new(parts, json_pack("{s:s, s:i, s:o, s:o, s:o}", "topic", p->topic, "partition",
                                                   (int)p->partition, "committed", json_offset(p->committed), "end",
                                                   json_offset(p->end), "lag", json_offset(p->lag)));
        }
        char ts[32];
        json_t *o = json_pack(
            "{s:s, s:o, s:o, s:o, s:s, s:o, s:o}", "group", g->name, "members",
            g->members >= 0 ? json_integer(g->members) : json_null(), "lag", json_offset(g->lag), "partitions",
            parts ? parts : json_array(), "store", store_name(g->store), "rate",
            g->rate >= 0 ? json_real((double)(int64_t)(g->rate * 10 + 0.5) / 10) : json_null(), "last_commit",
            g->last_commit_ms >= 0 ? json_string(pg_format_ts(g->last_commit_ms, ts, sizeof(ts))) : json_null());
        if (!o)
            goto out;
        json_array_append_new(groups, o);
    }
    if (r->ingest.workers)
        json_object_set_new(root, "ingest",
                            json_pack("{s:i, s:i, s:f, s:f, s:f, s:f}", "metrics_port", r->ingest.first_port, "workers",
                                      r->ingest.workers, "connections", r->ingest.connections, "readings",
                                      r->ingest.readings, "acknowledged", r->ingest.acknowledged, "kafka_paused_s",
                                      r->ingest.paused_s));
    if (r->kafka_error[0])
        json_object_set_new(root, "kafka_error", json_string(r->kafka_error));
    s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
out:
    json_decref(root);
    return s;
}

static void fmt_offset(int64_t v, char *buf, size_t size)
{
    if (v >= 0)
        snprintf(buf, size, "%" PRId64, v);
    else
        snprintf(buf, size, "-");
}

void status_print_table(FILE *out, const struct status_report *r)
{
    fprintf(out, "%-10s %8s %6s  %s\n", "SERVICE", "PID", "PORT", "HEALTH");
    for (int i = 0; i < r->service_count; i++) {
        const struct status_service *sv = &r->services[i];
        char pid[16];
        if (sv->pid)
            snprintf(pid, sizeof(pid), "%d", sv->pid);
        else
            snprintf(pid, sizeof(pid), "external");
        fprintf(out, "%-10s %8s %6d  %s\n", sv->name, pid, sv->port, sv->healthy ? "healthy" : "DOWN");
    }
    const struct status_ingest *in = &r->ingest;
    if (in->workers) {
        fprintf(out, "\n%-10s %8s %11s %12s %12s %9s  %s\n", "INGEST", "WORKERS", "CONNECTIONS", "READINGS",
                "ACKNOWLEDGED", "PAUSED_S", "METRICS");
        fprintf(out, "%-10s %8d %11.0f %12.0f %12.0f %9.1f  127.0.0.1:%d", "ingest", in->workers, in->connections,
                in->readings, in->acknowledged, in->paused_s, in->first_port);
        if (in->workers > 1)
            fprintf(out, "..%d", in->first_port + in->workers - 1);
        fprintf(out, "\n");
    }
    if (r->kafka_error[0])
        fprintf(out, "\nKafka: %s\n", r->kafka_error);
    fprintf(out, "\n");
    if (r->group_count == 0) {
        fprintf(out, "no consumer groups\n");
        return;
    }
    int w = 20;
    for (size_t i = 0; i < r->group_count; i++)
        if ((int)strlen(r->groups[i].name) > w)
            w = (int)strlen(r->groups[i].name);
    fprintf(out, "%-*s %7s %10s %9s  %-10s  %s\n", w, "GROUP", "MEMBERS", "LAG", "MSG/S", "STORE", "LAST COMMIT");
    for (size_t i = 0; i < r->group_count; i++) {
        const struct status_group *g = &r->groups[i];
        char members[16], lag[24], rate[24], last[32];
        if (g->members >= 0)
            snprintf(members, sizeof(members), "%d", g->members);
        else
            snprintf(members, sizeof(members), "?");
        fmt_offset(g->lag, lag, sizeof(lag));
        if (g->rate >= 0)
            snprintf(rate, sizeof(rate), "%.1f", g->rate);
        else
            snprintf(rate, sizeof(rate), "-");
        if (g->last_commit_ms >= 0)
            pg_format_ts(g->last_commit_ms, last, sizeof(last));
        else
            snprintf(last, sizeof(last), "-");
        fprintf(out, "%-*s %7s %10s %9s  %-10s  %s\n", w, g->name, members, lag, rate, store_name(g->store), last);
        if (g->who[0])
            fprintf(out, "    members: %s\n", g->who);
        int tw = 5;
        for (size_t j = 0; j < g->count; j++)
            if ((int)strlen(g->parts[j].topic) > tw)
                tw = (int)strlen(g->parts[j].topic);
        if (g->count)
            fprintf(out, "    %-*s %5s %12s %12s %10s\n", tw, "TOPIC", "PART", "COMMITTED", "END", "LAG");
        for (size_t j = 0; j < g->count; j++) {
            const struct status_part *p = &g->parts[j];
            char c[24], e[24], l[24];
            fmt_offset(p->committed, c, sizeof(c));
            fmt_offset(p->end, e, sizeof(e));
            fmt_offset(p->lag, l, sizeof(l));
            fprintf(out, "    %-*s %5d %12s %12s %10s\n", tw, p->topic, (int)p->partition, c, e, l);
        }
    }
}

/* --- gathering the facts ------------------------------------------------- */

/* The most --group options status takes. */
#define STATUS_MAX_NAMED 256

struct status_ctx {
    struct fs_config cfg;
    const char **named; /* --group, repeatable */
    size_t named_count;
    int timeout_ms;
    int ingest_port; /* the ingest's (first worker's) metrics port; -1: not looked at */
    rd_kafka_t *rk;  /* NULL until Kafka answered once */
};

/* GET /metrics from 127.0.0.1:port into buf (NUL-terminated); 0, or -1
 * when nothing answers there within a second. */
static int http_metrics(int port, char *buf, size_t size)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = -1;
    struct timeval tv = {.tv_sec = 1};
    size_t len = 0;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    static const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) < 0)
        goto out;
    for (;;) {
        ssize_t k = len + 1 < size ? recv(fd, buf + len, size - 1 - len, 0) : 0;
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    rc = len ? 0 : -1;
out:
    buf[len] = '\0';
    close(fd);
    return rc;
}

/* The ingest's metrics: its port, then port + 1, ... (one per worker of
 * --workers N) while an ingest answers. */
static void gather_ingest(struct status_ctx *c, struct status_report *r)
{
    enum { BUF = 256 * 1024, MAX_WORKERS = 256 };
    if (c->ingest_port <= 0)
        return;
    char *buf = malloc(BUF);
    if (!buf)
        return;
    r->ingest.first_port = c->ingest_port;
    for (int i = 0; i < MAX_WORKERS && c->ingest_port + i <= 65535; i++) {
        if (http_metrics(c->ingest_port + i, buf, BUF) != 0 || !status_ingest_add(&r->ingest, buf))
            break;
        r->ingest.workers++;
    }
    free(buf);
}

static void pg_quiet(void *arg, const char *message)
{
    (void)arg;
    log_debug("postgresql: %.*s", (int)strcspn(message, "\n"), message);
}

/* gather_pg()'s reading: where the rows go. */
struct pg_rows {
    const struct status_ctx *c;
    struct status_report *r;
};

/* One sink_offsets row of a group in scope: its position and last commit.
 * Stops (quietly) when the report cannot take it. */
static int pg_row(void *ctx, const struct sinkoff_row *row, char *err, size_t err_size)
{
    const struct status_ctx *c = ((struct pg_rows *)ctx)->c;
    struct status_report *r = ((struct pg_rows *)ctx)->r;
    (void)err;
    (void)err_size;
    if (!replay_topic_in_scope(c->cfg.topic_prefix, row->topic))
        return 0;
    struct status_group *g = status_report_group(r, row->group, 1);
    struct status_part *p = g ? status_group_part(g, row->topic, row->partition, 1) : NULL;
    if (!p)
        return 1;
    g->store = STATUS_STORE_PG;
    p->committed = row->next_offset;
    if (row->updated_ms > g->last_commit_ms)
        g->last_commit_ms = row->updated_ms;
    return 0;
}

/* Groups with rows in sink_offsets (topics in scope only): their positions
 * and last commit.  Silent when the database or the table is missing. */
static void gather_pg(struct status_ctx *c, struct status_report *r)
{
    char err[512];
    PGconn *conn = pg_connect(&c->cfg, "fleetsync-status", err, sizeof(err));
    if (!conn) {
        log_debug("no sink_offsets: %s", err);
        return;
    }
    PQsetNoticeProcessor(conn, pg_quiet, NULL);
    struct pg_rows rows = {.c = c, .r = r};
    if (sinkoff_read_all(conn, pg_row, &rows, err, sizeof(err)) < 0)
        log_debug("cannot read sink_offsets: %s", err);
    PQfinish(conn);
}

/* A broker that is down is reported once, in the report: librdkafka's own
 * lines about it are debug output. */
static void kafka_quiet(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    (void)level;
    log_debug("librdkafka %s: %s", fac, buf);
}

/* Connects to Kafka once (and again after a failure).  Returns 0, or -1
 * with the reason in r->kafka_error. */
static int kafka_ready(struct status_ctx *c, struct status_report *r)
{
    char why[512];
    if (c->rk)
        return 0;
    static const char *const defaults[] = {"socket.connection.setup.timeout.ms", "3000", NULL};
    rd_kafka_conf_t *conf = kafka_conf_new(&c->cfg, defaults, why, sizeof(why));
    if (!conf)
        goto fail;
    rd_kafka_conf_set_log_cb(conf, kafka_quiet);
    if (!(c->rk = kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why))))
        goto fail;
    if (kafka_wait_ready(c->rk, c->timeout_ms, why, sizeof(why)) != 0) {
        rd_kafka_destroy(c->rk);
        c->rk = NULL;
        goto fail;
    }
    return 0;
fail:
    snprintf(r->kafka_error, sizeof(r->kafka_error), "cannot reach Kafka at %.256s: %s", c->cfg.brokers, why);
    return -1;
}

/* One Kafka group: members, and for a Kafka-store group its commits in
 * scope.  Returns 0 or -1 with the reason in err. */
static int gather_group(struct status_ctx *c, struct status_group *g, char *err, size_t err_size)
{
    rd_kafka_resp_err_t code;
    const char *live;
    size_t members;
    int64_t deadline = fs_mono_ms() + c->timeout_ms;
    int rc;
    do
        rc = groups_members(c->rk, g->name, c->timeout_ms, &members, g->who, sizeof(g->who), &live, &code, err,
                            err_size);
    while (rc != 0 && groups_again(code, deadline));
    if (rc != 0)
        return -1;
    g->members = (int)members;
    if (g->store == STATUS_STORE_PG)
        return 0;
    rd_kafka_topic_partition_list_t *l;
    while (!(l = groups_committed(c->rk, g->name, c->timeout_ms, &code, err, err_size)))
        if (!groups_again(code, deadline))
            return -1;
    rc = 0;
    for (int i = 0; i < l->cnt; i++) {
        if (!replay_topic_in_scope(c->cfg.topic_prefix, l->elems[i].topic))
            continue;
        struct status_part *p = status_group_part(g, l->elems[i].topic, l->elems[i].partition, 1);
        if (!p) {
            snprintf(err, err_size, "out of memory");
            rc = -1;
            break;
        }
        p->committed = l->elems[i].offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* The groups' positions (and, with watermarks, the partitions' ends).
 * kafka_down, when not NULL, is why Kafka failed a moment ago: it is not
 * asked again within the same refresh. */
static void gather_groups(struct status_ctx *c, struct status_report *r, int watermarks, const char *kafka_down)
{
    char err[512];
    gather_pg(c, r);
    if (kafka_down) {
        snprintf(r->kafka_error, sizeof(r->kafka_error), "%s", kafka_down);
        goto finish;
    }
    if (kafka_ready(c, r) != 0)
        goto finish;
    char **names = NULL;
    size_t n = 0;
    if (groups_list(c->rk, c->timeout_ms, &names, &n, err, sizeof(err)) != 0) {
        snprintf(r->kafka_error, sizeof(r->kafka_error), "%s", err);
        goto finish;
    }
    for (size_t i = 0; i < n; i++)
        if (status_group_selected(names[i], c->named, c->named_count))
            status_report_group(r, names[i], 1);
    groups_names_free(names, n);
    for (size_t i = 0; i < c->named_count; i++)
        status_report_group(r, c->named[i], 1);
    for (size_t i = 0; i < r->group_count; i++) {
        if (gather_group(c, &r->groups[i], err, sizeof(err)) != 0) {
            snprintf(r->kafka_error, sizeof(r->kafka_error), "group %s: %s", r->groups[i].name, err);
            goto finish;
        }
    }
    /* With a topic prefix, a group with nothing in scope belongs to another
     * prefix sharing the cluster: only groups named with --group stay. */
    if (c->cfg.topic_prefix && c->cfg.topic_prefix[0]) {
        size_t kept = 0;
        for (size_t i = 0; i < r->group_count; i++) {
            struct status_group *g = &r->groups[i];
            int named = 0;
            for (size_t j = 0; j < c->named_count; j++)
                named |= strcmp(g->name, c->named[j]) == 0;
            if (g->count || named)
                r->groups[kept++] = *g;
            else
                free(g->parts);
        }
        r->group_count = kept;
    }
    for (size_t i = 0; watermarks && i < r->group_count; i++) {
        struct status_group *g = &r->groups[i];
        for (size_t j = 0; j < g->count; j++) {
            struct status_part *p = &g->parts[j];
            int64_t low, high;
            rd_kafka_resp_err_t e =
                rd_kafka_query_watermark_offsets(c->rk, p->topic, p->partition, &low, &high, c->timeout_ms);
            if (e) {
                log_warn("cannot read the end offset of %s [%d]: %s", p->topic, (int)p->partition, rd_kafka_err2str(e));
                continue;
            }
            p->low = low;
            p->end = high;
        }
    }
finish:
    for (size_t i = 0; i < r->group_count; i++)
        status_group_finish(&r->groups[i]);
    status_report_sort(r);
}

static void gather_services(struct status_ctx *c, struct status_report *r)
{
    struct svc_state st[SVC_COUNT];
    r->service_count = 0;
    if (svc_probe_endpoints(&c->cfg, st) != 0)
        return;
    /* Mosquitto is off when fleetsync ingest is the edge: the ingest's own
     * table shows the edge then. */
    int n = 0;
    for (int i = 0; i < SVC_COUNT && n < STATUS_MAX_SERVICES; i++) {
        if (st[i].off)
            continue;
        r->services[n].name = st[i].name;
        r->services[n].pid = st[i].pid;
        r->services[n].port = st[i].port;
        r->services[n].healthy = st[i].healthy;
        n++;
    }
    r->service_count = n;
}

/* --- the probe other commands keep (fleetsync up's status line) --------- */

struct status_probe {
    struct status_ctx c;
};

struct status_probe *status_probe_new(const struct fs_config *cfg, int timeout_ms)
{
    struct status_probe *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->c.cfg = *cfg; /* borrowed: the caller's config outlives the probe */
    p->c.timeout_ms = timeout_ms;
    return p;
}

void status_probe_refresh(struct status_probe *p, struct status_report *r)
{
    memset(r, 0, sizeof(*r));
    gather_services(&p->c, r);
    gather_groups(&p->c, r, 1, NULL);
    if (p->c.rk && r->kafka_error[0]) {
        rd_kafka_destroy(p->c.rk); /* connect afresh next time */
        p->c.rk = NULL;
    }
}

void status_probe_free(struct status_probe *p)
{
    if (!p)
        return;
    if (p->c.rk)
        rd_kafka_destroy(p->c.rk);
    free(p);
}

/* --- the command --------------------------------------------------------- */

static volatile sig_atomic_t stop_asked;

static void on_stop(int sig)
{
    (void)sig;
    stop_asked = 1;
}

/* Sleeps ms, in slices, until Ctrl-C.  Returns 1 when interrupted. */
static int nap_ms(int64_t ms)
{
    int64_t until = fs_mono_ms() + ms;
    while (!stop_asked && fs_mono_ms() < until) {
        struct timespec t = {0, 100 * 1000 * 1000};
        nanosleep(&t, NULL);
    }
    return stop_asked != 0;
}

static const char status_about[] =
    "Shows whether the services answer and how far behind each consumer group is.\n\n"
    "  services  Mosquitto, Kafka, PostgreSQL: pid (from the data dir's run/*.pid,\n"
    "            'external' when this data dir did not start it), port, health (the\n"
    "            probes of `services status`, also for external endpoints)\n"
    "  groups    every Kafka group named fleetsync-..., each --group G, and every group\n"
    "            with rows in PostgreSQL's sink_offsets (the exactly-once sinks keep\n"
    "            their positions there, with the time of the last commit); per group:\n"
    "            members, lag (sum of end - committed over its partitions), rate\n"
    "            (messages/s the group consumed, measured over 1 s, or between\n"
    "            refreshes with --watch), then one line per partition\n\n"
    "With --topic-prefix P only topics named P... count, and groups with no such\n"
    "topic are left out (unless named with --group). See docs/status.md.";

static const char status_after[] = "Examples:\n"
                                   "  fleetsync status\n"
                                   "  fleetsync status --json | jq '.groups[] | {group, lag}'\n"
                                   "  fleetsync status --watch 5 --group my-analytics\n"
                                   "  fleetsync status --brokers kafka1:9092 --pg 'host=db dbname=fleetsync' --json\n\n"
                                   "Exit codes: 0 every service healthy, 1 a service is down or Kafka did not\n"
                                   "answer (what is known is still printed), 2 usage error.";

/* One refresh: services, groups, rate against prev (taken at prev_ms), or
 * against a first sample 1 s earlier when there is no prev. */
static void refresh(struct status_ctx *c, struct status_report *r, const struct status_report *prev, int64_t prev_ms,
                    int64_t *taken_ms)
{
    struct status_report first;
    int64_t first_ms = prev_ms;
    memset(&first, 0, sizeof(first));
    if (!prev) {
        gather_groups(c, &first, 0, NULL);
        first_ms = fs_mono_ms();
        prev = &first;
        if (!first.kafka_error[0] || first.group_count)
            nap_ms(1000);
    }
    memset(r, 0, sizeof(*r));
    gather_services(c, r);
    gather_ingest(c, r);
    gather_groups(c, r, 1, prev == &first && first.kafka_error[0] ? first.kafka_error : NULL);
    *taken_ms = fs_mono_ms();
    for (size_t i = 0; i < r->group_count; i++) {
        struct status_group *g = &r->groups[i];
        const struct status_group *b = NULL;
        for (size_t j = 0; j < prev->group_count; j++)
            if (strcmp(prev->groups[j].name, g->name) == 0)
                b = &prev->groups[j];
        if (b)
            g->rate = status_rate_per_s(b, g, *taken_ms - first_ms);
    }
    status_report_release(&first);
}

/* The ingest's metrics port: the one D/run/ingest-metrics names (written by
 * up --edge ingest while it runs), else the ingest's default, 9107. */
static int ingest_port_of(const char *data_dir)
{
    char path[PATH_MAX];
    int port = 0;
    snprintf(path, sizeof(path), "%s/run/ingest-metrics", data_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%d", &port) != 1 || port < 1 || port > 65535)
            port = 0;
        fclose(f);
    }
    return port ? port : 9107;
}

int cmd_status(int argc, char **argv)
{
    struct status_ctx c;
    struct status_report cur, prev;
    const char *named[STATUS_MAX_NAMED];
    size_t named_count = 0;
    int json = 0, watch_s = 0, timeout_s = 5, rest, rc = 2, have_prev = 0;
    int64_t prev_ms = 0;
    const struct opt opts[] = {
        OPT_BOOLEAN("json", &json,
                    "one line of JSON: {\"services\":[{\"name\",\"pid\",\"port\",\"healthy\"}],\n"
                    "\"groups\":[{\"group\",\"members\",\"lag\",\"partitions\":[{\"topic\",\n"
                    "\"partition\",\"committed\",\"end\",\"lag\"}],\"store\",\"rate\",\n"
                    "\"last_commit\"}]}; unknown numbers are null"),
        OPT_INTEGER_OPTARG("watch", "S", &watch_s, 1, 3600, "2",
                           "refresh every S seconds (default 2) until Ctrl-C; the screen is\n"
                           "cleared only when stdout is a terminal (with --json: one line per\n"
                           "refresh)"),
        OPT_STR_LIST("group", "G", named, &named_count, STATUS_MAX_NAMED, "show group G too (repeatable)"),
        OPT_INTEGER("timeout", "S", &timeout_s, 1, 3600, "seconds to wait for Kafka (default 5)"),
        OPT_INTEGER("ingest-metrics", "PORT", &c.ingest_port, -1, 65535,
                    "fleetsync ingest's metrics port (default: the one 'fleetsync up\n"
                    "--edge ingest' gave it, DATA_DIR/run/ingest-metrics, else 9107;\n"
                    "with --workers N, PORT .. PORT+N-1 are summed); -1: do not look"),
        OPT_END_MARK,
    };
    const struct opt_command cmd = {
        .no_args = 1,
        .name = "status",
        .usage = "fleetsync status [--json] [--watch [SECONDS]] [--group G]... [options]",
        .about = status_about,
        .after = status_after,
        .opts = opts,
        .shared = 1,
    };

    memset(&c, 0, sizeof(c));
    c.ingest_port = 0;
    memset(&cur, 0, sizeof(cur));
    memset(&prev, 0, sizeof(prev));
    cfg_init(&c.cfg);
    c.cfg.kafka_user = KA_USER_ADMIN;
    if (opt_parse_or_leave(&cmd, &c.cfg, argc, argv, &rest, &rc))
        goto out;
    for (size_t i = 0; i < named_count; i++) {
        if (!named[i][0]) {
            opt_error(&cmd, "--group needs a name");
            goto out;
        }
    }
    if (!c.ingest_port)
        c.ingest_port = ingest_port_of(c.cfg.data_dir);
    c.named = named;
    c.named_count = named_count;
    c.timeout_ms = timeout_s * 1000;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int tty = isatty(STDOUT_FILENO);
    for (;;) {
        int64_t taken;
        refresh(&c, &cur, have_prev ? &prev : NULL, prev_ms, &taken);
        if (stop_asked && have_prev) {
            status_report_release(&cur);
            break;
        }
        if (watch_s && tty && !json)
            printf("\033[H\033[2J");
        if (json) {
            char *s = status_json(&cur);
            if (s)
                printf("%s\n", s);
            free(s);
        } else {
            status_print_table(stdout, &cur);
            if (watch_s)
                printf("\n(every %d s, Ctrl-C to stop)\n", watch_s);
        }
        fflush(stdout);
        if (cur.kafka_error[0])
            fprintf(stderr, "fleetsync status: Kafka is unreachable or did not answer: %s\n", cur.kafka_error);
        rc = status_exit_code(&cur);
        if (c.rk && cur.kafka_error[0]) {
            rd_kafka_destroy(c.rk); /* connect afresh next time */
            c.rk = NULL;
        }
        status_report_release(&prev);
        prev = cur;
        prev_ms = taken;
        have_prev = 1;
        memset(&cur, 0, sizeof(cur));
        if (!watch_s || nap_ms((int64_t)watch_s * 1000))
            break;
    }
out:
    status_report_release(&prev);
    status_report_release(&cur);
    if (c.rk)
        rd_kafka_destroy(c.rk);
    cfg_release(&c.cfg);
    return rc;
}
