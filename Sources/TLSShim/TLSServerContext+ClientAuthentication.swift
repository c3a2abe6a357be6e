internal import COpenSSL

/// Client certificates (mTLS) and the session ID context of one virtual host's `SSL_CTX`.
///
/// **Session resumption never skips a check.** A resumed session (TLS 1.2 session ID or ticket,
/// TLS 1.3 PSK) carries the peer certificate and verify result of the handshake that made it; the
/// server asks for no certificate when it resumes. So a session made where no certificate was asked
/// (or under another CA) must never resume where one is required. OpenSSL refuses to resume any
/// session whose session ID context differs from the connection's (`ssl_get_prev_session` for IDs and
/// tickets, `tls_parse_ctos_psk` for TLS 1.3), and falls back to a full handshake. Each context's
/// session ID context is therefore a SHA-256 digest of everything the check depends on: the scope (the
/// gateway's listener), the virtual host and its names, the mode, the depth, and the SHA-256 of every
/// trusted CA certificate. Tickets are encrypted with the listener's ticket keys, made at random per
/// `SSL_CTX_new`, so a reload (new contexts) also ends resumption of everything issued before it.
struct ServerHostPolicy {
    /// `SSL_VERIFY_*` flags for connections switched to this host.
    let verifyMode: Int32
    let verifyDepth: Int32
    /// 32 bytes (`SSL_MAX_SID_CTX_LENGTH`).
    let sessionIDContext: [UInt8]
    /// The settings alone, without the host (``TLSClientAuthenticationTable``): equal keys, same check.
    let settingsKey: String

    /// Configures `ctx` for `authentication` (trust store, acceptable CA names, verify mode and depth)
    /// and its session ID context.
    static func install(
        in ctx: OpaquePointer,
        authentication: TLSClientAuthentication?,
        scope: String,
        hostIndex: Int,
        serverNames: [String]
    ) throws -> ServerHostPolicy {
        var descriptor = "wsgate-sid-v1\u{0}\(scope)\u{0}\(hostIndex)\u{0}\(serverNames.joined(separator: ","))\u{0}"
        var verifyMode = SSL_VERIFY_NONE
        var depth: Int32 = 0
        var settings = "wsgate-client-auth-v1\u{0}"
        if let authentication {
            guard TLSClientAuthentication.depthRange.contains(authentication.verifyDepth) else {
                throw TLSError(
                    code: .invalidConfiguration,
                    reason: "client certificate verify depth \(authentication.verifyDepth) is outside \(TLSClientAuthentication.depthRange)"
                )
            }
            depth = Int32(authentication.verifyDepth)
            let certificates = try readCertificates(authentication.trustRoots)
            defer { for certificate in certificates { X509_free(certificate) } }
            var fingerprints: [String] = []
            let store = SSL_CTX_get_cert_store(ctx)
            for certificate in certificates {
                guard X509_STORE_add_cert(store, certificate) == 1 else {
                    throw OpenSSLErrorQueue.error(.invalidCertificate, "client CA certificate rejected (\(authentication.trustRoots))")
                }
                guard SSL_CTX_add_client_CA(ctx, certificate) == 1 else {
                    throw OpenSSLErrorQueue.error(.invalidCertificate, "client CA name rejected (\(authentication.trustRoots))")
                }
                fingerprints.append(try certificateFingerprint(certificate))
            }
            descriptor += fingerprints.map { $0 + "," }.joined()
            verifyMode = SSL_VERIFY_PEER
            if authentication.mode.requiresCertificate { verifyMode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT }
            SSL_CTX_set_verify(ctx, verifyMode, nil)
            SSL_CTX_set_verify_depth(ctx, depth)
            descriptor += "\u{0}\(authentication.mode)\u{0}\(depth)"
            // A set of CAs: the order of the file does not change the check.
            settings += "\(authentication.mode)\u{0}\(depth)\u{0}" + fingerprints.sorted().joined(separator: ",")
        } else {
            descriptor += "none"
            settings += "none"
        }
        let sessionIDContext = sha256(Array(descriptor.utf8))
        guard SSL_CTX_set_session_id_context(ctx, sessionIDContext, UInt32(sessionIDContext.count)) == 1 else {
            throw OpenSSLErrorQueue.error(.invalidConfiguration, "cannot set the session ID context")
        }
        return ServerHostPolicy(
            verifyMode: verifyMode,
            verifyDepth: depth,
            sessionIDContext: sessionIDContext,
            settingsKey: hexString(sha256(Array(settings.utf8)))
        )
    }

    /// Applies this host to a connection switched to its `SSL_CTX` in the client-hello callback.
    /// `SSL_set_SSL_CTX` switches the certificate, the trust store and the CA names, but the verify mode,
    /// verify depth and (unless unchanged) session ID context were copied into the `SSL` by `SSL_new`
    /// from the default context, so they are set here, before session lookup and before the server
    /// decides whether to send a CertificateRequest.
    func apply(to ssl: OpaquePointer) -> Bool {
        SSL_set_verify(ssl, self.verifyMode, nil)
        SSL_set_verify_depth(ssl, self.verifyDepth)
        return SSL_set_session_id_context(ssl, self.sessionIDContext, UInt32(self.sessionIDContext.count)) == 1
    }
}

/// SHA-256 of `bytes`.
func sha256(_ bytes: [UInt8]) -> [UInt8] {
    var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
    var length: UInt32 = 0
    _ = EVP_Digest(bytes, bytes.count, &digest, &length, EVP_sha256(), nil)
    return Array(digest.prefix(Int(length)))
}

/// The lower-case hex SHA-256 of a certificate's DER encoding.
func certificateFingerprint(_ certificate: OpaquePointer) throws -> String {
    var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
    var length: UInt32 = 0
    guard X509_digest(certificate, EVP_sha256(), &digest, &length) == 1 else {
        throw OpenSSLErrorQueue.error(.invalidCertificate, "cannot digest a certificate")
    }
    return hexString(digest.prefix(Int(length)))
}

/// Lower-case hex.
func hexString(_ bytes: some Collection<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
}
