#!/bin/bash
# Local accounts against the embedded services (docs/security.md, "Threats and
# what stops them").
#
# PostgreSQL, on the shared stack: a local account without the data dir's
# password file is refused (TCP and unix socket), and the pipelines' role,
# with its password, is no superuser: COPY ... TO PROGRAM, server files and
# new roles are refused.
#
# On a stack of its own (ports of the test block + 90): a data dir made by an
# earlier FleetSync (initdb --auth=trust, "fleetsync" the superuser, a table
# it owns) is upgraded in place by `services start`; and, as root, links the
# service user plants in its own folders (log/, run/) towards root's files
# are not followed: the files keep their owner, mode and contents, and a
# folder replaced by a link is refused.
. "$(dirname "$0")/lib.sh"

W=$(mktemp -d /tmp/fleetsync-e2e-priv.XXXXXX)
chmod 755 "$W"
NOPW_HOME=$W/home    # no ~/.pgpass to fall back on
mkdir -p "$NOPW_HOME"
# psql as a local account that does not have the password file.
psql_nopw() { env -u PGPASSFILE -u PGPASSWORD HOME="$NOPW_HOME" psql -w "$@"; }
cleanup() {
    [ -n "${OWN:-}" ] && env FLEETSYNC_DATA_DIR="$D" "$FS" services stop >/dev/null 2>&1
    rm -rf "$W"
}
trap cleanup EXIT

# ---- PostgreSQL of the shared stack ---------------------------------------------
SOCK=$FLEETSYNC_DATA_DIR/postgres/run
out=$(psql_nopw "$FLEETSYNC_PG" -XAtc 'select 1' 2>&1)
check_contains "psql -h 127.0.0.1 -U fleetsync without the password file is refused" "no password supplied" "$out"
out=$(psql_nopw "host=$SOCK port=$TEST_PG_PORT dbname=fleetsync user=fleetsync" -XAtc 'select 1' 2>&1)
check_contains "on the unix socket too" "no password supplied" "$out"
out=$(psql_nopw "host=127.0.0.1 port=$TEST_PG_PORT dbname=postgres user=fleetsync_admin" -XAtc 'select 1' 2>&1)
check_contains "and as the superuser fleetsync_admin" "no password supplied" "$out"
out=$(env -u PGPASSFILE HOME="$NOPW_HOME" PGPASSWORD=wrong psql -w "$FLEETSYNC_PG" -XAtc 'select 1' 2>&1)
check_contains "a wrong password is refused" "password authentication failed" "$out"
check_eq "the password files are the operator's alone (0600)" "600 600" \
    "$(stat -c %a "$FLEETSYNC_DATA_DIR/pgpass" "$FLEETSYNC_DATA_DIR/pgpass-admin" | xargs)"

# With the pipelines' password: what a superuser could do is refused.
q() { psql "$FLEETSYNC_PG" -XAtqc "$1" 2>&1; }
check_eq "role fleetsync logs in with the data dir's password file" fleetsync "$(q 'select current_user')"
check_eq "role fleetsync is no superuser and may not create roles or databases" "f|f|f" \
    "$(q "select rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname = current_user")"
check_eq "role fleetsync owns the database fleetsync" fleetsync \
    "$(q "select pg_get_userbyid(datdba) from pg_database where datname = 'fleetsync'")"
# Where the server's account could write, so a program that ran leaves it.
mkdir -p "$W/drop"
chmod 777 "$W/drop"
PWNED=$W/drop/pwned
out=$(q "COPY (SELECT 1) TO PROGRAM 'id > $PWNED'")
check_contains "COPY ... TO PROGRAM is refused" "must be superuser or have privileges of the pg_execute_server_program" "$out"
check_fails "and the program did not run (no $PWNED)" test -e "$PWNED"
out=$(q "COPY (SELECT 1) TO '$PWNED'")
check_contains "COPY ... TO a server file is refused" "pg_write_server_files" "$out"
check_contains "reading a server file is refused" "permission denied" "$(q "SELECT pg_read_file('/etc/passwd')")"
check_contains "making a role is refused" "permission denied to create role" "$(q "CREATE ROLE e2e_priv_$$")"
check_contains "granting itself superuser is refused" "must be superuser" "$(q "ALTER ROLE fleetsync SUPERUSER")"
check "it still makes tables in its database (the migrations run as it)" \
    psql "$FLEETSYNC_PG" -XAtq -v ON_ERROR_STOP=1 -c "CREATE TABLE e2e_priv_$$ (id int)" -c "DROP TABLE e2e_priv_$$"

# ---- a stack of its own: an old data dir, links planted by the service user -------
S=90
MQTT=$((TEST_MQTT_PORT + S)) KAFKA=$((TEST_KAFKA_PORT + S)) PGP=$((TEST_PG_PORT + S))
D=$W/stack
mkdir -p "$D"
chmod 755 "$D"
own_env() {
    env FLEETSYNC_DATA_DIR="$D" FLEETSYNC_MQTT="mqtt://127.0.0.1:$MQTT" FLEETSYNC_BROKERS="127.0.0.1:$KAFKA" \
        FLEETSYNC_PG="host=127.0.0.1 port=$PGP dbname=fleetsync user=fleetsync" PGPASSFILE="$D/pgpass" "$@"
}
ROOT=0; [ "$(id -u)" -eq 0 ] && ROOT=1
# as_svc CMD...: as the account the services run as (root drops to "fleetsync").
as_svc() { if [ $ROOT = 1 ]; then runuser -u fleetsync -- "$@"; else "$@"; fi; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

# What `services start` made before PostgreSQL asked for passwords: a trust
# cluster whose bootstrap superuser is "fleetsync", and the tables it owns.
if [ $ROOT = 1 ]; then
    id fleetsync >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin fleetsync
fi
mkdir -p "$D/postgres/run" "$D/log" "$D/run"
chmod 750 "$D/postgres" "$D/postgres/run"
[ $ROOT = 1 ] && chown fleetsync: "$D/postgres" "$D/postgres/run" "$D/log" "$D/run"
legacy() {
    as_svc "$PGBIN/initdb" -D "$D/postgres/data" -U fleetsync --auth=trust -E UTF8 --locale=C --no-instructions &&
        echo "CREATE DATABASE fleetsync" | as_svc "$PGBIN/postgres" --single -D "$D/postgres/data" postgres &&
        echo "CREATE TABLE legacy_t (id serial PRIMARY KEY, note text)" |
        as_svc "$PGBIN/postgres" --single -D "$D/postgres/data" fleetsync
}
check "an old data dir: trust, superuser fleetsync, a table it owns" legacy
check "its pg_hba.conf trusts every local connection" grep -qw trust "$D/postgres/data/pg_hba.conf"

# The links a service user would plant in its own folders, towards files of
# root's (made here, outside the data dir).
declare -A TARGET
SYMLINK_CHECKS=0
if [ $ROOT = 1 ]; then
    SYMLINK_CHECKS=1
    T=$(mktemp -d /tmp/fleetsync-e2e-priv-targets.XXXXXX)
    for rel in log/mosquitto.log log/postgres.log log/kafka.log run/mosquitto.pid run/ports; do
        f=$T/$(echo "$rel" | tr / _)
        echo "root's own $rel" >"$f"
        chmod 600 "$f"
        TARGET[$rel]=$f
        as_svc ln -s "$f" "$D/$rel"
    done
    snapshot() { for rel in "${!TARGET[@]}"; do stat -c "%n %U:%G %a %s" "${TARGET[$rel]}"; sha1sum <"${TARGET[$rel]}"; done | sort; }
    before=$(snapshot)
fi

OWN=1
s0=$(date +%s)
if own_env "$FS" services start --timeout 120 >"$W/start.out" 2>&1; then
    _ok "services start on the old data dir, ports of its own ($(( $(date +%s) - s0 )) s)"
else
    _not_ok "services start on the old data dir"; sed 's/^/# /' "$W/start.out"
fi
check_contains "it says it upgrades the old cluster" "upgrading PostgreSQL" "$(cat "$W/start.out")"
PGO="host=127.0.0.1 port=$PGP dbname=fleetsync user=fleetsync"
qo() { own_env psql "$PGO" -XAtqc "$1" 2>&1; }
check_fails "pg_hba.conf trusts nobody any more" grep -qw trust "$D/postgres/data/pg_hba.conf"
out=$(psql_nopw "$PGO" -XAtc 'select 1' 2>&1)
check_contains "upgraded: psql -U fleetsync without the password file is refused" "no password supplied" "$out"
check_eq "upgraded: role fleetsync is no superuser" "f" "$(qo "select rolsuper from pg_roles where rolname = current_user")"
check_eq "upgraded: the old superuser is fleetsync_admin" "t" \
    "$(qo "select rolsuper from pg_roles where rolname = 'fleetsync_admin' and oid = 10")"
check_eq "upgraded: fleetsync owns the old table and its sequence" "fleetsync fleetsync" \
    "$(qo "select pg_get_userbyid(relowner) from pg_class where relname in ('legacy_t', 'legacy_t_id_seq') order by relname" | xargs)"
check_eq "upgraded: fleetsync writes the old table" 1 \
    "$(qo "insert into legacy_t (note) values ('after') returning id")"
out=$(qo "COPY (SELECT 1) TO PROGRAM 'id > $W/drop/pwned2'")
check_fails "upgraded: and the program did not run" test -e "$W/drop/pwned2"
check_contains "upgraded: COPY ... TO PROGRAM is refused" "must be superuser" "$out"
check "upgraded: fleetsync report runs its migrations as fleetsync" own_env "$FS" report avg-speed --fleet

if [ $SYMLINK_CHECKS = 1 ]; then
    check_eq "root's files behind the planted links keep owner, mode and contents" "$before" "$(snapshot)"
    for rel in log/mosquitto.log run/mosquitto.pid; do
        check "$rel is a file of its own now, not the link" test -f "$D/$rel" -a ! -L "$D/$rel"
    done
    check_eq "log/mosquitto.log is the service user's" fleetsync "$(stat -c %U "$D/log/mosquitto.log")"
    check "services status reads the new pid files" own_env "$FS" services status
    rm -rf "$T"
else
    echo "ok $((_n + 1)) # skip links planted by the service user: only as root (services run as user fleetsync)"
    _n=$((_n + 1))
fi

check "services stop" own_env "$FS" services stop

# A folder root creates and hands over (postgres/run) replaced by a link to
# a folder of root's: start refuses to go through it and says so.
if [ $SYMLINK_CHECKS = 1 ]; then
    TD=$(mktemp -d /tmp/fleetsync-e2e-priv-dir.XXXXXX)
    find "$D/run" "$D/log" -type l -delete   # links of the check above, should any be left
    as_svc mv "$D/postgres/run" "$D/postgres/run.old"
    as_svc ln -s "$TD" "$D/postgres/run"
    dbefore=$(stat -c "%U:%G %a" "$TD")
    out=$(own_env "$FS" services start --timeout 60 2>&1)
    check_eq "a link planted as postgres/run: root's folder keeps its owner and mode" "$dbefore" \
        "$(stat -c "%U:%G %a" "$TD")"
    check_contains "and start says what it would not create" "cannot create $D/postgres/run" "$out"
    own_env "$FS" services stop >/dev/null 2>&1
    rm -rf "$TD"
fi
OWN=
done_testing
