# tests/e2e/lib.sh - TAP helpers for e2e suites (sourced).
#
#   check "what it shows" command...     ok if the command exits 0
#   check_fails "what" command...        ok if it exits non-zero
#   check_eq "what" expected actual
#   check_contains "what" needle haystack
#   done_testing                          exit status: 0 if no check failed
#   keep_logs NAME FILE...                after a failed check: the files into
#                                         /tmp/fleetsync-NAME-<pid>.logs
#   metric PORT NAME                      one series of the metrics on PORT
#   start_logged VAR LOG PATTERN TRIES command...
#                                         in the background, pid in VAR, until
#                                         LOG has one more PATTERN line
set -u
FS=${FLEETSYNC_BIN:?run e2e suites through tests/run (FLEETSYNC_BIN unset)}
_failed=0
_n=0

_ok() { _n=$((_n + 1)); echo "ok $_n - $1"; }
_not_ok() { _n=$((_n + 1)); _failed=$((_failed + 1)); echo "not ok $_n - $1"; }

check() {
    local what=$1; shift
    local out
    if out=$("$@" 2>&1); then _ok "$what"; else _not_ok "$what"; printf '%s\n' "$out" | tail -20 | sed 's/^/# /'; fi
}
check_fails() {
    local what=$1; shift
    if "$@" >/dev/null 2>&1; then _not_ok "$what (it succeeded)"; else _ok "$what"; fi
}
check_eq() {
    if [ "$2" = "$3" ]; then _ok "$1"; else _not_ok "$1"; echo "# expected: $2"; echo "# actual:   $3"; fi
}
check_contains() {
    case "$3" in *"$2"*) _ok "$1" ;; *) _not_ok "$1"; echo "# missing: $2"; printf '%s\n' "$3" | head -20 | sed 's/^/# /' ;; esac
}
# The Kafka jars folder (same rule as scripts/bootstrap).
kafka_libs() {
    if [ -n "${FLEETSYNC_KAFKA_LIBS:-}" ]; then echo "$FLEETSYNC_KAFKA_LIBS"; return; fi
    local v=4.1.1
    if [ -n "${FLEETSYNC_CACHE:-}" ]; then echo "$FLEETSYNC_CACHE/kafka-$v/libs"
    elif [ "$(id -u)" -eq 0 ]; then echo "/var/cache/fleetsync/kafka-$v/libs"
    elif [ -f "/var/cache/fleetsync/kafka-$v/.complete" ]; then echo "/var/cache/fleetsync/kafka-$v/libs"
    else echo "${XDG_CACHE_HOME:-$HOME/.cache}/fleetsync/kafka-$v/libs"; fi
}
# metric PORT NAME: the value of one series of the metrics served on PORT.
metric() { curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'; }
# start_logged VAR LOG PATTERN TRIES COMMAND...: a process that says it is
# ready in its log (the bridge "subscribed", the ingest "ingest listening"):
# COMMAND runs in the background with its output appended to LOG and its pid
# in the variable VAR (a name such as ingest_pid or 'PID[bridge]'); then,
# 0.1 s apart and at most TRIES times, until LOG has more lines matching
# PATTERN than it had before.  Fails when it does not get there or the
# process exits first.
start_logged() {
    local var=$1 logf=$2 pat=$3 tries=$4 before pid
    shift 4
    before=$(grep -c "$pat" "$logf" 2>/dev/null)
    "$@" >>"$logf" 2>&1 &
    pid=$!
    printf -v "$var" '%s' "$pid"
    for _ in $(seq "$tries"); do
        [ "$(grep -c "$pat" "$logf" 2>/dev/null)" -gt "${before:-0}" ] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
# wait_prints WANT SECS command...: runs the command once a second until it
# prints WANT, for at most SECS seconds; prints what it printed last.
wait_prints() {
    local want=$1 secs=$2 got=; shift 2
    for _ in $(seq "$secs"); do
        got=$("$@")
        [ "$got" = "$want" ] && break
        sleep 1
    done
    printf '%s' "$got"
}
done_testing() {
    echo "1..$_n"
    [ "$_failed" -eq 0 ]
}
# keep_logs NAME FILE...: when a check failed, copies the files (a suite's
# logs in its work dir, which its cleanup then removes) into
# /tmp/fleetsync-NAME-$$.logs and says so; nothing when every check passed.
keep_logs() {
    local dir=/tmp/fleetsync-$1-$$.logs
    shift
    [ "$_failed" -gt 0 ] || return 0
    mkdir -p "$dir"
    cp "$@" "$dir/" 2>/dev/null
    echo "# logs kept in $dir"
}

# kafka_sasl_args USER [DIR]: kcat's -X options that log USER in to the Kafka
# of a secure data dir DIR (default $FLEETSYNC_DATA_DIR; `services start
# --secure`, src/core/kafkaauth.h): the password is the first 32 hex digits of
# HMAC-SHA256(DIR/kafka-auth/secret, USER), computed here with openssl.
kafka_sasl_args() {
    local d=${2:-$FLEETSYNC_DATA_DIR} key pass
    key=$(head -c 64 "$d/kafka-auth/secret") || return 1
    pass=$(printf '%s' "$1" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" | awk '{ print substr($NF, 1, 32) }')
    echo "-X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=PLAIN -X sasl.username=$1 -X sasl.password=$pass"
}
# kcat_as USER kcat-args...: kcat logged in as USER (a secure data dir's principal).
# shellcheck disable=SC2046
kcat_as() { local u=$1; shift; kcat $(kafka_sasl_args "$u") "$@"; }
# kc kcat-args...: kcat as the suites' Kafka reader and checker: the admin when
# $FLEETSYNC_DATA_DIR is secure, else plain kcat.
kc() {
    if [ -f "${FLEETSYNC_DATA_DIR:-/nonexistent}/kafka-auth/secret" ]; then kcat_as fleetsync-admin "$@"; else kcat "$@"; fi
}

# topics_ready: the suite's topics (prefix $P, brokers $B) exist with their
# partitions, after `services start --topic-prefix "$P"`.
topics_ready() {
    for _ in $(seq 50); do
        kc -b "$B" -L -t "${P}truck-telemetry" 2>/dev/null | grep -q '6 partitions' && return 0
        sleep 0.2
    done
    return 1
}
