/*
 * detect.h - `fleetsync detect`, the detector service (docs/design.md "Alerts",
 * docs/detect.md): consumer group fleetsync-detector on truck-telemetry,
 * rules in event time (detect/engine.h), alerts to truck-alerts.
 */
#ifndef FS_DETECT_H
#define FS_DETECT_H

int cmd_detect(int argc, char **argv);

#endif
