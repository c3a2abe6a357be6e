internal import COpenSSL

/// A compiled ``TLSClientConfiguration`` for connections toward `wss://` upstreams: one `SSL_CTX` plus
/// a session cache.
///
/// > Warning: the initialiser reads CA, certificate and key files (blocking disk I/O). Build it at
/// > start-up or in a reload task, never on an event loop (STYLE.md P8).
///
/// Session reuse is keyed by the upstream name (host name or IP address) inside one context, and a
/// context fixes one verification policy, so a session is only offered again to the same upstream
/// under the same policy. A session made with verification off is never offered by a verifying
/// context, because the two are different contexts.
public final class TLSClientContext: @unchecked Sendable {
    /// The configuration this context was built from.
    public let configuration: TLSClientConfiguration
    let context: OpaquePointer
    let alpnWire: [UInt8]
    /// Upstream name → `SSL_SESSION*` (one reference owned by the cache).
    private let sessions = LockedBox<SessionCache>(SessionCache())

    /// Bound on cached sessions; the cache is emptied when it is reached (upstreams are few).
    static let maximumCachedSessions = 1024

    public init(configuration: TLSClientConfiguration) throws {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw OpenSSLErrorQueue.error(.invalidConfiguration, "SSL_CTX_new failed")
        }
        do {
            try applyCommonSettings(of: configuration, to: ctx)
            switch configuration.trustRoots.base {
            case .system:
                guard SSL_CTX_set_default_verify_paths(ctx) == 1 else {
                    throw OpenSSLErrorQueue.error(.invalidConfiguration, "cannot load the system CA bundle")
                }
            case .source(let source):
                try addTrustedCertificates(source, to: ctx)
            }
            switch configuration.certificateVerification.base {
            case .full, .noHostnameVerification:
                SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
            case .none:
                SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
            }
            if let identity = configuration.identity {
                try useIdentity(identity, in: ctx)
            }
            if configuration.sessionReuse {
                // Sessions are stored through the new-session callback (TLS 1.3 tickets arrive after the
                // handshake); OpenSSL's internal client cache is not used.
                _ = copenssl_SSL_CTX_set_session_cache_mode(
                    ctx,
                    Int(SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE)
                )
                SSL_CTX_sess_set_new_cb(ctx, newSessionCallback)
            } else {
                _ = copenssl_SSL_CTX_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_OFF))
            }
            self.alpnWire = try alpnWireFormat(configuration.applicationProtocols)
        } catch {
            SSL_CTX_free(ctx)
            throw error
        }
        self.configuration = configuration
        self.context = ctx
    }

    deinit {
        self.sessions.withLock { $0.removeAll() }
        SSL_CTX_free(self.context)
    }

    /// A new reference to the cached session for `key`, or nil. The caller frees it.
    func cachedSession(for key: String) -> OpaquePointer? {
        self.sessions.withLock { cache in
            guard let session = cache.sessions[key]?.pointer else { return nil }
            SSL_SESSION_up_ref(session)
            return session
        }
    }

    /// Number of cached sessions (tests).
    var cachedSessionCount: Int { self.sessions.withLock { $0.sessions.count } }
}

/// An owned `SSL_SESSION*`. Sendable because OpenSSL sessions are reference counted with atomic
/// operations and immutable once cached.
struct SessionReference: @unchecked Sendable {
    let pointer: OpaquePointer
}

struct SessionCache: Sendable {
    var sessions: [String: SessionReference] = [:]

    mutating func removeAll() {
        for session in self.sessions.values { SSL_SESSION_free(session.pointer) }
        self.sessions.removeAll()
    }

    mutating func replace(_ key: String, with new: SessionReference) {
        if let old = self.sessions[key] { SSL_SESSION_free(old.pointer) }
        self.sessions[key] = new
    }
}

/// OpenSSL's new-session callback on client contexts: stores the session under the connection's
/// upstream name. Returning 1 tells OpenSSL that we took over its reference.
private func newSessionCallback(_ ssl: OpaquePointer?, _ session: OpaquePointer?) -> Int32 {
    guard let ssl, let session, let connection = TLSConnection.from(ssl: ssl),
        let context = connection.clientContext, let key = connection.sessionKey
    else { return 0 }
    context.storeReplacing(session: session, for: key)
    return 1
}

extension TLSClientContext {
    func storeReplacing(session: OpaquePointer, for key: String) {
        self.sessions.withLock { cache in
            if cache.sessions.count >= Self.maximumCachedSessions { cache.removeAll() }
            cache.replace(key, with: SessionReference(pointer: session))
        }
    }
}
