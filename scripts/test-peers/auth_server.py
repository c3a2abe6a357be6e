"""A forward-auth service for wsgate's tests (issue #13 §3), standard library only.

Usage: python3 auth_server.py
Prints "AUTH_PORT CONTROL_PORT" on its first line, then serves until killed.

The auth port answers by the first path segment of the request (the gateway's `auth.forward.url`):
  /allow          200 with X-Auth-User: ada, X-Auth-Team: blue (kept alive)
  /deny401        401 with WWW-Authenticate: Bearer realm="wsgate" and a body
  /deny403        403 with a body
  /error500       500
  /redirect       302
  /slow/MS        200 after MS milliseconds
  /hang           reads the request, never answers (holds the connection until the peer closes it)
  /close-mid      a 200 head announcing 100 bytes, 7 of them, then closes
  /giant-header   a 200 whose head has a 1 MiB header
  /giant-body     a 200 with a 10 MiB body
  /reset          reads the request, then resets the connection (SO_LINGER 0)
  /keepalive-close  200 with Connection: close
The control port answers any request with JSON: {"open": connections open now, "max_open": most open at
once, "accepted": connections accepted, "requests": [{"path": ..., "headers": [[name, value], ...]}, ...]}
and closes.
"""

import asyncio
import json
import socket
import struct

STATE = {"open": 0, "max_open": 0, "accepted": 0, "requests": []}


async def read_head(reader):
    data = await reader.readuntil(b"\r\n\r\n")
    lines = data.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append([name, value.strip()])
    return method, target, headers


def response(status, reason, headers=(), body=b""):
    head = f"HTTP/1.1 {status} {reason}\r\n"
    for name, value in headers:
        head += f"{name}: {value}\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode("latin-1") + body


async def serve(reader, writer):
    STATE["open"] += 1
    STATE["accepted"] += 1
    STATE["max_open"] = max(STATE["max_open"], STATE["open"])
    try:
        while True:
            try:
                method, target, headers = await read_head(reader)
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
                return
            STATE["requests"].append({"path": target, "headers": headers})
            parts = target.split("/")
            mode = parts[1] if len(parts) > 1 else ""
            if mode == "allow":
                writer.write(response(200, "OK", [("X-Auth-User", "ada"), ("X-Auth-Team", "blue")], b"ok"))
            elif mode == "deny401":
                writer.write(
                    response(401, "Unauthorized", [("WWW-Authenticate", 'Bearer realm="wsgate"'), ("Content-Type", "text/plain"),
                                                   ("X-Internal", "secret")], b"login first")
                )
            elif mode == "deny403":
                writer.write(response(403, "Forbidden", [("Content-Type", "text/plain")], b"not for you" + b"!" * 10000))
            elif mode == "error500":
                writer.write(response(500, "Internal Server Error", [], b"oops"))
            elif mode == "redirect":
                writer.write(response(302, "Found", [("Location", "/login")]))
            elif mode == "slow":
                await asyncio.sleep(int(parts[2]) / 1000)
                writer.write(response(200, "OK", [("X-Auth-User", "slow")]))
            elif mode == "hang":
                await reader.read()  # until the peer closes
                return
            elif mode == "close-mid":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                await writer.drain()
                return
            elif mode == "giant-header":
                writer.write(b"HTTP/1.1 200 OK\r\nX-Giant: " + b"g" * (1 << 20) + b"\r\nContent-Length: 0\r\n\r\n")
            elif mode == "giant-body":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (10 << 20))
                chunk = b"b" * 65536
                try:
                    for _ in range(160):
                        writer.write(chunk)
                        await writer.drain()
                except ConnectionError:
                    return
            elif mode == "reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            elif mode == "keepalive-close":
                writer.write(response(200, "OK", [("Connection", "close"), ("X-Auth-User", "once")]))
                await writer.drain()
                return
            else:
                writer.write(response(404, "Not Found"))
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        STATE["open"] -= 1
        writer.close()


async def control(reader, writer):
    try:
        await read_head(reader)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    body = json.dumps(STATE).encode()
    writer.write(response(200, "OK", [("Content-Type", "application/json"), ("Connection", "close")], body))
    await writer.drain()
    writer.close()


async def main():
    auth = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=1024)
    ctl = await asyncio.start_server(control, "127.0.0.1", 0)
    print(auth.sockets[0].getsockname()[1], ctl.sockets[0].getsockname()[1], flush=True)
    await asyncio.gather(auth.serve_forever(), ctl.serve_forever())


asyncio.run(main())
