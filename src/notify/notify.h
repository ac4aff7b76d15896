/*
 * notify.h - `fleetsync notify`, the service: consumer group fleetsync-notify
 * reads truck-alerts and delivers each alert to webhooks over HTTP
 * (docs/notify.md).
 */
#ifndef FS_NOTIFY_H
#define FS_NOTIFY_H

/* Where `fleetsync notify` and `fleetsync up` look for the routes file
 * when --routes is not given: DATA_DIR/notify.json. */
#define NOTIFY_ROUTES_FILE "notify.json"

/* fleetsync notify [options]; argv[0] is "notify".  Exit code 0, 1, 2. */
int cmd_notify(int argc, char **argv);

#endif
