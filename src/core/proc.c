/*
 * proc.c - child processes (see proc.h).  The child between fork and exec
 * does only async-signal-safe work of its own: the environment it gets is
 * built in the parent, before the fork.
 */
#include "core/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define PROC_POLL_MS 50

/* The environment with env_add's entries in place of those of the same
 * name, appended otherwise.  An array the caller frees (not the strings,
 * which stay environ's and env_add's), or NULL with errno. */
static char **env_merge(const char *const *env_add)
{
    size_t n = 0, nadd = 0;
    while (environ && environ[n])
        n++;
    while (env_add[nadd])
        nadd++;
    char **env = calloc(n + nadd + 1, sizeof(*env));
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t len = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        int replaced = 0;
        for (size_t j = 0; j < nadd && !replaced; j++)
            replaced = strncmp(env_add[j], environ[i], len) == 0 && env_add[j][len] == '=';
        if (!replaced)
            env[k++] = environ[i];
    }
    for (size_t j = 0; j < nadd; j++)
        env[k++] = (char *)env_add[j];
    env[k] = NULL;
    return env;
}

/* The child's side of proc_spawn(); never returns. */
static void __attribute__((noreturn)) child_run(const struct proc_spec *s, char **env)
{
    if (s->group == PROC_GROUP_OWN)
        setpgid(0, 0);
    else if (s->group == PROC_SESSION_OWN)
        setsid();
    if (s->setup)
        s->setup(s->setup_arg);
    if (s->stdin_null) {
        int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (nul >= 0)
            dup2(nul, 0);
    }
    if (s->log_fd >= 0) {
        dup2(s->log_fd, 1);
        dup2(s->log_fd, 2);
    }
    if (s->default_signals) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
    }
    const char *prog = s->path ? s->path : s->argv[0];
    if (env && s->path)
        execve(prog, s->argv, env);
    else if (env)
        execvpe(prog, s->argv, env);
    else if (s->path)
        execv(prog, s->argv);
    else
        execvp(prog, s->argv);
    dprintf(2, "fleetsync: cannot run %s: %s\n", prog, strerror(errno));
    _exit(127);
}

int proc_spawn(const struct proc_spec *spec, pid_t *pid)
{
    char **env = NULL;
    if (spec->env_add && !(env = env_merge(spec->env_add)))
        return -1;
    pid_t p = fork();
    if (p == 0)
        child_run(spec, env);
    int saved = errno;
    free(env);
    if (p < 0) {
        errno = saved;
        return -1;
    }
    *pid = p;
    return 0;
}

int proc_spawn_logged(const struct proc_spec *spec, pid_t *pid)
{
    int rc = proc_spawn(spec, pid), saved = errno;
    if (spec->log_fd >= 0)
        close(spec->log_fd);
    errno = saved;
    return rc;
}

int proc_self_path(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

int proc_reap(pid_t pid, int *status)
{
    int st;
    pid_t w;
    while ((w = waitpid(pid, &st, WNOHANG)) < 0 && errno == EINTR) {
    }
    if (w < 0)
        return -1;
    if (w == 0)
        return 0;
    if (status)
        *status = st;
    return 1;
}

pid_t proc_reap_any(int *status)
{
    int st;
    pid_t w;
    while ((w = waitpid(-1, &st, WNOHANG)) < 0 && errno == EINTR) {
    }
    if (w > 0 && status)
        *status = st;
    return w;
}

int proc_wait(pid_t pid, int *status)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (status)
        *status = st;
    return 0;
}

int proc_stop(pid_t pid, int sig, int timeout_ms, int flags, int *status)
{
    kill(pid, sig);
    for (int waited = 0;; waited += PROC_POLL_MS) {
        int r = proc_reap(pid, status);
        if (r != 0)
            return r > 0 ? 0 : -1;
        if (waited >= timeout_ms)
            break;
        struct timespec ts = {0, PROC_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    kill((flags & PROC_KILL_GROUP) ? -pid : pid, SIGKILL);
    return proc_wait(pid, status) == 0 ? 1 : -1;
}

int proc_exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
