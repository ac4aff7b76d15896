/*
 * status.h - the report behind `fleetsync status`: services, consumer groups,
 * their positions, lag and consumption rate, and its two renderings (an
 * aligned table and the JSON of docs/design.md "Status JSON").
 *
 * cmd_status (status.c) gathers the facts from the services, Kafka and
 * PostgreSQL into a struct status_report; the functions declared here only
 * compute and render, so they are unit tested without a stack.
 *
 * A position is the next offset a group reads (Kafka's committed offset,
 * sink_offsets.next_offset), so lag = end - position, never below 0.
 */
#ifndef FS_STATUS_H
#define FS_STATUS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* An offset, lag or time that is not known. */
#define STATUS_UNKNOWN (-1)

#define STATUS_MAX_SERVICES 3

struct status_service {
    const char *name; /* string literal */
    int pid;          /* 0 when external or not running */
    int port;
    int healthy;
};

/* Where a group keeps its positions. */
enum status_store { STATUS_STORE_KAFKA, STATUS_STORE_PG };

struct status_part {
    char topic[256];
    int32_t partition;
    int64_t committed; /* the group's position, STATUS_UNKNOWN when none */
    int64_t low, end;  /* watermarks, STATUS_UNKNOWN when Kafka did not say */
    int64_t lag;       /* status_lag(), set by status_group_finish() */
};

struct status_group {
    char name[256];
    enum status_store store;
    int members;   /* STATUS_UNKNOWN when Kafka did not answer */
    char who[512]; /* "client@host, ..." */
    struct status_part *parts;
    size_t count, cap;
    int64_t lag;            /* sum of the known partition lags, STATUS_UNKNOWN if none is known */
    double rate;            /* messages/s consumed, < 0 when not measured */
    int64_t last_commit_ms; /* ms since the epoch, STATUS_UNKNOWN when not known */
};

/* fleetsync ingest, from its metrics: the sum over its workers (metrics
 * ports first_port .. first_port + workers - 1).  workers 0: none answered. */
struct status_ingest {
    int first_port, workers;
    double connections, readings, acknowledged, paused_s;
};

struct status_report {
    struct status_service services[STATUS_MAX_SERVICES];
    struct status_ingest ingest;
    int service_count;
    struct status_group *groups;
    size_t group_count, group_cap;
    char kafka_error[1024]; /* "" when Kafka answered */
};

/* The lag of one partition: end - committed, 0 when the group is at or past
 * the end; a group without a position there would start from the oldest
 * message, so its lag is end - low.  STATUS_UNKNOWN when end is unknown. */
int64_t status_lag(int64_t committed, int64_t low, int64_t end);

/* Messages per second consumed between two samples of a group taken
 * interval_ms apart: the sum over partitions present in both with a position
 * of how far the position advanced (a rewind counts 0).  Returns -1 when
 * before is NULL or interval_ms <= 0. */
double status_rate_per_s(const struct status_group *before, const struct status_group *after, int64_t interval_ms);

/* 1 when status shows the group: a FleetSync group ("fleetsync-..."), or one
 * of the named ones (--group), else 0. */
int status_group_selected(const char *group, const char *const *named, size_t named_count);

/* The report's group called name; with create, added (members unknown, no
 * rate, no last commit) when missing.  NULL when missing, or out of memory. */
struct status_group *status_report_group(struct status_report *r, const char *name, int create);

/* The group's partition; with create, added (all offsets unknown) when
 * missing.  NULL when missing, or out of memory. */
struct status_part *status_group_part(struct status_group *g, const char *topic, int32_t partition, int create);

/* Sorts the partitions (topic, then number) and fills each lag and the
 * group's total lag. */
void status_group_finish(struct status_group *g);

/* Sorts the groups by name. */
void status_report_sort(struct status_report *r);

/* Frees the report's groups; the report may be reused after. */
void status_report_release(struct status_report *r);

/* 0 when every service is healthy and Kafka answered, 1 otherwise. */
int status_exit_code(const struct status_report *r);

/* Adds a Prometheus text exposition's fleetsync_ingest_{connections,
 * readings_total,acknowledged_total,kafka_paused_seconds} to *in; 1 when it
 * had fleetsync_ingest_connections (an ingest answered), else 0. */
int status_ingest_add(struct status_ingest *in, const char *text);

/* The report as one line of JSON (docs/design.md "Status JSON")
 * {"services":[{"name","pid","port","healthy"}],
 *  "groups":[{"group","members","lag","partitions":[{"topic","partition","committed","end","lag"}]}]}
 * plus "store", "rate", "last_commit" per group and "kafka_error" when Kafka
 * did not answer; unknown numbers are null.  Returns a string the caller
 * frees, or NULL when out of memory. */
char *status_json(const struct status_report *r);

/* The report as an aligned table (services, then each group with its
 * members and partitions). */
void status_print_table(FILE *out, const struct status_report *r);

/* A status probe kept across refreshes (one Kafka client), for commands
 * that show status as they run (fleetsync up).  cfg is borrowed and must
 * outlive the probe.  NULL when out of memory. */
struct fs_config;
struct status_probe;
struct status_probe *status_probe_new(const struct fs_config *cfg, int timeout_ms);
/* Services and every FleetSync group with positions and ends, into *r
 * (released with status_report_release); rates are left unmeasured. */
void status_probe_refresh(struct status_probe *p, struct status_report *r);
void status_probe_free(struct status_probe *p);

#endif
