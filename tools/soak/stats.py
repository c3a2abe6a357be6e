"""Counters shared by every client of a soak run (one asyncio thread, so no locks)."""

from __future__ import annotations

import collections
import time


class Stats:
    """What the clients did, counted as it happens.

    Message accounting: every data message a client sends is *sent*; it is then either *echoed*
    (came back byte-for-byte equal, in order), *corrupt* (came back different), *unechoed at close*
    (outstanding when the gateway's Close frame arrived: accounted for by that Close, per code) or
    *lost* (outstanding when the connection ended without a Close frame, or when the client gave up
    waiting for it). A clean run has ``lost == corrupt == 0``.
    """

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.sent: collections.Counter[str] = collections.Counter()
        self.sent_bytes = 0
        self.echoed: collections.Counter[str] = collections.Counter()
        self.echoed_bytes = 0
        self.corrupt: collections.Counter[str] = collections.Counter()
        self.lost: collections.Counter[str] = collections.Counter()
        self.unechoed_at_close: collections.Counter[str] = collections.Counter()  # key: "kind:code"
        self.open: collections.Counter[str] = collections.Counter()
        self.handshakes: collections.Counter[str] = collections.Counter()  # "kind:ok" / "kind:fail"
        # Closes by who started them and with which code: "kind:gateway:1001" (a Close frame from
        # the gateway first), "kind:client:1000" (ours, answered), "kind:none" (TCP ended without one).
        self.closes: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.hostile: collections.Counter[str] = collections.Counter()  # "case:ok" / "case:got X"
        self.compression: collections.Counter[str] = collections.Counter()
        self.probe_rtts: list[float] = []  # seconds, since the last sample
        self.all_probe_rtts: list[float] = []
        self.loop_lags: list[float] = []  # this process's own event-loop lag, since the last sample
        self.all_loop_lags: list[float] = []

    def outstanding(self) -> int:
        done = (
            sum(self.echoed.values())
            + sum(self.corrupt.values())
            + sum(self.lost.values())
            + sum(self.unechoed_at_close.values())
        )
        return sum(self.sent.values()) - done

    def error(self, what: str) -> None:
        self.errors[what] += 1
