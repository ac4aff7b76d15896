/*
 * proto.c - client message parsing (see proto.h).  jansson reads the JSON
 * (duplicate keys refused); every field is checked for type and range.
 */
#include "dashboard/proto.h"

#include <civetweb.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char **code, const char *c, char *detail, size_t size, const char *msg)
{
    *code = c;
    if (detail && size)
        snprintf(detail, size, "%s", msg);
    return -1;
}

int ds_proto_parse(const char *buf, size_t len, struct ds_client_msg *out, const char **code, char *detail,
                   size_t detail_size)
{
    json_error_t jerr;
    json_t *root = NULL;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (len > DS_PROTO_MAX_MSG) {
        char m[64];
        snprintf(m, sizeof(m), "message of %zu bytes, at most %d", len, DS_PROTO_MAX_MSG);
        return fail(code, "too_large", detail, detail_size, m);
    }
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        char m[200];
        snprintf(m, sizeof(m), "byte %d: %s", jerr.position, jerr.text);
        for (char *p = m; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                *p = '?';
        return fail(code, "bad_json", detail, detail_size, m);
    }
    if (!json_is_object(root)) {
        fail(code, "bad_json", detail, detail_size, "an object is expected");
        goto out;
    }
    const char *type = json_string_value(json_object_get(root, "type"));
    if (!type) {
        fail(code, "unknown_type", detail, detail_size, "\"type\" (a string) is missing");
        goto out;
    }
    if (strcmp(type, "ping") == 0) {
        out->type = DS_MSG_PING;
        rc = 0;
        goto out;
    }
    if (strcmp(type, "viewport") != 0) {
        fail(code, "unknown_type", detail, detail_size, "type is \"viewport\" or \"ping\"");
        goto out;
    }
    json_t *bbox = json_object_get(root, "bbox");
    json_t *zoom = json_object_get(root, "zoom");
    double v[4];
    if (!json_is_array(bbox) || json_array_size(bbox) != 4) {
        fail(code, "bad_viewport", detail, detail_size, "bbox is [minLon, minLat, maxLon, maxLat]");
        goto out;
    }
    for (size_t i = 0; i < 4; i++) {
        json_t *e = json_array_get(bbox, i);
        if (!json_is_number(e)) {
            fail(code, "bad_viewport", detail, detail_size, "bbox holds four numbers");
            goto out;
        }
        v[i] = json_number_value(e);
    }
    if (!json_is_number(zoom) || !(json_number_value(zoom) >= 0 && json_number_value(zoom) <= 30)) {
        fail(code, "bad_viewport", detail, detail_size, "zoom is a number from 0 to 30");
        goto out;
    }
    out->bbox = (struct ds_bbox){v[0], v[1], v[2], v[3]};
    if (ds_bbox_clamp(&out->bbox) != 0) {
        fail(code, "bad_viewport", detail, detail_size, "bbox needs minLon <= maxLon and minLat <= maxLat");
        goto out;
    }
    out->type = DS_MSG_VIEWPORT;
    out->zoom = json_number_value(zoom);
    rc = 0;
out:
    json_decref(root);
    return rc;
}

int ds_query_bbox(const char *query, size_t len, struct ds_bbox *out)
{
    char v[256], extra;
    struct ds_bbox bb;
    if (!query || len > DS_QUERY_MAX || mg_get_var(query, len, "bbox", v, sizeof(v)) <= 0 ||
        sscanf(v, "%lf,%lf,%lf,%lf%c", &bb.min_lon, &bb.min_lat, &bb.max_lon, &bb.max_lat, &extra) != 4 ||
        ds_bbox_clamp(&bb) != 0)
        return -1;
    *out = bb;
    return 0;
}

int ds_query_since(const char *query, size_t len, long long *out)
{
    char v[64], *end;
    *out = 0;
    if (!query)
        return 0;
    if (len > DS_QUERY_MAX)
        return -1;
    int n = mg_get_var(query, len, "since", v, sizeof(v));
    if (n == -1)
        return 0; /* absent */
    if (n < 0)
        return -1; /* too long */
    errno = 0;
    long long s = strtoll(v, &end, 10);
    if (errno || end == v || *end)
        return -1;
    *out = s;
    return 0;
}

int ds_form_login(const char *body, size_t len, char *user, size_t user_size, char *password, size_t password_size)
{
    if (!body || len > DS_QUERY_MAX)
        return -1;
    return mg_get_var(body, len, "user", user, user_size) > 0 &&
                   mg_get_var(body, len, "password", password, password_size) > 0
               ? 0
               : -1;
}
