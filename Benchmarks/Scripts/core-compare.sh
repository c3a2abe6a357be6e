#!/usr/bin/env bash
# core-compare.sh CORE_BIN NIO_BIN — the core15 comparison (BENCHMARKS.md, "core15: an epoll data-plane
# prototype"): nginx, HAProxy, the NIO transport (wsgate run) and the prototype (wsgate-core, 2 loops), and
# the prototype with 1 loop on rr-32, through shared/bench's run.sh, interleaved per repetition and
# scenario, all in one run; then idle-1k on fresh processes of each. Every result line gets a "label";
# the summary (medians) goes to stdout, the raw lines to $OUT.
# Env: REPS (3), SCEN ("stream-32 rr-32 connect"), BENCH (/work/shared/bench), OUT (/tmp/core15-runs.jsonl).
set -u
[[ $# -eq 2 ]] || { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
CORE=$1
NIO=$2
B=${BENCH:-/work/shared/bench}
OUT=${OUT:-/tmp/core15-runs.jsonl}
REPS=${REPS:-3}
SCEN=${SCEN:-stream-32 rr-32 connect}
NIO_PORT=18971 CORE_PORT=18972 CORE1_PORT=18973
CFG=$(mktemp /tmp/core15-nio.XXXXXX.yaml)
cfg() {
    cat >"$CFG" <<YAML
listeners:
  - name: bench
    address: 127.0.0.1:$1
routes:
  - path: /
    upstreams: ["ws://127.0.0.1:18900"]
limits: { max_frame: 16MiB, max_message: 16MiB, max_fragments: 100000 }
access_log: off
admin: { address: off }
YAML
}
ulimit -n "$(ulimit -Hn)"
PIDS=()
start() { # label port -> pid in $PID
    case "$1" in
    nio) cfg "$2"; "$NIO" run -c "$CFG" >"/tmp/core15-$1.out" 2>&1 & ;;
    core) "$CORE" --listen "127.0.0.1:$2" --upstream 127.0.0.1:18900 --loops 2 >"/tmp/core15-$1.out" 2>&1 & ;;
    core1) "$CORE" --listen "127.0.0.1:$2" --upstream 127.0.0.1:18900 --loops 1 >"/tmp/core15-$1.out" 2>&1 & ;;
    esac
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && break; sleep 0.2; done
}
stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
cleanup() { for p in "${PIDS[@]}"; do stop "$p"; done; rm -f "$CFG"; }
trap cleanup EXIT
run() { # label scenario rep [port pid]
    local line
    if [[ $1 == nginx || $1 == haproxy ]]; then
        line=$(bash "$B/run.sh" "$1" "$2" "$3" 2>/dev/null)
    else
        line=$(CUSTOM_PORT=$4 CUSTOM_PID=$5 bash "$B/run.sh" custom "$2" "$3" 2>/dev/null)
    fi
    [[ -n "$line" ]] && echo "{\"label\":\"$1\",${line#\{}" >>"$OUT"
}
cd "$B" || exit 1
bash upstream.sh start
start nio $NIO_PORT; NIO_PID=$PID
start core $CORE_PORT; CORE_PID=$PID
start core1 $CORE1_PORT; CORE1_PID=$PID
for rep in $(seq "$REPS"); do
    for scen in $SCEN; do
        run nginx "$scen" "$rep"
        run haproxy "$scen" "$rep"
        run nio "$scen" "$rep" $NIO_PORT $NIO_PID
        run core "$scen" "$rep" $CORE_PORT $CORE_PID
        [[ $scen == rr-32 ]] && run core1 "$scen" "$rep" $CORE1_PORT $CORE1_PID
    done
done
stop $NIO_PID; stop $CORE_PID; stop $CORE1_PID
# Idle memory on fresh processes (nginx and HAProxy are started fresh by run.sh anyway).
for rep in $(seq "$REPS"); do
    run nginx idle-1k "$rep"
    run haproxy idle-1k "$rep"
    start nio 18974; run nio idle-1k "$rep" 18974 $PID; stop $PID
    start core 18975; run core idle-1k "$rep" 18975 $PID; stop $PID
done
bash upstream.sh stop
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
labels = ["nginx", "haproxy", "nio", "core", "core1"]
def med(label, scen, key):
    v = [r[key] for r in rows if r["label"] == label and r["scenario"] == scen and key in r and not r.get("errors")]
    return (statistics.median(v), min(v), max(v), len(v)) if v else None
def cell(x, fmt):
    return "–" if x is None else (fmt % x[0]) + f" ({fmt % x[1]}–{fmt % x[2]})"
metrics = [("stream-32", "proxy_cpu_s_per_mmsg", "stream-32, proxy CPU µs/msg", "%.3g"),
           ("rr-32", "proxy_cpu_s_per_mmsg", "rr-32, proxy CPU µs/msg", "%.3g"),
           ("rr-32", "lat_p99_us", "rr-32 p99 µs", "%.0f"),
           ("rr-32", "lat_p50_us", "rr-32 p50 µs", "%.0f"),
           ("connect", "proxy_cpu_ms_per_kconn", "connect, proxy CPU ms/1k", "%.3g"),
           ("stream-32", "msgs_per_s", "stream-32 msgs/s", "%.0f"),
           ("rr-32", "msgs_per_s", "rr-32 msgs/s", "%.0f"),
           ("connect", "connects_per_s", "connect conn/s", "%.0f"),
           ("idle-1k", "kib_per_conn", "idle-1k KiB/conn", "%.3g")]
print("| row | " + " | ".join(labels) + " |")
print("|---|" + "---|" * len(labels))
for scen, key, name, fmt in metrics:
    print(f"| {name} | " + " | ".join(cell(med(l, scen, key), fmt) for l in labels) + " |")
errs = [(r["label"], r["scenario"], r.get("errors"), r.get("first_error")) for r in rows if r.get("errors")]
other = [r.get("other_cpu_pct", 0) for r in rows]
print(f"\nruns: {len(rows)}, with errors: {errs}; other_cpu_pct median {statistics.median(other):.0f} %")
PY
