/*
 * nofollow.h - files inside a folder another user may write, opened without
 * following symbolic links.
 *
 * `services start` runs as root and works in the data dir D, parts of which
 * (D/run, D/log, D/postgres, ...) belong to the unprivileged service user.
 * That user can put a symbolic link where root expects a file ("log/x.log ->
 * /etc/shadow"): a plain open() would follow it and a chown() by path would
 * hand the target over.  These helpers walk rel one component at a time with
 * openat(O_NOFOLLOW | O_DIRECTORY) from base (which the caller trusts: it is
 * the operator's own data dir), open the last component with O_NOFOLLOW, and
 * check what they opened, so callers set owners with fchown() on the
 * descriptor.  rel is relative ("run/kafka.pid"), without "." or ".." parts.
 */
#ifndef FS_NOFOLLOW_H
#define FS_NOFOLLOW_H

#include <stddef.h>
#include <sys/types.h>

/* Opens the folder base/rel (rel "" or NULL: base itself).  With create,
 * missing components are made with mode (less the umask).  Returns a
 * descriptor the caller closes, or -1 with errno (ELOOP or ENOTDIR for a
 * symbolic link on the way). */
int nf_opendir(const char *base, const char *rel, int create, mode_t mode);

/* Opens the file base/rel with flags | O_NOFOLLOW | O_CLOEXEC; its folder
 * is opened as nf_opendir() does (never created).  What is found there must
 * be a regular file: with O_CREAT, anything else (a symbolic link, a FIFO, a
 * file with a second hard link) is removed and a new file made in its
 * place; without O_CREAT the call fails with ELOOP (link) or EINVAL.
 * O_TRUNC truncates only after that check.  Returns a descriptor the caller
 * closes, or -1 with errno. */
int nf_open(const char *base, const char *rel, int flags, mode_t mode);

/* Replaces the contents of base/rel with len bytes of text (nf_open with
 * O_CREAT; the file has mode, also when it existed with another, before the
 * text is written); when uid is not (uid_t)-1 the file is then
 * given to uid:gid with fchown().  Returns 0 or -1 with errno. */
int nf_write(const char *base, const char *rel, const char *text, size_t len, mode_t mode, uid_t uid, gid_t gid);

/* Removes the file base/rel (a symbolic link itself, never its target).
 * Returns 0 (also when there was none) or -1 with errno. */
int nf_unlink(const char *base, const char *rel);

#endif
