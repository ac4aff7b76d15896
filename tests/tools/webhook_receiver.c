/*
 * webhook_receiver.c - a webhook endpoint for the notify e2e suite: it
 * records every request and answers as it is told, and checks nothing
 * itself (the suite verifies signatures and order from the record).
 *
 *   webhook_receiver PORT RECORD_FILE CONTROL_FILE
 *
 * Each request becomes one JSON line appended to RECORD_FILE:
 *   {"t_ms":...,"method":"POST","uri":"/hook","status":200,
 *    "headers":{"x-fleetsync-signature":"...",...},"body":"..."}
 * (header names in lower case; status is what it answered).
 *
 * CONTROL_FILE (read every 50 ms; absent or empty = "200") holds how to
 * answer: a status code ("200", "500", "404", ...), optionally followed by
 * a delay in ms before each answer ("200 20": a slow receiver), or "down":
 * the port is closed (connections refused) until the file says otherwise.
 *
 * Runs until SIGTERM or SIGINT.  Built by `make tools` into build/tools/.
 */
#include <civetweb.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BODY_MAX (1024 * 1024)

static volatile sig_atomic_t stop;
static int record_fd = -1;
static volatile int answer = 200, delay_ms;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void on_signal(int s)
{
    (void)s;
    stop = 1;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int handler(struct mg_connection *c, void *ud)
{
    (void)ud;
    const struct mg_request_info *ri = mg_get_request_info(c);
    char *body = malloc(BODY_MAX + 1);
    size_t n = 0;
    int r;
    while (body && n < BODY_MAX && (r = mg_read(c, body + n, BODY_MAX - n)) > 0)
        n += (size_t)r;
    int status = answer;
    if (delay_ms > 0)
        usleep((useconds_t)delay_ms * 1000);
    json_t *o = json_object(), *h = json_object();
    json_object_set_new(o, "t_ms", json_integer(now_ms()));
    json_object_set_new(o, "method", json_string(ri->request_method));
    json_object_set_new(o, "uri", json_string(ri->local_uri ? ri->local_uri : ""));
    json_object_set_new(o, "status", json_integer(status));
    for (int i = 0; i < ri->num_headers; i++) {
        char name[256];
        size_t k = 0;
        for (; ri->http_headers[i].name[k] && k < sizeof(name) - 1; k++) {
            char ch = ri->http_headers[i].name[k];
            name[k] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
        }
        name[k] = '\0';
        json_object_set_new(h, name, json_string(ri->http_headers[i].value));
    }
    json_object_set_new(o, "headers", h);
    json_t *b = body ? json_stringn(body, n) : NULL;
    json_object_set_new(o, "body", b ? b : json_string("(not UTF-8)"));
    char *line = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    free(body);
    if (line) {
        pthread_mutex_lock(&lock);
        size_t len = strlen(line);
        line[len] = '\n'; /* json_dumps's NUL becomes the newline: one write per line */
        if (write(record_fd, line, len + 1) != (ssize_t)(len + 1))
            fprintf(stderr, "webhook_receiver: cannot write the record: %s\n", strerror(errno));
        pthread_mutex_unlock(&lock);
        free(line);
    }
    mg_printf(c,
              "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
              "%03d",
              status, status / 100 == 2 ? "OK" : "Test answer", status);
    return status;
}

static struct mg_context *start(const char *port)
{
    const char *options[] = {"listening_ports", port, "num_threads", "8", NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    struct mg_context *ctx = mg_start(&cb, NULL, options);
    if (ctx)
        mg_set_request_handler(ctx, "/", handler, NULL);
    return ctx;
}

/* "down" -> -1, a status code -> it (and the delay after it into
 * *delay), anything else (absent, empty) -> 200. */
static int read_control(const char *path, int *delay)
{
    char buf[32] = "";
    FILE *f = fopen(path, "r");
    *delay = 0;
    if (!f)
        return 200;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (strncmp(buf, "down", 4) == 0)
        return -1;
    int code = 0, d = 0;
    sscanf(buf, "%d %d", &code, &d);
    *delay = d > 0 && d < 60000 ? d : 0;
    return code >= 100 && code <= 599 ? code : 200;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: webhook_receiver PORT RECORD_FILE CONTROL_FILE\n");
        return 2;
    }
    record_fd = open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (record_fd < 0) {
        fprintf(stderr, "webhook_receiver: %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    mg_init_library(0);
    struct mg_context *ctx = NULL;
    int rc = 0;
    while (!stop) {
        int d = 0, c = read_control(argv[3], &d);
        if (c < 0 && ctx) {
            mg_stop(ctx);
            ctx = NULL;
            fprintf(stderr, "webhook_receiver: down\n");
        } else if (c > 0) {
            answer = c;
            delay_ms = d;
            if (!ctx) {
                if (!(ctx = start(argv[1]))) {
                    fprintf(stderr, "webhook_receiver: cannot listen on %s\n", argv[1]);
                    rc = 1;
                    break;
                }
                fprintf(stderr, "webhook_receiver: listening on %s\n", argv[1]);
            }
        }
        usleep(50000);
    }
    if (ctx)
        mg_stop(ctx);
    mg_exit_library();
    close(record_fd);
    return rc;
}
