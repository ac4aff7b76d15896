/*
 * up.c - "fleetsync up", the main job: the whole stack in one command.
 *
 * It starts the embedded services, then the FleetSync processes (the
 * bridge today; the pipelines and the simulator join as they are built),
 * each a child running this same binary with the same endpoints, in its own
 * process group so that a Ctrl-C reaches only us.  It prints where
 * everything is and watches: a child that exits is restarted with backoff
 * and reported, a service that died is started again.  On Ctrl-C or SIGTERM
 * it stops the children in reverse start order (each flushes and commits on
 * SIGTERM), then the services, and exits 0.  Data stays in the data dir, so a
 * second "up" resumes where the first stopped.  Children log to
 * DATA_DIR/log/<name>.log.
 */
#include "ops/ops.h"

#include "core/config.h"
#include "core/log.h"
#include "core/sig.h"
#include "ops/services.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <mosquitto.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void up_usage(FILE *out)
{
    fprintf(out,
            "usage: fleetsync up [options]\n\n"
            "Starts the embedded Mosquitto, Kafka and PostgreSQL (as 'fleetsync services start'),\n"
            "the MQTT -> Kafka bridge, the pipelines built so far (history into PostgreSQL, the\n"
            "live dashboard on --listen) and the truck simulator, keeps them running (whatever\n"
            "dies is restarted with backoff) and stops them all on Ctrl-C. Data stays in the\n"
            "data dir: a second 'up' resumes. Logs: DATA_DIR/log/.\n\n"
            "Options:\n"
            "  --trucks N          simulated trucks (default 1000)\n"
            "  --interval S        seconds between two readings of a simulated truck (default 10)\n"
            "  --no-sim            no simulator: real trucks publish to the MQTT broker\n"
            "  --check-interval S  seconds between health checks (default 5)\n"
            "  -h, --help          this text\n\n%s",
            cfg_options_help);
}

struct child {
    const char *name;
    const char *args[8]; /* subcommand and its own options; NULL-terminated */
    pid_t pid;
    int backoff_s;
    time_t next_start;
    int restarts;
};

/* In start order; stopped in reverse (the simulator first, so nothing is
 * left unbridged). */
static char sim_trucks[24] = "1000", sim_interval[24] = "10";
static struct child children[] = {
    {.name = "bridge", .args = {"bridge", "--quiet", NULL}},
    {.name = "history", .args = {"history", NULL}},
    {.name = "dashboard", .args = {"dashboard", NULL}},
    {.name = "sim", .args = {"sim", "--quiet", "--trucks", sim_trucks, "--interval", sim_interval, NULL}},
};
static int nchildren = (int)(sizeof(children) / sizeof(children[0]));
#define NCHILDREN nchildren

static int child_start(struct child *ch, const struct fs_config *cfg)
{
    char exe[PATH_MAX], logp[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    snprintf(logp, sizeof(logp), "%s/log/%s.log", cfg->data_dir, ch->name);
    const char *argv[32];
    int a = 0;
    argv[a++] = exe;
    for (int i = 0; ch->args[i]; i++)
        argv[a++] = ch->args[i];
    const char *shared[] = {"--mqtt", cfg->mqtt, "--brokers", cfg->brokers, "--pg", cfg->pg,
                            "--data-dir", cfg->data_dir, "--topic-prefix", cfg->topic_prefix};
    for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
        argv[a++] = shared[i];
    argv[a] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        setpgid(0, 0);
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    ch->pid = pid;
    log_info("started %s (pid %d, log %s)", ch->name, (int)pid, logp);
    return 0;
}

/* Reaps children that exited and schedules their restart. */
static void children_reap(void)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (int i = 0; i < NCHILDREN; i++) {
            struct child *ch = &children[i];
            if (ch->pid != pid)
                continue;
            ch->pid = 0;
            if (sig_stopping())
                break;
            ch->backoff_s = ch->backoff_s ? (ch->backoff_s < 30 ? ch->backoff_s * 2 : 60) : 1;
            ch->next_start = time(NULL) + ch->backoff_s;
            ch->restarts++;
            if (WIFEXITED(st))
                log_warn("%s exited with status %d; restarting in %d s (see its log)", ch->name, WEXITSTATUS(st),
                         ch->backoff_s);
            else
                log_warn("%s was killed by signal %d; restarting in %d s", ch->name, WTERMSIG(st), ch->backoff_s);
        }
    }
}

static void children_tick(const struct fs_config *cfg)
{
    children_reap();
    time_t now = time(NULL);
    for (int i = 0; i < NCHILDREN; i++) {
        struct child *ch = &children[i];
        if (!ch->pid && now >= ch->next_start && child_start(ch, cfg) != 0)
            log_error("cannot start %s: %s", ch->name, strerror(errno));
        /* A child that stayed up a minute has earned a fresh backoff. */
        if (ch->pid && now - ch->next_start > 60)
            ch->backoff_s = 0;
    }
}

/* SIGTERM to each child in reverse start order, waiting for each. */
static void children_stop(void)
{
    for (int i = NCHILDREN - 1; i >= 0; i--) {
        struct child *ch = &children[i];
        if (!ch->pid)
            continue;
        log_info("stopping %s (pid %d)", ch->name, (int)ch->pid);
        kill(ch->pid, SIGTERM);
        int st;
        for (int t = 0; t < 600; t++) {
            if (waitpid(ch->pid, &st, WNOHANG) == ch->pid) {
                ch->pid = 0;
                break;
            }
            usleep(50 * 1000);
        }
        if (ch->pid) {
            log_warn("%s did not stop within 30 s; killing it", ch->name);
            kill(ch->pid, SIGKILL);
            waitpid(ch->pid, &st, 0);
            ch->pid = 0;
        }
    }
}

/* Waits up to ms for a stop request; returns 1 if one came. */
static int wait_stop(int ms)
{
    struct pollfd p = {.fd = sig_fd(), .events = POLLIN};
    if (!sig_stopping())
        poll(&p, 1, ms);
    return sig_stopping();
}

int cmd_up(int argc, char **argv)
{
    enum { OPT_CHECK = 1, OPT_TRUCKS, OPT_INTERVAL, OPT_NO_SIM };
    static const struct option longopts[] = {
        {"check-interval", required_argument, NULL, OPT_CHECK},
        {"trucks", required_argument, NULL, OPT_TRUCKS},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {"no-sim", no_argument, NULL, OPT_NO_SIM},
        {"help", no_argument, NULL, 'h'},
        CFG_LONG_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    struct fs_config cfg;
    struct svc_options opt = {.timeout_s = 120};
    int check_s = 5, c, rc = 2, no_sim = 0;
    char err[512];

    cfg_init(&cfg);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h" CFG_SHORT_OPTIONS, longopts, NULL)) != -1) {
        if (c == 'h') {
            up_usage(stdout);
            rc = 0;
            goto out;
        } else if (c == OPT_TRUCKS || c == OPT_INTERVAL) {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > (c == OPT_TRUCKS ? 10000000 : 86400)) {
                fprintf(stderr, "fleetsync up: --%s must be a positive number\n",
                        c == OPT_TRUCKS ? "trucks" : "interval");
                goto out;
            }
            snprintf(c == OPT_TRUCKS ? sim_trucks : sim_interval, sizeof(sim_trucks), "%ld", v);
        } else if (c == OPT_NO_SIM) {
            if (!no_sim)
                nchildren--; /* the simulator is last */
            no_sim = 1;
        } else if (c == OPT_CHECK) {
            check_s = atoi(optarg);
            if (check_s < 1) {
                fprintf(stderr, "fleetsync up: --check-interval must be at least 1 second\n");
                goto out;
            }
        } else if (cfg_option(&cfg, c, optarg, err, sizeof(err)) != 1) {
            if (c != '?')
                fprintf(stderr, "fleetsync up: %s\n", err);
            up_usage(stderr);
            goto out;
        }
    }
    if (optind != argc) {
        up_usage(stderr);
        goto out;
    }
    if (svc_ports_from_config(&cfg, &opt.ports, err, sizeof(err)) != 0) {
        fprintf(stderr, "fleetsync up: %s\n", err);
        goto out;
    }
    sig_install();
    mosquitto_lib_init();
    rc = 1;
    if (svc_start(&cfg, &opt) != 0)
        goto done;

    char sim_line[128];
    if (!no_sim)
        snprintf(sim_line, sizeof(sim_line), "%s trucks, one reading each every %s s (--no-sim for real trucks)",
                 sim_trucks, sim_interval);
    else
        snprintf(sim_line, sizeof(sim_line), "off (--no-sim): real trucks publish to the broker");
    printf("\nFleetSync is up.\n"
           "  MQTT        %s   (publish telemetry to fleet/trucks/{id}/telemetry)\n"
           "  Kafka       %s   (topics %struck-telemetry, truck-status, truck-alerts, truck-telemetry-dlq)\n"
           "  PostgreSQL  %s\n"
           "  data, logs  %s\n"
           "  bridge      MQTT -> Kafka (logs of every process in %s/log/)\n"
           "  dashboard   http://%s/   (the live map)\n"
           "  history     every reading into PostgreSQL: fleetsync report avg-speed --fleet --since 1d\n"
           "  simulator   %s\n"
           "Ctrl-C stops everything.\n\n",
           cfg.mqtt, cfg.brokers, cfg.topic_prefix, cfg.pg, cfg.data_dir, cfg.data_dir, cfg.listen, sim_line);
    fflush(stdout);

    int backoff_s = 1;
    time_t started = time(NULL), last_check = 0;
    opt.quiet = 1;
    children_tick(&cfg);
    while (!wait_stop(1000)) {
        children_tick(&cfg);
        if (time(NULL) - last_check < check_s)
            continue;
        last_check = time(NULL);
        struct svc_state st[SVC_COUNT];
        if (svc_probe(&cfg, st) != 0)
            continue;
        int down = 0;
        char line[512];
        size_t n = 0;
        for (int i = 0; i < SVC_COUNT; i++) {
            n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s %s", i ? ", " : "", st[i].name,
                                  st[i].healthy ? "ok" : st[i].pid ? "unhealthy" : "DOWN");
            down |= !st[i].pid;
        }
        for (int i = 0; i < NCHILDREN && n < sizeof(line); i++)
            n += (size_t)snprintf(line + n, sizeof(line) - n, ", %s %s", children[i].name,
                                  children[i].pid ? "ok" : "RESTARTING");
        long up_s = (long)(time(NULL) - started);
        if (isatty(STDOUT_FILENO)) {
            printf("\r[%02ld:%02ld:%02ld] %s   ", up_s / 3600, up_s / 60 % 60, up_s % 60, line);
            fflush(stdout);
        }
        if (down) {
            if (isatty(STDOUT_FILENO))
                printf("\n");
            log_warn("%s; restarting in %d s", line, backoff_s);
            if (wait_stop(backoff_s * 1000))
                break;
            if (svc_start(&cfg, &opt) == 0) {
                log_info("services restarted");
                backoff_s = 1;
            } else if (backoff_s < 60) {
                backoff_s *= 2;
            }
        }
    }
    if (isatty(STDOUT_FILENO))
        printf("\n");
    log_info("stopping");
    children_stop();
    rc = svc_stop(&cfg, 60);
done:
    mosquitto_lib_cleanup();
out:
    cfg_release(&cfg);
    return rc;
}
