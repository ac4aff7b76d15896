/*
 * dashboard.h - "fleetsync dashboard": the live map (docs/dashboard.md).
 */
#ifndef FS_DASHBOARD_H
#define FS_DASHBOARD_H

/* The subcommand; argv[0] is "dashboard".  Exit codes: 0 stopped by
 * SIGINT/SIGTERM, 1 runtime failure, 2 usage error (also a non-loopback
 * --listen without --auth-file, or without TLS or --insecure-http, and a
 * TLS certificate or key that cannot be loaded). */
int cmd_dashboard(int argc, char **argv);

#endif
