/*
 * services.c - `fleetsync services start|stop|status`: the option table;
 * start (each service started and waited for, then the PostgreSQL roles,
 * the Kafka topics and, when secure, the ACLs); stop; status and the probes
 * other commands use (also of endpoints this data dir did not start).
 *
 * The parts (stack.h): the data dir and its user (datadir.c), processes and
 * pid files (supervisor.c), Mosquitto (mosquitto.c), the local CA
 * (certs.c), Kafka (kafka.c), PostgreSQL (postgres.c) and its roles and
 * passwords (pgroles.c).  The data dir layout is in services.h.
 */
#include "stack/services.h"
#include "stack/stack.h"

#include "core/clock.h"
#include "core/kafka.h"
#include "core/kafkaauth.h"
#include "core/log.h"
#include "core/mqttauth.h"
#include "core/nofollow.h"
#include "core/opts.h"
#include "core/topics.h"
#include "core/units.h"

#include <errno.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* An endpoint this data dir did not start, probed where the shared options
 * point (--mqtt, --brokers with the -X properties, --pg).  Returns 0 when it
 * answers. */
static int external_healthy(const struct fs_config *cfg, enum svc_id id)
{
    char err[256];
    if (id == SVC_MOSQUITTO) {
        struct cfg_mqtt_url url;
        if (cfg_parse_mqtt_url(cfg->mqtt, &url, err, sizeof(err)) != 0)
            return -1;
        return svc_mqtt_healthy_at(&url, url.port, 0, 2000);
    }
    if (id == SVC_KAFKA) {
        static const char *const defaults[] = {"socket.connection.setup.timeout.ms", "2000", NULL};
        rd_kafka_conf_t *conf = kafka_conf_new(cfg, defaults, err, sizeof(err));
        if (!conf)
            return -1;
        rd_kafka_conf_set_log_cb(conf, svc_kafka_quiet_log_cb);
        rd_kafka_t *rk = kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        if (!rk)
            return -1;
        int rc = kafka_wait_ready(rk, 3000, err, sizeof(err));
        rd_kafka_destroy(rk);
        return rc;
    }
    const char *keys[] = {"dbname", "connect_timeout", NULL};
    const char *values[] = {cfg->pg, "2", NULL};
    return PQpingParams(keys, values, 1) == PQPING_OK ? 0 : -1;
}

int svc_start(const struct fs_config *cfg, const struct svc_options *opt)
{
    struct svc_ctx c;
    long long t0 = fs_mono_ms();
    int failed = -1, failed_node = 0;
    char err[512];

    if (opt->kafka_brokers != 0 && opt->kafka_brokers != 1 && opt->kafka_brokers != SVC_KAFKA_MAX_BROKERS) {
        log_error("%d Kafka brokers: only 1 or %d are supported", opt->kafka_brokers, SVC_KAFKA_MAX_BROKERS);
        return 1;
    }
    if (svc_ctx_init(&c, cfg, &opt->ports, 1) != 0 || svc_check_reachable(&c) != 0)
        return 1;
    c.tls_port = opt->tls_port;
    if (svc_kafka_nodes_choose(&c, opt->kafka_brokers) != 0 || svc_kafka_secure_choose(&c, opt->secure) != 0 ||
        svc_edge_choose(&c, opt->edge) != 0)
        return 1;
    if (svc_mkdir(&c, "run", 0755) != 0 || svc_mkdir(&c, "log", 0755) != 0)
        return 1;

    /* Units running per service; a service counts as running when all are. */
    int running[SVC_COUNT] = {0}, units[SVC_COUNT], any = 0;
    pid_t first_pid[SVC_COUNT] = {0};
    for (int i = 0; i < SVC_COUNT; i++) {
        int first, last;
        svc_unit_range(&c, (enum svc_id)i, &first, &last);
        units[i] = last - first + 1;
        for (int k = first; k <= last; k++) {
            pid_t pid = svc_running_pid(&c, (enum svc_id)i, k);
            if (pid && !first_pid[i])
                first_pid[i] = pid;
            running[i] += pid != 0;
        }
        any |= running[i];
    }
    /* Ports recorded by a running stack win: a second start must not write
     * ports the running services do not listen on. */
    if (!any && svc_save_ports(&c) != 0) {
        log_error("cannot write %s/run/ports: %s", c.dir, strerror(errno));
        return 1;
    }

    static int (*const starters[SVC_COUNT])(const struct svc_ctx *) = {svc_start_mosquitto, svc_start_kafka,
                                                                       svc_start_postgres};
    for (int i = 0; i < SVC_COUNT; i++) {
        if (i == SVC_MOSQUITTO && c.edge_ingest && !running[i]) {
            /* fleetsync ingest (run by up) takes the MQTT port. */
            if (svc_edge_ingest_prepare(&c) != 0) {
                failed = -1;
                goto fail;
            }
            continue;
        }
        if (running[i] == units[i]) {
            if (!opt->quiet && units[i] > 1)
                log_info("%s already running (%d brokers)", svc_names[i], units[i]);
            else if (!opt->quiet)
                log_info("%s already running (pid %d)", svc_names[i], (int)first_pid[i]);
            if (i == SVC_MOSQUITTO && opt->tls_port && mqa_tls_port(c.dir) != opt->tls_port)
                log_warn("mosquitto is running without a TLS listener on port %d; 'fleetsync services stop' "
                         "first to start it with --tls",
                         opt->tls_port);
            continue;
        }
        if (running[i] && !opt->quiet)
            log_info("%s: %d of %d brokers running; starting the others", svc_names[i], running[i], units[i]);
        if (starters[i](&c) != 0) {
            int first, last;
            svc_unit_range(&c, (enum svc_id)i, &first, &last);
            failed = i;
            failed_node = first;
            goto fail;
        }
    }
    for (int i = 0; i < SVC_COUNT; i++) {
        if (i == SVC_MOSQUITTO && c.edge_ingest && !running[i])
            continue;
        if (svc_wait_healthy(&c, (enum svc_id)i, opt->timeout_s, &failed_node) != 0) {
            failed = i;
            goto fail;
        }
        svc_reap_children();
    }
    if (svc_pg_provision(&c) != 0) {
        failed = SVC_POSTGRES;
        failed_node = 0;
        goto fail;
    }

    /* On a cluster every topic has 3 replicas and min.insync.replicas 2. */
    rd_kafka_t *rk = svc_kafka_admin(&c, -1, err, sizeof(err));
    if (!rk || topics_ensure(rk, cfg, c.kafka_nodes, opt->partitions, 30000, err, sizeof(err)) != 0 ||
        (c.secure && svc_kafka_acls_ensure(rk, cfg, 30000, err, sizeof(err)) != 0)) {
        log_error("%s", err);
        if (rk)
            rd_kafka_destroy(rk);
        int last;
        failed = SVC_KAFKA;
        svc_unit_range(&c, SVC_KAFKA, &failed_node, &last);
        goto fail;
    }
    rd_kafka_destroy(rk);

    char kb[256];
    svc_kafka_bootstrap_list(&c, kb, sizeof(kb));
    char mqtt[96];
    snprintf(mqtt, sizeof(mqtt),
             c.edge_ingest && !running[SVC_MOSQUITTO] ? "no Mosquitto (fleetsync ingest takes MQTT on 127.0.0.1:%d)"
                                                      : "MQTT 127.0.0.1:%d",
             c.ports.mqtt);
    if (!opt->quiet)
        log_info("services up in %.1f s: %s, Kafka %s%s%s, PostgreSQL 127.0.0.1:%d; "
                 "data and logs in %s",
                 (double)(fs_mono_ms() - t0) / 1000.0, mqtt, kb,
                 c.kafka_nodes > 1 ? " (3 brokers: replication factor 3, min.insync.replicas 2)" : "",
                 c.secure ? " (SASL/" KA_MECHANISM " and ACLs)" : "", c.ports.pg, c.dir);
    if (!opt->quiet && c.tls_port && mqa_tls_port(c.dir) == c.tls_port && !c.edge_ingest)
        log_info("MQTT over TLS: mqtts://127.0.0.1:%d (clients trust %s/tls/ca.crt)", c.tls_port, c.dir);
    return 0;

fail:
    svc_reap_children();
    if (failed >= 0)
        svc_print_log_tail(&c, (enum svc_id)failed, failed_node, 25);
    log_error("start failed; the services that did start are still running ('fleetsync services stop' stops them)");
    return 1;
}

int svc_stop(const struct fs_config *cfg, int timeout_s)
{
    struct svc_ctx c;
    if (svc_ctx_init(&c, cfg, NULL, 0) != 0)
        return 1;
    /* PostgreSQL: SIGINT is its "fast" shutdown (roll back, checkpoint, exit);
     * Kafka and Mosquitto shut down cleanly on SIGTERM.  A cluster's brokers
     * are signalled together: each hands its leaderships over while the
     * controller quorum still has its majority. */
    static const int stop_signal[SVC_COUNT] = {SIGTERM, SIGTERM, SIGINT};
    struct {
        enum svc_id id;
        int node;
        pid_t pid;
    } u[SVC_COUNT + SVC_KAFKA_MAX_BROKERS];
    int nu = 0;
    for (int i = SVC_COUNT - 1; i >= 0; i--) {
        int first, last;
        svc_unit_range(&c, (enum svc_id)i, &first, &last);
        for (int k = first; k <= last; k++) {
            pid_t pid = svc_running_pid(&c, (enum svc_id)i, k);
            char name[32];
            if (!pid)
                continue;
            log_info("stopping %s (pid %d)", svc_unit_name((enum svc_id)i, k, name, sizeof(name)), (int)pid);
            kill(pid, stop_signal[i]);
            u[nu].id = (enum svc_id)i;
            u[nu].node = k;
            u[nu].pid = pid;
            nu++;
        }
    }
    if (!nu) {
        log_info("no service of %s is running", c.dir);
        return 0;
    }
    long long deadline = fs_mono_ms() + (long long)timeout_s * 1000;
    int rc = 0;
    for (int j = 0; j < nu; j++) {
        pid_t pid = u[j].pid;
        char name[32];
        svc_unit_name(u[j].id, u[j].node, name, sizeof(name));
        while (kill(pid, 0) == 0 && fs_mono_ms() < deadline) {
            svc_reap_children();
            usleep(100 * 1000);
        }
        if (kill(pid, 0) == 0) {
            log_warn("%s (pid %d) did not stop within %d s; killing it", name, (int)pid, timeout_s);
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            for (int k = 0; k < 50 && kill(pid, 0) == 0; k++) {
                svc_reap_children();
                usleep(100 * 1000);
            }
            if (kill(pid, 0) == 0) {
                log_error("%s (pid %d) is still there", name, (int)pid);
                rc = 1;
                continue;
            }
        }
        /* PostgreSQL's backends and Kafka's forks share the session: make sure
         * none outlives its leader. */
        kill(-pid, SIGKILL);
        svc_pid_forget(&c, u[j].id, u[j].node);
    }
    if (rc == 0)
        log_info("all services of %s stopped", c.dir);
    return rc;
}

static long long dir_bytes_total;
static int dir_bytes_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)flag;
    (void)ftw;
    dir_bytes_total += (long long)st->st_blocks * 512;
    return 0;
}

static long long dir_bytes(const char *path)
{
    dir_bytes_total = 0;
    nftw(path, dir_bytes_cb, 16, FTW_PHYS);
    return dir_bytes_total;
}

/* One Kafka node, as services status shows it. */
struct knode_state {
    int node;
    int pid;
    int port;
    int controller;
    int healthy;
    long long data_bytes;
};

/* always != 0 probes a service without a pid file too: an endpoint this
 * data dir did not start, where the shared options point.  kn gets each
 * Kafka node (*nkn of them). */
static int probe_all(const struct fs_config *cfg, struct svc_state out[SVC_COUNT],
                     struct knode_state kn[SVC_KAFKA_MAX_BROKERS + 1], int *nkn, int always)
{
    struct svc_ctx c;
    if (svc_ctx_init(&c, cfg, NULL, 0) != 0)
        return -1;
    const int ports[SVC_COUNT] = {c.ports.mqtt, c.ports.kafka, c.ports.pg};
    *nkn = 0;
    for (int i = 0; i < SVC_COUNT; i++) {
        char path[PATH_MAX];
        memset(&out[i], 0, sizeof(out[i]));
        out[i].name = svc_names[i];
        out[i].port = ports[i];
        if (i == SVC_KAFKA) {
            /* healthy = every broker answers; pid = the first running one. */
            int first, last, all = 1;
            svc_unit_range(&c, SVC_KAFKA, &first, &last);
            for (int k = first; k <= last; k++) {
                struct knode_state *n = &kn[(*nkn)++];
                char name[32];
                n->node = k ? k : 1;
                n->pid = (int)svc_running_pid(&c, SVC_KAFKA, k);
                n->port = svc_kafka_port(&c, k);
                n->controller = svc_kafka_controller_port(&c, k);
                n->healthy = n->pid && svc_kafka_healthy(&c, k, 3000) == 0;
                svc_path_join(path, sizeof(path), c.dir, svc_unit_name(SVC_KAFKA, k, name, sizeof(name)));
                n->data_bytes = dir_bytes(path);
                if (n->pid && !out[i].pid)
                    out[i].pid = n->pid;
                out[i].brokers_running += n->pid != 0;
                out[i].data_bytes += n->data_bytes;
                all &= n->healthy;
            }
            out[i].brokers = last - first + 1;
            out[i].healthy = all;
            if (!out[i].pid && always)
                out[i].healthy = external_healthy(cfg, SVC_KAFKA) == 0;
            continue;
        }
        out[i].pid = (int)svc_running_pid(&c, (enum svc_id)i, 0);
        if (i == SVC_MOSQUITTO && !out[i].pid && c.edge_ingest) {
            out[i].off = out[i].healthy = 1; /* fleetsync ingest is the edge */
        } else if (out[i].pid) {
            int ok = i == SVC_MOSQUITTO ? svc_mqtt_healthy(&c, 2000) : svc_pg_healthy(&c);
            out[i].healthy = ok == 0;
        } else if (always) {
            out[i].healthy = external_healthy(cfg, (enum svc_id)i) == 0;
        }
        svc_path_join(path, sizeof(path), c.dir, svc_names[i]);
        out[i].data_bytes = dir_bytes(path);
    }
    return 0;
}

int svc_probe(const struct fs_config *cfg, struct svc_state out[SVC_COUNT])
{
    struct knode_state kn[SVC_KAFKA_MAX_BROKERS + 1];
    int nkn;
    return probe_all(cfg, out, kn, &nkn, 0);
}

int svc_probe_endpoints(const struct fs_config *cfg, struct svc_state out[SVC_COUNT])
{
    struct knode_state kn[SVC_KAFKA_MAX_BROKERS + 1];
    int nkn;
    return probe_all(cfg, out, kn, &nkn, 1);
}

int svc_status(const struct fs_config *cfg, int json)
{
    struct svc_state st[SVC_COUNT];
    struct knode_state kn[SVC_KAFKA_MAX_BROKERS + 1];
    int nkn = 0;
    if (probe_all(cfg, st, kn, &nkn, 0) != 0)
        return 1;
    int all = 1;
    if (json)
        printf("[");
    else
        printf("%-10s %8s %6s  %-9s %10s\n", "SERVICE", "PID", "PORT", "HEALTH", "DATA");
    for (int i = 0; i < SVC_COUNT; i++) {
        char size[32];
        units_format_bytes((uint64_t)st[i].data_bytes, size, sizeof(size));
        /* A cluster with some brokers down still serves: "degraded". */
        const char *health = st[i].off                        ? "off"
                             : st[i].healthy                  ? "healthy"
                             : st[i].brokers > 1 && st[i].pid ? "degraded"
                             : st[i].pid                      ? "unhealthy"
                                                              : "down";
        if (json) {
            printf("%s{\"name\":\"%s\",\"pid\":%d,\"port\":%d,\"healthy\":%s,\"data_bytes\":%lld", i ? "," : "",
                   st[i].name, st[i].pid, st[i].port, st[i].healthy ? "true" : "false", st[i].data_bytes);
            if (st[i].off)
                printf(",\"off\":true");
            if (i == SVC_KAFKA) {
                printf(",\"brokers\":[");
                for (int k = 0; k < nkn; k++)
                    printf("%s{\"node\":%d,\"pid\":%d,\"port\":%d,\"controller_port\":%d,\"healthy\":%s,"
                           "\"data_bytes\":%lld}",
                           k ? "," : "", kn[k].node, kn[k].pid, kn[k].port, kn[k].controller,
                           kn[k].healthy ? "true" : "false", kn[k].data_bytes);
                printf("]");
            }
            printf("}");
        } else if (st[i].pid) {
            printf("%-10s %8d %6d  %-9s %10s\n", st[i].name, st[i].pid, st[i].port, health, size);
        } else {
            printf("%-10s %8s %6d  %-9s %10s\n", st[i].name, "-", st[i].port, health, size);
        }
        /* A cluster's brokers, each on its own line under "kafka". */
        for (int k = 0; !json && i == SVC_KAFKA && nkn > 1 && k < nkn; k++) {
            char name[32], pid[16];
            units_format_bytes((uint64_t)kn[k].data_bytes, size, sizeof(size));
            snprintf(name, sizeof(name), "  kafka-%d", kn[k].node);
            snprintf(pid, sizeof(pid), "%d", kn[k].pid);
            printf("%-10s %8s %6d  %-9s %10s  controller %d\n", name, kn[k].pid ? pid : "-", kn[k].port,
                   kn[k].healthy ? "healthy"
                   : kn[k].pid   ? "unhealthy"
                                 : "down",
                   size, kn[k].controller);
        }
        all &= st[i].healthy;
    }
    if (json)
        printf("]\n");
    return all ? 0 : 1;
}

/* --- the command ------------------------------------------------------- */

#define STR_(x) #x
#define STR(x) STR_(x)

static const char services_about[] =
    "Runs the embedded stack: Mosquitto (MQTT), Kafka " SVC_KAFKA_VERSION " in KRaft mode, PostgreSQL.\n"
    "Ports come from the shared endpoints below (the Kafka controller listens on the\n"
    "Kafka port + 1). Data and logs live in the data dir: DIR/log/<service>.log.\n"
    "Started as root, the services run as the system user '" SVC_USER "'.\n"
    "Once 'fleetsync trucks add' has made MQTT credentials in DIR/mqtt/, Mosquitto\n"
    "refuses anonymous clients and enforces the ACLs (docs/security.md).\n"
    "PostgreSQL asks every connection for a password: role fleetsync (no superuser,\n"
    "owner of the database fleetsync) has it in DIR/pgpass, which every FleetSync\n"
    "command reads (psql: PGPASSFILE=DIR/pgpass); the superuser fleetsync_admin,\n"
    "which only start uses, in DIR/pgpass-admin.  Both are made on the first start.\n\n"
    "Actions:\n"
    "  start               start what is not running, wait until each answers,\n"
    "                      create the topics (idempotent)\n"
    "  stop                stop all services of the data dir\n"
    "  status              pid, port, health and data size of each; exit 1 if any is down";

static int opt_kafka_brokers(void *value, const char *arg, char *err, size_t err_size)
{
    long v;
    if (cfg_parse_long(arg, 1, SVC_KAFKA_MAX_BROKERS, &v) != 0 || (v != 1 && v != SVC_KAFKA_MAX_BROKERS)) {
        snprintf(err, err_size, "is 1 or %d (a %d-broker KRaft cluster); other sizes are not supported",
                 SVC_KAFKA_MAX_BROKERS, SVC_KAFKA_MAX_BROKERS);
        return -1;
    }
    *(int *)value = (int)v;
    return 0;
}

int svc_edge_option(void *value, const char *arg, char *err, size_t err_size)
{
    if (strcmp(arg, "ingest") == 0)
        *(enum svc_edge *)value = SVC_EDGE_INGEST;
    else if (strcmp(arg, "mosquitto") == 0)
        *(enum svc_edge *)value = SVC_EDGE_MOSQUITTO;
    else {
        snprintf(err, err_size, "is ingest or mosquitto");
        return -1;
    }
    return 0;
}

int cmd_services(int argc, char **argv)
{
    struct fs_config cfg;
    struct svc_options opt = {.timeout_s = 120};
    int json = 0, rest, rc = 2, tls = 0, tls_port = 0;
    char err[512];
    const struct opt opts[] = {
        OPT_INTEGER("partitions", "N", &opt.partitions, 1, 1000,
                    "partitions of truck-telemetry on creation (default 6)"),
        OPT_CB("kafka-brokers", "N", &opt.kafka_brokers, opt_kafka_brokers,
               "1 (default) or " STR(SVC_KAFKA_MAX_BROKERS) ": a " STR(
                   SVC_KAFKA_MAX_BROKERS) "-broker KRaft cluster on this machine,\n"
                                          "broker k on the Kafka port + 2(k-1), its controller one above\n"
                                          "(19092/19093, 19094/19095, 19096/19097), data in DIR/kafka-<k>;\n"
                                          "topics get 3 replicas and min.insync.replicas=2, so one broker\n"
                                          "may be down.  Remembered in the data dir: later start, stop and\n"
                                          "status need no flag, and start brings back a missing broker.\n"
                                          "Clients list the brokers: --brokers 127.0.0.1:19092,127.0.0.1:19094,\n"
                                          "127.0.0.1:19096 (docs/cluster.md)"),
        OPT_BOOLEAN("tls", &tls,
                    "also serve MQTT over TLS: a local CA and a server certificate\n"
                    "for 127.0.0.1/localhost are made once in DIR/tls/ (openssl);\n"
                    "clients use mqtts://127.0.0.1:PORT and trust DIR/tls/ca.crt"),
        OPT_INTEGER("tls-port", "N", &tls_port, 1, 65535, "the TLS listener's port (default: MQTT port + 53, 18883)"),
        OPT_BOOLEAN("secure", &opt.secure,
                    "Kafka wants SASL (PLAIN, on 127.0.0.1) from every client and\n"
                    "enforces ACLs: one principal per FleetSync process kind, only\n"
                    "the bridge (and sim --kafka) write truck-telemetry, only detect\n"
                    "writes truck-alerts.  Passwords derive from DIR/kafka-auth/secret\n"
                    "(0600); every fleetsync command finds its own there.  Remembered\n"
                    "in the data dir (docs/security.md)"),
        OPT_CB("edge", "ingest|mosquitto", &opt.edge, svc_edge_option,
               "what takes the trucks' MQTT: mosquitto (fleetsync bridge carries\n"
               "it to Kafka) or ingest: no Mosquitto is started, as 'fleetsync up'\n"
               "runs fleetsync ingest on the MQTT port (and, with --tls, on the\n"
               "TLS port).  Remembered in the data dir (DIR/mqtt-edge): later\n"
               "start, status and stop need no flag; status shows mosquitto 'off'.\n"
               "Default: the data dir's choice, else mosquitto (docs/up.md)"),
        OPT_INTEGER("timeout", "S", &opt.timeout_s, 1, 86400, "seconds to wait for each service (default 120)"),
        OPT_BOOLEAN("json", &json, "status as JSON"),
        OPT_END_MARK,
    };
    const struct opt_command cmd = {
        .name = "services",
        .usage = "fleetsync services start|stop|status [options]",
        .about = services_about,
        .opts = opts,
        .shared = 1,
    };

    cfg_init(&cfg);
    cfg.kafka_user = KA_USER_ADMIN;
    if (opt_parse_or_leave(&cmd, &cfg, argc, argv, &rest, &rc))
        goto out;
    if (rest == argc) {
        opt_error(&cmd, "give an action: start, stop or status");
        goto out;
    }
    if (rest + 1 != argc) {
        opt_error(&cmd, "unexpected argument '%s'", argv[rest + 1]);
        goto out;
    }
    const char *action = argv[rest];
    if (strcmp(action, "start") == 0) {
        if (svc_ports_from_config(&cfg, &opt.ports, err, sizeof(err)) != 0) {
            fprintf(stderr, "fleetsync services: %s\n", err);
        } else if (tls && opt.ports.mqtt + 53 > 65535 && !tls_port) {
            fprintf(stderr, "fleetsync services: MQTT port %d + 53 is no port; give --tls-port\n", opt.ports.mqtt);
        } else {
            opt.tls_port = tls ? (tls_port ? tls_port : opt.ports.mqtt + 53) : 0;
            rc = svc_start(&cfg, &opt);
        }
    } else if (strcmp(action, "stop") == 0) {
        rc = svc_stop(&cfg, 60);
    } else if (strcmp(action, "status") == 0) {
        rc = svc_status(&cfg, json);
    } else {
        opt_error(&cmd, "unknown action '%s'", action);
    }
out:
    cfg_release(&cfg);
    return rc;
}
