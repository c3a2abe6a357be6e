#!/usr/bin/env bash
# nio-floor-build.sh [DIR] — builds shared/bench's NIO floor (a bare SwiftNIO TCP relay: two channels per
# connection glued by one handler, no HTTP, no frame parsing, -Ounchecked) into DIR (/tmp/nio-floor), with
# its two fixed ports made settable: PORT (listen, default 18906) and UPSTREAM_PORT (default 18900), beside
# THREADS (event loops, default: cores). loops-ab.sh runs it as the "floor" column. swift-nio and its
# dependencies are pinned to wsgate's Package.resolved, so the build resolves from SwiftPM's local cache.
# Env: BENCH (/work/shared/bench). Prints the binary's path on the last line.
set -euo pipefail
B=${BENCH:-/work/shared/bench}
D=${1:-/tmp/nio-floor}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
mkdir -p "$D/Sources/nioproxy"
cp "$B/nio-floor/Package.swift" "$D/"
sed -e 's/port: 18900)/port: Int(ProcessInfo.processInfo.environment["UPSTREAM_PORT"] ?? "") ?? 18900)/' \
    -e 's/port: 18906)/port: Int(ProcessInfo.processInfo.environment["PORT"] ?? "") ?? 18906)/' \
    -e 's/^print("nioproxy on 18906 -> 18900")/print("nioproxy listening")/' \
    "$B/nio-floor/Sources/nioproxy/main.swift" >"$D/Sources/nioproxy/main.swift"
grep -q 'environment\["PORT"\]' "$D/Sources/nioproxy/main.swift" || { echo "nio-floor: port patch did not apply" >&2; exit 1; }
python3 - "$ROOT/Package.resolved" "$D/Package.resolved" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
keep = {"swift-nio", "swift-atomics", "swift-collections", "swift-system"}
r["pins"] = [p for p in r["pins"] if p["identity"] in keep]
r.pop("originHash", None)
json.dump(r, open(sys.argv[2], "w"), indent=2)
PY
(cd "$D" && swift build -c release --product nioproxy 2>&1 | tail -3)
echo "$D/.build/release/nioproxy"
