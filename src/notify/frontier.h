/*
 * frontier.h - the commit frontier of one partition: which offset notify
 * may commit when records finish out of order.
 *
 * Records enter in offset order (frontier_add); each finishes when every
 * destination it matched has delivered it or dead-lettered it
 * (frontier_done), in any order: one destination may be retrying an early
 * record while another has finished later ones.  The frontier is the
 * lowest offset not finished yet (or one past the last record when all
 * are): every record below it is finished, so committing it loses
 * nothing, and a restart re-delivers only records at or above it.
 *
 * Invariant: entries [head, tail) are in increasing offset order; the head
 * entry is never finished (finished heads are dropped at once), so the
 * frontier is the head's offset.  Memory: one entry per unfinished record
 * and per finished record behind one.
 *
 * Pure; one thread at a time.
 */
#ifndef FS_NOTIFY_FRONTIER_H
#define FS_NOTIFY_FRONTIER_H

#include <stddef.h>
#include <stdint.h>

struct frontier_entry {
    int64_t offset;
    int done;
};

struct frontier {
    struct frontier_entry *e; /* a ring of cap entries */
    size_t cap, head, count;
    size_t undone;     /* entries not finished */
    int64_t next;      /* one past the last offset added; -1 before the first */
    int64_t committed; /* the last value frontier_take_commit returned; -1 none */
};

void frontier_init(struct frontier *f);
void frontier_release(struct frontier *f);

/* Forgets every entry (a partition revoked and assigned again starts from
 * its committed offset). */
void frontier_reset(struct frontier *f);

/* A record at offset (above every offset added before) is outstanding.
 * Returns 0, -1 when offset is not above the last one (nothing changes), or
 * -2 on out of memory. */
int frontier_add(struct frontier *f, int64_t offset);

/* Where the partition's reading starts, before any record was added (a
 * new group's resolved "latest"): frontier_position() is offset from now
 * on, so it can be committed, and records must come at or above it.
 * Returns 0, or -1 (nothing changes) once a record or a start was given. */
int frontier_start(struct frontier *f, int64_t offset);

/* The record at offset has finished.  Returns 0, or -1 when it is not
 * outstanding (never added, or finished already). */
int frontier_done(struct frontier *f, int64_t offset);

/* The offset below which every record added has finished: the lowest
 * unfinished offset, or one past the last added; -1 before any. */
int64_t frontier_position(const struct frontier *f);

/* frontier_position() when it moved since the last call that returned
 * one (so the caller commits it), else -1. */
int64_t frontier_take_commit(struct frontier *f);

/* Records added and not finished. */
size_t frontier_outstanding(const struct frontier *f);

#endif
