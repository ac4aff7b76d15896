/*
 * proto.h - what a dashboard client sends (docs/dashboard.md): WebSocket
 * messages
 *
 *   {"type":"viewport","bbox":[minLon,minLat,maxLon,maxLat],"zoom":Z}
 *   {"type":"ping"}
 *
 * and the API's query strings and the login form.  Pure; any thread.
 */
#ifndef FS_DASHBOARD_PROTO_H
#define FS_DASHBOARD_PROTO_H

#include "dashboard/store.h"

#include <stddef.h>

#define DS_PROTO_MAX_MSG 4096 /* bytes of one client message */

enum ds_msg_type { DS_MSG_VIEWPORT = 1, DS_MSG_PING };

struct ds_client_msg {
    enum ds_msg_type type;
    struct ds_bbox bbox; /* viewport: clamped to the world */
    double zoom;         /* viewport: 0..30 */
};

/* Parses one message of len bytes.  Returns 0 and fills *out, or -1 with
 * *code set to a static error code ("too_large", "bad_json", "unknown_type",
 * "bad_viewport") and a printable explanation in detail. */
int ds_proto_parse(const char *buf, size_t len, struct ds_client_msg *out, const char **code, char *detail,
                   size_t detail_size);

#define DS_QUERY_MAX 4096 /* bytes of a query string or form body */

/* bbox=minLon,minLat,maxLon,maxLat from a query string of len bytes (URL-
 * encoded): 0 with *out clamped to the world, -1 if missing, malformed or
 * inverted. */
int ds_query_bbox(const char *query, size_t len, struct ds_bbox *out);

/* since=MS from a query string: 0 with *out (0 when absent), -1 if it is
 * not an integer. */
int ds_query_since(const char *query, size_t len, long long *out);

/* user=..&password=.. from an x-www-form-urlencoded body: 0 with both
 * decoded and NUL-terminated, -1 if either is missing, empty or too long
 * for its buffer. */
int ds_form_login(const char *body, size_t len, char *user, size_t user_size, char *password, size_t password_size);

#endif
