#!/usr/bin/env bash
# gateway-ab.sh BINARY... — same-run wall-clock comparison of wsgate binaries with nginx through
# shared/bench (compare.sh): for each binary, in turn, a fresh gateway process and `compare.sh REPS`
# with nginx and it, on SCEN (default: rr-32 stream-32 stream-64k connect). Reports go to
# /tmp/bench-report-<name>.md (name: the binary's file name). Read the CPU-per-message figures as
# ratios to nginx of the same run: on a shared machine only those compare across runs.
# Env: SCEN, REPS (3), BENCH (/work/shared/bench), PORT (18904).
set -u
[[ $# -ge 1 ]] || { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
B=${BENCH:-/work/shared/bench}
PORT=${PORT:-18904}
CFG=$(mktemp /tmp/gateway-ab.XXXXXX.yaml)
cat >"$CFG" <<YAML
listeners:
  - name: bench
    address: 127.0.0.1:$PORT
routes:
  - path: /
    upstreams: ["ws://127.0.0.1:18900"]
limits: { max_frame: 16MiB, max_message: 16MiB, max_fragments: 100000 }
access_log: off
admin: { address: off }
YAML
cd "$B"
bash upstream.sh start
ulimit -n "$(ulimit -Hn)"
for bin in "$@"; do
    name=$(basename "$bin")
    "$bin" run -c "$CFG" >"/tmp/bench-$name.out" 2>&1 &
    pid=$!
    sleep 2
    ONLY_PROXIES="nginx custom" ONLY_SCENARIOS="${SCEN:-rr-32 stream-32 stream-64k connect}" \
        CUSTOM_PORT=$PORT CUSTOM_PID=$pid BUDGET_S=600 bash compare.sh "${REPS:-3}" >"/tmp/bench-report-$name.md" 2>"/tmp/bench-$name.err"
    kill "$pid"
    wait "$pid"
    echo "$name: /tmp/bench-report-$name.md" >&2
done
bash upstream.sh stop
rm -f "$CFG"
