"""RFC 8441 client for the HTTP/2 tests (GatewayTests: HTTP2InteropTests): Python `h2` for HTTP/2 (it
sends `:protocol` once the server's SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 arrived) and `wsproto` for the
RFC 6455 frames on each stream. Every run is bounded (20 s); it prints what it saw, one line per fact.

Usage: h2-websocket-client.py MODE PORT CA_FILE [N]
  echo N         N streams on one connection, each sends a text message, expects it echoed, closes 1000
                 and ends its stream; prints "OK N"
  no-protocol    a CONNECT without :protocol; prints "STATUS s" and "ENDED" (or "RESET code")
  alpn           offers h2 and http/1.1; prints "ALPN <selected>"
  rapid-reset N  N streams each opened and reset at once; prints "GOAWAY code" or "CLOSED"
  big-headers N  one CONNECT with an N-byte header; prints "GOAWAY code", "STATUS s" or "RESET code"
  silent         a stream that never sends DATA after its 200; prints "STATUS s", "CLOSE code seconds"
                 (answered with its Close and END_STREAM), then how the stream ended
  lifetime N     N streams at once; prints "GOAWAY code last_stream_id" and "STREAMS [(id, status)…]"
  reset-open     one stream reset (RST_STREAM CANCEL) after its 200, then the connection closes cleanly;
                 prints "RESET-SENT"
  drain          one stream, echoed once; prints "OPEN", then in order what the drain brings: "GOAWAY
                 code last_stream_id", "CLOSE code" (answered with the same code and END_STREAM), "ENDED"
                 or "RESET code", "EOF"
"""
import socket, ssl, sys, time
import h2.connection, h2.config, h2.events, h2.settings, h2.errors
from wsproto.connection import Connection, ConnectionType
from wsproto.events import TextMessage, CloseConnection, Ping

mode, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 20

def connect(alpn=("h2",)):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(list(alpn))
    tls = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")
    return tls

def h2conn(tls):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    tls.sendall(conn.data_to_send())
    return conn

def pump(tls, conn):
    data = tls.recv(65536)
    if not data:
        raise EOFError("connection closed")
    events = conn.receive_data(data)
    out = conn.data_to_send()
    if out:
        tls.sendall(out)
    return events

def wait_settings(tls, conn):
    while True:
        for ev in pump(tls, conn):
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                s = ev.changed_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
                assert s is not None and s.new_value == 1, ev.changed_settings
                return ev.changed_settings

def session():
    """A TLS connection speaking h2, once the server's SETTINGS (ENABLE_CONNECT_PROTOCOL = 1) arrived."""
    tls = connect()
    conn = h2conn(tls)
    wait_settings(tls, conn)
    return tls, conn

def connect_headers(path="/echo", protocol="websocket", extra=()):
    h = [(":method", "CONNECT")]
    if protocol is not None:
        h += [(":protocol", protocol), (":scheme", "https"), (":path", path)]
    h += [(":authority", f"localhost:{port}")]
    if protocol is not None:
        h += [("sec-websocket-version", "13")]
    return h + list(extra)

def open_streams(tls, conn, n=1, headers=None):
    """Sends n extended CONNECTs (or `headers`) in one write; the stream IDs."""
    ids = []
    for _ in range(n):
        ids.append(conn.get_next_available_stream_id())
        conn.send_headers(ids[-1], headers if headers is not None else connect_headers())
    tls.sendall(conn.data_to_send())
    return ids

def events(tls, conn, state=lambda: None):
    """The connection's events until the 20 s deadline (failing with `state()`), flushing after each."""
    while True:
        assert time.monotonic() < deadline, state()
        for ev in pump(tls, conn):
            yield ev
            out = conn.data_to_send()
            if out:
                tls.sendall(out)

def frames(conn, ws, ev):
    """A DataReceived's WebSocket events (its window acknowledged)."""
    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
    if not ev.data:
        return []
    ws.receive_data(ev.data)
    return list(ws.events())

def answer_close(conn, sid, ws, close):
    """Answers a Close with the same code and ends the stream."""
    conn.send_data(sid, ws.send(close.response()), end_stream=True)

def until_goaway(tls, conn, also=lambda ev: None):
    """Reads (5 s timeout) until GOAWAY ("GOAWAY code") or the connection's loss ("CLOSED error")."""
    tls.settimeout(5)
    try:
        while True:
            for ev in pump(tls, conn):
                if isinstance(ev, h2.events.ConnectionTerminated):
                    print("GOAWAY", ev.error_code)
                    sys.exit(0)
                also(ev)
    except (EOFError, ConnectionResetError, BrokenPipeError, ssl.SSLError) as e:
        print("CLOSED", type(e).__name__)

def echo(n):
    tls = connect()
    assert tls.selected_alpn_protocol() == "h2", tls.selected_alpn_protocol()
    conn = h2conn(tls)
    wait_settings(tls, conn)
    streams = {sid: {"ws": Connection(ConnectionType.CLIENT), "status": None, "got": [], "closed": False, "ended": False}
               for sid in open_streams(tls, conn, n)}
    state = lambda: {k: (v["status"], v["got"], v["closed"], v["ended"]) for k, v in streams.items()}
    for ev in events(tls, conn, state):
        if isinstance(ev, h2.events.ResponseReceived):
            st = streams[ev.stream_id]
            st["status"] = dict(ev.headers)[":status"]
            assert st["status"] == "200", ev.headers
            msg = f"hello {ev.stream_id} " + "x" * (ev.stream_id * 10)
            conn.send_data(ev.stream_id, st["ws"].send(TextMessage(data=msg)))
        elif isinstance(ev, h2.events.DataReceived):
            st = streams[ev.stream_id]
            if st["closed"]:
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                continue
            for wev in frames(conn, st["ws"], ev):
                if isinstance(wev, TextMessage):
                    st["got"].append(wev.data)
                    assert wev.data.startswith(f"hello {ev.stream_id} "), wev.data
                    conn.send_data(ev.stream_id, st["ws"].send(CloseConnection(code=1000)))
                elif isinstance(wev, CloseConnection):
                    st["closed"] = wev.code
                    conn.end_stream(ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            streams[ev.stream_id]["ended"] = True
            if all(s["ended"] for s in streams.values()):
                break
        elif isinstance(ev, h2.events.StreamReset):
            raise AssertionError(f"stream {ev.stream_id} reset: {ev.error_code}")
        elif isinstance(ev, h2.events.ConnectionTerminated):
            raise AssertionError(f"GOAWAY {ev}")
    for sid, st in streams.items():
        assert st["got"] and st["closed"] == 1000, (sid, st)
    print("OK", len(streams))

def refused(headers):
    tls, conn = session()
    open_streams(tls, conn, headers=headers)
    for ev in events(tls, conn):
        if isinstance(ev, h2.events.ResponseReceived):
            print("STATUS", dict(ev.headers)[":status"])
        elif isinstance(ev, h2.events.StreamEnded):
            print("ENDED")
            return
        elif isinstance(ev, h2.events.StreamReset):
            print("RESET", ev.error_code)
            return

def big_headers_event(ev):
    if isinstance(ev, h2.events.ResponseReceived):
        print("STATUS", dict(ev.headers)[":status"])
    if isinstance(ev, h2.events.StreamReset):
        print("RESET", ev.error_code)
        sys.exit(0)

if mode == "echo":
    echo(int(sys.argv[4]))
elif mode == "no-protocol":
    refused(connect_headers(protocol=None))
elif mode == "alpn":
    tls = connect(("h2", "http/1.1"))
    print("ALPN", tls.selected_alpn_protocol())
elif mode == "rapid-reset":
    tls, conn = session()
    tls.settimeout(5)
    try:
        for i in range(int(sys.argv[4])):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, connect_headers())
            conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            tls.sendall(conn.data_to_send())
    except (EOFError, ConnectionResetError, BrokenPipeError, ssl.SSLError) as e:
        print("CLOSED", type(e).__name__)
        sys.exit(0)
    until_goaway(tls, conn)
elif mode == "big-headers":
    tls, conn = session()
    open_streams(tls, conn, headers=connect_headers(extra=[("x-pad", "p" * int(sys.argv[4]))]))
    until_goaway(tls, conn, big_headers_event)
elif mode == "silent":
    # A stream that never sends DATA after its 200: the idle timeout still applies.
    tls, conn = session()
    (sid,) = open_streams(tls, conn)
    ws = Connection(ConnectionType.CLIENT)
    start = time.monotonic()
    for ev in events(tls, conn):
        if isinstance(ev, h2.events.ResponseReceived):
            print("STATUS", dict(ev.headers)[":status"])
        elif isinstance(ev, h2.events.DataReceived):
            for wev in frames(conn, ws, ev):
                if isinstance(wev, CloseConnection):
                    print("CLOSE", wev.code, round(time.monotonic() - start))
                    answer_close(conn, sid, ws, wev)
        if isinstance(ev, h2.events.DataReceived) and ev.stream_ended is not None or isinstance(
            ev, (h2.events.StreamEnded, h2.events.StreamReset)
        ):
            print("StreamEnded" if not isinstance(ev, h2.events.StreamReset) else "StreamReset")
            sys.exit(0)
elif mode == "reset-open":
    tls, conn = session()
    (sid,) = open_streams(tls, conn)
    for ev in events(tls, conn):
        if isinstance(ev, h2.events.ResponseReceived):
            conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            tls.sendall(conn.data_to_send())
            print("RESET-SENT", flush=True)
            break
    time.sleep(0.5)
    conn.close_connection()
    tls.sendall(conn.data_to_send())
    tls.close()
elif mode == "drain":
    tls, conn = session()
    (sid,) = open_streams(tls, conn)
    ws = Connection(ConnectionType.CLIENT)
    try:
        for ev in events(tls, conn):
            if isinstance(ev, h2.events.ResponseReceived):
                conn.send_data(sid, ws.send(TextMessage(data="before the drain")))
            elif isinstance(ev, h2.events.DataReceived):
                for wev in frames(conn, ws, ev):
                    if isinstance(wev, TextMessage):
                        print("OPEN", flush=True)
                    elif isinstance(wev, CloseConnection):
                        print("CLOSE", wev.code, flush=True)
                        answer_close(conn, sid, ws, wev)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                print("GOAWAY", ev.error_code, ev.last_stream_id, flush=True)
                # h2 stops processing after GOAWAY; answer the drain's Close by hand if it comes.
                break
            elif isinstance(ev, h2.events.StreamEnded):
                print("ENDED", flush=True)
            elif isinstance(ev, h2.events.StreamReset):
                print("RESET", ev.error_code, flush=True)
        # After GOAWAY: read raw frames until EOF and report a Close in DATA (h2 refuses to go on).
        rest = b""
        while True:
            data = tls.recv(65536)
            if not data:
                break
            rest += data
        print("CLOSE-AFTER-GOAWAY" if b"\x03\xe9" in rest else "NOTHING-AFTER-GOAWAY", flush=True)
        print("EOF", flush=True)
    except (EOFError, ConnectionResetError, ssl.SSLError) as e:
        print("EOF", type(e).__name__, flush=True)
elif mode == "lifetime":
    tls, conn = session()
    n = int(sys.argv[4])
    open_streams(tls, conn, n)
    statuses = {}
    while True:
        assert time.monotonic() < deadline
        for ev in pump(tls, conn):
            if isinstance(ev, h2.events.ResponseReceived):
                statuses[ev.stream_id] = dict(ev.headers)[":status"]
            elif isinstance(ev, h2.events.ConnectionTerminated):
                # h2 closes its side on GOAWAY: later frames cannot be processed any more.
                print("GOAWAY", ev.error_code, ev.last_stream_id)
                print("STREAMS", sorted(statuses.items()))
                sys.exit(0)
            elif isinstance(ev, h2.events.StreamReset):
                statuses.setdefault(ev.stream_id, f"reset {ev.error_code}")
        if len(statuses) >= n or (len(statuses) >= 1 and time.monotonic() > deadline - 15):
            print("STREAMS", sorted(statuses.items()))
            break
