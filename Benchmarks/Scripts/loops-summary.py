#!/usr/bin/env python3
"""loops-summary.py RUNS.jsonl — markdown summary of a loops-ab.sh run.

Per scenario and loop count, for each proxy: medians (min–max) of proxy CPU per message (µs) or per
1,000 connections (ms), p50 and p99 latency (µs), throughput, and the ratio to nginx taken within each
repetition (the two runs were seconds apart) and then the median of those ratios; the load average and
`other_cpu_pct` (CPU of everything else on the machine, % of one core) of the runs beside them. A
second table per scenario gives each proxy's 2-loop figure over its 1-loop figure (medians).
"""
import json
import statistics
import sys
from collections import defaultdict


def med(xs):
    return statistics.median(xs) if xs else None


def fmt(x):
    if x is None:
        return "–"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}" if abs(x) >= 1 else f"{x:.3f}"


def rng(xs):
    return f"{fmt(med(xs))} ({fmt(min(xs))}–{fmt(max(xs))})" if xs else "–"


runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
bad = [r for r in runs if r.get("errors") or r.get("bad_len") or r.get("open_fail") or r.get("rc")]
by = defaultdict(list)  # (scenario, loops, proxy) -> runs
for r in runs:
    if r in bad:
        continue
    by[(r["scenario"], r["loops"], r["proxy"])].append(r)
proxies = []
for r in runs:
    if r["proxy"] not in proxies:
        proxies.append(r["proxy"])


def cost(r):
    if r.get("mode") == "connect":
        return r.get("proxy_cpu_ms_per_kconn")
    v = r.get("proxy_cpu_s_per_mmsg")
    return v  # CPU-s per million messages = µs per message


def rate(r):
    return r.get("connects_per_s") if r.get("mode") == "connect" else r.get("msgs_per_s")


print(f"{len(runs)} runs, {len(bad)} with errors (left out)")
if runs:
    print(f"from {runs[0]['time']} to {runs[-1]['time']}; load average {min(r['load1'] for r in runs):.1f}–"
          f"{max(r['load1'] for r in runs):.1f}; other_cpu_pct {min(r.get('other_cpu_pct', 0) for r in runs):.0f}–"
          f"{max(r.get('other_cpu_pct', 0) for r in runs):.0f} % of one core")
for scen in dict.fromkeys(r["scenario"] for r in runs):
    connect = any(r.get("mode") == "connect" for r in runs if r["scenario"] == scen)
    unit = "CPU ms / 1k conn" if connect else "CPU µs / msg"
    print(f"\n### {scen}\n")
    print(f"| loops | proxy | threads | {unit} | ratio to nginx | p50 µs | p99 µs | p99 ratio to nginx | "
          f"{'conn/s' if connect else 'msgs/s'} | load1 | other_cpu_pct |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sorted({r["loops"] for r in runs if r["scenario"] == scen}):
        ng = {r["rep"]: r for r in by.get((scen, n, "nginx"), [])}
        for p in proxies:
            rs = by.get((scen, n, p), [])
            if not rs:
                continue
            ratio = [cost(r) / cost(ng[r["rep"]]) for r in rs if r["rep"] in ng and cost(r) and cost(ng[r["rep"]])]
            p99r = [r["lat_p99_us"] / ng[r["rep"]]["lat_p99_us"] for r in rs if r["rep"] in ng and ng[r["rep"]].get("lat_p99_us")]
            print(f"| {n} | {p} | {','.join(sorted({str(r['threads']) for r in rs}))} | {rng([cost(r) for r in rs if cost(r) is not None])} | "
                  f"{fmt(med(ratio)) + '×' if ratio and p != 'nginx' else '–'} | {fmt(med([r['lat_p50_us'] for r in rs]))} | "
                  f"{rng([r['lat_p99_us'] for r in rs])} | {fmt(med(p99r)) + '×' if p99r and p != 'nginx' else '–'} | "
                  f"{fmt(med([rate(r) for r in rs if rate(r) is not None]))} | "
                  f"{min(r['load1'] for r in rs):.1f}–{max(r['load1'] for r in rs):.1f} | "
                  f"{min(r.get('other_cpu_pct', 0) for r in rs):.0f}–{max(r.get('other_cpu_pct', 0) for r in rs):.0f} |")
    loops = sorted({r["loops"] for r in runs if r["scenario"] == scen})
    if len(loops) == 2:
        a, b = loops
        print(f"\n{b} loops over {a} loop(s), medians, per proxy:\n")
        print(f"| proxy | {unit} | p50 | p99 | {'conn/s' if connect else 'msgs/s'} |")
        print("|---|---|---|---|---|")
        for p in proxies:
            x, y = by.get((scen, a, p), []), by.get((scen, b, p), [])
            if not x or not y:
                continue
            q = lambda f: fmt(med([f(r) for r in y]) / med([f(r) for r in x])) + "×"
            print(f"| {p} | {q(cost)} | {q(lambda r: r['lat_p50_us'])} | {q(lambda r: r['lat_p99_us'])} | {q(rate)} |")
