/*
 * services.h - the embedded Mosquitto, Kafka (KRaft) and PostgreSQL.
 *
 * Layout under the data dir D (created on first start):
 *   D/run/<service>.pid     pid of each running service (ours, not the daemon's)
 *   D/run/ports             the ports the stack was started with (status reads it)
 *   D/log/<service>.log     stdout + stderr of each service
 *   D/mosquitto/            generated mosquitto.conf, persistence
 *   D/mqtt/                 MQTT credentials (core/mqttauth.h, fleetsync trucks)
 *   D/tls/                  local CA and server certificate (start --tls)
 *   D/kafka/                generated server.properties, log4j2.properties, data/
 *   D/kafka-<k>/            the same per broker k of a cluster (start --kafka-brokers 3):
 *                           pids in D/run/kafka-<k>.pid, logs in D/log/kafka-<k>.log
 *   D/kafka-brokers         the broker count when it is not 1 (later commands read it)
 *   D/mqtt-edge             "ingest" when fleetsync ingest, not Mosquitto, is the MQTT
 *                           edge (start --edge ingest): Mosquitto is then not run
 *   D/kafka-auth/secret     Kafka wants SASL and enforces ACLs (start --secure, core/kafkaauth.h)
 *   D/postgres/data         the initdb'd cluster; D/postgres/run its unix socket
 *   D/pgpass                password of PostgreSQL role fleetsync (libpq password
 *                           file, 0600, the operator's); every command finds it
 *   D/pgpass-admin          password of the superuser fleetsync_admin (0600),
 *                           for services start only
 *
 * Started as root, every service runs as the unprivileged system user
 * "fleetsync" (created when missing), which owns D's service folders; D and
 * its parents must then be reachable by that user.  Root opens nothing in
 * those folders by a path that could follow a link the service user
 * planted, and gives files away only with fchown() on a descriptor
 * (core/nofollow.h).  Started as a normal user,
 * services run as that user.
 */
#ifndef FS_SERVICES_H
#define FS_SERVICES_H

#include "core/config.h"

#define SVC_USER "fleetsync"
/* PostgreSQL roles (pgroles.c): the pipelines' role, which owns the
 * database fleetsync and its tables and is no superuser (its password in
 * D/pgpass, core/pg.h PG_PASSFILE), and the bootstrap superuser only
 * services start uses (D/pgpass-admin). */
#define SVC_PG_ROLE "fleetsync"
#define SVC_PG_ADMIN "fleetsync_admin"
#define SVC_PG_ADMIN_PASSFILE "pgpass-admin"
#define SVC_KAFKA_VERSION "4.1.1"
#define SVC_KAFKA_MAX_BROKERS 3 /* start --kafka-brokers: 1 or 3 */

enum svc_id { SVC_MOSQUITTO = 0, SVC_KAFKA, SVC_POSTGRES, SVC_COUNT };

/* With N Kafka brokers, broker k (1..N) listens on kafka + 2(k-1) and its
 * controller on kafka + 2(k-1) + 1: 19092/19093, 19094/19095, 19096/19097. */
struct svc_ports {
    int mqtt;
    int kafka;
    int controller;
    int pg;
};

/* What takes the trucks' MQTT (start --edge): the embedded Mosquitto (with
 * fleetsync bridge behind it), or fleetsync ingest, run by up, in which
 * case services start runs no Mosquitto.  SVC_EDGE_KEEP keeps the data dir's
 * choice (D/mqtt-edge; Mosquitto when there is none). */
enum svc_edge { SVC_EDGE_KEEP = 0, SVC_EDGE_MOSQUITTO, SVC_EDGE_INGEST };

struct svc_options {
    struct svc_ports ports;
    int partitions; /* truck-telemetry partitions; 0 = default */
    int tls_port;   /* also serve MQTT over TLS on this port (D/tls/); 0 = no */
    int timeout_s;  /* how long start waits for each service */
    int quiet;
    int kafka_brokers; /* 1 or 3 KRaft nodes; 0 = what the data dir has (else 1) */
    int secure;        /* make Kafka secure (SASL + ACLs, core/kafkaauth.h); 0 = as the data dir is */
    enum svc_edge edge;
};

/* The data dir's MQTT edge (D/mqtt-edge): SVC_EDGE_INGEST or
 * SVC_EDGE_MOSQUITTO. */
enum svc_edge svc_edge_saved(const char *data_dir);
/* The --edge option of services and up (an opts callback): "ingest" or
 * "mosquitto" into the enum svc_edge at value. */
int svc_edge_option(void *value, const char *arg, char *err, size_t err_size);

/* Derives the ports from the shared endpoints (--mqtt, --brokers, --pg);
 * the controller listens on the Kafka port + 1.  Returns 0 or -1 + err. */
int svc_ports_from_config(const struct fs_config *cfg, struct svc_ports *out, char *err, size_t err_size);

/* Starts whatever is not running yet (with a cluster: each missing broker)
 * and waits until each answers, then creates the topics (replication factor
 * 3 and min.insync.replicas 2 on a cluster).  Idempotent.  Returns 0, or 1 after printing the tail of
 * the failing service's log. */
int svc_start(const struct fs_config *cfg, const struct svc_options *opt);

/* Rewrites mosquitto.conf (credentials of D/mqtt/ as they are now) and
 * makes the running Mosquitto reload it (SIGHUP), or, when it was started
 * without credentials, restarts it (use_username_as_clientid is read at
 * start only).  Returns 0 (reloaded), 2 (restarted), 1 when Mosquitto is
 * not running (the next start reads them), -1 on an error. */
int svc_mqtt_reload(const struct fs_config *cfg);

/* Stops every service of the data dir and waits until none is left.
 * Returns 0, or 1 when a process would not go away. */
int svc_stop(const struct fs_config *cfg, int timeout_s);

/* Prints each service with pid, port, health and data size.  Returns 0 when
 * all are healthy, 1 otherwise.  json != 0 prints a JSON array instead. */
int svc_status(const struct fs_config *cfg, int json);

/* One service's liveness for other commands (fleetsync status, up). */
struct svc_state {
    const char *name;
    int pid; /* 0 when not running */
    int port;
    int healthy; /* Kafka: every broker answers; 1 for a service that is off */
    int off;     /* not run by design: Mosquitto when fleetsync ingest is the edge */
    long long data_bytes;
    int brokers;         /* Kafka: brokers of the data dir (1 or 3); 0 for the others */
    int brokers_running; /* Kafka: how many of them have a live process */
};
int svc_probe(const struct fs_config *cfg, struct svc_state out[SVC_COUNT]);

/* Like svc_probe, but also probes a service this data dir does not run, at
 * the endpoint the shared options name (--mqtt with its credentials and TLS,
 * --brokers with the -X properties, --pg): pid 0 and healthy 1 is an external
 * service that answers. */
int svc_probe_endpoints(const struct fs_config *cfg, struct svc_state out[SVC_COUNT]);

/* The bootstrap list of the data dir's Kafka brokers as started (run/ports,
 * D/kafka-brokers): "127.0.0.1:19092" or, for a cluster,
 * "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096".  Returns the broker
 * count, or -1. */
int svc_kafka_bootstrap(const struct fs_config *cfg, char *buf, size_t size);

/* The folder holding the Kafka jars (FLEETSYNC_KAFKA_LIBS, else the bootstrap
 * cache); writes into buf and returns buf. */
const char *svc_kafka_libs(char *buf, size_t size);

/* `fleetsync services start|stop|status`. */
int cmd_services(int argc, char **argv);

#endif
