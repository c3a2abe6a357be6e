import Foundation
import MetricsTestKit
import NIOCore
import NIOPosix
import TLSShim
import Testing

@testable import Gateway

/// Hostile clients and refusing upstreams over real sockets, each bounded by a deadline: malformed heads
/// are answered and closed before any upstream is contacted (the upstream stub counts every accepted
/// connection and byte), a refused upgrade is never a tunnel, and stalled heads and half TLS
/// handshakes do not keep a fresh client from upgrading.
@Suite(.serialized, .timeLimit(.minutes(2))) struct GatewayHostileClientTests {
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="

    static func request(_ edit: (String) -> String = { $0 }, extra: String = "", body: String = "") -> String {
        let head =
            "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        return edit(head) + extra + "\r\n" + body
    }

    /// An upstream stub that would accept any upgrade (so anything forwarded would show).
    static func recordingUpstream() async throws -> FakeUpstream {
        try await FakeUpstream.start { .accept($0) }
    }

    /// Catalog H-11: empty name, obs-fold, bare LF, NUL in a value, a 300-byte name over a socket: 400, closed, the upstream never accepts a connection.
    /// Catalog H-08: a Content-Length body and a chunked body over a socket: 400, closed, nothing forwarded.
    /// Catalog H-02: a 20 KiB request target over a socket is 414, a 20 KiB header 431, then close.
    /// Catalog H-06: a missing version is 400 and version 8 is 426 with Sec-WebSocket-Version: 13, over a socket.
    @Test func malformedHeadsAreAnsweredClosedAndNeverReachTheUpstream() async throws {
        let upstream = try await Self.recordingUpstream()
        defer { Task { await upstream.close() } }
        let cases: [(String, String, Int)] = [
            ("empty name", Self.request(extra: ": x\r\n"), 400),
            ("obs-fold", Self.request(extra: "X-a: 1\r\n 2\r\n"), 400),
            ("bare LF", Self.request(extra: "X-a: 1\n"), 400),
            ("NUL", Self.request(extra: "X-a: 1\u{0}2\r\n"), 400),
            ("300-byte name", Self.request(extra: String(repeating: "N", count: 300) + ": 1\r\n"), 400),
            ("Content-Length body", Self.request(extra: "Content-Length: 7\r\n", body: "abcdefg"), 400),
            ("chunked body", Self.request(extra: "Transfer-Encoding: chunked\r\n", body: "3\r\n123\r\n0\r\n\r\n"), 400),
            ("no version", Self.request { $0.replacingOccurrences(of: "Sec-WebSocket-Version: 13\r\n", with: "") }, 400),
            ("version 8", Self.request { $0.replacingOccurrences(of: "Version: 13", with: "Version: 8") }, 426),
            ("20 KiB target", Self.request { $0.replacingOccurrences(of: "/echo", with: "/echo/" + String(repeating: "t", count: 20 * 1024)) }, 414),
            ("20 KiB header", Self.request(extra: "X-Big: \(String(repeating: "b", count: 20 * 1024))\r\n"), 431),
        ]
        try await withGateway(upstreamPort: upstream.port) { port in
            for (name, request, status) in cases {
                let connection = try await RawConnection.open(port: port)
                await connection.send(request)
                #expect(try await connection.waitForClose(), "\(name): the gateway did not close")
                #expect(connection.status == status, "\(name): \(connection.text.prefix(80))")
                #expect(connection.text.contains("\r\nConnection: close\r\n"), "\(name)")
                if status == 426 { #expect(connection.text.contains("\r\nSec-WebSocket-Version: 13\r\n"), "\(name)") }
                connection.close()
            }
        }
        #expect(upstream.accepted == 0 && upstream.rawReceived == 0, "a malformed request reached the upstream")
    }

    // MARK: A refused upgrade is never a tunnel (U-03)

    /// Catalog U-03: an upstream answering 200 (body, keep-alive), 200 (no body), 302 or 426 while the client keeps sending a frame and a second request: no 101, 502 for 2xx/3xx and the 426 relayed, both legs closed, nothing after the first request reaches the upstream.
    @Test(arguments: [
        ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi", 502),
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 502),
        ("HTTP/1.1 302 Found\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n", 502),
        ("HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 5\r\n\r\nnope!", 426),
    ])
    func aRefusedUpgradeIsNeverATunnel(response: String, status: Int) async throws {
        let upstream = try await FakeUpstream.start { _ in FakeUpstream.Reply(response: Array(response.utf8)) }
        defer { Task { await upstream.close() } }
        let frame: [UInt8] = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]  // masked "Hello"
        let second = "GET /internal HTTP/1.1\r\nHost: x\r\n\r\n"
        try await withGateway(upstreamPort: upstream.port) { port in
            // (a) The client waits for the answer, then keeps talking as if it were a tunnel.
            let patient = try await RawConnection.open(port: port)
            await patient.send(Self.request())
            #expect(try await patient.wait(for: .seconds(5)) { $0.status != nil })
            await patient.send(frame)
            await patient.send(second)
            #expect(try await patient.waitForClose(), "the client leg stayed open")
            #expect(patient.status == status, "\(patient.text.prefix(60))")
            #expect(!patient.text.contains("HTTP/1.1 101"), "a 101 reached the client")
            #expect(patient.text.contains("\r\nConnection: close\r\n"))
            if status == 426 { #expect(patient.text.hasSuffix("nope!")) }
            patient.close()

            // (b) The client sends the frame and the second request right behind its request.
            let eager = try await RawConnection.open(port: port)
            await eager.send(Array(Self.request().utf8) + frame + Array(second.utf8))
            #expect(try await eager.waitForClose(), "the client leg stayed open")
            #expect(eager.status != nil && eager.status != 101, "\(eager.text.prefix(60))")
            #expect(!eager.text.contains("HTTP/1.1 101"))
            eager.close()
        }
        try await upstream.waitUntilAllEnded()
        #expect(upstream.requests.count <= upstream.accepted)
        #expect(upstream.requests.allSatisfy { $0.head.hasPrefix("GET /echo HTTP/1.1\r\n") })
        #expect(upstream.received.isEmpty, "bytes after the first request reached the upstream: \(upstream.received.count)")
    }

    // MARK: Slowloris (H-01, T-01)

    /// A TLS listener's certificate, signed by the test CA, as in-memory PEM.
    static let listenerIdentity: TLSIdentity = {
        let certificate = try! GatewayTLSTests.certificate(names: ["localhost"], ips: ["127.0.0.1"])
        return TLSIdentity(certificateChain: .pem(certificate.certificatePEM), privateKey: .pem(certificate.privateKeyPEM))
    }()

    /// Catalog H-01: hundreds of stalled request heads (a request line and headers that never end) do not stop a fresh upgrade; each is closed at the head deadline with 408.
    /// Catalog T-01: hundreds of stalled TLS handshakes (half a ClientHello, or nothing) do not stop a fresh TLS handshake and upgrade; each is closed at the handshake deadline, counted as class handshake_timeout.
    @Test func stalledHeadsAndHalfHandshakesDoNotStopAFreshUpgrade() async throws {
        let metrics = TestMetrics()
        let stalledPlain = 200
        let stalledTLS = 200
        // Long enough that opening the 400 stalled connections and the two fresh upgrades fit before
        // the first deadline on a loaded machine (the fresh upgrades must find every stall still open);
        // the deadline's exact length is tested under virtual time (HandshakeGuardsTests).
        let deadline = Duration.seconds(8)
        try await withDemo { demo in
            try await withGatewayServer(
                upstreamPort: demo.port,
                metrics: metrics,
                configure: {
                    $0.listeners.append(.init(name: "tls", host: "127.0.0.1", port: 0))
                    $0.listeners[1].tls = TLSServerConfiguration(defaultIdentity: Self.listenerIdentity)
                    $0.timeouts.requestHead = deadline
                    $0.timeouts.tlsHandshake = deadline
                }
            ) { server, port in
                let tlsPort = server.localAddresses[1].port!
                // Open them all at once: a request line and a header, never the blank line; half a
                // ClientHello record, or nothing.
                // In waves of 50 (all at once would overflow the listen backlog: SYNs retried a second later).
                let stalled = try await withThrowingTaskGroup(of: (Bool, RawConnection).self) { group in
                    var opened: [(Bool, RawConnection)] = []
                    for index in 0..<(stalledPlain + stalledTLS) {
                        if index > 0, index.isMultiple(of: 50) {
                            for _ in 0..<50 { opened.append(try await group.next()!) }
                        }
                        group.addTask {
                            if index < stalledPlain {
                                let connection = try await RawConnection.open(port: port)
                                await connection.send("GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-\(index): b\r\n")
                                return (false, connection)
                            }
                            let connection = try await RawConnection.open(port: tlsPort)
                            if index.isMultiple(of: 2) {
                                await connection.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])
                            }
                            return (true, connection)
                        }
                    }
                    return try await group.reduce(into: opened) { $0.append($1) }
                }
                let allOpened = ContinuousClock.now
                let plain = stalled.filter { !$0.0 }.map(\.1)
                let tls = stalled.filter { $0.0 }.map(\.1)

                // Fresh clients, while every stalled connection is still open.
                let fresh = try await TestWebSocketClient.connect(port: port, path: "/echo", timeout: .seconds(3))
                try await fresh.send(text: "alive")
                #expect(try await fresh.receiveMessage(timeout: .seconds(3)) == .text("alive"))
                #expect(try await TLSTestClient.upgrade(port: tlsPort, timeout: .seconds(3)).status == 101)
                #expect(stalled.allSatisfy { !$0.1.isClosedByServer }, "a stalled connection was closed before the fresh upgrades")

                // Each stalled connection is closed at its deadline from accept, not before and not much after.
                for connection in plain + tls {
                    #expect(try await connection.waitForClose(timeout: deadline + .seconds(5)))
                    // Not before the deadline from its accept (which came after its connect started), and
                    // not long after the deadline of the last one accepted.
                    #expect((connection.lifetime ?? .zero) >= deadline)
                    #expect((connection.closedAt ?? allOpened) < allOpened + deadline + .seconds(3))
                }
                #expect(plain.allSatisfy { $0.status == 408 && $0.text.contains("\r\nConnection: close\r\n") })
                #expect(tls.allSatisfy { $0.received.isEmpty || $0.received.first == 0x15 }, "TLS stalls get at most an alert")
                try await fresh.close()
                for connection in plain + tls { connection.close() }
            }
        }
        await metrics.eventually {
            metrics.total("wsgate_tls_handshake_failures_total", [("leg", "client"), ("class", "handshake_timeout")]) == Int64(stalledTLS)
        }
        #expect(metrics.total("wsgate_tls_handshake_failures_total", [("leg", "client"), ("class", "handshake_timeout")]) == Int64(stalledTLS))
        #expect(metrics.total("wsgate_upgrades_refused_total", [("reason", "head-timeout")]) == Int64(stalledPlain))
    }
}
