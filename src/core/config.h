/*
 * config.h - the endpoints and names every FleetSync command shares.
 *
 * A command starts from cfg_init() (the defaults of docs/design.md, then FLEETSYNC_*
 * environment variables), then lets getopt_long() feed each option it does
 * not know itself to cfg_option().  Flags beat the environment, which beats
 * the defaults.  Strings point into argv, the environment or literals, except
 * the -X list, which is owned by the config and freed by cfg_release().
 */
#ifndef FS_CONFIG_H
#define FS_CONFIG_H

#include <getopt.h>
#include <stddef.h>

#define CFG_DEFAULT_MQTT "mqtt://127.0.0.1:18830"
#define CFG_DEFAULT_BROKERS "127.0.0.1:19092"
#define CFG_DEFAULT_PG "host=127.0.0.1 port=15432 dbname=fleetsync user=fleetsync"
#define CFG_DEFAULT_DATA_DIR "./var"
#define CFG_DEFAULT_LISTEN "127.0.0.1:8080"
#define CFG_MAX_KAFKA_PROPS 64

struct cfg_kv {
    char *key;
    char *value;
};

struct fs_config {
    const char *mqtt;    /* mqtt[s]://[user:pass@]host:port */
    const char *brokers; /* host:port[,host:port...] */
    const char *pg;      /* libpq conninfo or URI */
    const char *data_dir;
    const char *listen;       /* dashboard HOST:PORT */
    const char *topic_prefix; /* prepended to every topic name */
    const char *group;        /* consumer group; NULL = the component's */
    const char *kafka_user;   /* Kafka principal of a secure data dir (core/kafkaauth.h); set by each command */
    int metrics_port;         /* 0 = the component's default, -1 = off */
    struct cfg_kv kafka_props[CFG_MAX_KAFKA_PROPS]; /* -X key=value */
    int kafka_prop_count;
};

/* getopt_long() codes of the shared options; a command's own long options
 * use codes below CFG_OPT_BASE or single letters. */
enum {
    CFG_OPT_BASE = 1000,
    CFG_OPT_MQTT,
    CFG_OPT_BROKERS,
    CFG_OPT_PG,
    CFG_OPT_DATA_DIR,
    CFG_OPT_LISTEN,
    CFG_OPT_TOPIC_PREFIX,
    CFG_OPT_GROUP,
    CFG_OPT_METRICS_PORT,
    CFG_OPT_LOG_LEVEL,
};

/* The shared long options, to splice into a command's option table. */
#define CFG_LONG_OPTIONS                                                                                               \
    {"mqtt", required_argument, NULL, CFG_OPT_MQTT}, {"brokers", required_argument, NULL, CFG_OPT_BROKERS},            \
        {"pg", required_argument, NULL, CFG_OPT_PG}, {"data-dir", required_argument, NULL, CFG_OPT_DATA_DIR},          \
        {"listen", required_argument, NULL, CFG_OPT_LISTEN},                                                           \
        {"topic-prefix", required_argument, NULL, CFG_OPT_TOPIC_PREFIX},                                               \
        {"group", required_argument, NULL, CFG_OPT_GROUP},                                                             \
        {"metrics-port", required_argument, NULL, CFG_OPT_METRICS_PORT},                                               \
    {                                                                                                                  \
        "log-level", required_argument, NULL, CFG_OPT_LOG_LEVEL                                                        \
    }

/* The short options the shared table needs ("X:" for -X key=value). */
#define CFG_SHORT_OPTIONS "X:"

/* Help text for the shared options, for a command's --help. */
extern const char cfg_options_help[];

/* Fills defaults, then the FLEETSYNC_* environment variables. */
void cfg_init(struct fs_config *cfg);

/* Handles one shared option.  Returns 1 if it was one (and valid), 0 if it is
 * not a shared option, -1 if its value is invalid (reason in err). */
int cfg_option(struct fs_config *cfg, int code, const char *arg, char *err, size_t err_size);

/* Writes prefix + name into buf; returns buf. */
const char *cfg_topic(const struct fs_config *cfg, const char *name, char *buf, size_t size);

/* Splits "mqtt[s]://[user:pass@]host:port" into its parts.  Returns 0 on
 * success, -1 with a reason in err.  user/pass are "" when absent. */
struct cfg_mqtt_url {
    int tls;
    char host[256];
    int port;
    char user[128];
    char pass[128];
};
int cfg_parse_mqtt_url(const char *url, struct cfg_mqtt_url *out, char *err, size_t err_size);

/* Splits "host:port" (the first of a comma list).  Returns 0 or -1. */
/* A whole number in [min, max] in decimal, nothing before or after it.
 * Returns 0 with *out set, or -1 (*out unchanged). */
int cfg_parse_long(const char *s, long min, long max, long *out);

int cfg_parse_host_port(const char *s, char *host, size_t host_size, int *port);

void cfg_release(struct fs_config *cfg);

/* The text of s fit for a log, a message or a banner: the value of every
 * password=... (a libpq conninfo, quoted or not, or a URI's query) and the
 * password of every scheme://user:password@ becomes "***".  Writes into out
 * (always NUL-terminated, cut at size - 1) and returns out; s may be NULL
 * (gives ""). */
const char *cfg_mask_secrets(const char *s, char *out, size_t size);

/* Room for cfg_mask_secrets() of an endpoint in a message. */
#define CFG_MASKED_MAX 1024

#endif
