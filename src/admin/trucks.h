/*
 * trucks.h - `fleetsync trucks`: per-truck MQTT credentials and ACLs of the
 * embedded broker (docs/security.md; the store is described in
 * core/mqttauth.h).
 */
#ifndef FS_OPS_TRUCKS_H
#define FS_OPS_TRUCKS_H

#include <stddef.h>
#include <stdint.h>

int cmd_trucks(int argc, char **argv);

/* The simulator's names: truck index i (0-based) is prefix + at least six
 * digits of i + 1 (TRK-000001); gateway g (0-based) is prefix + "GW" + four
 * digits of g + 1 (TRK-GW0001).  Return 0, or -1 if it does not fit. */
int trucks_format_id(char *buf, size_t size, const char *prefix, uint32_t index);
int trucks_format_gateway(char *buf, size_t size, const char *prefix, uint32_t index);

/* The account name of a password file line ("name:hash"), copied into buf;
 * returns its length, or -1 for a line that names no account. */
int trucks_line_user(const char *line, char *buf, size_t size);

#endif
