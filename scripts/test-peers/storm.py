"""Fault storms against a wsgate listener: many concurrent raw clients that reset, abort or hold.

Standard library only (asyncio, ssl, socket). Used by the fault tests (GatewayTests: ResetStormTests,
TLSAbortStormTests, FDExhaustionTests) and by `.ci/run`'s leak check against an address-sanitized
`wsgate`. Every connection is bounded by --timeout; the result is one JSON line on stdout with a count
per outcome, so the caller asserts exact numbers.

Modes (RELIABILITY.md, Part 4):
  reset-mid-echo  G-07: upgrade, read --read bytes of what the upstream streams, then RST (SO_LINGER 0);
                  with --size, first send one binary message of that size (for an echo upstream)
  send-until-close G-07/U-01: upgrade, send one --size binary message while reading; report the code
                  of the Close the gateway sends (or "tcp-close" without one), then close
  tls-abort       T-09: one kind of TLS abort (--kind): half-hello-rst, half-hello-fin, half-hello-hold,
                  garbage, rst-mid-handshake, rst-after-handshake
  hold            R-12: open --count TCP connections, print how many connected, hold them until stdin
                  closes
"""

import argparse, asyncio, base64, json, os, socket, ssl, struct, sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
LINGER_RST = struct.pack("ii", 1, 0)


def handshake_request(path, host):
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def client_frame(opcode, payload):
    """A masked frame with the all-zero key (legal, RFC 6455 §5.3): the payload goes as is."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + b"\0\0\0\0" + payload


def tls_context():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def reset(writer):
    """Close with SO_LINGER {1, 0}: the kernel sends RST and drops whatever is unsent."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        except OSError:
            pass
    writer.transport.abort()


class Refused(Exception):
    """The gateway answered the upgrade with something other than 101 (counted as refused-<status>)."""


async def small_buffer_connection(args):
    """A connected socket with a small receive buffer, set before connecting: a client that reads a
    little and resets must not let the kernel buffer megabytes of a flood for it (loopback autotuning)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (args.host, args.port))
    except BaseException:
        sock.close()
        raise
    return sock


class Gate:
    """Upgrades at most --parallel at a time (a loaded machine's gateway would time out hundreds of
    upstream handshakes started at once), then holds every connection until all are upgraded, so that
    the faults that follow hit them all at once."""

    def __init__(self, count, parallel):
        self.slots = asyncio.Semaphore(parallel)
        self.waiting = count
        self.all_open = asyncio.Event()

    def arrived(self):
        self.waiting -= 1
        if self.waiting <= 0:
            self.all_open.set()


async def upgrade(args):
    async with args.gate.slots:
        try:
            reader, writer = await upgrade_one(args)
        except BaseException:
            args.gate.arrived()
            raise
    args.gate.arrived()
    await args.gate.all_open.wait()
    return reader, writer


async def upgrade_one(args):
    reader, writer = await asyncio.open_connection(
        sock=await small_buffer_connection(args),
        ssl=tls_context() if args.tls else None,
        server_hostname="localhost" if args.tls else None,
    )
    writer.write(handshake_request(args.path, args.host))
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        writer.transport.abort()
        raise Refused(head.split(b"\r\n")[0].decode(errors="replace"))
    return reader, writer


async def read_frame(reader):
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    if b1 & 0x80:
        await reader.readexactly(4)
    return b0 & 0x0F, await reader.readexactly(n) if n <= 1 << 16 else await skip(reader, n)


async def skip(reader, n):
    while n > 0:
        chunk = await reader.read(min(n, 1 << 16))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", n)
        n -= len(chunk)
    return b""


async def reset_mid_echo(args):
    reader, writer = await upgrade(args)
    if args.size:
        writer.write(client_frame(0x2, b"\x5a" * args.size))
    received = 0
    while received < args.read:
        chunk = await reader.read(min(65536, args.read - received))
        if not chunk:
            writer.transport.abort()
            return "eof-before-reset"
        received += len(chunk)
    reset(writer)
    return "reset"


async def send_until_close(args):
    reader, writer = await upgrade(args)
    writer.write(client_frame(0x2, b"\x5a" * (args.size or 1 << 20)))
    try:
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else "empty"
                writer.transport.abort()
                return f"close-{code}"
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.transport.abort()
        return "tcp-close"


def client_hello():
    """A real ClientHello from this Python's OpenSSL (memory BIOs; nothing is sent)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = tls_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


async def tls_abort(args, hello):
    kind = args.kind
    if kind == "rst-after-handshake":
        reader, writer = await asyncio.open_connection(args.host, args.port, ssl=tls_context(), server_hostname="localhost")
        reset(writer)
        return kind
    reader, writer = await asyncio.open_connection(args.host, args.port)
    if kind == "garbage":
        writer.write(b"\x16\x03\x01\x00\x10" + os.urandom(16) + b"\x15\xff\xff" + os.urandom(64))
        await writer.drain()
        # The gateway answers with an alert (or nothing) and closes: wait for its end, then go.
        try:
            await reader.read()
        except ConnectionError:
            pass
        writer.transport.abort()
        return kind
    if kind == "rst-mid-handshake":
        writer.write(hello)
        await writer.drain()
        await reader.read(1)  # the server's first flight has started
        reset(writer)
        return kind
    writer.write(hello[: len(hello) // 2])
    await writer.drain()
    if kind == "half-hello-rst":
        await asyncio.sleep(0.05)
        reset(writer)
    elif kind == "half-hello-fin":
        await asyncio.sleep(0.05)
        writer.close()
    elif kind == "half-hello-hold":
        await reader.read()  # until the gateway's handshake deadline closes it
        writer.transport.abort()
    else:
        raise ValueError(kind)
    return kind


async def hold(args):
    sockets = []
    for _ in range(args.count):
        try:
            s = socket.create_connection((args.host, args.port), timeout=args.timeout)
            sockets.append(s)
        except OSError:
            break
    print(json.dumps({"connected": len(sockets)}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for s in sockets:
        s.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--path", default="/")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--read", type=int, default=1 << 20)
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--kind", default="half-hello-rst")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--parallel", type=int, default=32, help="upgrades in flight at once")
    args = parser.parse_args()
    if args.mode == "hold":
        await hold(args)
        return
    hello = client_hello() if args.mode == "tls-abort" else b""
    args.gate = Gate(args.count, args.parallel)
    runs = {"reset-mid-echo": reset_mid_echo, "send-until-close": send_until_close}
    one = runs.get(args.mode) or (lambda a: tls_abort(a, hello))

    async def bounded():
        try:
            return await asyncio.wait_for(one(args), args.timeout)
        except asyncio.TimeoutError:
            return "timeout"
        except Refused as refusal:
            return "refused-" + (str(refusal).split(" ") + ["?", "?"])[1]
        except Exception as error:  # counted by kind, never raised: the caller asserts the counts
            return "error-" + type(error).__name__

    outcomes = await asyncio.gather(*(bounded() for _ in range(args.count)))
    counts = {}
    for outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    print(json.dumps(counts, sort_keys=True), flush=True)


asyncio.run(main())
