/*
 * spool.h - the bridge's append-only disk spool: what MQTT has handed us and
 * Kafka has not yet acknowledged.
 *
 * The broker forgets a QoS 1 message once the bridge acknowledges it
 * (PUBACK), and a message the bridge holds only in memory dies with the
 * process.  So the bridge's subscriber (mqttsub.h) appends every message of
 * a read here and flushes the spool before it writes that read's PUBACKs;
 * page cache survives a SIGKILL, and --spool-fsync makes it survive power
 * loss too.
 *
 * Three positions, all byte offsets in one ever-growing address space (a
 * segment file is named by the offset of its first record):
 *
 *     acked <= read <= head
 *
 *   acked  every record before it has been acknowledged by Kafka; persisted
 *          in the "checkpoint" file, so a restart resumes there;
 *   read   the next record to hand to the producer (spool_next);
 *   head   the end of the flushed records; appends go after it.
 *
 * Acknowledgements may come in any order (partitions); the ring of records
 * handed out keeps "acked" at the first one still unacknowledged.  After a
 * crash, records between the checkpoint and the last ack are produced again:
 * at-least-once, and consumers deduplicate by (truck_id, ts, seq).
 *
 * Record: u32 body length, u32 CRC-32 of the body, then the body:
 * u64 received_ms, u16 topic length, topic, payload.
 *
 * Damage.  A torn write at the end of the last segment (a record whose header
 * promises more bytes than the file holds: the process died inside the
 * write, before the PUBACKs) is cut off on open.  Any other record that fails
 * its checks (length, CRC, topic length, a segment shorter than the next
 * one's start) is damage: the reader resynchronises on the next offset in
 * the same segment where a whole record passes its length, topic length and
 * CRC checks, skips the bytes in between as if they had been acknowledged,
 * reports the range (spool_options.on_damage), and keeps a hard link to the
 * segment as <segment>.damaged (at most SPOOL_MAX_DAMAGED_FILES, the oldest
 * deleted first).  A segment found damaged is never appended to again.
 * Files are 0600 and the directory 0700: they hold telemetry.
 * Single-threaded: one thread owns a spool.
 */
#ifndef FS_SPOOL_H
#define FS_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#define SPOOL_MAX_TOPIC 1024
#define SPOOL_MAX_PAYLOAD (1024 * 1024)
/* Damaged segments kept aside (each at most a segment's size). */
#define SPOOL_MAX_DAMAGED_FILES 4

struct spool;

struct spool_record {
    uint64_t offset; /* where the record starts; its id for spool_ack */
    int64_t received_ms;
    const char *topic;   /* NUL-terminated; valid until the next spool call */
    const void *payload; /* valid until the next spool call */
    size_t payload_len;
};

/* One range the spool could not read, as reported to on_damage. */
struct spool_damage {
    const char *segment; /* path of the segment file */
    uint64_t seg_offset; /* where the range starts in it */
    uint64_t bytes;      /* bytes skipped (or cut off, when torn) */
    const char *why;     /* "bad CRC", "bad length", "bad topic length", "cut short" */
    int torn;            /* 1: a torn write at the end cut off on open: never
                          * acknowledged to MQTT, so nothing was lost */
    const char *kept_as; /* the .damaged hard link, or NULL (torn, or link failed) */
    int kept_files;      /* .damaged files in the spool dir now */
};

struct spool_options {
    uint64_t segment_bytes; /* roll to a new segment past this; 0 = 64 MiB */
    int fsync;              /* fdatasync on every flush */
    /* Called (from spool_open or spool_next, on the spool's thread) once per
     * damaged range or torn tail; d and its strings live for the call only.
     * A range seen again after spool_rewind is not reported twice. */
    void (*on_damage)(const struct spool_damage *d, void *ctx);
    void *ctx;
};

/* Opens (creating) the spool in dir, takes its lock, recovers positions.
 * Returns 0, or -1 with a reason in err (e.g. another bridge holds it). */
int spool_open(const char *dir, const struct spool_options *opt, struct spool **out, char *err, size_t err_size);

/* Appends one record to the write buffer; it is on disk after spool_flush.
 * Returns 0, or -1 (topic or payload too large, I/O error: see errno). */
int spool_append(struct spool *s, int64_t received_ms, const char *topic, size_t topic_len, const void *payload,
                 size_t payload_len);

/* Writes the buffered records (and fdatasyncs if asked).  Returns 0 or -1. */
int spool_flush(struct spool *s);

/* Hands out the record at the read position and advances it, skipping (and
 * reporting) damaged ranges.  Returns 1 with *rec filled, 0 when the read
 * position has reached head, -1 on an I/O error (errno). */
int spool_next(struct spool *s, struct spool_record *rec);

/* Takes back the record the last spool_next handed out (the producer could
 * not take it): it will be handed out again. */
void spool_unread_last(struct spool *s);

/* Marks the record starting at offset as acknowledged. Unknown offsets
 * (from before a rewind) are ignored. */
void spool_ack(struct spool *s, uint64_t offset);

/* Moves the read position back to acked: everything unacknowledged will be
 * handed out again (after the producer was recreated). */
void spool_rewind(struct spool *s);

/* Persists acked and deletes segments wholly before it.  Returns 0 or -1. */
int spool_checkpoint(struct spool *s);

uint64_t spool_acked(const struct spool *s);
uint64_t spool_read_pos(const struct spool *s);
uint64_t spool_head(const struct spool *s);
/* Bytes on disk not yet acknowledged (head - acked, plus the buffer). */
uint64_t spool_pending_bytes(const struct spool *s);
/* Records handed out and not yet acknowledged (skipped damage included). */
size_t spool_in_flight(const struct spool *s);
/* Damaged ranges skipped and their bytes, since open. */
uint64_t spool_damaged_ranges(const struct spool *s);
uint64_t spool_damaged_bytes(const struct spool *s);
/* Damaged segment files kept aside in the spool dir. */
int spool_damaged_files(const struct spool *s);

/* Flushes, checkpoints, unlocks and frees. */
void spool_close(struct spool *s);

#endif
