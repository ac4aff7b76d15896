#!/bin/bash
# The packed layout of readings (src/core/pack.h) against the real
# PostgreSQL: readings packed by the C encoder and read back through the SQL
# view documented in docs/history.md are exactly the readings stored as one
# row each, compared as text (so -0, 17-digit floats, seq past int4, record
# times in years 0001 and 9999 and absent fields count), and they take at
# most 32 bytes a reading with the primary key.  bench/pack_layout.sh does
# the work on 10 trucks for 6 hours at one reading every 10 s, plus its edge
# trucks, in a schema of its own that it drops.
. "$(dirname "$0")/lib.sh"

cd "$(dirname "$0")/../.." || exit 1
out=$(bench/pack_layout.sh 10 6 10 2>&1)
rc=$?
check_eq "every packed reading reads back through the view as its row" 0 "$rc"
check_contains "the view yields all 21611 of them" "21611 readings in" "$out"
check_contains "none different" "readings that differ from their row: 0" "$out"
per=$(printf '%s\n' "$out" | awk -F'|' '/one packed row per truck-hour/ { gsub(/ /, "", $4); print $4 }')
check "a packed reading takes at most 32 bytes with the primary key ($per)" awk -v b="${per:-999}" 'BEGIN { exit !(b <= 32) }'
check_eq "the bench's schema is gone" 0 \
    "$(psql "$FLEETSYNC_PG" -Atqc "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'pack_layout_%'")"
[ "$rc" = 0 ] || printf '%s\n' "$out" | tail -20 | sed 's/^/# /'
done_testing
