/*
 * workers.c - "fleetsync ingest --workers N": N processes on one MQTT port.
 *
 * Each worker is a whole ingest (its own listening socket bound with
 * SO_REUSEPORT, so the kernel spreads new connections over them; its own
 * Kafka producer; its own metrics port, base + index; its own descriptor
 * limit).  Nothing is shared between them: N ingest hosts behind a TCP load
 * balancer behave the same way.  The parent forks them before any thread
 * exists (librdkafka's and the metrics server's threads do not survive a
 * fork), restarts one that dies after a backoff (1 s, doubling up to 30 s
 * while it keeps dying within 30 s of its start), forwards SIGINT/SIGTERM
 * as SIGTERM (each worker then stops cleanly: flush, PUBACKs of what Kafka
 * acknowledged, MQTT 5 DISCONNECT 0x8B), and exits once all have.
 *
 * The workers are in a process group of their own, so a terminal's Ctrl-C
 * reaches the parent only and each worker hears one SIGTERM (a second
 * signal would make it exit at once); a parent killed outright takes them
 * with it (PR_SET_PDEATHSIG).
 */
#include "ingest/ingest.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/sig.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define WORKERS_MAX 256
#define BACKOFF_MAX_MS 30000
#define QUICK_DEATH_MS 30000

struct worker {
    pid_t pid; /* 0: not running */
    int64_t started_ms, restart_at_ms;
    int quick_deaths; /* deaths within QUICK_DEATH_MS of a start, in a row */
};

static char worker_component[32];

/* Forks worker i: 0 in the parent (pid set), 1 in the worker. */
static int spawn(struct worker *w, int i, pid_t parent)
{
    pid_t pid = fork();
    if (pid < 0) {
        log_error("cannot start worker %d: fork: %s", i, strerror(errno));
        w->restart_at_ms = fs_mono_ms() + 1000;
        return 0;
    }
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) /* the parent died before prctl */
            _exit(1);
        if (sig_after_fork() != 0) {
            log_error("worker %d: pipe: %s", i, strerror(errno));
            _exit(1);
        }
        snprintf(worker_component, sizeof(worker_component), "ingest.%d", i);
        log_set_component(worker_component);
        return 1;
    }
    w->pid = pid;
    w->started_ms = fs_mono_ms();
    return 0;
}

static void describe(int status, char *buf, size_t size)
{
    if (WIFSIGNALED(status))
        snprintf(buf, size, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
}

int ing_workers_run(int n, int *index)
{
    struct worker ws[WORKERS_MAX];
    pid_t self = getpid();
    int running = 0, forwarded = 0, failed = 0, start_failures = 0, restarts = 0;
    if (n > WORKERS_MAX)
        n = WORKERS_MAX;
    memset(ws, 0, sizeof(ws));
    int64_t t0 = fs_mono_ms();
    for (int i = 0; i < n; i++) {
        if (spawn(&ws[i], i, self)) {
            *index = i;
            return ING_WORKER;
        }
        if (ws[i].pid > 0) {
            running++;
            log_info("worker %d started, pid %d", i, (int)ws[i].pid);
        }
    }
    for (;;) {
        if (sig_stopping() && !forwarded) {
            log_info("stopping: asking the %d workers to stop", running);
            for (int i = 0; i < n; i++)
                if (ws[i].pid > 0)
                    kill(ws[i].pid, SIGTERM);
            forwarded = 1;
        }
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            int i = 0;
            while (i < n && ws[i].pid != pid)
                i++;
            if (i == n)
                continue;
            ws[i].pid = 0;
            running--;
            int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            char why[96];
            describe(status, why, sizeof(why));
            if (forwarded) {
                failed += !clean;
                if (!clean)
                    log_warn("worker %d (pid %d) %s while stopping", i, (int)pid, why);
                continue;
            }
            int64_t now = fs_mono_ms();
            /* Every first worker failing at once is the configuration (a
             * port in use, Kafka unreachable): restarting will not help. */
            if (!restarts && !clean && now - t0 < QUICK_DEATH_MS && ++start_failures == n) {
                failed = 1;
                log_error("no worker could start; stopping");
                sig_request_stop();
                continue;
            }
            ws[i].quick_deaths = now - ws[i].started_ms < QUICK_DEATH_MS ? ws[i].quick_deaths + 1 : 1;
            int64_t delay = 1000;
            for (int k = 1; k < ws[i].quick_deaths && delay < BACKOFF_MAX_MS; k++)
                delay *= 2;
            if (delay > BACKOFF_MAX_MS)
                delay = BACKOFF_MAX_MS;
            ws[i].restart_at_ms = now + delay;
            log_warn("worker %d (pid %d) %s after %.1f s; restarting it in %lld s (its clients reconnect to the "
                     "others meanwhile)",
                     i, (int)pid, why, (double)(now - ws[i].started_ms) / 1000.0, (long long)(delay / 1000));
        }
        if (forwarded && running == 0)
            break;
        int64_t now = fs_mono_ms();
        for (int i = 0; i < n && !sig_stopping(); i++) {
            if (ws[i].pid || now < ws[i].restart_at_ms)
                continue;
            if (spawn(&ws[i], i, self)) {
                *index = i;
                return ING_WORKER;
            }
            if (ws[i].pid > 0) {
                running++;
                restarts++;
                log_info("worker %d restarted, pid %d", i, (int)ws[i].pid);
            }
        }
        struct pollfd pfd = {.fd = sig_fd(), .events = POLLIN};
        if (poll(&pfd, 1, 100) > 0) {
            char buf[64];
            while (read(sig_fd(), buf, sizeof(buf)) > 0)
                ;
        }
    }
    log_info("all workers stopped");
    return failed ? 1 : 0;
}
