# proxy-run.sh — sourced by loops-ab.sh and split-counts.sh (after shared/bench's lib.sh, for BIN, port_open and
# wait_port): the bench's upstream on a port of the script's own, and stopping the proxy under test.
#   start_upstream PORT LOG   starts wsecho on 127.0.0.1:PORT (fails if the port is taken); sets UP_PID
#   stop_proxy                stops $PX (TERM, then KILL after 5 s) and clears it; nothing when PX is empty
#   stop_all                  stop_proxy and the upstream: the scripts' EXIT trap
PX=""
UP_PID=""
start_upstream() {
    port_open "$1" && { echo "port $1 is in use" >&2; return 1; }
    setsid "$BIN/wsecho" -a 127.0.0.1 -p "$1" </dev/null >"$2" 2>&1 &
    UP_PID=$!
    wait_port "$1" 5 || { echo "upstream did not start (see $2)" >&2; return 1; }
}
stop_proxy() {
    [[ -n "$PX" ]] || return 0
    kill -TERM "$PX" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$PX" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PX" 2>/dev/null && kill -KILL "$PX" 2>/dev/null
    wait "$PX" 2>/dev/null
    PX=""
}
stop_all() {
    stop_proxy
    [[ -n "$UP_PID" ]] || return 0
    kill -TERM "$UP_PID" 2>/dev/null
    wait "$UP_PID" 2>/dev/null
}
