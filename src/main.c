/*
 * main.c - the fleetsync binary: one table of subcommands, as git does.
 *
 * Each command is "int cmd_<name>(int argc, char **argv)" living with its
 * component; argv[0] is the subcommand's name.  Exit codes: 0 ok, 1 runtime
 * failure, 2 usage error.
 */
#include "billing/billing.h"
#include "notify/notify.h"
#include "bridge/bridge.h"
#include "ingest/ingest.h"
#include "dashboard/dashboard.h"
#include "detect/detect.h"
#include "report/report.h"
#include "history/history.h"
#include "admin/admin.h"
#include "stack/services.h"
#include "up/up.h"
#include "admin/trucks.h"
#include "detect/benchdetect.h"
#include "sim/sim.h"

#include "core/log.h"

#include <stdio.h>
#include <string.h>

struct cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
};

static const struct cmd commands[] = {
    {"up", cmd_up, "whole stack + simulator; Ctrl-C stops all"},
    {"services", cmd_services, "start|stop|status the embedded Mosquitto, Kafka, PostgreSQL"},
    {"sim", cmd_sim, "truck fleet simulator publishing telemetry over MQTT"},
    {"bridge", cmd_bridge, "MQTT -> Kafka bridge (validates, routes bad payloads to the DLQ)"},
    {"ingest", cmd_ingest, "MQTT server for trucks writing to Kafka itself (PUBACK once Kafka has it)"},
    {"dashboard", cmd_dashboard, "live map: consumer group fleetsync-dashboard, HTTP + WebSocket"},
    {"history", cmd_history, "PostgreSQL sink: consumer group fleetsync-history, exactly once"},
    {"detect", cmd_detect, "theft and anomaly detection: consumer group fleetsync-detector"},
    {"billing", cmd_billing, "per truck and day billing: consumer group fleetsync-billing"},
    {"notify", cmd_notify, "alerts to webhooks over HTTP: consumer group fleetsync-notify"},
    {"replay", cmd_replay, "rewind a stopped consumer group (--since 2h | --at ISO8601)"},
    {"status", cmd_status, "services, consumer groups, lag and rates"},
    {"report", cmd_report, "history queries: avg-speed, summary, trips, stops, track, alerts; invoice"},
    {"bench", cmd_bench, "bench detect: precision / recall per rule for a scenario"},
    {"trucks", cmd_trucks, "trucks add ID...|--count N: per-truck MQTT credentials"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: fleetsync <command> [options]   (fleetsync <command> --help for more)\n\n"
                 "FleetSync moves truck telemetry from MQTT into Apache Kafka and runs\n"
                 "independent pipelines on it: live map, history, detection, billing.\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nExit codes: 0 ok, 1 runtime failure, 2 usage error.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, name) != 0)
            continue;
        log_set_component(commands[i].name);
        return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "fleetsync: '%s' is not a command\n\n", name);
    usage(stderr);
    return 2;
}
