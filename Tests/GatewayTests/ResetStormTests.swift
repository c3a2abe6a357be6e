import Foundation
import MetricsTestKit
import NIOCore
import TLSShim
import Testing

@testable import Gateway

/// Resets at scale (issue #17 §2, RELIABILITY G-07 and U-01): hundreds of concurrent clients over
/// `ws` and `wss` reset (RST, SO_LINGER {1, 0}) while the gateway streams to them, and upstreams reset
/// while the gateway writes a large message to them. The process survives, the other leg gets its
/// Close, and sockets, connections and TLS objects return to their baseline.
///
/// The clients are `scripts/test-peers/storm.py`; the upstream is ``FaultUpstream``. Counts are small
/// enough for a loaded two-core machine (each test well under 20 s); `WSGATE_FAULT_SCALE=N` multiplies
/// them (the catalog's 1,000 concurrent resets is `WSGATE_FAULT_SCALE=4`). Sockets and TLS objects must
/// come back to at most their baseline: sockets an earlier suite left closing may close meanwhile.
@Suite(.serialized, .timeLimit(.minutes(2))) struct ResetStormTests {
    static let scale = ProcessResources.faultScale
    static let certificate = try! TLSCertificateGenerator.selfSigned(TLSCertificateRequest(commonName: "localhost"))

    /// A gateway with a plain and a TLS listener in front of `upstream`; `body` gets both ports.
    static func withTwoListeners(
        upstream: Int,
        metrics: TestMetrics,
        _ body: (_ server: GatewayServer, _ plain: Int, _ tls: Int) async throws -> Void
    ) async throws {
        let identity = TLSServerConfiguration(defaultIdentity: Self.certificate.identity)
        try await withGatewayServer(upstreamPort: upstream, metrics: metrics) {
            $0.listeners.append(.init(name: "tls", host: "127.0.0.1", port: 0, tls: identity))
            // Deadlines for a debug build on a loaded machine with a hundred upgrades in flight (the
            // frame deadline, 1008, could otherwise end a 1 MiB message that a starved client sends
            // slowly before its upstream resets).
            $0.timeouts.frame = nil
            $0.timeouts.upstreamConnect = .seconds(30)
            $0.timeouts.upstreamHandshake = .seconds(30)
            $0.timeouts.tlsHandshake = .seconds(30)
        } _: { server, plain in
            try await body(server, plain, server.localAddresses[1].port!)
        }
    }

    /// Catalog G-07: clients that reset while the gateway writes to them (ws and wss, concurrently): no exit, the upstream gets Close 1001, descriptors back to baseline.
    @Test func clientsResetMidEchoOverWsAndWss() async throws {
        guard try await PythonPeer.require("ssl") else { return }
        let upstream = try await FaultUpstream.start(.flood(frameSize: 16 << 10))
        defer { Task { await upstream.close() } }
        let metrics = TestMetrics()
        let (plainCount, tlsCount) = (100 * Self.scale, 50 * Self.scale)
        let total = plainCount + tlsCount
        try await Self.withTwoListeners(upstream: upstream.port, metrics: metrics) { server, plain, tls in
            let sockets = ProcessResources.openSockets()
            let tlsObjects = TLSShim.liveConnections
            let resident = ProcessResources.residentBytes()
            // Every client upgrades, waits for the others, reads 128 KiB of the flood and resets.
            async let plainRun = Storm.run("reset-mid-echo", port: plain, ["--count", "\(plainCount)", "--read", "\(128 << 10)"])
            async let tlsRun = Storm.run("reset-mid-echo", port: tls, ["--tls", "--count", "\(tlsCount)", "--read", "\(128 << 10)"])
            let (plainOutcome, tlsOutcome) = try await (plainRun, tlsRun)
            #expect(plainOutcome == ["reset": plainCount])
            #expect(tlsOutcome == ["reset": tlsCount])
            let settled = await ProcessResources.settle(within: .seconds(15)) {
                upstream.current.ended == total && server.openConnections == 0 && ProcessResources.openSockets() <= sockets
            }
            #expect(settled, "\(upstream.current), \(server.openConnections) open, \(ProcessResources.openSockets()) sockets (baseline \(sockets))")
            // The other leg's Close: 1001 to every upstream (the direction toward it was between
            // frames), counted by the gateway and seen by the upstream.
            #expect(upstream.current.closeCodes == [1001: total], "\(upstream.current)")
            #expect(metrics.total("wsgate_close_codes_total", [("side", "upstream"), ("code", "1001"), ("by", "gateway")]) == total)
            #expect(metrics.total("wsgate_close_codes_total", [("side", "client"), ("code", "1006"), ("by", "peer")]) == total)
            #expect(TLSShim.liveConnections <= tlsObjects)
            let growth = ProcessResources.residentBytes() - resident
            #expect(growth < 64 << 20, "RSS grew by \(growth >> 20) MiB over \(total) connections")
        }
    }

    /// Catalog G-07: upstreams that reset while the gateway writes a large client message to them: the client gets Close 1014, descriptors back to baseline.
    /// Catalog U-01: an upstream lost by RST ends the client's connection with 1014 (never 1006 on the wire) and is counted as a peer's 1006.
    @Test func upstreamsResetWhileTheGatewayWritesToThem() async throws {
        guard try await PythonPeer.require("ssl") else { return }
        let upstream = try await FaultUpstream.start(.resetAfter(bytes: 64 << 10))
        defer { Task { await upstream.close() } }
        let metrics = TestMetrics()
        let (plainCount, tlsCount) = (60 * Self.scale, 30 * Self.scale)
        let total = plainCount + tlsCount
        try await Self.withTwoListeners(upstream: upstream.port, metrics: metrics) { server, plain, tls in
            let sockets = ProcessResources.openSockets()
            let tlsObjects = TLSShim.liveConnections
            // 1 MiB messages (the default limit) against 64 KiB read: the gateway is mid-write.
            async let plainRun = Storm.run("send-until-close", port: plain, ["--count", "\(plainCount)", "--size", "\(1 << 20)"])
            async let tlsRun = Storm.run("send-until-close", port: tls, ["--tls", "--count", "\(tlsCount)", "--size", "\(1 << 20)"])
            let (plainOutcome, tlsOutcome) = try await (plainRun, tlsRun)
            #expect(plainOutcome == ["close-1014": plainCount])
            #expect(tlsOutcome == ["close-1014": tlsCount])
            #expect(upstream.current.resets == total, "\(upstream.current)")
            let settled = await ProcessResources.settle(within: .seconds(10)) {
                server.openConnections == 0 && ProcessResources.openSockets() <= sockets
            }
            #expect(settled, "\(server.openConnections) open, \(ProcessResources.openSockets()) sockets (baseline \(sockets))")
            #expect(metrics.total("wsgate_close_codes_total", [("side", "client"), ("code", "1014"), ("by", "gateway")]) == total)
            #expect(metrics.total("wsgate_close_codes_total", [("side", "upstream"), ("code", "1006"), ("by", "peer")]) == total)
            #expect(TLSShim.liveConnections <= tlsObjects)
        }
    }

    /// Catalog U-01: an upstream that sends "part-1 " (FIN=0) and half a continuation frame, then resets: the client gets "part-1 ", never a fabricated end of message nor a Close inside the frame; its TCP connection ends within 1 s; counted as the upstream's 1006.
    @Test func anUpstreamResetInsideAMessageEndsTheClientWithoutAFabricatedEnd() async throws {
        // Text, FIN=0, "part-1 "; then a final continuation that declares 20 bytes and carries 8.
        let script: [UInt8] = [0x01, 0x07] + Array("part-1 ".utf8) + [0x80, 20] + Array("part-2 a".utf8)
        let upstream = try await FaultUpstream.start(.send(script))
        defer { Task { await upstream.close() } }
        let metrics = TestMetrics()
        try await withGateway(upstreamPort: upstream.port, metrics: metrics) { port in
            let client = try await TestWebSocketClient.connect(port: port, path: "/")
            let (first, payload) = try await client.receiveFrame()
            #expect(first.opcode == .text && !first.fin && payload == Array("part-1 ".utf8))
            // Both frames came in one write and were relayed in one read; a moment for the client to
            // have the half frame too, then the reset (a reset drops what the gateway had not read).
            try await Task.sleep(for: .milliseconds(100))
            upstream.resetConnections()
            let received = ContinuousClock.now
            // The continuation was relayed cut-through, so the client leg is inside a frame: no Close
            // can be written there, and no end of the message may be made up. Its TCP connection ends.
            await #expect(throws: (any Error).self) { _ = try await client.receiveFrame(timeout: .seconds(5)) }
            try await client.waitForTCPClose(timeout: .seconds(5))
            let ended = ContinuousClock.now - received
            #expect(ended < .seconds(1), "the client's connection ended \(ended) after the upstream's reset")
            await metrics.eventually {
                metrics.total("wsgate_close_codes_total", [("side", "upstream"), ("code", "1006"), ("by", "peer")]) == 1
            }
            #expect(metrics.total("wsgate_close_codes_total", [("side", "upstream"), ("code", "1006"), ("by", "peer")]) == 1)
            #expect(metrics.total("wsgate_close_codes_total", [("side", "client"), ("by", "gateway")]) == 0)
        }
    }
}
