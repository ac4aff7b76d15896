#!/bin/bash
# The short form of the system fault suite (tests/chaos/chaos_system.sh,
# docs/chaos.md) for make test: loss and duplicate checks only, no timing
# thresholds.  On private services (ports of the test block + 70, its own data
# dir) so that restarting Kafka, Mosquitto and PostgreSQL never touches the
# shared stack the other suites use: 100 trucks with a scenario; the
# simulator, bridge, history, billing, detect and dashboard each SIGKILLed once
# and restarted; Kafka killed -9 and restarted; Mosquitto restarted;
# PostgreSQL stopped 15 s; history SIGSTOPped 15 s.  Every reading the
# simulator generated is in Kafka and in PostgreSQL exactly once, the alerts
# equal a reference detector's, billing equals a reference run.  About 3 min.
CHAOS_SHORT=1 CHAOS_OWN_STACK=1 CHAOS_PORT_OFFSET=70 exec bash "$(dirname "$0")/../chaos/chaos_system.sh"
