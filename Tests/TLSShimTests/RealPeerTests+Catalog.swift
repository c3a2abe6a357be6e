import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import TLSShim

/// The TLS entries of RELIABILITY §4.3 run as the catalog runs them: `openssl s_client` against a
/// TLSShim server over loopback, each bounded by the peers' deadlines.
extension RealPeerTests {
    /// Runs `openssl s_client` with `arguments` against a fresh server; returns what the server saw
    /// first, the client's exit status and its output.
    static func sClient(
        _ arguments: [String],
        context: TLSServerContext = Self.serverContext
    ) async throws -> (result: Result<TLSConnectionInfo, TLSError>, status: Int32, output: String) {
        let openssl = try Peers.openssl()
        let directory = try TemporaryDirectory()
        let server = try await TestServer.start(context: context, mode: .greetAndClose)
        defer { Task { await server.stop() } }
        let client = try ExternalProcess(openssl, ["s_client", "-connect", "127.0.0.1:\(server.port)", "-ign_eof"] + arguments, in: directory)
        let result = try await server.firstHandshakeResult()
        let status = try await client.waitForExit()
        return (result, status, client.output)
    }

    /// Catalog T-07: ALPN is strict (ALPACA): `h2` alone or `ftp` get a fatal no_application_protocol alert; `http/1.1` and `h2,http/1.1` select http/1.1; no ALPN proceeds without one; never a protocol the client did not offer.
    @Test(arguments: [
        ("h2", nil as String?), ("ftp", nil), ("http/1.1", "http/1.1"), ("h2,http/1.1", "http/1.1"), ("", ""),
    ])
    func opensslClientALPNOffers(offer: String, selected: String?) async throws {
        let run = try await Self.sClient(["-servername", "localhost"] + (offer.isEmpty ? [] : ["-alpn", offer]))
        switch (selected, run.result) {
        case (nil, .failure(let error)):
            #expect(error.code == .noApplicationProtocol)
            #expect(run.status != 0)
            #expect(run.output.contains("no application protocol"), "\(run.output)")
        case ("", .success(let info)):
            #expect(info.negotiatedProtocol == nil)
            #expect(run.status == 0, "\(run.output)")
            #expect(run.output.contains("No ALPN negotiated"), "\(run.output)")
        case (let expected?, .success(let info)):
            #expect(info.negotiatedProtocol == expected)
            #expect(offer.split(separator: ",").contains(Substring(expected)))
            #expect(run.output.contains("ALPN protocol: \(expected)"), "\(run.output)")
            #expect(run.status == 0, "\(run.output)")
        default:
            Issue.record("offer \(offer): \(run.result)\n\(run.output)")
        }
    }

    /// Catalog T-05: TLS 1.1 and 1.0, and TLS 1.2 suites without forward secrecy or with CBC, are refused with an alert and a failure class per reason (protocol version, no shared cipher).
    @Test(arguments: [
        (["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], TLSError.Code.protocolVersion),
        (["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"], .protocolVersion),
        (["-tls1_2", "-cipher", "AES128-SHA"], .noSharedCipher),
        (["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"], .noSharedCipher),
    ])
    func opensslClientWithAnOldVersionOrAWeakSuiteIsRefused(arguments: [String], code: TLSError.Code) async throws {
        let run = try await Self.sClient(arguments)
        guard case .failure(let error) = run.result else {
            Issue.record("\(arguments) completed a handshake")
            return
        }
        #expect(error.code == code, "\(error)")
        #expect(error.code.isHandshakeFailure)
        #expect(run.status != 0)
        #expect(run.output.lowercased().contains("alert"), "\(run.output)")
    }

    /// Catalog T-05: TLS 1.2 with each ECDHE AEAD suite succeeds (TLS 1.3: opensslClientHandshakeSNIAndALPN).
    @Test(arguments: ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"])
    func opensslClientWithAnECDHEAEADSuiteSucceeds(cipher: String) async throws {
        let run = try await Self.sClient(["-tls1_2", "-cipher", cipher])
        let info = try run.result.get()
        #expect(info.version == .tls1_2)
        #expect(info.cipherSuite == cipher)
        #expect(run.status == 0, "\(run.output)")
    }

    /// Catalog T-03: the documented policy for SNI names: an unknown name, an IP address in SNI (which RFC 6066 forbids), and a 255-byte name get the default certificate; a trailing dot selects the named host; nothing crashes.
    @Test(arguments: [
        ("nope.invalid", "CN = localhost"), ("127.0.0.1", "CN = localhost"), ("api.example.test.", "CN = api.example.test"),
        ([String](repeating: String(repeating: "a", count: 63), count: 4).joined(separator: "."), "CN = localhost"),
    ])
    func opensslClientServerNames(serverName: String, subject: String) async throws {
        let run = try await Self.sClient(["-servername", serverName])
        let info = try run.result.get()
        #expect(info.serverName == serverName)
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains(subject), "\(run.output)")
    }

    /// Catalog T-02: repeated client-initiated renegotiations (TLS 1.2, `R` in s_client) are each refused with a no_renegotiation alert, and a session open meanwhile keeps working.
    @Test func repeatedRenegotiationsAreRefusedAndAnotherSessionIsUnaffected() async throws {
        let openssl = try Peers.openssl()
        let directory = try TemporaryDirectory()
        let (ca, _) = try Self.files(directory)
        let server = try await TestServer.start(context: Self.serverContext, mode: .echo)
        defer { Task { await server.stop() } }
        func client() throws -> ExternalProcess {
            try ExternalProcess(
                openssl,
                ["s_client", "-connect", "127.0.0.1:\(server.port)", "-tls1_2", "-CAfile", ca, "-servername", "localhost"],
                in: directory,
                interactiveInput: true
            )
        }
        let live = try client()
        defer { live.terminate() }
        _ = try await live.waitForOutput(containing: "Verify return code")
        live.send("before-renegotiations")
        _ = try await live.waitForOutput(containing: "before-renegotiations")
        for attempt in 0..<10 {
            let renegotiating = try client()
            _ = try await renegotiating.waitForOutput(containing: "Verify return code")
            renegotiating.send("R")
            let status = try await renegotiating.waitForExit(timeout: 10)
            #expect(status != 0, "attempt \(attempt)")
            #expect(renegotiating.output.contains("no renegotiation"), "attempt \(attempt): \(renegotiating.output)")
        }
        live.send("after-renegotiations")
        _ = try await live.waitForOutput(containing: "after-renegotiations")
    }
}
