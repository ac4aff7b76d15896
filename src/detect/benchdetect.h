/*
 * benchdetect.h - "fleetsync bench detect": precision and recall of the
 * detector per rule, measured through the live pipeline (simulator ->
 * MQTT -> bridge -> Kafka -> fleetsync detect -> truck-alerts) against the
 * simulator's ground truth.  See docs/detect.md "Accuracy".
 */
#ifndef FS_OPS_BENCHDETECT_H
#define FS_OPS_BENCHDETECT_H

/* "fleetsync bench <what> ..."; argv[0] is "bench". */
int cmd_bench(int argc, char **argv);

#endif
