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

/* The account name of a password file line ("name:hash"), copied into buf;
 * returns its length, or -1 for a line that names no account. */
int trucks_line_user(const char *line, char *buf, size_t size);

#endif
