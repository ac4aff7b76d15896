/*
 * payload.h - the simulator's MQTT messages: telemetry v1 JSON (docs/design.md)
 * and its topic, written straight into a caller's buffer.
 *
 * Numbers use fixed decimals: lat/lon 6 (0.1 m), speed, heading, fuel and
 * odometer 1.  Every value is clamped into its telemetry v1 range, so the output
 * always passes tm_parse() for a ts within its window.
 */
#ifndef FS_SIM_PAYLOAD_H
#define FS_SIM_PAYLOAD_H

#include "sim/fleet.h"

#include <stddef.h>
#include <stdint.h>

#define SIM_PAYLOAD_MAX 384 /* bytes a reading can take, with a 64-character id */

/* Writes the reading of truck id at ts into buf (NUL-terminated).  Returns
 * its length, or -1 if size < SIM_PAYLOAD_MAX or id is over 64 characters. */
int sim_format_reading(char *buf, size_t size, const char *id, int64_t ts, const struct fleet_sample *s);

/* Writes the same reading in the normalized form the bridge makes of
 * sim_format_reading()'s payload (tm_parse() + tm_serialize(): field order,
 * shortest numbers), byte for byte, without parsing: what `sim --kafka`
 * produces into truck-telemetry.  Returns its length or -1 as above. */
int sim_format_normalized(char *buf, size_t size, const char *id, int64_t ts, const struct fleet_sample *s);

/* Writes fleet/trucks/{id}/telemetry.  Returns its length or -1 if too small. */
int sim_format_topic(char *buf, size_t size, const char *id);

#endif
