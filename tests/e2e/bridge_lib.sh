# tests/e2e/bridge_lib.sh - helpers for the bridge suites (sourced after lib.sh).
# Needs P (topic prefix), W (work dir), B (brokers).

MQTT_PORT=${TEST_MQTT_PORT:-28830}

# lines TRUCK FROM COUNT: telemetry lines with seq FROM.. and ts = now + seq.
lines() {
    awk -v id="$1" -v from="$2" -v n="$3" -v now="$(date +%s%3N)" 'BEGIN {
        for (i = from; i < from + n; i++)
            printf "{\"v\":1,\"truck_id\":\"%s\",\"ts\":%.0f,\"seq\":%d,\"lat\":48.1%04d,\"lon\":11.5,\"speed_kmh\":%d.5,\"ignition\":true,\"fuel_pct\":50,\"driver\":\"x\"}\n", id, now + i, i, i % 10000, i % 90
    }'
}
# pub_lines TRUCK: publishes stdin's lines to the truck's telemetry topic, QoS 1.
# Bounded: a mosquitto_pub -l that has sent everything can stay connected
# after its input ends (eclipse-mosquitto/mosquitto#1448) and would hold the
# suite; a publisher cut off early shows up as missing messages, not a hang.
pub_lines() { timeout -k 5 180 mosquitto_pub -p "$MQTT_PORT" -q 1 -t "fleet/trucks/$1/telemetry" -l; }

count_topic() { kc -b "$B" -C -t "$1" -o beginning -e -q -f '%k\n' 2>/dev/null | grep -c "$2"; }

# wait_until N TRIES COMMAND...: runs COMMAND (which prints a count) every
# 0.5 s until the count reaches N or TRIES runs are done; prints the last count.
wait_until() {
    local want=$1 tries=$2 n=0
    shift 2
    for _ in $(seq "$tries"); do
        n=$("$@")
        [ "$n" -ge "$want" ] && break
        sleep 0.5
    done
    echo "$n"
}

# wait_count TOPIC PATTERN N [TRIES]: waits until N keys match; prints the count.
wait_count() { wait_until "$3" "${4:-120}" count_topic "$1" "$2"; }

# unique_readings TOPIC KEYPATTERN: distinct (truck_id, ts, seq) in the topic.
unique_readings() {
    kc -b "$B" -C -t "$1" -o beginning -e -q -f '%k %s\n' 2>/dev/null | grep "$2" |
        sed 's/^\([^ ]*\) .*"ts":\([0-9]*\),"seq":\([0-9]*\).*/\1 \2 \3/' | sort -u | wc -l
}

# wait_unique TOPIC KEYPATTERN N [TRIES]: waits for N distinct readings; prints the count.
wait_unique() { wait_until "$3" "${4:-120}" unique_readings "$1" "$2"; }


# start_bridge NAME [args...]: runs a bridge logging to $W/NAME.log, waits until
# it has subscribed (once more than NAME.log said before); sets bridge_pid.
start_bridge() {
    local name=$1; shift
    start_logged bridge_pid "$W/$name.log" subscribed 100 "$FS" bridge --topic-prefix "$P" --data-dir "$W" --quiet "$@"
}
