/*
 * errmsg.h - the reason a function failed, in its caller's buffer.
 *
 * Functions that can fail take "char *err, size_t err_size" and write there
 * why, for the caller to show; this formats it and gives the -1 to return
 * in one step:  return errmsg_fail(err, err_size, "'%s' is not a day", s);
 */
#ifndef FS_ERRMSG_H
#define FS_ERRMSG_H

#include <stddef.h>

/* printf into err (when err is not NULL and err_size > 0), cut to err_size.
 * Returns -1. */
int errmsg_fail(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
