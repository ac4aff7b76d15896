#!/bin/bash
# History's packing pass under SIGKILL: six closed hours of 300 trucks
# (108,000 readings, one a minute) are stored one row per reading, then
# history packs them hour by hour (one REPEATABLE READ transaction each) and
# is killed with SIGKILL three times while a pass is running.  After every
# kill, and at the end, the view telemetry yields each reading exactly once,
# counted by (truck_id, ts, seq), and the packed rows hold each once too.
# Each kill lands after the process has joined the consumer group; history
# runs with static membership (group.instance.id), so the next start takes the
# partitions over at once instead of waiting for the broker to expire the dead
# member's session (45 s each, one after another: the late readings below once
# waited longer than the suite).  The readings are in one partition per UTC
# hour; once packed, each is truncated and dropped, and a late reading, a
# backfill and a repeat into two dropped hours are stored once (their
# partitions made again), packed, and the partitions dropped again.  Last, with --pack-piece 100, a truck-hour of
# 250 readings is packed in three rows and an hour of 1,750 readings in more
# than one pass, then repacked with a late reading.  Last, a partition
# dropped under history (as by another instance) is made again for a reading.
# In a database of the suite's own, on topics of its own.  26-39 s on a
# machine shared at load average 5-10.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/bridge_lib.sh"

P="e2epack$$-"
G="e2e-pack-$$"
B=$FLEETSYNC_BROKERS
OWN_DB="e2epack_$$"
OWN_PG="host=127.0.0.1 port=$TEST_PG_PORT dbname=$OWN_DB user=fleetsync"
ADMIN_PG="host=127.0.0.1 port=$TEST_PG_PORT dbname=postgres user=fleetsync_admin passfile=$FLEETSYNC_DATA_DIR/pgpass-admin"
W=$(mktemp -d /tmp/fleetsync-e2e-pack.XXXXXX)
hist_pid=
cleanup() {
    [ -n "$hist_pid" ] && kill -9 "$hist_pid" 2>/dev/null && wait "$hist_pid" 2>/dev/null
    psql "$ADMIN_PG" -qX -c "DROP DATABASE IF EXISTS $OWN_DB" >/dev/null 2>&1
    rm -rf "$W"
}
trap cleanup EXIT

q() { psql "$OWN_PG" -Atqc "$1" 2>/dev/null; }
rows() { q "SELECT count(*) FROM telemetry" || echo 0; }
recent() { echo $(( $(q "SELECT -count(*) FROM telemetry_recent" || echo -1) )); }
# "readings distinct packed-readings" as one line.
counts() {
    q "SELECT count(*), count(DISTINCT (truck_id, ts, seq)), (SELECT coalesce(sum(n), 0) FROM telemetry_packed)
         + (SELECT count(*) FROM telemetry_recent) FROM telemetry" | tr '|' ' '
}
packing() { q "SELECT count(*) FROM pg_stat_activity WHERE datname = '$OWN_DB' AND query LIKE '%pack_cur%'"; }
start_history() {
    "$FS" history --pg "$OWN_PG" --topic-prefix "$P" --group "$G" --retention 0 --metrics-port -1 \
        -X group.instance.id="history-$$" "$@" \
        >>"$W/history.log" 2>&1 &
    hist_pid=$!
}

psql "$ADMIN_PG" -qX -c "CREATE DATABASE $OWN_DB OWNER fleetsync" >/dev/null 2>&1
check "the suite's own database is created" q "SELECT 1"
"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
check "topics with the suite's prefix exist" topics_ready

# 2026-11-02 00:00-06:00, one reading a minute per truck.
awk 'BEGIN {
    t0 = 1793577600000
    for (k = 1; k <= 300; k++)
        for (i = 0; i < 360; i++)
            printf "P%d\t{\"v\":1,\"truck_id\":\"P%d\",\"ts\":%.0f,\"seq\":%d,\"lat\":%d.%06d,\"lon\":11.%06d,\"speed_kmh\":%d.5,\"ignition\":true,\"fuel_pct\":%d.%d,\"odometer_km\":%d.%d}\n",
                k, k, t0 + 60000 * i + k * 7, i, 45 + k % 5, (i * 1731) % 1000000, (i * 977) % 1000000, 40 + i % 50,
                90 - int(i / 10), i % 10, 1000 + i, k % 10
}' >"$W/readings"
N=$(wc -l <"$W/readings")
kcat -b "$B" -P -t "${P}truck-telemetry" -K '\t' -l "$W/readings"
start_history --pack-grace -1
check_eq "history stores the $N readings, nothing packed yet (--pack-grace -1)" "$N" "$(wait_until "$N" 120 rows)"
check_eq "all in telemetry_recent" "-$N" "$(recent)"
# Partitions of the day's hours (of 2026-11-02 as UTC hours), and only these.
day_parts() {
    q "SELECT string_agg(c.relname, ' ' ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = 'telemetry_recent'::regclass
         AND (c.relname LIKE 'telemetry_recent_20261102%' OR c.relname = 'telemetry_p20261102')"
}
check_eq "they are in one partition per UTC hour" "$(printf 'telemetry_recent_20261102_%02d ' 0 1 2 3 4 5 | sed 's/ $//')" \
    "$(day_parts)"
kill -TERM "$hist_pid"; wait "$hist_pid" 2>/dev/null; hist_pid=

kills=0 mid=0
for i in 1 2 3; do
    start_history
    # This process's pass after it subscribed (its first runs before).
    for _ in $(seq 200); do [ "$(grep -c 'consumer group' "$W/history.log")" -gt "$i" ] && break; sleep 0.05; done
    for _ in $(seq 200); do [ "$(packing)" -gt 0 ] && { mid=$((mid + 1)); break; }; sleep 0.05; done
    sleep "$(printf '0.%02d' $((RANDOM % 20)))"
    kill -9 "$hist_pid" 2>/dev/null && kills=$((kills + 1))
    wait "$hist_pid" 2>/dev/null; hist_pid=
    c=$(counts)
    [ "$c" = "$N $N $N" ] || { echo "# after kill $i: readings, distinct, packed+recent = $c"; break; }
done
check_eq "three SIGKILLs landed" 3 "$kills"
check "all three while a packing pass was running ($mid)" test "$mid" -ge 3
check_eq "after every kill each reading is there once" "$N $N $N" "$c"
before=$(grep -c 'assigned' "$W/history.log")
start_history --metrics-port $((TEST_METRICS_BASE + 50))
assigned() { grep -c 'assigned' "$W/history.log"; }
check_eq "the restart after the SIGKILLs is assigned the partitions at once (static membership)" $((before + 1)) \
    "$(wait_until $((before + 1)) 30 assigned)"
check_eq "history packs every closed hour in the end" 0 "$(wait_until 0 120 recent)"
check_eq "one packed row per truck-hour" 1800 "$(q "SELECT count(*) FROM telemetry_packed")"
check_eq "each reading once, counted by (truck_id, ts, seq)" "$N $N $N" "$(counts)"

# The day is past and every hour of it packed: each hour's partition of
# telemetry_recent is truncated (heap, primary key and TOAST give their pages
# back: autovacuum alone may cut an all-dead heap, never the index), then
# dropped: no partition is left for the day, not even a 16 kB one.
# gone_parts prints minus the day's partitions (for wait_until).
gone_parts() {
    echo $(( -$(q "SELECT count(*) FROM pg_class WHERE relname LIKE 'telemetry_recent_20261102%' OR
                   relname = 'telemetry_p20261102'" || echo 1) ))
}
metric_of() {   # the sum over its labels
    curl -s "http://127.0.0.1:$((TEST_METRICS_BASE + 50))/metrics" |
        awk -v n="$1" '$1 == n || index($1, n "{") == 1 { v += $2 } END { print v + 0 }'
}
reclaimed() { metric_of fleetsync_history_partitions_reclaimed_total; }
dropped() { metric_of fleetsync_history_partitions_dropped_total; }
check_eq "the six emptied hour partitions are reclaimed and dropped" 0 "$(wait_until 0 60 gone_parts)"
# Truncated first unless autovacuum already cut the all-dead heap to 0 pages.
echo "# $(reclaimed) of the six truncated (fleetsync_history_partitions_reclaimed_total) before the drop"
check_eq "dropped: six in fleetsync_history_partitions_dropped_total" 6 "$(dropped)"

# Afterwards a late reading of an existing truck and a new truck's backfill
# into two of the dropped hours, and a repeat of a packed reading: their
# partitions are created again, the readings stored, packed into their hours,
# the partitions dropped again, every reading once, nothing dead-lettered.
t_late=$((1793577600000 + 3 * 3600000 + 30000))
printf 'P1\t{"v":1,"truck_id":"P1","ts":%d,"seq":5000,"lat":45.5,"lon":11.5,"speed_kmh":50.5,"ignition":true,"fuel_pct":70.5,"odometer_km":1200.5}\n' "$t_late" >"$W/late"
printf 'PL\t{"v":1,"truck_id":"PL","ts":%d,"seq":1,"lat":46.5,"lon":12.5,"speed_kmh":0,"ignition":false,"fuel_pct":50,"odometer_km":10}\n' "$((t_late + 3600000))" >>"$W/late"
sed -n 11p "$W/readings" >>"$W/late"
kcat -b "$B" -P -t "${P}truck-telemetry" -K '\t' -l "$W/late"
N2=$((N + 2))
got=$(wait_until "$N2" 120 rows)
check_eq "the two new readings are stored, the repeat is not" "$N2" "$got"
[ "$got" = "$N2" ] || tail -20 "$W/history.log" | sed 's/^/# /'
check_eq "history packs them into their hours" 0 "$(wait_until 0 120 recent)"
check_eq "each reading once, counted by (truck_id, ts, seq)" "$N2 $N2 $N2" "$(counts)"
check_eq "the late reading is visible once in the view" 1 \
    "$(q "SELECT count(*) FROM telemetry WHERE truck_id = 'P1' AND seq = 5000 AND ts = to_timestamp($t_late / 1000.0)")"
check_eq "P1's hour holds 61 readings in one packed row" "1 61" \
    "$(q "SELECT count(*), sum(n) FROM telemetry_packed WHERE truck_id = 'P1' AND hour = '2026-11-02 03:00+00'" | tr '|' ' ')"
check "their two hours' partitions were created again" grep -q 'created partition telemetry_recent_20261102_04' \
    "$W/history.log"
check_eq "and dropped again once packed" 0 "$(wait_until 0 240 gone_parts)"
# The repeat's hour (00) is made too, by its batch, and dropped empty.
check_eq "counted: nine dropped" 9 "$(wait_until 9 30 dropped)"
check_eq "nothing dead-lettered" 0 "$(metric_of fleetsync_sink_dead_letters_total)"

# A truck-hour of very many readings is packed in pieces of at most
# --pack-piece readings (100 here), and a pass ends at the first truck after
# ten pieces' worth, in a transaction of its own: truck PB's 250 readings of
# 2026-11-03 00:00 become rows of 100, 100 and 50 readings in (ts, seq) order,
# ten trucks of 150 readings take more than one pass, then a late reading
# into PB's hour is packed with it again (100, 100, 51).
kill -TERM "$hist_pid"; wait "$hist_pid" 2>/dev/null; hist_pid=
start_history --pack-piece 100 --log-level debug
awk 'BEGIN {
    t0 = 1793664000000
    for (i = 0; i < 250; i++)
        printf "PB\t{\"v\":1,\"truck_id\":\"PB\",\"ts\":%.0f,\"seq\":%d,\"lat\":47.%04d,\"lon\":9.5,\"speed_kmh\":30,\"ignition\":true}\n", t0 + 14400 * i, i, i
    for (k = 0; k < 10; k++)
        for (i = 0; i < 150; i++)
            printf "Q%d\t{\"v\":1,\"truck_id\":\"Q%d\",\"ts\":%.0f,\"seq\":%d,\"lat\":46.%04d,\"lon\":8.5,\"speed_kmh\":20,\"ignition\":true}\n", k, k, t0 + 24000 * i + k, i, i
}' >"$W/big"
kcat -b "$B" -P -t "${P}truck-telemetry" -K '\t' -l "$W/big"
N3=$((N2 + 1750))
check_eq "the 1,750 readings of the next day are stored" "$N3" "$(wait_until "$N3" 120 rows)"
check_eq "and packed" 0 "$(wait_until 0 120 recent)"
pieces() { q "SELECT string_agg(n::text, ' ' ORDER BY piece) FROM telemetry_packed WHERE truck_id = 'PB'"; }
check_eq "PB's hour is three pieces of 100, 100 and 50 readings" "100 100 50" "$(pieces)"
# A piece's seq section (src/core/pack.h): its first seq, then differences.
check_eq "in (ts, seq) order: piece k holds seq 100k to 100k + n - 1" "0 99 100 199 200 249" \
    "$(q "SELECT string_agg(d[n + 1] || ' ' || (SELECT sum(x) FROM unnest(d[n + 1:2 * n]) x), ' ' ORDER BY piece)
          FROM telemetry_packed WHERE truck_id = 'PB'")"
check "the hour took more than one pass (a part of it first)" grep -q 'more trucks in the next pass' "$W/history.log"
check_eq "no packed row holds more than 100 readings" 100 "$(q "SELECT max(n) FROM telemetry_packed WHERE hour >= '2026-11-03'")"
printf 'PB\t{"v":1,"truck_id":"PB","ts":%d,"seq":1000,"lat":47.5,"lon":9.5,"speed_kmh":30,"ignition":true}\n' \
    $((1793664000000 + 14400 * 120 + 1)) | kcat -b "$B" -P -t "${P}truck-telemetry" -K '\t'
N4=$((N3 + 1))
check_eq "a late reading into PB's hour is stored" "$N4" "$(wait_until "$N4" 120 rows)"
check_eq "and PB's hour repacked in pieces: 100, 100, 51" "100 100 51" "$(wait_until 0 120 recent >/dev/null; pieces)"
check_eq "each reading once, counted by (truck_id, ts, seq)" "$N4 $N4 $N4" "$(counts)"

# A partition this process knows of is dropped under it (as another instance
# drops an emptied hour): the next hour's, made ahead, empty.  A reading
# into it then fails its batch as a partition gone, not as refused data:
# the batch is retried after reading the partitions again, the partition
# is made again, and the reading stored once.
next_h=$(( ($(date +%s) / 3600 + 1) * 3600 ))
q "DROP TABLE telemetry_recent_$(date -u -d "@$next_h" +%Y%m%d_%H)" >/dev/null
printf 'PF\t{"v":1,"truck_id":"PF","ts":%d,"seq":1,"lat":45.5,"lon":11.5,"speed_kmh":0,"ignition":false}\n' \
    $(( next_h * 1000 + 60000 )) | kcat -b "$B" -P -t "${P}truck-telemetry" -K '\t'
pf() { q "SELECT count(*) FROM telemetry WHERE truck_id = 'PF'" || echo 0; }
check_eq "a reading into a partition dropped under history is stored once" 1 "$(wait_until 1 40 pf)"
check "its batch was retried after reading the partitions again" grep -q 'a partition of telemetry_recent is gone' \
    "$W/history.log"
check "the partition was made again" test "$(q "SELECT count(*) FROM pg_class WHERE relname =
    'telemetry_recent_$(date -u -d "@$next_h" +%Y%m%d_%H)'")" = 1
check_eq "nothing dead-lettered" 0 "$(grep -c 'dead-lettered' "$W/history.log")"
done_testing
