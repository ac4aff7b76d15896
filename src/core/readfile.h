/*
 * readfile.h - a whole small file (rules, scenarios, geofences) read into
 * memory with a size limit, so a huge or endless input (a FIFO, /dev/zero)
 * costs at most the limit plus one byte.
 *
 * Any thread.
 */
#ifndef FS_CORE_READFILE_H
#define FS_CORE_READFILE_H

#include <stddef.h>
#include <stdio.h>

/* Reads f to its end or to max + 1 bytes, whichever comes first.  Returns 0
 * with *text (malloc'd, NUL-terminated; the caller frees it) and *len: a
 * len of max + 1 means the file holds more than max bytes, and the caller
 * refuses it in its own words.  Otherwise returns an errno (ENOMEM, or the
 * read's error) with *text NULL.  f stays open. */
int readfile_bounded(FILE *f, size_t max, char **text, size_t *len);

#endif
