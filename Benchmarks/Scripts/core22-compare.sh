#!/usr/bin/env bash
# core22-compare.sh CORE_BIN NIO_BIN — core22's comparisons (BENCHMARKS.md "core22"), all in one run,
# interleaved per repetition and scenario, on a private copy of shared/bench whose ports are 294xx and
# whose work directory is /tmp/core22-bench-work (so it never collides with another engineer's run):
#   ws scenarios:  nginx, NIO (wsgate run), the prototype with batched parsing (core) and per event with
#                  256-byte key batches as in core15 (core-nb), one binary (--batch off --key-batch 256);
#   wss scenarios: nginx, NIO with a TLS listener, the prototype's wss listener (core), and on
#                  wss-stream-64k the same with 64 KiB pool buffers (core-64k, --buffer 65536).
# The summary (medians) goes to stdout, the raw lines to $OUT.
# Env: REPS (3), SCEN ("stream-32 rr-32 wss-connect wss-rr-1k wss-stream-64k"), BENCH (/tmp/core22-bench:
# cp -r shared/bench there, then 189xx -> 294xx and /tmp/bench-work -> /tmp/core22-bench-work in its
# scripts and conf/), OUT (/tmp/core22-runs.jsonl).
set -u
[[ $# -eq 2 ]] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
CORE=$1
NIO=$2
B=${BENCH:-/tmp/core22-bench}
W=/tmp/core22-bench-work
OUT=${OUT:-/tmp/core22-runs.jsonl}
REPS=${REPS:-3}
SCEN=${SCEN:-stream-32 rr-32 wss-connect wss-rr-1k wss-stream-64k}
UP=127.0.0.1:29400
NIO_PORT=29471 NIO_TLS=29481 CORE_PORT=29472 CORE_TLS=29482 CORENB_PORT=29473 CORE64_TLS=29483
CFG=$(mktemp /tmp/core22-nio.XXXXXX.yaml)
cat >"$CFG" <<YAML
listeners:
  - { name: bench, address: 127.0.0.1:$NIO_PORT }
  - name: benchtls
    address: 127.0.0.1:$NIO_TLS
    tls: { certificate: $W/tls/cert.pem, key: $W/tls/key.pem }
routes:
  - { path: /, upstreams: ["ws://$UP"] }
limits: { max_frame: 16MiB, max_message: 16MiB, max_fragments: 100000 }
access_log: off
admin: { address: off }
YAML
ulimit -n "$(ulimit -Hn)"
PIDS=()
wait_open() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.2; done; }
stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
cleanup() { for p in "${PIDS[@]}"; do stop "$p"; done; rm -f "$CFG"; }
trap cleanup EXIT
run() { # label scenario rep [port tls-port pid]
    local line
    if [[ $1 == nginx ]]; then
        line=$(bash "$B/run.sh" nginx "$2" "$3" 2>/dev/null)
    else
        line=$(CUSTOM_PORT=$4 CUSTOM_TLS_PORT=$5 CUSTOM_PID=$6 bash "$B/run.sh" custom "$2" "$3" 2>/dev/null)
    fi
    [[ -n "$line" ]] && echo "{\"label\":\"$1\",${line#\{}" >>"$OUT"
}
cd "$B" || exit 1
bash upstream.sh start
"$NIO" run -c "$CFG" >/tmp/core22-nio.out 2>&1 &
NIO_PID=$!; PIDS+=("$NIO_PID")
"$CORE" --listen 127.0.0.1:$CORE_PORT --upstream $UP --loops 2 >/tmp/core22-core.out 2>&1 &
CORE_PID=$!; PIDS+=("$CORE_PID")
"$CORE" --listen 127.0.0.1:$CORE_TLS --upstream $UP --loops 2 --tls-cert $W/tls/cert.pem --tls-key $W/tls/key.pem \
    >/tmp/core22-coretls.out 2>&1 &
CORETLS_PID=$!; PIDS+=("$CORETLS_PID")
"$CORE" --listen 127.0.0.1:$CORENB_PORT --upstream $UP --loops 2 --batch off --key-batch 256 >/tmp/core22-corenb.out 2>&1 &
CORENB_PID=$!; PIDS+=("$CORENB_PID")
"$CORE" --listen 127.0.0.1:$CORE64_TLS --upstream $UP --loops 2 --tls-cert $W/tls/cert.pem --tls-key $W/tls/key.pem \
    --buffer 65536 >/tmp/core22-core64.out 2>&1 &
CORE64_PID=$!; PIDS+=("$CORE64_PID")
for p in $NIO_PORT $NIO_TLS $CORE_PORT $CORE_TLS $CORENB_PORT $CORE64_TLS; do wait_open $p; done
for rep in $(seq "$REPS"); do
    for scen in $SCEN; do
        run nginx "$scen" "$rep"
        if [[ $scen == wss-* ]]; then
            run nio "$scen" "$rep" $NIO_PORT $NIO_TLS $NIO_PID
            run core "$scen" "$rep" $CORE_PORT $CORE_TLS $CORETLS_PID
            [[ $scen == wss-stream-64k ]] && run core-64k "$scen" "$rep" $CORE_PORT $CORE64_TLS $CORE64_PID
        else
            run nio "$scen" "$rep" $NIO_PORT $NIO_TLS $NIO_PID
            run core "$scen" "$rep" $CORE_PORT $CORE_TLS $CORE_PID
            run core-nb "$scen" "$rep" $CORENB_PORT $CORE_TLS $CORENB_PID
        fi
    done
done
bash upstream.sh stop
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
labels = ["nginx", "nio", "core", "core-nb", "core-64k"]
def med(label, scen, key):
    v = [r[key] for r in rows if r["label"] == label and r["scenario"] == scen and key in r and not r.get("errors")]
    return (statistics.median(v), min(v), max(v), len(v)) if v else None
def cell(x, fmt):
    return "–" if x is None else (fmt % x[0]) + f" ({fmt % x[1]}–{fmt % x[2]})"
metrics = [("stream-32", "proxy_cpu_s_per_mmsg", "stream-32, proxy CPU µs/msg", "%.3g"),
           ("rr-32", "proxy_cpu_s_per_mmsg", "rr-32, proxy CPU µs/msg", "%.3g"),
           ("rr-32", "lat_p99_us", "rr-32 p99 µs", "%.0f"),
           ("wss-connect", "proxy_cpu_ms_per_kconn", "wss-connect, proxy CPU ms/1k", "%.3g"),
           ("wss-rr-1k", "proxy_cpu_s_per_mmsg", "wss-rr-1k, proxy CPU µs/msg", "%.3g"),
           ("wss-rr-1k", "lat_p99_us", "wss-rr-1k p99 µs", "%.0f"),
           ("wss-stream-64k", "proxy_cpu_s_per_mmsg", "wss-stream-64k, proxy CPU µs/msg", "%.3g"),
           ("stream-32", "msgs_per_s", "stream-32 msgs/s", "%.0f"),
           ("wss-connect", "connects_per_s", "wss-connect conn/s", "%.0f")]
print("| row | " + " | ".join(labels) + " | core / nginx |")
print("|---|" + "---|" * (len(labels) + 1))
for scen, key, name, fmt in metrics:
    n, c = med("nginx", scen, key), med("core", scen, key)
    ratio = f"{c[0] / n[0]:.2f}×" if n and c and n[0] else "–"
    print(f"| {name} | " + " | ".join(cell(med(l, scen, key), fmt) for l in labels) + f" | {ratio} |")
errs = [(r["label"], r["scenario"], r.get("errors"), r.get("first_error")) for r in rows if r.get("errors")]
other = [r.get("other_cpu_pct", 0) for r in rows]
print(f"\nruns: {len(rows)}, with errors: {errs}; other_cpu_pct median {statistics.median(other):.0f} %")
PY
