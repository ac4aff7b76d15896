/*
 * idtab.c - see idtab.h.
 */
#include "core/idtab.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define REC(t, i) ((t)->slots + (i) * (t)->rec_size)
#define REC_ID(r) (*(char **)(void *)(r))

static uint64_t hash_id(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

void idtab_init(struct idtab *t, size_t rec_size)
{
    memset(t, 0, sizeof(*t));
    t->rec_size = rec_size < sizeof(char *) ? sizeof(char *) : rec_size;
}

int idtab_reserve(struct idtab *t, size_t more)
{
    if ((t->count + more) * 10 < t->cap * 7)
        return 0;
    size_t cap = t->cap ? t->cap : 1024;
    while ((t->count + more) * 10 >= cap * 7)
        cap *= 2;
    char *slots = calloc(cap, t->rec_size);
    if (!slots)
        return -1;
    for (size_t i = 0; i < t->cap; i++) {
        char *r = REC(t, i);
        if (!REC_ID(r))
            continue;
        size_t j = hash_id(REC_ID(r), strlen(REC_ID(r))) & (cap - 1);
        while (REC_ID(slots + j * t->rec_size))
            j = (j + 1) & (cap - 1);
        memcpy(slots + j * t->rec_size, r, t->rec_size);
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

void *idtab_get(struct idtab *t, const char *id, size_t n)
{
    if (idtab_reserve(t, 1) != 0 && t->cap == 0)
        return NULL;
    size_t j = hash_id(id, n) & (t->cap - 1);
    char *r;
    while (REC_ID(r = REC(t, j))) {
        if (strlen(REC_ID(r)) == n && memcmp(REC_ID(r), id, n) == 0)
            return r;
        j = (j + 1) & (t->cap - 1);
    }
    if (t->count + 1 >= t->cap) /* reserve failed and the table is full */
        return NULL;
    char *copy = malloc(n + 1);
    if (!copy)
        return NULL;
    memcpy(copy, id, n);
    copy[n] = '\0';
    memset(r, 0, t->rec_size);
    REC_ID(r) = copy;
    t->count++;
    return r;
}

void *idtab_slot(const struct idtab *t, size_t i)
{
    char *r = REC(t, i);
    return REC_ID(r) ? r : NULL;
}

void idtab_release(struct idtab *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(REC_ID(REC(t, i)));
    free(t->slots);
    idtab_init(t, t->rec_size);
}
