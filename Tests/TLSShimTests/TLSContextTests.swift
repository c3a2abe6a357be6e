import NIOCore
import NIOEmbedded
import Testing

@testable import TLSShim

/// SNI selection, session resumption and its virtual-host boundary, client session reuse, mTLS,
/// run-time context replacement, and configuration errors.
@Suite struct TLSContextTests {
    static let serverContext = TLSHandlerTests.serverContext

    static func connect(
        server: TLSServerContext = Self.serverContext,
        client: TLSClientContext,
        serverName: String?
    ) throws -> InMemoryPair {
        let pair = try InMemoryPair(server: server, client: client, serverName: serverName)
        try pair.handshake()
        return pair
    }

    /// Catalog T-03: unknown SNI names get the default certificate, a trailing dot and any case select the named host.
    @Test(arguments: [
        ("api.example.test", "CN=api.example.test"),
        ("API.Example.Test.", "CN=api.example.test"),
        ("a.wild.example.test", "CN=*.wild.example.test"),
        ("b.a.wild.example.test", "CN=localhost"),
        ("wild.example.test", "CN=localhost"),
        ("localhost", "CN=localhost"),
        ("unknown.test", "CN=localhost"),
    ])
    func sniPicksTheCertificate(serverName: String, subject: String) throws {
        let client = try TLSClientContext(
            configuration: Fixtures.clientConfiguration {
                $0.certificateVerification = .noHostnameVerification
                $0.sessionReuse = false
            }
        )
        let pair = try Self.connect(client: client, serverName: serverName)
        #expect(pair.clientHandler.connectionInfo?.peerCertificateSubject == subject)
        #expect(pair.serverHandler.connectionInfo?.serverName == serverName)
        #expect(try pair.finish())
    }

    /// Catalog T-03: no SNI gets the default certificate.
    @Test func noSNIGetsTheDefaultCertificate() throws {
        let client = try TLSClientContext(configuration: Fixtures.clientConfiguration { $0.certificateVerification = .none })
        let pair = try Self.connect(client: client, serverName: nil)
        #expect(pair.clientHandler.connectionInfo?.peerCertificateSubject == "CN=localhost")
        #expect(pair.serverHandler.connectionInfo?.serverName == nil)
        #expect(try pair.finish())
    }

    /// Resumption works within a virtual host and never across: a session made under `api.example.test`
    /// is offered under `x.wild.example.test` (same client cache key forced by a shared context and a
    /// hand-carried session) and must be refused with a full handshake and the other certificate.
    @Test(arguments: [TLSVersion.tls1_2, .tls1_3])
    func sessionsResumeWithinAVirtualHostOnly(version: TLSVersion) throws {
        let server = try TLSServerContext(configuration: Fixtures.serverConfiguration())
        let client = try TLSClientContext(
            configuration: Fixtures.clientConfiguration {
                $0.maximumVersion = version
                $0.certificateVerification = .noHostnameVerification
            }
        )
        // First connection: full handshake; the session is cached under "api.example.test".
        let first = try Self.connect(server: server, client: client, serverName: "api.example.test")
        #expect(first.clientHandler.connectionInfo?.sessionReused == false)
        #expect(try first.finish())
        #expect(client.cachedSessionCount == 1)

        // Second connection to the same name: resumed.
        let second = try Self.connect(server: server, client: client, serverName: "api.example.test")
        #expect(second.clientHandler.connectionInfo?.sessionReused == true)
        #expect(second.serverHandler.connectionInfo?.sessionReused == true)
        #expect(try second.finish())

        // Move the api session to the wildcard host's key: the server must not resume it there.
        let session = try #require(client.cachedSession(for: "api.example.test"))
        client.storeReplacing(session: session, for: "x.wild.example.test")
        let crossed = try Self.connect(server: server, client: client, serverName: "x.wild.example.test")
        #expect(crossed.clientRecorder.handshakeCompleted.count == 1)
        #expect(crossed.serverHandler.connectionInfo?.sessionReused == false)
        #expect(crossed.clientHandler.connectionInfo?.peerCertificateSubject == "CN=*.wild.example.test")
        #expect(try crossed.finish())

        // And the default host does not accept it either.
        let again = try #require(client.cachedSession(for: "api.example.test"))
        client.storeReplacing(session: again, for: "localhost")
        let toDefault = try Self.connect(server: server, client: client, serverName: "localhost")
        #expect(toDefault.serverHandler.connectionInfo?.sessionReused == false)
        #expect(toDefault.clientHandler.connectionInfo?.peerCertificateSubject == "CN=localhost")
        #expect(try toDefault.finish())
    }

    @Test func sessionResumptionCanBeTurnedOff() throws {
        let server = try TLSServerContext(configuration: Fixtures.serverConfiguration { $0.sessionResumption = false })
        let client = try TLSClientContext(configuration: Fixtures.clientConfiguration())
        for _ in 0..<2 {
            let pair = try Self.connect(server: server, client: client, serverName: "localhost")
            #expect(pair.serverHandler.connectionInfo?.sessionReused == false)
            #expect(try pair.finish())
        }
    }

    @Test func clientSessionsAreKeyedByUpstreamName() throws {
        let client = try TLSClientContext(configuration: Fixtures.clientConfiguration())
        let server = try TLSServerContext(configuration: Fixtures.serverConfiguration())
        let a = try Self.connect(server: server, client: client, serverName: "localhost")
        #expect(try a.finish())
        let b = try Self.connect(server: server, client: client, serverName: "127.0.0.1")
        #expect(b.clientHandler.connectionInfo?.sessionReused == false)
        #expect(try b.finish())
        #expect(client.cachedSessionCount == 2)
        let c = try Self.connect(server: server, client: client, serverName: "127.0.0.1")
        #expect(c.clientHandler.connectionInfo?.sessionReused == true)
        #expect(try c.finish())
    }

    @Test func mutualTLS() throws {
        let server = try TLSServerContext(
            configuration: Fixtures.serverConfiguration {
                $0.clientAuthentication = TLSClientAuthentication(trustRoots: .pem(Fixtures.ca.certificatePEM))
            }
        )
        let withIdentity = try TLSClientContext(configuration: Fixtures.clientConfiguration { $0.identity = Fixtures.client.identity })
        let pair = try Self.connect(server: server, client: withIdentity, serverName: "localhost")
        #expect(pair.serverHandler.connectionInfo?.peerCertificateSubject == "CN=client.example.test")
        #expect(try pair.finish())

        // Without a client certificate the server refuses (TLS 1.3: after the client's Finished).
        let anonymous = try TLSClientContext(configuration: Fixtures.clientConfiguration())
        let refused = try InMemoryPair(server: server, client: anonymous, serverName: "localhost")
        try refused.handshake()
        #expect(refused.serverRecorder.tlsErrors.first?.code.isHandshakeFailure == true)
        #expect(!refused.server.isActive)
        _ = try refused.finish()
    }

    /// The server sends the chain it was configured with, as nginx does (SSL_MODE_NO_AUTO_CHAIN): the
    /// client CAs in the context's trust store are not appended to a certificate configured without
    /// intermediates (and no chain is built from the store in every handshake).
    @Test func theServerSendsOnlyTheConfiguredChain() throws {
        let server = try TLSServerContext(
            configuration: Fixtures.serverConfiguration {
                // The CA that issued the server's certificate is also the one client certificates need.
                $0.clientAuthentication = TLSClientAuthentication(trustRoots: .pem(Fixtures.ca.certificatePEM), mode: .optional)
            }
        )
        let client = try TLSClientContext(configuration: Fixtures.clientConfiguration { $0.sessionReuse = false })
        let pair = try Self.connect(server: server, client: client, serverName: "localhost")
        #expect(pair.clientHandler.connectionInfo?.peerCertificateSubject == "CN=localhost")
        #expect(pair.clientHandler.connection.peerCertificateChainLength == 1)
        #expect(try pair.finish())
    }

    /// Server connections free OpenSSL's record buffers when they are empty (SSL_MODE_RELEASE_BUFFERS,
    /// as nginx), so an idle TLS connection holds none of the 2 × 17 KiB; data still flows both ways.
    @Test func serverConnectionsReleaseIdleRecordBuffers() throws {
        let client = try TLSClientContext(configuration: Fixtures.clientConfiguration())
        let pair = try Self.connect(client: client, serverName: "localhost")
        #expect(pair.serverHandler.connection.releasesIdleBuffers)
        pair.client.writeAndFlush(patternBuffer(40_000), promise: nil)
        try pair.interact()
        pair.server.writeAndFlush(patternBuffer(40_000, seed: 5), promise: nil)
        try pair.interact()
        #expect(pair.serverRecorder.received == patternBuffer(40_000))
        #expect(pair.clientRecorder.received == patternBuffer(40_000, seed: 5))
        #expect(try pair.finish())
    }

    @Test func replacingTheContextAffectsNewConnectionsOnly() throws {
        let provider = TLSServerContextProvider(try TLSServerContext(configuration: Fixtures.serverConfiguration()))
        let client = try TLSClientContext(configuration: Fixtures.clientConfiguration { $0.sessionReuse = false })
        let old = try InMemoryPair(
            client: TLSHandler.client(context: client, serverName: "localhost"),
            server: TLSHandler.server(provider: provider)
        )
        try old.handshake()

        let renewed = Fixtures.issue("localhost renewed", dns: ["localhost"])
        try provider.reload(TLSServerConfiguration(defaultIdentity: renewed.identity))

        // The live connection keeps working on the old context.
        old.client.writeAndFlush(ByteBuffer(string: "still here"), promise: nil)
        try old.interact()
        #expect(old.serverRecorder.received == ByteBuffer(string: "still here"))
        #expect(old.clientHandler.connectionInfo?.peerCertificateSubject == "CN=localhost")
        #expect(try old.finish())

        let new = try InMemoryPair(
            client: TLSHandler.client(context: client, serverName: "localhost"),
            server: TLSHandler.server(provider: provider)
        )
        try new.handshake()
        #expect(new.clientHandler.connectionInfo?.peerCertificateSubject == "CN=localhost renewed")
        #expect(try new.finish())
    }

    @Test func aFailedReloadKeepsTheCurrentContext() throws {
        let context = try TLSServerContext(configuration: Fixtures.serverConfiguration())
        let provider = TLSServerContextProvider(context)
        let broken = TLSServerConfiguration(
            defaultIdentity: TLSIdentity(certificateChain: .pem("garbage"), privateKey: .pem("garbage"))
        )
        #expect(throws: TLSError(code: .invalidCertificate, reason: "")) { try provider.reload(broken) }
        #expect(provider.current === context)
    }

    @Test func configurationErrorsKeepOpenSSLsReason() throws {
        let mismatched = TLSServerConfiguration(
            defaultIdentity: TLSIdentity(
                certificateChain: .pem(Fixtures.localhost.certificatePEM),
                privateKey: .pem(Fixtures.apiHost.privateKeyPEM)
            )
        )
        let error = try #require(throws: TLSError.self) { try TLSServerContext(configuration: mismatched) }
        #expect(error.code == .invalidPrivateKey)
        #expect(error.reason.contains("key values mismatch"))

        #expect(throws: TLSError(code: .invalidConfiguration, reason: "")) {
            try TLSServerContext(configuration: Fixtures.serverConfiguration { $0.cipherList = "NOT-A-CIPHER" })
        }
        #expect(throws: TLSError(code: .invalidConfiguration, reason: "")) {
            try TLSServerContext(configuration: Fixtures.serverConfiguration { $0.virtualHosts[0].serverNames = ["a.*.test"] })
        }
        #expect(throws: TLSError(code: .invalidCertificate, reason: "")) {
            try TLSServerContext(
                configuration: TLSServerConfiguration(
                    defaultIdentity: TLSIdentity(certificateChain: .file("/nonexistent.pem"), privateKey: .file("/nonexistent.key"))
                )
            )
        }
        #expect(throws: TLSError(code: .invalidConfiguration, reason: "")) {
            try TLSClientContext(
                configuration: TLSClientConfiguration {
                    $0.minimumVersion = .tls1_3
                    $0.maximumVersion = .tls1_2
                }
            )
        }
    }

    @Test func systemTrustRootsLoad() throws {
        _ = try TLSClientContext(configuration: TLSClientConfiguration())
    }
}
