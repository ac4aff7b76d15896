/*
 * view.c - per-client frames (see view.h).
 */
#include "dashboard/view.h"

#include <stdlib.h>
#include <string.h>

int ds_view_init(struct ds_view *v)
{
    memset(v, 0, sizeof(*v));
    v->sent = calloc(DS_VIEW_MAX_FEATURES, sizeof(*v->sent));
    v->cur = calloc(DS_VIEW_MAX_FEATURES, sizeof(*v->cur));
    v->scratch = calloc(DS_VIEW_MAX_FEATURES, sizeof(*v->scratch));
    v->clusters = calloc(DS_VIEW_MAX_FEATURES, sizeof(*v->clusters));
    if (!v->sent || !v->cur || !v->scratch || !v->clusters) {
        ds_view_release(v);
        return -1;
    }
    return 0;
}

void ds_view_release(struct ds_view *v)
{
    free(v->sent);
    free(v->cur);
    free(v->scratch);
    free(v->clusters);
    memset(v, 0, sizeof(*v));
}

void ds_view_set(struct ds_view *v, const struct ds_bbox *b, double zoom)
{
    v->bbox = *b;
    v->zoom = zoom;
    v->has_viewport = 1;
    v->reset = 1;
}

void ds_json_truck(struct buf *b, const struct ds_store *s, uint32_t idx, int64_t now_ms, int full)
{
    const struct ds_truck *t = &s->trucks[idx];
    size_t id_len;
    const char *id = ds_store_id(s, idx, &id_len);
    buf_puts(b, "{\"truck_id\":");
    jbuf_str(b, id, id_len);
    if (t->flags & DS_F_POSITION) {
        buf_printf(b, ",\"ts\":%lld,\"lat\":", (long long)t->ts_ms);
        jbuf_num(b, ds_truck_lat(t));
        buf_puts(b, ",\"lon\":");
        jbuf_num(b, ds_truck_lon(t));
        buf_puts(b, ",\"speed_kmh\":");
        jbuf_num(b, t->speed_dkmh / 10.0);
        if (t->flags & DS_F_HEADING) {
            buf_puts(b, ",\"heading_deg\":");
            jbuf_num(b, t->heading_ddeg / 10.0);
        }
        if (full) {
            buf_printf(b, ",\"seq\":%u,\"ignition\":%s", t->seq, (t->flags & DS_F_IGNITION) ? "true" : "false");
            if (t->flags & DS_F_FUEL) {
                buf_puts(b, ",\"fuel_pct\":");
                jbuf_num(b, t->fuel_dpct / 10.0);
            }
            if (t->flags & DS_F_ODOMETER)
                buf_printf(b, ",\"odometer_km\":%.1f", t->odometer_km);
        }
    }
    buf_printf(b, ",\"state\":\"%s\"", ds_state_name(ds_truck_state(t, now_ms)));
    if (full) {
        buf_printf(b, ",\"last_seen_ms\":%lld", (long long)t->ts_ms);
        if (t->status_ts_ms)
            buf_printf(b, ",\"presence\":\"%s\",\"presence_ms\":%lld",
                       (t->flags & DS_F_STATUS_OFFLINE) ? "offline" : "online", (long long)t->status_ts_ms);
    }
    buf_puts(b, "}");
}

static int by_idx(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t fnv64(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int frame_clusters(struct ds_view *v, const struct ds_store *s, int64_t now_ms, uint64_t total, struct buf *out)
{
    double deg = ds_cluster_cell_deg(&v->bbox, v->zoom, DS_VIEW_MAX_FEATURES);
    size_t n = ds_store_clusters(s, &v->bbox, deg, v->clusters, DS_VIEW_MAX_FEATURES);
    uint64_t h = fnv64(14695981039346656037ull, &deg, sizeof(deg));
    for (size_t i = 0; i < n; i++) {
        const struct ds_cluster *c = &v->clusters[i];
        h = fnv64(h, &c->count, sizeof(c->count));
        h = fnv64(h, &c->cx, sizeof(c->cx));
        h = fnv64(h, &c->cy, sizeof(c->cy));
    }
    if (v->mode == DS_VIEW_CLUSTERS && !v->reset && h == v->cluster_hash)
        return 0;
    buf_printf(out,
               "{\"type\":\"clusters\",\"seq\":%llu,\"server_ms\":%lld,\"total\":%llu,\"cell_deg\":%g,\"clusters\":[",
               (unsigned long long)v->frame_seq + 1, (long long)now_ms, (unsigned long long)total, deg);
    for (size_t i = 0; i < n; i++) {
        const struct ds_cluster *c = &v->clusters[i];
        buf_printf(out, "%s{\"lat\":%.5f,\"lon\":%.5f,\"count\":%u}", i ? "," : "", c->lat, c->lon, c->count);
    }
    buf_puts(out, "]}");
    if (out->oom)
        return -1;
    v->mode = DS_VIEW_CLUSTERS;
    v->cluster_hash = h;
    v->nsent = 0;
    v->reset = 0;
    v->frame_seq++;
    return 1;
}

int ds_view_frame(struct ds_view *v, const struct ds_store *s, int64_t now_ms, struct buf *out)
{
    buf_reset(out);
    if (!v->has_viewport)
        return 0;
    uint64_t approx = ds_store_count_approx(s, &v->bbox);
    size_t total = approx <= DS_VIEW_MAX_TRUCKS ? ds_store_query(s, &v->bbox, v->scratch, DS_VIEW_MAX_FEATURES) : 0;
    if (approx > DS_VIEW_MAX_TRUCKS || total > DS_VIEW_MAX_FEATURES)
        return frame_clusters(v, s, now_ms, approx, out);

    int reset = v->reset || v->mode != DS_VIEW_TRUCKS;
    qsort(v->scratch, total, sizeof(*v->scratch), by_idx);
    for (size_t i = 0; i < total; i++) {
        const struct ds_truck *t = &s->trucks[v->scratch[i]];
        v->cur[i] = (struct ds_view_item){v->scratch[i], t->version, (uint8_t)ds_truck_state(t, now_ms)};
    }
    size_t i = 0, j = 0, ups = 0, rms = 0;
    size_t nsent = reset ? 0 : v->nsent;
    buf_printf(out, "{\"type\":\"trucks\",\"seq\":%llu,\"server_ms\":%lld,\"total\":%zu,\"reset\":%s,\"upsert\":[",
               (unsigned long long)v->frame_seq + 1, (long long)now_ms, total, reset ? "true" : "false");
    while (i < total || j < nsent) {
        if (j >= nsent || (i < total && v->cur[i].idx < v->sent[j].idx)) {
            ds_json_truck(out, s, v->cur[i].idx, now_ms, 0);
            buf_puts(out, ",");
            ups++;
            i++;
        } else if (i >= total || v->sent[j].idx < v->cur[i].idx) {
            j++; /* removed: listed below */
        } else {
            if (v->cur[i].version != v->sent[j].version || v->cur[i].state != v->sent[j].state) {
                ds_json_truck(out, s, v->cur[i].idx, now_ms, 0);
                buf_puts(out, ",");
                ups++;
            }
            i++;
            j++;
        }
    }
    if (ups)
        out->len--; /* the last comma */
    buf_puts(out, "],\"remove\":[");
    for (i = 0, j = 0; j < nsent; j++) {
        while (i < total && v->cur[i].idx < v->sent[j].idx)
            i++;
        if (i < total && v->cur[i].idx == v->sent[j].idx)
            continue;
        size_t id_len;
        const char *id = ds_store_id(s, v->sent[j].idx, &id_len);
        if (rms++)
            buf_puts(out, ",");
        jbuf_str(out, id, id_len);
    }
    buf_puts(out, "]}");
    if (out->oom)
        return -1;
    if (!reset && ups == 0 && rms == 0) {
        buf_reset(out);
        return 0;
    }
    struct ds_view_item *tmp = v->sent;
    v->sent = v->cur;
    v->cur = tmp;
    v->nsent = total;
    v->mode = DS_VIEW_TRUCKS;
    v->reset = 0;
    v->frame_seq++;
    return 1;
}
