/*
 * fleet.h - the simulated fleet: hubs, shared road polylines, and each
 * truck's motion state machine, stepped in simulated time.
 *
 * Pure logic, no I/O: the same seed, truck count and times give the same
 * readings, bit for bit.  A truck's state is a fixed-size record (no heap,
 * no strings: ids are formatted on the fly); routes are shared by all trucks.
 * The main invariant: within a phase a truck's speed changes linearly, so
 * distance, odometer and fuel are integrated exactly, and the odometer grows
 * by exactly the distance moved along the road.
 *
 * Not thread-safe: one thread owns a fleet.
 */
#ifndef FS_SIM_FLEET_H
#define FS_SIM_FLEET_H

#include "core/rule.h"

#include <stddef.h>
#include <stdint.h>

/* Limits of normal traffic (km/h). */
#define FLEET_MOTORWAY_MAX_KMH 89.0
#define FLEET_URBAN_MAX_KMH 50.0
#define FLEET_NORMAL_MAX_KMH 90.0
/* EU driving rules: a 45 min break after at most 4.5 h of driving. */
#define FLEET_MAX_DRIVE_S (4 * 3600 + 30 * 60)
#define FLEET_BREAK_S (45 * 60)

/* The seven incident rules of docs/design.md "Alerts". */
enum fleet_rule {
    RULE_STATIONARY_ENGINE_ON = FS_RULE_STATIONARY_ENGINE_ON,
    RULE_MOVING_IGNITION_OFF = FS_RULE_MOVING_IGNITION_OFF,
    RULE_GPS_JUMP = FS_RULE_GPS_JUMP,
    RULE_FUEL_DROP = FS_RULE_FUEL_DROP,
    RULE_GEOFENCE_EXIT = FS_RULE_GEOFENCE_EXIT,
    RULE_OVERSPEED = FS_RULE_OVERSPEED,
    RULE_OFFLINE = FS_RULE_OFFLINE,
    RULE_COUNT = FS_RULE_COUNT
};
const char *fleet_rule_name(enum fleet_rule r);
/* Returns the rule for name, or -1. */
int fleet_rule_parse(const char *name);

/* One injected incident (filled by the scenario parser). */
struct fleet_incident {
    uint32_t truck; /* truck index, 0-based */
    enum fleet_rule rule;
    int64_t at_ms;               /* absolute simulated time the incident starts */
    int64_t duration_ms;         /* rules with a duration; fuel_drop: over_s */
    double speed_kmh;            /* moving_ignition_off, overspeed */
    double km;                   /* gps_jump */
    double pct;                  /* fuel_drop */
    double fence_lat, fence_lon; /* geofence_exit: a point inside the fence */
    double fence_out_m;          /* distance from that point that is surely outside */
    int64_t started_ms;          /* 0 until it happened: its actual start */
    int64_t ended_ms;
};

/* One reading, as a truck would report it. */
struct fleet_sample {
    double lat, lon;
    double speed_kmh;
    double heading_deg; /* [0, 360) */
    double fuel_pct;
    double odometer_km;
    int ignition;
    int skip;     /* 1: the truck sends nothing now (offline incident) */
    uint32_t seq; /* per-truck counter, counts only readings sent */
};

struct fleet;

struct fleet_options {
    uint32_t trucks;
    uint64_t seed;
    int64_t start_ms; /* simulated time of the simulation start */
};

/* Creates a fleet whose trucks are in their state at start_ms: each truck
 * starts parked at its depot 16 h earlier and lives up to start_ms.
 * incidents (may be NULL) must be sorted by truck then at_ms; the fleet
 * keeps the pointer and sets started_ms/ended_ms in it, the caller keeps the
 * array alive and owns it.  NULL on OOM. */
struct fleet *fleet_new(const struct fleet_options *opt, struct fleet_incident *incidents, size_t n_incidents);
void fleet_free(struct fleet *f);

/* Moves truck i forward to t_ms (>= its last time) and fills out with its
 * reading.  GPS noise depends on (seed, truck, t_ms) only. */
void fleet_sample(struct fleet *f, uint32_t i, int64_t t_ms, struct fleet_sample *out);

/* Takes up to max indexes (into the incident array) of incidents that have
 * started since the last call, oldest first; their started_ms/ended_ms are
 * set.  Returns how many. */
size_t fleet_take_started(struct fleet *f, int32_t *out, size_t max);

/* Moves truck i forward to t_ms without a reading. */
void fleet_advance(struct fleet *f, uint32_t i, int64_t t_ms);

/* The true state without GPS noise or incidents' report-time effects:
 * for tests.  Reports the truck's phase name. */
struct fleet_truth {
    double lat, lon, speed_kmh, heading_deg, fuel_pct, odometer_km;
    double drive_s; /* driving since the last break */
    int ignition;
    const char *phase;
};
void fleet_truth(struct fleet *f, uint32_t i, int64_t t_ms, struct fleet_truth *out);

size_t fleet_bytes_per_truck(void);
size_t fleet_hub_count(void);
const char *fleet_hub_name(size_t h);

#endif
