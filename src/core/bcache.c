/*
 * bcache.c - see bcache.h.  An id's place is chunk * CHUNK + offset: an id
 * never straddles two chunks, so its bytes are contiguous.
 */
#include "core/bcache.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK BCACHE_CHUNK
#define MAX_IDS_BYTES ((size_t)UINT32_MAX) /* places are 32-bit */

uint32_t bcache_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return (uint32_t)(h ^ (h >> 32));
}

void bcache_init(struct bcache *c, size_t rec_size)
{
    memset(c, 0, sizeof(*c));
    c->rec_size = rec_size < sizeof(uint32_t) ? sizeof(uint32_t) : rec_size;
}

static const unsigned char *id_at(const struct bcache *c, uint32_t place)
{
    return (const unsigned char *)c->chunks[place / CHUNK] + place % CHUNK;
}

const char *bcache_id(const struct bcache *c, const void *rec, size_t *n)
{
    uint32_t place;
    memcpy(&place, rec, sizeof(place));
    const unsigned char *p = id_at(c, place);
    *n = p[0];
    return (const char *)p + 1;
}

static int same_id(const struct bcache *c, uint32_t rec_no, const char *id, size_t n)
{
    size_t m;
    const char *s = bcache_id(c, bcache_rec(c, rec_no), &m);
    return m == n && memcmp(s, id, n) == 0;
}

/* Doubles the index (or makes the first one) and puts every record back. */
static int grow_index(struct bcache *c)
{
    size_t cap = c->cap ? c->cap * 2 : 1024;
    uint32_t *index = calloc(cap, sizeof(*index));
    if (!index)
        return -1;
    for (uint32_t i = 0; i < c->count; i++) {
        size_t n;
        const char *id = bcache_id(c, bcache_rec(c, i), &n);
        size_t j = bcache_hash(id, n) & (cap - 1);
        while (index[j])
            j = (j + 1) & (cap - 1);
        index[j] = i + 1;
    }
    free(c->index);
    c->index = index;
    c->cap = cap;
    return 0;
}

/* Appends a new buffer of size bytes to the list v (*n of *cap used): the
 * arena's chunks and the records' blocks, which never move once made.  The
 * buffer, or NULL when memory is short. */
static char *push_buffer(char ***v, size_t *n, size_t *cap, size_t size)
{
    if (*n == *cap) {
        size_t c2 = *cap ? *cap * 2 : 16;
        char **g = realloc(*v, c2 * sizeof(*g));
        if (!g)
            return NULL;
        *v = g;
        *cap = c2;
    }
    char *b = malloc(size);
    if (b)
        (*v)[(*n)++] = b;
    return b;
}

/* Copies id into the arena; its place in *place.  -1 when memory is short. */
static int keep_id(struct bcache *c, const char *id, size_t n, uint32_t *place)
{
    if (c->chunk_n == 0 || c->chunk_used + n + 1 > CHUNK) {
        if ((c->chunk_n + 1) * (size_t)CHUNK > MAX_IDS_BYTES ||
            !push_buffer(&c->chunks, &c->chunk_n, &c->chunk_cap, CHUNK))
            return -1;
        c->chunk_used = 0;
    }
    char *p = c->chunks[c->chunk_n - 1] + c->chunk_used;
    p[0] = (char)(unsigned char)n;
    memcpy(p + 1, id, n);
    *place = (uint32_t)((c->chunk_n - 1) * CHUNK + c->chunk_used);
    c->chunk_used += n + 1;
    return 0;
}

/* Makes room for record number c->count.  -1 when memory is short. */
static int room_for_record(struct bcache *c)
{
    size_t b = c->count / BCACHE_BLOCK;
    if (b < c->block_n)
        return 0;
    return push_buffer(&c->blocks, &c->block_n, &c->block_cap, BCACHE_BLOCK * c->rec_size) ? 0 : -1;
}

uint32_t bcache_get(struct bcache *c, const char *id, size_t n, int *added)
{
    return bcache_get_hashed(c, id, n, bcache_hash(id, n), added);
}

uint32_t bcache_get_hashed(struct bcache *c, const char *id, size_t n, uint32_t h, int *added)
{
    *added = 0;
    if (n == 0 || n > BCACHE_ID_MAX)
        return BCACHE_NONE;
    if (c->cap) {
        for (size_t j = h & (c->cap - 1);; j = (j + 1) & (c->cap - 1)) {
            uint32_t r = c->index[j];
            if (!r)
                break;
            if (same_id(c, r - 1, id, n))
                return r - 1;
        }
    }
    if (c->count == BCACHE_NONE - 1)
        return BCACHE_NONE;
    if (((size_t)c->count + 1) * 10 >= c->cap * 7 && grow_index(c) < 0)
        return BCACHE_NONE;
    uint32_t place;
    if (room_for_record(c) < 0 || keep_id(c, id, n, &place) < 0)
        return BCACHE_NONE;
    uint32_t no = c->count++;
    char *rec = bcache_rec(c, no);
    memset(rec, 0, c->rec_size);
    memcpy(rec, &place, sizeof(place));
    size_t j = h & (c->cap - 1);
    while (c->index[j])
        j = (j + 1) & (c->cap - 1);
    c->index[j] = no + 1;
    *added = 1;
    return no;
}

size_t bcache_bytes(const struct bcache *c)
{
    return c->block_n * BCACHE_BLOCK * c->rec_size + c->cap * sizeof(uint32_t) + c->chunk_n * (size_t)CHUNK;
}

void bcache_release(struct bcache *c)
{
    for (size_t i = 0; i < c->block_n; i++)
        free(c->blocks[i]);
    free(c->blocks);
    free(c->index);
    for (size_t i = 0; i < c->chunk_n; i++)
        free(c->chunks[i]);
    free(c->chunks);
    bcache_init(c, c->rec_size);
}
