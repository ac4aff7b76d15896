# tests/chaos/lib.sh - what the fault suites share (sourced; it sources
# tests/e2e/lib.sh for the TAP checks).
#
#   log MESSAGE...                  a "# HH:MM:SS MESSAGE" line (UTC)
#   service_pid NAME                the pid a `services start` process of the
#                                   data dir runs as (run/NAME.pid)
#   wait_gone PID [SECONDS]         until PID has exited (0.1 s polls), at most
#                                   SECONDS when given
#   own_binary                      a copy of fleetsync in $W for the run
#   private_services OFFSET DIR     the FLEETSYNC_* variables of services of
#                                   the suite's own, OFFSET above the test
#                                   port block, with DIR as their data dir
# (keep_logs, for the logs of a failed run, metric PORT NAME and
# start_logged, for a process that says in its log that it is ready, are in
# tests/e2e/lib.sh.)
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"

log() { echo "# $(date -u +%H:%M:%S) $*"; }
service_pid() { cat "$FLEETSYNC_DATA_DIR/run/$1.pid"; }

wait_gone() {
    local pid=$1 n=0
    while kill -0 "$pid" 2>/dev/null; do
        n=$((n + 1))
        [ -n "${2:-}" ] && [ "$n" -gt $(($2 * 10)) ] && return 1
        sleep 0.1
    done
}

# own_binary: the run uses a copy of fleetsync in the work dir $W, so that a
# rebuild of build/fleetsync during the run (another make in the same tree)
# cannot make a restart fail.
own_binary() {
    cp "$FS" "$W/fleetsync" && FS=$W/fleetsync && export FLEETSYNC_BIN=$FS
}

# private_services OFFSET DIR: every fleetsync command the suite runs from now
# on (services start and stop included) talks to services of its own: MQTT,
# Kafka and PostgreSQL on the test block's ports + OFFSET, DIR (created,
# world-readable for the services' users) as their data dir, no topic prefix.
private_services() {
    local off=$1
    export FLEETSYNC_MQTT=mqtt://127.0.0.1:$((TEST_MQTT_PORT + off))
    export FLEETSYNC_BROKERS=127.0.0.1:$((TEST_KAFKA_PORT + off))
    export FLEETSYNC_PG="host=127.0.0.1 port=$((TEST_PG_PORT + off)) dbname=fleetsync user=fleetsync"
    export FLEETSYNC_DATA_DIR=$2 PGPASSFILE=$2/pgpass FLEETSYNC_TOPIC_PREFIX=
    mkdir -p "$2" && chmod 755 "$2"
}
