#!/usr/bin/env python3
"""attrib.py PERF_SCRIPT_OUTPUT — a connect profile by phase (BENCHMARKS.md, "Connect: where a connection's CPU goes").

Input: `perf script -F ip,sym` of a `perf record -g` of the gateway during `wsload -m connect`. Each sample is
charged to the innermost frame (from the leaf up) that matches one of PHASES; a sample with none is charged to
the first FALLBACK that matches, else "other". Kernel time lands in the phase that made the system call.
DRILL=REGEX also lists the callees of the first frame matching REGEX (what that function spends its share on).
"""
import collections
import os
import re
import subprocess
import sys

PHASES = [
    ("accept and pipeline set-up (GatewayServer.bind's initializer)", r"GatewayServer.*bind|ServerSocketChannel.*readFromSocket"),
    ("request head: HTTPRequestDecoder (llhttp, HTTPHeaders)", r"HTTPDecoder|BetterHTTPParser|llhttp"),
    ("checks and plan (route, origin, Host, admission)", r"ClientConnectionHandler.*(check|plan)"),
    ("upstream request head (UpstreamHandshake.requestHead)", r"UpstreamHandshake.*requestHead"),
    ("upstream connect (ClientBootstrap, socket, connect)", r"ClientBootstrap|connectSocket|finishConnect"),
    ("upstream handshake: encoder, decoder, 101 check", r"UpstreamHandshakeHandler|HTTPRequestEncoder|HTTPResponseDecoder"),
    ("switch to relay: remove decoders, add relay handlers", r"removeDecoders|startRelay|removeHandlerFromPipeline|UpgradePipelineSwitch"),
    ("the 101 to the client", r"HTTPResponse|writeSwitchingProtocols|respond"),
    ("relay: the Close handshake, both legs closed", r"RelaySession|RelayHandler"),
    ("close/teardown (socket close, deinits)", r"close0|BaseSocket.*close|doDecrementSlow|_swift_release_dealloc"),
    ("access log record, metrics", r"AccessLog|UpgradeRecorder|GatewayMetrics|Prometheus"),
]
FALLBACK = [
    ("socket writes", r"writeToSocket|flushNow|PendingWritesManager|__libc_write"),
    ("socket reads", r"readFromSocket|__libc_read|^read$"),
    ("scheduled tasks and futures elsewhere", r"_prepareToSchedule|scheduleTask|runScheduled|CallbackList|EventLoopFuture|EventLoopPromise"),
    ("epoll_wait, wake-ups", r"epoll_wait|_blockingWaitForWork|Selector|eventfd"),
    ("malloc/free not under a phase above", r"malloc|free"),
]


def main(path):
    samples, current = [], []
    for line in open(path):
        line = line.rstrip()
        if not line.strip():
            if current:
                samples.append(current)
            current = []
            continue
        parts = line.split(None, 1)
        current.append(parts[1] if len(parts) > 1 else "?")
    if current:
        samples.append(current)
    symbols = sorted({s for sample in samples for s in sample})
    demangled = subprocess.run(["swift", "demangle", "--simplified"], input="\n".join(symbols),
                               capture_output=True, text=True).stdout.split("\n")
    names = dict(zip(symbols, demangled))
    phases = [(label, re.compile(rx)) for label, rx in PHASES]
    fallback = [(label, re.compile(rx)) for label, rx in FALLBACK]

    def first(sample, table):
        for symbol in sample:
            name = names.get(symbol, symbol)
            for label, rx in table:
                if rx.search(name) or rx.search(symbol):
                    return label
        return None

    counts = collections.Counter(first(s, phases) or first(s, fallback) or "other" for s in samples)
    total = len(samples)
    for label, count in counts.most_common():
        print(f"{100 * count / total:5.1f}%  {label}")
    print(f"samples {total}")
    drill = os.environ.get("DRILL")
    if drill:
        callees = collections.Counter()
        for sample in samples:
            for index, symbol in enumerate(sample):
                if re.search(drill, names.get(symbol, symbol)):
                    callee = names.get(sample[index - 1], sample[index - 1]) if index > 0 else "(self)"
                    callees[callee[:110]] += 1
                    break
        for callee, count in callees.most_common(25):
            print(f"{100 * count / total:5.2f}% {callee}")


if __name__ == "__main__":
    main(sys.argv[1])
