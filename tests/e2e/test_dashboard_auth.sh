#!/bin/bash
# Who may watch the fleet (docs/dashboard.md "Access"), against real Kafka:
# hashed credentials written by `dashboard --hash-password/--hash-token`; a
# dashboard off loopback that refuses wrong, missing, forged and expired
# credentials and cross-origin WebSockets and lets the right ones in (form
# login with a session cookie, Bearer token, HTTP Basic, the page itself in
# headless Chromium, over HTTPS); security headers; request size and rate
# limits, 200 wrong logins at once; HTTPS with a certificate of a CA made
# here (curl --cacert, Secure cookies, wss); Host names (DNS rebinding); and
# a loopback dashboard without login that still refuses cross-origin
# WebSockets and foreign Host names.
. "$(dirname "$0")/lib.sh"

root=$(cd "$(dirname "$0")/../.." && pwd)
P="e2eauth$$-"
W=$(mktemp -d /tmp/fleetsync-e2e-dashauth.XXXXXX)
B=$FLEETSYNC_BROKERS
PA=$((TEST_METRICS_BASE + 20)) PB=$((TEST_METRICS_BASE + 21)) PC=$((TEST_METRICS_BASE + 22)) PD=$((TEST_METRICS_BASE + 23))
A=http://127.0.0.1:$PA
WSJS=$root/tests/e2e/dashboard_ws_auth.js
PW="correct horse battery"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -rf "$W"
}
trap cleanup EXIT

code() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }
# start NAME PORT ARGS...: a dashboard on its own group; waits until it has joined
# (HEALTHZ_URL: where to ask, default http://127.0.0.1:PORT; CURL_EXTRA: more curl options).
start() {
    local name=$1 port=$2; shift 2
    "$FS" dashboard --topic-prefix "$P" --group "e2e-dashauth-$name-$$" "$@" >"$W/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 150); do
        [ "$(curl -s ${CURL_EXTRA:-} "${HEALTHZ_URL:-http://127.0.0.1:$port}/healthz" | jq -r .assigned_partitions 2>/dev/null)" -gt 0 ] 2>/dev/null &&
            return 0
        kill -0 "$!" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
# login URL USER PASSWORD: prints the session cookie's value (empty if refused).
login() {
    curl -s -D - -o /dev/null --data-urlencode "user=$2" --data-urlencode "password=$3" "$1/login" |
        sed -n 's/^Set-Cookie: fs_session=\([^;]*\);.*/\1/p' | tr -d '\r'
}

# --- credentials at rest ------------------------------------------------------
line=$(printf '%s\n' "$PW" | "$FS" dashboard --hash-password ops)
check_eq "--hash-password prints NAME:\$pbkdf2-sha256\$600000\$SALT\$HASH" 1 \
    "$(echo "$line" | grep -cE '^ops:\$pbkdf2-sha256\$600000\$[0-9a-f]{32}\$[0-9a-f]{64}$')"
check_eq "the password is not in it" 0 "$(echo "$line" | grep -c horse)"
check_eq "two hashes of one password differ (salted)" 1 \
    "$([ "$line" != "$(printf '%s\n' "$PW" | "$FS" dashboard --hash-password ops)" ] && echo 1)"
echo short | "$FS" dashboard --hash-password ops >/dev/null 2>&1
check_eq "a password under 8 characters is refused (exit 2)" 2 $?
TOKEN=$(openssl rand -hex 32)
tline=$(printf '%s\n' "$TOKEN" | "$FS" dashboard --hash-token ci)
check_eq "--hash-token prints NAME:\$token-sha256\$HASH" 1 "$(echo "$tline" | grep -cE '^ci:\$token-sha256\$[0-9a-f]{64}$')"
echo abc | "$FS" dashboard --hash-token ci >/dev/null 2>&1
check_eq "a short token is refused (exit 2)" 2 $?
printf '# dashboard logins\n%s\n%s\n' "$line" "$tline" >"$W/auth"

printf 'ops:$pbkdf2-sha256$5$00$00\n' >"$W/bad.auth"
"$FS" dashboard --listen "0.0.0.0:$PA" --auth-file "$W/bad.auth" >"$W/bad.out" 2>&1
check_eq "a malformed auth file: exit 2" 2 $?
check_contains "and says which line and how to fix it" "line 1: a password hash is" "$(cat "$W/bad.out")"
"$FS" dashboard --listen "0.0.0.0:$PA" >"$W/noauth.out" 2>&1
check_eq "off loopback without --auth-file: refused, exit 2" 2 $?
"$FS" dashboard --listen "0.0.0.0:$PA" --auth-file "$W/auth" >"$W/clear.out" 2>&1
check_eq "0.0.0.0 with logins but without TLS: refused, exit 2" 2 $?
check_contains "and says why and what to give" "over plain HTTP: passwords and session cookies would cross the network in the clear. Give --tls" \
    "$(cat "$W/clear.out")"
FLEETSYNC_DATA_DIR=$W/nodata "$FS" dashboard --listen "0.0.0.0:$PA" --auth-file "$W/auth" --tls >"$W/notls.out" 2>&1
check_eq "--tls without the data dir's certificate: exit 2" 2 $?
check_contains "and names the file and the command that makes it" "$W/nodata/tls/dashboard.crt" "$(cat "$W/notls.out")"

# A CA and a server certificate for 127.0.0.1 and localhost, made here.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/ca.key" -out "$W/ca.crt" -days 2 \
    -subj "/CN=e2e dashboard CA" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
    >/dev/null 2>&1
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/srv.key" -out "$W/srv.csr" \
    -subj /CN=localhost >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$W/srv.ext"
openssl x509 -req -in "$W/srv.csr" -CA "$W/ca.crt" -CAkey "$W/ca.key" -CAcreateserial -out "$W/srv.crt" -days 2 \
    -extfile "$W/srv.ext" >/dev/null 2>&1
"$FS" dashboard --listen "0.0.0.0:$PD" --auth-file "$W/auth" --tls-cert "$W/srv.crt" --tls-key "$W/ca.key" \
    >"$W/badkey.out" 2>&1
check_eq "a key that is not the certificate's: exit 2" 2 $?
check_contains "and says which file and why" "cannot load the TLS key $W/ca.key: key values mismatch" "$(cat "$W/badkey.out")"

"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
check "topics with the suite's prefix exist" topics_ready

# --- A: off loopback, with logins -------------------------------------------------
start a "$PA" --listen "0.0.0.0:$PA" --auth-file "$W/auth" --insecure-http
check_eq "with --auth-file and --insecure-http it listens on 0.0.0.0 over HTTP" 0 $?
check_eq "/healthz needs no login" 200 "$(code "$A/healthz")"
# One truck on the map (straight into Kafka: this suite needs no bridge).
truck() {
    printf '{"v":1,"truck_id":"%s","ts":%s,"seq":1,"lat":50.1,"lon":10.2,"speed_kmh":50,"ignition":true,"heading_deg":90}\n' \
        "E2EAUTH$$-1" "$(date +%s%3N)" | kcat -b "$B" -P -t "${P}truck-telemetry" -k "E2EAUTH$$-1"
}
truck
check_eq "/metrics from loopback needs no login" 200 "$(code "$A/metrics")"
ip=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9.]+$' | grep -v '^127\.' | head -1)
if [ -n "$ip" ]; then
    check_eq "/metrics from $ip (not loopback) is 403" 403 "$(code "http://$ip:$PA/metrics")"
fi
check_eq "no login: the API is 401" 401 "$(code "$A/api/fleet")"
check_eq "and says so in JSON" '{"error":"login required"}' "$(curl -s "$A/api/trucks?bbox=0,0,1,1")"
check_eq "no login: the page redirects to /login" "303 /login" \
    "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$A/" | sed "s#$A##")"
check_contains "GET /login is the sign-in form" 'action="/login"' "$(curl -s "$A/login")"
check_eq "wrong password: 401" 401 "$(code --data-urlencode user=ops --data-urlencode "password=wrong $PW" "$A/login")"
check_eq "wrong password: no session cookie" "" "$(login "$A" ops "wrong $PW")"
check_eq "no password: 401" 401 "$(code --data-urlencode user=ops "$A/login")"
check_eq "unknown user: 401" 401 "$(code --data-urlencode user=nobody --data-urlencode "password=$PW" "$A/login")"
check_eq "the token is not a password" 401 "$(code --data-urlencode user=ci --data-urlencode "password=$TOKEN" "$A/login")"
hdr=$(curl -s -D - -o /dev/null --data-urlencode user=ops --data-urlencode "password=$PW" "$A/login" | tr -d '\r')
check_contains "the right password: 303 to /" "Location: /" "$hdr"
check_contains "with a session cookie, HttpOnly and SameSite=Strict" "; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict" \
    "$(echo "$hdr" | grep '^Set-Cookie: fs_session=')"
C=$(login "$A" ops "$PW")
check_eq "the session cookie opens the API" 200 "$(code -b "fs_session=$C" "$A/api/fleet")"
check_contains "and the page" '<div id="map">' "$(curl -s -b "fs_session=$C" "$A/")"
check_eq "and the page's libraries" 200 "$(code -b "fs_session=$C" "$A/vendor/leaflet/dist/leaflet.js")"
check_eq "the libraries need it too" 401 "$(code "$A/vendor/leaflet/dist/leaflet.js")"
last=${C: -1}; [ "$last" = 0 ] && flip=1 || flip=0
check_eq "forged cookie (one MAC digit changed): 401" 401 "$(code -b "fs_session=${C%?}$flip" "$A/api/fleet")"
check_eq "forged cookie (expiry moved later): 401" 401 "$(code -b "fs_session=9$C" "$A/api/fleet")"
check_eq "garbage cookie: 401" 401 "$(code -b "fs_session=admin" "$A/api/fleet")"
check_eq "Bearer token: 200" 200 "$(code -H "Authorization: Bearer $TOKEN" "$A/api/fleet")"
for i in $(seq 100); do
    [ "$(curl -s -H "Authorization: Bearer $TOKEN" "$A/api/fleet" | jq -r .trucks)" = 1 ] && break
    [ $((i % 20)) = 0 ] && truck # again, should a rebalance have started the group after it
    sleep 0.1
done
check_eq "and the truck is there" 1 "$(curl -s -H "Authorization: Bearer $TOKEN" "$A/api/fleet" | jq -r .trucks)"
check_eq "wrong Bearer token: 401" 401 "$(code -H "Authorization: Bearer ${TOKEN}x" "$A/api/fleet")"
check_eq "HTTP Basic with the password: 200" 200 "$(code -u "ops:$PW" "$A/api/fleet")"
check_eq "HTTP Basic with a wrong one: 401" 401 "$(code -u "ops:nope-$PW" "$A/api/fleet")"

h=$(curl -s -D - -o /dev/null -b "fs_session=$C" "$A/" | tr -d '\r')
check_contains "CSP: only this server's scripts, styles and sockets" \
    "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'" "$h"
check_contains "CSP: no framing" "frame-ancestors 'none'" "$h"
check_contains "X-Content-Type-Options" "X-Content-Type-Options: nosniff" "$h"
check_contains "X-Frame-Options" "X-Frame-Options: DENY" "$h"
check_contains "Referrer-Policy (same-origin: Chromium sends Origin: null on forms under no-referrer)" "Referrer-Policy: same-origin" "$h"
check_contains "the headers are on API answers too" "Content-Security-Policy:" "$(curl -s -D - -o /dev/null "$A/api/fleet")"

# WebSocket upgrades.
out=$(node "$WSJS" "ws://127.0.0.1:$PA/ws")
check_eq "WebSocket without a session: refused 401" 'refused 401 {"error":"login required"}' "$out"
check_eq "WebSocket with a forged cookie: refused 401" "refused 401" \
    "$(node "$WSJS" "ws://127.0.0.1:$PA/ws" "cookie=${C%?}$flip" | cut -c1-11)"
check_eq "WebSocket with the session, same Origin: open" "open hello" \
    "$(node "$WSJS" "ws://127.0.0.1:$PA/ws" "cookie=$C" "origin=http://127.0.0.1:$PA")"
check_eq "WebSocket with the session, no Origin (not a browser): open" "open hello" \
    "$(node "$WSJS" "ws://127.0.0.1:$PA/ws" "cookie=$C")"
check_eq "WebSocket with the session but from another site's page: refused 403" \
    'refused 403 {"error":"cross-origin request refused"}' \
    "$(node "$WSJS" "ws://127.0.0.1:$PA/ws" "cookie=$C" "origin=http://evil.example")"
check_eq "WebSocket from another port of this host: refused 403" "refused 403" \
    "$(node "$WSJS" "ws://127.0.0.1:$PA/ws" "cookie=$C" "origin=http://127.0.0.1:1" | cut -c1-11)"
check_eq "WebSocket with the Bearer token: open" "open hello" "$(node "$WSJS" "ws://127.0.0.1:$PA/ws" "bearer=$TOKEN")"

# Forms and sizes.
check_eq "a login posted from another site: 403" 403 \
    "$(code -H 'Origin: http://evil.example' --data-urlencode user=ops --data-urlencode "password=$PW" "$A/login")"
head -c 5000 /dev/zero | tr '\0' a >"$W/big"
check_eq "a login body over 4 KiB: 413" 413 "$(code --data-binary @"$W/big" "$A/login")"
big=$(head -c 20000 /dev/zero | tr '\0' a)
c=$(code -H "X-Big: $big" -b "fs_session=$C" "$A/api/fleet")
check "request headers over 16 KiB are refused (got $c)" test "$c" != 200
check_eq "the dashboard still answers after them" 200 "$(code -b "fs_session=$C" "$A/api/fleet")"
check_eq "only GET on the API: 405" 405 "$(code -X DELETE -b "fs_session=$C" "$A/api/fleet")"
lo=$(curl -s -D - -o /dev/null -X POST -b "fs_session=$C" "$A/logout" | tr -d '\r')
check_contains "POST /logout clears the cookie" "Set-Cookie: fs_session=; Path=/; Max-Age=0" "$lo"

# Host names (DNS rebinding): with a login on 0.0.0.0, loopback names and
# any IP address are answered, a name that is not --allowed-host is not.
check_eq "a foreign Host name with a valid session: 403" 403 \
    "$(code -H "Host: rebind.evil.example:$PA" -b "fs_session=$C" "$A/api/fleet")"
check_eq "a foreign Host name on the login form: 403" 403 \
    "$(code -H "Host: rebind.evil.example:$PA" --data-urlencode user=ops --data-urlencode "password=$PW" "$A/login")"
check_eq "a foreign Host name on a WebSocket upgrade: refused 403" "refused 403" \
    "$(node "$WSJS" "ws://127.0.0.1:$PA/ws" "cookie=$C" "host=rebind.evil.example:$PA" | cut -c1-11)"
check_eq "an IP address as Host: answered" 200 "$(code -H "Host: 10.11.12.13:$PA" -b "fs_session=$C" "$A/api/fleet")"
check_eq "localhost as Host: answered" 200 "$(code -H "Host: localhost:$PA" -b "fs_session=$C" "$A/api/fleet")"

# Failed logins are limited per address: 20 at once, then 10 a minute, and
# the attempt is paid before the KDF runs: 200 wrong passwords sent at once
# are not all evaluated (401), the rest wait (429).
s0=$(date +%s%N)
seq 200 | xargs -P 200 -I{} curl -s -o /dev/null -w '%{http_code}\n' --max-time 120 --data-urlencode user=ops \
    --data-urlencode password=guess{}-1234 "$A/login" >"$W/burst"
secs=$(( ($(date +%s%N) - s0) / 1000000000 + 1 ))
n401=$(grep -c '^401$' "$W/burst") n429=$(grep -c '^429$' "$W/burst")
check "200 wrong logins at once: at most the budget (20, +1 per 6 s of the $secs s) evaluated (401: $n401)" \
    test "$n401" -le $((20 + secs / 6 + 1))
check_eq "every other one refused with 429 before its check (401: $n401, 429: $n429)" 200 $((n401 + n429))
# A token may have come back while the burst ran (one per 6 s): spend it first.
for _ in 1 2 3; do
    [ "$(code --data-urlencode user=ops --data-urlencode password=guess-again "$A/login")" = 429 ] && break
done
h=$(curl -s -D - -o /dev/null --data-urlencode user=ops --data-urlencode "password=$PW" "$A/login" | tr -d '\r')
check_contains "then even the right password waits: 429" "HTTP/1.1 429" "$h"
check_contains "with Retry-After: 60" "Retry-After: 60" "$h"
check_eq "and so does guessing tokens" 429 "$(code -H "Authorization: Bearer nope" "$A/api/fleet")"
check_eq "a valid session still works" 200 "$(code -b "fs_session=$C" "$A/api/fleet")"
m=$(curl -s "$A/metrics")
check "/metrics counts logins" test "$(echo "$m" | awk '$1 == "fleetsync_dashboard_logins_total" { print $2 }')" -ge 2
check "/metrics counts refusals for want of a login" \
    test "$(echo "$m" | awk '$1 == "fleetsync_dashboard_refused_requests_total{reason=\"login\"}" { print $2 }')" -ge 10
check "/metrics counts cross-origin refusals" \
    test "$(echo "$m" | awk '$1 == "fleetsync_dashboard_refused_requests_total{reason=\"origin\"}" { print $2 }')" -ge 3

# --- B: sessions expire; requests per address are limited -------------------------
start b "$PB" --listen "127.0.0.1:$PB" --auth-file "$W/auth" --session-ttl 2s --rate-limit 2 --allowed-host dash.example.org
check_eq "with --auth-file a loopback dashboard wants a login too" 401 "$(code "http://127.0.0.1:$PB/api/fleet")"
CB=$(login "http://127.0.0.1:$PB" ops "$PW")
check_eq "a fresh session works" 200 "$(code -b "fs_session=$CB" "http://127.0.0.1:$PB/api/fleet")"
sleep 2.5
check_eq "an expired session (--session-ttl 2s): 401" 401 "$(code -b "fs_session=$CB" "http://127.0.0.1:$PB/api/fleet")"
check_eq "an expired session cannot open a WebSocket" "refused 401" \
    "$(node "$WSJS" "ws://127.0.0.1:$PB/ws" "cookie=$CB" | cut -c1-11)"
codes=$(for _ in $(seq 40); do code -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PB/api/config"; echo; done | tr '\n' ' ')
check_contains "--rate-limit 2 (bursts of 20): a run of 40 requests meets 429" " 429" " $codes"
check_eq "after its burst (codes: $codes)" "200 200 200 200 200 200 200 200 200 200" "$(echo "$codes" | cut -d' ' -f1-10)"
check_eq "/healthz is not limited" 200 "$(code "http://127.0.0.1:$PB/healthz")"

check_eq "an --allowed-host name is answered" 200 \
    "$(code -H "Host: dash.example.org:$PB" -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PB/healthz")"

# --- D: HTTPS with a certificate of the suite's CA ------------------------------------
D=https://127.0.0.1:$PD
HEALTHZ_URL=$D CURL_EXTRA="--cacert $W/ca.crt" start d "$PD" --listen "0.0.0.0:$PD" --auth-file "$W/auth" \
    --tls-cert "$W/srv.crt" --tls-key "$W/srv.key"
check_eq "with --tls-cert/--tls-key it listens on 0.0.0.0 over HTTPS" 0 $?
truck # for the map in the browser below (a new group starts at the end)
check_eq "curl --cacert of the CA: /healthz over https" 200 "$(code --cacert "$W/ca.crt" "$D/healthz")"
curl -s -o /dev/null --max-time 10 "$D/healthz"
check_eq "without that CA curl does not trust it (exit 60)" 60 $?
check "plain HTTP on the HTTPS port gets no answer" test "$(code "http://127.0.0.1:$PD/healthz")" = 000
hd=$(curl -s -D - -o /dev/null --cacert "$W/ca.crt" --data-urlencode user=ops --data-urlencode "password=$PW" "$D/login" | tr -d '\r')
check_contains "login over https: the cookie is Secure" "; HttpOnly; SameSite=Strict; Secure" "$(echo "$hd" | grep '^Set-Cookie: fs_session=')"
CD=$(echo "$hd" | sed -n 's/^Set-Cookie: fs_session=\([^;]*\);.*/\1/p')
check_eq "the session opens the API over https" 200 "$(code --cacert "$W/ca.crt" -b "fs_session=$CD" "$D/api/fleet")"
check_contains "logout over https clears the cookie, Secure too" "Max-Age=0; HttpOnly; SameSite=Strict; Secure" \
    "$(curl -s -D - -o /dev/null --cacert "$W/ca.crt" -X POST -b "fs_session=$CD" "$D/logout" | tr -d '\r')"
check_eq "wss with the session and the page's Origin: open" "open hello" \
    "$(node "$WSJS" "wss://127.0.0.1:$PD/ws" "cookie=$CD" "origin=https://127.0.0.1:$PD" "ca=$W/ca.crt")"
check_eq "wss without a session: refused 401" "refused 401" \
    "$(node "$WSJS" "wss://127.0.0.1:$PD/ws" "ca=$W/ca.crt" | cut -c1-11)"
check_eq "wss from another site's page: refused 403" "refused 403" \
    "$(node "$WSJS" "wss://127.0.0.1:$PD/ws" "cookie=$CD" "origin=https://evil.example" "ca=$W/ca.crt" | cut -c1-11)"
if [ -n "$ip" ]; then
    check_eq "/metrics over https from $ip: 403 (the client's address crosses the TLS front)" 403 \
        "$(code -k "https://$ip:$PD/metrics")"
    check_eq "and a forged peer header does not make it loopback" 403 \
        "$(code -k -H "X-FleetSync-Peer: 00000000000000000000000000000000 127.0.0.1" "https://$ip:$PD/metrics")"
fi
check_eq "a foreign Host over https: 403" 403 \
    "$(code --cacert "$W/ca.crt" -H "Host: rebind.evil.example:$PD" -b "fs_session=$CD" "$D/api/fleet")"
inner=$(ss -Hltnp 2>/dev/null | grep "pid=${pids[-1]}," | awk '{print $4}' | grep '^127\.0\.0\.1:' | grep -v ":$PD\$" | head -1)
if [ -n "$inner" ]; then
    check_eq "civetweb's inner loopback port refuses requests that did not come through TLS" 403 \
        "$(code -H "Authorization: Bearer $TOKEN" "http://$inner/api/fleet")"
else
    _not_ok "the inner loopback port of dashboard d was not found with ss"
fi

# The page in Chromium over https: sign-in form, the map under the CSP, wss, sign out.
if [ -x /usr/bin/chromium ] && [ -d "$root/node_modules/playwright-core" ]; then
    timeout 120 node "$root/tests/browser/dashboard_login.js" "$D/" ops "$PW" >"$W/browser.out" 2>&1
    while read -r st what; do
        case "$st" in
        PASS) _ok "browser: $what" ;;
        FAIL) _not_ok "browser: $what" ;;
        *) echo "# $st $what" ;;
        esac
    done <"$W/browser.out"
else
    _not_ok "browser: /usr/bin/chromium or playwright-core is missing (run scripts/bootstrap)"
fi

# --- C: loopback without login, as before ------------------------------------------
start c "$PC" --listen "127.0.0.1:$PC" --tile-url 'https://tiles.example.org:8443/{z}/{x}/{y}.png'
check_eq "loopback without --auth-file: no login" 200 "$(code "http://127.0.0.1:$PC/api/fleet")"
check_eq "no sign-in page there" 404 "$(code "http://127.0.0.1:$PC/login")"
check_eq "WebSocket without Origin: open" "open hello" "$(node "$WSJS" "ws://127.0.0.1:$PC/ws")"
check_eq "WebSocket from the page's own origin: open" "open hello" \
    "$(node "$WSJS" "ws://127.0.0.1:$PC/ws" "origin=http://127.0.0.1:$PC")"
check_eq "WebSocket from another site's page: refused 403" "refused 403" \
    "$(node "$WSJS" "ws://127.0.0.1:$PC/ws" "origin=http://evil.example" | cut -c1-11)"
check_eq "a foreign Host name (DNS rebinding) is refused: 403" 403 \
    "$(code -H "Host: evil.example:$PC" "http://127.0.0.1:$PC/api/fleet")"
check_eq "localhost is fine" 200 "$(code -H "Host: localhost:$PC" "http://127.0.0.1:$PC/api/fleet")"
check_contains "the security headers are there too; --tile-url's origin may serve images" \
    "img-src 'self' data: https://tiles.example.org:8443; connect-src 'self';" \
    "$(curl -s -D - -o /dev/null "http://127.0.0.1:$PC/")"

for n in a b c d; do
    if grep -qE 'ERROR|AddressSanitizer|runtime error' "$W/$n.log"; then
        _not_ok "dashboard $n logged an error"; grep -E 'ERROR|AddressSanitizer|runtime error' "$W/$n.log" | head -5 | sed 's/^/# /'
    fi
done
for p in "${pids[@]}"; do kill -TERM "$p"; wait "$p"; rc=$?; [ "$rc" = 0 ] || _not_ok "a dashboard exited $rc on SIGTERM"; done
pids=()
_ok "every dashboard exits 0 on SIGTERM"
done_testing
