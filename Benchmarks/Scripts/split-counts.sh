#!/usr/bin/env bash
# split-counts.sh CORE_BIN NIO_BIN FLOOR_BIN — where a relayed message's CPU goes, user space against kernel,
# and how many system calls it takes, for nginx (shared/bench's config, 2 workers), the epoll prototype
# (wsgate-core, 2 loops, batched parsing), wsgate on NIO (2 loops) and the bare SwiftNIO relay (the floor,
# 2 threads). Each proxy is started fresh, warmed up, then carries two runs of N1 and N2 messages
# (`wsload -n`); per message = (counts after N2 - counts after N1) / (N2 - N1), so set-up cancels out.
# User and system CPU come from /proc/PID/stat (the proxy and its children: nginx's workers), the system
# calls from perf's raw_syscalls and syscalls tracepoints on the same processes. Needs root, perf and
# shared/bench's setup (/tmp/bench-work/bin). Own ports 19470-19475.
# Env: SCEN ("stream-32"; or rr-32), N ("200000 1200000" for stream-32, "20000 120000" for rr-32),
#      PROXIES ("nginx core nio floor"), REPS (2), OUT (/tmp/split-counts). Output: OUT/summary.md.
set -uo pipefail
[[ $# -eq 3 ]] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
CORE=$(readlink -f "$1") NIO=$(readlink -f "$2") FLOOR=$(readlink -f "$3")
B=${BENCH:-/work/shared/bench}
WANT_PROXIES=${PROXIES:-"nginx core nio floor"}   # lib.sh sets its own PROXIES
source "$B/lib.sh"   # wait_port, port_open; BIN = /tmp/bench-work/bin
source "$(dirname "${BASH_SOURCE[0]}")/proxy-run.sh"   # start_upstream, stop_proxy, stop_all; PX, UP_PID
SCEN=${SCEN:-stream-32}
case $SCEN in
stream-32) ARGS="-m stream -c 50 -w 32 -s 32 -t"; N=${N:-"200000 1200000"} ;;
rr-32) ARGS="-m rr -c 50 -s 32 -t"; N=${N:-"20000 120000"} ;;
*) echo "SCEN: stream-32 or rr-32" >&2; exit 2 ;;
esac
PROXIES=$WANT_PROXIES
for p in $PROXIES; do case $p in nginx | core | nio | floor) ;; *) echo "unknown proxy $p" >&2; exit 2 ;; esac; done
REPS=${REPS:-2}
OUT=${OUT:-/tmp/split-counts}
UP=19470
mkdir -p "$OUT"
: >"$OUT/raw.txt"
ulimit -n "$(ulimit -Hn)"
HZ=$(getconf CLK_TCK)
EVENTS=raw_syscalls:sys_enter,page-faults,context-switches,cpu-migrations
for s in read write readv writev recvfrom sendto recvmsg sendmsg epoll_wait epoll_pwait epoll_ctl; do
    EVENTS+=",syscalls:sys_enter_$s"
done

port_of() { case $1 in nginx) echo 19471 ;; core) echo 19472 ;; nio) echo 19473 ;; floor) echo 19474 ;; esac; }
mkdir -p "$OUT/nginx"
sed -e "s#/tmp/bench-work/nginx#$OUT/nginx#g" -e "s/127.0.0.1:18901;/127.0.0.1:$(port_of nginx);/" \
    -e "s/listen 127.0.0.1:18911 ssl;/listen 127.0.0.1:19475 ssl;/" \
    -e "s/server 127.0.0.1:18900;/server 127.0.0.1:$UP;/" "$B/conf/nginx.conf" >"$OUT/nginx/nginx.conf"
cat >"$OUT/nio.yaml" <<YAML
workers: 2
listeners:
  - { name: bench, address: 127.0.0.1:$(port_of nio) }
routes:
  - { path: /, upstreams: ["ws://127.0.0.1:$UP"] }
limits: { max_frame: 16MiB, max_message: 16MiB, max_fragments: 100000 }
access_log: off
admin: { address: off }
YAML

start_upstream $UP "$OUT/wsecho.log" || exit 1
trap stop_all EXIT
start_proxy() {
    case $1 in
    nginx) nginx -p "$OUT/nginx/" -c "$OUT/nginx/nginx.conf" -e "$OUT/nginx/error.log" </dev/null >>"$OUT/nginx.log" 2>&1 & ;;
    core) "$CORE" --listen 127.0.0.1:$(port_of core) --upstream 127.0.0.1:$UP --loops 2 </dev/null >>"$OUT/core.log" 2>&1 & ;;
    nio) "$NIO" run -c "$OUT/nio.yaml" </dev/null >>"$OUT/nio.log" 2>&1 & ;;
    floor) THREADS=2 PORT=$(port_of floor) UPSTREAM_PORT=$UP "$FLOOR" </dev/null >>"$OUT/floor.log" 2>&1 & ;;
    esac
    PX=$!
    wait_port "$(port_of "$1")" 15 || { echo "$1 did not open its port" >&2; stop_proxy; return 1; }
    sleep 0.3
}
pids_of() { if [[ $1 == nginx ]]; then pgrep -P "$PX" | paste -sd,; else echo "$PX"; fi; }
cpu_ticks() { # user and system ticks of the comma-separated PIDs
    local u=0 s=0 p f
    for p in ${1//,/ }; do
        read -ra f <"/proc/$p/stat"
        u=$((u + f[13])) s=$((s + f[14]))
    done
    echo "$u $s"
}

for rep in $(seq "$REPS"); do
    for p in $PROXIES; do
        start_proxy "$p" || continue
        "$BIN/wsload" -p "$(port_of "$p")" $ARGS -W 0 -d 60 -n 20000 >/dev/null 2>&1   # warm-up
        pids=$(pids_of "$p")
        for n in $N; do
            read -r u0 s0 < <(cpu_ticks "$pids")
            perf stat -x, -e "$EVENTS" -p "$pids" -o "$OUT/stat-$p-$n.csv" &
            pp=$!
            sleep 0.5
            "$BIN/wsload" -p "$(port_of "$p")" $ARGS -W 0 -d 60 -n "$n" >"$OUT/load-$p-$n.json" 2>/dev/null
            sleep 0.2
            kill -INT $pp
            wait $pp
            read -r u1 s1 < <(cpu_ticks "$pids")
            grep -q '"errors":0,' "$OUT/load-$p-$n.json" || { echo "$p: wsload failed: $(cat "$OUT/load-$p-$n.json")" >&2; exit 1; }
            python3 - "$OUT/stat-$p-$n.csv" "$p" "$n" "$rep" $((u1 - u0)) $((s1 - s0)) "$HZ" >>"$OUT/raw.txt" <<'PY'
import sys
counts = {}
for line in open(sys.argv[1]):
    f = line.strip().split(",")
    if len(f) > 2 and f[0].isdigit():
        name = f[2].split(":")[-1]
        name = "syscalls" if name == "sys_enter" else name.replace("sys_enter_", "")
        counts[name] = counts.get(name, 0) + int(f[0])
hz = int(sys.argv[7])
counts["user_us"] = int(sys.argv[5]) * 1e6 / hz
counts["sys_us"] = int(sys.argv[6]) * 1e6 / hz
print(sys.argv[2], sys.argv[3], sys.argv[4], " ".join(f"{k}={v:g}" for k, v in sorted(counts.items())))
PY
        done
        stop_proxy
        echo "split-counts: $p rep $rep done" >&2
    done
done

python3 - "$OUT/raw.txt" "$N" >"$OUT/summary.md" <<'PY'
import collections, statistics, sys
n1, n2 = (int(x) for x in sys.argv[2].split())
runs = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    proxy, n, rep, *kv = line.split()
    runs[(proxy, rep)][int(n)] = {k: float(v) for k, v in (x.split("=") for x in kv)}
per = collections.defaultdict(lambda: collections.defaultdict(list))
for (proxy, rep), by_n in runs.items():
    if n1 in by_n and n2 in by_n:
        for key in by_n[n2]:
            per[proxy][key].append((by_n[n2][key] - by_n[n1].get(key, 0)) / (n2 - n1))
keys = ["user_us", "sys_us", "page-faults", "context-switches", "cpu-migrations", "syscalls", "read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg",
        "epoll_wait", "epoll_pwait", "epoll_ctl"]
proxies = [p for p in ("nginx", "core", "nio", "floor") if p in per]
print("| per message | " + " | ".join(proxies) + " |")
print("|---|" + "---|" * len(proxies))
for key in keys:
    cells = []
    for p in proxies:
        values = per[p].get(key, [])
        cells.append(f"{statistics.median(values):.3f}" if values else "–")
    if any(c not in ("0.000", "–") for c in cells):
        print(f"| {key} | " + " | ".join(cells) + " |")
PY
cat "$OUT/summary.md"
