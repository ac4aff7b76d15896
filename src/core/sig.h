/*
 * sig.h - SIGINT/SIGTERM turned into a flag and a pollable file descriptor.
 *
 * sig_install() is called once by main thread before other threads start.
 * A long-running service polls sig_fd() (readable once a stop was asked for)
 * or checks sig_stopping() in its loop, then flushes, commits and exits 0.
 * A second signal while stopping exits at once with status 1.
 */
#ifndef FS_SIG_H
#define FS_SIG_H

int sig_install(void);
int sig_stopping(void);
int sig_fd(void);
/* Asks for a stop as a signal would (tests, fatal errors). */
void sig_request_stop(void);
/* In a forked child: a pipe of its own (the parent's is shared after
 * fork) and no stop asked yet.  0, or -1 with errno. */
int sig_after_fork(void);

#endif
