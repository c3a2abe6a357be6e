import Foundation
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

@testable import TLSShim

/// Handshakes per second and bulk MB/s of the handler, in memory and over loopback, beside raw
/// OpenSSL and `openssl s_time` / `openssl speed` measured in the same run (STYLE.md P14: gated so that
/// `swift test` stays fast). Wall-clock numbers: run locally, in release, on a quiet machine:
///
///     swift build -c release --build-tests -Xswiftc -enable-testing
///     TLSSHIM_BENCHMARK=1 swift test -c release --skip-build -Xswiftc -enable-testing --filter TLSShimBenchmarks
///
/// Prints one Markdown table row per measurement.
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["TLSSHIM_BENCHMARK"] == "1"))
struct TLSShimBenchmarks {
    static let serverContext = try! TLSServerContext(
        configuration: TLSServerConfiguration(defaultIdentity: Fixtures.localhost.identity) { $0.sessionResumption = false }
    )
    static let clientContext = try! TLSClientContext(configuration: Fixtures.clientConfiguration { $0.sessionReuse = false })

    static func row(_ name: String, _ value: Double, _ unit: String, baseline: Double? = nil, _ baselineName: String = "") {
        let ratio = baseline.map { String(format: "%.2f", value / $0) } ?? "—"
        let base = baseline.map { String(format: "%.1f %@ (%@)", $0, unit, baselineName) } ?? "—"
        print(String(format: "| %@ | %.1f %@ | %@ | %@ |", name, value, unit, base, ratio))
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Raw OpenSSL: two `SSL*` over the shim's in-memory BIO pumped directly, no NIO pipeline.
    static func rawHandshake() throws {
        let server = try TLSConnection(serverContext: Self.serverContext)
        let client = try TLSConnection(clientContext: Self.clientContext, serverName: "localhost")
        var clientDone = false
        var serverDone = false
        var buffer = ByteBuffer()
        while !(clientDone && serverDone) {
            if !clientDone { clientDone = client.handshake() == .complete }
            buffer.clear()
            client.readOutbound(into: &buffer)
            server.receive(buffer)
            if !serverDone { serverDone = server.handshake() == .complete }
            buffer.clear()
            server.readOutbound(into: &buffer)
            client.receive(buffer)
        }
    }

    @Test func handshakesInMemory() throws {
        let count = 300
        let clock = ContinuousClock()
        let raw = clock.measure { for _ in 0..<count { try! Self.rawHandshake() } }
        let handler = try clock.measure {
            for _ in 0..<count {
                let pair = try InMemoryPair(server: Self.serverContext, client: Self.clientContext)
                try pair.handshake()
                _ = try pair.finish()
            }
        }
        Self.row(
            "handshakes/s, in memory (TLS 1.3, P-256), handler pair",
            Double(count) / Self.seconds(handler),
            "hs/s",
            baseline: Double(count) / Self.seconds(raw),
            "raw OpenSSL over in-memory BIOs"
        )
    }

    @Test func bulkInMemory() throws {
        let total = 64 << 20
        let chunk = patternBuffer(1 << 20)
        let clock = ContinuousClock()
        // Raw: encrypt on one SSL*, decrypt on the other.
        let server = try TLSConnection(serverContext: Self.serverContext)
        let client = try TLSConnection(clientContext: Self.clientContext, serverName: "localhost")
        var wire = ByteBuffer()
        var clientDone = false
        var serverDone = false
        while !(clientDone && serverDone) {
            if !clientDone { clientDone = client.handshake() == .complete }
            wire.clear()
            client.readOutbound(into: &wire)
            server.receive(wire)
            if !serverDone { serverDone = server.handshake() == .complete }
            wire.clear()
            server.readOutbound(into: &wire)
            client.receive(wire)
        }
        var plain = ByteBuffer()
        let raw = clock.measure {
            for _ in 0..<(total >> 20) {
                _ = client.write(chunk)
                wire.clear()
                client.readOutbound(into: &wire)
                server.receive(wire)
                while true {
                    plain.clear()
                    guard server.read(into: &plain, maximum: 65_536) == .data else { break }
                }
            }
        }
        // Handler pair.
        let pair = try InMemoryPair(
            client: TLSHandler.client(context: Self.clientContext, serverName: "localhost"),
            server: TLSHandler.server(context: Self.serverContext)
        )
        try pair.server.pipeline.syncOperations.addHandler(DiscardSink(), position: .after(pair.serverHandler))
        try pair.handshake()
        let handler = try clock.measure {
            for _ in 0..<(total >> 20) {
                pair.client.writeAndFlush(chunk, promise: nil)
                try pair.interact()
            }
        }
        Self.row(
            "bulk MB/s, in memory (TLS 1.3 AES-128-GCM), handler pair",
            Double(total) / 1e6 / Self.seconds(handler),
            "MB/s",
            baseline: Double(total) / 1e6 / Self.seconds(raw),
            "raw OpenSSL encrypt+decrypt"
        )
        let speed = try Self.opensslSpeedAES128GCM()
        Self.row(
            "raw OpenSSL encrypt+decrypt (in-memory BIOs)",
            Double(total) / 1e6 / Self.seconds(raw),
            "MB/s",
            baseline: speed / 2,
            "openssl speed aes-128-gcm 16 KiB ÷ 2"
        )
    }

    /// `openssl speed -evp aes-128-gcm` at 16 KiB blocks, in MB/s (1e6 B/s).
    static func opensslSpeedAES128GCM() throws -> Double {
        let openssl = try Peers.openssl()
        let process = Process()
        // Foundation's Process passes on the test runner's blocked signal mask, and `openssl speed`
        // times itself with SIGALRM: a small Python trampoline unblocks signals before exec.
        process.executableURL = URL(fileURLWithPath: try Peers.python3())
        process.arguments = [
            "-c",
            "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); "
                + "signal.signal(signal.SIGALRM, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])",
            openssl, "speed", "-seconds", "2", "-bytes", "16384", "-evp", "aes-128-gcm",
        ]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let output = String(decoding: data, as: UTF8.self)
        // Last line: "AES-128-GCM   1234567.89k" (1000s of bytes per second).
        guard let line = output.split(separator: "\n").last(where: { $0.lowercased().hasPrefix("aes-128-gcm") }),
            let field = line.split(separator: " ").last,
            let kilobytes = Double(field.dropLast())
        else { throw PeerTestError("cannot parse openssl speed output:\n\(output)") }
        return kilobytes / 1_000
    }

    /// `openssl s_time -new` against a TLSShim server and against `openssl s_server`, same machine, same run.
    @Test func handshakesOverLoopback() async throws {
        let openssl = try Peers.openssl()
        let directory = try TemporaryDirectory()
        let server = try await TestServer.start(context: Self.serverContext, mode: .echo)
        defer { Task { await server.stop() } }
        let ours = try await Self.sTime(openssl, port: server.port, in: directory)

        let cert = try directory.write("c.pem", Fixtures.localhost.certificatePEM)
        let key = try directory.write("k.pem", Fixtures.localhost.privateKeyPEM)
        let reference = try ExternalProcess(
            openssl,
            ["s_server", "-accept", "127.0.0.1:0", "-cert", cert, "-key", key, "-no_ticket", "-www"],
            in: directory
        )
        defer { reference.terminate() }
        let output = try await reference.waitForOutput(containing: "ACCEPT")
        let port = Int(output.split(separator: "\n").first { $0.hasPrefix("ACCEPT") }!.split(separator: ":").last!)!
        let theirs = try await Self.sTime(openssl, port: port, in: directory)
        Self.row("handshakes/s, loopback, openssl s_time → TLSShim server", ours, "hs/s", baseline: theirs, "s_time → openssl s_server")
    }

    static func sTime(_ openssl: String, port: Int, in directory: TemporaryDirectory) async throws -> Double {
        let process = try ExternalProcess(
            openssl,
            ["s_time", "-connect", "127.0.0.1:\(port)", "-new", "-time", "3"],
            in: directory
        )
        try await process.waitForExit(timeout: 30)
        // "1234 connections in 3.01s; 410.00 connections/user sec, bytes read 0"
        // "1234 connections in 4 real seconds, 0 bytes read per connection"
        guard let line = process.stdout.split(separator: "\n").first(where: { $0.contains("real seconds") }),
            let connections = Double(line.split(separator: " ")[0]),
            let secondsField = line.split(separator: " ").dropFirst(3).first,
            let realSeconds = Double(secondsField)
        else { throw PeerTestError("cannot parse s_time output:\n\(process.output)") }
        return connections / realSeconds
    }

    @Test func bulkOverLoopback() async throws {
        let server = try await TestServer.start(context: Self.serverContext, mode: .echo)
        defer { Task { await server.stop() } }
        let total = 256 << 20
        let clock = ContinuousClock()
        let start = clock.now
        let outcome = try await runClient(
            context: Self.clientContext,
            serverName: "localhost",
            port: server.port,
            streamBytes: total,
            timeout: 120
        )
        let elapsed = Self.seconds(clock.now - start)
        #expect(outcome.receivedCount == total && outcome.patternIntact)
        Self.row("bulk MB/s each way, loopback echo, TLSShim client ↔ TLSShim server", Double(total) / 1e6 / elapsed, "MB/s")
    }
}

/// Drops plaintext (benchmarks must not accumulate it).
final class DiscardSink: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

@available(*, unavailable)
extension DiscardSink: Sendable {}
