/*
 * bcache.h - a pipeline's trucks in memory (billing's and history's): one
 * record per truck of the fleet, found by its id, at a few bytes above the
 * record itself.
 *
 * Records are numbered 0, 1, ... in the order trucks are added and live in
 * blocks of BCACHE_BLOCK records that never move: a record's address and
 * number stay valid until bcache_release().  Ids are kept once, in an
 * arena of 1 MB chunks (a length byte, then the id), and the record's
 * first member is the id's place there (uint32_t).  The index is an
 * open-addressing table of record numbers (4 bytes a slot, linear probing,
 * FNV-1a, grown at 70 % load; only the index moves when it grows).  So a
 * truck costs its record, its id + 1 byte, and 6-12 bytes of index.
 *
 * Not thread-safe.
 */
#ifndef FS_BCACHE_H
#define FS_BCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define BCACHE_BLOCK 4096u     /* records per block */
#define BCACHE_ID_MAX 255u     /* the longest id kept */
#define BCACHE_NONE UINT32_MAX /* no record */

struct bcache {
    size_t rec_size;
    uint32_t count; /* records: 0 .. count-1 */
    char **blocks;  /* block_n blocks of BCACHE_BLOCK records */
    size_t block_n, block_cap;
    uint32_t *index; /* cap slots: record number + 1, 0 = empty */
    size_t cap;
    char **chunks; /* the ids' arena */
    size_t chunk_n, chunk_cap, chunk_used;
};

/* An empty cache of records of rec_size bytes (at least 4), each starting
 * with a uint32_t the cache sets to its id's place. */
void bcache_init(struct bcache *c, size_t rec_size);

/* The record number of id[0..n) (1 <= n <= BCACHE_ID_MAX); a missing one
 * is added, zeroed but for its id, and *added set to 1 (else 0).
 * BCACHE_NONE when memory is short (nothing added). */
uint32_t bcache_get(struct bcache *c, const char *id, size_t n, int *added);

/* The same with h = bcache_hash(id, n) computed before, to prefetch a
 * batch's lookups (below). */
uint32_t bcache_hash(const char *id, size_t n);
uint32_t bcache_get_hashed(struct bcache *c, const char *id, size_t n, uint32_t h, int *added);

/* Record i (< c->count). */
static inline void *bcache_rec(const struct bcache *c, uint32_t i)
{
    return c->blocks[i / BCACHE_BLOCK] + (size_t)(i % BCACHE_BLOCK) * c->rec_size;
}

#define BCACHE_CHUNK (1u << 20) /* bytes of an id arena chunk */

/* Prefetching a batch of lookups.  At a million trucks each step of a
 * lookup is a cache miss: the index slot, the record (its id's place),
 * the id.  For the lookup of hash h, call bcache_prefetch_slot() some
 * lookups ahead, bcache_prefetch_rec() fewer ahead (it reads the slot,
 * cached by then), bcache_prefetch_id() fewer still (it reads the record):
 * each step then finds its memory in the cache.  Only the first slot of a
 * probe is followed; a hint, never a change. */
static inline void bcache_prefetch_slot(const struct bcache *c, uint32_t h)
{
    if (c->cap)
        __builtin_prefetch(&c->index[h & (c->cap - 1)]);
}

static inline void bcache_prefetch_rec(const struct bcache *c, uint32_t h)
{
    uint32_t r = c->cap ? c->index[h & (c->cap - 1)] : 0;
    if (r)
        __builtin_prefetch(bcache_rec(c, r - 1));
}

static inline void bcache_prefetch_id(const struct bcache *c, uint32_t h)
{
    uint32_t r = c->cap ? c->index[h & (c->cap - 1)] : 0;
    if (r) {
        uint32_t place;
        memcpy(&place, bcache_rec(c, r - 1), sizeof(place));
        __builtin_prefetch(c->chunks[place / BCACHE_CHUNK] + place % BCACHE_CHUNK);
    }
}

/* The id of a record (not NUL-terminated) and its length in *n. */
const char *bcache_id(const struct bcache *c, const void *rec, size_t *n);

/* The bytes the cache holds (records, index, ids), for the memory metric. */
size_t bcache_bytes(const struct bcache *c);

/* Frees everything; the cache is empty again. */
void bcache_release(struct bcache *c);

#endif
