/*
 * replay.c - `fleetsync replay`: rewind a stopped consumer group to a moment.
 *
 * A replay is a plan, one row per partition of the group's topics: the
 * group's position now (old), the first offset at or after the moment
 * (rd_kafka_offsets_for_times), and the new position replay_choose_target()
 * picks from them.  The plan is gathered first, printed, and applied only
 * when it is complete and --dry-run is not given, so a failure half way
 * through the facts changes nothing.
 *
 * Where the positions live decides how they are moved:
 *  - Kafka groups (dashboard, detector, any other group): the committed
 *    offsets, with AlterConsumerGroupOffsets, which the broker accepts only
 *    for a group without members.
 *  - PostgreSQL sinks (history, billing, any group with sink_offsets rows):
 *    sink_offsets.next_offset, all partitions in one transaction that holds
 *    the group's rows locked from the moment they are read; then the group's
 *    Kafka commits, if it has any, best effort, so lag reports agree.
 * Either way the group must be stopped: no member in Kafka, and for a sink no
 * PostgreSQL session named after it; a running consumer would overwrite the
 * new positions with its own.
 */
#include "admin/replay.h"

#include "core/grow.h"
#include "core/opts.h"

#include "core/groups.h"
#include "admin/admin.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/kafka.h"
#include "core/kafkaauth.h"
#include "core/log.h"
#include "core/pg.h"
#include "core/sinkoffsets.h"
#include "core/timeparse.h"
#include "core/topics.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- pure decisions (replay.h) ----------------------------------------- */

int replay_parse_duration_ms(const char *s, int64_t *ms, char *err, size_t err_size)
{
    int64_t v;
    if (time_parse_duration(s, REPLAY_MAX_SINCE_MS, &v, err, err_size) != 0)
        return -1;
    if (v == 0) {
        snprintf(err, err_size, "'%s' is an empty duration (a number and a unit: 90s, 30m, 2h or 7d)", s);
        return -1;
    }
    *ms = v;
    return 0;
}

int replay_parse_iso8601_ms(const char *s, int64_t *ms, char *err, size_t err_size)
{
    return time_parse_iso8601(s, 0, ms, err, err_size);
}

int replay_group_is_pg_sink(const char *group)
{
    return strcmp(group, REPLAY_GROUP_HISTORY) == 0 || strcmp(group, REPLAY_GROUP_BILLING) == 0;
}

enum replay_store replay_group_store(const char *group, int has_pg_rows)
{
    return replay_group_is_pg_sink(group) || has_pg_rows ? REPLAY_STORE_PG : REPLAY_STORE_KAFKA;
}

int replay_default_topics(const char *group, const char **names, int max)
{
    static const char *const dashboard[] = {TOPIC_TELEMETRY, TOPIC_STATUS, TOPIC_ALERTS, NULL};
    static const char *const history[] = {TOPIC_TELEMETRY, TOPIC_ALERTS, NULL};
    static const char *const telemetry_only[] = {TOPIC_TELEMETRY, NULL};
    const char *const *list = NULL;
    if (strcmp(group, REPLAY_GROUP_DASHBOARD) == 0)
        list = dashboard;
    else if (strcmp(group, REPLAY_GROUP_HISTORY) == 0)
        list = history;
    else if (strcmp(group, REPLAY_GROUP_DETECTOR) == 0 || strcmp(group, REPLAY_GROUP_BILLING) == 0)
        list = telemetry_only;
    int n = 0;
    for (; list && list[n] && n < max; n++)
        names[n] = list[n];
    return n;
}

int replay_topic_in_scope(const char *prefix, const char *topic)
{
    return !prefix || strncmp(topic, prefix, strlen(prefix)) == 0;
}

int64_t replay_effective_from_ms(const char *group, int64_t t_ms)
{
    return strcmp(group, REPLAY_GROUP_BILLING) == 0 ? fs_day_start_ms(t_ms) : t_ms;
}

void replay_choose_target(struct replay_part *p)
{
    int64_t t = p->at_ts >= 0 ? p->at_ts : p->high;
    if (t > p->high)
        t = p->high;
    if (t < p->low)
        t = p->low;
    if (p->old >= 0 && p->old < t)
        t = p->old;
    p->target = t;
    int64_t until = p->old >= 0 && p->old < p->high ? p->old : p->high;
    p->reprocess = until > t ? until - t : 0;
    p->changed = p->old != t;
}

/* --- the plan ------------------------------------------------------------ */

#define MAX_TOPICS 64

struct plan {
    const char *group;
    const char *prefix; /* --topic-prefix: the topics in scope */
    enum replay_store store;
    int64_t t_ms;    /* the moment asked for */
    int64_t from_ms; /* the moment used (billing: start of its UTC day) */
    char *topics[MAX_TOPICS];
    int topic_count;
    struct replay_part *parts;
    size_t count, cap;
    int kafka_commits; /* PG sinks: the group also has Kafka commits */
    int kafka_moved;   /* PG sinks: those were moved too */
};

static void plan_release(struct plan *pl)
{
    for (int i = 0; i < pl->topic_count; i++)
        free(pl->topics[i]);
    free(pl->parts);
}

static int plan_add_topic(struct plan *pl, const char *topic, char *err, size_t err_size)
{
    for (int i = 0; i < pl->topic_count; i++)
        if (strcmp(pl->topics[i], topic) == 0)
            return 0;
    if (pl->topic_count >= MAX_TOPICS || strlen(topic) >= sizeof(pl->parts[0].topic)) {
        snprintf(err, err_size, "too many topics or topic name too long ('%s')", topic);
        return -1;
    }
    if (!(pl->topics[pl->topic_count] = strdup(topic))) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    pl->topic_count++;
    return 0;
}

static struct replay_part *plan_find(struct plan *pl, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < pl->count; i++)
        if (pl->parts[i].partition == partition && strcmp(pl->parts[i].topic, topic) == 0)
            return &pl->parts[i];
    return NULL;
}

static struct replay_part *plan_add_part(struct plan *pl, const char *topic, int32_t partition)
{
    if (grow_one(&pl->parts, &pl->cap, pl->count, sizeof(*pl->parts), 32) != 0)
        return NULL;
    struct replay_part *p = &pl->parts[pl->count++];
    memset(p, 0, sizeof(*p));
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->partition = partition;
    p->old = REPLAY_NO_OFFSET;
    p->at_ts = REPLAY_NO_OFFSET;
    return p;
}

/* --- Kafka --------------------------------------------------------------- */

/* Commits the listed offsets for the group.  Returns 0, or -1 with the first
 * failure (the whole request's or a partition's) in err. */
static int group_alter(rd_kafka_t *rk, const char *group, const rd_kafka_topic_partition_list_t *offsets,
                       int timeout_ms, rd_kafka_resp_err_t *code, char *err, size_t err_size)
{
    struct groups_req r;
    groups_req_start(&r, rk, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS, timeout_ms);
    rd_kafka_AlterConsumerGroupOffsets_t *req = rd_kafka_AlterConsumerGroupOffsets_new(group, offsets);
    int rc = -1;

    rd_kafka_AlterConsumerGroupOffsets(rk, &req, 1, r.o, r.q);
    if (!(r.ev = groups_admin_result(r.q, "AlterConsumerGroupOffsets", timeout_ms, code, err, err_size)))
        goto out;
    size_t n;
    const rd_kafka_group_result_t **gr =
        rd_kafka_AlterConsumerGroupOffsets_result_groups(rd_kafka_event_AlterConsumerGroupOffsets_result(r.ev), &n);
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_error_t *e = rd_kafka_group_result_error(gr[i]);
        if (e) {
            *code = rd_kafka_error_code(e);
            snprintf(err, err_size, "Kafka refused the new offsets of group %s: %s", group, rd_kafka_error_string(e));
            goto out;
        }
        const rd_kafka_topic_partition_list_t *l = rd_kafka_group_result_partitions(gr[i]);
        for (int j = 0; l && j < l->cnt; j++) {
            if (l->elems[j].err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
                l->elems[j].err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
                l->elems[j].err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION) {
                *code = l->elems[j].err;
                snprintf(err, err_size,
                         "refused: group %s became active while replay ran (%s); stop its consumers and "
                         "run replay again",
                         group, rd_kafka_err2str(l->elems[j].err));
                goto out;
            }
            if (l->elems[j].err) {
                *code = l->elems[j].err;
                snprintf(err, err_size, "Kafka refused the new offset of group %s on %s [%d]: %s", group,
                         l->elems[j].topic, l->elems[j].partition, rd_kafka_err2str(l->elems[j].err));
                goto out;
            }
        }
    }
    rc = 0;
out:
    groups_req_release(&r);
    rd_kafka_AlterConsumerGroupOffsets_destroy(req);
    return rc;
}

/* Adds every partition of the plan's topics (from the cluster's metadata) to
 * the plan.  Returns 0, or -1 when a topic is missing or Kafka fails. */
static int plan_partitions(rd_kafka_t *rk, struct plan *pl, int timeout_ms, char *err, size_t err_size)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    if (e) {
        snprintf(err, err_size, "cannot read the topic list from Kafka: %s", rd_kafka_err2str(e));
        return -1;
    }
    int rc = -1;
    for (int t = 0; t < pl->topic_count; t++) {
        const struct rd_kafka_metadata_topic *mt = NULL;
        for (int i = 0; i < md->topic_cnt; i++)
            if (strcmp(md->topics[i].topic, pl->topics[t]) == 0)
                mt = &md->topics[i];
        if (!mt || mt->err || mt->partition_cnt == 0) {
            snprintf(err, err_size, "topic %s does not exist in Kafka%s", pl->topics[t],
                     mt && mt->err ? ": " : " (check --topic-prefix)");
            if (mt && mt->err)
                snprintf(err + strlen(err), err_size - strlen(err), "%s", rd_kafka_err2str(mt->err));
            goto out;
        }
        for (int i = 0; i < mt->partition_cnt; i++)
            if (!plan_find(pl, mt->topic, mt->partitions[i].id) &&
                !plan_add_part(pl, mt->topic, mt->partitions[i].id)) {
                snprintf(err, err_size, "out of memory");
                goto out;
            }
    }
    rc = 0;
out:
    rd_kafka_metadata_destroy(md);
    return rc;
}

static int part_cmp(const void *a, const void *b)
{
    const struct replay_part *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

/* Fills low, high and at_ts of every partition of the plan. */
static int plan_offsets(rd_kafka_t *rk, struct plan *pl, int timeout_ms, char *err, size_t err_size)
{
    for (size_t i = 0; i < pl->count; i++) {
        struct replay_part *p = &pl->parts[i];
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &p->low, &p->high, timeout_ms);
        if (e) {
            snprintf(err, err_size, "cannot read the offsets of %s [%d]: %s", p->topic, p->partition,
                     rd_kafka_err2str(e));
            return -1;
        }
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)pl->count);
    for (size_t i = 0; i < pl->count; i++)
        rd_kafka_topic_partition_list_add(l, pl->parts[i].topic, pl->parts[i].partition)->offset = pl->from_ms;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, l, timeout_ms);
    int rc = -1;
    if (e) {
        snprintf(err, err_size, "cannot look up offsets by time: %s", rd_kafka_err2str(e));
        goto out;
    }
    for (int i = 0; i < l->cnt; i++) {
        struct replay_part *p = plan_find(pl, l->elems[i].topic, l->elems[i].partition);
        if (l->elems[i].err) {
            snprintf(err, err_size, "cannot look up offsets by time in %s [%d]: %s", l->elems[i].topic,
                     l->elems[i].partition, rd_kafka_err2str(l->elems[i].err));
            goto out;
        }
        /* -1 (RD_KAFKA_OFFSET_END): no message at or after the time. */
        if (p)
            p->at_ts = l->elems[i].offset >= 0 ? l->elems[i].offset : REPLAY_NO_OFFSET;
    }
    rc = 0;
out:
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* The plan's moves as a partition list for AlterConsumerGroupOffsets.
 * only_committed: only partitions present in committed (PG sinks mirror the
 * Kafka commits they have, and create none). */
static rd_kafka_topic_partition_list_t *plan_moves(const struct plan *pl,
                                                   const rd_kafka_topic_partition_list_t *committed, int only_committed)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)pl->count);
    for (size_t i = 0; i < pl->count; i++) {
        const struct replay_part *p = &pl->parts[i];
        if (only_committed) {
            const rd_kafka_topic_partition_t *c = rd_kafka_topic_partition_list_find(committed, p->topic, p->partition);
            if (!c || c->offset == p->target)
                continue;
        } else if (!p->changed) {
            continue;
        }
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->target;
    }
    return l;
}

/* --- PostgreSQL ---------------------------------------------------------- */

/* Server notices ("relation ... already exists, skipping" from the
 * migrations) are debug output, not something the user must read. */
static void pg_notice(void *arg, const char *message)
{
    (void)arg;
    log_debug("postgresql: %.*s", (int)strcspn(message, "\n"), message);
}

static PGconn *pg_open(const struct fs_config *cfg, char *err, size_t err_size)
{
    PGconn *conn = pg_connect(cfg, "fleetsync-replay", err, err_size);
    if (conn)
        PQsetNoticeProcessor(conn, pg_notice, NULL);
    return conn;
}

/* A running PostgreSQL sink holds sessions named after its group (pgsink.c
 * connects with application_name = the group): the second sign, after Kafka
 * membership, that the group is not stopped.  Names them in who. */
static int pg_group_sessions(PGconn *conn, const char *group, int *count, char *who, size_t who_size, char *err,
                             size_t err_size)
{
    const char *v[1] = {group};
    PGresult *res = PQexecParams(conn,
                                 "SELECT pid, coalesce(host(client_addr), 'local socket') FROM pg_stat_activity "
                                 "WHERE application_name = $1 AND pid <> pg_backend_pid() ORDER BY pid",
                                 1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char why[512];
        pg_error(conn, res, why, sizeof(why));
        snprintf(err, err_size, "cannot list PostgreSQL sessions: %s", why);
        PQclear(res);
        return -1;
    }
    *count = PQntuples(res);
    who[0] = '\0';
    for (int r = 0; r < *count; r++) {
        size_t used = strlen(who);
        if (used + 1 < who_size)
            snprintf(who + used, who_size - used, "%spid %s from %s", r ? ", " : "", PQgetvalue(res, r, 0),
                     PQgetvalue(res, r, 1));
    }
    PQclear(res);
    return 0;
}

/* Sets *has when sink_offsets exists and holds rows of the group.  Reads
 * only: the schema is not created for a question. */
static int pg_group_has_rows(PGconn *conn, const char *group, int *has, char *err, size_t err_size)
{
    char why[512];
    if (sinkoff_group_has_rows(conn, group, has, why, sizeof(why)) != 0) {
        snprintf(err, err_size, "cannot read sink_offsets: %s", why);
        return -1;
    }
    return 0;
}

/* pg_load()'s reading: the plan, and whether rows give topics or offsets. */
struct pg_load_ctx {
    struct plan *pl;
    int offsets;
};

/* A stop value of pg_load_row(): err says why. */
#define PG_LOAD_STOP 1

static int pg_load_row(void *ctx, const struct sinkoff_row *row, char *err, size_t err_size)
{
    struct pg_load_ctx *c = ctx;
    struct plan *pl = c->pl;
    if (!replay_topic_in_scope(pl->prefix, row->topic))
        return 0;
    if (!c->offsets)
        return plan_add_topic(pl, row->topic, err, err_size) != 0 ? PG_LOAD_STOP : 0;
    struct replay_part *p = plan_find(pl, row->topic, row->partition);
    if (p)
        p->old = row->next_offset;
    else
        log_warn("sink_offsets has %s [%" PRId32 "] for %s, which Kafka does not have: left alone", row->topic,
                 row->partition, pl->group);
    return 0;
}

/* Reads the group's sink_offsets rows (topics in scope only): with offsets
 * == 0 their topics join the plan's; with offsets != 0, once the partitions
 * are known, their next_offset becomes the partitions' old position.
 * for_update locks the rows for the surrounding transaction. */
static int pg_load(PGconn *conn, struct plan *pl, int for_update, int offsets, char *err, size_t err_size)
{
    struct pg_load_ctx c = {.pl = pl, .offsets = offsets};
    char why[512];
    int rc = sinkoff_read_group(conn, pl->group, for_update, pg_load_row, &c, why, sizeof(why));
    if (rc == PG_LOAD_STOP)
        snprintf(err, err_size, "%s", why);
    else if (rc != 0)
        snprintf(err, err_size, "cannot read sink_offsets of %s: %s", pl->group, why);
    return rc == 0 ? 0 : -1;
}

/* Writes the changed positions; runs inside the caller's transaction. */
static int pg_store(PGconn *conn, const struct plan *pl, char *err, size_t err_size)
{
    for (size_t i = 0; i < pl->count; i++) {
        const struct replay_part *p = &pl->parts[i];
        if (!p->changed)
            continue;
        char why[512];
        if (sinkoff_store(conn, pl->group, p->topic, p->partition, p->target, why, sizeof(why)) != 0) {
            snprintf(err, err_size, "cannot store the offset of %s [%d]: %s", p->topic, p->partition, why);
            return -1;
        }
    }
    return 0;
}

/* --- output -------------------------------------------------------------- */

static int64_t plan_total(const struct plan *pl)
{
    int64_t total = 0;
    for (size_t i = 0; i < pl->count; i++)
        total += pl->parts[i].reprocess;
    return total;
}

static size_t plan_changed(const struct plan *pl)
{
    size_t n = 0;
    for (size_t i = 0; i < pl->count; i++)
        n += pl->parts[i].changed != 0;
    return n;
}

static void print_text(const struct plan *pl, int dry_run)
{
    char t[32], from[32];
    pg_format_ts(pl->t_ms, t, sizeof(t));
    pg_format_ts(pl->from_ms, from, sizeof(from));
    printf("%s group %s (offsets in %s) to %s", dry_run ? "would rewind" : "rewound", pl->group,
           pl->store == REPLAY_STORE_PG ? "PostgreSQL sink_offsets" : "Kafka", from);
    if (pl->from_ms != pl->t_ms)
        printf(" (start of the UTC day of %s: billing recomputes whole days)", t);
    printf("\n\n%-32s %9s %12s %12s %12s\n", "TOPIC", "PARTITION", "OLD", "NEW", "REPROCESS");
    for (size_t i = 0; i < pl->count; i++) {
        const struct replay_part *p = &pl->parts[i];
        char old[24];
        if (p->old >= 0)
            snprintf(old, sizeof(old), "%" PRId64, p->old);
        else
            snprintf(old, sizeof(old), "-");
        printf("%-32s %9" PRId32 " %12s %12" PRId64 " %12" PRId64 "%s\n", p->topic, p->partition, old, p->target,
               p->reprocess, p->changed ? "" : "  (unchanged)");
    }
    printf("\ntotal: %zu partitions, %zu %s, %" PRId64 " messages to reprocess\n", pl->count, plan_changed(pl),
           dry_run ? "would move" : "moved", plan_total(pl));
    if (pl->store == REPLAY_STORE_PG && pl->kafka_commits)
        printf("Kafka committed offsets of the group: %s\n", dry_run           ? "would be moved too"
                                                             : pl->kafka_moved ? "moved too"
                                                                               : "NOT moved (see the warning)");
    if (dry_run)
        printf("dry run: nothing changed\n");
}

static int print_json(const struct plan *pl, int dry_run)
{
    char t[32], from[32];
    json_t *parts = json_array();
    for (size_t i = 0; i < pl->count; i++) {
        const struct replay_part *p = &pl->parts[i];
        json_array_append_new(parts,
                              json_pack("{s:s, s:i, s:o, s:I, s:I, s:b, s:I, s:I}", "topic", p->topic, "partition",
                                        (int)p->partition, "old", p->old >= 0 ? json_integer(p->old) : json_null(),
                                        "new", (json_int_t)p->target, "reprocess", (json_int_t)p->reprocess, "changed",
                                        p->changed, "low", (json_int_t)p->low, "high", (json_int_t)p->high));
    }
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:b, s:o, s:I, s:I}", "group", pl->group, "store",
                  pl->store == REPLAY_STORE_PG ? "postgresql" : "kafka", "at", pg_format_ts(pl->t_ms, t, sizeof(t)),
                  "at_ms", (json_int_t)pl->t_ms, "from", pg_format_ts(pl->from_ms, from, sizeof(from)), "from_ms",
                  (json_int_t)pl->from_ms, "dry_run", dry_run, "partitions", parts, "changed",
                  (json_int_t)plan_changed(pl), "total_reprocess", (json_int_t)plan_total(pl));
    if (!o)
        return -1;
    if (pl->store == REPLAY_STORE_PG)
        json_object_set_new(o, "kafka_commits",
                            json_string(!pl->kafka_commits ? "none"
                                        : dry_run          ? "would move"
                                        : pl->kafka_moved  ? "moved"
                                                           : "failed"));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return -1;
    printf("%s\n", s);
    free(s);
    return 0;
}

/* --- the command --------------------------------------------------------- */

static const char replay_about[] =
    "Rewinds a stopped consumer group so it reads again everything from a moment on.\n"
    "Each partition of the group's topics moves to its first message at or after the\n"
    "moment (the end of the partition when no message is that recent); a partition the\n"
    "group has not reached yet keeps its position (replay never skips messages).\n\n"
    "  fleetsync-dashboard, fleetsync-detector, other groups:\n"
    "        the committed offsets in Kafka move (topics: those the group has committed,\n"
    "        else the group's defaults)\n"
    "  fleetsync-history, fleetsync-billing (and any group with sink_offsets rows):\n"
    "        their rows in PostgreSQL's sink_offsets move, in one transaction; the group's\n"
    "        Kafka commits, if any, follow. Billing rewinds to the start of the UTC day\n"
    "        of the moment, as it recomputes whole days.\n\n"
    "The group must be stopped: a group with members in Kafka, or a sink with a\n"
    "PostgreSQL session named after it, is refused (exit 1) and they are named. With\n"
    "--topic-prefix P only topics named P... are touched. See docs/replay.md.";

static const char replay_after[] = "Examples:\n"
                                   "  fleetsync replay --group fleetsync-detector --since 2h --dry-run\n"
                                   "  fleetsync replay --group fleetsync-history --at 2026-11-27T00:00:00Z\n"
                                   "  fleetsync replay --group fleetsync-billing --since 1d --json\n\n"
                                   "Exit codes: 0 done (or nothing to move), 1 refused or failed (nothing changed\n"
                                   "unless stated), 2 usage error.";

/* One run of the command: what the steps below share.  A step returns 0 to
 * go on, -1 when it failed (err says why) or REFUSED when it printed why
 * the group cannot be rewound now. */
enum { REFUSED = 1 };

struct run {
    struct fs_config cfg;
    struct plan pl;
    int dry_run, json, timeout_ms, in_txn, applied, has_rows;
    rd_kafka_t *rk;
    rd_kafka_topic_partition_list_t *committed, *moves;
    PGconn *conn;
    char err[1024];
};

/* The moment to rewind to, from --since or --at: 0, or -1 after a usage
 * error (a moment in the future is one). */
static int resolve_moment(const struct opt_command *cmd, const char *since, const char *at, int64_t *t_ms, char *err,
                          size_t err_size)
{
    int64_t now = fs_wall_ms();
    if (since) {
        int64_t d;
        if (replay_parse_duration_ms(since, &d, err, err_size) != 0) {
            opt_error(cmd, "--since %s", err);
            return -1;
        }
        *t_ms = now - d;
        return 0;
    }
    if (replay_parse_iso8601_ms(at, t_ms, err, err_size) != 0) {
        opt_error(cmd, "--at %s", err);
        return -1;
    }
    if (*t_ms > now) {
        fprintf(stderr, "fleetsync replay: --at %s is in the future: nothing to replay\n", at);
        return -1;
    }
    return 0;
}

/* A Kafka client for the admin API and the offset look-ups. */
static int connect_kafka(struct run *r)
{
    char why[512];
    rd_kafka_conf_t *conf = kafka_conf_new(&r->cfg, NULL, r->err, sizeof(r->err));
    if (!conf)
        return -1;
    if (!(r->rk = kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why)))) {
        snprintf(r->err, sizeof(r->err), "cannot create a Kafka client: %s", why);
        return -1;
    }
    if (kafka_wait_ready(r->rk, r->timeout_ms, why, sizeof(why)) != 0) {
        snprintf(r->err, sizeof(r->err), "cannot reach Kafka at %s: %s", r->cfg.brokers, why);
        return -1;
    }
    return 0;
}

/* Step 1: the group must be stopped (no member in Kafka). */
static int check_stopped(struct run *r)
{
    const char *group = r->cfg.group;
    size_t members;
    char who[1024];
    rd_kafka_resp_err_t code;
    const char *live_state;
    int64_t deadline = fs_mono_ms() + r->timeout_ms;
    int rc;
    do
        rc = groups_members(r->rk, group, r->timeout_ms, &members, who, sizeof(who), &live_state, &code, r->err,
                            sizeof(r->err));
    while (rc != 0 && groups_again(code, deadline));
    if (rc != 0)
        return -1;
    if (members > 0) {
        fprintf(stderr,
                "fleetsync replay: refused: group %s is running, %zu active member%s: %s. "
                "Stop %s (or wait until the broker's session timeout drops %s) and run replay again.\n",
                group, members, members == 1 ? "" : "s", who, members == 1 ? "it" : "them",
                members == 1 ? "it" : "them");
        return REFUSED;
    }
    if (live_state) {
        fprintf(stderr,
                "fleetsync replay: refused: group %s is running (state %s: a consumer is joining it). "
                "Stop it and run replay again.\n",
                group, live_state);
        return REFUSED;
    }
    return 0;
}

/* Step 2: where the group keeps its positions, and its Kafka commits. */
static int find_store(struct run *r)
{
    const char *group = r->cfg.group;
    char why[512];
    rd_kafka_resp_err_t code;
    if (!replay_group_is_pg_sink(group)) {
        const char *dummy[1];
        if (replay_default_topics(group, dummy, 1) == 0) {
            /* Not a FleetSync group: it is a sink when sink_offsets says so. */
            if (!(r->conn = pg_open(&r->cfg, why, sizeof(why)))) {
                snprintf(r->err, sizeof(r->err),
                         "cannot tell where group %s keeps its offsets (Kafka, or PostgreSQL's "
                         "sink_offsets): %s",
                         group, why);
                return -1;
            }
            if (pg_group_has_rows(r->conn, group, &r->has_rows, r->err, sizeof(r->err)) != 0)
                return -1;
        }
    }
    r->pl.store = replay_group_store(group, r->has_rows);
    int64_t deadline = fs_mono_ms() + r->timeout_ms;
    while (!(r->committed = groups_committed(r->rk, group, r->timeout_ms, &code, r->err, sizeof(r->err))))
        if (!groups_again(code, deadline))
            return -1;
    return 0;
}

static int add_default_topics(struct run *r)
{
    const char *defaults[8];
    char topic[256];
    int ndef = replay_default_topics(r->cfg.group, defaults, 8);
    for (int i = 0; i < ndef; i++)
        if (plan_add_topic(&r->pl, cfg_topic(&r->cfg, defaults[i], topic, sizeof(topic)), r->err, sizeof(r->err)) != 0)
            return -1;
    return 0;
}

/* Step 3, a sink: no session of it in PostgreSQL; its topics, and its
 * sink_offsets rows locked for the update (unless a dry run). */
static int load_pg_positions(struct run *r)
{
    const char *group = r->cfg.group;
    char who[1024], why[512];
    if (!r->conn && !(r->conn = pg_open(&r->cfg, r->err, sizeof(r->err))))
        return -1;
    int sessions;
    if (pg_group_sessions(r->conn, group, &sessions, who, sizeof(who), r->err, sizeof(r->err)) != 0)
        return -1;
    if (sessions > 0) {
        fprintf(stderr,
                "fleetsync replay: refused: group %s is running: %d PostgreSQL session%s named after it "
                "(%s). Stop the sink and run replay again.\n",
                group, sessions, sessions == 1 ? "" : "s", who);
        return REFUSED;
    }
    if (!r->dry_run) {
        if (pg_migrate(r->conn, why, sizeof(why)) < 0) {
            snprintf(r->err, sizeof(r->err), "cannot prepare the schema: %s", why);
            return -1;
        }
        if (pg_exec(r->conn, "BEGIN", r->err, sizeof(r->err)) != 0)
            return -1;
        r->in_txn = 1;
    } else if (pg_group_has_rows(r->conn, group, &r->has_rows, r->err, sizeof(r->err)) != 0) {
        return -1;
    }
    if (add_default_topics(r) != 0)
        return -1;
    /* A dry run on a database without the schema has no rows to read. */
    if ((!r->dry_run || r->has_rows) && pg_load(r->conn, &r->pl, !r->dry_run, 0, r->err, sizeof(r->err)) != 0)
        return -1;
    return 0;
}

/* Step 3, a Kafka group: the topics it has committed (else its defaults). */
static int load_kafka_topics(struct run *r)
{
    const rd_kafka_topic_partition_list_t *committed = r->committed;
    for (int i = 0; i < committed->cnt; i++)
        if (replay_topic_in_scope(r->pl.prefix, committed->elems[i].topic) &&
            plan_add_topic(&r->pl, committed->elems[i].topic, r->err, sizeof(r->err)) != 0)
            return -1;
    if (r->pl.topic_count == 0 && add_default_topics(r) != 0)
        return -1;
    if (r->pl.topic_count == 0) {
        snprintf(r->err, sizeof(r->err),
                 "group %s has no committed offsets in Kafka and no rows in sink_offsets: "
                 "nothing to rewind",
                 r->cfg.group);
        return -1;
    }
    return 0;
}

/* Step 3: the topics, their partitions and the old positions. */
static int load_positions(struct run *r)
{
    struct plan *pl = &r->pl;
    const rd_kafka_topic_partition_list_t *committed = r->committed;
    int rc = pl->store == REPLAY_STORE_PG ? load_pg_positions(r) : load_kafka_topics(r);
    if (rc != 0)
        return rc;
    if (plan_partitions(r->rk, pl, r->timeout_ms, r->err, sizeof(r->err)) != 0)
        return -1;
    qsort(pl->parts, pl->count, sizeof(pl->parts[0]), part_cmp);
    if (pl->store == REPLAY_STORE_PG) {
        if ((!r->dry_run || r->has_rows) && pg_load(r->conn, pl, !r->dry_run, 1, r->err, sizeof(r->err)) != 0)
            return -1;
        for (int i = 0; i < committed->cnt; i++)
            if (plan_find(pl, committed->elems[i].topic, committed->elems[i].partition))
                pl->kafka_commits = 1;
    } else {
        for (int i = 0; i < committed->cnt; i++) {
            struct replay_part *p = plan_find(pl, committed->elems[i].topic, committed->elems[i].partition);
            if (p)
                p->old = committed->elems[i].offset;
        }
    }
    return 0;
}

/* Step 5: the new positions take effect: the group's Kafka commits, or the
 * sink's rows in one transaction and then its Kafka commits. */
static int apply(struct run *r)
{
    rd_kafka_resp_err_t code;
    char why[512];
    if (r->pl.store == REPLAY_STORE_KAFKA) {
        r->moves = plan_moves(&r->pl, r->committed, 0);
        int64_t deadline = fs_mono_ms() + r->timeout_ms;
        int rc;
        do
            rc = r->moves->cnt > 0
                     ? group_alter(r->rk, r->cfg.group, r->moves, r->timeout_ms, &code, r->err, sizeof(r->err))
                     : 0;
        while (rc != 0 && groups_again(code, deadline));
        if (rc != 0)
            return -1;
        r->applied = 1;
        return 0;
    }
    if (pg_store(r->conn, &r->pl, r->err, sizeof(r->err)) != 0)
        return -1;
    r->in_txn = 0;
    if (pg_exec(r->conn, "COMMIT", r->err, sizeof(r->err)) != 0)
        return -1;
    r->applied = 1;
    r->moves = plan_moves(&r->pl, r->committed, 1);
    r->pl.kafka_moved = r->pl.kafka_commits;
    if (r->moves->cnt > 0 && group_alter(r->rk, r->cfg.group, r->moves, r->timeout_ms, &code, why, sizeof(why)) != 0) {
        r->pl.kafka_moved = 0;
        log_warn("sink_offsets moved, but the group's Kafka commits did not (lag reports will "
                 "disagree until the sink commits again): %s",
                 why);
    }
    return 0;
}

/* Steps 1 to 5 and the printed plan. */
static int replay(struct run *r)
{
    int rc;
    if ((rc = connect_kafka(r)) != 0 || (rc = check_stopped(r)) != 0 || (rc = find_store(r)) != 0 ||
        (rc = load_positions(r)) != 0)
        return rc;
    /* Step 4: the new positions. */
    if (plan_offsets(r->rk, &r->pl, r->timeout_ms, r->err, sizeof(r->err)) != 0)
        return -1;
    for (size_t i = 0; i < r->pl.count; i++)
        replay_choose_target(&r->pl.parts[i]);
    if (!r->dry_run && apply(r) != 0)
        return -1;
    if (r->json ? print_json(&r->pl, r->dry_run) != 0 : (print_text(&r->pl, r->dry_run), 0)) {
        snprintf(r->err, sizeof(r->err), "out of memory");
        return -1;
    }
    fflush(stdout);
    return 0;
}

int cmd_replay(int argc, char **argv)
{
    static struct run zero;
    struct run r = zero;
    const char *since = NULL, *at = NULL;
    int timeout_s = 30, rc = 2, rest;
    const struct opt opts[] = {
        OPT_STR("since", "DURATION", &since, "rewind this far back from now: 90s, 30m, 2h, 7d"),
        OPT_STR("at", "ISO8601", &at, "rewind to this moment: 2026-11-27T01:30:00Z, 2026-11-27T02:30+01:00"),
        OPT_BOOLEAN("dry-run", &r.dry_run, "print the plan, change nothing"),
        OPT_BOOLEAN("json", &r.json,
                    "print the plan as JSON: {\"group\",\"store\",\"at\",\"from\",\n"
                    "\"partitions\":[{\"topic\",\"partition\",\"old\",\"new\",\"reprocess\",...}],\n"
                    "\"total_reprocess\",...}"),
        OPT_INTEGER("timeout", "S", &timeout_s, 1, 3600, "seconds to wait for each Kafka request (default 30)"),
        OPT_END_MARK,
    };
    const struct opt_command cmd = {
        .no_args = 1,
        .name = "replay",
        .usage = "fleetsync replay --group G (--since DURATION | --at ISO8601) [--dry-run] [--json]",
        .about = replay_about,
        .after = replay_after,
        .opts = opts,
        .shared = 1,
    };

    cfg_init(&r.cfg);
    r.cfg.kafka_user = KA_USER_ADMIN;
    if (opt_parse_or_leave(&cmd, &r.cfg, argc, argv, &rest, &rc))
        goto out;
    r.timeout_ms = timeout_s * 1000;
    if (!r.cfg.group) {
        opt_error(&cmd, "--group is required, e.g. --group fleetsync-history");
        goto out;
    }
    if (!since == !at) {
        opt_error(&cmd, "give exactly one of --since DURATION (e.g. 2h) or --at ISO8601 (e.g. 2026-11-27T01:30:00Z)");
        goto out;
    }
    int64_t t_ms = 0;
    if (resolve_moment(&cmd, since, at, &t_ms, r.err, sizeof(r.err)) != 0)
        goto out;
    r.pl.group = r.cfg.group;
    r.pl.prefix = r.cfg.topic_prefix;
    r.pl.t_ms = t_ms;
    r.pl.from_ms = replay_effective_from_ms(r.cfg.group, t_ms);

    int done = replay(&r);
    if (done < 0)
        fprintf(stderr, "fleetsync replay: %s%s\n", r.err, r.dry_run || r.applied ? "" : " (nothing changed)");
    rc = done == 0 ? 0 : 1;
out:
    if (r.in_txn)
        PQclear(PQexec(r.conn, "ROLLBACK"));
    if (r.conn)
        PQfinish(r.conn);
    if (r.moves)
        rd_kafka_topic_partition_list_destroy(r.moves);
    if (r.committed)
        rd_kafka_topic_partition_list_destroy(r.committed);
    if (r.rk)
        rd_kafka_destroy(r.rk);
    plan_release(&r.pl);
    cfg_release(&r.cfg);
    return rc;
}
