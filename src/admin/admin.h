/*
 * admin.h - the operator's commands on a running system: replay (replay.c)
 * and status (status.c); trucks.h has the MQTT accounts' command.
 */
#ifndef FS_ADMIN_H
#define FS_ADMIN_H

int cmd_replay(int argc, char **argv);
int cmd_status(int argc, char **argv);

#endif
