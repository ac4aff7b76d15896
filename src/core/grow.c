/*
 * grow.c - doubling arrays (grow.h).
 */
#include "core/grow.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int grow_one(void *arrp, size_t *cap, size_t count, size_t elem, size_t first_cap)
{
    if (count < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : first_cap;
    if (ncap < *cap || ncap > SIZE_MAX / elem)
        return -1;
    void *arr;
    memcpy(&arr, arrp, sizeof(arr)); /* the pointer, whatever its element type */
    void *p = realloc(arr, ncap * elem);
    if (!p)
        return -1;
    memcpy(arrp, &p, sizeof(p));
    *cap = ncap;
    return 0;
}
