/*
 * benchdetect.c - "fleetsync bench detect": the detector's precision and
 * recall per rule, end to end.
 *
 * Against the running services (the shared --mqtt/--brokers options) it
 * creates private topics (--topic-prefix "bench-<pid>-"), starts its own
 * bridge (MQTT client id "bench-detect-<pid>") and detector (group
 * "bench-detect-<pid>", --start earliest, state in a temp dir), then runs
 * the simulator with the scenario (truck ids rewritten to the private
 * prefix "BD<pid>-"), --start now-<H>h --speedup 0 --duration <H>h,
 * --max-inflight 1 (see where the children start) and --truth into the temp
 * dir.  The children are this binary, each in its
 * own process group, logging into the temp dir.  When the simulator is done
 * it waits until the telemetry topic stopped growing, the detector's
 * committed offsets equal the end offsets (lag 0) and the alerts topic has
 * been quiet for --quiet seconds; then it stops the detector and bridge
 * (SIGTERM), reads every alert record of its trucks from the alerts topic
 * and matches them against the truth file (detect/match.h).  Finally it deletes
 * its topics and consumer group through the admin API and removes the temp
 * dir (--keep leaves all of it for a look).
 */
#include "detect/benchdetect.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/kafka.h"
#include "core/kafkaauth.h"
#include "core/log.h"
#include "core/opts.h"
#include "core/proc.h"
#include "core/sig.h"
#include "core/topics.h"
#include "core/groups.h"
#include "core/grow.h"
#include "detect/match.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BD_MAX_PARTS 256

/* --- children ------------------------------------------------------------ */

#define CH_MAX_ARGS 48

struct kid {
    const char *name;
    pid_t pid;
    int status; /* wait status once exited */
    char log[PATH_MAX];
};

/* Appends the NULL-terminated string arguments to args (CH_MAX_ARGS at
 * most, NULL-terminated); returns -1 when they do not fit. */
static int args_add(const char **args, int *n, ...)
{
    va_list ap;
    const char *s;
    int rc = 0;
    va_start(ap, n);
    while ((s = va_arg(ap, const char *)) != NULL) {
        if (*n >= CH_MAX_ARGS - 1) {
            rc = -1;
            break;
        }
        args[(*n)++] = s;
    }
    va_end(ap);
    args[*n] = NULL;
    return rc;
}

static int kid_start(struct kid *k, const char *dir, const char *const *args)
{
    char exe[PATH_MAX];
    if (proc_self_path(exe, sizeof(exe)) != 0)
        return -1;
    snprintf(k->log, sizeof(k->log), "%s/%s.log", dir, k->name);
    const char *argv[CH_MAX_ARGS + 2];
    int a = 0;
    argv[a++] = exe;
    for (int i = 0; args[i] && a < CH_MAX_ARGS; i++)
        argv[a++] = args[i];
    argv[a] = NULL;
    int fd = open(k->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    struct proc_spec spec = {.path = exe,
                             .argv = (char *const *)argv,
                             .log_fd = fd,
                             .stdin_null = 1,
                             .default_signals = 1,
                             .group = PROC_GROUP_OWN};
    fflush(NULL);
    pid_t pid;
    if (proc_spawn_logged(&spec, &pid) != 0)
        return -1;
    k->pid = pid;
    log_debug("started %s (pid %d, log %s)", k->name, (int)pid, k->log);
    return 0;
}

/* 1 once the child has exited (status in k->status), 0 while it runs. */
static int kid_exited(struct kid *k)
{
    if (!k->pid)
        return 1;
    if (proc_reap(k->pid, &k->status) == 1) {
        k->pid = 0;
        return 1;
    }
    return 0;
}

/* SIGTERM, up to 30 s to finish (flush, commit), then SIGKILL. */
static void kid_stop(struct kid *k)
{
    if (!k->pid)
        return;
    if (proc_stop(k->pid, SIGTERM, 30000, 0, &k->status) == 1)
        log_warn("%s did not stop within 30 s; killing it", k->name);
    k->pid = 0;
}

static void kid_tail(const struct kid *k)
{
    FILE *f = fopen(k->log, "r");
    if (!f)
        return;
    char line[1024];
    char ring[8][1024];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        snprintf(ring[n++ % 8], sizeof(ring[0]), "%s", line);
    fclose(f);
    fprintf(stderr, "--- last lines of %s ---\n", k->log);
    for (int i = n > 8 ? n - 8 : 0; i < n; i++)
        fprintf(stderr, "  %s", ring[i % 8]);
}

static int file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[2048];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* Waits up to ms for a stop request; returns 1 if one came. */
static int wait_stop(int ms)
{
    struct pollfd p = {.fd = sig_fd(), .events = POLLIN};
    if (!sig_stopping())
        poll(&p, 1, ms);
    return sig_stopping();
}

/* --- the scenario with private truck ids --------------------------------- */

/* Copies the scenario line by line (line numbers stay, so the simulator's
 * "FILE:LINE: reason" points into the user's file), replacing each
 * truck_id's prefix (everything before its trailing digits) by id_prefix.
 * Returns the number of incidents, or -1 with a reason in err. */
static int scenario_rewrite(const char *in_path, const char *out_path, const char *id_prefix, char *err,
                            size_t err_size)
{
    FILE *in = fopen(in_path, "r");
    if (!in) {
        snprintf(err, err_size, "cannot read --scenario %s: %s", in_path, strerror(errno));
        return -1;
    }
    FILE *out = fopen(out_path, "w");
    if (!out) {
        snprintf(err, err_size, "cannot write %s: %s", out_path, strerror(errno));
        fclose(in);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int n = 0;
    while ((len = getline(&line, &cap, in)) >= 0) {
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        json_t *o = (*p == '{') ? json_loads(line, JSON_REJECT_DUPLICATES, NULL) : NULL;
        const char *id = json_string_value(json_object_get(o, "truck_id"));
        if (!o || !id) {
            /* blank, comment or broken: the simulator says what is wrong */
            fputs(line, out);
            if (len > 0 && line[len - 1] != '\n')
                fputc('\n', out);
            json_decref(o);
            continue;
        }
        size_t il = strlen(id), d = il;
        while (d > 0 && id[d - 1] >= '0' && id[d - 1] <= '9')
            d--;
        char nid[160];
        snprintf(nid, sizeof(nid), "%s%s", id_prefix, id + d);
        json_object_set_new(o, "truck_id", json_string(nid));
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s) {
            fprintf(out, "%s\n", s);
            free(s);
        }
        json_decref(o);
        n++;
    }
    free(line);
    fclose(in);
    if (fclose(out) != 0) {
        snprintf(err, err_size, "cannot write %s: %s", out_path, strerror(errno));
        return -1;
    }
    return n;
}

/* Reads the simulator's truth lines.  Returns the count in *n (array in
 * *out, caller frees), or -1 with a reason. */
static int truth_load(const char *path, struct match_incident **out, size_t *n, size_t *bad, char *err, size_t err_size)
{
    *out = NULL;
    *n = *bad = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        /* no incident started: the simulator never created the file */
        if (errno == ENOENT)
            return 0;
        snprintf(err, err_size, "cannot read the truth file %s: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, f) >= 0) {
        if (line[0] == '\n' || line[0] == '\0')
            continue;
        json_t *o = json_loads(line, 0, NULL);
        const char *id = json_string_value(json_object_get(o, "truck_id"));
        int rule = match_rule_from_name(json_string_value(json_object_get(o, "rule")));
        json_t *s = json_object_get(o, "start_ms"), *e = json_object_get(o, "end_ms");
        if (!id || strlen(id) > MATCH_ID_MAX || rule < 0 || !json_is_integer(s)) {
            (*bad)++;
            json_decref(o);
            continue;
        }
        if (grow_one(out, &cap, *n, sizeof(**out), 64) != 0) {
            json_decref(o);
            snprintf(err, err_size, "out of memory");
            free(line);
            fclose(f);
            return -1;
        }
        struct match_incident *x = &(*out)[(*n)++];
        memset(x, 0, sizeof(*x));
        snprintf(x->truck_id, sizeof(x->truck_id), "%s", id);
        x->rule = rule;
        x->start_ms = (int64_t)json_integer_value(s);
        x->end_ms = json_is_integer(e) ? (int64_t)json_integer_value(e) : x->start_ms;
        json_decref(o);
    }
    free(line);
    fclose(f);
    return 0;
}

/* --- Kafka --------------------------------------------------------------- */

static int partitions_of(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    int n = -1;
    if (t && rd_kafka_metadata(rk, 0, t, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 &&
        md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (t)
        rd_kafka_topic_destroy(t);
    return n > BD_MAX_PARTS ? BD_MAX_PARTS : n;
}

/* End offsets of every partition into hi[]; returns their sum or -1. */
static int64_t topic_ends(rd_kafka_t *rk, const char *topic, int parts, int64_t *hi)
{
    int64_t sum = 0;
    for (int p = 0; p < parts; p++) {
        int64_t lo, h;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &h, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
            return -1;
        if (hi)
            hi[p] = h;
        sum += h;
    }
    return sum;
}

/* The group's lag on topic: sum over partitions of end - committed (a
 * partition without a commit counts fully); -1 when Kafka does not answer. */
static int64_t group_lag(rd_kafka_t *rk, const char *group, const char *topic, int parts)
{
    int64_t hi[BD_MAX_PARTS];
    if (topic_ends(rk, topic, parts, hi) < 0)
        return -1;
    rd_kafka_resp_err_t code;
    char err[256];
    rd_kafka_topic_partition_list_t *l = groups_committed(rk, group, 5000, &code, err, sizeof(err));
    if (!l)
        return -1;
    int64_t lag = 0;
    for (int p = 0; p < parts; p++) {
        int64_t c = 0;
        for (int i = 0; i < l->cnt; i++)
            if (l->elems[i].partition == p && strcmp(l->elems[i].topic, topic) == 0 && l->elems[i].offset >= 0)
                c = l->elems[i].offset;
        lag += hi[p] > c ? hi[p] - c : 0;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return lag;
}

struct alert_read {
    struct match_alert *v;
    size_t n, cap;
    size_t records, raised, foreign, bad;
};

static void alert_take(struct alert_read *ar, const char *buf, size_t len, const char *id_prefix)
{
    ar->records++;
    json_t *o = json_loadb(buf, len, 0, NULL);
    const char *id = json_string_value(json_object_get(o, "truck_id"));
    const char *state = json_string_value(json_object_get(o, "state"));
    int rule = match_rule_from_name(json_string_value(json_object_get(o, "rule")));
    json_t *s = json_object_get(o, "started_ms"), *d = json_object_get(o, "detected_ms");
    if (!id || !state || rule < 0 || !json_is_integer(s) || strlen(id) > MATCH_ID_MAX) {
        ar->bad++;
    } else if (strncmp(id, id_prefix, strlen(id_prefix)) != 0) {
        ar->foreign++; /* another suite's trucks through the same broker */
    } else if (strcmp(state, "raised") == 0) {
        if (grow_one(&ar->v, &ar->cap, ar->n, sizeof(*ar->v), 256) != 0) {
            ar->bad++;
            json_decref(o);
            return;
        }
        struct match_alert *a = &ar->v[ar->n++];
        memset(a, 0, sizeof(*a));
        snprintf(a->truck_id, sizeof(a->truck_id), "%s", id);
        a->rule = rule;
        a->started_ms = (int64_t)json_integer_value(s);
        a->detected_ms = json_is_integer(d) ? (int64_t)json_integer_value(d) : a->started_ms;
        ar->raised++;
    }
    json_decref(o);
}

/* Reads the alerts topic from the beginning up to its current end. */
static int alerts_read(const struct fs_config *cfg, const char *topic, int parts, const char *id_prefix,
                       struct alert_read *ar, char *err, size_t err_size)
{
    char gid[64];
    snprintf(gid, sizeof(gid), "bench-detect-reader-%d", (int)getpid());
    const char *defaults[] = {"group.id", gid, "enable.auto.commit", "false", "enable.partition.eof", "false", NULL};
    rd_kafka_conf_t *conf = kafka_conf_new(cfg, defaults, err, err_size);
    if (!conf)
        return -1;
    char why[256];
    rd_kafka_t *rk = kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rk) {
        snprintf(err, err_size, "Kafka consumer: %s", why);
        return -1;
    }
    int64_t hi[BD_MAX_PARTS], next[BD_MAX_PARTS];
    int rc = -1;
    rd_kafka_topic_partition_list_t *l = NULL;
    if (topic_ends(rk, topic, parts, hi) < 0) {
        snprintf(err, err_size, "cannot read the end offsets of %s", topic);
        goto out;
    }
    l = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++) {
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
        next[p] = 0;
    }
    if (rd_kafka_assign(rk, l) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, err_size, "cannot assign %s", topic);
        goto out;
    }
    int64_t deadline = fs_mono_ms() + 120000;
    for (;;) {
        int done = 1;
        for (int p = 0; p < parts; p++)
            done &= next[p] >= hi[p];
        if (done)
            break;
        if (fs_mono_ms() > deadline || sig_stopping()) {
            snprintf(err, err_size, "reading %s did not reach its end within 120 s", topic);
            goto out;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (!m)
            continue;
        if (!m->err && m->partition >= 0 && m->partition < parts) {
            next[m->partition] = m->offset + 1;
            alert_take(ar, m->payload, m->len, id_prefix);
        } else if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            log_warn("reading alerts: %s", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    rc = 0;
out:
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

/* Deletes the run's topics and consumer group (best effort, logged). */
static void kafka_cleanup(rd_kafka_t *rk, const struct fs_config *cfg, const char *group)
{
    char names[8][256], err[256];
    rd_kafka_DeleteTopic_t *dt[8];
    for (int i = 0; i < topic_spec_count && i < 8; i++) {
        cfg_topic(cfg, topic_specs[i].name, names[i], sizeof(names[i]));
        dt[i] = rd_kafka_DeleteTopic_new(names[i]);
    }
    struct groups_req r;
    rd_kafka_resp_err_t code;
    groups_req_start(&r, rk, RD_KAFKA_ADMIN_OP_DELETETOPICS, 15000);
    rd_kafka_DeleteTopics(rk, dt, (size_t)topic_spec_count, r.o, r.q);
    if (!(r.ev = groups_admin_result(r.q, "DeleteTopics", 20000, &code, err, sizeof(err))))
        log_warn("could not delete the topics %s*: %s", cfg->topic_prefix, err);
    groups_req_release(&r);
    rd_kafka_DeleteTopic_destroy_array(dt, (size_t)topic_spec_count);

    rd_kafka_DeleteGroup_t *dg = rd_kafka_DeleteGroup_new(group);
    groups_req_start(&r, rk, RD_KAFKA_ADMIN_OP_DELETEGROUPS, 15000);
    rd_kafka_DeleteGroups(rk, &dg, 1, r.o, r.q);
    if (!(r.ev = groups_admin_result(r.q, "DeleteGroups", 20000, &code, err, sizeof(err))))
        log_warn("could not delete the consumer group %s: %s", group, err);
    groups_req_release(&r);
    rd_kafka_DeleteGroup_destroy(dg);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* --- the command --------------------------------------------------------- */

static const char bench_about[] = "Benchmarks of a running system. One so far:\n"
                                  "  detect   precision and recall of 'fleetsync detect' per rule, end to end";

static const char bench_after[] = "fleetsync bench detect --help for its options.";

static const char detect_about[] =
    "Measures how well 'fleetsync detect' finds the incidents of a scenario, through the\n"
    "live pipeline: it runs the simulator with the scenario (docs/sim.md), its own bridge\n"
    "and its own detector on private topics, waits until the detector has consumed\n"
    "everything, then matches the alerts against the simulator's ground truth. An alert\n"
    "matches an incident when truck and rule agree and its started_ms lies within\n"
    "[start_ms - 2 min, incident end + 30 min]. Per rule it prints incidents, alerts\n"
    "(distinct alert ids raised), matched incidents, precision (matched alerts / alerts),\n"
    "recall (matched incidents / incidents) and the detection delay (detected_ms -\n"
    "start_ms, median and max). Progress goes to stderr, the table to stdout.\n\n"
    "Needs the services running ('fleetsync services start', or --mqtt/--brokers of\n"
    "external ones). Everything it creates is private and removed at the end: topics\n"
    "bench-<pid>-*, consumer group bench-detect-<pid>, trucks BD<pid>-NNNNNN (the\n"
    "scenario's truck ids keep their number, the prefix is replaced), a temp dir with\n"
    "the children's logs, the truth file and the detector state. The simulator runs\n"
    "with one connection per truck and --max-inflight 1, so that no truck overtakes the\n"
    "fleet by more than one reading (docs/detect.md explains why).";

static const char detect_after[] =
    "Example:\n"
    "  fleetsync services start\n"
    "  fleetsync bench detect --scenario tests/e2e/detect_scenario.jsonl \\\n"
    "      --geofences tests/e2e/detect_fences.geojson --trucks 200 --hours 3\n\n"
    "Exit status: 0 when every rule has 100 % precision and recall, 1 when one is\n"
    "below (or the run failed: a child died, the detector did not catch up), 2 usage error.";

struct bd_opts {
    const char *scenario, *geofences, *rules;
    int trucks, interval, timeout_s, quiet_s, metrics_base;
    long seed;
    double hours;
    int json, keep;
};

/* One run: its private names, work dir, children and Kafka client. */
struct bd_run {
    const struct bd_opts *o;
    struct fs_config *cfg;
    char prefix[64], group[64], id_prefix[32], client_id[64]; /* private names */
    char tel_topic[256], alert_topic[256];
    char dir[64]; /* the temp dir; "" until made */
    char scen_abs[PATH_MAX], fence_abs[PATH_MAX], rules_abs[PATH_MAX];
    char scen[PATH_MAX], truth[PATH_MAX], spool[PATH_MAX], state[PATH_MAX]; /* in dir */
    int n_scen;                                                             /* incidents in the scenario */
    struct kid bridge, detect, sim;
    rd_kafka_t *rk;
    int topics_made, tparts, aparts;
    int64_t t0, last_progress;
    int64_t tel; /* telemetry records once caught up */
};

/* How a phase of the run ended. */
enum bd_end { BD_DONE, BD_FAILED, BD_INTERRUPTED };

static void progress(const char *phase, int64_t tel, int64_t lag, int64_t alerts, int64_t t0)
{
    fprintf(stderr, "bench detect: %-8s %6.0f s | telemetry records %lld | detector lag %lld | alert records %lld\n",
            phase, (double)(fs_mono_ms() - t0) / 1000.0, (long long)tel, (long long)lag, (long long)alerts);
}

static int parse_seed(void *value, const char *arg, char *err, size_t err_size)
{
    if (cfg_parse_long(arg, 0, LONG_MAX, (long *)value) != 0) {
        snprintf(err, err_size, "a number >= 0, not '%s'", arg);
        return -1;
    }
    return 0;
}

static int parse_metrics_base(void *value, const char *arg, char *err, size_t err_size)
{
    long v;
    if (cfg_parse_long(arg, -1, 65530, &v) != 0 || v == 0) {
        snprintf(err, err_size, "a port number (1-65530), or -1, not '%s'", arg);
        return -1;
    }
    *(int *)value = (int)v;
    return 0;
}

static int parse_hours(void *value, const char *arg, char *err, size_t err_size)
{
    char *end;
    double h = strtod(arg, &end);
    if (end == arg || *end || !(h >= 0.1 && h <= 24 * 30)) {
        snprintf(err, err_size, "0.1..720 (fractions allowed), not '%s'", arg);
        return -1;
    }
    *(double *)value = h;
    return 0;
}

/* Parses the command line into o (the shared options into cfg) and checks
 * that the files it names are readable.  Returns OPT_PARSED, OPT_HELP or
 * OPT_USAGE_ERROR (said why on stderr). */
static int bd_parse(struct bd_opts *o, struct fs_config *cfg, int argc, char **argv)
{
    const struct opt opts[] = {
        OPT_STR("scenario", "FILE", &o->scenario, "incidents, JSON lines (docs/sim.md); required"),
        OPT_STR("geofences", "FILE", &o->geofences, "GeoJSON fences for the simulator and the detector"),
        OPT_STR("rules", "FILE", &o->rules, "detector thresholds, passed to 'fleetsync detect --rules'"),
        OPT_INTEGER("trucks", "N", &o->trucks, 1, 10000000, "simulated trucks (default 200)"),
        OPT_INTEGER("interval", "S", &o->interval, 1, 3600, "seconds between two readings of a truck (default 30)"),
        OPT_CB("hours", "H", &o->hours, parse_hours,
               "simulated hours, ending now (default 3; let the run end well\n"
               "after the last incident: offline is raised from the event\n"
               "time the last readings bring)"),
        OPT_CB("seed", "N", &o->seed, parse_seed, "the simulator's seed (default 1)"),
        OPT_BOOLEAN("json", &o->json, "print the result as JSON instead of the table"),
        OPT_INTEGER("timeout", "S", &o->timeout_s, 1, 86400,
                    "give up waiting for the detector after S seconds (default 600)"),
        OPT_INTEGER("quiet-s", "S", &o->quiet_s, 1, 3600,
                    "seconds without new alerts, at lag 0, before matching (default 10)"),
        OPT_CB("metrics-base", "N", &o->metrics_base, parse_metrics_base,
               "metrics ports of the children: bridge N+1, detect N+3, sim N+5\n"
               "(default -1: none)"),
        OPT_BOOLEAN("keep", &o->keep, "keep the topics, group and temp dir (their names are printed)"),
        OPT_END_MARK,
    };
    const struct opt_command cmd = {
        .no_args = 1,
        .name = "bench detect",
        .usage = "fleetsync bench detect --scenario FILE [options]",
        .about = detect_about,
        .after = detect_after,
        .opts = opts,
        .shared = 1,
    };
    int rest, rc = opt_parse(&cmd, cfg, argc, argv, &rest);
    if (rc != OPT_PARSED)
        return rc;
    if (!o->scenario)
        return opt_error(&cmd, "--scenario FILE is required");
    const char *files[][2] = {{"--scenario", o->scenario}, {"--geofences", o->geofences}, {"--rules", o->rules}};
    for (size_t i = 0; i < 3; i++) {
        if (files[i][1] && access(files[i][1], R_OK) != 0) {
            fprintf(stderr, "fleetsync bench detect: cannot read %s %s: %s\n", files[i][0], files[i][1],
                    strerror(errno));
            return OPT_USAGE_ERROR;
        }
    }
    return OPT_PARSED;
}

/* The run's private names, its temp dir and the scenario rewritten to its
 * truck ids.  Returns 0, 1 (a failure) or 2 (a scenario or path that will
 * not do), having said why. */
static int bd_prepare(struct bd_run *r)
{
    const struct bd_opts *o = r->o;
    char err[PATH_MAX + 512];
    /* The children run from our working dir, but make paths absolute anyway. */
    if (!realpath(o->scenario, r->scen_abs) || (o->geofences && !realpath(o->geofences, r->fence_abs)) ||
        (o->rules && !realpath(o->rules, r->rules_abs))) {
        fprintf(stderr, "fleetsync bench detect: %s\n", strerror(errno));
        return 2;
    }
    int pid = (int)getpid();
    snprintf(r->prefix, sizeof(r->prefix), "bench-%d-", pid);
    snprintf(r->group, sizeof(r->group), "bench-detect-%d", pid);
    snprintf(r->id_prefix, sizeof(r->id_prefix), "BD%d-", pid);
    snprintf(r->client_id, sizeof(r->client_id), "bench-detect-%d", pid);
    r->cfg->topic_prefix = r->prefix;
    cfg_topic(r->cfg, TOPIC_TELEMETRY, r->tel_topic, sizeof(r->tel_topic));
    cfg_topic(r->cfg, TOPIC_ALERTS, r->alert_topic, sizeof(r->alert_topic));

    char dir[] = "/tmp/fleetsync-bench-detect.XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "fleetsync bench detect: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    snprintf(r->dir, sizeof(r->dir), "%s", dir);
    snprintf(r->scen, sizeof(r->scen), "%s/scenario.jsonl", dir);
    snprintf(r->truth, sizeof(r->truth), "%s/truth.jsonl", dir);
    snprintf(r->spool, sizeof(r->spool), "%s/spool", dir);
    snprintf(r->state, sizeof(r->state), "%s/detect", dir);
    r->n_scen = scenario_rewrite(r->scen_abs, r->scen, r->id_prefix, err, sizeof(err));
    if (r->n_scen < 0) {
        fprintf(stderr, "fleetsync bench detect: %s\n", err);
        return 2;
    }
    return 0;
}

/* A Kafka client, the run's topics and their partition counts.  Returns 0,
 * or -1 after saying why. */
static int bd_kafka_setup(struct bd_run *r)
{
    char err[PATH_MAX + 512];
    rd_kafka_conf_t *conf = kafka_conf_new(r->cfg, NULL, err, sizeof(err));
    if (!conf || !(r->rk = kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)))) {
        fprintf(stderr, "fleetsync bench detect: Kafka client: %s\n", err);
        return -1;
    }
    if (kafka_wait_ready(r->rk, 15000, err, sizeof(err)) != 0) {
        fprintf(stderr,
                "fleetsync bench detect: Kafka at %s does not answer (%s); is 'fleetsync services start' "
                "done?\n",
                r->cfg->brokers, err);
        return -1;
    }
    if (topics_ensure(r->rk, r->cfg, 1, 0, 15000, err, sizeof(err)) != 0) {
        fprintf(stderr, "fleetsync bench detect: creating topics %s*: %s\n", r->prefix, err);
        return -1;
    }
    r->topics_made = 1;
    r->tparts = r->aparts = -1;
    for (int i = 0; i < 50 && (r->tparts <= 0 || r->aparts <= 0); i++) {
        r->tparts = partitions_of(r->rk, r->tel_topic);
        r->aparts = partitions_of(r->rk, r->alert_topic);
        if (r->tparts <= 0 || r->aparts <= 0)
            usleep(200 * 1000);
    }
    if (r->tparts <= 0 || r->aparts <= 0) {
        fprintf(stderr, "fleetsync bench detect: topics %s and %s are not there\n", r->tel_topic, r->alert_topic);
        return -1;
    }
    fprintf(stderr, "bench detect: topics %s*, group %s, trucks %s*, work dir %s\n", r->prefix, r->group, r->id_prefix,
            r->dir);
    return 0;
}

/* Every child: the endpoints, our data dir (the temp dir) and topic prefix.
 * The MQTT URL may hold a password: it goes by FLEETSYNC_MQTT, which every
 * command reads (bd_start_children sets it), not on a command line that ps
 * shows to all. */
#define SHARED_ARGS "--brokers", r->cfg->brokers, "--data-dir", r->dir, "--topic-prefix", r->prefix

/* Starts the bridge and waits until it subscribed (so it hears the
 * simulator's first readings), then the detector.  Returns 0, or -1 after
 * saying why. */
static int bd_start_pipeline(struct bd_run *r, const char *mp_bridge, const char *mp_detect)
{
    const char *args[CH_MAX_ARGS];
    int a = 0;
    args_add(args, &a, "bridge", "--quiet", "--client-id", r->client_id, "--session-expiry", "60", "--spool-dir",
             r->spool, "--metrics-port", mp_bridge, SHARED_ARGS, NULL);
    if (kid_start(&r->bridge, r->dir, args) != 0) {
        fprintf(stderr, "fleetsync bench detect: cannot start the bridge: %s\n", strerror(errno));
        return -1;
    }
    int up = 0;
    for (int i = 0; i < 300 && !up && !kid_exited(&r->bridge) && !sig_stopping(); i++) {
        up = file_contains(r->bridge.log, "subscribed");
        if (!up)
            usleep(100 * 1000);
    }
    if (!up) {
        fprintf(stderr, "fleetsync bench detect: the bridge did not subscribe within 30 s\n");
        kid_tail(&r->bridge);
        return -1;
    }
    a = 0;
    args_add(args, &a, "detect", "--group", r->group, "--start", "earliest", "--state-dir", r->state, "--metrics-port",
             mp_detect, SHARED_ARGS, NULL);
    if (r->o->geofences)
        args_add(args, &a, "--geofences", r->fence_abs, NULL);
    if (r->o->rules)
        args_add(args, &a, "--rules", r->rules_abs, NULL);
    if (kid_start(&r->detect, r->dir, args) != 0) {
        fprintf(stderr, "fleetsync bench detect: cannot start the detector: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

/* Starts the simulator.  It runs as fast as the broker takes it, one
 * connection per truck.  Each connection may hold --max-inflight
 * unacknowledged readings; the broker reads the connections in its own
 * order, so a truck can overtake the fleet by that many readings - and a
 * truck back from an offline incident, whose connection holds none,
 * overtakes every truck that has a backlog.  With the default (100
 * readings, 50 min at 30 s) that moves its partition's event time far ahead
 * and every other truck of the partition looks offline.  One reading in
 * flight keeps the overtaking within one interval, far inside offline's
 * 10 min for --interval up to 2 min.  Returns 0, or -1 after
 * saying why. */
static int bd_start_sim(struct bd_run *r, const char *mp_sim)
{
    const struct bd_opts *o = r->o;
    char trucks_s[24], interval_s[24], seed_s[24], start_s[32], dur_s[24];
    snprintf(trucks_s, sizeof(trucks_s), "%d", o->trucks);
    snprintf(interval_s, sizeof(interval_s), "%d", o->interval);
    snprintf(seed_s, sizeof(seed_s), "%ld", o->seed);
    long minutes = lround(o->hours * 60.0);
    snprintf(start_s, sizeof(start_s), "now-%ldm", minutes);
    snprintf(dur_s, sizeof(dur_s), "%ld", minutes * 60);
    const char *args[CH_MAX_ARGS];
    int a = 0;
    args_add(args, &a, "sim", "--quiet", "--trucks", trucks_s, "--interval", interval_s, "--seed", seed_s,
             "--id-prefix", r->id_prefix, "--start", start_s, "--speedup", "0", "--duration", dur_s, "--scenario",
             r->scen, "--truth", r->truth, "--max-inflight", "1", "--clear-presence", "--metrics-port", mp_sim,
             SHARED_ARGS, NULL);
    if (o->geofences)
        args_add(args, &a, "--geofences", r->fence_abs, NULL);
    if (kid_start(&r->sim, r->dir, args) != 0) {
        fprintf(stderr, "fleetsync bench detect: cannot start the simulator: %s\n", strerror(errno));
        return -1;
    }
    if (o->interval > 120)
        fprintf(stderr,
                "bench detect: warning: with --interval %d a truck may overtake the fleet by that much, a large "
                "part of offline's 10 min (false offline alerts are possible)\n",
                o->interval);
    fprintf(stderr,
            "bench detect: simulating %d trucks, one reading every %d s, %ld simulated minutes, "
            "%d incidents\n",
            o->trucks, o->interval, minutes, r->n_scen);
    return 0;
}
#undef SHARED_ARGS

/* The children: bridge first (subscribed before the simulator sends), then
 * the detector, then the simulator.  Returns 0, or -1 after saying why. */
static int bd_start_children(struct bd_run *r)
{
    char mp_bridge[24] = "-1", mp_detect[24] = "-1", mp_sim[24] = "-1";
    if (r->o->metrics_base > 0) {
        snprintf(mp_bridge, sizeof(mp_bridge), "%d", r->o->metrics_base + 1);
        snprintf(mp_detect, sizeof(mp_detect), "%d", r->o->metrics_base + 3);
        snprintf(mp_sim, sizeof(mp_sim), "%d", r->o->metrics_base + 5);
    }
    if (setenv("FLEETSYNC_MQTT", r->cfg->mqtt, 1) != 0) {
        fprintf(stderr, "fleetsync bench detect: setenv: %s\n", strerror(errno));
        return -1;
    }
    if (bd_start_pipeline(r, mp_bridge, mp_detect) != 0)
        return -1;
    return bd_start_sim(r, mp_sim);
}

/* 1. the simulator runs, the bridge and detector must stay up. */
static enum bd_end bd_wait_sim(struct bd_run *r)
{
    r->last_progress = fs_mono_ms();
    while (!kid_exited(&r->sim)) {
        if (wait_stop(500))
            return BD_INTERRUPTED;
        if (kid_exited(&r->detect) || kid_exited(&r->bridge)) {
            struct kid *k = r->detect.pid ? &r->bridge : &r->detect;
            fprintf(stderr, "fleetsync bench detect: the %s exited while the simulator ran\n", k->name);
            kid_tail(k);
            return BD_FAILED;
        }
        if (fs_mono_ms() - r->last_progress >= 5000) {
            progress("sim", topic_ends(r->rk, r->tel_topic, r->tparts, NULL),
                     group_lag(r->rk, r->group, r->tel_topic, r->tparts),
                     topic_ends(r->rk, r->alert_topic, r->aparts, NULL), r->t0);
            r->last_progress = fs_mono_ms();
        }
    }
    int st = r->sim.status;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "fleetsync bench detect: the simulator failed (%s %d)\n",
                WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        kid_tail(&r->sim);
        return BD_FAILED;
    }
    return BD_DONE;
}

/* 2. drain: telemetry stopped growing, lag 0, alerts quiet; then the
 * detector and bridge stop. */
static enum bd_end bd_drain(struct bd_run *r)
{
    int64_t tel_prev = -2, al_prev = -2, tel_since = fs_mono_ms(), al_since = fs_mono_ms(), lag = -1, tel = -1, al = -1;
    int64_t deadline = fs_mono_ms() + (int64_t)r->o->timeout_s * 1000;
    for (;;) {
        if (wait_stop(1000))
            return BD_INTERRUPTED;
        if (kid_exited(&r->detect)) {
            fprintf(stderr, "fleetsync bench detect: the detector exited before it caught up\n");
            kid_tail(&r->detect);
            return BD_FAILED;
        }
        int64_t now = fs_mono_ms();
        tel = topic_ends(r->rk, r->tel_topic, r->tparts, NULL);
        al = topic_ends(r->rk, r->alert_topic, r->aparts, NULL);
        lag = group_lag(r->rk, r->group, r->tel_topic, r->tparts);
        if (tel != tel_prev)
            tel_prev = tel, tel_since = now;
        if (al != al_prev)
            al_prev = al, al_since = now;
        if (tel >= 0 && al >= 0 && lag == 0 && now - tel_since >= 5000 &&
            now - al_since >= (int64_t)r->o->quiet_s * 1000)
            break;
        if (now > deadline) {
            fprintf(stderr, "fleetsync bench detect: the detector did not catch up within %d s (lag %lld)\n",
                    r->o->timeout_s, (long long)lag);
            kid_tail(&r->detect);
            return BD_FAILED;
        }
        if (now - r->last_progress >= 5000) {
            progress("drain", tel, lag, al, r->t0);
            r->last_progress = now;
        }
    }
    progress("caught up", tel, lag, al, r->t0);
    r->tel = tel;
    kid_stop(&r->detect);
    kid_stop(&r->bridge);
    return BD_DONE;
}

static void bd_print_json(const struct bd_run *r, const struct match_result *res, const struct alert_read *ar)
{
    double wall_s = (double)(fs_mono_ms() - r->t0) / 1000.0;
    char *s = match_json(res);
    json_t *j = s ? json_loads(s, 0, NULL) : NULL;
    free(s);
    if (!j)
        return;
    json_object_set_new(j, "trucks", json_integer(r->o->trucks));
    json_object_set_new(j, "interval_s", json_integer(r->o->interval));
    json_object_set_new(j, "hours", json_real(r->o->hours));
    json_object_set_new(j, "telemetry_records", json_integer(r->tel));
    json_object_set_new(j, "alert_records", json_integer((json_int_t)ar->records));
    json_object_set_new(j, "wall_s", json_real(floor(wall_s * 10) / 10));
    json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(j);
}

static void bd_print_table(const struct bd_run *r, const struct match_result *res, int pass,
                           const struct match_incident *inc, size_t ninc, const struct match_alert *al, size_t nal)
{
    double wall_s = (double)(fs_mono_ms() - r->t0) / 1000.0;
    printf("fleetsync bench detect: %d trucks, %d s interval, %.1f simulated hours, %lld telemetry records, "
           "%.0f s wall\n\n",
           r->o->trucks, r->o->interval, r->o->hours, (long long)r->tel, wall_s);
    match_print_table(stdout, res);
    printf("\n%s\n",
           pass ? "PASS: every rule at 100 % precision and recall" : "FAIL: a rule is below 100 % precision or recall");
    if (pass)
        return;
    for (size_t i = 0; i < ninc; i++)
        if (!inc[i].matched)
            printf("  missed: %s %s start_ms %lld end_ms %lld\n", inc[i].truck_id, match_rule_name(inc[i].rule),
                   (long long)inc[i].start_ms, (long long)inc[i].end_ms);
    for (size_t j = 0; j < nal; j++)
        if (!al[j].matched)
            printf("  false alarm: %s %s started_ms %lld\n", al[j].truck_id, match_rule_name(al[j].rule),
                   (long long)al[j].started_ms);
}

/* 3. match: the alert records of our trucks against the truth file, the
 * result to stdout.  Returns 0 when every rule passes, else 1. */
static int bd_report(struct bd_run *r)
{
    char err[PATH_MAX + 512];
    struct alert_read ar = {0};
    struct match_incident *inc = NULL;
    size_t ninc = 0, bad_truth = 0;
    int rc = 1;
    if (alerts_read(r->cfg, r->alert_topic, r->aparts, r->id_prefix, &ar, err, sizeof(err)) != 0 ||
        truth_load(r->truth, &inc, &ninc, &bad_truth, err, sizeof(err)) != 0) {
        fprintf(stderr, "fleetsync bench detect: %s\n", err);
        goto out;
    }
    if (bad_truth)
        fprintf(stderr, "bench detect: %zu unreadable truth lines skipped\n", bad_truth);
    if ((int)ninc != r->n_scen)
        fprintf(stderr,
                "bench detect: warning: %d incidents in the scenario, %zu started in the run (an at_s "
                "beyond --hours never starts)\n",
                r->n_scen, ninc);
    if (ar.bad || ar.foreign)
        fprintf(stderr, "bench detect: alert records: %zu read, %zu of other trucks ignored, %zu unreadable\n",
                ar.records, ar.foreign, ar.bad);
    size_t nal = match_dedupe(ar.v, ar.n);
    struct match_result res[MATCH_RULES];
    match_run(inc, ninc, ar.v, nal, res);
    int pass = match_all_pass(res);
    if (r->o->json)
        bd_print_json(r, res, &ar);
    else
        bd_print_table(r, res, pass, inc, ninc, ar.v, nal);
    fflush(stdout);
    rc = pass ? 0 : 1;
out:
    free(inc);
    free(ar.v);
    return rc;
}

/* Stops the children, deletes the run's topics and group and its temp dir
 * (--keep: names them instead). */
static void bd_cleanup(struct bd_run *r)
{
    kid_stop(&r->sim);
    kid_stop(&r->detect);
    kid_stop(&r->bridge);
    if (r->rk && r->topics_made && !r->o->keep)
        kafka_cleanup(r->rk, r->cfg, r->group);
    if (r->rk)
        rd_kafka_destroy(r->rk);
    if (!r->dir[0])
        return;
    if (r->o->keep)
        fprintf(stderr, "bench detect: kept topics %s*, group %s and %s\n", r->prefix, r->group, r->dir);
    else
        nftw(r->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Sets up, runs the three phases, matches.  Returns the exit status. */
static int bd_run(struct bd_run *r)
{
    int rc = bd_prepare(r);
    if (rc != 0)
        return rc;
    sig_install();
    r->t0 = fs_mono_ms();
    if (bd_kafka_setup(r) != 0 || bd_start_children(r) != 0)
        return 1;
    enum bd_end end = bd_wait_sim(r);
    if (end == BD_DONE)
        end = bd_drain(r);
    if (end == BD_INTERRUPTED)
        fprintf(stderr, "fleetsync bench detect: interrupted; stopping\n");
    if (end != BD_DONE)
        return 1;
    return bd_report(r);
}

static int bench_detect(int argc, char **argv)
{
    struct bd_opts o = {
        .trucks = 200, .interval = 30, .seed = 1, .timeout_s = 600, .quiet_s = 10, .metrics_base = -1, .hours = 3};
    struct fs_config cfg;
    int rc;
    cfg_init(&cfg);
    cfg.kafka_user = KA_USER_ADMIN;
    if (!opt_leave(bd_parse(&o, &cfg, argc, argv), &rc)) {
        struct bd_run *r = calloc(1, sizeof(*r));
        if (r) {
            r->o = &o;
            r->cfg = &cfg;
            r->bridge.name = "bridge";
            r->detect.name = "detect";
            r->sim.name = "sim";
            rc = bd_run(r);
            bd_cleanup(r);
            free(r);
        } else {
            fprintf(stderr, "fleetsync bench detect: out of memory\n");
            rc = 1;
        }
    }
    cfg_release(&cfg);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    static const struct opt none[] = {OPT_END_MARK};
    static const struct opt_command cmd = {
        .name = "bench",
        .usage = "fleetsync bench detect --scenario FILE [options]",
        .about = bench_about,
        .after = bench_after,
        .opts = none,
        .stop_at_arg = 1,
    };
    int rest, rc;
    if (opt_parse_or_leave(&cmd, NULL, argc, argv, &rest, &rc))
        return rc;
    if (rest == argc)
        return opt_error(&cmd, "which benchmark? One so far: detect");
    if (strcmp(argv[rest], "help") == 0) {
        opt_usage(stdout, &cmd);
        return 0;
    }
    if (strcmp(argv[rest], "detect") == 0)
        return bench_detect(argc - rest, argv + rest);
    return opt_error(&cmd, "unknown benchmark '%s'", argv[rest]);
}
