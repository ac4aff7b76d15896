#!/bin/bash
# fleetsync replay against the real Kafka and PostgreSQL: a stopped Kafka group
# is rewound to a moment (its next consumption is what came after it), a group
# with members is refused, the PostgreSQL sinks' sink_offsets rows move in one
# transaction (created where missing), a sink still connected to PostgreSQL is
# refused, billing rewinds to the start of the UTC day, --dry-run changes
# nothing, usage errors exit 2.
. "$(dirname "$0")/lib.sh"

P="e2ereplay$$-"                      # topic prefix: this suite's own topics
T1="${P}truck-telemetry"
G="e2ereplay$$-consumer"              # a group whose offsets are in Kafka
S="e2ereplay$$-sink"                  # a group whose offsets are in sink_offsets
B=$FLEETSYNC_BROKERS
W=$(mktemp -d /tmp/fleetsync-e2e-replay.XXXXXX)
member_pid=
cleanup() { [ -n "$member_pid" ] && kill "$member_pid" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

sql() { psql "$FLEETSYNC_PG" -XAtqc "$1" 2>&1; }
# iso MS: ms since the epoch as ISO 8601 UTC with milliseconds.
iso() { printf '%s.%03dZ' "$(date -u -d "@$(($1 / 1000))" +%Y-%m-%dT%H:%M:%S)" $(($1 % 1000)); }
# produce PARTITION WORD N: N records WORD1..WORDN into truck-telemetry.
produce() { seq 1 "$3" | sed "s/^/$2/" | kcat -P -b "$B" -t "$T1" -p "$1"; }
# consume GROUP: what the group reads next (kcat as a group member, to the
# end, committing on exit), one value per line, sorted.
consume() { timeout 30 kcat -b "$B" -G "$1" -X auto.offset.reset=earliest -e -q -f '%s\n' "$T1" 2>/dev/null | sort; }
# offsets GROUP: the group's sink_offsets rows of $T1 as "partition:offset ...".
offsets() { sql "SELECT string_agg(partition || ':' || next_offset, ' ' ORDER BY partition)
                 FROM sink_offsets WHERE group_id = '$1' AND topic = '$T1'"; }
replay() { "$FS" replay --topic-prefix "$P" "$@"; }

"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
check "topics with the suite's prefix exist" topics_ready

# --- usage ------------------------------------------------------------------
help=$("$FS" replay --help); check_eq "--help exits 0" 0 $?
check_contains "--help teaches with examples" "fleetsync replay --group fleetsync-detector --since 2h --dry-run" "$help"
usage_rc() { "$FS" replay "$@" >/dev/null 2>&1; echo $?; }
check_eq "no --group is a usage error" 2 "$(usage_rc --since 2h)"
check_eq "neither --since nor --at is a usage error" 2 "$(usage_rc --group "$G")"
check_eq "both --since and --at is a usage error" 2 "$(usage_rc --group "$G" --since 2h --at 2026-01-01T00:00:00Z)"
check_eq "a bad duration is a usage error" 2 "$(usage_rc --group "$G" --since 2x)"
check_contains "a bad duration says what is accepted" "90s, 30m, 2h or 7d" "$("$FS" replay --group "$G" --since 2x 2>&1)"
check_eq "--at without a zone is a usage error" 2 "$(usage_rc --group "$G" --at 2026-01-01T00:00:00)"
check_contains "--at without a zone says so" "no time zone" "$("$FS" replay --group "$G" --at 2026-01-01T00:00:00 2>&1)"
check_eq "--at in the future is a usage error" 2 "$(usage_rc --group "$G" --at 2099-01-01T00:00:00Z)"

# --- records: 10 old ones in partitions 0 and 1, the moment T, 5 new ones in 0.
produce 0 old 10 && produce 1 old 10
sleep 1.5; T=$(date +%s%3N); AT=$(iso "$T"); sleep 1.5
produce 0 new 5
check_eq "25 records written around $AT" 25 "$(kcat -b "$B" -C -t "$T1" -o beginning -e -q -f '%s\n' 2>/dev/null | wc -l)"

# --- a group whose offsets live in Kafka ------------------------------------
check_eq "the Kafka group reads everything once" 25 "$(consume "$G" | wc -l)"
out=$(replay --group "$G" --at "$AT" --dry-run --json); check_eq "dry run exits 0" 0 $?
check_contains "plan: partition 0 goes back to the first record after T" \
    "{\"topic\":\"$T1\",\"partition\":0,\"old\":15,\"new\":10,\"reprocess\":5," "$out"
check_contains "plan: partition 1 has nothing after T and stays at its end" \
    "{\"topic\":\"$T1\",\"partition\":1,\"old\":10,\"new\":10,\"reprocess\":0," "$out"
check_contains "plan: an uncommitted partition gets the end offset" \
    "{\"topic\":\"$T1\",\"partition\":2,\"old\":null,\"new\":0,\"reprocess\":0," "$out"
check_contains "plan: the total" '"total_reprocess":5}' "$out"
out=$(replay --group "$G" --at "$AT" --dry-run --json)
check_contains "the dry run changed nothing" "\"partition\":0,\"old\":15,\"new\":10," "$out"
check_eq "after the dry run the group has nothing to read" "" "$(consume "$G")"

out=$(replay --group "$G" --at "$AT"); check_eq "replay --at exits 0" 0 $?
check_contains "replay prints the total" "total: 6 partitions, 5 moved, 5 messages to reprocess" "$out"
check_contains "replay prints old and new per partition" "$(printf '%-32s %9s %12s %12s %12s' "$T1" 0 15 10 5)" "$out"
check_eq "the group next reads exactly what came after T" "new1 new2 new3 new4 new5" "$(consume "$G" | tr '\n' ' ' | sed 's/ $//')"

out=$(replay --group "$G" --since 1h); check_eq "replay --since 1h exits 0" 0 $?
check_contains "--since 1h rewinds to the first record" "25 messages to reprocess" "$out"
check_eq "the group reads all 25 records again" 25 "$(consume "$G" | wc -l)"

# --- a group with a member is refused ---------------------------------------
timeout 120 kcat -b "$B" -G "$G" -q -X client.id=e2e-replay-member "$T1" >/dev/null 2>&1 &
member_pid=$!
for _ in $(seq 60); do      # until the broker lists the member (the dry run asks)
    out=$(replay --group "$G" --since 1h --dry-run 2>&1)
    case "$out" in *e2e-replay-member@*) break ;; esac
    sleep 0.5
done
check_contains "a dry run is refused too" "refused" "$out"
refusal=$(replay --group "$G" --since 1h 2>&1); rc=$?
check_eq "a group with a member is refused with exit 1" 1 "$rc"
check_contains "the refusal names the member and its host" "1 active member: e2e-replay-member@/127.0.0.1" "$refusal"
kill "$member_pid"; wait "$member_pid" 2>/dev/null; member_pid=
rc=1
for _ in $(seq 60); do
    replay --group "$G" --since 1h --dry-run >/dev/null 2>&1 && { rc=0; break; }
    sleep 0.5
done
check_eq "once the member left, the group can be replayed" 0 "$rc"

# --- PostgreSQL sinks: fleetsync-history -------------------------------------
out=$(replay --group fleetsync-history --since 1h); check_eq "history replay on a fresh schema exits 0" 0 $?
check_contains "history's offsets are in PostgreSQL" "offsets in PostgreSQL sink_offsets" "$out"
check_eq "replay created the schema and a row per partition of history's topics" 12 \
    "$(sql "SELECT count(*) FROM sink_offsets WHERE group_id = 'fleetsync-history' AND topic LIKE '$P%'")"
check_eq "the rows start at the first record" "0:0 1:0 2:0 3:0 4:0 5:0" "$(offsets fleetsync-history)"
# As if the sink had stored everything up to the end.
sql "UPDATE sink_offsets SET next_offset = CASE partition WHEN 0 THEN 15 WHEN 1 THEN 10 ELSE 0 END
     WHERE group_id = 'fleetsync-history' AND topic = '$T1'" >/dev/null
out=$(replay --group fleetsync-history --at "$AT" --dry-run --json)
check_contains "history dry run: partition 0 would go back to 10" "\"partition\":0,\"old\":15,\"new\":10,\"reprocess\":5," "$out"
check_eq "the dry run changed no row" "0:15 1:10 2:0 3:0 4:0 5:0" "$(offsets fleetsync-history)"
replay --group fleetsync-history --at "$AT" >/dev/null; check_eq "history replay --at exits 0" 0 $?
check_eq "history's stored offsets moved to the first record after T" "0:10 1:10 2:0 3:0 4:0 5:0" "$(offsets fleetsync-history)"
check_eq "truck-alerts rows are untouched (nothing to rewind)" 0 \
    "$(sql "SELECT sum(next_offset) FROM sink_offsets WHERE group_id = 'fleetsync-history' AND topic = '${P}truck-alerts'")"

# --- a group that is a sink because it has sink_offsets rows ----------------
sql "INSERT INTO sink_offsets (group_id, topic, partition, next_offset) VALUES ('$S', '$T1', 0, 15), ('$S', '$T1', 1, 10)" >/dev/null
check_eq "the sink group also has Kafka commits" 25 "$(consume "$S" | wc -l)"
out=$(replay --group "$S" --at "$AT" --json); check_eq "replay of a group with rows exits 0" 0 $?
check_contains "its offsets are in PostgreSQL" '"store":"postgresql"' "$out"
check_contains "its Kafka commits moved too" '"kafka_commits":"moved"' "$out"
check_eq "its rows moved, missing partitions were added" "0:10 1:10 2:0 3:0 4:0 5:0" "$(offsets "$S")"
check_eq "its Kafka commits agree: it next reads what came after T" "new1 new2 new3 new4 new5" \
    "$(consume "$S" | tr '\n' ' ' | sed 's/ $//')"

# A sink still connected to PostgreSQL (application_name = its group) is running.
PGAPPNAME=$S timeout 60 psql "$FLEETSYNC_PG" -Xqc "SELECT pg_sleep(50)" >/dev/null 2>&1 &
sess_pid=$!
for _ in $(seq 50); do
    [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$S'")" -ge 1 ] && break
    sleep 0.2
done
refusal=$(replay --group "$S" --since 1h 2>&1); rc=$?
check_eq "a sink with an open PostgreSQL session is refused with exit 1" 1 "$rc"
check_contains "the refusal names the session" "1 PostgreSQL session named after it (pid " "$refusal"
check_eq "the refused replay changed no row" "0:10 1:10 2:0 3:0 4:0 5:0" "$(offsets "$S")"
sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$S'" >/dev/null
kill "$sess_pid" 2>/dev/null; wait "$sess_pid" 2>/dev/null

# --- billing rewinds to the start of the UTC day -----------------------------
out=$(replay --group fleetsync-billing --since 1s --json); check_eq "billing replay exits 0" 0 $?
check_contains "billing starts at the beginning of the UTC day" "\"from\":\"$(date -u +%Y-%m-%d)T00:00:00.000Z\"" "$out"
check_eq "billing reads every record of the day again" "0:0 1:0 2:0 3:0 4:0 5:0" "$(offsets fleetsync-billing)"
check_contains "billing reprocesses today's 25 records" '"total_reprocess":25' "$out"

done_testing
