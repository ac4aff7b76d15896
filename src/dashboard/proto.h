/*
 * proto.h - messages a dashboard WebSocket client sends (docs/dashboard.md):
 *
 *   {"type":"viewport","bbox":[minLon,minLat,maxLon,maxLat],"zoom":Z}
 *   {"type":"ping"}
 *
 * Pure; any thread.
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

#endif
