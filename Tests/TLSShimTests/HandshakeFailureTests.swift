import NIOCore
import NIOEmbedded
import Testing

@testable import TLSShim

/// Every handshake failure class, produced by real OpenSSL peers in memory, on both ends.
@Suite struct HandshakeFailureTests {
    static let clientContext = TLSHandlerTests.clientContext

    static func server(
        identity: TLSIdentity,
        _ configure: (inout TLSServerConfiguration) -> Void = { _ in }
    ) throws
        -> TLSServerContext
    {
        try TLSServerContext(configuration: TLSServerConfiguration(defaultIdentity: identity, configure))
    }

    /// Runs a handshake that must fail and returns (client error, server error).
    static func failingHandshake(
        server: TLSServerContext,
        client: TLSClientContext = Self.clientContext,
        serverName: String? = "localhost",
        chunk: Int = .max
    ) throws -> (client: TLSError?, server: TLSError?) {
        let pair = try InMemoryPair(server: server, client: client, serverName: serverName)
        try pair.handshake(chunk: chunk)
        #expect(pair.clientRecorder.handshakeCompleted.isEmpty)
        #expect(pair.serverRecorder.handshakeCompleted.isEmpty)
        #expect(!pair.client.isActive)
        #expect(!pair.server.isActive)
        #expect(pair.clientRecorder.tlsErrors.count <= 1 && pair.serverRecorder.tlsErrors.count <= 1)
        _ = try pair.finish()
        return (pair.clientRecorder.tlsErrors.first, pair.serverRecorder.tlsErrors.first)
    }

    /// Catalog T-11: (a) a self-signed upstream certificate fails verification (certificate not trusted).
    @Test(arguments: [1, Int.max])
    func untrustedSelfSignedCertificate(chunk: Int) throws {
        let result = try Self.failingHandshake(server: Self.server(identity: Fixtures.untrusted.identity), chunk: chunk)
        let client = try #require(result.client)
        #expect(client.code == .certificateNotTrusted)
        #expect(client.reason == "self-signed certificate")
        #expect(client.code.isHandshakeFailure)
        let server = try #require(result.server)
        #expect(server.code == .alertReceived)
        #expect(server.alert == .unknownCA)
        #expect(server.reason == "tlsv1 alert unknown ca")
    }

    @Test func certificateFromAnotherCA() throws {
        let other = Fixtures.issue("localhost", dns: ["localhost"], by: Fixtures.otherCA)
        let result = try Self.failingHandshake(server: Self.server(identity: other.identity))
        #expect(result.client?.code == .certificateNotTrusted)
        #expect(result.client?.reason == "unable to get local issuer certificate")
        #expect(result.server?.alert == .unknownCA)
    }

    /// Catalog T-11: (b) a certificate for another name fails verification (hostname mismatch).
    @Test func hostNameMismatch() throws {
        let result = try Self.failingHandshake(
            server: Self.server(identity: Fixtures.localhost.identity),
            serverName: "wrong.example.test"
        )
        #expect(result.client?.code == .hostnameMismatch)
        #expect(result.client?.reason == "hostname mismatch")
        #expect(result.server?.code == .alertReceived)
        #expect(result.server?.alert == .badCertificate)
    }

    /// Catalog T-13: an IP-literal upstream name is verified against IP subjectAltNames and sends no SNI (RFC 6066 §3).
    @Test func ipAddressMismatchAndMatch() throws {
        let server = try Self.server(identity: Fixtures.localhost.identity)
        let mismatch = try Self.failingHandshake(server: server, serverName: "127.0.0.2")
        #expect(mismatch.client?.code == .hostnameMismatch)
        #expect(mismatch.client?.reason == "IP address mismatch")

        for address in ["127.0.0.1", "::1", "[::1]"] {
            let pair = try InMemoryPair(server: server, client: Self.clientContext, serverName: address)
            try pair.handshake()
            #expect(pair.clientRecorder.handshakeCompleted.count == 1, "\(address)")
            // RFC 6066 §3: no SNI for IP literals.
            #expect(pair.serverHandler.connectionInfo?.serverName == nil)
            #expect(try pair.finish())
        }
    }

    /// Catalog T-11: (c) an expired certificate fails verification (certificate expired).
    @Test func expiredCertificate() throws {
        let result = try Self.failingHandshake(server: Self.server(identity: Fixtures.expired.identity))
        #expect(result.client?.code == .certificateExpired)
        #expect(result.client?.reason == "certificate has expired")
        #expect(result.server?.alert == .certificateExpired)
    }

    @Test func notYetValidCertificate() throws {
        let result = try Self.failingHandshake(server: Self.server(identity: Fixtures.notYetValid.identity))
        #expect(result.client?.code == .certificateNotYetValid)
        #expect(result.client?.reason == "certificate is not yet valid")
    }

    @Test func verificationCanBeRelaxedExplicitly() throws {
        let noHostname = try TLSClientContext(
            configuration: Fixtures.clientConfiguration { $0.certificateVerification = .noHostnameVerification }
        )
        let pair = try InMemoryPair(
            server: Self.server(identity: Fixtures.localhost.identity),
            client: noHostname,
            serverName: "wrong.example.test"
        )
        try pair.handshake()
        #expect(pair.clientRecorder.handshakeCompleted.count == 1)
        #expect(try pair.finish())

        let none = try TLSClientContext(configuration: Fixtures.clientConfiguration { $0.certificateVerification = .none })
        let untrusted = try InMemoryPair(server: Self.server(identity: Fixtures.expired.identity), client: none)
        try untrusted.handshake()
        #expect(untrusted.clientRecorder.handshakeCompleted.count == 1)
        #expect(try untrusted.finish())
    }

    @Test func fullVerificationNeedsAServerName() throws {
        #expect(throws: TLSError(code: .invalidConfiguration, reason: "")) {
            _ = try TLSHandler.client(context: Self.clientContext, serverName: nil)
        }
    }

    /// Catalog T-05: a version the server does not accept fails with protocol_version, counted as its own class.
    @Test func protocolVersionNotShared() throws {
        let server = try Self.server(identity: Fixtures.localhost.identity) { $0.minimumVersion = .tls1_3 }
        let client = try TLSClientContext(configuration: Fixtures.clientConfiguration { $0.maximumVersion = .tls1_2 })
        let result = try Self.failingHandshake(server: server, client: client)
        #expect(result.server?.code == .protocolVersion)
        #expect(result.server?.reason == "unsupported protocol")
        #expect(result.client?.code == .alertReceived)
        #expect(result.client?.alert == .protocolVersion)
        #expect(result.client?.reason == "tlsv1 alert protocol version")
    }

    /// Catalog T-05: a suite without forward secrecy (AES128-SHA) fails with handshake_failure (no shared cipher).
    @Test func noSharedCipher() throws {
        // AES128-SHA (RSA key exchange, CBC) is outside the safe default list.
        let server = try Self.server(identity: Fixtures.localhost.identity)
        let client = try TLSClientContext(
            configuration: Fixtures.clientConfiguration {
                $0.maximumVersion = .tls1_2
                $0.cipherList = "AES128-SHA"
            }
        )
        let result = try Self.failingHandshake(server: server, client: client)
        #expect(result.server?.code == .noSharedCipher)
        #expect(result.server?.reason == "no shared cipher")
        #expect(result.client?.code == .alertReceived)
        #expect(result.client?.alert == .handshakeFailure)
    }

    /// Catalog T-07: a client offering only h2 gets a fatal no_application_protocol alert.
    @Test func noSharedApplicationProtocol() throws {
        let client = try TLSClientContext(configuration: Fixtures.clientConfiguration { $0.applicationProtocols = ["h2"] })
        let result = try Self.failingHandshake(server: Self.server(identity: Fixtures.localhost.identity), client: client)
        #expect(result.server?.code == .noApplicationProtocol)
        #expect(result.client?.alert == .noApplicationProtocol)
    }

    /// Catalog T-07: a client without ALPN proceeds.
    @Test func clientWithoutALPNIsAccepted() throws {
        let client = try TLSClientContext(configuration: Fixtures.clientConfiguration { $0.applicationProtocols = [] })
        let pair = try InMemoryPair(server: Self.server(identity: Fixtures.localhost.identity), client: client)
        try pair.handshake()
        #expect(pair.serverRecorder.handshakeCompleted == [nil])
        #expect(try pair.finish())
    }

    @Test func handshakeTimeout() throws {
        let pair = try InMemoryPair(
            server: TLSHandlerTests.serverContext,
            client: Self.clientContext,
            serverHandlerConfiguration: .init { $0.handshakeTimeout = .seconds(10) }
        )
        try pair.activate()
        // Part of the ClientHello arrives, then the client stalls.
        let hello = try #require(try pair.client.readOutbound(as: ByteBuffer.self))
        try pair.server.writeInbound(hello.getSlice(at: 0, length: 10)!)
        (pair.server.eventLoop as! EmbeddedEventLoop).advanceTime(by: .seconds(9))
        #expect(pair.server.isActive)
        (pair.server.eventLoop as! EmbeddedEventLoop).advanceTime(by: .seconds(1))
        #expect(!pair.server.isActive)
        #expect(pair.serverRecorder.tlsErrors.map(\.code) == [.handshakeTimeout])
        #expect(pair.serverRecorder.tlsErrors.first?.code.isHandshakeFailure == true)
        _ = try pair.finish()
    }

    /// Catalog T-01: a ClientHello trickled one byte every 500 ms, or nothing at all, is closed at the handshake deadline counted from the start of the handshake (accept), never reset by progress; the failure is classed as a timeout.
    @Test(arguments: [true, false])
    func aTrickledOrSilentClientHelloTimesOutAtTheDeadlineFromAccept(trickle: Bool) throws {
        let pair = try InMemoryPair(
            server: TLSHandlerTests.serverContext,
            client: Self.clientContext,
            serverHandlerConfiguration: .init { $0.handshakeTimeout = .seconds(10) }
        )
        try pair.activate()
        let hello = try #require(try pair.client.readOutbound(as: ByteBuffer.self))
        let loop = pair.server.eventLoop as! EmbeddedEventLoop
        for index in 0..<20 {
            if trickle { try pair.server.writeInbound(hello.getSlice(at: hello.readerIndex + index, length: 1)!) }
            loop.advanceTime(by: .milliseconds(index == 19 ? 499 : 500))
        }
        #expect(pair.server.isActive, "closed before the deadline")
        loop.advanceTime(by: .milliseconds(1))
        #expect(!pair.server.isActive, "still open at the deadline")
        #expect(pair.serverRecorder.tlsErrors.map(\.code) == [.handshakeTimeout])
        _ = try pair.finish()
    }

    @Test func timerIsCancelledByACompletedHandshake() throws {
        let pair = try InMemoryPair(server: TLSHandlerTests.serverContext, client: Self.clientContext)
        try pair.handshake()
        (pair.server.eventLoop as! EmbeddedEventLoop).advanceTime(by: .seconds(60))
        #expect(pair.server.isActive)
        #expect(pair.serverRecorder.errors.isEmpty)
        #expect(try pair.finish())
    }

    @Test func eofDuringHandshake() throws {
        let pair = try InMemoryPair(server: TLSHandlerTests.serverContext, client: Self.clientContext)
        try pair.activate()
        let hello = try #require(try pair.client.readOutbound(as: ByteBuffer.self))
        try pair.server.writeInbound(hello.getSlice(at: 0, length: 20)!)
        pair.server.pipeline.fireChannelInactive()
        #expect(pair.serverRecorder.tlsErrors.map(\.code) == [.eofDuringHandshake])
        _ = try? pair.finish()
    }

    @Test func inputClosedDuringHandshakeIsEOF() throws {
        let pair = try InMemoryPair(server: TLSHandlerTests.serverContext, client: Self.clientContext)
        try pair.activate()
        pair.server.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(pair.serverRecorder.tlsErrors.map(\.code) == [.eofDuringHandshake])
        #expect(!pair.server.isActive)
        _ = try? pair.finish()
    }

    /// Plain HTTP is its own class (issue #11 §3, TLSHandler+PlaintextHTTPTests); other garbage is
    /// left to OpenSSL.
    /// Catalog T-10: garbage instead of a ClientHello fails the handshake with a reason, never a crash.
    @Test(arguments: ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\u{1}\u{2}garbage\r\n\r\n", "get / HTTP/1.1\r\n\r\n"])
    func garbageInsteadOfAClientHello(_ garbage: String) throws {
        let pair = try InMemoryPair(server: TLSHandlerTests.serverContext, client: Self.clientContext)
        try pair.activate()
        try pair.server.writeInbound(ByteBuffer(string: garbage))
        let error = try #require(pair.serverRecorder.tlsErrors.first)
        if garbage.hasPrefix("GET") {
            #expect(error.code == .plaintextHTTP)
        } else {
            #expect(error.code == .protocolVersion || error.code == .handshakeFailed)
        }
        #expect(!error.reason.isEmpty)
        #expect(!pair.server.isActive)
        _ = try? pair.finish()
    }
}
