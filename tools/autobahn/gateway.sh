#!/usr/bin/env bash
# Autobahn|Testsuite through the gateway, as `.ci/run` runs it (README, "Compliance"):
#
#   gateway.sh WSGATE_BINARY plain|deflate CASES EXPECTED_COUNT
#
# Starts `wsgate echo` as the upstream and `wsgate run` as the gateway in front of it (config/autobahn.yaml
# for `plain`; config/autobahn-deflate.yaml for `deflate`: the gateway negotiates permessage-deflate with the
# testsuite, the echo speaks none), runs the cases (run.sh's patterns, e.g. '1.*,2.*' or '12.1.*') through
# the gateway, stops both, and asserts the summary line: FAILED=0, NON-STRICT=0, UNIMPLEMENTED=0, no
# OTHER verdict, no close issue, nothing MISSING, and exactly EXPECTED_COUNT cases (INFORMATIONAL is
# allowed: 7.1.6, 7.13.1 and 7.13.2 are informational for every server).
#
# Environment (optional): AUTOBAHN_GATEWAY_PORT and AUTOBAHN_ECHO_PORT (default 19001/19002 for plain,
# 19201/19202 for deflate: the configs' ports, rewritten into a copy of the config when set),
# AUTOBAHN_HOME (the wstest venv, default .build/autobahn-venv), AUTOBAHN_OUT (reports, default
# .build/autobahn-reports/MODE), AUTOBAHN_TIMEOUT (default 600 s).
# Exit status: 0 when every assertion holds, 1 otherwise, 2 on a setup error.
set -euo pipefail
cd "$(dirname "$0")/../.."

wsgate="${1:?usage: gateway.sh WSGATE_BINARY plain|deflate CASES EXPECTED_COUNT}"
mode="${2:?mode}"
cases="${3:?cases}"
expected="${4:?expected count}"
case "$mode" in
    plain) config=config/autobahn.yaml default_gateway=19001 default_echo=19002 ;;
    deflate) config=config/autobahn-deflate.yaml default_gateway=19201 default_echo=19202 ;;
    *) echo "gateway.sh: mode must be plain or deflate" >&2; exit 2 ;;
esac
gateway_port="${AUTOBAHN_GATEWAY_PORT:-$default_gateway}"
echo_port="${AUTOBAHN_ECHO_PORT:-$default_echo}"
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
sed -e "s/127\.0\.0\.1:$default_gateway\b/127.0.0.1:$gateway_port/" -e "s#ws://127\.0\.0\.1:$default_echo\b#ws://127.0.0.1:$echo_port#" \
    "$config" >"$work/gateway.yaml"
grep -q "127.0.0.1:$gateway_port" "$work/gateway.yaml" && grep -q "ws://127.0.0.1:$echo_port" "$work/gateway.yaml" \
    || { echo "gateway.sh: could not set the ports in a copy of $config" >&2; exit 2; }

"$wsgate" echo --port "$echo_port" >"$work/echo.log" 2>&1 &
pids+=($!)
"$wsgate" run -c "$work/gateway.yaml" >"$work/gateway.log" 2>&1 &
pids+=($!)

# Both listening (bounded: 20 s), or the logs and a setup error.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 100); do
    listening "$echo_port" && listening "$gateway_port" && break
    sleep 0.2
done
if ! listening "$echo_port" || ! listening "$gateway_port"; then
    echo "gateway.sh: wsgate echo (:$echo_port) or the gateway (:$gateway_port) is not listening" >&2
    tail -n 20 "$work/echo.log" "$work/gateway.log" >&2
    exit 2
fi

start=$(date +%s)
status=0
summary=$(tools/autobahn/run.sh "ws://127.0.0.1:$gateway_port/echo" "$cases") || status=$?
echo "$summary (wall ${SECONDS}s incl. start, $(($(date +%s) - start))s wstest)"
for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "gateway.sh: a wsgate process died during the run" >&2; tail -n 20 "$work/gateway.log" >&2; exit 1; }
done

# The summary line (summarize.py): "autobahn[AGENT]: OK=n NON-STRICT=n INFORMATIONAL=n UNIMPLEMENTED=n
# FAILED=n total=n [MISSING=n] time=ns | FAILED: … [| close-issues: …] [| other: …]".
count() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$summary"; }
fail() { echo "gateway.sh: $mode: $1" >&2; exit 1; }
[[ $status -eq 0 ]] || fail "run.sh exited with $status (reports: $AUTOBAHN_OUT)"
[[ "$(count FAILED)" == 0 ]] || fail "FAILED cases"
[[ "$(count NON-STRICT)" == 0 ]] || fail "NON-STRICT cases"
[[ "$(count UNIMPLEMENTED)" == 0 ]] || fail "UNIMPLEMENTED cases"
[[ "$(count total)" == "$expected" ]] || fail "$(count total) cases, expected $expected"
[[ "$summary" != *MISSING=* && "$summary" != *OTHER=* && "$summary" != *close-issues* && "$summary" != *"| other:"* ]] \
    || fail "missing cases, unknown verdicts or close issues"
exit 0
