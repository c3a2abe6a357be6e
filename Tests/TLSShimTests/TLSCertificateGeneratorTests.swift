import Testing

@testable import TLSShim

@Suite struct TLSCertificateGeneratorTests {
    @Test func selfSignedECDSAAndRSA() throws {
        for keyType in [TLSCertificateRequest.KeyType.ecdsaP256, .rsa2048] {
            let generated = try TLSCertificateGenerator.selfSigned(
                TLSCertificateRequest(commonName: "demo") {
                    $0.keyType = keyType
                    $0.dnsNames = ["demo.test"]
                }
            )
            #expect(generated.certificatePEM.hasPrefix("-----BEGIN CERTIFICATE-----"))
            #expect(generated.privateKeyPEM.hasPrefix("-----BEGIN PRIVATE KEY-----"))
            // Usable as a server identity (key matches certificate).
            _ = try TLSServerContext(configuration: TLSServerConfiguration(defaultIdentity: generated.identity))
        }
    }

    @Test func issuedCertificatesChainToTheCA() throws {
        let server = try TLSServerContext(configuration: TLSServerConfiguration(defaultIdentity: Fixtures.apiHost.identity))
        let client = try TLSClientContext(configuration: Fixtures.clientConfiguration())
        let pair = try InMemoryPair(server: server, client: client, serverName: "api.example.test")
        try pair.handshake()
        #expect(pair.clientRecorder.handshakeCompleted.count == 1)
        #expect(try pair.finish())
    }

    @Test func invalidIssuerIsAnError() {
        #expect(throws: TLSError.self) {
            try TLSCertificateGenerator.make(
                TLSCertificateRequest(commonName: "x"),
                issuedBy: TLSGeneratedCertificate(certificatePEM: "nope", privateKeyPEM: "nope")
            )
        }
    }

    @Test func classifierMapsVerificationResults() {
        #expect(HandshakeFailureClassifier.verificationCode(10) == .certificateExpired)  // X509_V_ERR_CERT_HAS_EXPIRED
        #expect(HandshakeFailureClassifier.verificationCode(9) == .certificateNotYetValid)
        #expect(HandshakeFailureClassifier.verificationCode(62) == .hostnameMismatch)  // HOSTNAME_MISMATCH
        #expect(HandshakeFailureClassifier.verificationCode(64) == .hostnameMismatch)  // IP_ADDRESS_MISMATCH
        #expect(HandshakeFailureClassifier.verificationCode(18) == .certificateNotTrusted)  // DEPTH_ZERO_SELF_SIGNED
        #expect(HandshakeFailureClassifier.verificationCode(20) == .certificateNotTrusted)  // UNABLE_TO_GET_ISSUER_LOCALLY
        #expect(HandshakeFailureClassifier.verificationCode(7) == .certificateInvalid)  // SIGNATURE_FAILURE
    }
}
