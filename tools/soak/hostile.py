"""Hostile clients over raw sockets: each case breaks one rule and checks the answer it must get
(RFC 6455 §7.4.1 codes; the gateway's limits and deadlines from the soak configuration)."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import struct
import traceback

from stats import Stats


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False, masked: bool = True, length: int | None = None) -> bytes:
    """A client frame; `length` overrides the declared payload length (for oversize declarations)."""
    declared = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    mask_bit = 0x80 if masked else 0
    if declared < 126:
        head = struct.pack("!BB", first, mask_bit | declared)
    elif declared < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, declared)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, declared)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


# name -> (bytes after the handshake, expected Close code from the gateway)
CASES: dict[str, tuple[bytes, int]] = {
    "unmasked": (frame(0x1, b"hello", masked=False), 1002),
    "reserved-opcode": (frame(0x3, b"x"), 1002),
    "rsv1-without-extension": (frame(0x1, b"x", rsv1=True), 1002),
    "fragmented-ping": (frame(0x9, b"p", fin=False), 1002),
    "invalid-utf8": (frame(0x1, b"ok \xff\xfe"), 1007),
    "oversize-frame": (frame(0x2, b"", length=8 << 20), 1009),
}
TRICKLE_CODE = 1008  # timeouts.frame: the frame must arrive whole in time however steadily it trickles


class Hostile:
    def __init__(self, host: str, port: int, stats: Stats, stopping: asyncio.Event, frame_timeout: float) -> None:
        self.host = host
        self.port = port
        self.stats = stats
        self.stopping = stopping
        self.frame_timeout = frame_timeout

    async def run(self, index: int) -> None:
        names = list(CASES) + ["bad-handshake"] + (["trickle"] if self.frame_timeout else [])
        turn = index
        while not self.stopping.is_set():
            name = names[turn % len(names)]
            turn += 1
            try:
                await self.one(name)
            except Exception as error:  # noqa: BLE001: counted by class and where it was raised
                where = traceback.extract_tb(error.__traceback__)[-1]
                self.stats.hostile[f"{name}:error {type(error).__name__} in {where.name}"] += 1
            try:
                await asyncio.wait_for(self.stopping.wait(), 1 + random.random() * 3)
            except asyncio.TimeoutError:
                pass

    async def handshake(self, writer: asyncio.StreamWriter, reader: asyncio.StreamReader, *, key: bool = True) -> bytes:
        lines = [
            "GET /echo HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
        ]
        if key:
            lines.append("Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode())
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)

    async def one(self, name: str) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            if name == "bad-handshake":
                head = await self.handshake(writer, reader, key=False)
                status = head.split(b" ", 2)[1].decode()
                self.stats.hostile[f"{name}:{'ok' if status == '400' else 'got ' + status}"] += 1
                return
            head = await self.handshake(writer, reader)
            if not head.startswith(b"HTTP/1.1 101"):
                self.stats.hostile[f"{name}:no 101"] += 1
                return
            if name == "trickle":
                body = frame(0x2, os.urandom(200))
                trickler = asyncio.ensure_future(self.trickle(writer, body))
                try:
                    code = await asyncio.wait_for(self.read_close(reader), self.frame_timeout + 30)
                finally:
                    trickler.cancel()
                if code is None:
                    # The echo answers cut-through, so the gateway is inside its copy of the frame
                    # toward us when the deadline fires: a Close cannot go there (never inside a
                    # frame), so it ends TCP. That is the expected end too.
                    name, expected = "trickle/mid-frame", None
                else:
                    expected = TRICKLE_CODE
            else:
                data, expected = CASES[name]
                writer.write(data)
                code = await asyncio.wait_for(self.read_close(reader), 30)
            self.stats.hostile[f"{name}:{'ok' if code == expected else f'got {code}'}"] += 1
            if code is not None:
                # Answer the Close; the gateway then ends TCP.
                try:
                    writer.write(frame(0x8, struct.pack("!H", code)))
                    await asyncio.wait_for(reader.read(), 15)
                except (ConnectionError, asyncio.TimeoutError):
                    pass
        finally:
            writer.close()

    async def trickle(self, writer: asyncio.StreamWriter, body: bytes) -> None:
        for i in range(len(body)):
            writer.write(body[i : i + 1])
            await asyncio.sleep(1)

    async def read_close(self, reader: asyncio.StreamReader) -> int | None:
        """Reads server frames until a Close; its code (1005 without one), None at EOF first (between
        frames or inside one)."""
        try:
            while True:
                head = await reader.readexactly(2)
                opcode = head[0] & 0x0F
                length = head[1] & 0x7F
                if length == 126:
                    length = struct.unpack("!H", await reader.readexactly(2))[0]
                elif length == 127:
                    length = struct.unpack("!Q", await reader.readexactly(8))[0]
                payload = await reader.readexactly(length)
                if opcode == 0x8:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
