#!/usr/bin/env python3
"""Markdown table of a soak's samples.csv at fixed steps (BENCHMARKS.md, "Soak"):

    tools/soak/report.py soak-out/samples.csv --step 5m
"""

from __future__ import annotations

import argparse
import csv
import json


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("samples")
    p.add_argument("--step", default="5m", help="minutes between rows of the hold (default 5m)")
    args = p.parse_args()
    step = float(args.step.rstrip("m")) * 60
    rows = list(csv.DictReader(open(args.samples)))
    hold = [r for r in rows if r["phase"] == "hold"]
    if not hold:
        raise SystemExit("no hold samples")
    start = float(hold[0]["t_s"])
    chosen = [rows[0]]
    target = start
    for r in hold:
        if float(r["t_s"]) >= target:
            chosen.append(r)
            target += step
    if chosen[-1] is not hold[-1]:
        chosen.append(hold[-1])
    if chosen[-1] is not rows[-1]:
        chosen.append(rows[-1])
    print("| t (min) | phase | open | gateway RSS (MiB) | gateway fds | echo RSS (MiB) | sent | echoed | outstanding | lost | probe p50 / p99 (ms) | load |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for r in chosen:
        mib = lambda k: f"{int(r[k]) / 1024:.1f}" if r[k] else "-"  # noqa: E731
        print(
            f"| {float(r['t_s']) / 60:.1f} | {r['phase']} | {r['open']} | {mib('gw_rss_kib')} | {r['gw_fds']} | {mib('echo_rss_kib')} "
            f"| {r['sent']} | {r['echoed']} | {r['outstanding']} | {r['lost']} | {r['probe_p50_ms'] or '-'} / {r['probe_p99_ms'] or '-'} "
            f"| {float(r['load1']):.1f} |"
        )
    closes: dict[str, int] = json.loads(rows[-1]["closes"])
    print()
    print("closes:", ", ".join(f"{k} {v}" for k, v in sorted(closes.items())))


if __name__ == "__main__":
    main()
