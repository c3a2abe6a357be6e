#!/usr/bin/env python3
"""wsgate soak: hold many WebSocket connections through the gateway for a long time and check that
it stays stable (BENCHMARKS.md, "Soak").

It starts `wsgate echo` and `wsgate run -c <soak config>` (release build) unless given running ones,
opens --connections clients in a mix of kinds (idle, chatty, compressed, slow-reading, reconnecting)
plus a probe and a few hostile clients, holds them for --duration, closes them, and samples every
--sample-interval: gateway RSS and descriptors, probe latency, messages, closes by code, errors. It
writes samples.csv and summary.json to --out and prints a verdict:

- RSS flat: over the second half of the hold, the least-squares slope of the gateway's RSS times that
  half's length is below --rss-growth-max percent of its mean RSS;
- descriptors: the gateway's count returns to its baseline (before any client) after the clients close;
- nothing lost: every message sent came back byte-for-byte or was outstanding when a Close from the
  gateway arrived (none is outstanding at the end), and no echo differed;
- every hostile case got the Close (or HTTP status) it must get; no other close came from the gateway
  (except idle timeouts when --idle-timeout is shorter than the hold); no handshake failed; every
  compressed client negotiated permessage-deflate; the connections stayed open (>= 99% of them).

Run with the peers' environment: `PATH=/work/peers-venv/bin:$PATH nice -n 10 tools/soak/soak.py ...`
(websockets and picows, scripts/test-peers/requirements.txt). Python, not a Swift target: holding
10,000 connections costs per message, not per connection, so one asyncio process with picows (C
framing and masking) is cheap on 2 cores; it is an implementation independent of the gateway's
Frames module; and it adds nothing to the package's build.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from clients import Run  # noqa: E402
from hostile import Hostile  # noqa: E402
from sampler import Sampler, fd_count, ms, percentile, rss_kib  # noqa: E402
from stats import Stats  # noqa: E402

KINDS = ("idle", "chatty", "compressed", "slow", "reconnect")
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text} (e.g. 90s, 30m, 1h)")
    return float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


def mix(text: str) -> dict[str, float]:
    ratios = {kind: 0.0 for kind in KINDS}
    for part in text.split(","):
        kind, _, value = part.partition("=")
        if kind not in ratios:
            raise argparse.ArgumentTypeError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
        ratios[kind] = float(value)
    if abs(sum(ratios.values()) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(f"the ratios sum to {sum(ratios.values())}, not 1")
    return ratios


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connections", type=int, default=10000, help="clients held open (default 10000)")
    p.add_argument("--duration", type=duration, default=duration("30m"), help="how long to hold them after the ramp (default 30m)")
    p.add_argument("--mix", type=mix, default=mix("idle=0.80,chatty=0.12,compressed=0.02,slow=0.02,reconnect=0.04"), help="ratios of the kinds (default idle=0.80,chatty=0.12,compressed=0.02,slow=0.02,reconnect=0.04)")
    p.add_argument("--hostile", type=int, default=8, help="hostile clients, each cycling through the cases (default 8)")
    p.add_argument("--gateway", help="ws://host:port/path of a running gateway (default: start one)")
    p.add_argument("--gateway-pid", type=int, help="its PID, for RSS and descriptors")
    p.add_argument("--admin", help="host:port of its admin listener, for /metrics")
    p.add_argument("--upstream", help="ws://host:port of a running echo for the started gateway (default: start `wsgate echo`)")
    p.add_argument("--wsgate", default=os.path.join(ROOT, ".build", "release", "wsgate"), help="the wsgate binary (default: the release build)")
    p.add_argument("--idle-timeout", default="1h", help="the started gateway's timeouts.idle (default 1h: idle clients are held)")
    p.add_argument("--ping-interval", default="30s", help="its timeouts.ping_interval (default 30s)")
    p.add_argument("--frame-timeout", type=duration, default=duration("10s"), help="its timeouts.frame, which the trickle case waits out; 0: not set, no trickle case (default 10s)")
    p.add_argument("--nofile", type=int, default=65536, help="RLIMIT_NOFILE for this process and the started ones")
    p.add_argument("--ramp-rate", type=float, default=500, help="clients started per second (default 500)")
    p.add_argument("--handshake-concurrency", type=int, default=100, help="handshakes in flight at once (default 100)")
    p.add_argument("--chatty-interval", type=float, default=10, help="mean seconds between a chatty client's messages")
    p.add_argument("--slow-interval", type=float, default=30, help="mean seconds between a slow reader's bursts")
    p.add_argument("--slow-burst", type=int, default=8, help="64 KiB messages per burst")
    p.add_argument("--slow-pause", type=float, default=3, help="seconds a slow reader stops reading after its burst")
    p.add_argument("--reconnect-interval", type=float, default=5, help="mean seconds between a reconnecting client's connections")
    p.add_argument("--probe-interval", type=float, default=0.5)
    p.add_argument("--sample-interval", type=float, default=10)
    p.add_argument("--rss-growth-max", type=float, default=2.0, help="percent (default 2)")
    p.add_argument("--out", default="soak-out", help="directory for samples.csv, summary.json, the config and logs")
    return p.parse_args()


def raise_nofile(limit: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, max(limit, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_port(host: str, port: int, process: subprocess.Popen | None, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"soak: {process.args} exited with {process.returncode} (see its log in --out)")
        try:
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"soak: nothing listens on {host}:{port} after {seconds} s")
            await asyncio.sleep(0.2)


def gateway_config(port: int, admin_port: int, upstream: str, args: argparse.Namespace) -> str:
    frame_timeout = f"\n  frame: {int(args.frame_timeout * 1000)}ms" if args.frame_timeout else ""
    return f"""# Written by tools/soak/soak.py for one run.
listeners:
  - name: soak
    address: 127.0.0.1:{port}
    max_connections: {args.connections * 2 + 1000}
routes:
  - path: /
    upstreams: ["{upstream}"]
    extensions:
      permessage_deflate:
        client: negotiate
        upstream: strip
# The client shares a loaded machine at nice 10: its own event loop can stall for seconds, so the
# deadlines that wait on it (head, pong) are generous; the soak checks the gateway, not the client.
timeouts:
  request_head: 30s
  pong_deadline: 60s
  idle: {args.idle_timeout}
  ping_interval: {args.ping_interval}{frame_timeout}
access_log: access.log
admin:
  address: 127.0.0.1:{admin_port}
"""


def start(argv: list[str], log: str, nofile: int) -> subprocess.Popen:
    out = open(log, "w")
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, preexec_fn=lambda: raise_nofile(nofile))


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(40)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 60


def verdict(args, stats: Stats, sampler: Sampler, hold: tuple[float, float], baseline_fds, end_fds) -> dict:
    s = stats
    hold_rows = [r for r in sampler.rows if r["phase"] == "hold" and r["gw_rss_kib"] is not None]
    half = (hold[0] + hold[1]) / 2
    second = [(r["t_s"], r["gw_rss_kib"]) for r in hold_rows if r["t_s"] >= half]
    checks: dict[str, dict] = {}
    if len(second) >= 3:
        slope = slope_per_minute(second)
        span = (second[-1][0] - second[0][0]) / 60
        mean = sum(v for _, v in second) / len(second)
        growth = slope * span / mean * 100
        checks["rss_flat"] = {
            "pass": growth < args.rss_growth_max,
            "slope_kib_per_min": round(slope, 1),
            "second_half_minutes": round(span, 1),
            "mean_rss_kib": round(mean),
            "growth_percent": round(growth, 2),
            "limit_percent": args.rss_growth_max,
        }
    else:
        checks["rss_flat"] = {"pass": False, "why": "fewer than 3 samples in the second half of the hold"}
    checks["fds_baseline"] = {"pass": baseline_fds is not None and end_fds is not None and end_fds <= baseline_fds, "baseline": baseline_fds, "end": end_fds}
    checks["nothing_lost"] = {
        "pass": sum(s.lost.values()) == 0 and sum(s.corrupt.values()) == 0 and s.outstanding() == 0,
        "sent": sum(s.sent.values()),
        "echoed": sum(s.echoed.values()),
        "unechoed_at_close": dict(s.unechoed_at_close),
        "lost": dict(s.lost),
        "corrupt": dict(s.corrupt),
        "outstanding_at_end": s.outstanding(),
    }
    hostile_bad = {k: v for k, v in s.hostile.items() if not k.endswith(":ok")}
    checks["hostile_closes"] = {"pass": not hostile_bad and bool(s.hostile), "results": dict(sorted(s.hostile.items()))}
    idle_expected = duration(args.idle_timeout) < args.duration
    unexpected = {
        k: v for k, v in s.closes.items()
        if (":gateway:" in k or k.endswith(":none")) and not (idle_expected and k == "idle:gateway:1001")
    }
    checks["no_unexpected_closes"] = {"pass": not unexpected, "unexpected": unexpected}
    checks["no_errors"] = {"pass": not s.errors and not any(k.endswith(":fail") for k in s.handshakes), "errors": dict(s.errors.most_common(20))}
    checks["compression_negotiated"] = {"pass": s.compression.get("declined", 0) == 0, **dict(s.compression)}
    second_open = [r["open"] for r in hold_rows if r["t_s"] >= half]
    held = min(second_open) if second_open else 0
    # Reconnecting clients are between connections part of the time: the target is the others.
    target = args.connections - round(args.mix["reconnect"] * args.connections)
    checks["connections_held"] = {"pass": held >= 0.99 * target, "min_open_second_half": held, "target_without_reconnecting": target}
    return checks


async def main() -> int:
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    raise_nofile(args.nofile)
    echo = gateway = None
    stats = Stats()
    try:
        if args.gateway:
            url = args.gateway
            gateway_pid = args.gateway_pid
            admin = None
            if args.admin:
                host, _, port = args.admin.rpartition(":")
                admin = (host, int(port))
        else:
            if args.upstream:
                upstream = args.upstream
            else:
                echo_port = free_port()
                echo = start([args.wsgate, "echo", "--port", str(echo_port)], os.path.join(args.out, "echo.log"), args.nofile)
                await wait_port("127.0.0.1", echo_port, echo)
                upstream = f"ws://127.0.0.1:{echo_port}"
            port, admin_port = free_port(), free_port()
            config = os.path.join(args.out, "gateway.yaml")
            with open(config, "w") as f:
                f.write(gateway_config(port, admin_port, upstream, args))
            subprocess.run([args.wsgate, "check", "-c", config], check=True, stdout=subprocess.DEVNULL)
            gateway = start([args.wsgate, "run", "-c", config], os.path.join(args.out, "gateway.log"), args.nofile)
            await wait_port("127.0.0.1", port, gateway)
            url = f"ws://127.0.0.1:{port}/echo"
            gateway_pid = gateway.pid
            admin = ("127.0.0.1", admin_port)
        host_port = url.split("/")[2]
        gw_host, _, gw_port = host_port.rpartition(":")

        sampler = Sampler(os.path.join(args.out, "samples.csv"), stats, gateway_pid, echo.pid if echo else None, admin)
        await asyncio.sleep(1)
        baseline_fds = fd_count(gateway_pid) if gateway_pid else None
        baseline_rss = rss_kib(gateway_pid) if gateway_pid else None
        print(f"soak: gateway {url} pid {gateway_pid}: baseline {baseline_fds} fds, {baseline_rss} KiB RSS", flush=True)

        def show(row: dict) -> None:
            print(
                f"[{row['t_s']:7.0f}s {row['phase']:6}] open {row['open']:6} gw rss {row['gw_rss_kib']} KiB fds {row['gw_fds']} "
                f"sent {row['sent']} echoed {row['echoed']} out {row['outstanding']} lost {row['lost']} corrupt {row['corrupt']} "
                f"err {row['errors']} probe p50/p99/max {row['probe_p50_ms']}/{row['probe_p99_ms']}/{row['probe_max_ms']} ms load {row['load1']:.2f}",
                flush=True,
            )

        show(await sampler.sample())
        sampling = asyncio.ensure_future(sampler.every(args.sample_interval, show))
        run = Run(url, stats, args)
        hostile = Hostile(gw_host, int(gw_port), stats, run.stopping, args.frame_timeout)
        tasks = [asyncio.ensure_future(run.probe()), asyncio.ensure_future(run.loop_lag())]
        tasks += [asyncio.ensure_future(hostile.run(i)) for i in range(args.hostile)]

        # Ramp.
        sampler.phase = "ramp"
        kinds = [kind for kind, ratio in args.mix.items() for _ in range(round(ratio * args.connections))]
        kinds = (kinds + ["idle"] * args.connections)[: args.connections]
        random.shuffle(kinds)
        ramp_started = time.monotonic()
        for i, kind in enumerate(kinds):
            tasks.append(asyncio.ensure_future(getattr(run, "reconnecting" if kind == "reconnect" else kind)()))
            ahead = ramp_started + (i + 1) / args.ramp_rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        # Wait for the handshakes to finish (or 60 s).
        for _ in range(600):
            if sum(stats.handshakes.values()) >= args.connections:
                break
            await asyncio.sleep(0.1)
        hold_start = time.monotonic() - stats.started
        sampler.phase = "hold"
        print(f"soak: ramp done in {time.monotonic() - ramp_started:.0f} s; holding {args.duration:.0f} s", flush=True)
        await asyncio.sleep(args.duration)
        hold_end = time.monotonic() - stats.started

        # Close every client (each waits for its echoes first), then let the gateway settle.
        sampler.phase = "close"
        run.stopping.set()
        done, pending = await asyncio.wait(tasks, timeout=300)
        for task in pending:
            task.cancel()
        if pending:
            stats.error(f"{len(pending)} client tasks did not finish in 300 s")
        for task in done:
            if task.exception() is not None:
                stats.error(f"client task: {type(task.exception()).__name__}: {str(task.exception())[:80]}")
        sampler.phase = "settle"
        end_fds = None
        for _ in range(60):
            end_fds = fd_count(gateway_pid) if gateway_pid else None
            if end_fds is None or baseline_fds is None or end_fds <= baseline_fds:
                break
            await asyncio.sleep(1)
        await asyncio.sleep(0.5)
        sampling.cancel()
        show(await sampler.sample())
        sampler.close()
        if admin is not None:
            reader, writer = await asyncio.open_connection(*admin)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            with open(os.path.join(args.out, "metrics-end.txt"), "wb") as f:
                f.write(await reader.read())
            writer.close()

        checks = verdict(args, stats, sampler, (hold_start, hold_end), baseline_fds, end_fds)
        rows = sampler.rows
        summary = {
            "command": " ".join(sys.argv),
            "connections": args.connections,
            "duration_s": args.duration,
            "mix": args.mix,
            "hostile": args.hostile,
            "baseline": {"gw_fds": baseline_fds, "gw_rss_kib": baseline_rss},
            "peak": {
                "gw_rss_kib": max((r["gw_rss_kib"] or 0) for r in rows),
                "gw_fds": max((r["gw_fds"] or 0) for r in rows),
                "open": max(r["open"] for r in rows),
            },
            "end": {"gw_fds": end_fds, "gw_rss_kib": rss_kib(gateway_pid) if gateway_pid else None},
            "probe_ms": {
                "n": len(stats.all_probe_rtts),
                **{f"p{p}": ms(percentile(stats.all_probe_rtts, p)) for p in (50, 90, 99, 99.9)},
                "max": ms(max(stats.all_probe_rtts)) if stats.all_probe_rtts else None,
            },
            "tool_loop_lag_ms": {f"p{p}": ms(percentile(stats.all_loop_lags, p)) for p in (50, 99)} | {"max": ms(max(stats.all_loop_lags)) if stats.all_loop_lags else None},
            "messages": {"sent": dict(stats.sent), "echoed": dict(stats.echoed), "sent_bytes": stats.sent_bytes, "echoed_bytes": stats.echoed_bytes},
            "handshakes": dict(sorted(stats.handshakes.items())),
            "closes": dict(sorted(stats.closes.items())),
            "load1_mean": round(sum(r["load1"] for r in rows) / len(rows), 2),
            "checks": checks,
            "verdict": "PASS" if all(c["pass"] for c in checks.values()) else "FAIL",
        }
        with open(os.path.join(args.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        print(json.dumps(summary, indent=2))
        print(f"soak: {summary['verdict']} ({', '.join(k for k, c in checks.items() if not c['pass']) or 'every check passed'})")
        return 0 if summary["verdict"] == "PASS" else 1
    finally:
        stop(gateway)
        stop(echo)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
