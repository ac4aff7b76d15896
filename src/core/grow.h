/*
 * grow.h - arrays that double as they grow, one element at a time.
 *
 *     if (grow_one(&s->parts, &s->part_cap, s->part_n, sizeof(*s->parts), 16) != 0)
 *         return NULL;
 *     struct part *p = &s->parts[s->part_n++];
 *
 * Growing moves the elements: pointers into the array do not survive it.
 */
#ifndef FS_GROW_H
#define FS_GROW_H

#include <stddef.h>

/* Makes room for element number count (0-based) of an array *arrp of
 * elem-byte elements with room for *cap: when count == *cap, reallocs it to
 * twice *cap (first_cap when empty).  arrp is the address of the array's
 * pointer (any element type).  Returns 0, or -1 when out of memory (the
 * array and *cap as they were). */
int grow_one(void *arrp, size_t *cap, size_t count, size_t elem, size_t first_cap);

#endif
