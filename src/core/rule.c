/*
 * rule.c - the alert rules' names (see rule.h).
 */
#include "core/rule.h"

#include <string.h>

static const char *const names[FS_RULE_COUNT] = {
    [FS_RULE_STATIONARY_ENGINE_ON] = "stationary_engine_on",
    [FS_RULE_MOVING_IGNITION_OFF] = "moving_ignition_off",
    [FS_RULE_GPS_JUMP] = "gps_jump",
    [FS_RULE_FUEL_DROP] = "fuel_drop",
    [FS_RULE_GEOFENCE_EXIT] = "geofence_exit",
    [FS_RULE_OVERSPEED] = "overspeed",
    [FS_RULE_OFFLINE] = "offline",
};

const char *fs_rule_name(int rule)
{
    return rule >= 0 && rule < FS_RULE_COUNT ? names[rule] : NULL;
}

int fs_rule_from_name(const char *name)
{
    for (int i = 0; name && i < FS_RULE_COUNT; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}
