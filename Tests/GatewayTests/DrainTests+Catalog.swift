import Foundation
import Frames
import MetricsTestKit
import NIOCore
import Testing

@testable import Gateway

/// RELIABILITY G-01 over real sockets with a mix of sessions (the in-memory version with 200 sessions is
/// in ConnectionRegistry+DrainTests).
extension DrainTests {
    /// Catalog G-01: sessions that are idle, have echoes in flight, or are in the middle of a fragmented message all get Close 1001 after whole messages only, answer it, and the drain ends with every session closed and none forced or lost (no 1006).
    @Test func aMixOfIdleStreamingAndFragmentingSessionsAllDrainCleanly() async throws {
        let metrics = TestMetrics()
        try await withDemo { demo in
            try await withGatewayServer(upstreamPort: demo.port, metrics: metrics) { server, port in
                let kib = (0..<1024).map { UInt8(truncatingIfNeeded: $0 &* 13) }
                var idle: [TestWebSocketClient] = []
                var streaming: [TestWebSocketClient] = []
                var fragmenting: [TestWebSocketClient] = []
                for _ in 0..<6 { idle.append(try await TestWebSocketClient.connect(port: port, path: "/echo")) }
                for _ in 0..<7 {
                    let client = try await TestWebSocketClient.connect(port: port, path: "/echo")
                    // 50 messages whose echoes are on their way when the drain starts.
                    for _ in 0..<50 { try await client.sendFrame(opcode: .binary, payload: kib) }
                    streaming.append(client)
                }
                for _ in 0..<7 {
                    let client = try await TestWebSocketClient.connect(port: port, path: "/echo")
                    // Two fragments of a message whose end never comes.
                    try await client.sendFrame(opcode: .binary, fin: false, payload: kib)
                    try await client.sendFrame(opcode: .continuation, fin: false, payload: kib)
                    fragmenting.append(client)
                }
                #expect(server.openConnections == 20)
                let drain = Task { await server.drain(timeout: .seconds(20)) }
                for client in idle + streaming + fragmenting {
                    var echoes = 0
                    while true {
                        let message = try await client.receiveMessage(timeout: .seconds(10))
                        if case .close(let code, let reason) = message {
                            #expect(code == .goingAway && reason == RelaySession.drainReason)
                            break
                        }
                        #expect(message == .binary(kib), "only whole messages before the Close")
                        echoes += 1
                    }
                    #expect(echoes <= 50)
                    try await client.close(code: .goingAway)
                    try await client.waitForTCPClose(timeout: .seconds(10))
                }
                #expect(await drain.value == .init(closed: 20, forced: 0))
                #expect(server.openConnections == 0)
                #expect(metrics.total("wsgate_close_codes_total", [("code", "1006")]) == 0)
                #expect(metrics.total("wsgate_close_codes_total", [("side", "client"), ("code", "1001"), ("by", "gateway")]) == 20)
                #expect(metrics.total("wsgate_close_codes_total", [("side", "upstream"), ("code", "1001"), ("by", "gateway")]) == 20)
            }
        }
    }
}
