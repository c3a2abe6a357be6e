#!/usr/bin/env bash
# Autobahn|Testsuite through the gateway, as `.ci/run` runs it (README, "Compliance"):
#
#   gateway.sh WSGATE_BINARY plain|deflate|h2|h2-deflate CASES EXPECTED_COUNT
#
# Starts `wsgate echo` as the upstream and `wsgate run` as the gateway in front of it (config/autobahn.yaml
# for `plain`; config/autobahn-deflate.yaml for `deflate`: the gateway negotiates permessage-deflate with the
# testsuite, the echo speaks none), runs the cases (run.sh's patterns, e.g. '1.*,2.*' or '12.1.*') through
# the gateway, stops both, and asserts the summary line: FAILED=0, NON-STRICT=0, UNIMPLEMENTED=0, no
# OTHER verdict, no close issue, nothing MISSING, and exactly EXPECTED_COUNT cases (INFORMATIONAL is
# allowed: 7.1.6, 7.13.1 and 7.13.2 are informational for every server).
#
# `h2` and `h2-deflate` run the same configurations with the listener on TLS and `http2: on` (a
# certificate for `localhost` made with openssl for the run), and the cases over HTTP/2: wstest speaks
# HTTP/1.1 only, so tools/autobahn/h2bridge.py takes its connections and carries each WebSocket on an
# RFC 8441 extended CONNECT stream, all on one shared HTTP/2 connection (AUTOBAHN_H2_CONNECTIONS, default
# 1), bytes verbatim both ways. The case patterns are dealt to AUTOBAHN_H2_SHARDS wstest processes (default
# 2, each its own report in AUTOBAHN_OUT/shard-K and its own summary line) that run at once, so streams of
# different cases overlap on that connection; the counts must add up to EXPECTED_COUNT. The bridge's count
# line (streams, connections, the most open at once, resets, errors) is printed.
#
# Environment (optional): AUTOBAHN_GATEWAY_PORT and AUTOBAHN_ECHO_PORT (default 19001/19002 for plain,
# 19201/19202 for deflate, 19011/19012 for h2, 19211/19212 for h2-deflate: the configs' ports, rewritten
# into a copy of the config), AUTOBAHN_BRIDGE_PORT (h2 modes: default 19013, 19213),
# AUTOBAHN_BRIDGE_PYTHON (a python3 with the `h2` package; default .build/test-peers/bin/python3, which
# scripts/test provisions, else python3), AUTOBAHN_HOME (the wstest venv, default .build/autobahn-venv),
# AUTOBAHN_OUT (reports, default .build/autobahn-reports/MODE), AUTOBAHN_TIMEOUT (default 600 s).
# The configs turn the admin listener off, so runs of different modes (other ports) can go at once.
# Exit status: 0 when every assertion holds, 1 otherwise, 2 on a setup error.
set -euo pipefail
cd "$(dirname "$0")/../.."

wsgate="${1:?usage: gateway.sh WSGATE_BINARY plain|deflate|h2|h2-deflate CASES EXPECTED_COUNT}"
mode="${2:?mode}"
cases="${3:?cases}"
expected="${4:?expected count}"
case "$mode" in
    plain) config=config/autobahn.yaml default_gateway=19001 default_echo=19002 ;;
    deflate) config=config/autobahn-deflate.yaml default_gateway=19201 default_echo=19202 ;;
    h2) config=config/autobahn.yaml default_gateway=19011 default_echo=19012 default_bridge=19013 ;;
    h2-deflate) config=config/autobahn-deflate.yaml default_gateway=19211 default_echo=19212 default_bridge=19213 ;;
    *) echo "gateway.sh: mode must be plain, deflate, h2 or h2-deflate" >&2; exit 2 ;;
esac
# The checked-in configs name the plain/deflate ports; the h2 modes rewrite them like any other.
config_gateway=$(sed -n 's/^ *address: 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$config" | head -1)
config_echo=$(sed -n 's#.*ws://127\.0\.0\.1:\([0-9]*\).*#\1#p' "$config" | head -1)
gateway_port="${AUTOBAHN_GATEWAY_PORT:-$default_gateway}"
echo_port="${AUTOBAHN_ECHO_PORT:-$default_echo}"
bridge_port="${AUTOBAHN_BRIDGE_PORT:-${default_bridge:-}}"
export AUTOBAHN_HOME="${AUTOBAHN_HOME:-$PWD/.build/autobahn-venv}"
export AUTOBAHN_OUT="${AUTOBAHN_OUT:-$PWD/.build/autobahn-reports/$mode}"
export AUTOBAHN_TIMEOUT="${AUTOBAHN_TIMEOUT:-600}"
export AUTOBAHN_AGENT="wsgate-$mode"

work=$(mktemp -d "${TMPDIR:-/tmp}/wsgate-autobahn.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# The config with this run's ports (the checked-in files name the defaults).
sed -e "s/127\.0\.0\.1:$config_gateway\b/127.0.0.1:$gateway_port/" -e "s#ws://127\.0\.0\.1:$config_echo\b#ws://127.0.0.1:$echo_port#" \
    "$config" >"$work/gateway.yaml"
grep -q "127.0.0.1:$gateway_port" "$work/gateway.yaml" && grep -q "ws://127.0.0.1:$echo_port" "$work/gateway.yaml" \
    || { echo "gateway.sh: could not set the ports in a copy of $config" >&2; exit 2; }
url="ws://127.0.0.1:$gateway_port/echo"
if [[ -n "$bridge_port" ]]; then
    # The listener on TLS with HTTP/2 (a self-signed certificate for localhost, the bridge's CA), and the
    # cases through the bridge.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost -keyout "$work/key.pem" -out "$work/cert.pem" >"$work/openssl.log" 2>&1 \
        || { cat "$work/openssl.log" >&2; echo "gateway.sh: openssl could not make a certificate" >&2; exit 2; }
    sed -i "s#^\( *\)address: 127\.0\.0\.1:$gateway_port\$#&\n\1tls: { certificate: $work/cert.pem, key: $work/key.pem, http2: on }#" \
        "$work/gateway.yaml"
    grep -q "http2: on" "$work/gateway.yaml" || { echo "gateway.sh: could not turn on TLS in a copy of $config" >&2; exit 2; }
    bridge_python="${AUTOBAHN_BRIDGE_PYTHON:-.build/test-peers/bin/python3}"
    [[ -x "$bridge_python" ]] || bridge_python=python3
    "$bridge_python" -c 'import h2' 2>/dev/null \
        || { echo "gateway.sh: $bridge_python has no h2 package (scripts/provision-test-peers python)" >&2; exit 2; }
    url="ws://127.0.0.1:$bridge_port/echo"
fi

"$wsgate" echo --port "$echo_port" >"$work/echo.log" 2>&1 &
pids+=($!)
"$wsgate" run -c "$work/gateway.yaml" >"$work/gateway.log" 2>&1 &
pids+=($!)
if [[ -n "$bridge_port" ]]; then
    "$bridge_python" tools/autobahn/h2bridge.py --listen "$bridge_port" --connect "$gateway_port" --ca "$work/cert.pem" \
        --connections "${AUTOBAHN_H2_CONNECTIONS:-1}" >"$work/bridge.log" 2>&1 &
    bridge_pid=$!
    pids+=("$bridge_pid")
fi

# All listening (bounded: 20 s), or the logs and a setup error.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
all_listening() { listening "$echo_port" && listening "$gateway_port" && { [[ -z "$bridge_port" ]] || listening "$bridge_port"; }; }
for _ in $(seq 100); do
    all_listening && break
    sleep 0.2
done
if ! all_listening; then
    echo "gateway.sh: wsgate echo (:$echo_port), the gateway (:$gateway_port) or the bridge (:${bridge_port:-none}) is not listening" >&2
    tail -n 20 "$work/echo.log" "$work/gateway.log" "$work"/bridge.log >&2 2>/dev/null
    exit 2
fi

# The h2 modes split the case patterns over AUTOBAHN_H2_SHARDS wstest processes (default 2; patterns dealt
# in turn) that run at once through the one bridge: their streams overlap on the shared HTTP/2 connection.
shards=1
[[ -z "$bridge_port" ]] || shards="${AUTOBAHN_H2_SHARDS:-2}"
IFS=, read -ra patterns <<<"$cases"
((shards <= ${#patterns[@]})) || shards=${#patterns[@]}
start=$(date +%s)
shard_pids=()
for ((k = 0; k < shards; k++)); do
    shard_cases=""
    for ((i = k; i < ${#patterns[@]}; i += shards)); do shard_cases+="${shard_cases:+,}${patterns[i]}"; done
    out="$AUTOBAHN_OUT" agent="$AUTOBAHN_AGENT"
    ((shards == 1)) || { out="$AUTOBAHN_OUT/shard-$k" agent="$AUTOBAHN_AGENT-$k"; }
    (
        status=0
        AUTOBAHN_OUT="$out" AUTOBAHN_AGENT="$agent" tools/autobahn/run.sh "$url" "$shard_cases" >"$work/summary-$k" || status=$?
        echo "$status" >"$work/status-$k"
    ) &
    shard_pids+=($!)
done
for pid in "${shard_pids[@]}"; do wait "$pid" || true; done
wstest_seconds=$(($(date +%s) - start))
for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "gateway.sh: a wsgate process or the bridge died during the run" >&2; tail -n 20 "$work/gateway.log" "$work"/bridge.log >&2 2>/dev/null; exit 1; }
done
if [[ -n "$bridge_port" ]]; then
    # The bridge's count line (at SIGTERM) and anything it logged (GOAWAY, resets by timeout, errors).
    kill -TERM "$bridge_pid"
    wait "$bridge_pid" || true
    grep -v "^h2bridge: listening" "$work/bridge.log" | tail -n 20 || true
fi

# Each summary line (summarize.py): "autobahn[AGENT]: OK=n NON-STRICT=n INFORMATIONAL=n UNIMPLEMENTED=n
# FAILED=n total=n [MISSING=n] time=ns | FAILED: … [| close-issues: …] [| other: …]"; the totals add up.
fail() {
    echo "gateway.sh: $mode: $1; the logs' last lines:" >&2
    tail -n 20 "$work/gateway.log" "$work"/bridge.log >&2 2>/dev/null
    exit 1
}
total=0
for ((k = 0; k < shards; k++)); do
    summary=$(cat "$work/summary-$k") status=$(cat "$work/status-$k" 2>/dev/null || echo 2)
    echo "$summary (wall ${SECONDS}s incl. start, ${wstest_seconds}s wstest)"
    count() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$summary"; }
    [[ $status -eq 0 ]] || fail "run.sh exited with $status (reports: $AUTOBAHN_OUT)"
    [[ "$(count FAILED)" == 0 ]] || fail "FAILED cases"
    [[ "$(count NON-STRICT)" == 0 ]] || fail "NON-STRICT cases"
    [[ "$(count UNIMPLEMENTED)" == 0 ]] || fail "UNIMPLEMENTED cases"
    [[ "$summary" != *MISSING=* && "$summary" != *OTHER=* && "$summary" != *close-issues* && "$summary" != *"| other:"* ]] \
        || fail "missing cases, unknown verdicts or close issues"
    total=$((total + $(count total)))
done
[[ "$total" == "$expected" ]] || fail "$total cases, expected $expected"
exit 0
