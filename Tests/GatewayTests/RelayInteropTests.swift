import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import Gateway

/// The gateway between independent implementations: Python `websockets` as upstream and as client.
@Suite(.serialized) struct RelayInteropTests {
    static let echoUpstream = """
        import asyncio, sys
        from websockets.asyncio.server import serve
        async def echo(ws):
            async for message in ws:
                await ws.send(message)
        async def main():
            async with serve(echo, "127.0.0.1", 0, max_size=None, compression=None) as server:
                print(server.sockets[0].getsockname()[1], flush=True)
                await asyncio.sleep(60)
        asyncio.run(main())
        """

    static let client = """
        import asyncio, sys, os
        from websockets.asyncio.client import connect
        async def main():
            url = sys.argv[1]
            async with connect(url, max_size=None, compression=None) as ws:
                await ws.send("hello ✓")
                assert await ws.recv() == "hello ✓"
                await ws.send(b"\\x00\\x01\\xff")
                assert await ws.recv() == b"\\x00\\x01\\xff"
                await ws.send(["frag", "mented ", "text"])
                assert await ws.recv() == "fragmented text"
                big = os.urandom(1 << 20)
                await ws.send(big)
                assert await ws.recv() == big
                pong = await ws.ping(b"abc")
                await asyncio.wait_for(pong, 5)
                for i in range(200):
                    await ws.send(f"message {i}")
                for i in range(200):
                    assert await ws.recv() == f"message {i}"
                await ws.close(4001, "bye")
            assert ws.close_code == 4001, ws.close_code
            print("OK", flush=True)
        asyncio.run(main())
        """

    @Test func pythonClientThroughTheGatewayToAPythonUpstream() async throws {
        guard try await PythonPeer.require("websockets") else { return }
        let upstream = try PythonPeer(script: Self.echoUpstream)
        defer { upstream.stop() }
        let upstreamPort = Int(try await upstream.firstLine())!
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let configuration = GatewayConfiguration(
            listeners: [.init(host: "127.0.0.1", port: 0)],
            routes: [.init(pathPrefix: "/", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: upstreamPort)])],
            limits: { var limits = GatewayConfiguration.Limits(); limits.maxMessageSize = 2 << 20; limits.maxFrameSize = 2 << 20; return limits }(),
            accessLog: .off
        )
        let server = try await GatewayServer.start(configuration: configuration, group: group)
        let port = server.localAddresses[0].port!
        let client = try PythonPeer(script: Self.client, arguments: ["ws://127.0.0.1:\(port)/echo"])
        let result = try await client.finish(timeout: .seconds(30))
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("OK"))
        try await server.close()
        try await group.shutdownGracefully()
    }
}
