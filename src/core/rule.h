/*
 * rule.h - the seven alert rules by name, in the order every component
 * numbers them (the detector's enum detect_rule, the simulator's enum
 * fleet_rule, bench detect's match tables): docs/design.md "Alerts".
 *
 * Pure; any thread.
 */
#ifndef FS_RULE_H
#define FS_RULE_H

enum fs_rule {
    FS_RULE_STATIONARY_ENGINE_ON = 0,
    FS_RULE_MOVING_IGNITION_OFF,
    FS_RULE_GPS_JUMP,
    FS_RULE_FUEL_DROP,
    FS_RULE_GEOFENCE_EXIT,
    FS_RULE_OVERSPEED,
    FS_RULE_OFFLINE,
    FS_RULE_COUNT
};

/* "stationary_engine_on", ...; NULL outside 0..FS_RULE_COUNT-1. */
const char *fs_rule_name(int rule);

/* The rule named name, or -1 (also for NULL). */
int fs_rule_from_name(const char *name);

#endif
