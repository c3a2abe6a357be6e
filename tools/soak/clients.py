"""The well-behaved client kinds of a soak run: idle, chatty, slow-reading, reconnecting (picows) and
compressed (websockets, which offers permessage-deflate). Each verifies its echoes byte-for-byte, in
order, and accounts for every message it sent (stats.Stats)."""

from __future__ import annotations

import asyncio
import bisect
import collections
import os
import random
import struct
import time

import picows
from picows import WSCloseCode, WSMsgType

from stats import Stats

# Payload pools: messages are slices at random offsets, so no per-message random generation.
_BINARY_POOL = os.urandom(1 << 20)
_TEXT_POOL = ("wsgate soak é ü € 漢字 😀 " * 40000).encode()  # valid UTF-8, multibyte scalars
_TEXT_CUTS = [i for i in range(0, 1 << 20) if (_TEXT_POOL[i] & 0xC0) != 0x80]  # scalar starts


def binary_payload(size: int) -> bytes:
    start = random.randrange(0, len(_BINARY_POOL) - size)
    return _BINARY_POOL[start : start + size]


def text_payload(size: int) -> bytes:
    """Valid UTF-8 of about `size` bytes: cut at scalar starts."""
    first = random.randrange(0, len(_TEXT_CUTS) // 2)
    start = _TEXT_CUTS[first]
    end = _TEXT_CUTS[bisect.bisect_left(_TEXT_CUTS, start + size)]
    return _TEXT_POOL[start:end]


class EchoListener(picows.WSListener):
    """One picows connection: sends through ``send``, matches echoes against what it sent (FIFO: the
    echo answers in order), answers a gateway Close, and settles its books when TCP ends."""

    def __init__(self, kind: str, stats: Stats, on_echo=None) -> None:
        self.kind = kind
        self.stats = stats
        self.on_echo = on_echo
        self.transport: picows.WSTransport | None = None
        self.pending: collections.deque[tuple[WSMsgType, bytes]] = collections.deque()
        self.fragments: list[bytes] = []
        self.fragment_type: WSMsgType | None = None
        self.close_received: int | None = None
        self.close_sent = False
        self.closed = asyncio.get_running_loop().create_future()
        self.drained: asyncio.Future | None = None

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self.transport = transport
        self.stats.open[self.kind] += 1

    def send(self, msg_type: WSMsgType, payload: bytes) -> None:
        self.pending.append((msg_type, payload))
        self.stats.sent[self.kind] += 1
        self.stats.sent_bytes += len(payload)
        self.transport.send(msg_type, payload)

    def wait_drained(self) -> asyncio.Future:
        """Completes when every message sent so far came back (or the connection ended)."""
        self.drained = asyncio.get_running_loop().create_future()
        if not self.pending or self.closed.done():
            self.drained.set_result(None)
        return self.drained

    def close(self, code: int = 1000) -> None:
        if self.transport is not None and not self.close_sent and self.close_received is None:
            self.close_sent = True
            self.transport.send_close(WSCloseCode(code))

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type == WSMsgType.CLOSE:
            code = frame.get_close_code()
            code = code.value if isinstance(code, WSCloseCode) else int(code)
            if self.close_sent:
                self.stats.closes[f"{self.kind}:client:{code}"] += 1
                self.close_received = code
                transport.disconnect()
                return
            self.close_received = code
            self.stats.closes[f"{self.kind}:gateway:{code}"] += 1
            try:
                answer = WSCloseCode(code)
            except ValueError:  # a code picows has no name for (1005 never comes on the wire)
                answer = WSCloseCode.OK
            transport.send_close(answer)
            transport.disconnect()
            return
        if msg_type in (WSMsgType.PING, WSMsgType.PONG):
            return  # picows answers pings itself (enable_auto_pong)
        if msg_type != WSMsgType.CONTINUATION:
            self.fragment_type = msg_type
        self.fragments.append(frame.get_payload_as_bytes())
        if not frame.fin:
            return
        payload = self.fragments[0] if len(self.fragments) == 1 else b"".join(self.fragments)
        received_type = self.fragment_type
        self.fragments = []
        if not self.pending:
            self.stats.error(f"{self.kind}: unsolicited message")
            return
        expected_type, expected = self.pending.popleft()
        if expected_type == received_type and expected == payload:
            self.stats.echoed[self.kind] += 1
            self.stats.echoed_bytes += len(payload)
            if self.on_echo is not None:
                self.on_echo(payload)
        else:
            self.stats.corrupt[self.kind] += 1
        if not self.pending and self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        if self.transport is not None:
            self.stats.open[self.kind] -= 1
        if self.close_received is None:
            self.stats.closes[f"{self.kind}:none"] += 1
        if self.pending:
            if self.close_received is not None and not self.close_sent:
                self.stats.unechoed_at_close[f"{self.kind}:{self.close_received}"] += len(self.pending)
            else:
                self.stats.lost[self.kind] += len(self.pending)
            self.pending.clear()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        if not self.closed.done():
            self.closed.set_result(None)


class Run:
    """Shared state of the client tasks: where to connect, the stop signal, the counters."""

    def __init__(self, url: str, stats: Stats, args) -> None:
        self.url = url
        self.stats = stats
        self.args = args
        self.stopping = asyncio.Event()
        self.handshake_slots = asyncio.Semaphore(args.handshake_concurrency)
        self.closing_slots = asyncio.Semaphore(500)
        self.listeners: set[EchoListener] = set()

    async def connect(self, kind: str, on_echo=None, read_buffer: int = 4096) -> EchoListener | None:
        async with self.handshake_slots:
            try:
                _, listener = await picows.ws_connect(
                    lambda: EchoListener(kind, self.stats, on_echo),
                    self.url,
                    websocket_handshake_timeout=60,
                    read_buffer_init_size=read_buffer,
                )
            except Exception as error:  # noqa: BLE001: every failure is counted by class
                self.stats.handshakes[f"{kind}:fail"] += 1
                self.stats.error(f"{kind}: connect: {type(error).__name__}: {str(error)[:80]}")
                return None
        self.stats.handshakes[f"{kind}:ok"] += 1
        self.listeners.add(listener)
        listener.closed.add_done_callback(lambda _: self.listeners.discard(listener))
        return listener

    async def sleep_or_stop(self, seconds: float) -> bool:
        """Sleeps; True when the run is stopping."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    async def finish(self, listener: EchoListener) -> None:
        """The end of a client: wait for its echoes, Close 1000, wait for the gateway's answer. At the
        end of a run every client does this at once: at most `closing_slots` at a time, so that the
        deadlines measure the gateway and not this process working through 10,000 closes."""
        if listener.closed.done():
            return
        async with self.closing_slots:
            try:
                await asyncio.wait_for(listener.wait_drained(), 60)
            except asyncio.TimeoutError:
                self.stats.error(f"{listener.kind}: echoes not drained in 60 s")
            listener.close(1000)
            try:
                await asyncio.wait_for(asyncio.shield(listener.closed), 60)
            except asyncio.TimeoutError:
                answered = "Close answered, TCP not ended" if listener.close_received is not None else "no Close answer"
                self.stats.error(f"{listener.kind}: {answered} in 60 s")
                listener.transport.disconnect(graceful=False)
                await listener.closed

    async def hold(self, kind: str, body) -> None:
        """Keeps one client of `kind` connected until the run stops, reconnecting after the gateway
        ends it; `body(listener)` runs while it is connected and returns when it is closed or stopping."""
        while not self.stopping.is_set():
            listener = await self.connect(kind, read_buffer=1024 if kind == "idle" else 16384)
            if listener is None:
                if await self.sleep_or_stop(2 + random.random() * 3):
                    return
                continue
            if body is not None:
                await body(listener)
            else:
                stop = asyncio.ensure_future(self.stopping.wait())
                await asyncio.wait([listener.closed, stop], return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
            if self.stopping.is_set():
                await self.finish(listener)
                return
            # The gateway ended it (an idle timeout, for instance): counted; open a fresh one.
            if await self.sleep_or_stop(random.random()):
                return

    # The kinds.

    async def idle(self) -> None:
        await self.hold("idle", None)

    async def chatty(self) -> None:
        interval = self.args.chatty_interval

        async def body(listener: EchoListener) -> None:
            while not listener.closed.done():
                if await self.sleep_or_stop(random.expovariate(1 / interval)):
                    return
                if listener.closed.done():
                    return
                size = random.choice((16, 64, 200, 1000, 4000, 16000))
                if random.random() < 0.5:
                    listener.send(WSMsgType.TEXT, text_payload(size))
                else:
                    listener.send(WSMsgType.BINARY, binary_payload(size))

        await self.hold("chatty", body)

    async def slow(self) -> None:
        """Sends a burst, stops reading for a few seconds (the echo backs up through the gateway),
        then reads everything back."""

        async def body(listener: EchoListener) -> None:
            while not listener.closed.done():
                if await self.sleep_or_stop(self.args.slow_interval * (0.5 + random.random())):
                    return
                if listener.closed.done():
                    return
                socket_transport = listener.transport.underlying_transport
                socket_transport.pause_reading()
                for _ in range(self.args.slow_burst):
                    listener.send(WSMsgType.BINARY, binary_payload(64 * 1024))
                await asyncio.sleep(self.args.slow_pause)
                if not listener.closed.done():
                    socket_transport.resume_reading()
                try:
                    await asyncio.wait_for(listener.wait_drained(), 60)
                except asyncio.TimeoutError:
                    self.stats.error("slow: burst not echoed in 60 s")

        await self.hold("slow", body)

    async def reconnecting(self) -> None:
        """Connect, exchange a few messages, Close 1000, wait, again."""
        while not self.stopping.is_set():
            listener = await self.connect("reconnect")
            if listener is not None:
                for _ in range(random.randint(1, 3)):
                    listener.send(WSMsgType.TEXT, text_payload(random.choice((10, 100, 1000))))
                await self.finish(listener)
            if await self.sleep_or_stop(self.args.reconnect_interval * (0.5 + random.random())):
                return

    async def probe(self) -> None:
        """One connection whose echo times are the gateway's latency (event-loop lag) over time."""

        def on_echo(payload: bytes) -> None:
            rtt = time.perf_counter() - struct.unpack("!d", payload[:8])[0]
            self.stats.probe_rtts.append(rtt)
            self.stats.all_probe_rtts.append(rtt)

        while not self.stopping.is_set():
            listener = await self.connect("probe", on_echo=on_echo)
            if listener is None:
                await self.sleep_or_stop(1)
                continue
            while not listener.closed.done():
                if await self.sleep_or_stop(self.args.probe_interval):
                    break
                listener.send(WSMsgType.BINARY, struct.pack("!d", time.perf_counter()) + b"probe")
            if self.stopping.is_set():
                await self.finish(listener)
                return

    async def loop_lag(self) -> None:
        """This process's own event-loop lag: a probe RTT includes it, so it is reported beside it."""
        while not self.stopping.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.1)
            lag = time.perf_counter() - before - 0.1
            self.stats.loop_lags.append(lag)
            self.stats.all_loop_lags.append(lag)

    async def compressed(self) -> None:
        """websockets (a second implementation) offering permessage-deflate; verifies it was negotiated
        and that compressible text and binary come back equal."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        kind = "compressed"
        while not self.stopping.is_set():
            try:
                async with self.handshake_slots:
                    ws = await connect(self.url, compression="deflate", max_size=4 << 20, open_timeout=60, ping_interval=None)
            except Exception as error:  # noqa: BLE001
                self.stats.handshakes[f"{kind}:fail"] += 1
                self.stats.error(f"{kind}: connect: {type(error).__name__}: {str(error)[:80]}")
                if await self.sleep_or_stop(2 + random.random() * 3):
                    return
                continue
            self.stats.handshakes[f"{kind}:ok"] += 1
            self.stats.open[kind] += 1
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            self.stats.compression["negotiated" if "permessage-deflate" in extensions else "declined"] += 1
            outstanding = 0
            try:
                while True:
                    if await self.sleep_or_stop(random.expovariate(1 / self.args.chatty_interval)):
                        async with self.closing_slots:
                            await asyncio.wait_for(ws.close(1000), 60)
                        self.stats.closes[f"{kind}:client:{ws.close_code}"] += 1
                        break
                    if random.random() < 0.7:
                        size = random.choice((100, 2000, 20000))
                        words = ("{\"seq\":%d,\"user\":\"soak\",\"text\":\"hello hello gateway\"}" % random.randrange(1 << 30)) * (size // 50 + 1)
                        message: str | bytes = words
                        expected: str | bytes = words
                        size_bytes = len(words)
                    else:
                        message = expected = binary_payload(random.choice((100, 5000)))
                        size_bytes = len(message)
                    outstanding = 1
                    self.stats.sent[kind] += 1
                    self.stats.sent_bytes += size_bytes
                    await ws.send(message)
                    reply = await asyncio.wait_for(ws.recv(), 60)
                    outstanding = 0
                    if reply == expected:
                        self.stats.echoed[kind] += 1
                        self.stats.echoed_bytes += size_bytes
                    else:
                        self.stats.corrupt[kind] += 1
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else None
                if code is None:
                    self.stats.closes[f"{kind}:none"] += 1
                    self.stats.lost[kind] += outstanding
                else:
                    self.stats.closes[f"{kind}:gateway:{code}"] += 1
                    self.stats.unechoed_at_close[f"{kind}:{code}"] += outstanding
            except asyncio.TimeoutError:
                self.stats.error(f"{kind}: no echo or Close answer in time")
                self.stats.lost[kind] += outstanding
                await ws.close()
            finally:
                self.stats.open[kind] -= 1
