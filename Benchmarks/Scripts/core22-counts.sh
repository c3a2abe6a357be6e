#!/usr/bin/env bash
# core22-counts.sh CORE_BIN [SCENARIOS] — exact call counts per message of the epoll prototype with batched
# parsing (--batch on, 4 KiB key batches) and without (--batch off --key-batch 256, core15's relay): the
# Frames parser's entry points (uprobes on the binary), malloc/swift_retain/swift_release/swift_allocObject
# (gateway-counts.sh's probes) and the system calls (tracepoints), counted with perf stat over two runs of N1
# and N2 messages; per message = the difference / (N2 - N1), so set-up and warm-up cancel out. Read batching
# depends on load (more frames per read when the proxy is slower), so the per-read figures are the run's.
# Needs root, perf, the private bench copy of core22-compare.sh (/tmp/core22-bench, upstream on 29400).
# Env: N_ST ("50000 150000"), N_RR ("5000 15000"). Output: /tmp/core22-counts/summary.txt.
set -u
BIN=$1; SCENS=${2:-"stream-32 rr-32"}
W=/tmp/core22-counts; rm -rf $W; mkdir -p $W; : >$W/raw.txt
L=/lib/x86_64-linux-gnu/libc.so.6; S=$(ldd "$BIN" | awk '/libswiftCore/ {print $3}')
perf probe -l 2>/dev/null | grep -q pcmalloc || {
    perf probe -q -x $L -a 'pcmalloc=malloc'
    perf probe -q -x "$S" -a 'pcretain=swift_retain' -a 'pcrelease=swift_release' -a 'pcalloc=swift_allocObject'
}
# The parser's entry points in this binary (probes of an earlier binary are removed first).
perf probe -q -d 'probe_*:c22*' 2>/dev/null
sym() { nm "$BIN" | awk -v p="$1" '$2 == "T" && $3 ~ p {print $3; exit}'; }
perf probe -q -x "$BIN" -a "c22next=$(sym 'FrameParserV4next_16copyingPayloadTo')"
perf probe -q -x "$BIN" -a "c22nip=$(sym 'FrameParserV11nextInPlace')"
perf probe -q -x "$BIN" -a "c22batch=$(sym 'FrameParserV9nextBatch_9copyingTo')"
perf probe -q -x "$BIN" -a "c22batchip=$(sym 'FrameParserV16nextBatchInPlace')"
G=$(perf probe -l 2>/dev/null | awk '/c22next / {split($1, a, ":"); print a[1]}' | head -1)
EV=$G:c22next,$G:c22nip,$G:c22batch,$G:c22batchip,probe_libc:pcmalloc,probe_libswiftCore:pcalloc,probe_libswiftCore:pcretain,probe_libswiftCore:pcrelease
EV=$EV,syscalls:sys_enter_read,syscalls:sys_enter_sendto,syscalls:sys_enter_getrandom,syscalls:sys_enter_epoll_wait
LOAD=/tmp/core22-bench-work/bin/wsload
ulimit -n "$(ulimit -Hn)"
(cd /tmp/core22-bench && bash upstream.sh start) >/dev/null
args() { case $1 in rr-32) echo "-m rr -c 50 -s 32 -t" ;; stream-32) echo "-m stream -c 50 -w 32 -s 32 -t" ;; esac; }
counts() { case $1 in rr-32) echo "${N_RR:-5000 15000}" ;; stream-32) echo "${N_ST:-50000 150000}" ;; esac; }
for mode in on off; do
    PORT=29477
    if [[ $mode == on ]]; then "$BIN" --listen 127.0.0.1:$PORT --upstream 127.0.0.1:29400 --loops 2 >$W/core-$mode.log 2>&1 &
    else "$BIN" --listen 127.0.0.1:$PORT --upstream 127.0.0.1:29400 --loops 2 --batch off --key-batch 256 >$W/core-$mode.log 2>&1 &
    fi
    GP=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
    for s in $SCENS; do $LOAD -H 127.0.0.1 -p $PORT $(args $s) -W 0 -d 300 -n 2000 >/dev/null 2>&1; done # warm-up
    for s in $SCENS; do
        for n in $(counts $s); do
            perf stat -x, -e "$EV" -p $GP -o $W/stat-$mode-$s-$n.csv &
            PP=$!
            sleep 0.5
            $LOAD -H 127.0.0.1 -p $PORT $(args $s) -W 0 -d 300 -n $n >$W/load-$mode-$s-$n.json 2>&1
            sleep 0.3
            kill -INT $PP
            wait $PP
            python3 - $W/stat-$mode-$s-$n.csv "$mode/$s" $n >>$W/raw.txt <<'PY'
import sys
c = {}
for l in open(sys.argv[1]):
    f = l.strip().split(",")
    if len(f) > 2 and f[0].isdigit():
        k = f[2].split(":")[1]
        k = k[len("sys_enter_"):] if k.startswith("sys_enter_") else k[3:] if k.startswith("c22") else k[2:]
        c[k] = c.get(k, 0) + int(f[0])
print(sys.argv[2], sys.argv[3], " ".join(f"{k}={v}" for k, v in sorted(c.items())))
PY
        done
    done
    kill $GP
    wait $GP 2>/dev/null
done
(cd /tmp/core22-bench && bash upstream.sh stop) >/dev/null
python3 - $W/raw.txt <<'PY' | tee $W/summary.txt
import sys
by = {}
for l in open(sys.argv[1]):
    f = l.split()
    by.setdefault(f[0], []).append((int(f[1]), dict(x.split("=") for x in f[2:])))
for s, v in by.items():
    (n1, a), (n2, b) = v[-2], v[-1]
    print(f"{s:>14}: " + "  ".join(f"{k} {(int(b[k]) - int(a[k])) / (n2 - n1):.3f}" for k in sorted(b)))
PY
