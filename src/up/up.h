/*
 * up.h - `fleetsync up`: the embedded services, every pipeline and the
 * simulator as one supervised job (docs/up.md).
 */
#ifndef FS_STACK_UP_H
#define FS_STACK_UP_H

int cmd_up(int argc, char **argv);

#endif
