import MetricsTestKit
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import Gateway

/// A clock the test sets by hand.
final class ManualClock: GatewayClock, @unchecked Sendable {
    private let lock = NIOLock()
    private var current = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
    var now: NIODeadline { self.lock.withLock { self.current } }
    func advance(by amount: TimeAmount) { self.lock.withLock { self.current = self.current + amount } }
}

/// Connection caps and the per-IP handshake rate (DESIGN §1.1, §5; RELIABILITY R-11, O-06).
@Suite(.timeLimit(.minutes(2))) struct ConnectionAdmissionTests {
    private static func configuration(_ configure: (inout GatewayConfiguration) -> Void) -> GatewayConfiguration {
        var configuration = GatewayConfiguration(
            listeners: [.init(name: "a", host: "127.0.0.1", port: 1), .init(name: "b", host: "127.0.0.1", port: 2)],
            routes: [.init(upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 9000)])]
        )
        configure(&configuration)
        return configuration
    }

    /// Issue #11 §3: one IPv6 host owns a /64, so its addresses share one per-IP budget.
    @Test func ipv6ClientsAreCountedByTheirConfiguredPrefix() {
        let admission = ConnectionAdmission(Self.configuration { $0.connectionLimits.perIPConnections = 2 })
        #expect(admission.admit(listener: "a", ip: "2001:db8:1:2::1") == nil)
        #expect(admission.admit(listener: "a", ip: "2001:db8:1:2:ffff:eeee:dddd:cccc") == nil)
        #expect(admission.admit(listener: "a", ip: "2001:db8:1:2::3") == .ipConnections)  // same /64
        #expect(admission.admit(listener: "a", ip: "2001:db8:1:3::1") == nil)  // another /64
        admission.release(listener: "a", ip: "2001:db8:1:2::1")
        #expect(admission.admit(listener: "a", ip: "2001:db8:1:2::99") == nil)

        let wide = ConnectionAdmission(
            Self.configuration {
                $0.connectionLimits.perIPConnections = 1
                $0.connectionLimits.ipv6Prefix = 48
            }
        )
        #expect(wide.admit(listener: "a", ip: "2001:db8:1:2::1") == nil)
        #expect(wide.admit(listener: "a", ip: "2001:db8:1:ffff::1") == .ipConnections)  // same /48
    }

    @Test func ipv6HandshakeRateIsPerPrefix() {
        let clock = ManualClock()
        let admission = ConnectionAdmission(Self.configuration { $0.connectionLimits.perIPHandshakes = .init(perSecond: 1, burst: 2) }, clock: clock)
        #expect(admission.admitHandshake(ip: "2001:db8::1") == nil)
        #expect(admission.admitHandshake(ip: "2001:db8::2") == nil)
        #expect(admission.admitHandshake(ip: "2001:db8::3") != nil)  // one bucket for the /64
        #expect(admission.admitHandshake(ip: "2001:db8:0:1::1") == nil)
    }

    @Test func listenerAndPerIPCapsCountOpenConnections() {
        let admission = ConnectionAdmission(
            Self.configuration {
                $0.listeners[0].maxConnections = 2
                $0.connectionLimits.perIPConnections = 3
            }
        )
        #expect(admission.admit(listener: "a", ip: "10.0.0.1") == nil)
        #expect(admission.admit(listener: "a", ip: "10.0.0.2") == nil)
        #expect(admission.admit(listener: "a", ip: "10.0.0.3") == .listenerConnections)
        #expect(admission.openConnections(listener: "a") == 2, "a refused connection was counted")
        // Listener b has no cap; 10.0.0.1's third connection fills its per-IP cap of 3.
        #expect(admission.admit(listener: "b", ip: "10.0.0.1") == nil)
        #expect(admission.admit(listener: "b", ip: "10.0.0.1") == nil)
        #expect(admission.admit(listener: "b", ip: "10.0.0.1") == .ipConnections)
        #expect(admission.admit(listener: "b", ip: "10.0.0.9") == nil, "another address is not affected")
        admission.release(listener: "a", ip: "10.0.0.1")
        #expect(admission.admit(listener: "a", ip: "10.0.0.1") == nil, "a closed connection frees its place")
    }

    /// Catalog R-11: with a cap of 100, 150 connections: the first 100 are admitted, the other 50 refused (and not counted as open); after 50 close, 50 new ones are admitted and the 151st is refused again.
    @Test func aCapOf100Admits100Of150AndAdmitsAgainAfterCloses() {
        let admission = ConnectionAdmission(Self.configuration { $0.listeners[0].maxConnections = 100 })
        let verdicts = (0..<150).map { admission.admit(listener: "a", ip: "10.0.\($0 / 200).\($0 % 200)") }
        #expect(verdicts.prefix(100).allSatisfy { $0 == nil })
        #expect(verdicts.suffix(50).allSatisfy { $0 == .listenerConnections })
        #expect(admission.openConnections(listener: "a") == 100)
        for index in 0..<50 { admission.release(listener: "a", ip: "10.0.0.\(index)") }
        #expect((0..<50).allSatisfy { admission.admit(listener: "a", ip: "10.1.0.\($0)") == nil })
        #expect(admission.admit(listener: "a", ip: "10.2.0.1") == .listenerConnections)
        #expect(admission.openConnections(listener: "a") == 100)
    }

    /// Catalog O-06: the handshake rate is exact per address; another address has its own bucket.
    @Test func theHandshakeRateIsExactPerAddress() {
        let clock = ManualClock()
        let admission = ConnectionAdmission(Self.configuration { $0.connectionLimits.perIPHandshakes = .init(perSecond: 2, burst: 3) }, clock: clock)
        for _ in 0..<3 { #expect(admission.admitHandshake(ip: "10.0.0.1") == nil) }
        #expect(admission.admitHandshake(ip: "10.0.0.1") == 1, "Retry-After rounds 500 ms up to 1 s")
        #expect(admission.admitHandshake(ip: "10.0.0.2") == nil, "another address has its own bucket")
        clock.advance(by: .milliseconds(499))
        #expect(admission.admitHandshake(ip: "10.0.0.1") == 1)
        clock.advance(by: .milliseconds(1))
        #expect(admission.admitHandshake(ip: "10.0.0.1") == nil)
        #expect(admission.admitHandshake(ip: "10.0.0.1") == 1)
    }

    // MARK: Over real sockets

    /// Catalog R-11: over sockets, a connection over the cap is closed at accept and counted, the admitted one keeps echoing, and a freed place is taken again.
    /// Catalog R-11: (deviation: caps, no pressure monitor) what wsgate does instead of shedding on simulated pressure.
    @Test func aFullListenerClosesNewConnectionsAtAcceptAndCountsThem() async throws {
        let metrics = TestMetrics()
        try await withGatewayAndDemo(
            metrics: metrics,
            configure: {
                $0.listeners[0] = .init(name: "capped", host: "127.0.0.1", port: 0)
                $0.listeners[0].maxConnections = 1
            }
        ) { port in
            let first = try await TestWebSocketClient.connect(port: port, path: "/echo")
            try await first.send(text: "still here")
            #expect(try await first.receiveMessage(timeout: .seconds(5)) == .text("still here"))
            // The second connection is closed before anything is read: no HTTP answer at all.
            await #expect(throws: (any Error).self) {
                _ = try await TestWebSocketClient.rawHandshake(port: port, request: Self.upgrade)
            }
            try await first.close()
            try await first.waitForTCPClose(timeout: .seconds(5))
            // Its place is free again (the release runs when the gateway's channel closes).
            try await Self.eventually {
                let answer = try? await TestWebSocketClient.rawHandshake(port: port, request: Self.upgrade)
                return answer?.status == 101
            }
        }
        #expect(
            metrics.counterTotal(
                label: "wsgate_connection_limit_refusals_total",
                dimensions: [("listener", "capped"), ("limit", "listener_connections")]
            ) >= 1
        )
    }

    /// Catalog O-06: over the per-address handshake rate, 429 with `Retry-After` and `Connection: close`; the key is the socket address, so a rotating `X-Forwarded-For` (no trusted hop) does not help, and 127.0.0.2 is not throttled by 127.0.0.1's traffic.
    @Test func tooManyHandshakesFromOneAddressAre429WithRetryAfter() async throws {
        let metrics = TestMetrics()
        try await withGatewayAndDemo(
            metrics: metrics,
            configure: {
                $0.connectionLimits.perIPHandshakes = .init(perSecond: 1, burst: 2)
            }
        ) { port in
            // A burst of 2, then 1 per second: the third handshake is 429 unless a second has passed since
            // the first (a loaded machine), when the bucket has a token again; so keep asking (at most 10
            // times) until the first 429, and check that everything before it fitted the bucket. Each
            // request claims another forwarded address.
            var statuses: [Int] = []
            var retryAfter: String?
            var connection: String?
            let start = ContinuousClock.now
            while statuses.last != 429 && statuses.count < 10 {
                let request = Self.upgrade.replacingOccurrences(of: "\r\n\r\n", with: "\r\nX-Forwarded-For: 10.0.\(statuses.count).1\r\n\r\n")
                let answer = try await TestWebSocketClient.rawHandshake(port: port, request: request)
                statuses.append(answer.status)
                retryAfter = answer.headers.first { $0.0 == "Retry-After" }?.1 ?? retryAfter
                if answer.status == 429 { connection = answer.headers.first { $0.0.lowercased() == "connection" }?.1 }
            }
            let elapsedSeconds = Int((ContinuousClock.now - start).components.seconds)
            #expect(statuses.last == 429 && statuses.dropLast().allSatisfy { $0 == 101 }, "\(statuses)")
            #expect(statuses.count >= 3 && statuses.count <= 3 + elapsedSeconds, "\(statuses) in \(elapsedSeconds) s")
            #expect(retryAfter == "1")
            #expect(connection?.lowercased() == "close")

            // Another client address has its own bucket.
            let script = """
                import socket, sys
                s = socket.socket()
                s.settimeout(5)
                s.bind(("127.0.0.2", 0))
                s.connect(("127.0.0.1", int(sys.argv[1])))
                s.sendall(sys.argv[2].encode())
                print(s.recv(65536).split(b"\\r\\n")[0].decode())
                """
            let other = try await runPython(["-c", script, String(port), Self.upgrade], timeout: .seconds(20))
            #expect(other.output.hasPrefix("HTTP/1.1 101"), "\(other.output)")
        }
        #expect(
            metrics.counterTotal(
                label: "wsgate_connection_limit_refusals_total",
                dimensions: [("listener", "127.0.0.1:0"), ("limit", "ip_handshake_rate")]
            ) == 1
        )
    }

    static let upgrade =
        "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

    /// Polls `condition` every 20 ms for up to 5 s.
    static func eventually(_ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while !(try await condition()) {
            guard ContinuousClock.now < deadline else {
                Issue.record("condition not met within 5 s")
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
