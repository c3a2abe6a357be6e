#!/usr/bin/env bash
# tap-ab.sh BINARY — the frame tap's overhead (issue #14): one wsgate process with its admin listener,
# measured through shared/bench (compare.sh, nginx in the same run) with no tap attached and with one
# tap attached (`GET /tap?payload=none`, read by curl into /dev/null), alternating off/on per
# repetition so that the machine's drift spreads over both. Reports go to /tmp/bench-report-tap-off.md
# and /tmp/bench-report-tap-on.md. Read the CPU-per-message figures as ratios to nginx of the same run.
# Env: SCEN (stream-32), REPS (3), BENCH (/work/shared/bench), PORT (18904), ADMIN_PORT (18994).
set -u
[[ $# -eq 1 ]] || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
B=${BENCH:-/work/shared/bench}
PORT=${PORT:-18904}
ADMIN_PORT=${ADMIN_PORT:-18994}
CFG=$(mktemp /tmp/tap-ab.XXXXXX.yaml)
cat >"$CFG" <<YAML
listeners:
  - name: bench
    address: 127.0.0.1:$PORT
routes:
  - path: /
    upstreams: ["ws://127.0.0.1:18900"]
limits: { max_frame: 16MiB, max_message: 16MiB, max_fragments: 100000 }
access_log: off
admin: { address: 127.0.0.1:$ADMIN_PORT }
YAML
RESULTS_DIR=/tmp/bench-work/results
: >/tmp/tap-ab-off.jsonl
: >/tmp/tap-ab-on.jsonl
cd "$B"
bash upstream.sh start
ulimit -n "$(ulimit -Hn)"
"$1" run -c "$CFG" >/tmp/tap-ab-gateway.out 2>&1 &
pid=$!
sleep 2
one() {  # one repetition of every scenario, nginx and the gateway, its JSON lines appended to $1
    ONLY_PROXIES="nginx custom" ONLY_SCENARIOS="${SCEN:-stream-32}" CUSTOM_PORT=$PORT CUSTOM_PID=$pid BUDGET_S=300 \
        bash compare.sh 1 >/dev/null 2>>/tmp/tap-ab.err
    cat "$(ls -t "$RESULTS_DIR"/compare-*.jsonl | head -1)" >>"$1"
}
tap_on() {
    curl -sN "http://127.0.0.1:$ADMIN_PORT/tap?payload=none" >/dev/null &
    tap=$!
    sleep 1
}
tap_off() { kill "$tap"; wait "$tap" 2>/dev/null; sleep 1; }
for ((rep = 1; rep <= ${REPS:-3}; rep++)); do
    if ((rep % 2)); then
        one /tmp/tap-ab-off.jsonl; tap_on; one /tmp/tap-ab-on.jsonl; tap_off
    else
        tap_on; one /tmp/tap-ab-on.jsonl; tap_off; one /tmp/tap-ab-off.jsonl
    fi
done
kill "$pid"
wait "$pid"
bash upstream.sh stop
rm -f "$CFG"
for v in off on; do
    python3 report.py "/tmp/tap-ab-$v.jsonl" >"/tmp/bench-report-tap-$v.md"
    echo "tap $v: /tmp/bench-report-tap-$v.md" >&2
done
