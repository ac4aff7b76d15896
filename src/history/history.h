/*
 * history.h - the cold pipeline: `fleetsync history` (PostgreSQL sink).
 */
#ifndef FS_HISTORY_H
#define FS_HISTORY_H

int cmd_history(int argc, char **argv);

#endif
