internal import COpenSSL

/// A compiled ``TLSServerConfiguration``: one OpenSSL `SSL_CTX` per virtual host plus the default,
/// built once and shared by every connection of a listener.
///
/// > Warning: the initialiser reads certificate and key files (blocking disk I/O) and runs OpenSSL's key
/// > checks. Build contexts at start-up or in a reload task, never on an event loop (STYLE.md P8).
///
/// SNI is handled in OpenSSL's client-hello callback, which runs before session lookup: it switches
/// the connection to the virtual host's `SSL_CTX`, its client-certificate verify mode and depth, *and*
/// its session ID context. OpenSSL refuses to resume a session (by ID or ticket, TLS 1.2 and 1.3)
/// whose session ID context differs, so a session made under one virtual host, or under other
/// client-certificate settings, never resumes under another (``ServerHostPolicy``).
///
/// Sendable: an `SSL_CTX` is safe to share between threads once configured (OpenSSL locks its session
/// cache and reference counts); nothing mutates it after `init`.
public final class TLSServerContext: @unchecked Sendable {
    /// The configuration this context was built from.
    public let configuration: TLSServerConfiguration
    /// `SSL_CTX` of the default identity; every connection starts here.
    let defaultContext: OpaquePointer
    /// `SSL_CTX` per virtual host, same order as ``TLSServerConfiguration/virtualHosts``.
    let hostContexts: [OpaquePointer]
    /// Verify mode, depth and session ID context: index 0 the default, then one per virtual host.
    let hostPolicies: [ServerHostPolicy]
    let matcher: ServerNameMatcher
    /// The client-certificate settings of each TLS name, for the gateway's Host check.
    public let clientAuthenticationTable: TLSClientAuthenticationTable
    /// ALPN preference list in wire format; its address is handed to OpenSSL's callback, so it is
    /// allocated once and freed in `deinit`.
    let alpnWire: UnsafeMutableBufferPointer<UInt8>

    /// Builds the contexts. Throws ``TLSError`` (`.invalidCertificate`, `.invalidPrivateKey`,
    /// `.invalidConfiguration`) with OpenSSL's reason.
    public init(configuration: TLSServerConfiguration) throws {
        self.matcher = try ServerNameMatcher(hosts: configuration.virtualHosts.map(\.serverNames))
        let wire = try alpnWireFormat(configuration.applicationProtocols)
        self.alpnWire = .allocate(capacity: wire.count)
        _ = self.alpnWire.initialize(from: wire)
        var built: [OpaquePointer] = []
        var policies: [ServerHostPolicy] = []
        let table: TLSClientAuthenticationTable
        do {
            let defaultHost = TLSVirtualHost(
                serverNames: [],
                identity: configuration.defaultIdentity,
                clientAuthentication: configuration.clientAuthentication
            )
            for (index, host) in ([defaultHost] + configuration.virtualHosts).enumerated() {
                guard let ctx = SSL_CTX_new(TLS_server_method()) else {
                    throw OpenSSLErrorQueue.error(.invalidConfiguration, "SSL_CTX_new failed")
                }
                built.append(ctx)
                policies.append(try Self.configure(ctx, configuration: configuration, host: host, hostIndex: index))
            }
            table = try TLSClientAuthenticationTable(
                hosts: configuration.virtualHosts.map(\.serverNames),
                keys: policies.map(\.settingsKey)
            )
        } catch {
            for context in built { SSL_CTX_free(context) }
            self.alpnWire.deallocate()
            throw error
        }
        self.configuration = configuration
        self.defaultContext = built[0]
        self.hostContexts = Array(built.dropFirst())
        self.hostPolicies = policies
        self.clientAuthenticationTable = table
        // Callbacks that need this object get an unretained pointer: every connection keeps a strong
        // reference to its context, so the pointer outlives every callback.
        let unmanaged = Unmanaged.passUnretained(self).toOpaque()
        for ctx in built {
            SSL_CTX_set_client_hello_cb(ctx, clientHelloCallback, unmanaged)
            if !configuration.applicationProtocols.isEmpty {
                SSL_CTX_set_alpn_select_cb(ctx, alpnSelectCallback, unmanaged)
            }
        }
    }

    deinit {
        SSL_CTX_free(self.defaultContext)
        for context in self.hostContexts { SSL_CTX_free(context) }
        self.alpnWire.deallocate()
    }

    /// Settings of one virtual host's `SSL_CTX`. Every context gets the full settings because OpenSSL
    /// reads some callbacks (ALPN) from the context the connection was switched to.
    private static func configure(
        _ ctx: OpaquePointer,
        configuration: TLSServerConfiguration,
        host: TLSVirtualHost,
        hostIndex: Int
    ) throws -> ServerHostPolicy {
        try applyCommonSettings(of: configuration, to: ctx)
        try useIdentity(host.identity, in: ctx)
        // The chain sent is the configured one, as nginx sends it. Without NO_AUTO_CHAIN, OpenSSL builds
        // a chain from the context's trust store in every handshake whose certificate has no configured
        // intermediates: an X509_STORE_CTX and a chain search per connection, over a store that holds the
        // *client* CAs (mTLS), which do not belong in the server's chain.
        _ = copenssl_SSL_CTX_set_mode(ctx, Int(SSL_MODE_NO_AUTO_CHAIN))
        // OpenSSL's record buffers (about 17 KiB each way) are freed whenever they are empty, as nginx
        // has them: an idle connection then holds none, at the price of a malloc and free per record.
        _ = copenssl_SSL_CTX_set_mode(ctx, Int(SSL_MODE_RELEASE_BUFFERS))
        if configuration.sessionResumption {
            _ = copenssl_SSL_CTX_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_SERVER))
        } else {
            _ = copenssl_SSL_CTX_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_OFF))
            _ = SSL_CTX_set_options(ctx, copenssl_SSL_OP_NO_TICKET())
            _ = SSL_CTX_set_num_tickets(ctx, 0)
        }
        // Client certificates and the session ID context that keeps sessions inside their host and
        // client-certificate settings (see the type's doc).
        return try ServerHostPolicy.install(
            in: ctx,
            authentication: host.clientAuthentication,
            scope: configuration.sessionContextScope,
            hostIndex: hostIndex,
            serverNames: host.serverNames
        )
    }

    /// The `SSL_CTX` for an SNI name (nil: no SNI) and the index of its virtual host (nil: default).
    func context(forServerName name: String?) -> (OpaquePointer, Int?) {
        guard let name, let index = self.matcher.match(name) else { return (self.defaultContext, nil) }
        return (self.hostContexts[index], index)
    }

    /// The policy of a virtual host (nil: the default).
    func policy(forHost index: Int?) -> ServerHostPolicy {
        self.hostPolicies[index.map { $0 + 1 } ?? 0]
    }
}

/// Holds the server context a listener uses for *new* connections and lets it be replaced at run
/// time (certificate reload, SIGHUP). Connections keep the context they started with.
public final class TLSServerContextProvider: Sendable {
    private let box: LockedBox<TLSServerContext>

    public init(_ context: TLSServerContext) {
        self.box = LockedBox(context)
    }

    /// The context new connections use.
    public var current: TLSServerContext { self.box.value }

    /// Replaces the context for connections accepted from now on. Build `context` off the event loop.
    public func replace(with context: TLSServerContext) {
        self.box.value = context
    }

    /// Builds a context from `configuration` on the calling thread (call it off the event loop) and
    /// installs it; on error the current context stays.
    public func reload(_ configuration: TLSServerConfiguration) throws {
        self.replace(with: try TLSServerContext(configuration: configuration))
    }
}

/// OpenSSL's client-hello callback (SSL_CTX_set_client_hello_cb): runs first on the server, before
/// version negotiation and session lookup, so switching the `SSL_CTX` and session ID context here
/// decides both the certificate and which sessions may resume.
private func clientHelloCallback(
    _ ssl: OpaquePointer?,
    _ alert: UnsafeMutablePointer<Int32>?,
    _ arg: UnsafeMutableRawPointer?
) -> Int32 {
    guard let ssl, let arg else { return SSL_CLIENT_HELLO_ERROR }
    let context = Unmanaged<TLSServerContext>.fromOpaque(arg).takeUnretainedValue()
    var extensionData: UnsafePointer<UInt8>? = nil
    var extensionLength = 0
    var serverName: String? = nil
    if SSL_client_hello_get0_ext(ssl, UInt32(TLSEXT_TYPE_server_name), &extensionData, &extensionLength) == 1,
        let extensionData
    {
        guard let parsed = parseServerNameExtension(UnsafeRawBufferPointer(start: extensionData, count: extensionLength))
        else {
            alert?.pointee = SSL_AD_DECODE_ERROR
            return SSL_CLIENT_HELLO_ERROR
        }
        serverName = parsed.isEmpty ? nil : parsed
    }
    let (ctx, hostIndex) = context.context(forServerName: serverName)
    if let connection = TLSConnection.from(ssl: ssl) {
        connection.requestedServerName = serverName
        connection.selectedHostIndex = hostIndex
    }
    if hostIndex != nil {
        guard SSL_set_SSL_CTX(ssl, ctx) != nil else {
            alert?.pointee = SSL_AD_INTERNAL_ERROR
            return SSL_CLIENT_HELLO_ERROR
        }
    }
    // Set explicitly (also for the default host): verify mode and depth are per `SSL`, and the session
    // ID context is what keeps sessions inside their host and client-certificate settings.
    guard context.policy(forHost: hostIndex).apply(to: ssl) else {
        alert?.pointee = SSL_AD_INTERNAL_ERROR
        return SSL_CLIENT_HELLO_ERROR
    }
    return SSL_CLIENT_HELLO_SUCCESS
}

/// OpenSSL's ALPN selection callback: the first of the server's protocols that the client offers
/// (server preference). No overlap → fatal `no_application_protocol` alert (RFC 7301 §3.2).
private func alpnSelectCallback(
    _ ssl: OpaquePointer?,
    _ out: UnsafeMutablePointer<UnsafePointer<UInt8>?>?,
    _ outLength: UnsafeMutablePointer<UInt8>?,
    _ clientList: UnsafePointer<UInt8>?,
    _ clientLength: UInt32,
    _ arg: UnsafeMutableRawPointer?
) -> Int32 {
    guard let arg, let out, let outLength, let clientList else { return SSL_TLSEXT_ERR_ALERT_FATAL }
    let context = Unmanaged<TLSServerContext>.fromOpaque(arg).takeUnretainedValue()
    var selected: UnsafeMutablePointer<UInt8>? = nil
    var selectedLength: UInt8 = 0
    let result = SSL_select_next_proto(
        &selected,
        &selectedLength,
        context.alpnWire.baseAddress,
        UInt32(context.alpnWire.count),
        clientList,
        clientLength
    )
    guard result == OPENSSL_NPN_NEGOTIATED, let selected else { return SSL_TLSEXT_ERR_ALERT_FATAL }
    out.pointee = UnsafePointer(selected)
    outLength.pointee = selectedLength
    return SSL_TLSEXT_ERR_OK
}

/// Parses the `server_name` extension body (RFC 6066 §3): a 2-byte list length, then entries of a
/// 1-byte type, a 2-byte length and the name. Returns the first `host_name` (type 0) entry, "" when the
/// list holds none, and nil when the bytes are malformed (peer input: every length is range-checked).
func parseServerNameExtension(_ bytes: UnsafeRawBufferPointer) -> String? {
    guard bytes.count >= 2 else { return nil }
    let listLength = Int(bytes[0]) << 8 | Int(bytes[1])
    guard listLength == bytes.count - 2 else { return nil }
    var offset = 2
    while offset < bytes.count {
        guard bytes.count - offset >= 3 else { return nil }
        let type = bytes[offset]
        let length = Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
        offset += 3
        guard length <= bytes.count - offset else { return nil }
        if type == 0 {
            guard length > 0 else { return nil }
            let name = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
            // RFC 6066 §3: a HostName is ASCII without a trailing NUL.
            guard name.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
            return String(decoding: name, as: UTF8.self)
        }
        offset += length
    }
    return ""
}
