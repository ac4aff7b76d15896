/*
 * config.c - shared endpoints, names and option parsing (see config.h).
 */
#include "core/config.h"

#include "core/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char cfg_options_help[] =
    "Shared options (flag, then environment, then default):\n"
    "  --mqtt URL          mqtt[s]://[user:pass@]host:port   FLEETSYNC_MQTT    (" CFG_DEFAULT_MQTT ")\n"
    "  --brokers LIST      Kafka bootstrap host:port[,...]    FLEETSYNC_BROKERS (" CFG_DEFAULT_BROKERS ")\n"
    "  --pg CONNINFO       PostgreSQL conninfo or URI         FLEETSYNC_PG\n"
    "                      (" CFG_DEFAULT_PG ";\n"
    "                      password from DIR/pgpass unless PGPASSFILE is set)\n"
    "  --data-dir DIR      data directory                     FLEETSYNC_DATA_DIR (" CFG_DEFAULT_DATA_DIR ")\n"
    "  --listen HOST:PORT  dashboard address                  FLEETSYNC_LISTEN  (" CFG_DEFAULT_LISTEN ")\n"
    "  --topic-prefix P    prefix for every topic name        FLEETSYNC_TOPIC_PREFIX\n"
    "  --group G           consumer group name\n"
    "  --metrics-port N    Prometheus /metrics port (0 = default, -1 = off)\n"
    "  -X key=value        librdkafka property (repeatable, as kcat)\n"
    "  --log-level L       error, warn, info (default) or debug\n";

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

void cfg_init(struct fs_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->mqtt = env_or("FLEETSYNC_MQTT", CFG_DEFAULT_MQTT);
    cfg->brokers = env_or("FLEETSYNC_BROKERS", CFG_DEFAULT_BROKERS);
    cfg->pg = env_or("FLEETSYNC_PG", CFG_DEFAULT_PG);
    cfg->data_dir = env_or("FLEETSYNC_DATA_DIR", CFG_DEFAULT_DATA_DIR);
    cfg->listen = env_or("FLEETSYNC_LISTEN", CFG_DEFAULT_LISTEN);
    cfg->topic_prefix = env_or("FLEETSYNC_TOPIC_PREFIX", "");
    const char *lvl = getenv("FLEETSYNC_LOG_LEVEL");
    enum log_level level;
    if (lvl && log_parse_level(lvl, &level) == 0)
        log_set_level(level);
}

int cfg_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cfg_option(struct fs_config *cfg, int code, const char *arg, char *err, size_t err_size)
{
    long v;
    enum log_level level;
    struct cfg_mqtt_url url;

    switch (code) {
    case CFG_OPT_MQTT:
        if (cfg_parse_mqtt_url(arg, &url, err, err_size) != 0)
            return -1;
        cfg->mqtt = arg;
        return 1;
    case CFG_OPT_BROKERS:
        if (!*arg) {
            snprintf(err, err_size, "--brokers needs host:port[,host:port...]");
            return -1;
        }
        cfg->brokers = arg;
        return 1;
    case CFG_OPT_PG:
        cfg->pg = arg;
        return 1;
    case CFG_OPT_DATA_DIR:
        cfg->data_dir = arg;
        return 1;
    case CFG_OPT_LISTEN:
        cfg->listen = arg;
        return 1;
    case CFG_OPT_TOPIC_PREFIX:
        cfg->topic_prefix = arg;
        return 1;
    case CFG_OPT_GROUP:
        if (!*arg) {
            snprintf(err, err_size, "--group needs a name");
            return -1;
        }
        cfg->group = arg;
        return 1;
    case CFG_OPT_METRICS_PORT:
        if (cfg_parse_long(arg, -1, 65535, &v) != 0) {
            snprintf(err, err_size, "--metrics-port: '%s' is not a port (0-65535, or -1 for off)", arg);
            return -1;
        }
        cfg->metrics_port = (int)v;
        return 1;
    case CFG_OPT_LOG_LEVEL:
        if (log_parse_level(arg, &level) != 0) {
            snprintf(err, err_size, "--log-level: '%s' is not one of error, warn, info, debug", arg);
            return -1;
        }
        log_set_level(level);
        return 1;
    case 'X': {
        const char *eq = strchr(arg, '=');
        if (!eq || eq == arg) {
            snprintf(err, err_size, "-X needs key=value, got '%s'", arg);
            return -1;
        }
        if (cfg->kafka_prop_count >= CFG_MAX_KAFKA_PROPS) {
            snprintf(err, err_size, "too many -X properties (at most %d)", CFG_MAX_KAFKA_PROPS);
            return -1;
        }
        struct cfg_kv *kv = &cfg->kafka_props[cfg->kafka_prop_count];
        kv->key = strndup(arg, (size_t)(eq - arg));
        kv->value = strdup(eq + 1);
        if (!kv->key || !kv->value) {
            free(kv->key);
            free(kv->value);
            snprintf(err, err_size, "out of memory");
            return -1;
        }
        cfg->kafka_prop_count++;
        return 1;
    }
    default:
        return 0;
    }
}

const char *cfg_topic(const struct fs_config *cfg, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s", cfg->topic_prefix ? cfg->topic_prefix : "", name);
    return buf;
}

int cfg_parse_host_port(const char *s, char *host, size_t host_size, int *port)
{
    size_t len = strcspn(s, ",");
    const char *colon = NULL;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ':')
            colon = s + i;
    if (!colon || colon == s || (size_t)(colon - s) >= host_size)
        return -1;
    char portbuf[8];
    size_t plen = len - (size_t)(colon + 1 - s);
    if (plen == 0 || plen >= sizeof(portbuf))
        return -1;
    memcpy(portbuf, colon + 1, plen);
    portbuf[plen] = '\0';
    long v;
    if (cfg_parse_long(portbuf, 1, 65535, &v) != 0)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *port = (int)v;
    return 0;
}

int cfg_parse_mqtt_url(const char *url, struct cfg_mqtt_url *out, char *err, size_t err_size)
{
    char shown[CFG_MASKED_MAX];
    memset(out, 0, sizeof(*out));
    const char *p;
    if (strncmp(url, "mqtt://", 7) == 0) {
        p = url + 7;
    } else if (strncmp(url, "mqtts://", 8) == 0) {
        p = url + 8;
        out->tls = 1;
    } else {
        snprintf(err, err_size, "MQTT URL '%s' must start with mqtt:// or mqtts://",
                 cfg_mask_secrets(url, shown, sizeof(shown)));
        return -1;
    }
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ulen = colon ? (size_t)(colon - p) : (size_t)(at - p);
        size_t plen = colon ? (size_t)(at - colon - 1) : 0;
        if (ulen >= sizeof(out->user) || plen >= sizeof(out->pass)) {
            snprintf(err, err_size, "MQTT URL: user name or password too long");
            return -1;
        }
        memcpy(out->user, p, ulen);
        if (colon)
            memcpy(out->pass, colon + 1, plen);
        p = at + 1;
    }
    if (strchr(p, '/') && strcmp(strchr(p, '/'), "/") != 0) {
        snprintf(err, err_size, "MQTT URL '%s' must not have a path", cfg_mask_secrets(url, shown, sizeof(shown)));
        return -1;
    }
    char hp[300];
    snprintf(hp, sizeof(hp), "%.*s", (int)strcspn(p, "/"), p);
    if (!strchr(hp, ':')) {
        if (strlen(hp) >= sizeof(out->host) || !*hp) {
            snprintf(err, err_size, "MQTT URL '%s' has no host", cfg_mask_secrets(url, shown, sizeof(shown)));
            return -1;
        }
        strcpy(out->host, hp);
        out->port = out->tls ? 8883 : 1883;
        return 0;
    }
    if (cfg_parse_host_port(hp, out->host, sizeof(out->host), &out->port) != 0) {
        snprintf(err, err_size, "MQTT URL '%s' needs host:port with a port 1-65535",
                 cfg_mask_secrets(url, shown, sizeof(shown)));
        return -1;
    }
    return 0;
}

void cfg_release(struct fs_config *cfg)
{
    for (int i = 0; i < cfg->kafka_prop_count; i++) {
        free(cfg->kafka_props[i].key);
        free(cfg->kafka_props[i].value);
    }
    cfg->kafka_prop_count = 0;
}

/* --- masking secrets ---------------------------------------------------- */

struct mask_out {
    char *p;
    size_t size, len;
};

static void mask_put(struct mask_out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n && o->len + 1 < o->size; i++)
        o->p[o->len++] = s[i];
    o->p[o->len] = '\0';
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* At s (the start of a word): "password" [spaces] "=" -> the length up to
 * and with '=', else 0. */
static size_t password_key(const char *s)
{
    if (strncasecmp(s, "password", 8) != 0)
        return 0;
    size_t k = 8;
    while (is_space(s[k]))
        k++;
    return s[k] == '=' ? k + 1 : 0;
}

/* The length of a conninfo or query value at s: a quoted 'value' (with \'
 * escapes), else up to a space or '&'. */
static size_t value_len(const char *s)
{
    size_t k = 0;
    if (s[0] == '\'') {
        for (k = 1; s[k] && s[k] != '\''; k++)
            if (s[k] == '\\' && s[k + 1])
                k++;
        return s[k] ? k + 1 : k;
    }
    while (s[k] && !is_space(s[k]) && s[k] != '&')
        k++;
    return k;
}

const char *cfg_mask_secrets(const char *s, char *out, size_t size)
{
    struct mask_out o = {out, size, 0};
    if (!out || !size)
        return out;
    out[0] = '\0';
    if (!s)
        return out;
    size_t i = 0;
    while (s[i]) {
        int word_start = i == 0 || is_space(s[i - 1]) || s[i - 1] == '?' || s[i - 1] == '&';
        size_t key = word_start ? password_key(s + i) : 0;
        if (key) {
            while (is_space(s[i + key]))
                key++;
            mask_put(&o, s + i, key);
            i += key;
            mask_put(&o, "***", 3);
            i += value_len(s + i);
            continue;
        }
        if (strncmp(s + i, "://", 3) == 0) {
            /* The authority runs to a space, or to the first '/' or '?'
             * after its last '@' (a password may hold '/' or '?'). */
            size_t a = i + 3, end = a, at = 0;
            while (s[end] && !is_space(s[end]))
                end++;
            for (size_t k = a; k < end; k++)
                if (s[k] == '@')
                    at = k;
            const char *colon = at ? memchr(s + a, ':', at - a) : NULL;
            if (colon) {
                mask_put(&o, s + i, (size_t)(colon - (s + i)) + 1);
                mask_put(&o, "***", 3);
                i = at;
                continue;
            }
            mask_put(&o, s + i, 3);
            i += 3;
            continue;
        }
        mask_put(&o, s + i, 1);
        i++;
    }
    return out;
}
