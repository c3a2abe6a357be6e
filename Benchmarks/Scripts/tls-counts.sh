#!/usr/bin/env bash
# tls-counts.sh WSGATE [LABEL] — exact counts per connection of wsgate, nginx and HAProxy on the same
# connect scenario (default wss-connect: TCP connect + full TLS 1.3 handshake + upgrade + close, 8 at
# a time), each with one event loop / worker / thread: OpenSSL calls (uprobes on the system libssl that
# all three use: SSL_do_handshake, SSL_read(_ex), SSL_write(_ex), SSL_new, SSL_shutdown), libc malloc,
# and system calls (tracepoints: read/write/readv/writev/recvmsg/sendmsg/recvfrom/sendto, epoll_wait,
# epoll_ctl, accept4, connect, close, and all system calls). Two runs of N1 and N2 connections per
# proxy; per connection = (count(N2) - count(N1)) / (N2 - N1), so start-up and warm-up cancel out.
# Unlike CPU time these do not move with the machine's load (except epoll_wait and reads, which batch
# more when the process runs late). Needs root, perf, shared/bench's wsload/wsecho and certificate.
# Ports 19460 (upstream) and 19461-19466 as loops-ab.sh (do not run both at once).
# Env: SCEN (wss-connect; or connect), N ("300 900"), PROXIES ("nginx haproxy wsgate"), BENCH;
#      PROFILE=1: also CPU by library (perf record -F 499, 12 s run), µs per connection, in profile.md.
# Output: /tmp/tls-counts/LABEL/summary.md. Probes are created once and left (names wc*); remove with
#   perf probe -d 'probe_libssl:wc*' -d 'probe_libc:wcmalloc'
set -u
[[ $# -ge 1 && -x $1 ]] || { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
WSGATE=$(readlink -f "$1"); LABEL=${2:-$(basename "$WSGATE")}
B=${BENCH:-/work/shared/bench}
WANT_PROXIES=${PROXIES:-nginx haproxy wsgate}
source "$B/lib.sh"
SCEN=${SCEN:-wss-connect}
W=/tmp/tls-counts/$LABEL; mkdir -p "$W"; : >"$W/raw.txt"
UP=19460
SSL=$(ldd "$WSGATE" | awk '/libssl.so/ {print $3}')
LIBC=$(ldd "$WSGATE" | awk '/libc.so.6/ {print $3}')
perf probe -l 2>/dev/null | grep -q 'probe_libssl:wchs' || {
    perf probe -q -x "$SSL" -a 'wchs=SSL_do_handshake' -a 'wcread=SSL_read' -a 'wcreadex=SSL_read_ex' \
        -a 'wcwrite=SSL_write' -a 'wcwriteex=SSL_write_ex' -a 'wcnew=SSL_new' -a 'wcshutdown=SSL_shutdown'
}
perf probe -l 2>/dev/null | grep -q 'probe_libc:wcmalloc' || perf probe -q -x "$LIBC" -a 'wcmalloc=malloc'
EV=probe_libssl:wchs,probe_libssl:wcread,probe_libssl:wcreadex,probe_libssl:wcwrite,probe_libssl:wcwriteex
EV=$EV,probe_libssl:wcnew,probe_libssl:wcshutdown,probe_libc:wcmalloc,raw_syscalls:sys_enter
for s in read write readv writev recvmsg sendmsg recvfrom sendto epoll_wait epoll_pwait epoll_ctl accept4 connect close; do
    EV=$EV,syscalls:sys_enter_$s
done
ulimit -n "$(ulimit -Hn)"
tls=0; is_tls "$SCEN" && tls=1
port_of() { case "$1:$2" in nginx:0) echo 19461 ;; nginx:1) echo 19462 ;; haproxy:0) echo 19463 ;; haproxy:1) echo 19464 ;;
    wsgate:0) echo 19465 ;; wsgate:1) echo 19466 ;; esac; }
mkdir -p "$W/nginx"
sed -e "s/^worker_processes auto;/worker_processes 1;/" -e "s#/tmp/bench-work/nginx#$W/nginx#g" \
    -e "s/127.0.0.1:18901;/127.0.0.1:19461;/" -e "s/127.0.0.1:18911 ssl;/127.0.0.1:19462 ssl;/" \
    -e "s/server 127.0.0.1:18900;/server 127.0.0.1:$UP;/" "$B/conf/nginx.conf" >"$W/nginx/nginx.conf"
sed -e "s/^global$/global\n    nbthread 1/" -e "s/bind 127.0.0.1:18902$/bind 127.0.0.1:19463/" \
    -e "s/bind 127.0.0.1:18912 ssl/bind 127.0.0.1:19464 ssl/" -e "s/server echo 127.0.0.1:18900/server echo 127.0.0.1:$UP/" \
    "$B/conf/haproxy.cfg" >"$W/haproxy.cfg"
cat >"$W/wsgate.yaml" <<YAML
workers: 1
listeners:
  - { name: bench, address: 127.0.0.1:19465 }
  - name: benchtls
    address: 127.0.0.1:19466
    tls: { certificate: $WORK/tls/cert.pem, key: $WORK/tls/key.pem }
routes:
  - { path: /, upstreams: ["ws://127.0.0.1:$UP"] }
limits: { max_frame: 16MiB, max_message: 16MiB, max_fragments: 100000 }
access_log: off
admin: { address: off }
YAML
port_open $UP && { echo "port $UP is in use" >&2; exit 1; }
setsid "$BIN/wsecho" -a 127.0.0.1 -p $UP </dev/null >"$W/wsecho.log" 2>&1 &
UP_PID=$!
wait_port $UP 5 || exit 1
PX=""
stop_proxy() { [[ -n "$PX" ]] && { kill -TERM "$PX"; wait "$PX" 2>/dev/null; PX=""; }; }
trap 'stop_proxy; kill $UP_PID; wait $UP_PID 2>/dev/null' EXIT
for p in $WANT_PROXIES; do
    case $p in
    nginx) nginx -p "$W/nginx/" -c "$W/nginx/nginx.conf" -e "$W/nginx/error.log" </dev/null >"$W/nginx.log" 2>&1 & ;;
    haproxy) haproxy -f "$W/haproxy.cfg" -db </dev/null >"$W/haproxy.log" 2>&1 & ;;
    wsgate) "$WSGATE" run -c "$W/wsgate.yaml" </dev/null >"$W/wsgate.log" 2>&1 & ;;
    *) echo "unknown proxy $p" >&2; exit 2 ;;
    esac
    PX=$!
    port=$(port_of "$p" $tls)
    wait_port "$port" 15 || { echo "$p did not open $port" >&2; exit 1; }
    sleep 0.3
    target=$PX
    [[ $p == nginx ]] && target=$(pgrep -P "$PX" | paste -sd,)   # the worker (the master does not serve)
    $BIN/wsload -H 127.0.0.1 -p "$port" $(scenario_args "$SCEN") -W 0 -d 300 -n 200 >/dev/null 2>&1   # warm-up
    for n in ${N:-300 900}; do
        perf stat -x, -e "$EV" -p "$target" -o "$W/stat-$p-$n.csv" &
        PP=$!; sleep 0.5
        $BIN/wsload -H 127.0.0.1 -p "$port" $(scenario_args "$SCEN") -W 0 -d 300 -n "$n" >"$W/load-$p-$n.json" 2>"$W/load-$p-$n.err"
        sleep 0.3; kill -INT $PP; wait $PP
        python3 - "$W/stat-$p-$n.csv" "$p" "$n" "$W/load-$p-$n.json" >>"$W/raw.txt" <<'PY'
import json, sys
c = {}
for l in open(sys.argv[1]):
    f = l.strip().split(",")
    if len(f) > 2 and f[0].isdigit():
        g, e = f[2].split(":")
        k = {"probe_libssl": "SSL_" + e[2:], "probe_libc": e[2:], "raw_syscalls": "syscalls_all"}.get(g, e.replace("sys_enter_", ""))
        c[k] = c.get(k, 0) + int(f[0])
d = json.load(open(sys.argv[4]))
assert not d.get("errors") and not d.get("open_fail"), d
print(sys.argv[2], d["msgs"] if "msgs" in d else d.get("connects", sys.argv[3]), " ".join(f"{k}={v}" for k, v in sorted(c.items())))
PY
        tail -1 "$W/raw.txt" >&2
    done
    if [[ -n ${PROFILE:-} ]]; then   # CPU by library: perf record -F 499 over a 12 s run, µs per connection
        perf record -q -F 499 -p "$target" -o "$W/$p.perf" -- sleep 13 >/dev/null 2>&1 &
        PP=$!; sleep 0.5
        $BIN/wsload -H 127.0.0.1 -p "$port" $(scenario_args "$SCEN") -W 0 -d 12 -C "$target" >"$W/prof-$p.json" 2>/dev/null
        wait $PP
        perf report -i "$W/$p.perf" --no-children --sort dso --stdio -g none 2>/dev/null >"$W/prof-$p.txt"
        python3 - "$W/prof-$p.txt" "$W/prof-$p.json" "$p" <<'PY' | tee -a "$W/profile.md" >&2
import json, re, sys
d = json.load(open(sys.argv[2])); us = d["proxy_cpu_ms_per_kconn"]  # ms per 1k = µs per connection
rows = [(float(m.group(1)), m.group(2)) for m in (re.match(r"\s*([\d.]+)%\s+(\S+)", l) for l in open(sys.argv[1])) if m]
print(f"{sys.argv[3]}: {us:.0f} µs CPU per connection; " + ", ".join(f"{n} {s * us / 100:.0f}" for s, n in rows if s >= 0.5))
PY
    fi
    stop_proxy
done
python3 - "$W/raw.txt" "$LABEL" "$SCEN" <<'PY' | tee "$W/summary.md"
import sys
by = {}
for l in open(sys.argv[1]):
    f = l.split(); by.setdefault(f[0], []).append((int(f[1]), dict(x.split("=") for x in f[2:])))
per = {}
for p, v in by.items():
    (n1, a), (n2, b) = v[-2], v[-1]
    per[p] = {k: (int(b[k]) - int(a.get(k, 0))) / (n2 - n1) for k in b}
keys = ["SSL_hs", "SSL_new", "SSL_read", "SSL_readex", "SSL_write", "SSL_writeex", "SSL_shutdown", "malloc", "syscalls_all",
        "read", "readv", "recvmsg", "recvfrom", "write", "writev", "sendmsg", "sendto", "epoll_wait", "epoll_pwait", "epoll_ctl",
        "accept4", "connect", "close"]
names = {"SSL_hs": "SSL_do_handshake", "SSL_readex": "SSL_read_ex", "SSL_writeex": "SSL_write_ex", "syscalls_all": "system calls (all)"}
ps = list(per)
print(f"{sys.argv[3]}, per connection ({sys.argv[2]}), one loop/worker/thread each\n")
print("| count | " + " | ".join(ps) + " |")
print("|---|" + "---|" * len(ps))
for k in keys:
    vals = [per[p].get(k) for p in ps]
    if all(v is None for v in vals):
        continue
    print(f"| {names.get(k, k)} | " + " | ".join("–" if v is None else f"{v:.2f}" for v in vals) + " |")
PY
