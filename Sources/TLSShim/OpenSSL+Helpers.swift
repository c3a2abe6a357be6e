internal import COpenSSL

/// Small wrappers around OpenSSL calls used by several files. Everything here runs off the hot path
/// except ``OpenSSLErrorQueue/drain()``, which runs once per failure.
enum OpenSSLErrorQueue {
    /// Drains the calling thread's OpenSSL error queue into values (STYLE.md P7). OpenSSL's queue is per
    /// thread; the handler drains it right after the failing call on the same event-loop thread.
    static func drain() -> [TLSError.OpenSSLError] {
        var entries: [TLSError.OpenSSLError] = []
        while true {
            var file: UnsafePointer<CChar>? = nil
            var line: Int32 = 0
            let code = ERR_get_error_all(&file, &line, nil, nil, nil)
            if code == 0 { break }
            let reason = ERR_reason_error_string(code).map { String(cString: $0) } ?? "error \(code)"
            entries.append(
                TLSError.OpenSSLError(
                    code: UInt(code),
                    reason: reason,
                    file: file.map { String(cString: $0) } ?? "",
                    line: Int(line)
                )
            )
        }
        return entries
    }

    /// Discards anything left on the queue, so that an unrelated old entry is never blamed later.
    /// Peeking first: the queue is almost always empty, and `ERR_clear_error` resets all 16 slots
    /// every time (1 % of a TLS connection's set-up, called before every `SSL_*` operation).
    static func clear() {
        if ERR_peek_error() != 0 { ERR_clear_error() }
    }

    /// A configuration error carrying the drained queue.
    static func error(_ code: TLSError.Code, _ what: String) -> TLSError {
        let entries = drain()
        let detail = entries.last.map { ": \($0.reason)" } ?? ""
        return TLSError(code: code, reason: what + detail, openSSLErrors: entries)
    }
}

/// A BIO over a PEM source, for the `PEM_read_bio_*` family.
func withPEMBIO<T>(_ source: TLSPEMSource, _ body: (OpaquePointer) throws -> T) throws -> T {
    let bio: OpaquePointer?
    switch source.base {
    case .file(let path):
        bio = BIO_new_file(path, "r")
    case .pem(let text):
        bio = BIO_new(BIO_s_mem())
        if let bio {
            var text = text
            let written = text.withUTF8 { BIO_write(bio, $0.baseAddress, Int32($0.count)) }
            if written != text.utf8.count {
                BIO_free(bio)
                throw OpenSSLErrorQueue.error(.invalidConfiguration, "cannot buffer PEM")
            }
        }
    }
    guard let bio else {
        throw OpenSSLErrorQueue.error(.invalidCertificate, "cannot open \(source)")
    }
    defer { BIO_free(bio) }
    return try body(bio)
}

/// Reads every certificate of a PEM source, in order. The caller owns the returned `X509*`s.
func readCertificates(_ source: TLSPEMSource) throws -> [OpaquePointer] {
    OpenSSLErrorQueue.clear()
    let certificates = try withPEMBIO(source) { bio -> [OpaquePointer] in
        var result: [OpaquePointer] = []
        while let x509 = PEM_read_bio_X509(bio, nil, nil, nil) {
            result.append(x509)
        }
        return result
    }
    // Reading stops with a "no start line" entry at the end of the input; that is not an error.
    OpenSSLErrorQueue.clear()
    guard !certificates.isEmpty else {
        throw TLSError(code: .invalidCertificate, reason: "no PEM certificate in \(source)")
    }
    return certificates
}

/// Reads a PEM private key. The caller owns the returned `EVP_PKEY*`.
func readPrivateKey(_ source: TLSPEMSource) throws -> OpaquePointer {
    OpenSSLErrorQueue.clear()
    let key = try withPEMBIO(source) { bio in PEM_read_bio_PrivateKey(bio, nil, nil, nil) }
    guard let key else {
        throw OpenSSLErrorQueue.error(.invalidPrivateKey, "no PEM private key in \(source)")
    }
    return key
}

/// Installs a certificate chain and its key into an `SSL_CTX` and checks that they match.
func useIdentity(_ identity: TLSIdentity, in ctx: OpaquePointer) throws {
    let certificates = try readCertificates(identity.certificateChain)
    defer { for certificate in certificates { X509_free(certificate) } }
    guard SSL_CTX_use_certificate(ctx, certificates[0]) == 1 else {
        throw OpenSSLErrorQueue.error(.invalidCertificate, "certificate rejected")
    }
    for intermediate in certificates.dropFirst() {
        // add_extra_chain_cert takes ownership on success, so give it its own reference.
        X509_up_ref(intermediate)
        guard copenssl_SSL_CTX_add_extra_chain_cert(ctx, intermediate) == 1 else {
            X509_free(intermediate)
            throw OpenSSLErrorQueue.error(.invalidCertificate, "intermediate certificate rejected")
        }
    }
    let key = try readPrivateKey(identity.privateKey)
    defer { EVP_PKEY_free(key) }
    guard SSL_CTX_use_PrivateKey(ctx, key) == 1 else {
        throw OpenSSLErrorQueue.error(.invalidPrivateKey, "private key rejected")
    }
    guard SSL_CTX_check_private_key(ctx) == 1 else {
        throw OpenSSLErrorQueue.error(.invalidPrivateKey, "private key does not match the certificate")
    }
}

/// Adds every certificate of a PEM source to the context's trust store.
func addTrustedCertificates(_ source: TLSPEMSource, to ctx: OpaquePointer) throws {
    let certificates = try readCertificates(source)
    defer { for certificate in certificates { X509_free(certificate) } }
    let store = SSL_CTX_get_cert_store(ctx)
    for certificate in certificates {
        guard X509_STORE_add_cert(store, certificate) == 1 else {
            throw OpenSSLErrorQueue.error(.invalidCertificate, "CA certificate rejected")
        }
    }
}

/// The settings a client and a server configuration both have (``applyCommonSettings(of:to:)``).
protocol TLSVersionAndCipherSettings {
    var minimumVersion: TLSVersion { get }
    var maximumVersion: TLSVersion { get }
    var cipherList: String { get }
    var cipherSuites: String { get }
}

extension TLSServerConfiguration: TLSVersionAndCipherSettings {}
extension TLSClientConfiguration: TLSVersionAndCipherSettings {}

/// Applies the settings shared by client and server contexts: versions, ciphers, modes, and
/// renegotiation refused (../shared/DESIGN.md §7: "renegotiation off").
func applyCommonSettings(of settings: some TLSVersionAndCipherSettings, to ctx: OpaquePointer) throws {
    let (minimumVersion, maximumVersion) = (settings.minimumVersion, settings.maximumVersion)
    let (cipherList, cipherSuites) = (settings.cipherList, settings.cipherSuites)
    guard minimumVersion <= maximumVersion,
        copenssl_SSL_CTX_set_min_proto_version(ctx, Int32(minimumVersion.wireValue)) == 1,
        copenssl_SSL_CTX_set_max_proto_version(ctx, Int32(maximumVersion.wireValue)) == 1
    else {
        throw OpenSSLErrorQueue.error(.invalidConfiguration, "invalid version range \(minimumVersion)–\(maximumVersion)")
    }
    guard SSL_CTX_set_cipher_list(ctx, cipherList) == 1 else {
        throw OpenSSLErrorQueue.error(.invalidConfiguration, "invalid cipher list \"\(cipherList)\"")
    }
    guard SSL_CTX_set_ciphersuites(ctx, cipherSuites) == 1 else {
        throw OpenSSLErrorQueue.error(.invalidConfiguration, "invalid TLS 1.3 cipher suites \"\(cipherSuites)\"")
    }
    _ = SSL_CTX_set_options(
        ctx,
        copenssl_SSL_OP_NO_RENEGOTIATION() | copenssl_SSL_OP_NO_COMPRESSION()
            | copenssl_SSL_OP_CIPHER_SERVER_PREFERENCE()
    )
    // The handler hands OpenSSL whole ByteBuffers and moves them; OpenSSL must not insist on the same
    // pointer being retried (irrelevant over our in-memory BIO, which never blocks, but harmless).
    _ = copenssl_SSL_CTX_set_mode(ctx, Int(SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))
}

/// ALPN wire format (RFC 7301 §3.1): each protocol prefixed by its one-byte length.
func alpnWireFormat(_ protocols: [String]) throws -> [UInt8] {
    var wire: [UInt8] = []
    for name in protocols {
        let bytes = Array(name.utf8)
        guard (1...255).contains(bytes.count) else {
            throw TLSError(code: .invalidConfiguration, reason: "ALPN protocol name \"\(name)\" must be 1–255 bytes")
        }
        wire.append(UInt8(bytes.count))
        wire.append(contentsOf: bytes)
    }
    return wire
}
