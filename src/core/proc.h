/*
 * proc.h - child processes: spawn one, see whether it exited, stop it.
 *
 * What "fleetsync up", "bench detect" and "services" share when they run
 * another program: fork, put the child in its own process group or session,
 * let the caller prepare it (drop privileges, open files as the new user),
 * point stdin at /dev/null and stdout/stderr at a log, add to its
 * environment, exec; later reap it without blocking, or stop it with a
 * signal, a bounded wait and SIGKILL.  The policy (what to run, when to
 * restart, what to log) stays with each caller, which owns the pids: these
 * functions keep no state.
 */
#ifndef FS_PROC_H
#define FS_PROC_H

#include <sys/types.h>

enum proc_group {
    PROC_GROUP_SAME = 0, /* stays in our process group (a Ctrl-C reaches it too) */
    PROC_GROUP_OWN,      /* setpgid(0, 0): its own group, so a Ctrl-C reaches only us */
    PROC_SESSION_OWN,    /* setsid(): its own session and group, no terminal */
};

struct proc_spec {
    const char *path;           /* program to run; NULL: argv[0], searched in PATH */
    char *const *argv;          /* NULL-terminated; argv[0] is the name it sees */
    const char *const *env_add; /* NULL-terminated "NAME=value" entries added to (or replacing those of) the
                                   environment; NULL: the environment as the child has it at exec */
    int log_fd;                 /* becomes its stdout and stderr (the child's copies; the caller still owns and
                                   closes it); -1: inherited */
    int stdin_null;             /* stdin from /dev/null */
    int default_signals;        /* SIGINT, SIGTERM and SIGPIPE back to their defaults before exec */
    enum proc_group group;
    /* Runs in the child right after the group is set, before the above are
     * applied: may change user, open files, chdir; on failure it says why on
     * fd 2 and calls _exit(126).  Only async-signal-safe work is sure to be
     * safe when the parent has threads. */
    void (*setup)(void *arg);
    void *setup_arg;
};

/* Forks and execs spec.  When exec fails the child writes
 * "fleetsync: cannot run <prog>: <reason>" to its stderr and exits 127.
 * Returns 0 with *pid set, or -1 with errno (fork or memory failed). */
int proc_spawn(const struct proc_spec *spec, pid_t *pid);

/* proc_spawn for a caller that opened spec->log_fd for the child only: the
 * fd (if >= 0) is closed once the child has its copy, or on failure.
 * Returns 0 with *pid set, or -1 with proc_spawn's errno. */
int proc_spawn_logged(const struct proc_spec *spec, pid_t *pid);

/* The path of this program (/proc/self/exe), to run it again as a child or
 * find files next to it.  Returns 0, or -1 when the link cannot be read. */
int proc_self_path(char *buf, size_t size);

/* Without blocking: 1 when child pid has exited (its wait status in
 * *status, if not NULL; the child is reaped), 0 while it runs, -1 with errno
 * (ECHILD: not our child, or reaped already). */
int proc_reap(pid_t pid, int *status);

/* Without blocking: the pid of any of our children that exited (status in
 * *status, if not NULL), 0 when none did, -1 with errno (ECHILD: none left). */
pid_t proc_reap_any(int *status);

/* Blocks until child pid exits (EINTR retried).  Returns 0 with *status (if
 * not NULL) set, or -1 with errno. */
int proc_wait(pid_t pid, int *status);

#define PROC_KILL_GROUP 1 /* SIGKILL goes to the child's whole process group (-pid) */

/* Sends sig to child pid, waits up to timeout_ms for it to exit, then sends
 * SIGKILL (to its group with PROC_KILL_GROUP) and waits for it.  Returns 0
 * when it exited within the time, 1 when it had to be killed (both: reaped,
 * wait status in *status if not NULL), -1 with errno when pid is not a child
 * to wait for (then nothing is killed). */
int proc_stop(pid_t pid, int sig, int timeout_ms, int flags, int *status);

/* A wait status as a shell shows it: the exit code, or 128 + the signal. */
int proc_exit_code(int status);

#endif
