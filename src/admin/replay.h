/*
 * replay.h - the pure decisions behind `fleetsync replay`: reading --since and
 * --at, where a group keeps its offsets, which topics it reads, and which
 * offset each partition is moved to.
 *
 * Nothing here talks to Kafka or PostgreSQL; cmd_replay (replay.c) gathers
 * the facts (watermarks, offsets for a timestamp, committed or stored
 * offsets) and lets these functions decide, so the rules are unit tested.
 */
#ifndef FS_REPLAY_H
#define FS_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"

#define REPLAY_GROUP_DASHBOARD "fleetsync-dashboard"
#define REPLAY_GROUP_HISTORY "fleetsync-history"
#define REPLAY_GROUP_DETECTOR "fleetsync-detector"
#define REPLAY_GROUP_BILLING "fleetsync-billing"

/* An offset a group does not have (no commit, no sink_offsets row). */
#define REPLAY_NO_OFFSET (-1)

/* The longest --since accepted: ten years, far beyond any retention. */
#define REPLAY_MAX_SINCE_MS (3650LL * FS_DAY_MS)

/* Parses a --since duration: a positive integer and one unit, s, m, h or d
 * ("90s", "30m", "2h", "7d"), at most REPLAY_MAX_SINCE_MS.  Returns 0 with
 * the length in *ms, or -1 with a reason in err. */
int replay_parse_duration_ms(const char *s, int64_t *ms, char *err, size_t err_size);

/* Parses an ISO 8601 date and time with its zone:
 * YYYY-MM-DDTHH:MM[:SS[.fff...]] followed by Z or an offset +HH:MM, +HHMM or
 * +HH ('T' may be a space; digits past milliseconds are dropped).  Returns 0
 * with ms since the Unix epoch in *ms, or -1 with a reason in err. */
int replay_parse_iso8601_ms(const char *s, int64_t *ms, char *err, size_t err_size);

/* Where a group keeps its positions. */
enum replay_store {
    REPLAY_STORE_KAFKA, /* committed offsets in Kafka (dashboard, detector, ...) */
    REPLAY_STORE_PG,    /* sink_offsets rows in PostgreSQL (history, billing) */
};

/* 1 if the name alone says the group is a PostgreSQL sink (history,
 * billing), else 0. */
int replay_group_is_pg_sink(const char *group);

/* The store of a group: PostgreSQL for the two sinks and for any group that
 * has rows in sink_offsets (has_pg_rows != 0), Kafka otherwise. */
enum replay_store replay_group_store(const char *group, int has_pg_rows);

/* The topics (without prefix) a known FleetSync group reads: dashboard
 * truck-telemetry, truck-status, truck-alerts; detector truck-telemetry;
 * history truck-telemetry, truck-alerts; billing truck-telemetry.  Fills up
 * to max names (string literals) and returns how many; 0 for other groups. */
int replay_default_topics(const char *group, const char **names, int max);

/* 1 when a topic belongs to the replay: with a --topic-prefix, only topics
 * named prefix + something (a stack shared by several prefixes keeps each
 * one's positions apart); without one (prefix NULL or ""), every topic. */
int replay_topic_in_scope(const char *prefix, const char *topic);

/* The moment a group is rewound to: billing starts at the beginning of the
 * UTC day that holds t_ms (it recomputes whole days), every other group at
 * t_ms itself. */
int64_t replay_effective_from_ms(const char *group, int64_t t_ms);

/* One partition of a replay plan. */
struct replay_part {
    char topic[256];
    int32_t partition;
    int64_t low, high; /* watermarks: first and next offset in the log */
    int64_t at_ts;     /* first offset with a timestamp >= the target time,
                          REPLAY_NO_OFFSET when there is no such message */
    int64_t old;       /* the group's position, or REPLAY_NO_OFFSET */
    /* decided by replay_choose_target(): */
    int64_t target;    /* the group's new position */
    int64_t reprocess; /* messages the group reads again (see below) */
    int changed;       /* target differs from old (or old is absent) */
};

/* Decides p->target, p->reprocess and p->changed from the facts in p.
 *  - The target is the first offset at or after the time (at_ts), or the end
 *    of the partition (high) when no message is that recent, kept within
 *    [low, high].
 *  - Replay only rewinds: a group whose position is already before the
 *    target keeps it (moving it forward would skip messages it has not
 *    processed yet).
 *  - reprocess counts the messages between the target and the old position
 *    (the end of the partition when the group has no position there). */
void replay_choose_target(struct replay_part *p);

#endif
