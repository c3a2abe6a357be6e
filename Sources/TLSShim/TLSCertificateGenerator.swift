internal import COpenSSL

/// A certificate and its private key, as PEM text.
public struct TLSGeneratedCertificate: Hashable, Sendable {
    public var certificatePEM: String
    public var privateKeyPEM: String

    /// The pair as an identity for a configuration (in-memory PEM).
    public var identity: TLSIdentity {
        TLSIdentity(certificateChain: .pem(self.certificatePEM), privateKey: .pem(self.privateKeyPEM))
    }
}

/// What to put in a generated certificate. Times are seconds relative to now, so an expired
/// certificate is `notBefore: -7200, notAfter: -3600` (X509_gmtime_adj with negative offsets).
public struct TLSCertificateRequest: Hashable, Sendable {
    /// Key algorithm of the new key.
    public struct KeyType: Hashable, Sendable {
        enum Base: Hashable, Sendable {
            case ecdsaP256
            case rsa(bits: UInt32)
        }

        let base: Base

        /// ECDSA over P-256 (fast to generate; the default).
        public static let ecdsaP256 = KeyType(base: .ecdsaP256)
        /// RSA with 2048-bit modulus.
        public static let rsa2048 = KeyType(base: .rsa(bits: 2048))
    }

    /// Subject common name.
    public var commonName: String
    /// subjectAltName DNS entries (may include wildcards such as `*.example.test`). Default: none.
    public var dnsNames: [String] = []
    /// subjectAltName IP entries (`127.0.0.1`, `::1`). Default: none.
    public var ipAddresses: [String] = []
    /// subjectAltName URI entries (`spiffe://example.test/client`). Default: none.
    public var uris: [String] = []
    /// notBefore, seconds from now. Default: −3,600 (one hour ago, tolerates clock skew).
    public var notBefore: Int = -3_600
    /// notAfter, seconds from now. Default: 2,592,000 (30 days).
    public var notAfter: Int = 2_592_000
    /// Whether this is a CA certificate (basicConstraints CA:TRUE, keyCertSign). Default: false.
    public var isCertificateAuthority: Bool = false
    /// Default: ``KeyType/ecdsaP256``.
    public var keyType: KeyType = .ecdsaP256

    public init(commonName: String, _ configure: (inout Self) -> Void = { _ in }) {
        self.commonName = commonName
        configure(&self)
    }
}

/// Makes certificates in memory through OpenSSL: self-signed ones (the embedded default identity of
/// `wsgate` demo mode) and ones issued by a small CA (tests: untrusted, wrong-name, expired).
/// Keys never touch the disk.
public enum TLSCertificateGenerator {
    /// A self-signed certificate (its own issuer).
    public static func selfSigned(_ request: TLSCertificateRequest) throws -> TLSGeneratedCertificate {
        try self.make(request, issuer: nil)
    }

    /// A certificate signed by `issuer` (a CA made with `isCertificateAuthority = true`).
    public static func make(
        _ request: TLSCertificateRequest,
        issuedBy issuer: TLSGeneratedCertificate
    ) throws -> TLSGeneratedCertificate {
        try self.make(request, issuer: issuer)
    }

    private static func make(
        _ request: TLSCertificateRequest,
        issuer: TLSGeneratedCertificate?
    ) throws -> TLSGeneratedCertificate {
        OpenSSLErrorQueue.clear()
        let key: OpaquePointer? =
            switch request.keyType.base {
            case .ecdsaP256: copenssl_EVP_EC_gen_P256()
            case .rsa(let bits): copenssl_EVP_RSA_gen(bits)
            }
        guard let key else { throw OpenSSLErrorQueue.error(.certificateGenerationFailed, "key generation failed") }
        defer { EVP_PKEY_free(key) }

        var issuerCertificate: OpaquePointer? = nil
        var issuerKey: OpaquePointer = key
        if let issuer {
            let certificates = try readCertificates(.pem(issuer.certificatePEM))
            for certificate in certificates.dropFirst() { X509_free(certificate) }
            issuerCertificate = certificates[0]
            issuerKey = try readPrivateKey(.pem(issuer.privateKeyPEM))
        }
        defer {
            if let issuerCertificate {
                X509_free(issuerCertificate)
                EVP_PKEY_free(issuerKey)
            }
        }

        guard let x509 = X509_new() else { throw OpenSSLErrorQueue.error(.certificateGenerationFailed, "X509_new") }
        defer { X509_free(x509) }
        func check(_ ok: Bool, _ what: String) throws {
            if !ok { throw OpenSSLErrorQueue.error(.certificateGenerationFailed, what) }
        }
        try check(X509_set_version(x509, 2) == 1, "X509_set_version")  // v3
        // A random 63-bit serial: unique enough for test CAs and never negative.
        var serial: UInt64 = 0
        try check(withUnsafeMutableBytes(of: &serial) { RAND_bytes($0.baseAddress, 8) } == 1, "RAND_bytes")
        try check(ASN1_INTEGER_set_uint64(X509_get_serialNumber(x509), serial >> 1) == 1, "serial")
        try check(X509_gmtime_adj(X509_getm_notBefore(x509), request.notBefore) != nil, "notBefore")
        try check(X509_gmtime_adj(X509_getm_notAfter(x509), request.notAfter) != nil, "notAfter")
        try check(X509_set_pubkey(x509, key) == 1, "X509_set_pubkey")
        let subject = X509_get_subject_name(x509)
        try check(
            X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, request.commonName, -1, -1, 0) == 1,
            "subject CN"
        )
        let issuerName = issuerCertificate.map { X509_get_subject_name($0) } ?? subject
        try check(X509_set_issuer_name(x509, issuerName) == 1, "issuer name")

        var v3 = X509V3_CTX()
        X509V3_set_ctx(&v3, issuerCertificate ?? x509, x509, nil, nil, 0)
        var extensions: [(Int32, String)] = [
            (NID_subject_key_identifier, "hash"),
            (NID_authority_key_identifier, "keyid:always"),
        ]
        if request.isCertificateAuthority {
            extensions.append((NID_basic_constraints, "critical,CA:TRUE"))
            extensions.append((NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature"))
        } else {
            extensions.append((NID_basic_constraints, "critical,CA:FALSE"))
            extensions.append((NID_key_usage, "critical,digitalSignature,keyEncipherment"))
            extensions.append((NID_ext_key_usage, "serverAuth,clientAuth"))
        }
        let altNames =
            request.dnsNames.map { "DNS:\($0)" } + request.ipAddresses.map { "IP:\($0)" }
            + request.uris.map { "URI:\($0)" }
        if !altNames.isEmpty {
            extensions.append((NID_subject_alt_name, altNames.joined(separator: ",")))
        }
        for (nid, value) in extensions {
            // The subject key identifier must exist before the authority one of a self-signed cert reads it.
            guard let ext = X509V3_EXT_conf_nid(nil, &v3, nid, value) else {
                throw OpenSSLErrorQueue.error(.certificateGenerationFailed, "extension \(nid)=\(value)")
            }
            defer { X509_EXTENSION_free(ext) }
            try check(X509_add_ext(x509, ext, -1) == 1, "X509_add_ext")
        }
        try check(X509_sign(x509, issuerKey, EVP_sha256()) > 0, "X509_sign")

        let certificatePEM = try pemString { PEM_write_bio_X509($0, x509) }
        let keyPEM = try pemString { PEM_write_bio_PrivateKey($0, key, nil, nil, 0, nil, nil) }
        return TLSGeneratedCertificate(certificatePEM: certificatePEM, privateKeyPEM: keyPEM)
    }

    private static func pemString(_ write: (OpaquePointer) -> Int32) throws -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { throw OpenSSLErrorQueue.error(.certificateGenerationFailed, "BIO_new") }
        defer { BIO_free(bio) }
        guard write(bio) == 1 else { throw OpenSSLErrorQueue.error(.certificateGenerationFailed, "PEM write") }
        let length = Int(BIO_ctrl_pending(bio))
        var bytes = [UInt8](repeating: 0, count: length)
        var readBytes = 0
        _ = BIO_read_ex(bio, &bytes, length, &readBytes)
        return String(decoding: bytes.prefix(readBytes), as: UTF8.self)
    }
}
