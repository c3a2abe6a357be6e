#!/usr/bin/env bash
# gateway-counts.sh BINARY LABEL [SCENARIOS] — exact call counts per message (stream-32, rr-32) and per
# connection (connect) of a wsgate binary: malloc, swift_allocObject, swift_retain, swift_release and
# memmove, counted with uprobes (perf stat) over two runs of N1 and N2 units each; per unit = the
# difference / (N2 - N1), so connection set-up and warm-up cancel out. Independent of machine load
# (unlike CPU time) except through read batching in stream-32. The VM has no hardware counters
# (instructions:u is "not supported") and valgrind 3.19 cannot run the Swift binary, hence call counts.
# Needs root, perf, shared/bench's wsload/wsecho built (/tmp/bench-work/bin). Uses ports 18950/18960.
# Env: N_ST, N_RR, N_CO ("N1 N2"), GPORT. Output: /tmp/pc/LABEL/summary.txt.
# Probes (created once, left for the next run; remove with perf probe -d 'probe_libc:pc*' -d 'probe_libswiftCore:pc*'):
set -u
L=/lib/x86_64-linux-gnu/libc.so.6; S=$(ldd "$1" | awk '/libswiftCore/ {print $3}')
perf probe -l 2>/dev/null | grep -q pcmalloc || {
    perf probe -q -x $L -a 'pcmalloc=malloc'
    for f in __memmove_avx_unaligned_erms __memmove_evex_unaligned_erms __memmove_avx512_unaligned_erms; do perf probe -q -x $L -a "pc${f//_/}=$f"; done
    perf probe -q -x $S -a 'pcretain=swift_retain' -a 'pcrelease=swift_release' -a 'pcalloc=swift_allocObject'
}
BIN=$1; LABEL=$2; SCENS=${3:-"stream-32 rr-32 connect"}
W=/tmp/pc/$LABEL; mkdir -p $W; : > $W/raw.txt
LOAD=/tmp/bench-work/bin/wsload; ECHO=/tmp/bench-work/bin/wsecho
UPORT=18950; GPORT=${GPORT:-18960}
EV=probe_libc:pcmalloc,probe_libswiftCore:pcalloc,probe_libswiftCore:pcretain,probe_libswiftCore:pcrelease,probe_libc:pcmemmoveavx512unalignederms,probe_libc:pcmemmoveevexunalignederms,probe_libc:pcmemmoveavxunalignederms
ulimit -n $(ulimit -Hn)
if ! ss -ltn "sport = :$UPORT" | grep -q LISTEN; then
  setsid $ECHO -a 127.0.0.1 -p $UPORT </dev/null >/tmp/pc/wsecho.log 2>&1 & echo $! > /tmp/pc/wsecho.pid; sleep 0.5
fi
cat > $W/cfg.yaml <<YAML
listeners:
  - name: bench
    address: 127.0.0.1:$GPORT
routes:
  - path: /
    upstreams: ["ws://127.0.0.1:$UPORT"]
limits: { max_frame: 16MiB, max_message: 16MiB, max_fragments: 100000 }
access_log: off
admin: { address: off }
YAML
$BIN run -c $W/cfg.yaml > $W/gw.log 2>&1 &
GP=$!
for i in $(seq 100); do ss -ltn "sport = :$GPORT" | grep -q LISTEN && break; sleep 0.2; done
args() { case $1 in
  rr-32) echo "-m rr -c 50 -s 32 -t";; stream-32) echo "-m stream -c 50 -w 32 -s 32 -t";; connect) echo "-m connect -c 8";; esac; }
counts() { case $1 in rr-32) echo "${N_RR:-5000 15000}";; stream-32) echo "${N_ST:-50000 150000}";; connect) echo "${N_CO:-500 1500}";; esac; }
for s in $SCENS; do $LOAD -p $GPORT $(args $s) -W 0 -d 300 -n 2000 >/dev/null 2>&1; done   # warm-up
for s in $SCENS; do
  set -- $(counts $s)
  for n in "$@"; do
    perf stat -x, -e $EV -p $GP -o $W/stat-$s-$n.csv &
    PP=$!; sleep 0.5
    $LOAD -p $GPORT $(args $s) -W 0 -d 300 -n $n > $W/load-$s-$n.json 2>$W/load-$s-$n.err
    sleep 0.3; kill -INT $PP; wait $PP
    python3 - $W/stat-$s-$n.csv $s $n >> $W/raw.txt <<'PY'
import sys
c = {}
for l in open(sys.argv[1]):
    f = l.strip().split(",")
    if len(f) > 2 and f[0].isdigit():
        k = f[2].split(":")[1]; k = "memmove" if k.startswith("pcmemmove") else k[2:]
        c[k] = c.get(k, 0) + int(f[0])
print(sys.argv[2], sys.argv[3], " ".join(f"{k}={v}" for k, v in sorted(c.items())))
PY
    tail -1 $W/raw.txt
  done
done
kill $GP; wait $GP 2>/dev/null
python3 - $W/raw.txt "$LABEL" <<'PY' | tee $W/summary.txt
import sys
by = {}
for l in open(sys.argv[1]):
    f = l.split(); by.setdefault(f[0], []).append((int(f[1]), dict(x.split("=") for x in f[2:])))
for s, v in by.items():
    (n1, a), (n2, b) = v[-2], v[-1]
    print(f"{sys.argv[2]:>12} {s:>10}: " + "  ".join(f"{k} {(int(b[k]) - int(a[k])) / (n2 - n1):.2f}" for k in sorted(b)))
PY
