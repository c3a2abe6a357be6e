#!/usr/bin/env bash
# loops-ab.sh WSGATE [WSGATE_B] — the anchors and wsgate at the same event-loop count, in one interleaved run:
# nginx (`worker_processes N`), HAProxy (`nbthread N`), wsgate (`workers: N`) and, when FLOOR is set, the
# bare SwiftNIO relay of shared/bench (`THREADS=N`, built by nio-floor-build.sh; ws scenarios only).
# shared/bench fixes nginx at `auto` (2 workers here) and HAProxy at its default (one thread per CPU);
# this script writes their configs from shared/bench's with only the loop count and the ports changed.
# Every proxy, wsgate included, is started fresh for each run and stopped after it. For each repetition
# the loop counts alternate in order (1 2, then 2 1, ...) and the proxies rotate, so slow drift of a
# shared machine spreads over all of them. Each JSON line (shared/bench's wsload fields: proxy CPU per
# message or per 1k connections, p50/p99, other_cpu_pct, ...) gets proxy, loops, scenario, rep, load1
# (/proc/loadavg at the start of the run) and threads (the loop threads or worker processes counted in
# the running proxy, a check that the setting took). A second binary WSGATE_B runs as the proxy "wsgate-b"
# (an A/B of two builds in the same run). A markdown summary with medians, ranges and
# same-repetition ratios to nginx goes to OUT/summary.md.
# Own ports 19460-19469 and work directory, so it never collides with compare.sh (189xx) of others:
#   upstream 19460; nginx ws 19461 wss 19462; haproxy 19463/19464; wsgate 19465/19466; floor 19467;
#   wsgate-b 19468/19469.
# Needs shared/bench's setup (`bash /work/shared/bench/setup.sh`: wsload, wsecho and the certificate
# in /tmp/bench-work).
# Env: LOOPS ("1 2"), REPS (3), SCEN ("rr-32"; any shared/bench scenario: wss-connect, connect, ...),
#      PROXIES ("nginx haproxy wsgate", plus "floor" when FLOOR is set), FLOOR (nioproxy binary),
#      DUR (4), WARM (1), OUT (/tmp/loops-ab-<time>), BENCH (/work/shared/bench).
set -uo pipefail
[[ $# -ge 1 && -x $1 ]] || { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
WSGATE=$(readlink -f "$1")
WSGATE_B=${2:+$(readlink -f "$2")}
B=${BENCH:-/work/shared/bench}
WANT_PROXIES=${PROXIES:-}
source "$B/lib.sh"   # scenario_args, is_tls, port_open, wait_port; WORK/BIN = /tmp/bench-work(/bin)
source "$(dirname "${BASH_SOURCE[0]}")/proxy-run.sh"   # start_upstream, stop_proxy, stop_all; PX, UP_PID
OUT=${OUT:-/tmp/loops-ab-$(date -u +%Y%m%dT%H%M%SZ)}
LOOPS=${LOOPS:-"1 2"}
REPS=${REPS:-3}
SCEN=${SCEN:-rr-32}
FLOOR=${FLOOR:-}
PROXIES=${WANT_PROXIES:-"nginx haproxy wsgate${WSGATE_B:+ wsgate-b}${FLOOR:+ floor}"}
for p in $PROXIES; do
    case $p in nginx | haproxy | wsgate) ;; wsgate-b) [[ -x $WSGATE_B ]] || { echo "wsgate-b needs a second binary" >&2; exit 2; } ;; floor) [[ -x $FLOOR ]] || { echo "floor needs FLOOR=<nioproxy binary>" >&2; exit 2; } ;; *) echo "unknown proxy $p" >&2; exit 2 ;; esac
done
UP=19460
mkdir -p "$OUT"
RESULTS=$OUT/runs.jsonl
ulimit -n "$(ulimit -Hn)"
[[ -x $BIN/wsload && -x $BIN/wsecho && -s $WORK/tls/cert.pem ]] || bash "$B/setup.sh" --build || exit 1

port_of() { # proxy tls(0/1)
    case "$1:$2" in
    nginx:0) echo 19461 ;; nginx:1) echo 19462 ;; haproxy:0) echo 19463 ;; haproxy:1) echo 19464 ;;
    wsgate:0) echo 19465 ;; wsgate:1) echo 19466 ;; floor:0) echo 19467 ;; wsgate-b:0) echo 19468 ;; wsgate-b:1) echo 19469 ;;
    *) return 1 ;;
    esac
}

# The configs, one per loop count: shared/bench's with the loop count and the ports changed.
for n in $LOOPS; do
    d=$OUT/nginx-$n
    mkdir -p "$d"
    sed -e "s/^worker_processes auto;/worker_processes $n;/" \
        -e "s#/tmp/bench-work/nginx#$d#g" \
        -e "s/127.0.0.1:18901;/127.0.0.1:$(port_of nginx 0);/" -e "s/127.0.0.1:18911 ssl;/127.0.0.1:$(port_of nginx 1) ssl;/" \
        -e "s/server 127.0.0.1:18900;/server 127.0.0.1:$UP;/" "$B/conf/nginx.conf" >"$d/nginx.conf"
    grep -q "^worker_processes $n;" "$d/nginx.conf" || { echo "nginx config: worker_processes not set" >&2; exit 1; }
    sed -e "s/^global$/global\n    nbthread $n/" \
        -e "s/bind 127.0.0.1:18902$/bind 127.0.0.1:$(port_of haproxy 0)/" -e "s/bind 127.0.0.1:18912 ssl/bind 127.0.0.1:$(port_of haproxy 1) ssl/" \
        -e "s/server echo 127.0.0.1:18900/server echo 127.0.0.1:$UP/" "$B/conf/haproxy.cfg" >"$OUT/haproxy-$n.cfg"
    grep -q "nbthread $n" "$OUT/haproxy-$n.cfg" || { echo "haproxy config: nbthread not set" >&2; exit 1; }
    for g in wsgate wsgate-b; do
        cat >"$OUT/$g-$n.yaml" <<YAML
workers: $n
listeners:
  - { name: bench, address: 127.0.0.1:$(port_of $g 0) }
  - name: benchtls
    address: 127.0.0.1:$(port_of $g 1)
    tls: { certificate: $WORK/tls/cert.pem, key: $WORK/tls/key.pem }
routes:
  - { path: /, upstreams: ["ws://127.0.0.1:$UP"] }
limits: { max_frame: 16MiB, max_message: 16MiB, max_fragments: 100000 }
access_log: off
admin: { address: off }
YAML
    done
done

# The upstream: our own wsecho on $UP.
start_upstream $UP "$OUT/wsecho.log" || exit 1
trap stop_all EXIT
trap 'exit 130' INT TERM

start_proxy() { # proxy loops tls
    local p=$1 n=$2
    case $p in
    nginx) nginx -p "$OUT/nginx-$n/" -c "$OUT/nginx-$n/nginx.conf" -e "$OUT/nginx-$n/error.log" </dev/null >>"$OUT/nginx.log" 2>&1 & ;;
    haproxy) haproxy -f "$OUT/haproxy-$n.cfg" -db </dev/null >>"$OUT/haproxy.log" 2>&1 & ;;
    wsgate) "$WSGATE" run -c "$OUT/wsgate-$n.yaml" </dev/null >>"$OUT/wsgate.log" 2>&1 & ;;
    wsgate-b) "$WSGATE_B" run -c "$OUT/wsgate-b-$n.yaml" </dev/null >>"$OUT/wsgate-b.log" 2>&1 & ;;
    floor) THREADS=$n PORT=$(port_of floor 0) UPSTREAM_PORT=$UP "$FLOOR" </dev/null >>"$OUT/floor.log" 2>&1 & ;;
    esac
    PX=$!
    wait_port "$(port_of "$p" "$3")" 15 || { echo "$p ($n) did not open its port; see $OUT/$p.log" >&2; stop_proxy; return 1; }
    sleep 0.3   # nginx's workers, HAProxy's threads
}

# Loop threads (NIO-ELT-*), HAProxy threads, or nginx worker processes of the running proxy.
threads_of() {
    case $1 in
    nginx) pgrep -P "$PX" | wc -l ;;
    haproxy) ls "/proc/$PX/task" | wc -l ;;
    wsgate | wsgate-b | floor) cat /proc/"$PX"/task/*/comm 2>/dev/null | grep -c '^NIO-ELT' ;;
    esac
}

applies() { # proxy scenario
    if is_tls "$2"; then [[ $1 != floor ]]; else true; fi
}

t0=$(date +%s)
echo "loops-ab: $PROXIES x loops $LOOPS x $SCEN x $REPS -> $OUT" >&2
set -- $PROXIES
np=$#
for ((rep = 1; rep <= REPS; rep++)); do
    order=$LOOPS
    ((rep % 2 == 0)) && order=$(echo $LOOPS | tr ' ' '\n' | tac | tr '\n' ' ')
    for n in $order; do
        for s in $SCEN; do
            args=$(scenario_args "$s")
            [[ -n $args ]] || { echo "unknown scenario $s" >&2; exit 2; }
            tls=0; is_tls "$s" && tls=1
            for ((i = 0; i < np; i++)); do
                k=$(((i + rep - 1) % np + 1))
                p=${!k}
                applies "$p" "$s" || continue
                load1=$(cut -d' ' -f1 /proc/loadavg)
                start_proxy "$p" "$n" "$tls" || continue
                th=$(threads_of "$p")
                out=$(timeout -k 5 $((150 + ${DUR:-4} + ${WARM:-1})) "$BIN/wsload" -H 127.0.0.1 -p "$(port_of "$p" "$tls")" \
                    $args -d "${DUR:-4}" -W "${WARM:-1}" -n 100000000 -C "$PX" -U "$UP_PID")
                rc=$?
                stop_proxy
                [[ -n $out ]] || out="{\"errors\":1,\"first_error\":\"wsload exited $rc without output\"}"
                line="{\"proxy\":\"$p\",\"loops\":$n,\"threads\":$th,\"scenario\":\"$s\",\"rep\":$rep,\"time\":\"$(date -u +%FT%TZ)\",\"load1\":$load1,\"rc\":$rc,${out#\{}"
                echo "$line" >>"$RESULTS"
                python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("%-8s loops %d (%s) %-12s rep %d  load %.1f other %s%%  cpu/msg %s  cpu/kconn %s  p50 %s p99 %s  errors %s" % (d["proxy"], d["loops"], d["threads"], d["scenario"], d["rep"], d["load1"], d.get("other_cpu_pct"), d.get("proxy_cpu_s_per_mmsg","-"), d.get("proxy_cpu_ms_per_kconn","-"), d.get("lat_p50_us"), d.get("lat_p99_us"), d.get("errors")))' "$line" >&2
            done
        done
    done
    echo "loops-ab: repetition $rep done after $(($(date +%s) - t0)) s" >&2
done
python3 "$(dirname "${BASH_SOURCE[0]}")/loops-summary.py" "$RESULTS" | tee "$OUT/summary.md"
