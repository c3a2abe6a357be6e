#!/usr/bin/env bash
# thresholds.sh check|update — the in-memory thresholds (Thresholds/*.p90.json) through the benchmark plugin:
# mallocs per sample of FramesBenchmarks, GatewayBenchmarks and CoreBenchmarks, then retains, releases and
# object allocations per sample of GatewayARCBenchmarks (two plugin runs). BENCHMARKS.md, "thresh23", says
# what each costs and what a failure looks like.
#
# Each run names its metrics (`--metric`): with the benchmarks' other metrics (wall clock, CPU) the harness's
# own readings add 16-18 mallocs to every sample, so a figure recorded one way would fail the other.
#
# update: ordo-one/benchmark 1.38.1 writes `Target.Name.p90.json` with every space (and '/') of the name
# turned into '_', but `thresholds check` reads `Target.Name.p90.json` with the name as it is, so a file the
# plugin writes is never read. This writes into a scratch folder and renames '_' back to ' ' (so a
# benchmark with thresholds has no '_' or '/' in its name; the `mask … (16 passes/sample)` ones are left
# out: they call nothing that can allocate). The targets' old files are removed first.
#
# Exit status of check: 0 when every figure is within its slack of the threshold; otherwise the plugin's
# "The baseline 'Current_run' is WORSE than the defined thresholds." (a regression) or "... is BETTER ..." (an
# improvement: run update and commit the files), with a table per benchmark above it.
set -uo pipefail
cd "$(dirname "$0")/.."
operation=${1:-}
malloc_targets='^(FramesBenchmarks|GatewayBenchmarks|CoreBenchmarks)$'
arc_targets='^GatewayARCBenchmarks$'
malloc_metrics=(--metric mallocCountTotal)
arc_metrics=(--metric retainCount --metric releaseCount --metric objectAllocCount)

update() { # TARGETS METRICS...
    local targets=$1 scratch file target name
    shift
    scratch=$(mktemp -d)
    swift package --disable-sandbox benchmark thresholds update --target "$targets" "$@" --path "$scratch" --no-progress \
        || { rm -rf "$scratch"; return 1; }
    rm -f "$scratch"/FramesBenchmarks.mask_*.p90.json
    for file in "$scratch"/*.p90.json; do
        target=$(basename "$file")
        target=${target%%.*}
        rm -f "Thresholds/$target".*.p90.json
    done
    for file in "$scratch"/*.p90.json; do
        name=$(basename "$file")
        mv "$file" "Thresholds/${name//_/ }"
    done
    rm -rf "$scratch"
}

case $operation in
check)
    status=0
    swift package --disable-sandbox benchmark thresholds check --target "$malloc_targets" "${malloc_metrics[@]}" --no-progress || status=$?
    swift package --disable-sandbox benchmark thresholds check --target "$arc_targets" "${arc_metrics[@]}" --no-progress || status=$?
    exit $status
    ;;
update)
    update "$malloc_targets" "${malloc_metrics[@]}" && update "$arc_targets" "${arc_metrics[@]}" && ls Thresholds
    ;;
*)
    echo "usage: thresholds.sh check|update" >&2
    exit 64
    ;;
esac
