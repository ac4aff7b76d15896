/*
 * view.h - what one WebSocket client sees: its viewport and the frames that
 * keep its map up to date (protocol: docs/dashboard.md).
 *
 * A view remembers what it last sent.  ds_view_frame() compares that with
 * the store now and writes only the difference:
 *   - "trucks" frames when the viewport holds at most DS_VIEW_MAX_TRUCKS
 *     trucks: upserts for trucks new in view or changed (reading or derived
 *     state), removes for those that left; "reset" when the client must drop
 *     what it has (new viewport, switch from clusters);
 *   - "clusters" frames otherwise: the full set of grid clusters (at most
 *     DS_VIEW_MAX_FEATURES), sent only when it differs from the last one.
 * Because the base of every difference is the frame actually handed to the
 * client, frames may be skipped (a slow client) without ever being wrong:
 * intermediate states are simply never built.
 *
 * Not thread-safe; the caller holds the store's lock during ds_view_frame.
 */
#ifndef FS_DASHBOARD_VIEW_H
#define FS_DASHBOARD_VIEW_H

#include "dashboard/jbuf.h"
#include "dashboard/store.h"

#include <stdint.h>

#define DS_VIEW_MAX_FEATURES 2000 /* trucks or clusters in one frame */
#define DS_VIEW_MAX_TRUCKS 1000   /* more than this in view: clusters */

enum ds_view_mode { DS_VIEW_NONE = 0, DS_VIEW_TRUCKS, DS_VIEW_CLUSTERS };

struct ds_view_item {
    uint32_t idx, version;
    uint8_t state;
};

struct ds_view {
    int has_viewport;
    int reset; /* the next frame starts from nothing */
    struct ds_bbox bbox;
    double zoom;
    enum ds_view_mode mode;
    struct ds_view_item *sent, *cur; /* DS_VIEW_MAX_FEATURES each, sorted by idx */
    size_t nsent;
    uint32_t *scratch;
    struct ds_cluster *clusters;
    uint64_t cluster_hash;
    uint64_t frame_seq;
};

/* Returns 0, or -1 when memory is short (nothing to release then). */
int ds_view_init(struct ds_view *v);
void ds_view_release(struct ds_view *v);

/* A new viewport (already clamped); the next frame resets the client. */
void ds_view_set(struct ds_view *v, const struct ds_bbox *b, double zoom);

/* Writes the next frame into out (emptied first).  Returns 1 when there is a
 * frame to send, 0 when nothing in view changed (out is then empty) or there
 * is no viewport yet, -1 when out overflowed (the view is unchanged). */
int ds_view_frame(struct ds_view *v, const struct ds_store *s, int64_t now_ms, struct buf *out);

/* One truck as the API and the frames show it: {"truck_id",...}.  full adds
 * seq, fuel, ignition, odometer and last_seen_ms (the API's /api/trucks/{id}). */
void ds_json_truck(struct buf *b, const struct ds_store *s, uint32_t idx, int64_t now_ms, int full);

#endif
