import Foundation
import MetricsTestKit
import Testing

@testable import Gateway

/// permessage-deflate between independent implementations (Python `websockets` and `aiohttp`) as client
/// and as upstream, with compression on and off on each leg; the gateway negotiates on both legs, so
/// each combination exercises a different path: verbatim, client leg only, upstream leg only, none.
@Suite(.serialized) struct DeflateInteropTests {
    /// argv: compression on|off.
    static let websocketsUpstream = """
        import asyncio, sys
        from websockets.asyncio.server import serve
        async def echo(ws):
            async for message in ws:
                await ws.send(message)
        async def main():
            compression = "deflate" if sys.argv[1] == "on" else None
            async with serve(echo, "127.0.0.1", 0, max_size=None, compression=compression) as server:
                print(server.sockets[0].getsockname()[1], flush=True)
                await asyncio.sleep(120)
        asyncio.run(main())
        """

    static let aiohttpUpstream = """
        import asyncio, sys
        from aiohttp import web, WSMsgType
        async def handler(request):
            ws = web.WebSocketResponse(max_msg_size=0, compress=sys.argv[1] == "on")
            await ws.prepare(request)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await ws.send_str(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
            return ws
        async def main():
            app = web.Application()
            app.router.add_get("/{tail:.*}", handler)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            print(site._server.sockets[0].getsockname()[1], flush=True)
            await asyncio.sleep(120)
        asyncio.run(main())
        """

    /// argv: url, compression on|off, whether the client leg is expected to be compressed (yes|no).
    static let websocketsClient = """
        import asyncio, sys, os, json
        from websockets.asyncio.client import connect
        async def main():
            url, mode, expect = sys.argv[1], sys.argv[2], sys.argv[3]
            async with connect(url, max_size=None, compression="deflate" if mode == "on" else None) as ws:
                agreed = ws.response.headers.get("Sec-WebSocket-Extensions")
                assert (agreed is not None) == (expect == "yes"), agreed
                await ws.send("hello ✓")
                assert await ws.recv() == "hello ✓"
                await ws.send(["frag", "mented ", "text ✓"])
                assert await ws.recv() == "fragmented text ✓"
                doc = json.dumps([{"n": i, "text": "héllo wörld", "ok": True} for i in range(20000)])
                await ws.send(doc)
                assert await ws.recv() == doc
                big = os.urandom(1 << 20)
                await ws.send(big)
                assert await ws.recv() == big
                await ws.send(b"")
                assert await ws.recv() == b""
                for i in range(200):
                    await ws.send(f"message {i} " * (i % 7))
                for i in range(200):
                    assert await ws.recv() == f"message {i} " * (i % 7)
                await ws.close(4001, "bye")
            print("OK", agreed, flush=True)
        asyncio.run(main())
        """

    static let aiohttpClient = """
        import asyncio, sys, os, json, aiohttp
        async def main():
            url, mode, expect = sys.argv[1], sys.argv[2], sys.argv[3]
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(url, max_msg_size=0, compress=15 if mode == "on" else 0) as ws:
                    assert (ws.compress > 0) == (expect == "yes"), ws.compress
                    await ws.send_str("hello ✓")
                    assert (await ws.receive()).data == "hello ✓"
                    doc = json.dumps([{"n": i, "text": "héllo wörld", "ok": True} for i in range(20000)])
                    await ws.send_str(doc)
                    assert (await ws.receive()).data == doc
                    big = os.urandom(1 << 20)
                    await ws.send_bytes(big)
                    assert (await ws.receive()).data == big
                    for i in range(100):
                        await ws.send_str(f"m{i} " * (i % 5))
                    for i in range(100):
                        assert (await ws.receive()).data == f"m{i} " * (i % 5)
                    await ws.close(code=4002, message=b"bye")
                print("OK", ws.compress, flush=True)
        asyncio.run(main())
        """

    enum Peer: String, CustomStringConvertible, Sendable {
        case websockets, aiohttp
        var description: String { self.rawValue }
        var module: String { self.rawValue }
    }

    /// (client, client compression, upstream, upstream compression)
    static let combinations: [(Peer, Bool, Peer, Bool)] = [
        (.websockets, true, .websockets, true),
        (.websockets, true, .websockets, false),
        (.websockets, false, .websockets, true),
        (.aiohttp, true, .aiohttp, true),
        (.aiohttp, true, .aiohttp, false),
        (.aiohttp, false, .aiohttp, true),
        (.aiohttp, true, .websockets, true),
        (.websockets, true, .aiohttp, true),
        (.websockets, false, .aiohttp, false),
    ]

    @Test(arguments: 0..<combinations.count)
    func compressionOnAndOffOnEachLeg(index: Int) async throws {
        let (clientPeer, clientOn, upstreamPeer, upstreamOn) = Self.combinations[index]
        guard try await PythonPeer.require(clientPeer.module), try await PythonPeer.require(upstreamPeer.module) else { return }
        let metrics = TestMetrics()
        try await withGatewayAndPythonUpstream(
            (upstreamPeer == .websockets ? Self.websocketsUpstream : Self.aiohttpUpstream, [upstreamOn ? "on" : "off"]),
            metrics: metrics,
            configure: {
                $0.limits.maxMessageSize = 2 << 20
                $0.limits.maxFrameSize = 2 << 20
                $0.routes[0].extensions.permessageDeflate = .init(client: .negotiate, upstream: .negotiate)
            }
        ) { port in
            let run = try await runPython(
                [
                    "-c", clientPeer == .websockets ? Self.websocketsClient : Self.aiohttpClient,
                    "ws://127.0.0.1:\(port)/echo", clientOn ? "on" : "off", clientOn ? "yes" : "no",
                ],
                timeout: .seconds(60)
            )
            #expect(run.status == 0, "\(clientPeer)(\(clientOn)) → \(upstreamPeer)(\(upstreamOn)): \(run.output)")
            #expect(run.output.contains("OK"), "\(run.output)")
        }
        func decisions(_ side: String, _ decision: String) -> Int64 {
            metrics.counters(label: "wsgate_extension_decisions_total")
                .filter { $0.dimensions.contains { $0 == ("side", side) } && $0.dimensions.contains { $0 == ("decision", decision) } }
                .reduce(0) { $0 + $1.totalValue }
        }
        #expect(decisions("client", clientOn ? "negotiated" : "not-offered") == 1)
        #expect(decisions("upstream", upstreamOn ? "negotiated" : "declined") == 1)
    }

    /// argv: url, limit. Issue #10 item 4: a compressed message of exactly `limits.max_message` bytes
    /// after inflation goes through (random bytes: its deflated frame is larger than the limit), one
    /// byte more gets 1009.
    static let exactLimitClient = """
        import asyncio, sys, os
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed
        async def main():
            url, limit = sys.argv[1], int(sys.argv[2])
            async with connect(url, max_size=None, compression="deflate") as ws:
                assert ws.response.headers.get("Sec-WebSocket-Extensions"), "not compressed"
                exact = os.urandom(limit)
                await ws.send(exact)
                assert await ws.recv() == exact
                text = "é" * (limit // 2)
                await ws.send(text)
                assert await ws.recv() == text
                await ws.send(os.urandom(limit + 1))
                try:
                    await ws.recv()
                    raise SystemExit("no close")
                except ConnectionClosed as closed:
                    assert closed.rcvd is not None and closed.rcvd.code == 1009, closed
            print("OK", flush=True)
        asyncio.run(main())
        """

    @Test(arguments: [true, false])
    func aCompressedMessageOfExactlyTheLimitGoesThroughAndOneMoreByteIs1009(upstreamCompression: Bool) async throws {
        guard try await PythonPeer.require("websockets") else { return }
        let limit = 1 << 20
        try await withGatewayAndPythonUpstream(
            (Self.websocketsUpstream, [upstreamCompression ? "on" : "off"]),
            configure: {
                $0.limits.maxMessageSize = limit
                $0.limits.maxFrameSize = limit
                $0.routes[0].extensions.permessageDeflate = .init(client: .negotiate, upstream: .negotiate)
            }
        ) { port in
            let run = try await runPython(["-c", Self.exactLimitClient, "ws://127.0.0.1:\(port)/echo", "\(limit)"], timeout: .seconds(60))
            #expect(run.status == 0 && run.output.contains("OK"), "upstream compression \(upstreamCompression): \(run.output)")
        }
    }

    /// `strip` on both legs (the default): peers that want compression get none, and it all still works.
    @Test func stripOnBothLegsWithPeersThatWantCompression() async throws {
        guard try await PythonPeer.require("websockets") else { return }
        try await withGatewayAndPythonUpstream(
            (Self.websocketsUpstream, ["on"]),
            configure: {
                $0.limits.maxMessageSize = 2 << 20
                $0.limits.maxFrameSize = 2 << 20
            }
        ) { port in
            let run = try await runPython(["-c", Self.websocketsClient, "ws://127.0.0.1:\(port)/echo", "on", "no"], timeout: .seconds(60))
            #expect(run.status == 0, "\(run.output)")
        }
    }
}
