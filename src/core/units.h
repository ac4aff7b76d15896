/*
 * units.h - sizes as people write and read them ("512M", "1.2 GiB").
 */
#ifndef FS_UNITS_H
#define FS_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Parses a positive byte count with an optional K, M or G suffix (powers of
 * 1024).  Returns 0, or -1 for anything else, zero or an overflow. */
int units_parse_bytes(const char *s, uint64_t *out);

/* Writes v as "512 B", "12.0 KiB", "1.5 MiB", "2.0 GiB"...; returns buf. */
const char *units_format_bytes(uint64_t v, char *buf, size_t size);

#endif
