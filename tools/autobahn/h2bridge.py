"""An HTTP/1.1 WebSocket front for an RFC 8441 server, so that Autobahn|Testsuite's fuzzingclient (which
speaks HTTP/1.1 only) drives WebSockets carried on HTTP/2 extended CONNECT streams (tools/autobahn/
gateway.sh, modes h2 and h2-deflate).

Usage: h2bridge.py --listen PORT --connect PORT --ca FILE [--server-name NAME] [--connections N]

Each TCP connection from wstest is one WebSocket: the bridge reads its HTTP/1.1 upgrade request, opens one
extended CONNECT stream (`:method CONNECT`, `:protocol websocket`, `:scheme https`, `:path`,
`:authority` from Host) on one of at most N shared TLS connections to the server (ALPN h2; a stream goes
to the connection with the fewest open streams, so streams that overlap in time are multiplexed; a
connection the server ends with GOAWAY is replaced for later streams), forwards the request's other
fields (Sec-WebSocket-Protocol, Sec-WebSocket-Extensions, Origin, …; not Host, Connection, Upgrade or
Sec-WebSocket-Key, which HTTP/2 does not carry), and answers wstest:
  - `:status 200` -> `101 Switching Protocols` with Sec-WebSocket-Accept computed from wstest's key and
    the stream's response fields (the extension and subprotocol answers) copied;
  - any other status -> that status with the response's fields and body, then the TCP connection closes.
After the 101 the bytes pass verbatim both ways: wstest's masked frames become DATA unchanged (the
server's frame parser sees exactly what wstest sent), DATA becomes bytes on the TCP connection. wstest
closing its side (EOF) ends the stream (END_STREAM); the server's END_STREAM closes the TCP connection
once the DATA before it is written, and so does a RST_STREAM or the HTTP/2 connection's loss (wstest sees
the server close either way: a TCP connection cannot tell it more); a timeout or a failed write to wstest
resets the stream and drops the TCP connection.

Bounded: the bridge reads from wstest only as much as the stream's and the connection's send windows
allow, and acknowledges DATA (WINDOW_UPDATE) only once it is written to wstest's socket and drained, so
a stream holds at most its receive window (STREAM_WINDOW) plus the socket's write buffer (asyncio's
64 KiB high-water mark). Timeouts: the request head (HEAD_TIMEOUT), the TLS connection and its
SETTINGS, the stream's response (RESPONSE_TIMEOUT), a stream with no byte either way (IDLE_TIMEOUT), and
the rest of a stream once wstest has ended its side (CLOSE_TIMEOUT). At exit (SIGTERM/SIGINT) it prints one line to stderr: streams, streams opened while
another was open on the same connection, connections, the most streams open at once on one, resets and
errors.
"""
import argparse, asyncio, base64, hashlib, http, signal, ssl, sys, time
import h2.config, h2.connection, h2.events, h2.exceptions, h2.errors, h2.settings

HEAD_LIMIT = 16384
HEAD_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
RESPONSE_TIMEOUT = 10.0
IDLE_TIMEOUT = 60.0
CLOSE_TIMEOUT = 10.0
STREAM_WINDOW = 256 * 1024
CONNECTION_WINDOW = 4 * 1024 * 1024
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# RFC 9113 §8.2.2: connection-specific fields are not sent over HTTP/2; Host becomes :authority and the
# key/accept pair is HTTP/1.1's alone (RFC 8441 §5).
NOT_FORWARDED = {"host", "connection", "upgrade", "keep-alive", "proxy-connection", "transfer-encoding", "te",
                 "sec-websocket-key", "content-length"}
END, RESET = object(), object()
stats = {"streams": 0, "overlapped": 0, "connections": 0, "max_open": 0, "resets": 0, "refused": 0, "errors": 0}


def log(*args):
    print("h2bridge:", *args, file=sys.stderr, flush=True)


class Stream:
    def __init__(self):
        self.response = asyncio.get_running_loop().create_future()
        self.inbox = asyncio.Queue()  # (data, flow-controlled length) | END | RESET; bounded by the window
        self.window = asyncio.Event()  # set when the send window may have grown (or the stream is gone)


class H2Connection:
    """One TLS connection carrying many streams; one task reads it and dispatches events to streams."""

    def __init__(self, args):
        self.args, self.streams, self.alive, self.settled = args, {}, False, None

    async def open(self):
        ctx = ssl.create_default_context(cafile=self.args.ca)
        ctx.set_alpn_protocols(["h2"])
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", self.args.connect, ssl=ctx, server_hostname=self.args.server_name), CONNECT_TIMEOUT)
        alpn = self.writer.get_extra_info("ssl_object").selected_alpn_protocol()
        if alpn != "h2":
            raise ConnectionError(f"ALPN selected {alpn!r}, not h2 (is tls.http2 on?)")
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.ENABLE_PUSH: 0, h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW})
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self.settled = asyncio.get_running_loop().create_future()
        self.alive = True
        self.task = asyncio.create_task(self.read_loop())
        await self.flush()
        await asyncio.wait_for(asyncio.shield(self.settled), CONNECT_TIMEOUT)
        stats["connections"] += 1

    async def flush(self):
        data = self.conn.data_to_send()
        if data and self.alive:
            self.writer.write(data)
            await self.writer.drain()

    def can_open(self):
        return self.alive and self.settled.done() and not self.settled.exception() and \
            self.conn.open_outbound_streams < self.conn.remote_settings.max_concurrent_streams

    async def read_loop(self):
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("server closed the connection")
                for event in self.conn.receive_data(data):
                    self.dispatch(event)
                await self.flush()
        except Exception as error:  # EOF, TLS error, h2 ProtocolError: every stream is lost
            if not isinstance(error, (ConnectionError, asyncio.IncompleteReadError)):
                log("connection error:", repr(error))
                stats["errors"] += 1
            self.lose(error)

    def lose(self, error):
        self.alive = False
        if not self.settled.done():
            self.settled.set_exception(ConnectionError(str(error)))
        for stream in self.streams.values():
            stream.inbox.put_nowait(RESET)
            stream.window.set()
            if not stream.response.done():
                stream.response.set_exception(ConnectionError(str(error)))
        self.streams.clear()
        self.writer.close()

    def dispatch(self, event):
        stream = self.streams.get(getattr(event, "stream_id", None) or 0)
        if isinstance(event, h2.events.RemoteSettingsChanged):
            enabled = self.conn.remote_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
            if not self.settled.done():
                if enabled == 1:
                    self.settled.set_result(None)
                else:
                    self.settled.set_exception(ConnectionError("no SETTINGS_ENABLE_CONNECT_PROTOCOL = 1"))
            for s in self.streams.values():  # INITIAL_WINDOW_SIZE may have changed
                s.window.set()
        elif isinstance(event, h2.events.ResponseReceived) and stream and not stream.response.done():
            stream.response.set_result(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            if stream:
                stream.inbox.put_nowait((event.data, event.flow_controlled_length))
            else:  # a stream the bridge already let go of: give the connection window back
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded) and stream:
            stream.inbox.put_nowait(END)
        elif isinstance(event, h2.events.StreamReset) and stream:
            stats["resets"] += 1
            stream.inbox.put_nowait(RESET)
            stream.window.set()
            if not stream.response.done():
                stream.response.set_exception(ConnectionError(f"RST_STREAM {event.error_code!r}"))
        elif isinstance(event, h2.events.WindowUpdated):
            for s in ([stream] if stream else self.streams.values()):
                s.window.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            # python-h2 processes no frame after a GOAWAY, so the streams it left open are lost too (with
            # the default limits a GOAWAY only comes from a drain or an error); later streams go to a new
            # connection.
            log("GOAWAY", event.error_code, "last stream", event.last_stream_id)
            self.lose(ConnectionError(f"GOAWAY {event.error_code!r}"))

    def open_stream(self, headers):
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, headers)
        self.streams[stream_id] = Stream()
        stats["streams"] += 1
        stats["max_open"] = max(stats["max_open"], self.conn.open_outbound_streams)
        stats["overlapped"] += self.conn.open_outbound_streams > 1  # opened while another was open
        return stream_id, self.streams[stream_id]

    def forget(self, stream_id):
        """Drops the stream (ended or reset both ways, or given up: then reset), acknowledging what it left."""
        stream = self.streams.pop(stream_id, None)
        if not self.alive:
            return
        if stream:
            while not stream.inbox.empty():
                item = stream.inbox.get_nowait()
                if isinstance(item, tuple):
                    self.conn.acknowledge_received_data(item[1], stream_id)
        try:
            if self.conn.streams.get(stream_id) is not None and not self.conn.streams[stream_id].closed:
                self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        except h2.exceptions.H2Error:
            pass


class Pool:
    def __init__(self, args):
        self.args, self.connections, self.lock = args, [], asyncio.Lock()

    async def open_stream(self, headers):
        async with self.lock:  # one connection opened at a time; streams are spread over the live ones
            self.connections = [c for c in self.connections if c.alive]
            usable = [c for c in self.connections if c.can_open()]
            if not usable and len(self.connections) < self.args.connections:
                connection = H2Connection(self.args)
                await connection.open()
                self.connections.append(connection)
                usable = [connection]
            if not usable:
                raise ConnectionError("every connection is at its concurrent stream limit")
            connection = min(usable, key=lambda c: c.conn.open_outbound_streams)
            stream_id, stream = connection.open_stream(headers)
            await connection.flush()
            return connection, stream_id, stream


def parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    fields = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            fields.append((name.strip().lower(), value.strip()))
    return method, target, version, fields


def status_line(status):
    try:
        return f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
    except ValueError:
        return f"HTTP/1.1 {status} Unknown\r\n"


async def handle(pool, reader, writer):
    try:
        await bridge(pool, reader, writer)
    except Exception as error:
        if not isinstance(error, (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError)):
            log("error:", repr(error))
            stats["errors"] += 1
    finally:
        writer.transport.abort()


async def bridge(pool, reader, writer):
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        method, target, _, fields = parse_head(head[:-4])
    except (asyncio.LimitOverrunError, ValueError):
        writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        return
    get = lambda name: next((v for n, v in fields if n == name), None)
    key = get("sec-websocket-key")
    if method != "GET" or key is None or (get("upgrade") or "").lower() != "websocket":
        writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        return
    headers = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"), (":path", target),
               (":authority", get("host") or f"localhost:{pool.args.connect}")]
    headers += [(n, v) for n, v in fields if n not in NOT_FORWARDED]
    connection, stream_id, stream = await pool.open_stream(headers)
    try:
        response = await asyncio.wait_for(stream.response, RESPONSE_TIMEOUT)
        status = int(dict(response)[":status"])
        answer = [(n, v) for n, v in response if not n.startswith(":")]
        if status != 200:
            stats["refused"] += 1
            await refuse(status, answer, connection, stream_id, stream, writer)
            return
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        out = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        out += f"Sec-WebSocket-Accept: {accept}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in answer) + "\r\n"
        writer.write(out.encode("latin-1"))
        await writer.drain()
        await pipe(connection, stream_id, stream, reader, writer)
    finally:
        connection.forget(stream_id)


async def refuse(status, answer, connection, stream_id, stream, writer):
    """The refusal as HTTP/1.1: its fields and its body (read until END_STREAM, bounded), then close."""
    body = b""
    while True:
        item = await asyncio.wait_for(stream.inbox.get(), RESPONSE_TIMEOUT)
        if not isinstance(item, tuple):
            break
        body += item[0]
        connection.conn.acknowledge_received_data(item[1], stream_id)
        if len(body) > HEAD_LIMIT:
            break
    out = status_line(status) + "".join(f"{n}: {v}\r\n" for n, v in answer if n != "content-length")
    out += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    writer.write(out.encode("latin-1") + body)
    await writer.drain()
    if connection.alive:
        await connection.flush()


async def pipe(connection, stream_id, stream, reader, writer):
    last = [time.monotonic()]
    conn = connection.conn

    async def window():  # the send window (stream's and connection's), once it is open; 0 if the stream is gone
        while connection.alive and stream_id in connection.streams:
            available = conn.local_flow_control_window(stream_id)
            if available > 0:
                return available
            stream.window.clear()
            await stream.window.wait()
        return 0

    async def upward():  # wstest -> DATA, only as much as the send windows allow
        while True:
            available = await window()
            if available == 0:
                return
            data = await reader.read(min(available, conn.max_outbound_frame_size))
            last[0] = time.monotonic()
            if not data:  # wstest closed its side: END_STREAM
                if connection.alive and stream_id in connection.streams:
                    conn.end_stream(stream_id)
                    await connection.flush()
                return
            # Other streams share the connection's window: it may have shrunk during the read, so what
            # was read goes out as the window allows (at most one frame's worth waits here).
            while data:
                available = await window()
                if available == 0:
                    return
                conn.send_data(stream_id, data[:available])
                data = data[available:]
                await connection.flush()

    async def downward():  # DATA -> wstest, acknowledged once written and drained
        while True:
            item = await stream.inbox.get()
            last[0] = time.monotonic()
            if item is END:
                if writer.can_write_eof():
                    writer.write_eof()
                await writer.drain()
                return "end"
            if item is RESET:
                return "reset"
            writer.write(item[0])
            await writer.drain()
            if connection.alive:
                conn.acknowledge_received_data(item[1], stream_id)
                await connection.flush()

    up, down = asyncio.create_task(upward()), asyncio.create_task(downward())
    up_done_at = None
    try:
        while not down.done():
            await asyncio.wait({up, down} if not up.done() else {down}, timeout=1.0,
                               return_when=asyncio.FIRST_COMPLETED)
            if up.done() and up_done_at is None:
                up_done_at = time.monotonic()
            if up.done() and up.exception() is not None:
                error = up.exception()
                if not isinstance(error, ConnectionError):
                    log(f"stream {stream_id}: {error!r}")
                    stats["errors"] += 1
                break  # wstest's socket failed: reset the stream (forget)
            if time.monotonic() - last[0] > IDLE_TIMEOUT:
                log(f"stream {stream_id}: idle for {IDLE_TIMEOUT:.0f} s, reset")
                break
            if up_done_at is not None and time.monotonic() - up_done_at > CLOSE_TIMEOUT:
                log(f"stream {stream_id}: not ended {CLOSE_TIMEOUT:.0f} s after wstest's EOF, reset")
                break
        if down.done() and not down.cancelled() and down.exception() is None:
            # The server ended or reset the stream: the TCP connection closes after what came before (FIN).
            if down.result() == "end" and not up.done() and stream_id in connection.streams and connection.alive:
                s = conn.streams.get(stream_id)
                if s is not None and not s.closed:
                    conn.end_stream(stream_id)
                    await connection.flush()
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
            except (asyncio.TimeoutError, ConnectionError):
                pass
    finally:
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True, help="the HTTP/1.1 port wstest connects to")
    parser.add_argument("--connect", type=int, required=True, help="the gateway's TLS port (127.0.0.1)")
    parser.add_argument("--ca", required=True, help="PEM file of the CA that signed the gateway's certificate")
    parser.add_argument("--server-name", default="localhost", help="SNI name and name checked (localhost)")
    parser.add_argument("--connections", type=int, default=1, help="most HTTP/2 connections at once (1)")
    args = parser.parse_args()
    pool = Pool(args)
    server = await asyncio.start_server(lambda r, w: handle(pool, r, w), "127.0.0.1", args.listen, limit=HEAD_LIMIT)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    log(f"listening on 127.0.0.1:{args.listen}, streams to 127.0.0.1:{args.connect} (h2, at most "
        f"{args.connections} connection(s))")
    async with server:
        await stop.wait()
    log(" ".join(f"{k}={v}" for k, v in stats.items()))


if __name__ == "__main__":
    asyncio.run(main())
