/*
 * pgsink.h - the exactly-once Kafka -> PostgreSQL sink that the history and
 * billing pipelines share.
 *
 * A consumer group reads its topics; messages are gathered into batches and
 * each batch is written by the pipeline's write() callback inside one
 * transaction that also stores, per partition, the offset of the next record
 * in sink_offsets (sql/001_history.sql).  On (re)assignment the consumer
 * seeks to those stored offsets, not to Kafka's committed ones, so a batch is
 * either fully in the database with its offsets, or not at all: killing the
 * process at any moment neither loses nor repeats a row.  (A pipeline with
 * state of its own may start a partition earlier, start_at() below; the
 * records before the stored offset then come again, and the stored offset
 * never moves back.)  Kafka's committed
 * offsets are also updated after each commit, only so that lag tools see
 * the group's progress.
 *
 * Offsets are stored with a check: the row must still hold the offset this
 * process started the partition from.  If another instance (after a
 * rebalance) or `fleetsync replay` moved it, the batch is rolled back and
 * the partitions re-seek to what is stored.
 *
 * Batches grow with load: a batch is written when it holds max_batch
 * messages or its first message is flush_ms old; while a batch is being
 * written, the next one accumulates in librdkafka's bounded prefetch queue.
 * When PostgreSQL fails, the same batch is retried with exponential backoff
 * (up to 10 s apart) and nothing more is read: a slow or stopped database
 * only grows lag, never memory.
 *
 * A record PostgreSQL refuses must not stop the sink: retrying it would
 * fail forever.  Errors are told apart by SQLSTATE: class 22 (data
 * exception) and 23 (integrity) lie in the data and repeat on every retry;
 * anything else (no connection, a server shutting down, a lock timeout) is
 * waited out as above.  After a data error the batch is bisected: its
 * halves are written as transactions of their own, in order, down to the
 * one record that fails alone.  That record is dead-lettered: it goes to
 * <prefix>truck-telemetry-dlq (the original key and bytes; headers error =
 * "database_refused", error_detail = the server's message, sqlstate, sink =
 * the group, source_topic, source_partition, source_offset) and its offset
 * is stored in a transaction of its own, with the same offset check; the
 * sink goes on after it.  A pipeline's own checks can refuse a record
 * before anything is sent (write() returns PGSINK_REFUSED, error
 * "out_of_range"): the records before it are written, it is dead-lettered
 * the same way, the sink goes on.  The dead letter is produced and
 * acknowledged before its offset is committed: a crash in between, or a
 * replay, can write it to the DLQ twice (source_* tell the copies apart),
 * never lose it; while Kafka cannot take it, the sink waits as for a
 * database that is away.  fleetsync_sink_dead_letters_total{group,reason}
 * counts them.
 *
 * Holding (hold_ms > 0 and ops->hold): a pipeline whose per-batch writes
 * are costly (billing's per-truck state) folds batches in memory with
 * hold() and writes everything held, with the offsets it covers, in one
 * transaction at most every hold_ms, when hold() asks for it, when no
 * record came for a second (caught up), and on a stop or a revocation: the
 * next write() gets the batch that falls due and must store what hold()
 * took before it.  Exactly once holds as before: the stored offsets never
 * pass what is stored, so after a crash the records held in memory are
 * simply read again.  Any failure while something is held (a database
 * error, a conflict, a data error) drops the held state (aborted()) and
 * re-reads from the stored offsets, and holding pauses until a
 * transaction of a single batch has committed: a record PostgreSQL
 * refuses is then bisected and dead-lettered as above.  A pipeline with
 * a finish() (billing) keeps reading while a state flush commits: write()
 * stages what is held, and the rest of the transaction runs on a thread
 * (finish below); a failure of it drops what was held since as well and
 * re-reads from the stored offsets, as above.  pgsink_run()
 * also sets synchronous_commit = off on its session: a transaction holds
 * rows and offsets together, so a server crash that loses the last ones
 * loses both, and the sink reads those records again.
 */
#ifndef FS_PGSINK_H
#define FS_PGSINK_H

#include "core/config.h"
#include "core/metrics.h"
#include "core/opts.h"

#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>
#include <stddef.h>

/* write()'s answer for a record that its checks find PostgreSQL cannot
 * store (a value out of range). */
#define PGSINK_REFUSED 1
/* write()'s answer when the pipeline lost state it derived from records
 * before the batch (see start_at below): the transaction is rolled back, the
 * batch dropped, and every partition re-read from where start_at() says. */
#define PGSINK_RESEEK 2

struct pgsink_ops {
    /* Writes one batch (or a part of one, see above) inside the open
     * transaction.  Returns 0; -1 with a reason in err (the transaction is
     * rolled back; retried, or bisected when the last pg.h error has a
     * data SQLSTATE); or PGSINK_REFUSED with *refused the index in msgs of
     * a record it will not store and the reason in err (rolled back; the
     * records before it are written again, it is dead-lettered). */
    int (*write)(void *ctx, PGconn *conn, rd_kafka_message_t **msgs, size_t n, size_t *refused, char *err,
                 size_t err_size);
    /* The batch's transaction committed. */
    void (*committed)(void *ctx);
    /* The batch's transaction was rolled back (or its outcome is unknown),
     * or partitions were (re)assigned, so another instance may have written
     * them: forget state derived from earlier batches. */
    void (*aborted)(void *ctx);
    /* Housekeeping outside batches, on a fresh connection and then about
     * every second (the callback keeps its own schedule).  Returns 0 or -1
     * (err); a failure is logged and retried.  May be NULL. */
    int (*tick)(void *ctx, PGconn *conn, char *err, size_t err_size);
    /* Optional (with pgsink_options.hold_ms > 0): takes a batch into the
     * pipeline's memory without a transaction; conn is connected, with no
     * transaction open, for reads.  Returns 0 (held: the messages are
     * released, their offsets are stored with the next write()), 1 (this
     * batch must be written now: write() gets it, with everything held
     * before it), or -1 with a reason in err (the held state is dropped
     * with aborted() and the sink re-reads from the stored offsets). */
    int (*hold)(void *ctx, PGconn *conn, rd_kafka_message_t **msgs, size_t n, char *err, size_t err_size);
    /* Optional: where to read a partition from, given its stored offset
     * (-1: none), when it is assigned or re-read.  A pipeline that keeps
     * state of its own in the database with offsets of its own (history's
     * rollups) may start earlier than the stored offset: the records before
     * it come again in write(), and the stored offset never moves back (a
     * batch below it stores nothing).  Returns the offset, or `stored`.  conn
     * is connected, with no transaction open. */
    int64_t (*start_at)(void *ctx, PGconn *conn, const char *topic, int32_t partition, int64_t stored);
    /* Optional: the partitions are being revoked, or the sink stops cleanly;
     * the last batch is written.  The pipeline writes what it keeps for
     * later (history's held rollups); what it cannot write is read again by
     * the next owner.  Returns 0 or -1 (err, logged). */
    int (*release)(void *ctx, PGconn *conn, char *err, size_t err_size);
    /* Optional: the rest of write()'s transaction, called after write()
     * returned 0 and before the offsets are stored and the transaction
     * commits.  When the transaction writes what hold() took (a state
     * flush), finish(), the offsets and the COMMIT run on a thread of their
     * own while the sink goes on reading and holding the next batches
     * (hold() then gets a second connection for its reads): finish() must
     * touch only what write() handed it, never what hold() changes.
     * committed() or aborted() follow on the sink's thread, once it is
     * over; the next write() waits for it.  Returns 0 or -1 (err), as
     * write(). */
    int (*finish)(void *ctx, PGconn *conn, char *err, size_t err_size);
};

struct pgsink_options {
    const struct fs_config *cfg;
    const char *group;     /* consumer group, also sink_offsets.group_id */
    const char *topics[4]; /* full topic names */
    int topic_count;
    int max_batch;           /* messages per batch (default 20000) */
    int flush_ms;            /* the oldest message waits at most this (default 500) */
    int start;               /* PGSINK_START_EARLIEST (default) or _LATEST: partitions with no stored offset */
    struct metrics *metrics; /* may be NULL */
    int hold_ms;             /* > 0 with ops->hold: a transaction at most this often (see below) */
    const char *const *kafka_defaults; /* NULL or {key, value, ..., NULL}: the pipeline's consumer settings */
};

enum { PGSINK_START_EARLIEST, PGSINK_START_LATEST };

/* The words of --start, in the order of PGSINK_START_*. */
extern const char *const pgsink_start_words[];

/* The sink's options, to splice into a command's option table
 * (core/opts.h); o is the struct pgsink_options they fill. */
#define PGSINK_OPTS(o)                                                                                                 \
    OPT_INTEGER("max-batch", "N", &(o)->max_batch, 1, 1000000, "messages per transaction at most (default 20000)"),    \
        OPT_INTEGER("flush-ms", "MS", &(o)->flush_ms, 1, 600000,                                                       \
                    "the oldest message waits at most this long (default 500)"),                                       \
        OPT_WORDS("start", "earliest|latest", &(o)->start, pgsink_start_words,                                         \
                  "where a partition with no stored offset starts (default earliest)")

/* Runs until sig_stopping(); the last batch is written (or left to be
 * re-read) before it returns.  Returns 0 on a clean stop, 1 on a fatal error
 * (logged). */
int pgsink_run(const struct pgsink_options *o, const struct pgsink_ops *ops, void *ctx);

#endif
