/*
 * idtab.h - a table of the caller's per-truck records keyed by truck id:
 * open addressing with linear probing, FNV-1a, grown at 70 % load.  The
 * history pipeline keeps its truck cache in one (billing, whose cache holds
 * the whole fleet, has the denser billing/cache.h).
 *
 * Records are rec_size bytes and start with `char *id` (the table's own
 * copy of the id; NULL marks an empty slot).  Growing moves records: call
 * idtab_reserve() for a whole batch of lookups first, then take pointers.
 *
 * Not thread-safe.
 */
#ifndef FS_IDTAB_H
#define FS_IDTAB_H

#include <stddef.h>

struct idtab {
    char *slots; /* cap records of rec_size bytes */
    size_t rec_size, cap, count;
};

/* An empty table of records of rec_size bytes (at least sizeof(char *)). */
void idtab_init(struct idtab *t, size_t rec_size);

/* Makes room for more new records without moving any while they are added.
 * Returns 0, or -1 when memory is short (the table is unchanged). */
int idtab_reserve(struct idtab *t, size_t more);

/* The record of id[0..n), added (zeroed, with a copy of the id) when
 * missing.  NULL when memory is short. */
void *idtab_get(struct idtab *t, const char *id, size_t n);

/* Slot i (< t->cap): its record, or NULL when the slot is empty. */
void *idtab_slot(const struct idtab *t, size_t i);

/* Frees every id and the slots; the table is empty again. */
void idtab_release(struct idtab *t);

#endif
