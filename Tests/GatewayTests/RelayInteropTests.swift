import Foundation
import Testing

@testable import Gateway

/// The gateway between independent implementations: Python `websockets` as upstream and as client.
@Suite(.serialized) struct RelayInteropTests {
    /// A `websockets` echo upstream without compression (the script is shared with the deflate interop
    /// tests, like the aiohttp one below).
    static let echoUpstream = (script: DeflateInteropTests.websocketsUpstream, arguments: ["off"])

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
            # A websockets upstream answers with the client's code; an aiohttp one answers 1000.
            assert ws.close_code in (4001, 1000), ws.close_code
            print("OK", flush=True)
        asyncio.run(main())
        """

    /// An aiohttp echo upstream without compression (the script is shared with the deflate interop tests).
    static let aiohttpUpstream = (script: DeflateInteropTests.aiohttpUpstream, arguments: ["off"])

    static let aiohttpClient = """
        import asyncio, sys, os, aiohttp
        async def main():
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(sys.argv[1], max_msg_size=0, compress=0, autoping=True) as ws:
                    await ws.send_str("hello ✓")
                    assert (await ws.receive()).data == "hello ✓"
                    big = os.urandom(1 << 20)
                    await ws.send_bytes(big)
                    assert (await ws.receive()).data == big
                    for i in range(100):
                        await ws.send_str(f"m{i}")
                    for i in range(100):
                        assert (await ws.receive()).data == f"m{i}"
                    await ws.close(code=4002, message=b"bye")
                # A websockets upstream answers with the client's code; an aiohttp one answers 1000.
                assert ws.close_code in (4002, 1000), ws.close_code
            print("OK", flush=True)
        asyncio.run(main())
        """

    /// Runs `client` (with the gateway's URL as its argument) against a gateway in front of `upstream`
    /// (a script that prints its port).
    private func relay(upstream: (script: String, arguments: [String]), client: String) async throws {
        try await withGatewayAndPythonUpstream(
            upstream,
            configure: {
                $0.limits.maxMessageSize = 2 << 20
                $0.limits.maxFrameSize = 2 << 20
            }
        ) { port in
            let run = try await runPython(["-c", client, "ws://127.0.0.1:\(port)/echo"], timeout: .seconds(30))
            #expect(run.status == 0, "\(run.output)")
            #expect(run.output.contains("OK"), "\(run.output)")
        }
    }

    @Test func aiohttpClientThroughTheGatewayToAnAiohttpUpstream() async throws {
        guard try await PythonPeer.require("aiohttp") else { return }
        try await self.relay(upstream: Self.aiohttpUpstream, client: Self.aiohttpClient)
    }

    @Test func websocketsClientToAnAiohttpUpstreamAndAiohttpClientToAWebsocketsUpstream() async throws {
        guard try await PythonPeer.require("aiohttp"), try await PythonPeer.require("websockets") else { return }
        try await self.relay(upstream: Self.aiohttpUpstream, client: Self.client)
        try await self.relay(upstream: Self.echoUpstream, client: Self.aiohttpClient)
    }

    @Test func pythonClientThroughTheGatewayToAPythonUpstream() async throws {
        guard try await PythonPeer.require("websockets") else { return }
        try await self.relay(upstream: Self.echoUpstream, client: Self.client)
    }
}
