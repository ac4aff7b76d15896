/*
 * sinkoffsets.h - the sink_offsets table (sql/001_history.sql): where the
 * exactly-once PostgreSQL sinks keep their Kafka positions, one row per
 * (group_id, topic, partition) holding next_offset, the offset of the next
 * record to read, and updated_at.  Every query of the table is here.
 *
 * Who moves a row, and how:
 *  - a running sink (pgsink.c), inside the transaction of the batch the
 *    offset covers, with sinkoff_store_checked(): the row must still hold
 *    the offset the sink last saw there (or be absent when it saw none).
 *    When another instance (after a rebalance) or `fleetsync replay` moved
 *    it, or a lost COMMIT did go through, nothing is written and the caller
 *    rolls back and re-reads: this check is what keeps a batch from being
 *    stored twice.
 *  - `fleetsync replay`, for a stopped group only, with sinkoff_store()
 *    (no check), in the transaction that read the rows with for_update.
 * Readers: the sink on every assignment (sinkoff_read_group), replay
 * (sinkoff_group_has_rows, sinkoff_read_group) and `fleetsync status`
 * (sinkoff_read_all).
 *
 * The functions run their statements in whatever transaction the caller has
 * open on conn; none begins or ends one.  A failure returns -1 with the
 * server's message in err, reported through pg_error() (so
 * pg_last_sqlstate() tells a data error from a lost connection).  Any thread
 * that owns conn may call them.
 */
#ifndef FS_SINKOFFSETS_H
#define FS_SINKOFFSETS_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* The columns of one row as the queries return them, in this order: group_id,
 * topic, partition, next_offset, updated_at in ms since the epoch. */
#define SINKOFF_COLUMNS 5

/* One stored position.  The strings point into the query's result: valid
 * during the callback only. */
struct sinkoff_row {
    const char *group;
    const char *topic;
    int32_t partition;
    int64_t next_offset;
    int64_t updated_ms;
};

/* Fills row from the text of one result row (cols[SINKOFF_COLUMNS], as the
 * server sends them).  Returns 0, or -1 with a reason in err when a number
 * is not one (row is then unspecified).  The strings are not copied. */
int sinkoff_row_parse(const char *const cols[SINKOFF_COLUMNS], struct sinkoff_row *row, char *err, size_t err_size);

/* Called for each row read.  Returns 0 to go on, or a positive value to
 * stop: the read then returns that value, with err as the callback left it. */
typedef int (*sinkoff_row_fn)(void *ctx, const struct sinkoff_row *row, char *err, size_t err_size);

/* Reads the group's rows, ordered by topic and partition; for_update locks
 * them until the caller's transaction ends.  Returns 0, a callback's stop
 * value, or -1 (err). */
int sinkoff_read_group(PGconn *conn, const char *group, int for_update, sinkoff_row_fn fn, void *ctx, char *err,
                       size_t err_size);

/* Reads every group's rows, ordered by group, topic and partition.  A
 * database without the table (FleetSync never migrated it) has no rows:
 * nothing is created.  Returns 0, a callback's stop value, or -1 (err). */
int sinkoff_read_all(PGconn *conn, sinkoff_row_fn fn, void *ctx, char *err, size_t err_size);

/* Sets *has to 1 when the table exists and holds a row of the group, else 0.
 * Reads only: nothing is created.  Returns 0 or -1 (err). */
int sinkoff_group_has_rows(PGconn *conn, const char *group, int *has, char *err, size_t err_size);

/* sinkoff_store_checked()'s answer when the row no longer holds expected. */
#define SINKOFF_MOVED 1

/* Stores next_offset for (group, topic, partition) if the row still holds
 * expected, or if there is no row and expected is -1; updated_at becomes
 * now().  Returns 0 (stored), SINKOFF_MOVED (nothing written; err says
 * which offset moved) or -1 (err).  The row stays locked until the
 * caller's transaction ends. */
int sinkoff_store_checked(PGconn *conn, const char *group, const char *topic, int32_t partition, int64_t next_offset,
                          int64_t expected, char *err, size_t err_size);

/* The tables of sink_offsets' shape whose rows are stored checked. */
enum sinkoff_table {
    SINKOFF_SINK,   /* sink_offsets: where a sink's rows end */
    SINKOFF_ROLLUP, /* rollup_offsets: where history's written rollups end */
};

/* sinkoff_store_checked() into the given table. */
int sinkoff_store_checked_in(PGconn *conn, enum sinkoff_table table, const char *group, const char *topic,
                             int32_t partition, int64_t next_offset, int64_t expected, char *err, size_t err_size);

/* Stores next_offset for (group, topic, partition) whatever the row held
 * (creating it if missing); updated_at becomes now().  For a stopped group
 * only: a running sink's next sinkoff_store_checked() then finds the row
 * moved.  Returns 0 or -1 (err). */
int sinkoff_store(PGconn *conn, const char *group, const char *topic, int32_t partition, int64_t next_offset, char *err,
                  size_t err_size);

#endif
