# Converts `swift package benchmark` text output (files run*.txt in the directory given) into the
# BENCHMARKS.md figures: GB/s from the per-sample wall clock, ns per frame for the 1,000-frame runs.
# Usage: python3 Scripts/summarize.py DIR
import re, sys, glob
MiB = 1 << 20
units = {  # name prefix -> (kind, bytes or frames per sample)
 "mask 64 KiB": ("GB/s", 16 * 65536), "mask 1 MiB": ("GB/s", MiB),
 "validate UTF-8": ("GB/s", MiB), "parse 1 MiB": ("GB/s", MiB),
 "parse 1000": ("ns/frame", 1000), "encode 1000": ("ns/frame", 1000),
}
def parse(path):
    res = {}; name = None
    for line in open(path):
        s = line.rstrip("\n")
        if s and not s.startswith(("│", "╒", "╞", "├", "╘", "=", " ", "Host", "#", "Baseline", "warning", "Build", "FramesBenchmarks")) and not s.startswith("["):
            name = s.strip(); res.setdefault(name, {}); continue
        m = re.match(r"│ (Malloc \(total\)|Time \(wall clock\) \(ns\)) \*?\s*│(.*)", s)
        if m and name:
            cells = [c.strip() for c in m.group(2).split("│")][:7]
            res[name]["malloc" if m.group(1).startswith("Malloc") else "wall"] = [float(c) for c in cells]
    return res
runs = [parse(p) for p in sorted(glob.glob(sys.argv[1] + "/run*.txt"))]
names = [n for n in runs[0] if "wall" in runs[0][n]]
def fig(name, ns):
    for k, (kind, amount) in units.items():
        if name.startswith(k):
            return kind, (amount / ns if kind == "GB/s" else ns / amount)
for n in names:
    p0 = [r[n]["wall"][0] for r in runs if n in r]; p50 = [r[n]["wall"][2] for r in runs if n in r]
    mal = [r[n]["malloc"][2] for r in runs if n in r]
    kind, _ = fig(n, 1)
    best = [fig(n, x)[1] for x in p0]; med = [fig(n, x)[1] for x in p50]
    f = (lambda v: "%.1f" % v) if kind == "GB/s" else (lambda v: "%.0f" % v)
    b = max(best) if kind == "GB/s" else min(best)
    print(f"| {n} | {f(b)} {kind} | p50 {'/'.join(f(x) for x in med)} | best per run {'/'.join(f(x) for x in best)} | mallocs p50 {'/'.join('%d'%x for x in mal)} |")
