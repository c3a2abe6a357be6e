internal import COpenSSL
import NIOCore
import Synchronization

/// The `SSL_CTX`-independent per-connection index under which an `SSL*` points back at its
/// ``TLSConnection`` (for OpenSSL callbacks). Allocated once per process.
private let connectionExDataIndex: Int32 = copenssl_SSL_get_ex_new_index()

/// One TLS connection: an OpenSSL `SSL*` over a ``ByteBufferBIO``. The handler queues received
/// ciphertext buffers for OpenSSL to read and sends the buffer OpenSSL wrote; OpenSSL never touches a
/// socket.
///
/// OpenSSL's return codes are normalised here, once, at the lowest layer (STYLE.md P7): `WANT_READ` /
/// `WANT_WRITE` become `.incomplete` / `.wouldBlock`, failures become a classified ``TLSError``.
/// Confined to one event loop; not Sendable.
final class TLSConnection {
    /// Connections alive now (``TLSShim/liveConnections``): one atomic add per connection.
    static let live = Atomic<Int>(0)

    let ssl: OpaquePointer
    /// The BIO both ways (owned by `ssl` once set; this object is what it reads from and writes to).
    /// Windowed for a ``TLSEngine``, queued for the handler.
    let io: ByteBufferBIO
    /// Strong references that keep the `SSL_CTX`s and callback arguments alive as long as the `SSL*`.
    let serverContext: TLSServerContext?
    let clientContext: TLSClientContext?
    /// Server side: the SNI name from the ClientHello (set by the client-hello callback).
    /// Client side: the SNI name sent.
    var requestedServerName: String?
    /// Server side: the virtual host the client-hello callback selected (nil: the default).
    var selectedHostIndex: Int?
    /// Client side: the key under which this connection's sessions are cached.
    let sessionKey: String?

    /// A server-side connection (`windowed`: a ``TLSEngine``'s, over caller memory).
    init(serverContext: TLSServerContext, windowed: Bool = false) throws {
        guard let ssl = SSL_new(serverContext.defaultContext) else {
            throw OpenSSLErrorQueue.error(.invalidConfiguration, "SSL_new failed")
        }
        self.ssl = ssl
        self.io = ByteBufferBIO(windowed: windowed)
        self.serverContext = serverContext
        self.clientContext = nil
        self.sessionKey = nil
        SSL_set_bio(ssl, self.io.bio, self.io.bio)  // one reference, owned by the SSL from here on
        SSL_set_accept_state(ssl)
        SSL_set_ex_data(ssl, connectionExDataIndex, Unmanaged.passUnretained(self).toOpaque())
        Self.live.add(1, ordering: .relaxed)
    }

    /// A client-side connection toward `serverName` (a DNS name or an IP literal; nil: no SNI and no
    /// name check, which full verification refuses; `windowed`: a ``TLSEngine``'s, over caller memory).
    init(clientContext: TLSClientContext, serverName: String?, windowed: Bool = false) throws {
        guard let ssl = SSL_new(clientContext.context) else {
            throw OpenSSLErrorQueue.error(.invalidConfiguration, "SSL_new failed")
        }
        self.ssl = ssl
        self.io = ByteBufferBIO(windowed: windowed)
        self.serverContext = nil
        self.clientContext = clientContext
        SSL_set_bio(ssl, self.io.bio, self.io.bio)  // one reference, owned by the SSL from here on
        SSL_set_connect_state(ssl)
        let verification = clientContext.configuration.certificateVerification.base
        var name = serverName
        if let literal = name, literal.hasPrefix("["), literal.hasSuffix("]") {
            name = String(literal.dropFirst().dropLast())
        }
        do {
            if let name {
                let isIPAddress = Self.isIPAddress(name)
                if !isIPAddress {
                    // RFC 6066 §3: literal IP addresses are not permitted in SNI.
                    guard copenssl_SSL_set_tlsext_host_name(ssl, name) == 1 else {
                        throw OpenSSLErrorQueue.error(.invalidConfiguration, "invalid server name \"\(name)\"")
                    }
                    self.requestedServerName = name
                }
                if verification == .full {
                    let ok =
                        isIPAddress
                        ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1
                        : SSL_set1_host(ssl, name) == 1
                    guard ok else {
                        throw OpenSSLErrorQueue.error(.invalidConfiguration, "cannot verify against \"\(name)\"")
                    }
                }
            } else if verification == .full {
                throw TLSError(
                    code: .invalidConfiguration,
                    reason: "full certificate verification needs a server name or IP address"
                )
            }
            if !clientContext.alpnWire.isEmpty {
                guard SSL_set_alpn_protos(ssl, clientContext.alpnWire, UInt32(clientContext.alpnWire.count)) == 0
                else { throw OpenSSLErrorQueue.error(.invalidConfiguration, "invalid ALPN list") }
            }
        } catch {
            SSL_free(ssl)
            throw error
        }
        self.sessionKey = clientContext.configuration.sessionReuse ? (name ?? "") : nil
        if let key = self.sessionKey, let session = clientContext.cachedSession(for: key) {
            _ = SSL_set_session(ssl, session)  // takes its own reference
            SSL_SESSION_free(session)
        }
        SSL_set_ex_data(ssl, connectionExDataIndex, Unmanaged.passUnretained(self).toOpaque())
        Self.live.add(1, ordering: .relaxed)
    }

    deinit {
        self.io.detach()
        SSL_free(self.ssl)  // frees the BIO
        Self.live.subtract(1, ordering: .relaxed)
    }

    /// The connection an `SSL*` belongs to, inside OpenSSL callbacks.
    static func from(ssl: OpaquePointer) -> TLSConnection? {
        guard let pointer = SSL_get_ex_data(ssl, connectionExDataIndex) else { return nil }
        return Unmanaged<TLSConnection>.fromOpaque(pointer).takeUnretainedValue()
    }

    private static func isIPAddress(_ name: String) -> Bool {
        guard let octets = a2i_IPADDRESS(name) else { return false }
        ASN1_OCTET_STRING_free(octets)
        return true
    }

    // MARK: - Operations

    enum HandshakeResult: Equatable {
        case complete
        case incomplete
        case failed(TLSError)
    }

    /// Advances the handshake with whatever ciphertext has been received.
    func handshake() -> HandshakeResult {
        OpenSSLErrorQueue.clear()
        let result = SSL_do_handshake(self.ssl)
        if result == 1 { return .complete }
        switch SSL_get_error(self.ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .incomplete
        case let sslError:
            return .failed(self.handshakeFailure(sslError: sslError))
        }
    }

    /// Why a handshake step failed that wants neither input nor output room (`sslError` is
    /// `SSL_get_error`'s answer): a close_notify, or OpenSSL's errors classified for the 1015 accounting.
    /// Shared by the NIO handler's ``handshake()`` and ``TLSEngine``.
    func handshakeFailure(sslError: Int32) -> TLSError {
        guard sslError != SSL_ERROR_ZERO_RETURN else {
            return TLSError(code: .eofDuringHandshake, reason: "close_notify during handshake")
        }
        return HandshakeFailureClassifier.classify(
            errors: OpenSSLErrorQueue.drain(),
            verifyResult: Int(SSL_get_verify_result(self.ssl)),
            isServer: self.serverContext != nil
        )
    }

    /// Hands received ciphertext to OpenSSL (queued as is, no copy).
    func receive(_ buffer: ByteBuffer) {
        self.io.enqueue(buffer)
    }

    enum ReadResult: Equatable {
        /// Plaintext was appended to the buffer.
        case data
        /// OpenSSL needs more ciphertext (post-handshake messages were consumed, if any).
        case wouldBlock
        /// The peer sent `close_notify`.
        case closeNotify
        case failed(TLSError)
    }

    /// Decrypts up to `maximum` bytes into `buffer`.
    func read(into buffer: inout ByteBuffer, maximum: Int) -> ReadResult {
        OpenSSLErrorQueue.clear()
        var readBytes = 0
        let result = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: maximum) { pointer in
            let ok = SSL_read_ex(self.ssl, pointer.baseAddress, min(pointer.count, maximum), &readBytes)
            return ok == 1 ? readBytes : 0
        }
        if result > 0 { return .data }
        switch SSL_get_error(self.ssl, 0) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .wouldBlock
        case SSL_ERROR_ZERO_RETURN:
            return .closeNotify
        default:
            let errors = OpenSSLErrorQueue.drain()
            return .failed(HandshakeFailureClassifier.classifyEstablished(errors: errors))
        }
    }

    /// Encrypts `buffer` whole into the write BIO (the BIO never blocks, so OpenSSL writes it all).
    func write(_ buffer: ByteBuffer) -> TLSError? {
        OpenSSLErrorQueue.clear()
        return buffer.withUnsafeReadableBytes { bytes -> TLSError? in
            guard let base = bytes.baseAddress, bytes.count > 0 else { return nil }
            var written = 0
            guard SSL_write_ex(self.ssl, base, bytes.count, &written) == 1, written == bytes.count else {
                return HandshakeFailureClassifier.classifyEstablished(errors: OpenSSLErrorQueue.drain())
            }
            return nil
        }
    }

    /// Queues our `close_notify` (RFC 8446 §6.1). We do not wait for the peer's.
    func shutdown() {
        OpenSSLErrorQueue.clear()
        _ = SSL_shutdown(self.ssl)
        OpenSSLErrorQueue.clear()
    }

    /// An upper estimate of the plaintext the next reads can yield without more input: ciphertext
    /// still in the read BIO (plaintext is never longer than its record) plus plaintext OpenSSL has
    /// decrypted but not handed out (`SSL_pending`). A record OpenSSL has begun to buffer internally is
    /// not counted, so the estimate can be short; a reader then simply reads again.
    var pendingInboundBytes: Int { self.io.inboundBytes + Int(SSL_pending(self.ssl)) }

    /// Ciphertext waiting to be sent.
    var pendingOutboundBytes: Int { self.io.outboundBytes }

    /// The storage the received ciphertext not yet read keeps allocated.
    var inboundStorageBytes: Int { self.io.inboundStorageBytes }

    /// Makes room for the ciphertext of about `plaintextBytes` written next (record headers, tags and
    /// padding included), so that a flush's records are appended to one buffer without regrowing it.
    func reserveOutbound(plaintextBytes: Int) {
        // Per record of at most 16 KiB: 5 header bytes, up to 16 + 64 of IV and MAC or tag, and padding
        // (TLS 1.3 AEAD needs 22 in all; 100 covers the CBC suites a configuration may allow).
        let records = plaintextBytes / 16_384 + 1
        self.io.reserveOutbound(plaintextBytes + records * 100)
    }

    /// The ciphertext OpenSSL wrote since the last call, as one buffer to send as is (nil: none).
    func takeOutbound() -> ByteBuffer? {
        self.io.takeOutbound()
    }

    /// Moves all pending ciphertext into `buffer` (a copy; the handler uses ``takeOutbound()``).
    func readOutbound(into buffer: inout ByteBuffer) {
        guard let pending = self.io.takeOutbound() else { return }
        buffer.writeImmutableBuffer(pending)
    }

    /// What the handshake negotiated. Valid after `.complete`.
    var info: TLSConnectionInfo {
        let cipher = SSL_get_current_cipher(self.ssl).flatMap { SSL_CIPHER_get_name($0) }.map { String(cString: $0) }
        var alpn: UnsafePointer<UInt8>? = nil
        var alpnLength: UInt32 = 0
        SSL_get0_alpn_selected(self.ssl, &alpn, &alpnLength)
        let negotiated = alpn.map { String(decoding: UnsafeBufferPointer(start: $0, count: Int(alpnLength)), as: UTF8.self) }
        return TLSConnectionInfo(
            version: TLSVersion(wireValue: UInt16(truncatingIfNeeded: SSL_version(self.ssl))),
            cipherSuite: cipher ?? "",
            serverName: self.requestedServerName,
            negotiatedProtocol: negotiated,
            peerCertificateSubject: self.peerCertificateSubject,
            sessionReused: SSL_session_reused(self.ssl) == 1,
            peerCertificate: self.serverContext == nil ? nil : self.peerCertificate,
            clientCertificateRequested: self.serverContext != nil && SSL_get_verify_mode(self.ssl) & SSL_VERIFY_PEER != 0,
            clientAuthentication: self.serverContext.map {
                TLSConnectionInfo.ClientAuthenticationScope(table: $0.clientAuthenticationTable, selectedEntry: self.selectedHostIndex)
            }
        )
    }

    private var peerCertificateSubject: String? {
        guard let certificate = SSL_get1_peer_certificate(self.ssl) else { return nil }
        defer { X509_free(certificate) }
        return distinguishedName(X509_get_subject_name(certificate))
    }

    /// The peer's certificate, if it presented one that verified (on a resumed session: the one that
    /// verified when the session was made).
    private var peerCertificate: TLSPeerCertificate? {
        guard let certificate = SSL_get1_peer_certificate(self.ssl) else { return nil }
        defer { X509_free(certificate) }
        guard SSL_get_verify_result(self.ssl) == X509_V_OK, let fingerprint = try? certificateFingerprint(certificate) else {
            return nil
        }
        var result = TLSPeerCertificate(sha256Fingerprint: fingerprint, subject: distinguishedName(X509_get_subject_name(certificate)) ?? "")
        guard let names = copenssl_X509_get_subject_alt_names(certificate) else { return result }
        defer { copenssl_GENERAL_NAMES_free(names) }
        for index in 0..<copenssl_GENERAL_NAMES_count(names) {
            var data: UnsafePointer<UInt8>? = nil
            var length: Int32 = 0
            let type = copenssl_GENERAL_NAMES_get(names, index, &data, &length)
            guard let data, length > 0 else { continue }
            let bytes = UnsafeBufferPointer(start: data, count: Int(length))
            // IA5String: ASCII only. A name with control bytes or non-ASCII is left out rather than
            // escaped, so nothing a CA let through can end up in a header as anything but text.
            guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { continue }
            let name = String(decoding: bytes, as: UTF8.self)
            if type == GEN_URI { result.uris.append(name) } else if type == GEN_DNS { result.dnsNames.append(name) }
        }
        return result
    }
}

/// An `X509_NAME` in RFC 2253 form.
func distinguishedName(_ name: OpaquePointer?) -> String? {
    guard let name, let bio = BIO_new(BIO_s_mem()) else { return nil }
    defer { BIO_free(bio) }
    guard X509_NAME_print_ex(bio, name, 0, copenssl_XN_FLAG_RFC2253()) >= 0 else { return nil }
    let length = Int(BIO_ctrl_pending(bio))
    var bytes = [UInt8](repeating: 0, count: length)
    var readBytes = 0
    _ = BIO_read_ex(bio, &bytes, length, &readBytes)
    return String(decoding: bytes.prefix(readBytes), as: UTF8.self)
}

extension TLSConnection {
    /// How many certificates the peer sent, its own included (test hook).
    var peerCertificateChainLength: Int {
        SSL_get_peer_cert_chain(self.ssl).map { Int(OPENSSL_sk_num($0)) } ?? 0
    }

    /// Whether OpenSSL frees this connection's record buffers whenever they are empty (test hook).
    var releasesIdleBuffers: Bool {
        SSL_ctrl(self.ssl, SSL_CTRL_MODE, 0, nil) & Int(SSL_MODE_RELEASE_BUFFERS) != 0
    }

    /// Queues a KeyUpdate (update_requested) and lets OpenSSL write it (test hook).
    func requestKeyUpdate() throws {
        OpenSSLErrorQueue.clear()
        guard SSL_key_update(self.ssl, SSL_KEY_UPDATE_REQUESTED) == 1, SSL_do_handshake(self.ssl) == 1 else {
            throw OpenSSLErrorQueue.error(.connectionFailed, "SSL_key_update failed")
        }
    }
}
