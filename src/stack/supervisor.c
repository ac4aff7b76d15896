/*
 * supervisor.c - the services' processes.
 *
 * Each service is one foreground process that we fork, put in its own
 * session, drop to the service user, and exec; its pid goes into
 * D/run/<name>.pid.  A pid file counts only while /proc/<pid>/cmdline still
 * names the service's binary and this data dir, so a stale file left by a
 * crash or a reboot (pid reused by another program) is ignored and replaced.
 * "Healthy" means the service answers its own protocol: an MQTT CONNACK, a
 * Kafka metadata response, a PostgreSQL ping; svc_wait_healthy() waits for it.
 */
#include "stack/stack.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/nofollow.h"
#include "core/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* A unit is one process: (service, node).  Node 0 is the service itself,
 * the single Kafka broker included (D/kafka, run/kafka.pid); the brokers of
 * a cluster are Kafka nodes 1..N (D/kafka-<k>, run/kafka-<k>.pid). */
void svc_unit_range(const struct svc_ctx *c, enum svc_id id, int *first, int *last)
{
    int cluster = id == SVC_KAFKA && c->kafka_nodes > 1;
    *first = cluster ? 1 : 0;
    *last = cluster ? c->kafka_nodes : 0;
}

const char *const svc_names[SVC_COUNT] = {"mosquitto", "kafka", "postgres"};

const char *svc_unit_name(enum svc_id id, int node, char *buf, size_t size)
{
    if (node > 0)
        snprintf(buf, size, "%s-%d", svc_names[id], node);
    else
        snprintf(buf, size, "%s", svc_names[id]);
    return buf;
}

/* --- processes ---------------------------------------------------------- */

/* A broker holds one descriptor per client: Mosquitto with 100,000 truck
 * connections needs as many, far above the usual soft limit (1024).  The
 * soft limit goes up to the hard one; as root the hard one too, up to the
 * kernel's fs.nr_open.  Both stop at SVC_MAX_OPEN_FILES: some programs size
 * tables by the limit or close every descriptor below it, which a limit
 * near 2^30 (fs.nr_open under recent systemd) makes slow.  Best effort: a
 * service that stays at a lower limit still runs. */
#define SVC_MAX_OPEN_FILES 1048576ULL
static void raise_open_files(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    unsigned long long want = 0;
    FILE *f = fopen("/proc/sys/fs/nr_open", "r");
    if (f) {
        if (fscanf(f, "%llu", &want) != 1)
            want = 0;
        fclose(f);
    }
    if (want > SVC_MAX_OPEN_FILES)
        want = SVC_MAX_OPEN_FILES;
    if (want > rl.rlim_max) {
        struct rlimit up = {(rlim_t)want, (rlim_t)want};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            return;
    }
    const rlim_t cap = (rlim_t)SVC_MAX_OPEN_FILES; /* RLIM_INFINITY compares as the largest */
    if (rl.rlim_cur < rl.rlim_max && rl.rlim_cur < cap) {
        rl.rlim_cur = rl.rlim_max < cap ? rl.rlim_max : cap;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* In a fresh child, in its own session (proc_spawn()): stdin from
 * /dev/null (or a pipe holding input), open-file limit raised, privileges
 * dropped, output appended to D/log_rel, cwd set.  The log is opened only
 * after dropping to the service user, without following a symbolic link (one
 * there is replaced by a new file): D/log is that user's, and root must not
 * open what it points to.  Never returns on failure. */
static void child_setup(const struct svc_ctx *c, const char *log_rel, const char *cwd, const char *input)
{
    raise_open_files();
    int in = open("/dev/null", O_RDONLY);
    if (in < 0)
        _exit(126);
    if (c->as_root) {
        if (setgroups(0, NULL) != 0 || setgid(c->gid) != 0 || setuid(c->uid) != 0) {
            dprintf(2, "fleetsync: cannot switch to user %s: %s\n", SVC_USER, strerror(errno));
            _exit(126);
        }
        setenv("HOME", c->dir, 1);
        setenv("USER", SVC_USER, 1);
    }
    if (input) {
        /* Made after the switch, so that the service user may open it again
         * as /dev/stdin (initdb --pwfile). */
        int p[2];
        size_t len = strlen(input);
        if (pipe(p) != 0 || write(p[1], input, len) != (ssize_t)len) {
            dprintf(2, "fleetsync: cannot pass input to %s: %s\n", log_rel, strerror(errno));
            _exit(126);
        }
        close(p[1]);
        close(in);
        in = p[0];
    }
    int out = nf_open(c->dir, log_rel, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (out < 0) {
        dprintf(2, "fleetsync: cannot open %s/%s: %s\n", c->dir, log_rel, strerror(errno));
        _exit(126);
    }
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    if (in > 2)
        close(in);
    if (out > 2)
        close(out);
    if (cwd && chdir(cwd) != 0) {
        dprintf(2, "fleetsync: cannot enter %s: %s\n", cwd, strerror(errno));
        _exit(126);
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
}

struct child_args {
    const struct svc_ctx *c;
    const char *log_rel, *cwd, *input;
};

static void child_setup_cb(void *arg)
{
    const struct child_args *a = arg;
    child_setup(a->c, a->log_rel, a->cwd, a->input);
}

/* Forks argv (searched in PATH) as the service user, in its own session,
 * output into D/log_rel; input, when not NULL, is its stdin.  Returns the
 * pid or -1. */
static pid_t spawn_input(const struct svc_ctx *c, char *const argv[], const char *log_rel, const char *cwd,
                         const char *input)
{
    struct child_args a = {.c = c, .log_rel = log_rel, .cwd = cwd, .input = input};
    struct proc_spec spec = {
        .argv = argv, .log_fd = -1, .group = PROC_SESSION_OWN, .setup = child_setup_cb, .setup_arg = &a};
    pid_t pid;
    if (proc_spawn(&spec, &pid) != 0) {
        log_error("fork: %s", strerror(errno));
        return -1;
    }
    return pid;
}

pid_t svc_spawn(const struct svc_ctx *c, char *const argv[], const char *log_rel, const char *cwd)
{
    return spawn_input(c, argv, log_rel, cwd, NULL);
}

/* Runs argv to completion as the service user; returns its exit status. */
int svc_run_sync(const struct svc_ctx *c, char *const argv[], const char *log_rel, const char *cwd, const char *input)
{
    pid_t pid = spawn_input(c, argv, log_rel, cwd, input);
    if (pid < 0)
        return -1;
    int st;
    if (proc_wait(pid, &st) != 0)
        return -1;
    return proc_exit_code(st);
}

/* --- pid files and logs ------------------------------------------------ */

/* "run/<unit>.pid" and "log/<unit>.log", relative to the data dir: both
 * folders are the service user's, so they are opened with core/nofollow.h. */
static void pid_rel(enum svc_id id, int node, char *buf, size_t size)
{
    char name[32];
    snprintf(buf, size, "run/%s.pid", svc_unit_name(id, node, name, sizeof(name)));
}

void svc_log_rel(enum svc_id id, int node, char *buf, size_t size)
{
    char name[32];
    snprintf(buf, size, "log/%s.log", svc_unit_name(id, node, name, sizeof(name)));
}

/* The marker a live process of this service must show in its command line. */
static const char *const svc_markers[SVC_COUNT] = {"mosquitto", "kafka.Kafka", "postgres"};

/* Returns the pid of the running unit, or 0.  A pid file whose process
 * is gone or is some other program is stale: removed, 0 returned.  A Kafka
 * broker must also name its own server.properties (D/kafka-<k>/...). */
pid_t svc_running_pid(const struct svc_ctx *c, enum svc_id id, int node)
{
    char path[64], buf[32], props[64], name[32];
    pid_rel(id, node, path, sizeof(path));
    snprintf(props, sizeof(props), "/%s/server.properties", svc_unit_name(id, node, name, sizeof(name)));
    int pfd = nf_open(c->dir, path, O_RDONLY, 0);
    if (pfd < 0)
        return 0;
    long pid = 0;
    ssize_t got = read(pfd, buf, sizeof(buf) - 1);
    close(pfd);
    if (got > 0) {
        buf[got] = '\0';
        pid = strtol(buf, NULL, 10);
    }

    int alive = 0;
    if (pid > 0 && kill((pid_t)pid, 0) == 0) {
        char proc[64], cmd[8192];
        snprintf(proc, sizeof(proc), "/proc/%ld/cmdline", pid);
        int fd = open(proc, O_RDONLY);
        if (fd >= 0) {
            ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
            close(fd);
            if (n > 0) {
                for (ssize_t i = 0; i < n; i++)
                    if (cmd[i] == '\0')
                        cmd[i] = ' ';
                cmd[n] = '\0';
                /* A zombie (our own unreaped child) has an empty cmdline. */
                alive = strstr(cmd, svc_markers[id]) && strstr(cmd, c->dir) && (id != SVC_KAFKA || strstr(cmd, props));
            }
        }
    }
    if (!alive) {
        log_debug("removing stale pid file %s/%s (pid %ld)", c->dir, path, pid);
        nf_unlink(c->dir, path);
        return 0;
    }
    return (pid_t)pid;
}

/* Services this process forked during a start.  Until exec runs, a child's
 * cmdline is still ours, so its liveness is judged by waitpid(), not /proc. */
static pid_t spawned[SVC_COUNT][SVC_KAFKA_MAX_BROKERS + 1];

int svc_write_pid(const struct svc_ctx *c, enum svc_id id, int node, pid_t pid)
{
    spawned[id][node] = pid;
    char path[64], text[32];
    pid_rel(id, node, path, sizeof(path));
    snprintf(text, sizeof(text), "%d\n", (int)pid);
    if (nf_write(c->dir, path, text, strlen(text), 0644, (uid_t)-1, (gid_t)-1) != 0) {
        log_error("cannot write %s/%s: %s", c->dir, path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Once the unit's process is gone: its pid file goes, and a start no longer
 * waits for the child it forked. */
void svc_pid_forget(const struct svc_ctx *c, enum svc_id id, int node)
{
    char path[64];
    spawned[id][node] = 0;
    pid_rel(id, node, path, sizeof(path));
    nf_unlink(c->dir, path);
}

void svc_print_log_tail(const struct svc_ctx *c, enum svc_id id, int node, int lines)
{
    char rel[64], path[PATH_MAX];
    svc_log_rel(id, node, rel, sizeof(rel));
    svc_path_join(path, sizeof(path), c->dir, rel);
    FILE *f = svc_fopen_read(c, rel);
    if (!f) {
        fprintf(stderr, "(no log at %s)\n", path);
        return;
    }
    char buf[8192];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long from = size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0;
    fseek(f, from, SEEK_SET);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = buf + n;
    int seen = 0;
    while (p > buf && seen <= lines) {
        p--;
        if (*p == '\n' && p != buf + n - 1)
            seen++;
    }
    if (*p == '\n')
        p++;
    fprintf(stderr, "--- last lines of %s ---\n%s", path, p);
    if (n && buf[n - 1] != '\n')
        fputc('\n', stderr);
    fprintf(stderr, "---\n");
}

/* --- waiting ------------------------------------------------------------ */

/* Waits until unit (id, node) answers; fails early when it exits. */
int svc_wait_unit_healthy(const struct svc_ctx *c, enum svc_id id, int node, long long deadline)
{
    char name[32];
    svc_unit_name(id, node, name, sizeof(name));
    while (fs_mono_ms() < deadline) {
        int gone;
        pid_t sp = spawned[id][node];
        if (sp) {
            int r = proc_reap(sp, NULL);
            gone = r == 1 || (r < 0 && errno == ECHILD);
        } else {
            gone = !svc_running_pid(c, id, node);
        }
        if (gone) {
            log_error("%s exited during start", name);
            return -1;
        }
        int left = (int)(deadline - fs_mono_ms());
        left = left < 100 ? 100 : left;
        int ok = id == SVC_MOSQUITTO ? svc_mqtt_healthy(c, left < 2000 ? left : 2000)
                 : id == SVC_KAFKA   ? svc_kafka_healthy(c, node, left < 3000 ? left : 3000)
                                     : svc_pg_healthy(c);
        if (ok == 0)
            return 0;
        usleep(200 * 1000);
    }
    log_error("%s did not answer in time (--timeout)", name);
    return -1;
}

/* Waits up to timeout_s until every unit of the service answers (and a
 * Kafka cluster lists all its brokers).  On failure *failed_node names the
 * unit whose log tells why. */
int svc_wait_healthy(const struct svc_ctx *c, enum svc_id id, int timeout_s, int *failed_node)
{
    long long deadline = fs_mono_ms() + (long long)timeout_s * 1000;
    int first, last;
    svc_unit_range(c, id, &first, &last);
    for (int k = first; k <= last; k++) {
        if (svc_wait_unit_healthy(c, id, k, deadline) != 0) {
            *failed_node = k;
            return -1;
        }
    }
    if (id == SVC_KAFKA && c->kafka_nodes > 1) {
        long long left = deadline - fs_mono_ms();
        if (svc_kafka_cluster_ready(c, left > 1000 ? (int)left : 1000) != 0) {
            *failed_node = first;
            return -1;
        }
    }
    return 0;
}

/* Reaps the services this process started that have exited (only ours:
 * "up" has children of its own). */
void svc_reap_children(void)
{
    for (int i = 0; i < SVC_COUNT; i++)
        for (int k = 0; k <= SVC_KAFKA_MAX_BROKERS; k++)
            if (spawned[i][k] && proc_reap(spawned[i][k], NULL) == 1)
                spawned[i][k] = 0;
}
