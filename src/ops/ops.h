/*
 * ops.h - operator commands: the embedded services and the main job.
 */
#ifndef FS_OPS_H
#define FS_OPS_H

int cmd_services(int argc, char **argv);
int cmd_up(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_status(int argc, char **argv);

#endif
