/*
 * up.c - "fleetsync up", the main job: the whole stack in one command.
 *
 * Today it runs the embedded services and keeps them up: it starts them,
 * prints where everything is, checks them every few seconds (a service
 * that died is started again, with backoff, and reported), and on Ctrl-C or
 * SIGTERM stops them all cleanly and exits 0.  Data stays in the data dir, so
 * a second "up" resumes where the first stopped.  The bridge, the pipelines
 * and the simulator join this supervisor as they are built.
 */
#include "ops/ops.h"

#include "core/config.h"
#include "core/log.h"
#include "core/sig.h"
#include "ops/services.h"

#include <getopt.h>
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
            "keeps them running (a service that dies is restarted with backoff) and stops\n"
            "them all on Ctrl-C. Data stays in the data dir: a second 'up' resumes.\n"
            "The bridge, pipelines and simulator are not part of this build yet.\n\n"
            "Options:\n"
            "  --check-interval S  seconds between health checks (default 5)\n"
            "  -h, --help          this text\n\n%s",
            cfg_options_help);
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
    enum { OPT_CHECK = 1 };
    static const struct option longopts[] = {
        {"check-interval", required_argument, NULL, OPT_CHECK},
        {"help", no_argument, NULL, 'h'},
        CFG_LONG_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    struct fs_config cfg;
    struct svc_options opt = {.timeout_s = 120};
    int check_s = 5, c, rc = 2;
    char err[512];

    cfg_init(&cfg);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h" CFG_SHORT_OPTIONS, longopts, NULL)) != -1) {
        if (c == 'h') {
            up_usage(stdout);
            rc = 0;
            goto out;
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

    printf("\nFleetSync is up.\n"
           "  MQTT        %s   (publish telemetry to fleet/trucks/{id}/telemetry)\n"
           "  Kafka       %s   (topics %struck-telemetry, truck-status, truck-alerts, truck-telemetry-dlq)\n"
           "  PostgreSQL  %s\n"
           "  data, logs  %s\n"
           "The bridge, the pipelines and the simulator are not part of this build yet.\n"
           "Ctrl-C stops everything.\n\n",
           cfg.mqtt, cfg.brokers, cfg.topic_prefix, cfg.pg, cfg.data_dir);
    fflush(stdout);

    int backoff_s = 1;
    time_t started = time(NULL);
    opt.quiet = 1;
    while (!wait_stop(check_s * 1000)) {
        struct svc_state st[SVC_COUNT];
        if (svc_probe(&cfg, st) != 0)
            continue;
        int down = 0;
        char line[256];
        size_t n = 0;
        for (int i = 0; i < SVC_COUNT; i++) {
            n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s %s", i ? ", " : "", st[i].name,
                                  st[i].healthy ? "ok" : st[i].pid ? "unhealthy" : "DOWN");
            down |= !st[i].pid;
        }
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
    rc = svc_stop(&cfg, 60);
done:
    mosquitto_lib_cleanup();
out:
    cfg_release(&cfg);
    return rc;
}
