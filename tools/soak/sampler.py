"""Samples over time: a process's RSS and descriptors (/proc), the gateway's /metrics, the counters."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import time

from stats import Stats


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


async def scrape(host: str, port: int) -> dict[str, float]:
    """GET /metrics; sums each family over its labels (and keeps wsgate_close_codes_total by code)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    try:
        writer.write(f"GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        body = (await asyncio.wait_for(reader.read(), 10)).decode(errors="replace")
    finally:
        writer.close()
    families: dict[str, float] = {}
    for line in body.split("\r\n\r\n", 1)[-1].splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        try:
            families[name] = families.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return families


class Sampler:
    FIELDS = [
        "t_s", "phase", "load1", "gw_rss_kib", "gw_fds", "echo_rss_kib", "echo_fds", "tool_rss_kib",
        "open", "gw_connections_open", "sent", "echoed", "outstanding", "lost", "corrupt",
        "unechoed_at_close", "errors", "probe_n", "probe_p50_ms", "probe_p99_ms", "probe_max_ms",
        "tool_lag_max_ms", "gw_keepalive_timeouts", "closes",
    ]

    def __init__(self, path: str, stats: Stats, gateway_pid: int | None, echo_pid: int | None, admin: tuple[str, int] | None) -> None:
        self.stats = stats
        self.gateway_pid = gateway_pid
        self.echo_pid = echo_pid
        self.admin = admin
        self.phase = "start"
        self.rows: list[dict] = []
        self.file = open(path, "w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=self.FIELDS)
        self.writer.writeheader()

    async def sample(self) -> dict:
        s = self.stats
        metrics: dict[str, float] = {}
        if self.admin is not None:
            try:
                metrics = await scrape(*self.admin)
            except Exception as error:  # noqa: BLE001
                s.error(f"metrics scrape: {type(error).__name__}")
        rtts, s.probe_rtts = s.probe_rtts, []
        lags, s.loop_lags = s.loop_lags, []
        row = {
            "t_s": round(time.monotonic() - s.started, 1),
            "phase": self.phase,
            "load1": os.getloadavg()[0],
            "gw_rss_kib": rss_kib(self.gateway_pid) if self.gateway_pid else None,
            "gw_fds": fd_count(self.gateway_pid) if self.gateway_pid else None,
            "echo_rss_kib": rss_kib(self.echo_pid) if self.echo_pid else None,
            "echo_fds": fd_count(self.echo_pid) if self.echo_pid else None,
            "tool_rss_kib": rss_kib(os.getpid()),
            "open": sum(s.open.values()),
            "gw_connections_open": metrics.get("wsgate_connections_open"),
            "sent": sum(s.sent.values()),
            "echoed": sum(s.echoed.values()),
            "outstanding": s.outstanding(),
            "lost": sum(s.lost.values()),
            "corrupt": sum(s.corrupt.values()),
            "unechoed_at_close": sum(s.unechoed_at_close.values()),
            "errors": sum(s.errors.values()),
            "probe_n": len(rtts),
            "probe_p50_ms": ms(percentile(rtts, 50)),
            "probe_p99_ms": ms(percentile(rtts, 99)),
            "probe_max_ms": ms(max(rtts) if rtts else None),
            "tool_lag_max_ms": ms(max(lags) if lags else None),
            "gw_keepalive_timeouts": metrics.get("wsgate_keepalive_timeouts_total"),
            "closes": json.dumps(dict(sorted(s.closes.items())), separators=(",", ":")),
        }
        self.rows.append(row)
        self.writer.writerow(row)
        self.file.flush()
        return row

    async def every(self, interval: float, on_row) -> None:
        while True:
            await asyncio.sleep(interval)
            on_row(await self.sample())

    def close(self) -> None:
        self.file.close()
