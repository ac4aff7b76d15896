/*
 * frontier.c - the per-partition commit frontier (see frontier.h): a ring
 * of offsets in increasing order, each marked when it finishes; finished
 * entries at the head are dropped, so the head is the lowest unfinished
 * offset.
 */
#include "notify/frontier.h"

#include <stdlib.h>
#include <string.h>

void frontier_init(struct frontier *f)
{
    memset(f, 0, sizeof(*f));
    f->next = -1;
    f->committed = -1;
}

void frontier_release(struct frontier *f)
{
    free(f->e);
    frontier_init(f);
}

void frontier_reset(struct frontier *f)
{
    f->head = 0;
    f->count = 0;
    f->undone = 0;
    f->next = -1;
    f->committed = -1;
}

static struct frontier_entry *at(const struct frontier *f, size_t i)
{
    return &f->e[(f->head + i) % f->cap];
}

static int grow(struct frontier *f)
{
    size_t cap = f->cap ? f->cap * 2 : 64;
    struct frontier_entry *e = malloc(cap * sizeof(*e));
    if (!e)
        return -1;
    for (size_t i = 0; i < f->count; i++)
        e[i] = *at(f, i);
    free(f->e);
    f->e = e;
    f->cap = cap;
    f->head = 0;
    return 0;
}

int frontier_add(struct frontier *f, int64_t offset)
{
    if (offset < 0 || (f->next >= 0 && offset < f->next))
        return -1;
    if (f->count == f->cap && grow(f) < 0)
        return -2;
    *at(f, f->count) = (struct frontier_entry){offset, 0};
    f->count++;
    f->undone++;
    f->next = offset + 1;
    return 0;
}

int frontier_start(struct frontier *f, int64_t offset)
{
    if (offset < 0 || f->next >= 0)
        return -1;
    f->next = offset;
    return 0;
}

int frontier_done(struct frontier *f, int64_t offset)
{
    size_t lo = 0, hi = f->count;
    while (lo < hi) { /* the first entry at or above offset */
        size_t mid = lo + (hi - lo) / 2;
        if (at(f, mid)->offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == f->count || at(f, lo)->offset != offset || at(f, lo)->done)
        return -1;
    at(f, lo)->done = 1;
    f->undone--;
    while (f->count > 0 && at(f, 0)->done) {
        f->head = (f->head + 1) % f->cap;
        f->count--;
    }
    return 0;
}

int64_t frontier_position(const struct frontier *f)
{
    return f->count ? at(f, 0)->offset : f->next;
}

int64_t frontier_take_commit(struct frontier *f)
{
    int64_t p = frontier_position(f);
    if (p < 0 || p == f->committed)
        return -1;
    f->committed = p;
    return p;
}

size_t frontier_outstanding(const struct frontier *f)
{
    return f->undone;
}
