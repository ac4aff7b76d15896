#!/bin/bash
# fleetsync status against the real Mosquitto, Kafka and PostgreSQL: healthy
# services exit 0 with the JSON shape of docs/design.md; a stopped kcat group shows its
# committed offsets, end offsets and lag; a group with sink_offsets rows shows
# those positions and its last commit; the rate follows moving positions; a
# service that does not answer (or Kafka) exits 1 and still prints what is
# known; --watch refreshes; usage errors exit 2.
. "$(dirname "$0")/lib.sh"

P="e2estatus$$-"                      # topic prefix: this suite's own topics
T1="${P}truck-telemetry"
G="fleetsync-e2estatus$$"             # a FleetSync-named group: listed by default
O="e2estatus$$-other"                 # any other group: listed with --group only
S="e2estatus$$-sink"                  # a group whose positions are in sink_offsets
B=$FLEETSYNC_BROKERS
W=$(mktemp -d /tmp/fleetsync-e2e-status.XXXXXX)
member_pid=
cleanup() { [ -n "$member_pid" ] && kill "$member_pid" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

sql() { psql "$FLEETSYNC_PG" -XAtqc "$1" 2>&1; }
produce() { seq 1 "$3" | sed "s/^/$2/" | kcat -P -b "$B" -t "$T1" -p "$1"; }
# consume GROUP: kcat as a group member reads to the end, commits and leaves.
consume() { timeout 30 kcat -b "$B" -G "$1" -X auto.offset.reset=earliest -e -q -f '%s\n' "$T1" 2>/dev/null | wc -l; }
status() { "$FS" status --topic-prefix "$P" "$@"; }
# part JSON GROUP PARTITION: that partition of the group as "committed end lag".
part() { jq -r --arg g "$2" --argjson p "$3" --arg t "$T1" \
    '.groups[] | select(.group == $g) | .partitions[] | select(.topic == $t and .partition == $p)
     | "\(.committed) \(.end) \(.lag)"' <<<"$1"; }
group() { jq -c --arg g "$2" '.groups[] | select(.group == $g) | {members, lag, store}' <<<"$1"; }

"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
check "topics with the suite's prefix exist" topics_ready

# --- usage ------------------------------------------------------------------
help=$("$FS" status --help); check_eq "--help exits 0" 0 $?
check_contains "--help teaches with examples" "fleetsync status --json | jq" "$help"
usage_rc() { "$FS" status "$@" >/dev/null 2>&1; echo $?; }
check_eq "an unknown option is a usage error" 2 "$(usage_rc --bogus)"
check_eq "an extra argument is a usage error" 2 "$(usage_rc extra)"
check_eq "--watch 0 is a usage error" 2 "$(usage_rc --watch 0)"
check_eq "--watch=x is a usage error" 2 "$(usage_rc --watch=x)"

# --- healthy services and the JSON shape -------------------------------------
out=$(status --json); rc=$?
check_eq "all services healthy: exit 0" 0 "$rc"
check "the output is one JSON document" jq -e . <<<"$out"
check_eq "services in the documented shape, all healthy" \
    "mosquitto:$TEST_MQTT_PORT:true kafka:$TEST_KAFKA_PORT:true postgres:$TEST_PG_PORT:true" \
    "$(jq -r '[.services[] | select(has("name") and has("pid") and has("port") and has("healthy") and (.pid > 0))
              | "\(.name):\(.port):\(.healthy)"] | join(" ")' <<<"$out")"
check_eq "groups is an array" array "$(jq -r '.groups | type' <<<"$out")"

# --- a Kafka group: 10 + 4 records, read by kcat, then 3 more in partition 0 --
produce 0 a 10 && produce 1 b 4
check_eq "the kcat group reads the 14 records" 14 "$(consume "$G")"
check_eq "the other group reads them too" 14 "$(consume "$O")"
produce 0 c 3
out=$(status --json)
check_eq "partition 0: committed 10, end 13, lag 3" "10 13 3" "$(part "$out" "$G" 0)"
check_eq "partition 1: committed 4, end 4, lag 0" "4 4 0" "$(part "$out" "$G" 1)"
check_eq "the stopped group: no members, total lag 3, offsets in Kafka" \
    '{"members":0,"lag":3,"store":"kafka"}' "$(group "$out" "$G")"
check_eq "every group has the documented keys" true \
    "$(jq '[.groups[] | has("group") and has("members") and has("lag") and has("partitions")
            and (.partitions | all(has("topic") and has("partition") and has("committed") and has("end") and has("lag")))]
           | all' <<<"$out")"
check_eq "a group not named fleetsync-... is not listed by default" "" "$(group "$out" "$O")"
out=$(status --json --group "$O")
check_eq "--group adds it" '{"members":0,"lag":3,"store":"kafka"}' "$(group "$out" "$O")"
out=$("$FS" status --json --topic-prefix "other$$-")
check_eq "a group with no topic of the prefix is left out" "" "$(group "$out" "$G")"

table=$(status); check_eq "the table view exits 0" 0 $?
check_contains "the table lists the group" "$G" "$table"
check_contains "the table has a partition line" "$(printf '    %-*s %5d %12s %12s %10s' ${#T1} "$T1" 0 10 13 3)" "$table"

# --- a group whose positions live in sink_offsets ----------------------------
# A replay of the billing sink creates the schema (pg_migrate) on the way.
"$FS" replay --topic-prefix "$P" --group fleetsync-billing --since 1h >"$W/replay.out" 2>&1
check_eq "sink_offsets exists" t "$(sql "SELECT to_regclass('sink_offsets') IS NOT NULL")"
sql "INSERT INTO sink_offsets (group_id, topic, partition, next_offset, updated_at) VALUES
     ('$S', '$T1', 0, 5, '2026-11-27 01:02:03+00'), ('$S', '$T1', 1, 4, '2026-11-27 01:00:00+00')" >/dev/null
out=$(status --json)
check_eq "sink partition 0: stored next_offset 5, end 13, lag 8" "5 13 8" "$(part "$out" "$S" 0)"
check_eq "sink partition 1: 4, end 4, lag 0" "4 4 0" "$(part "$out" "$S" 1)"
check_eq "the sink group: lag 8, offsets in PostgreSQL" '{"members":0,"lag":8,"store":"postgresql"}' \
    "$(group "$out" "$S")"
check_eq "its last commit is the newest updated_at" "2026-11-27T01:02:03.000Z" \
    "$(jq -r --arg g "$S" '.groups[] | select(.group == $g) | .last_commit' <<<"$out")"

# --- the rate: positions that move while status samples ----------------------
(status --json >"$W/rate.json" 2>&1 &) ; sleep 0.6
sql "UPDATE sink_offsets SET next_offset = 13, updated_at = now() WHERE group_id = '$S' AND partition = 0" >/dev/null
for _ in $(seq 50); do [ -s "$W/rate.json" ] && break; sleep 0.2; done
sleep 0.3
rate=$(jq -r --arg g "$S" '.groups[] | select(.group == $g) | .rate' "$W/rate.json")
check "8 messages consumed in about 1 s give a rate of 4-8.5/s (got $rate)" \
    awk -v r="$rate" 'BEGIN { exit !(r >= 4 && r <= 8.5) }'
check_eq "a group that did not move has rate 0" 0 \
    "$(jq -r --arg g "$G" '.groups[] | select(.group == $g) | .rate' "$W/rate.json")"

# --- a running member ---------------------------------------------------------
timeout 60 kcat -b "$B" -G "$G" -q -f '%s\n' "$T1" >/dev/null 2>&1 & member_pid=$!
members=
for _ in $(seq 60); do
    members=$(status --json | jq -r --arg g "$G" '.groups[] | select(.group == $g) | .members')
    [ "$members" = 1 ] && break
    sleep 0.5
done
check_eq "a running kcat consumer is counted as a member" 1 "$members"
check_contains "the table names the member (client@host)" "    members: rdkafka@" "$(status)"
kill "$member_pid" 2>/dev/null; wait "$member_pid" 2>/dev/null; member_pid=

# --- --watch ------------------------------------------------------------------
timeout -s INT 6 "$FS" status --topic-prefix "$P" --watch 1 --json >"$W/watch.out" 2>"$W/watch.err"
n=$(grep -c '"services"' "$W/watch.out")
check "--watch 1 refreshes until Ctrl-C ($n refreshes in 6 s)" test "$n" -ge 2
check_eq "--watch into a pipe does not clear the screen" 0 "$(grep -c $'\033' "$W/watch.out")"

# --- services down --------------------------------------------------------------
closed=$((TEST_MQTT_PORT + 17))
while (exec 3<>"/dev/tcp/127.0.0.1/$closed") 2>/dev/null; do closed=$((closed + 1)); done
mkdir -p "$W/empty"
out=$("$FS" status --json --data-dir "$W/empty" --mqtt "mqtt://localhost:$TEST_MQTT_PORT"); rc=$?
check_eq "a stack this data dir did not start (external endpoints): exit 0" 0 "$rc"
check_eq "external services: pid 0, probed where the options point" \
    "mosquitto:0:true kafka:0:true postgres:0:true" \
    "$(jq -r '[.services[] | "\(.name):\(.pid):\(.healthy)"] | join(" ")' <<<"$out")"
out=$("$FS" status --json --data-dir "$W/empty" --mqtt "mqtt://127.0.0.1:$closed" 2>"$W/down.err"); rc=$?
check_eq "MQTT not answering: exit 1" 1 "$rc"
check_eq "mosquitto is down, the external Kafka and PostgreSQL are healthy (pid 0)" \
    "mosquitto:0:false kafka:0:true postgres:0:true" \
    "$(jq -r '[.services[] | "\(.name):\(.pid):\(.healthy)"] | join(" ")' <<<"$out")"
out=$("$FS" status --json --timeout 2 --data-dir "$W/empty" --brokers "127.0.0.1:$closed" 2>"$W/down.err"); rc=$?
check_eq "Kafka not answering: exit 1" 1 "$rc"
check_contains "it says Kafka is unreachable" "Kafka is unreachable" "$(cat "$W/down.err")"
check_eq "and still prints the services" "kafka:false" \
    "$(jq -r '.services[] | select(.name == "kafka") | "\(.name):\(.healthy)"' <<<"$out")"

sql "DELETE FROM sink_offsets WHERE group_id = '$S'" >/dev/null
done_testing
