# tests/e2e/stack.sh - the shared test stack (sourced by tests/run).
#
# Real Mosquitto, Kafka and PostgreSQL started by `fleetsync services start`
# in a temporary data dir on the test port block of docs/design.md (MQTT 28830,
# Kafka 29092/29093, PostgreSQL 25432, dashboard 28080), exported through
# the FLEETSYNC_* variables so every e2e suite and every fleetsync command it
# runs talks to this stack and nothing else.

# FLEETSYNC_TEST_PORT_SHIFT moves the whole block (and the metrics ports
# suites use, TEST_METRICS_BASE) so two checkouts can run their suites at once.
S=${FLEETSYNC_TEST_PORT_SHIFT:-0}
export TEST_MQTT_PORT=$((28830 + S)) TEST_KAFKA_PORT=$((29092 + S)) TEST_PG_PORT=$((25432 + S))
export TEST_HTTP_PORT=$((28080 + S)) TEST_METRICS_BASE=$((19100 + S))
export FLEETSYNC_MQTT=mqtt://127.0.0.1:$TEST_MQTT_PORT
export FLEETSYNC_BROKERS=127.0.0.1:$TEST_KAFKA_PORT
export FLEETSYNC_PG="host=127.0.0.1 port=$TEST_PG_PORT dbname=fleetsync user=fleetsync"
export FLEETSYNC_LISTEN=127.0.0.1:$TEST_HTTP_PORT
export FLEETSYNC_BIN=${FLEETSYNC_BIN:-$(pwd)/build/fleetsync}
export FLEETSYNC_DATA_DIR=${FLEETSYNC_TEST_DATA_DIR:-$(mktemp -d /tmp/fleetsync-stack.XXXXXX)}
chmod 755 "$FLEETSYNC_DATA_DIR"
# PostgreSQL asks for a password: psql in the suites reads the pipelines'
# role's from the password file services start keeps in the data dir.
export PGPASSFILE=$FLEETSYNC_DATA_DIR/pgpass

stack_start() {
    local s=$(date +%s%N)
    if "$FLEETSYNC_BIN" services start --timeout 120 >"$FLEETSYNC_DATA_DIR/start.out" 2>&1; then
        echo "ok - services start on the test port block in $(( ($(date +%s%N) - s) / 1000000 )) ms"
    else
        echo "not ok - services start"
        sed 's/^/# /' "$FLEETSYNC_DATA_DIR/start.out"
        return 1
    fi
}

stack_stop() {
    "$FLEETSYNC_BIN" services stop
}

# Stops the stack and checks that no process of it is left behind.
stack_stop_checked() {
    if stack_stop >"$FLEETSYNC_DATA_DIR/stop.out" 2>&1; then
        echo "ok - services stop"
    else
        echo "not ok - services stop"; sed 's/^/# /' "$FLEETSYNC_DATA_DIR/stop.out"
    fi
    local left
    left=$(pgrep -af -- "$FLEETSYNC_DATA_DIR" | grep -v pgrep || true)
    if [ -z "$left" ]; then
        echo "ok - no process of the stack is left after stop"
    else
        echo "not ok - processes left after stop:"; echo "$left" | sed 's/^/# /'
    fi
    if [ -z "${FLEETSYNC_TEST_DATA_DIR:-}" ] && [ -z "$left" ]; then
        rm -rf "$FLEETSYNC_DATA_DIR"
    fi
}
