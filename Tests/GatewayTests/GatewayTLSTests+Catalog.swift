import Foundation
import MetricsTestKit
import NIOCore
import NIOEmbedded
import NIOPosix
import TLSShim
import TestPeers
import Testing

@testable import Gateway

/// TLS entries of RELIABILITY §4.3 through the whole gateway over loopback: a TLS ClientHello on a
/// plaintext listener (T-08) and the upstream SNI (T-13).
extension GatewayTLSTests {
    /// A real ClientHello (TLSShim's client in memory), as raw bytes.
    static func clientHello(serverName: String = "localhost") throws -> [UInt8] {
        let channel = EmbeddedChannel()
        let client = try TLSClientContext(configuration: TLSClientConfiguration { $0.certificateVerification = .none })
        try channel.pipeline.syncOperations.addHandler(try TLSHandler.client(context: client, serverName: serverName))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
        var hello: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { hello += buffer.readableBytesView }
        _ = try? channel.finish(acceptAlreadyClosed: true)
        return hello
    }

    /// Sends `bytes` on a new connection and returns everything received until the server closes it
    /// (failing after `timeout`).
    static func exchange(port: Int, _ bytes: [UInt8], timeout: Duration = .seconds(5)) async throws -> String {
        let collector = ResponseCollector()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { $0.pipeline.addHandler(collector) }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
        try await TestWebSocketClient.bounded(channel.closeFuture, timeout, "the gateway to close the connection")
        return collector.text
    }

    /// Catalog T-08: a TLS ClientHello on the plaintext listener is answered 400 and closed; nothing reaches an upstream, and the log line does not echo the raw bytes.
    @Test func aTLSClientHelloOnThePlaintextListenerIs400AndClosed() async throws {
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        try await Self.withFile("") { log in
            try await withGateway(upstreamPort: upstream.port, configure: { $0.accessLog = .file(log) }) { port in
                let hello = try Self.clientHello()
                #expect(hello.first == 0x16)
                let answer = try await Self.exchange(port: port, hello)
                #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer)")
                #expect(upstream.requests.isEmpty)
                // The refusal's log line, once written, does not echo the raw bytes.
                let lines = await Self.accessLogLines(log) { !$0.isEmpty }
                #expect(lines.count == 1, "\(lines)")
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                #expect(text.unicodeScalars.allSatisfy { $0 == "\n" || (0x20..<0x7F).contains($0.value) }, "\(text.debugDescription)")
            }
        }
    }

    /// Catalog T-13: the upstream SNI comes from the route (its `server_name` or the member's host), never from the client's Host: any Host (an IP literal, a trailing dot, another name) reaches the upstream that presents the route's certificate, and a 300-byte Host is refused with 400 before anything is sent upstream.
    @Test func theUpstreamServerNameComesFromTheRouteNotFromTheHost() async throws {
        // The upstream shows its valid certificate only for SNI "localhost"; any other SNI (or none) gets a
        // certificate the gateway does not accept, so a 101 proves the SNI that was sent.
        let right = try Self.certificate(names: ["localhost"], ips: [])
        let wrong = try Self.certificate(names: ["wrong.example"], ips: [])
        let context = try TLSServerContext(
            configuration: TLSServerConfiguration(defaultIdentity: wrong.identity) {
                $0.virtualHosts = [TLSVirtualHost(serverNames: ["localhost"], identity: right.identity)]
            }
        )
        let upstream = try await FakeUpstream.start(tls: context) { .accept($0) }
        defer { Task { await upstream.close() } }
        try await Self.withFile(Self.ca.certificatePEM) { caPath in
            try await withGateway(
                upstreamPort: upstream.port,
                configure: {
                    $0.routes[0].upstreams = [GatewayConfiguration.Upstream(scheme: .wss, host: "127.0.0.1", port: upstream.port)]
                    var tls = GatewayConfiguration.UpstreamTLS(serverName: "localhost")
                    tls.configuration.trustRoots = .certificates(.file(caPath))
                    $0.routes[0].upstreamTLS = tls
                }
            ) { port in
                func status(host: String) async throws -> Int {
                    try await TestWebSocketClient.rawHandshake(
                        port: port,
                        request:
                            "GET / HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                    ).status
                }
                for host in ["127.0.0.1", "[::1]", "example.com.", "evil.example", "wrong.example"] {
                    let code = try await status(host: host)
                    #expect(code == 101, "Host: \(host)")
                }
                let requests = upstream.requests.count
                let long = [String](repeating: String(repeating: "a", count: 63), count: 5).joined(separator: ".")
                #expect(long.utf8.count > 255)
                let code = try await status(host: long)
                #expect(code == 400)
                #expect(upstream.requests.count == requests, "a request with a 300-byte Host reached the upstream")
            }
        }
    }

    /// Catalog T-04: by default (`require_sni_host_match: false`) a Host other than the SNI name is served by its Host's route (Deviation T-04: every name on a listener has the same TLS policy, so no policy is crossed); the setting turns it into 421.
    @Test func byDefaultAHostOtherThanTheSNINameIsRoutedByTheHost() async throws {
        guard try await PythonPeer.require("ssl") else { return }
        let certificate = try Self.certificate(names: ["localhost", "other.example"])
        try await withGatewayAndRecordingUpstream(
            configure: {
                $0.listeners[0].tls = TLSServerConfiguration(defaultIdentity: certificate.identity)
                $0.routes[0].hosts = ["other.example"]
            }
        ) { port, upstream in
            let run = try await PythonTLSClient.run([PythonTLSAttempt(label: "A", sni: "localhost", host: "other.example", path: "/")], port: port)
            #expect(run.status == 0, "\(run.output)")
            #expect(run.answers["A"]?.hasPrefix("HTTP/1.1 101") == true, "\(run.output)")
            #expect(upstream.requests.first?.header("Host") != nil)
        }
    }

    /// Runs `openssl s_client` against `port` with nothing on its standard input; returns its exit
    /// status (it is killed after `timeout`).
    static func sClient(port: Int, _ arguments: [String], timeout: Duration = .seconds(10)) async throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try TestPeers.executable("openssl", package: "openssl"))
        process.arguments = ["s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost"] + arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        // SIGKILL: a SIGTERM, inherited blocked from the test runner, may stay pending and hang the wait.
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Catalog T-05: on a wss listener, TLS 1.1, TLS 1.0 and a suite without forward secrecy or AEAD are refused, each counted by its reason in wsgate_tls_handshake_failures_total, while TLS 1.2 with ECDHE AEAD and TLS 1.3 succeed.
    @Test func oldVersionsAndWeakSuitesAreRefusedAndCountedByReason() async throws {
        let metrics = TestMetrics()
        let certificate = try Self.certificate()
        let upstream = try await FakeUpstream.start { .accept($0) }
        defer { Task { await upstream.close() } }
        let refused: [[String]] = [
            ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], ["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"],
            ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"],
        ]
        let accepted: [[String]] = [["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"], ["-tls1_3"]]
        var statuses: [Int32] = []
        try await withGateway(
            upstreamPort: upstream.port,
            metrics: metrics,
            configure: { $0.listeners[0].tls = TLSServerConfiguration(defaultIdentity: certificate.identity) }
        ) { port in
            for arguments in refused + accepted {
                statuses.append(try await Self.sClient(port: port, arguments))
            }
            await metrics.eventually {
                metrics.total("wsgate_tls_handshake_failures_total", [("class", "protocol_version")]) == 2
                    && metrics.total("wsgate_tls_handshake_failures_total", [("class", "no_shared_cipher")]) == 1
            }
        }
        #expect(statuses.prefix(3).allSatisfy { $0 != 0 }, "\(statuses)")
        #expect(statuses.suffix(2) == [0, 0], "\(statuses)")
        #expect(metrics.total("wsgate_tls_handshake_failures_total", [("leg", "client"), ("class", "protocol_version")]) == 2)
        #expect(metrics.total("wsgate_tls_handshake_failures_total", [("leg", "client"), ("class", "no_shared_cipher")]) == 1)
        #expect(metrics.total("wsgate_tls_handshake_failures_total") == 3)
    }
}
