import Foundation
import MetricsTestKit
import Testing

@testable import Gateway

/// Policies between independent implementations: a Python `websockets` client and upstream answer the
/// gateway's keep-alive pings by themselves (the connection outlives many ping periods), and a throttled
/// client loses nothing and keeps its order.
@Suite(.serialized, .timeLimit(.minutes(2))) struct PolicyInteropTests {
    static let client = """
        import asyncio, sys, time
        from websockets.asyncio.client import connect
        async def main():
            async with connect(sys.argv[1], ping_interval=None, compression=None) as ws:
                # Silent for 5 s: the gateway pings both legs every 200 ms of silence; both libraries answer.
                await asyncio.sleep(5)
                await ws.send("still open")
                assert await ws.recv() == "still open"
                start = time.monotonic()
                for i in range(30):
                    await ws.send(f"m{i}")
                for i in range(30):
                    assert await ws.recv() == f"m{i}"
                elapsed = time.monotonic() - start
                # 30 messages at 50/s after a burst of 10: the last 20 take at least 0.4 s.
                assert elapsed >= 0.35, elapsed
                await ws.close()
            print("OK", round(elapsed, 3), flush=True)
        asyncio.run(main())
        """

    @Test func websocketsPeersAnswerKeepAlivePingsAndAThrottledClientLosesNothing() async throws {
        guard try await PythonPeer.require("websockets") else { return }
        let metrics = TestMetrics()
        try await withGatewayAndPythonUpstream(
            RelayInteropTests.echoUpstream,
            metrics: metrics,
            configure: {
                // A pong deadline a loaded machine's late answer fits in; the 5 s of silence below is
                // still far longer than ping interval + deadline, so a peer that never answers is closed.
                $0.timeouts.pingInterval = .milliseconds(200)
                $0.timeouts.pongDeadline = .seconds(2)
                $0.routes[0].rateLimits.client.messages = .init(perSecond: 50, burst: 10)
                $0.routes[0].rateLimits.client.action = .throttle
            }
        ) { port in
            let run = try await runPython(["-c", Self.client, "ws://127.0.0.1:\(port)/echo"], timeout: .seconds(30))
            #expect(run.status == 0, "\(run.output)")
            #expect(run.output.contains("OK"), "\(run.output)")
        }
        #expect(metrics.counterTotal(label: "wsgate_keepalive_timeouts_total") == 0)
        #expect(
            metrics.counterTotal(
                label: "wsgate_rate_limit_decisions_total",
                dimensions: [("route", "/"), ("side", "client"), ("limit", "messages"), ("action", "throttle")]
            ) >= 1
        )
    }
}
