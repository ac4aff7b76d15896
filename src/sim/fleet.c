/*
 * fleet.c - hubs, roads and the per-truck motion model (see fleet.h).
 *
 * Roads.  Every pair of hubs within a day's reach is joined by a polyline
 * of waypoints about 4 km apart that meanders around the great circle, as
 * a motorway does; the road from B to A is the exact reverse of the road
 * from A to B, so a truck can turn round at any point.  Routes are built
 * once and shared by all trucks.
 *
 * A truck's life is a chain of phases.  Each phase starts at t0, lasts dur
 * and moves the truck with a speed changing linearly from v0 to v1, so the
 * distance is integrated exactly; a reading evaluates the current phase at
 * its time without changing the state.
 *
 *   PARK (depot, engine off, overnight) -> [REFUEL if fuel < 45 %] ->
 *   driving to a neighbouring hub -> LOAD (engine off) -> driving home ->
 *   LOAD (unload) -> PARK until the next day's departure
 *
 * Driving is a sequence of DRIVE phases (accelerate, cruise, brake) and
 * STOP phases (engine on, speed 0: red lights and the stop-and-go of a
 * jam, each at most two minutes).  Urban stretches (the first and last
 * 4 km of a road) run at 30-50 km/h with traffic lights; motorway at
 * 80-89 km/h with slowdowns and jams.  After 4 h 00-10 min of driving
 * (engine-on time) the truck brakes and rests 45-55 min with the engine off,
 * so no stretch exceeds 4.5 h.  Fuel falls with distance only and rises only
 * while refuelling.
 *
 * Incidents from a scenario cut the current phase at their start and run
 * phases of their own (INC_*, GEO_*), then the truck resumes its plan.
 * gps_jump and offline only change what is reported.  A truck with a
 * geofence_exit incident is anchored: it waits parked inside its fence,
 * drives out at 40 km/h so that it crosses the boundary at at_s, waits
 * outside and drives back so that it re-enters at at_s + duration_s.
 */
#include "sim/fleet.h"

#include "core/clock.h"
#include "core/geo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEG (M_PI / 180.0)
#define URBAN_M 4000.0
#define ACC_MPS2 0.4
#define DEC_MPS2 0.8
#define BURN_PCT_PER_M 0.00005 /* 30 l/100 km from a 600 l tank */
#define GEO_V_MPS (40.0 / 3.6)
#define GEO_MARGIN_M 1000.0
#define WAYPOINT_M 4000.0
#define MAX_ROAD_GC_M 270000.0
#define MAX_NEIGHBOURS 10

struct hub {
    const char *name;
    double lat, lon;
};

/* European logistics hubs. */
static const struct hub hubs[] = {
    {"Hamburg", 53.5511, 9.9937},    {"Bremen", 53.0793, 8.8017},      {"Hannover", 52.3759, 9.7320},
    {"Berlin", 52.5200, 13.4050},    {"Leipzig", 51.3397, 12.3731},    {"Dresden", 51.0504, 13.7373},
    {"Dortmund", 51.5136, 7.4653},   {"Duisburg", 51.4344, 6.7623},    {"Cologne", 50.9375, 6.9603},
    {"Frankfurt", 50.1109, 8.6821},  {"Nuremberg", 49.4521, 11.0767},  {"Munich", 48.1351, 11.5820},
    {"Stuttgart", 48.7758, 9.1829},  {"Mannheim", 49.4875, 8.4660},    {"Kassel", 51.3127, 9.4797},
    {"Rotterdam", 51.9244, 4.4777},  {"Amsterdam", 52.3676, 4.9041},   {"Venlo", 51.3704, 6.1724},
    {"Antwerp", 51.2194, 4.4025},    {"Brussels", 50.8503, 4.3517},    {"Liege", 50.6326, 5.5797},
    {"Luxembourg", 49.6116, 6.1319}, {"Lille", 50.6292, 3.0573},       {"Paris", 48.8566, 2.3522},
    {"Metz", 49.1193, 6.1757},       {"Strasbourg", 48.5734, 7.7521},  {"Lyon", 45.7640, 4.8357},
    {"Basel", 47.5596, 7.5886},      {"Zurich", 47.3769, 8.5417},      {"Vienna", 48.2082, 16.3738},
    {"Linz", 48.3069, 14.2858},      {"Salzburg", 47.8095, 13.0550},   {"Prague", 50.0755, 14.4378},
    {"Brno", 49.1951, 16.6068},      {"Wroclaw", 51.1079, 17.0385},    {"Poznan", 52.4064, 16.9252},
    {"Katowice", 50.2649, 19.0238},  {"Lodz", 51.7592, 19.4560},       {"Warsaw", 52.2297, 21.0122},
    {"Milan", 45.4642, 9.1900},      {"Verona", 45.4384, 10.9916},     {"Bologna", 44.4949, 11.3426},
    {"Turin", 45.0703, 7.6869},      {"Innsbruck", 47.2692, 11.4041},  {"Le Havre", 49.4944, 0.1079},
    {"Orleans", 47.9030, 1.9093},    {"Copenhagen", 55.6761, 12.5683}, {"Aarhus", 56.1629, 10.2039},
};
#define N_HUBS (sizeof(hubs) / sizeof(hubs[0]))

struct route_pt {
    float lat, lon;
    float cum_m; /* road distance from the start */
    float hdg;   /* heading of the segment starting here */
};

struct route {
    struct route_pt *pts;
    uint32_t n;
    float len_m;
};

enum phase {
    PH_PARK,
    PH_REFUEL,
    PH_LOAD,
    PH_REST,
    PH_DRIVE,
    PH_STOP,
    PH_INC_IDLE,
    PH_INC_MOVE,
    PH_INC_FUEL,
    PH_GEO_OUT,
    PH_GEO_AWAY,
    PH_GEO_BACK,
};

static const char *const phase_names[] = {"park",     "refuel",   "load",     "rest",    "drive",    "stop",
                                          "inc_idle", "inc_move", "inc_fuel", "geo_out", "geo_away", "geo_back"};

enum mode { M_NORMAL, M_LIGHT, M_JAM, M_REST };

enum { F_ANCHORED = 1, F_IGN_OFF = 2, F_MOVED = 4 };

/* One truck: 80 bytes, no pointers. */
struct truck {
    double odo_m;      /* odometer at t0 */
    int64_t t0_ms;     /* start of the current phase */
    int64_t resume_ms; /* end of the phase an incident interrupted / GEO_BACK start */
    uint32_t dur_ms;
    float pos_m;   /* along the route (anchored: distance from the fence point) */
    float v0, v1;  /* m/s at t0 and at t0 + dur */
    float fuel;    /* pct at t0 */
    float aux;     /* REFUEL: target pct; INC_FUEL: pct lost over the phase */
    float drive_s; /* engine-on driving since the last break, at t0 */
    uint32_t rng;  /* draws so far */
    uint32_t seq;
    int32_t inc_phase;  /* next incident that runs phases, -1 none */
    int32_t inc_report; /* next incident that changes reports only, -1 none */
    uint8_t phase, mode, home, dest, leg, jam_left, saved, flags;
};

struct neighbours {
    uint8_t n;
    uint8_t hub[MAX_NEIGHBOURS];
};

struct fleet {
    uint64_t seed;
    uint32_t n;
    struct truck *trucks;
    struct route *routes; /* [from * N_HUBS + to], pts NULL if not a road */
    struct neighbours nb[N_HUBS];
    struct fleet_incident *inc;
    size_t n_inc;
    int32_t *started; /* incidents started and not yet taken */
    size_t n_started;
};

const char *fleet_rule_name(enum fleet_rule r)
{
    const char *name = fs_rule_name((int)r);
    return name ? name : "?";
}

int fleet_rule_parse(const char *name)
{
    return fs_rule_from_name(name);
}

size_t fleet_bytes_per_truck(void)
{
    return sizeof(struct truck);
}

size_t fleet_hub_count(void)
{
    return N_HUBS;
}

const char *fleet_hub_name(size_t h)
{
    return h < N_HUBS ? hubs[h].name : NULL;
}

/* --- deterministic randomness ------------------------------------------ */

static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static uint64_t hash3(uint64_t a, uint64_t b, uint64_t c)
{
    return mix64(mix64(mix64(a) ^ b) ^ c);
}

/* Uniform in [0, 1) from the truck's own stream. */
static double rnd(const struct fleet *f, struct truck *t, uint32_t idx)
{
    uint64_t h = hash3(f->seed, ((uint64_t)idx << 32) | 0x5eed, t->rng++);
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

static double rnd_range(const struct fleet *f, struct truck *t, uint32_t idx, double lo, double hi)
{
    return lo + (hi - lo) * rnd(f, t, idx);
}

static double hash_unit(uint64_t h)
{
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

/* --- roads ------------------------------------------------------------- */

static int build_route(struct route *r, size_t a, size_t b)
{
    double la = hubs[a].lat, oa = hubs[a].lon, lb = hubs[b].lat, ob = hubs[b].lon;
    double gc = geo_haversine_m(la, oa, lb, ob);
    uint32_t segs = (uint32_t)(gc * 1.1 / WAYPOINT_M) + 8;
    r->pts = calloc(segs + 1, sizeof(*r->pts));
    if (!r->pts)
        return -1;
    r->n = segs + 1;
    /* The meander: two sine waves with phases from the hub pair, fading to
     * zero at both ends; the amplitude grows with the distance. */
    uint64_t h = hash3(0xf1ee7, a < b ? a : b, a < b ? b : a);
    double ph1 = hash_unit(h) * 2 * M_PI, ph2 = hash_unit(mix64(h)) * 2 * M_PI;
    double amp = 0.06 * gc;
    double mlat = cos((la + lb) / 2 * DEG);
    /* Generated from the lower-numbered hub and reversed for the other
     * direction, so A->B and B->A are the same road. */
    size_t lo = a < b ? a : b, hi = a < b ? b : a;
    double lo_lat = hubs[lo].lat, lo_lon = hubs[lo].lon, hi_lat = hubs[hi].lat, hi_lon = hubs[hi].lon;
    double dx = (hi_lon - lo_lon) * mlat, dy = hi_lat - lo_lat, dn = sqrt(dx * dx + dy * dy);
    double px = -dy / dn, py = dx / dn; /* unit normal in a local metric frame */
    for (uint32_t k = 0; k <= segs; k++) {
        double fr = (double)k / segs;
        double off = amp * sin(M_PI * fr) * (0.7 * sin(2 * M_PI * fr + ph1) + 0.3 * sin(6 * M_PI * fr + ph2));
        double lat = lo_lat + (hi_lat - lo_lat) * fr + off * py / 111195.0;
        double lon = lo_lon + (hi_lon - lo_lon) * fr + off * px / (111195.0 * mlat);
        uint32_t at = a < b ? k : segs - k;
        r->pts[at].lat = (float)lat;
        r->pts[at].lon = (float)lon;
    }
    double cum = 0;
    for (uint32_t k = 0; k < r->n; k++) {
        r->pts[k].cum_m = (float)cum;
        if (k + 1 < r->n) {
            cum += geo_haversine_m(r->pts[k].lat, r->pts[k].lon, r->pts[k + 1].lat, r->pts[k + 1].lon);
            r->pts[k].hdg = (float)geo_bearing_deg(r->pts[k].lat, r->pts[k].lon, r->pts[k + 1].lat, r->pts[k + 1].lon);
        } else {
            r->pts[k].hdg = r->pts[k - 1].hdg;
        }
    }
    r->len_m = (float)cum;
    return 0;
}

static int build_roads(struct fleet *f)
{
    f->routes = calloc(N_HUBS * N_HUBS, sizeof(*f->routes));
    if (!f->routes)
        return -1;
    for (size_t a = 0; a < N_HUBS; a++) {
        /* Neighbours: the hubs within a day's reach; the nearest if none. */
        size_t nearest = a;
        double best = 1e18;
        for (size_t b = 0; b < N_HUBS; b++) {
            if (b == a)
                continue;
            double d = geo_haversine_m(hubs[a].lat, hubs[a].lon, hubs[b].lat, hubs[b].lon);
            if (d < best) {
                best = d;
                nearest = b;
            }
            if (d <= MAX_ROAD_GC_M && f->nb[a].n < MAX_NEIGHBOURS)
                f->nb[a].hub[f->nb[a].n++] = (uint8_t)b;
        }
        if (f->nb[a].n == 0)
            f->nb[a].hub[f->nb[a].n++] = (uint8_t)nearest;
    }
    for (size_t a = 0; a < N_HUBS; a++)
        for (uint8_t k = 0; k < f->nb[a].n; k++) {
            size_t b = f->nb[a].hub[k];
            if (!f->routes[a * N_HUBS + b].pts && build_route(&f->routes[a * N_HUBS + b], a, b) != 0)
                return -1;
            if (!f->routes[b * N_HUBS + a].pts && build_route(&f->routes[b * N_HUBS + a], b, a) != 0)
                return -1;
        }
    return 0;
}

static const struct route *truck_route(const struct fleet *f, const struct truck *t)
{
    size_t from = t->leg ? t->dest : t->home, to = t->leg ? t->home : t->dest;
    return &f->routes[from * N_HUBS + to];
}

/* Position and heading at distance pos along r. */
static void route_point(const struct route *r, double pos, double *lat, double *lon, double *hdg)
{
    uint32_t lo = 0, hi = r->n - 1;
    if (pos <= 0) {
        *lat = r->pts[0].lat;
        *lon = r->pts[0].lon;
        *hdg = r->pts[0].hdg;
        return;
    }
    if (pos >= r->len_m) {
        *lat = r->pts[hi].lat;
        *lon = r->pts[hi].lon;
        *hdg = r->pts[hi].hdg;
        return;
    }
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (r->pts[mid].cum_m <= pos)
            lo = mid;
        else
            hi = mid;
    }
    const struct route_pt *p = &r->pts[lo], *q = &r->pts[lo + 1];
    double seg = q->cum_m - p->cum_m, fr = seg > 0 ? (pos - p->cum_m) / seg : 0;
    *lat = p->lat + (q->lat - p->lat) * fr;
    *lon = p->lon + (q->lon - p->lon) * fr;
    *hdg = p->hdg;
}

/* --- phases ------------------------------------------------------------ */

static int phase_moves(int ph)
{
    return ph == PH_DRIVE || ph == PH_INC_MOVE || ph == PH_GEO_OUT || ph == PH_GEO_BACK;
}

static int phase_engine_on(const struct truck *t)
{
    switch (t->phase) {
    case PH_DRIVE:
    case PH_STOP:
    case PH_INC_IDLE:
    case PH_GEO_OUT:
    case PH_GEO_BACK:
        return 1;
    case PH_INC_MOVE:
        return !(t->flags & F_IGN_OFF);
    default:
        return 0;
    }
}

static int phase_stationary_normal(int ph)
{
    return ph == PH_PARK || ph == PH_REFUEL || ph == PH_LOAD || ph == PH_REST;
}

/* The state of a truck at time t within its current phase. */
struct state {
    double pos, odo, fuel, v, dist, drive_s;
};

static void eval(const struct truck *t, int64_t t_ms, struct state *s)
{
    double T = t->dur_ms / 1000.0;
    double tau = (double)(t_ms - t->t0_ms) / 1000.0;
    if (tau < 0)
        tau = 0;
    if (tau > T)
        tau = T;
    double d = 0, v = 0;
    if (phase_moves(t->phase)) {
        double a = T > 0 ? (t->v1 - t->v0) / T : 0;
        d = t->v0 * tau + 0.5 * a * tau * tau;
        v = t->v0 + a * tau;
        if (tau >= T) {
            d = 0.5 * ((double)t->v0 + t->v1) * T;
            v = t->v1;
        }
        if (d < 0)
            d = 0;
        if (v < 0)
            v = 0;
    }
    s->dist = d;
    s->v = v;
    s->pos = t->phase == PH_GEO_BACK ? t->pos_m - d : t->pos_m + d;
    if (s->pos < 0)
        s->pos = 0;
    s->odo = t->odo_m + d;
    double fuel = t->fuel;
    if (phase_moves(t->phase))
        fuel -= d * BURN_PCT_PER_M;
    else if (t->phase == PH_REFUEL && T > 0)
        fuel += (t->aux - t->fuel) * tau / T;
    else if (t->phase == PH_INC_FUEL && T > 0)
        fuel -= t->aux * tau / T;
    s->fuel = fuel < 0 ? 0 : fuel > 100 ? 100 : fuel;
    s->drive_s = t->drive_s + ((t->phase == PH_DRIVE || t->phase == PH_STOP) ? tau : 0);
}

static void set_base(struct truck *t, const struct state *s, int64_t t_ms, double route_len)
{
    t->pos_m = (float)(route_len > 0 && s->pos > route_len ? route_len : s->pos);
    t->odo_m = s->odo;
    /* Rounded down, so storing never makes fuel rise. */
    float fuel = (float)s->fuel;
    if (fuel > s->fuel)
        fuel = nextafterf(fuel, -1.0f);
    t->fuel = fuel;
    t->drive_s = (float)s->drive_s;
    t->v0 = t->v1 = (float)s->v;
    t->t0_ms = t_ms;
    t->dur_ms = 0;
}

static void start(struct truck *t, int ph, double dur_s, double v0, double v1)
{
    t->phase = (uint8_t)ph;
    long long ms = llround(dur_s * 1000.0);
    if (ms < 1)
        ms = 1;
    if (ms > 0xFFFFFFF0LL)
        ms = 0xFFFFFFF0LL;
    t->dur_ms = (uint32_t)ms;
    t->v0 = (float)v0;
    t->v1 = (float)v1;
}

static double rest_due_s(const struct fleet *f, uint32_t idx)
{
    return 4 * 3600 + (double)(hash3(f->seed, idx, 0x4e57) % 600);
}

static int64_t departure_ms(const struct fleet *f, uint32_t idx, int64_t day)
{
    return day * FS_DAY_MS + (int64_t)(hash3(f->seed, idx, (uint64_t)day) % (16 * 3600000ULL));
}

static void pick_destination(const struct fleet *f, struct truck *t, uint32_t idx)
{
    const struct neighbours *nb = &f->nb[t->home];
    t->dest = nb->hub[(uint32_t)(rnd(f, t, idx) * nb->n) % nb->n];
    t->leg = 0;
}

static void park_until_departure(const struct fleet *f, struct truck *t, uint32_t idx)
{
    int64_t now = t->t0_ms, day = fs_day_of(now) + 1;
    int64_t dep = departure_ms(f, idx, day);
    if (dep - now < 8 * 3600000LL)
        dep = departure_ms(f, idx, day + 1);
    t->drive_s = 0;
    t->mode = M_NORMAL;
    start(t, PH_PARK, (double)(dep - now) / 1000.0, 0, 0);
}

static void arrive(const struct fleet *f, struct truck *t, uint32_t idx, const struct route *r)
{
    t->pos_m = r->len_m;
    t->v0 = t->v1 = 0;
    t->mode = M_NORMAL;
    double lo = t->leg ? 20 * 60 : 25 * 60, hi = t->leg ? 60 * 60 : 110 * 60;
    if (t->drive_s > 3 * 3600)
        lo = 46 * 60;
    if (hi < lo)
        hi = lo + 600;
    start(t, PH_LOAD, rnd_range(f, t, idx, lo, hi), 0, 0);
}

/* A DRIVE phase from v0 to v1 with acceleration a (> 0). */
static void ramp(struct truck *t, double v0, double v1, double a)
{
    start(t, PH_DRIVE, fabs(v1 - v0) / a, v0, v1);
}

/* Plans the next driving phase; the truck's base state is current. */
static void plan_drive(const struct fleet *f, struct truck *t, uint32_t idx, int prev)
{
    const struct route *r = truck_route(f, t);
    double pos = t->pos_m, rem = r->len_m - pos, v = t->v1;
    if (!phase_moves(prev))
        v = 0;
    t->v0 = t->v1 = (float)v;
    if (rem <= 0.5) {
        arrive(f, t, idx, r);
        return;
    }
    double brake = v * v / (2 * DEC_MPS2);
    if (v < 0.05) {
        v = 0;
        if (t->mode == M_REST) {
            t->mode = M_NORMAL;
            start(t, PH_REST, rnd_range(f, t, idx, FLEET_BREAK_S, FLEET_BREAK_S + 600), 0, 0);
            return;
        }
        if (t->mode == M_LIGHT) {
            t->mode = M_NORMAL;
            start(t, PH_STOP, rnd_range(f, t, idx, 20, 120), 0, 0);
            return;
        }
    }
    if (t->drive_s >= rest_due_s(f, idx)) {
        if (v == 0) {
            t->mode = M_NORMAL;
            start(t, PH_REST, rnd_range(f, t, idx, FLEET_BREAK_S, FLEET_BREAK_S + 600), 0, 0);
            return;
        }
        if (brake + 1 < rem) {
            t->mode = M_REST;
            ramp(t, v, 0, DEC_MPS2);
            return;
        }
    }
    if (rem <= brake + 1.0) { /* final approach */
        if (v > 0.05)
            start(t, PH_DRIVE, 2 * rem / v, v, 0);
        else
            start(t, PH_DRIVE, rem / 1.5, 1.5, 1.5);
        return;
    }
    if (t->mode == M_JAM) {
        if (v == 0 && prev != PH_STOP) {
            if (t->jam_left == 0) {
                t->mode = M_NORMAL;
            } else {
                t->jam_left--;
                start(t, PH_STOP, rnd_range(f, t, idx, 5, 45), 0, 0);
                return;
            }
        } else if (v == 0) {
            double crawl = rnd_range(f, t, idx, 1.4, 2.8);
            if (crawl * crawl / (2 * ACC_MPS2) + crawl * crawl / (2 * DEC_MPS2) + 1 < rem) {
                ramp(t, 0, crawl, ACC_MPS2);
                return;
            }
            t->mode = M_NORMAL;
        } else if (prev == PH_DRIVE && v < 3.0) {
            double hold = rnd_range(f, t, idx, 15, 50);
            if (v * hold + brake + 1 < rem) {
                start(t, PH_DRIVE, hold, v, v);
                /* mark the hold done: next time we brake */
                t->mode = M_JAM;
                t->jam_left |= 0x80;
                return;
            }
            ramp(t, v, 0, DEC_MPS2);
            return;
        } else {
            ramp(t, v, 0, DEC_MPS2);
            return;
        }
    }
    int urban = pos < URBAN_M || rem < URBAN_M;
    double target = urban ? rnd_range(f, t, idx, 30, FLEET_URBAN_MAX_KMH) / 3.6
                          : rnd_range(f, t, idx, 80, FLEET_MOTORWAY_MAX_KMH) / 3.6;
    if (v > 0.05 && prev == PH_DRIVE) {
        double p = rnd(f, t, idx);
        if (urban && p < 0.15 && brake + 1 < rem) {
            t->mode = M_LIGHT;
            ramp(t, v, 0, DEC_MPS2);
            return;
        }
        if (!urban && p < 0.015 && brake + 1 < rem) {
            t->mode = M_JAM;
            t->jam_left = (uint8_t)(3 + rnd(f, t, idx) * 8);
            ramp(t, v, 0, DEC_MPS2);
            return;
        }
        if (!urban && p < 0.06)
            target = rnd_range(f, t, idx, 45, 65) / 3.6;
    }
    if (fabs(target - v) > 0.3) {
        double a = target > v ? ACC_MPS2 : DEC_MPS2;
        double dist = (v + target) / 2 * fabs(target - v) / a;
        if (dist + target * target / (2 * DEC_MPS2) + 1 > rem) {
            /* Too close to the end for that speed: the fastest that still stops. */
            double vmax = 0.9 * sqrt(2 * rem * ACC_MPS2 * DEC_MPS2 / (ACC_MPS2 + DEC_MPS2));
            if (vmax > v + 0.3 && vmax < target) {
                ramp(t, v, vmax, ACC_MPS2);
                return;
            }
            if (v > 0.05)
                start(t, PH_DRIVE, 2 * rem / v, v, 0);
            else
                start(t, PH_DRIVE, rem / 1.5, 1.5, 1.5);
            return;
        }
        ramp(t, v, target, a);
        return;
    }
    double hold = urban ? rnd_range(f, t, idx, 20, 90) : rnd_range(f, t, idx, 120, 720);
    double maxd = rem - brake - 1;
    if (!urban && rem > URBAN_M)
        maxd = fmin(maxd, rem - URBAN_M + 1);
    if (urban && pos < URBAN_M && rem > URBAN_M)
        maxd = fmin(maxd, URBAN_M - pos + 1);
    if (v * hold > maxd)
        hold = maxd / v;
    if (hold < 0.5)
        hold = fmin(0.5, (rem - brake - 1) / v);
    start(t, PH_DRIVE, hold, v, v);
}

static void resume(const struct fleet *f, struct truck *t, uint32_t idx);

/* Anchored trucks wait parked at their fence point, a day at a time. */
static void anchored_park(struct truck *t)
{
    start(t, PH_PARK, 86400.0, 0, 0);
}

/* Called when the current phase has ended and the base state is its end. */
static void next_phase(const struct fleet *f, struct truck *t, uint32_t idx)
{
    int prev = t->phase;
    switch (prev) {
    case PH_PARK:
        if (t->flags & F_ANCHORED) {
            anchored_park(t);
            return;
        }
        t->drive_s = 0;
        if (t->fuel < 45) {
            t->aux = (float)rnd_range(f, t, idx, 92, 99.5);
            start(t, PH_REFUEL, rnd_range(f, t, idx, 600, 1080), 0, 0);
            return;
        }
        plan_drive(f, t, idx, prev);
        return;
    case PH_REFUEL:
        plan_drive(f, t, idx, prev);
        return;
    case PH_LOAD:
        if (t->dur_ms >= FLEET_BREAK_S * 1000u)
            t->drive_s = 0;
        if (t->leg == 0) {
            /* Turn round: the same point on the reverse road. */
            const struct route *r = truck_route(f, t);
            t->pos_m = r->len_m - t->pos_m;
            t->leg = 1;
            if (t->pos_m < 0)
                t->pos_m = 0;
            plan_drive(f, t, idx, prev);
        } else {
            pick_destination(f, t, idx);
            t->pos_m = 0;
            park_until_departure(f, t, idx);
        }
        return;
    case PH_REST:
        t->drive_s = 0;
        t->mode = M_NORMAL;
        plan_drive(f, t, idx, prev);
        return;
    case PH_DRIVE:
    case PH_STOP:
        if (t->mode == M_JAM && (t->jam_left & 0x80)) {
            t->jam_left &= 0x7f;
            ramp(t, t->v1, 0, DEC_MPS2);
            return;
        }
        plan_drive(f, t, idx, prev);
        return;
    case PH_GEO_OUT:
        start(t, PH_GEO_AWAY, (double)(t->resume_ms > t->t0_ms ? t->resume_ms - t->t0_ms : 0) / 1000.0, 0, 0);
        return;
    case PH_GEO_AWAY:
        start(t, PH_GEO_BACK, t->pos_m / GEO_V_MPS, GEO_V_MPS, GEO_V_MPS);
        return;
    case PH_GEO_BACK:
        t->pos_m = 0;
        anchored_park(t);
        return;
    default: /* INC_* */
        resume(f, t, idx);
        return;
    }
}

static void resume(const struct fleet *f, struct truck *t, uint32_t idx)
{
    int saved = t->saved, moved = t->flags & F_MOVED;
    t->flags &= (uint8_t) ~(F_MOVED | F_IGN_OFF);
    if (t->flags & F_ANCHORED) {
        t->v0 = t->v1 = 0;
        anchored_park(t);
        return;
    }
    if (phase_stationary_normal(saved) && !moved) {
        if (t->resume_ms > t->t0_ms) {
            start(t, saved, (double)(t->resume_ms - t->t0_ms) / 1000.0, 0, 0);
            return;
        }
        t->phase = (uint8_t)saved;
        t->dur_ms = 0;
        next_phase(f, t, idx);
        return;
    }
    t->mode = M_NORMAL;
    plan_drive(f, t, idx, t->phase);
}

/* --- incidents --------------------------------------------------------- */

static int rule_is_report_only(enum fleet_rule r)
{
    return r == RULE_GPS_JUMP || r == RULE_OFFLINE;
}

static int32_t next_incident(const struct fleet *f, int32_t from, uint32_t truck, int report_only)
{
    for (size_t k = from < 0 ? 0 : (size_t)from; k < f->n_inc && f->inc[k].truck == truck; k++)
        if (rule_is_report_only(f->inc[k].rule) == report_only)
            return (int32_t)k;
    return -1;
}

static const struct fleet_incident *anchor_of(const struct fleet *f, uint32_t truck)
{
    size_t lo = 0, hi = f->n_inc;
    while (lo < hi) { /* first incident of the truck */
        size_t mid = (lo + hi) / 2;
        if (f->inc[mid].truck < truck)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = lo; k < f->n_inc && f->inc[k].truck == truck; k++)
        if (f->inc[k].rule == RULE_GEOFENCE_EXIT)
            return &f->inc[k];
    return NULL;
}

static double anchor_bearing(const struct fleet *f, uint32_t idx)
{
    return (double)(hash3(f->seed, idx, 0xb3a7) % 3600) / 10.0;
}

static int64_t incident_begin(const struct fleet_incident *in)
{
    if (in->rule == RULE_GEOFENCE_EXIT)
        return in->at_ms - (int64_t)llround(in->fence_out_m / GEO_V_MPS * 1000.0);
    return in->at_ms;
}

/* Starts incident k at time tc; the base state is already at tc. */
static void start_incident(struct fleet *f, struct truck *t, struct fleet_incident *in, int64_t tc,
                           const struct state *s, double route_len)
{
    int ph = t->phase;
    if (phase_stationary_normal(ph) || ph == PH_DRIVE || ph == PH_STOP) {
        t->saved = (uint8_t)ph;
        t->resume_ms = t->t0_ms + t->dur_ms;
    }
    set_base(t, s, tc, route_len);
    f->started[f->n_started++] = (int32_t)(in - f->inc);
    t->mode = M_NORMAL;
    double dur_s = (double)in->duration_ms / 1000.0;
    in->started_ms = in->at_ms;
    in->ended_ms = in->at_ms + in->duration_ms;
    switch (in->rule) {
    case RULE_STATIONARY_ENGINE_ON:
        start(t, PH_INC_IDLE, dur_s, 0, 0);
        break;
    case RULE_OVERSPEED:
    case RULE_MOVING_IGNITION_OFF: {
        double v = in->speed_kmh / 3.6, need = v * dur_s + 10;
        if (!(t->flags & F_ANCHORED) && route_len - t->pos_m < need && t->pos_m > need) {
            t->pos_m = (float)(route_len - t->pos_m);
            t->leg ^= 1;
        }
        if (in->rule == RULE_MOVING_IGNITION_OFF)
            t->flags |= F_IGN_OFF;
        t->flags |= F_MOVED;
        start(t, PH_INC_MOVE, dur_s, v, v);
        break;
    }
    case RULE_FUEL_DROP:
        t->aux = (float)fmin(in->pct, t->fuel);
        start(t, PH_INC_FUEL, dur_s, 0, 0);
        break;
    case RULE_GEOFENCE_EXIT: {
        double out_m = in->fence_out_m + GEO_MARGIN_M;
        /* GEO_BACK starts so that the truck re-enters at at + duration. */
        t->resume_ms = in->at_ms + in->duration_ms - (int64_t)llround(GEO_MARGIN_M / GEO_V_MPS * 1000.0);
        start(t, PH_GEO_OUT, fmax(0.001, (out_m - t->pos_m) / GEO_V_MPS), GEO_V_MPS, GEO_V_MPS);
        break;
    }
    default:
        break;
    }
}

/* --- stepping ---------------------------------------------------------- */

static double route_len_of(const struct fleet *f, const struct truck *t)
{
    return (t->flags & F_ANCHORED) ? 0 : truck_route(f, t)->len_m;
}

void fleet_advance(struct fleet *f, uint32_t i, int64_t t_ms)
{
    struct truck *t = &f->trucks[i];
    for (int guard = 0; guard < 1000000; guard++) {
        int64_t end = t->t0_ms + t->dur_ms;
        if (t->inc_phase >= 0) {
            struct fleet_incident *in = &f->inc[t->inc_phase];
            int64_t begin = incident_begin(in);
            if (begin < t->t0_ms)
                begin = t->t0_ms;
            if (begin <= t_ms && begin <= end) {
                struct state s;
                eval(t, begin, &s);
                t->inc_phase = next_incident(f, t->inc_phase + 1, i, 0);
                start_incident(f, t, in, begin, &s, route_len_of(f, t));
                continue;
            }
        }
        if (end > t_ms)
            return;
        struct state s;
        eval(t, end, &s);
        int ph = t->phase;
        uint32_t dur = t->dur_ms;
        set_base(t, &s, end, route_len_of(f, t));
        t->phase = (uint8_t)ph;
        t->dur_ms = dur;
        next_phase(f, t, i);
        t->t0_ms = end;
    }
}

static void position_of(const struct fleet *f, const struct truck *t, uint32_t idx, double pos, double *lat,
                        double *lon, double *hdg)
{
    if (t->flags & F_ANCHORED) {
        const struct fleet_incident *a = anchor_of(f, idx);
        double b = anchor_bearing(f, idx);
        if (a)
            geo_destination(a->fence_lat, a->fence_lon, b, pos, lat, lon);
        else
            *lat = *lon = 0;
        *hdg = t->phase == PH_GEO_BACK ? fmod(b + 180.0, 360.0) : b;
        return;
    }
    route_point(truck_route(f, t), pos, lat, lon, hdg);
}

void fleet_truth(struct fleet *f, uint32_t i, int64_t t_ms, struct fleet_truth *out)
{
    fleet_advance(f, i, t_ms);
    const struct truck *t = &f->trucks[i];
    struct state s;
    eval(t, t_ms, &s);
    position_of(f, t, i, s.pos, &out->lat, &out->lon, &out->heading_deg);
    out->speed_kmh = s.v * 3.6;
    out->fuel_pct = s.fuel;
    out->odometer_km = s.odo / 1000.0;
    out->drive_s = s.drive_s;
    out->ignition = phase_engine_on(t);
    out->phase = phase_names[t->phase];
}

void fleet_sample(struct fleet *f, uint32_t i, int64_t t_ms, struct fleet_sample *out)
{
    struct fleet_truth tr;
    fleet_truth(f, i, t_ms, &tr);
    struct truck *t = &f->trucks[i];
    out->speed_kmh = tr.speed_kmh;
    out->heading_deg = tr.heading_deg;
    out->fuel_pct = tr.fuel_pct;
    out->odometer_km = tr.odometer_km;
    out->ignition = tr.ignition;
    out->skip = 0;
    /* GPS noise: a few metres, from (seed, truck, time) only. */
    uint64_t h = hash3(f->seed ^ 0x6e015e, i, (uint64_t)t_ms);
    double n_m = (hash_unit(h) + hash_unit(mix64(h)) + hash_unit(mix64(h + 1)) - 1.5) * 2.5;
    double e_m = (hash_unit(mix64(h + 2)) + hash_unit(mix64(h + 3)) + hash_unit(mix64(h + 4)) - 1.5) * 2.5;
    out->lat = tr.lat + n_m / 111195.0;
    out->lon = tr.lon + e_m / (111195.0 * cos(tr.lat * DEG));
    /* Incidents that change only what is reported. */
    while (t->inc_report >= 0) {
        struct fleet_incident *in = &f->inc[t->inc_report];
        if (t_ms < in->at_ms)
            break;
        if (in->rule == RULE_GPS_JUMP) {
            double b = (double)(hash3(f->seed, i, (uint64_t)in->at_ms) % 360);
            geo_destination(out->lat, out->lon, b, in->km * 1000.0, &out->lat, &out->lon);
            in->started_ms = t_ms;
            in->ended_ms = t_ms;
            f->started[f->n_started++] = t->inc_report;
            t->inc_report = next_incident(f, t->inc_report + 1, i, 1);
            break;
        }
        /* offline */
        if (t_ms >= in->at_ms + in->duration_ms) {
            t->inc_report = next_incident(f, t->inc_report + 1, i, 1);
            continue;
        }
        out->skip = 1;
        if (!in->started_ms) {
            in->started_ms = in->at_ms;
            in->ended_ms = in->at_ms + in->duration_ms;
            f->started[f->n_started++] = t->inc_report;
        }
        break;
    }
    out->seq = out->skip ? t->seq : t->seq++;
}

/* --- creation ---------------------------------------------------------- */

struct fleet *fleet_new(const struct fleet_options *opt, struct fleet_incident *incidents, size_t n_incidents)
{
    struct fleet *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->seed = opt->seed;
    f->n = opt->trucks;
    f->inc = incidents;
    f->n_inc = incidents ? n_incidents : 0;
    f->trucks = calloc(opt->trucks ? opt->trucks : 1, sizeof(*f->trucks));
    f->started = calloc(f->n_inc + 1, sizeof(*f->started));
    if (!f->trucks || !f->started || build_roads(f) != 0) {
        fleet_free(f);
        return NULL;
    }
    /* Each truck starts parked at its depot 16 h before the start and lives
     * its day up to the start, so the fleet begins mid-day, mixed. */
    int64_t t_init = opt->start_ms - 16 * 3600000LL;
    size_t k = 0;
    for (uint32_t i = 0; i < f->n; i++) {
        struct truck *t = &f->trucks[i];
        t->home = (uint8_t)(hash3(f->seed, i, 0x40e) % N_HUBS);
        t->odo_m = (50000.0 + hash_unit(hash3(f->seed, i, 0x0d0)) * 750000.0) * 1000.0;
        t->fuel = (float)(35.0 + hash_unit(hash3(f->seed, i, 0xf0e1)) * 60.0);
        t->inc_phase = t->inc_report = -1;
        while (k < f->n_inc && f->inc[k].truck < i)
            k++;
        if (k < f->n_inc && f->inc[k].truck == i) {
            t->inc_phase = next_incident(f, (int32_t)k, i, 0);
            t->inc_report = next_incident(f, (int32_t)k, i, 1);
            if (anchor_of(f, i))
                t->flags |= F_ANCHORED;
        }
        pick_destination(f, t, i);
        t->t0_ms = t_init;
        if (t->flags & F_ANCHORED) {
            anchored_park(t);
        } else {
            int64_t dep = departure_ms(f, i, fs_day_of(t_init));
            if (dep < t_init)
                dep = departure_ms(f, i, fs_day_of(t_init) + 1);
            start(t, PH_PARK, (double)(dep - t_init) / 1000.0, 0, 0);
        }
        fleet_advance(f, i, opt->start_ms);
    }
    return f;
}

void fleet_free(struct fleet *f)
{
    if (!f)
        return;
    if (f->routes) {
        for (size_t k = 0; k < N_HUBS * N_HUBS; k++)
            free(f->routes[k].pts);
        free(f->routes);
    }
    free(f->trucks);
    free(f->started);
    free(f);
}

size_t fleet_take_started(struct fleet *f, int32_t *out, size_t max)
{
    size_t n = f->n_started < max ? f->n_started : max;
    memcpy(out, f->started, n * sizeof(*out));
    memmove(f->started, f->started + n, (f->n_started - n) * sizeof(*out));
    f->n_started -= n;
    return n;
}
