import Foundation
import NIOCore
import NIOEmbedded
import Testing

@testable import TLSShim

/// Client certificates (mTLS, issue #13): verify mode and trust store per virtual host, the failure
/// classes, what a verified certificate yields, and resumption that never skips the check.
@Suite struct TLSServerContextClientAuthenticationTests {
    static let spiffeClient = Fixtures.issue("client.example.test", dns: ["client.example.test"]) {
        $0.uris = ["spiffe://example.test/ns/chat/sa/client"]
    }
    static let otherCAClient = Fixtures.issue("client.example.test", dns: [], by: Fixtures.otherCA)
    static let expiredClient = Fixtures.issue("client.example.test", dns: []) {
        $0.notBefore = -7_200
        $0.notAfter = -3_600
    }
    static let intermediate = Fixtures.issue("wsgate test intermediate", dns: []) { $0.isCertificateAuthority = true }
    static let chainedClient = Fixtures.issue("chained.example.test", dns: [], by: Self.intermediate)

    static func requiring(_ mode: TLSClientAuthentication.Mode = .require, depth: Int = 2) -> TLSClientAuthentication {
        TLSClientAuthentication(trustRoots: .pem(Fixtures.ca.certificatePEM), mode: mode, verifyDepth: depth)
    }

    static func client(_ identity: TLSIdentity?, version: TLSVersion = .tls1_3) throws -> TLSClientContext {
        try TLSClientContext(
            configuration: Fixtures.clientConfiguration {
                $0.identity = identity
                $0.maximumVersion = version
                $0.certificateVerification = .noHostnameVerification
            }
        )
    }

    /// Runs a handshake; returns the pair after moving every byte.
    static func connect(_ server: TLSServerContext, _ client: TLSClientContext, serverName: String? = "localhost") throws -> InMemoryPair {
        let pair = try InMemoryPair(server: server, client: client, serverName: serverName)
        try pair.handshake()
        return pair
    }

    // MARK: Failure classes and alerts

    @Test(arguments: [TLSVersion.tls1_2, .tls1_3])
    func aMissingCertificateFailsWithCertificateRequired(version: TLSVersion) throws {
        let server = try TLSServerContext(configuration: Fixtures.serverConfiguration { $0.clientAuthentication = Self.requiring() })
        let pair = try Self.connect(server, try Self.client(nil, version: version))
        let error = try #require(pair.serverRecorder.tlsErrors.first)
        #expect(error.code == .clientCertificateRequired)
        #expect(error.code.isHandshakeFailure)
        #expect(pair.serverRecorder.handshakeCompleted.isEmpty)
        // RFC 8446 §4.4.2.4: certificate_required in TLS 1.3; RFC 5246 §7.4.6: handshake_failure in 1.2.
        #expect(pair.clientRecorder.tlsErrors.first?.alert == (version == .tls1_3 ? .certificateRequired : .handshakeFailure))
        #expect(!pair.server.isActive)
        _ = try pair.finish()
    }

    @Test(arguments: [TLSVersion.tls1_2, .tls1_3])
    func untrustedAndExpiredCertificatesFailWithTheirClassAndAlert(version: TLSVersion) throws {
        let server = try TLSServerContext(configuration: Fixtures.serverConfiguration { $0.clientAuthentication = Self.requiring(.optional) })
        let cases: [(TLSGeneratedCertificate, TLSError.Code, TLSAlert)] = [
            (Self.otherCAClient, .clientCertificateUntrusted, .unknownCA),
            (Fixtures.untrusted, .clientCertificateUntrusted, .unknownCA),
            (Self.expiredClient, .clientCertificateExpired, .certificateExpired),
        ]
        for (certificate, code, alert) in cases {
            let pair = try Self.connect(server, try Self.client(certificate.identity, version: version))
            #expect(pair.serverRecorder.tlsErrors.first?.code == code)
            #expect(pair.serverRecorder.handshakeCompleted.isEmpty)
            #expect(pair.clientRecorder.tlsErrors.first?.alert == alert)
            _ = try pair.finish()
        }
    }

    @Test func theVerifyDepthBoundsTheChain() throws {
        let chain = TLSIdentity(
            certificateChain: .pem(Self.chainedClient.certificatePEM + Self.intermediate.certificatePEM),
            privateKey: .pem(Self.chainedClient.privateKeyPEM)
        )
        // Depth 0 on a name whose default allows 2: the depth follows the SNI switch too.
        let strict = try TLSServerContext(
            configuration: Fixtures.serverConfiguration {
                $0.clientAuthentication = Self.requiring(depth: 2)
                $0.virtualHosts[0].clientAuthentication = Self.requiring(depth: 0)
            }
        )
        let refused = try Self.connect(strict, try Self.client(chain), serverName: "api.example.test")
        #expect(refused.serverRecorder.tlsErrors.first?.code == .clientCertificateInvalid)
        _ = try refused.finish()
        let viaDefault = try Self.connect(strict, try Self.client(chain), serverName: "localhost")
        #expect(viaDefault.serverHandler.connectionInfo?.peerCertificate != nil)
        #expect(try viaDefault.finish())

        let lenient = try TLSServerContext(configuration: Fixtures.serverConfiguration { $0.clientAuthentication = Self.requiring(depth: 1) })
        let accepted = try Self.connect(lenient, try Self.client(chain))
        #expect(accepted.serverHandler.connectionInfo?.peerCertificate?.subject == "CN=chained.example.test")
        #expect(try accepted.finish())
    }

    @Test func aDepthOutsideTheRangeIsAConfigurationError() throws {
        #expect(throws: TLSError(code: .invalidConfiguration, reason: "")) {
            try TLSServerContext(configuration: Fixtures.serverConfiguration { $0.clientAuthentication = Self.requiring(depth: 17) })
        }
        #expect(throws: TLSError(code: .invalidCertificate, reason: "")) {
            try TLSServerContext(
                configuration: Fixtures.serverConfiguration {
                    $0.clientAuthentication = TLSClientAuthentication(trustRoots: .file("/nonexistent/ca.pem"))
                }
            )
        }
    }

    // MARK: What a verified certificate yields

    @Test func optionalModeAcceptsNoCertificateAndReportsAVerifiedOne() throws {
        let server = try TLSServerContext(configuration: Fixtures.serverConfiguration { $0.clientAuthentication = Self.requiring(.optional) })
        let anonymous = try Self.connect(server, try Self.client(nil))
        let anonymousInfo = try #require(anonymous.serverHandler.connectionInfo)
        #expect(anonymousInfo.clientCertificateRequested)
        #expect(anonymousInfo.peerCertificate == nil)
        #expect(try anonymous.finish())

        let verified = try Self.connect(server, try Self.client(Self.spiffeClient.identity))
        let certificate = try #require(verified.serverHandler.connectionInfo?.peerCertificate)
        #expect(certificate.subject == "CN=client.example.test")
        #expect(certificate.uris == ["spiffe://example.test/ns/chat/sa/client"])
        #expect(certificate.dnsNames == ["client.example.test"])
        #expect(certificate.sha256Fingerprint.count == 64)
        #expect(certificate.sha256Fingerprint == (try Self.fingerprintOf(pem: Self.spiffeClient.certificatePEM)))
        #expect(try verified.finish())
    }

    @Test func aServerWithoutClientAuthenticationAsksForNothing() throws {
        let server = try TLSServerContext(configuration: Fixtures.serverConfiguration())
        let pair = try Self.connect(server, try Self.client(Self.spiffeClient.identity))
        #expect(pair.serverHandler.connectionInfo?.clientCertificateRequested == false)
        #expect(pair.serverHandler.connectionInfo?.peerCertificate == nil)
        #expect(try pair.finish())
    }

    // MARK: Per SNI name

    /// The SNI callback switches the `SSL_CTX`; the verify mode and depth must follow it (OpenSSL copies
    /// them into the `SSL` at `SSL_new`, from the default context).
    @Test(arguments: [TLSVersion.tls1_2, .tls1_3])
    func eachNameHasItsOwnClientAuthentication(version: TLSVersion) throws {
        let server = try TLSServerContext(
            configuration: Fixtures.serverConfiguration {
                $0.virtualHosts[0].clientAuthentication = Self.requiring()
            }
        )
        let anonymous = try Self.client(nil, version: version)
        let toDefault = try Self.connect(server, anonymous, serverName: "localhost")
        #expect(toDefault.serverHandler.connectionInfo?.clientCertificateRequested == false)
        #expect(try toDefault.finish())
        let toWildcard = try Self.connect(server, anonymous, serverName: "a.wild.example.test")
        #expect(toWildcard.serverHandler.connectionInfo?.clientCertificateRequested == false)
        #expect(try toWildcard.finish())
        let toAPI = try Self.connect(server, anonymous, serverName: "api.example.test")
        #expect(toAPI.serverRecorder.tlsErrors.first?.code == .clientCertificateRequired)
        _ = try toAPI.finish()

        // And the reverse: the default requires, a name does not.
        let reverse = try TLSServerContext(configuration: Fixtures.serverConfiguration { $0.clientAuthentication = Self.requiring() })
        let refused = try Self.connect(reverse, anonymous, serverName: "localhost")
        #expect(refused.serverRecorder.tlsErrors.first?.code == .clientCertificateRequired)
        _ = try refused.finish()
        let allowed = try Self.connect(reverse, anonymous, serverName: "api.example.test")
        #expect(allowed.serverHandler.connectionInfo?.clientCertificateRequested == false)
        #expect(try allowed.finish())
    }

    // MARK: Resumption never skips the check

    /// A session made on a name that asks for no certificate, offered (ticket or PSK) on one that
    /// requires a certificate, must not resume: a full handshake asks for the certificate and fails.
    @Test(arguments: [TLSVersion.tls1_2, .tls1_3])
    func aSessionWithoutClientAuthenticationNeverResumesWhereItIsRequired(version: TLSVersion) throws {
        let server = try TLSServerContext(
            configuration: Fixtures.serverConfiguration { $0.virtualHosts[0].clientAuthentication = Self.requiring() }
        )
        let client = try Self.client(nil, version: version)
        let first = try Self.connect(server, client, serverName: "a.wild.example.test")
        #expect(try first.finish())
        let resumed = try Self.connect(server, client, serverName: "a.wild.example.test")
        #expect(resumed.serverHandler.connectionInfo?.sessionReused == true)
        #expect(try resumed.finish())

        let session = try #require(client.cachedSession(for: "a.wild.example.test"))
        client.storeReplacing(session: session, for: "api.example.test")
        let crossed = try Self.connect(server, client, serverName: "api.example.test")
        #expect(crossed.serverHandler.connectionInfo == nil)
        #expect(crossed.serverRecorder.tlsErrors.first?.code == .clientCertificateRequired)
        _ = try crossed.finish()
    }

    /// A session made with a certificate verified by one CA does not resume on a context that trusts
    /// another (a reload that changed the CA), and resumes on the same settings with the certificate
    /// it was made with.
    @Test(arguments: [TLSVersion.tls1_2, .tls1_3])
    func aSessionResumesOnlyUnderTheCAThatVerifiedIt(version: TLSVersion) throws {
        let server = try TLSServerContext(configuration: Fixtures.serverConfiguration { $0.clientAuthentication = Self.requiring() })
        let client = try Self.client(Self.spiffeClient.identity, version: version)
        let first = try Self.connect(server, client)
        #expect(try first.finish())
        let resumed = try Self.connect(server, client)
        let info = try #require(resumed.serverHandler.connectionInfo)
        #expect(info.sessionReused)
        #expect(info.peerCertificate?.subject == "CN=client.example.test")
        #expect(try resumed.finish())

        let otherCA = try TLSServerContext(
            configuration: Fixtures.serverConfiguration {
                $0.clientAuthentication = TLSClientAuthentication(trustRoots: .pem(Fixtures.otherCA.certificatePEM))
            }
        )
        let afterReload = try Self.connect(otherCA, client)
        #expect(afterReload.serverHandler.connectionInfo == nil)
        #expect(afterReload.serverRecorder.tlsErrors.first?.code == .clientCertificateUntrusted)
        _ = try afterReload.finish()
    }

    @Test func sessionIDContextsDifferByEverythingTheCheckDependsOn() throws {
        func contexts(_ configure: (inout TLSServerConfiguration) -> Void) throws -> [[UInt8]] {
            try TLSServerContext(configuration: Fixtures.serverConfiguration(configure)).hostPolicies.map(\.sessionIDContext)
        }
        let plain = try contexts { _ in }
        #expect(Set(plain).count == 3)
        #expect(plain.allSatisfy { $0.count == 32 })
        #expect(try contexts { _ in } == plain)
        let variants: [[[UInt8]]] = [
            plain,
            try contexts { $0.sessionContextScope = "listener:other" },
            try contexts { $0.clientAuthentication = Self.requiring() },
            try contexts { $0.clientAuthentication = Self.requiring(.optional) },
            try contexts { $0.clientAuthentication = Self.requiring(depth: 3) },
            try contexts { $0.clientAuthentication = TLSClientAuthentication(trustRoots: .pem(Fixtures.otherCA.certificatePEM)) },
        ]
        let defaults = variants.map { $0[0] }
        #expect(Set(defaults).count == variants.count)
    }

    // MARK: Classifier (pure)

    /// `ERR_PACK(ERR_LIB_SSL, 0, reason)` of OpenSSL 3.
    static func sslError(_ reason: UInt) -> TLSError.OpenSSLError {
        TLSError.OpenSSLError(code: (20 << 23) | reason, reason: "r\(reason)", file: "", line: 0)
    }

    @Test(arguments: [
        (UInt(199), 0, TLSError.Code.clientCertificateRequired),
        (134, 20, .clientCertificateUntrusted),
        (134, 18, .clientCertificateUntrusted),
        (134, 10, .clientCertificateExpired),
        (134, 9, .clientCertificateExpired),
        (134, 22, .clientCertificateInvalid),
    ])
    func theClassifierNamesTheClientCertificateFailure(reason: UInt, verifyResult: Int, code: TLSError.Code) {
        #expect(HandshakeFailureClassifier.classify(errors: [Self.sslError(reason)], verifyResult: verifyResult, isServer: true).code == code)
    }

    @Test func theClientSideKeepsTheServerCertificateClasses() {
        #expect(HandshakeFailureClassifier.classify(errors: [Self.sslError(134)], verifyResult: 20).code == .certificateNotTrusted)
        #expect(HandshakeFailureClassifier.classify(errors: [Self.sslError(134)], verifyResult: 10).code == .certificateExpired)
    }

    @Test func clientCertificateClassSlugs() {
        #expect(TLSError.Code.clientCertificateRequired.description == "client certificate required")
        #expect(TLSError.Code.clientCertificateUntrusted.description == "client certificate untrusted")
    }

    /// The SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` computes it (an independent tool).
    static func fingerprintOf(pem: String) throws -> String {
        let directory = try TemporaryDirectory()
        let file = try directory.write("cert.pem", pem)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Peers.openssl())
        process.arguments = ["x509", "-in", file, "-noout", "-fingerprint", "-sha256"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        // "sha256 Fingerprint=AB:CD:…"
        let hex = output.split(separator: "=").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        return hex.replacingOccurrences(of: ":", with: "").lowercased()
    }
}
