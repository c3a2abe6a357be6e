/// A TLS protocol version, as configured and as negotiated.
public struct TLSVersion: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The wire value (`0x0303` for TLS 1.2), which is also OpenSSL's `TLS1_2_VERSION`.
    public let wireValue: UInt16

    public init(wireValue: UInt16) { self.wireValue = wireValue }

    public static let tls1_0 = TLSVersion(wireValue: 0x0301)
    public static let tls1_1 = TLSVersion(wireValue: 0x0302)
    public static let tls1_2 = TLSVersion(wireValue: 0x0303)
    public static let tls1_3 = TLSVersion(wireValue: 0x0304)

    public static func < (lhs: TLSVersion, rhs: TLSVersion) -> Bool { lhs.wireValue < rhs.wireValue }

    public var description: String {
        switch self.wireValue {
        case 0x0301: "TLSv1"
        case 0x0302: "TLSv1.1"
        case 0x0303: "TLSv1.2"
        case 0x0304: "TLSv1.3"
        default: "TLS(0x\(String(self.wireValue, radix: 16)))"
        }
    }
}

/// Where PEM data comes from: a file (read when the context is built) or bytes already in memory
/// (the embedded default certificate, tests).
public struct TLSPEMSource: Hashable, Sendable, CustomStringConvertible {
    enum Base: Hashable, Sendable {
        case file(String)
        case pem(String)
    }

    let base: Base

    /// A PEM file on disk. It is read when the context is built, never on an event loop (STYLE.md P8).
    public static func file(_ path: String) -> TLSPEMSource { TLSPEMSource(base: .file(path)) }
    /// PEM text in memory.
    public static func pem(_ text: String) -> TLSPEMSource { TLSPEMSource(base: .pem(text)) }

    /// The path of a ``file(_:)`` source; `nil` for in-memory PEM. For configuration checks that name
    /// the file (an empty path) before the context is built.
    public var filePath: String? {
        switch self.base {
        case .file(let path): path
        case .pem: nil
        }
    }

    public var description: String {
        switch self.base {
        case .file(let path): "file \(path)"
        case .pem: "in-memory PEM"
        }
    }
}

/// A certificate chain (leaf first, then intermediates) and its private key.
public struct TLSIdentity: Hashable, Sendable {
    /// PEM certificates, leaf first.
    public var certificateChain: TLSPEMSource
    /// PEM private key (PKCS#8, traditional RSA/EC); unencrypted.
    public var privateKey: TLSPEMSource

    public init(certificateChain: TLSPEMSource, privateKey: TLSPEMSource) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
    }
}

/// One virtual host of a TLS listener: the names it answers under SNI and the identity it presents.
public struct TLSVirtualHost: Hashable, Sendable {
    /// Exact names (`api.example.com`) or wildcards of one left-most label (`*.example.com`, which
    /// matches `a.example.com` but neither `example.com` nor `a.b.example.com`, as RFC 6125 §6.4.3).
    /// Compared case-insensitively; exact names win over wildcards.
    public var serverNames: [String]
    public var identity: TLSIdentity
    /// Client certificates asked for under these names. Nothing is inherited from the listener: a
    /// virtual host without it asks for no certificate. Default: nil.
    public var clientAuthentication: TLSClientAuthentication?

    public init(serverNames: [String], identity: TLSIdentity, clientAuthentication: TLSClientAuthentication? = nil) {
        self.serverNames = serverNames
        self.identity = identity
        self.clientAuthentication = clientAuthentication
    }
}

/// Client certificates (mutual TLS) on a server context: which CAs are trusted, whether a certificate
/// is required, and how long a chain may be.
///
/// A presented certificate must always verify; ``Mode/optional`` only lets a client send none.
public struct TLSClientAuthentication: Hashable, Sendable {
    /// Whether a client must present a certificate.
    public struct Mode: Hashable, Sendable, CustomStringConvertible {
        let requiresCertificate: Bool

        /// No certificate fails the handshake (TLS 1.3: `certificate_required`, RFC 8446 §4.4.2.4;
        /// TLS 1.2: `handshake_failure`, RFC 5246 §7.4.6).
        public static let require = Mode(requiresCertificate: true)
        /// A client may send none; one it sends must still verify.
        public static let optional = Mode(requiresCertificate: false)

        public var description: String { self.requiresCertificate ? "require" : "optional" }
    }

    /// The verify depths accepted; others are refused when the context is built.
    public static let depthRange = 0...16

    /// PEM CA certificates a client certificate must chain to. Also sent to clients as the acceptable
    /// CA names (`certificate_authorities`, RFC 8446 §4.2.4).
    public var trustRoots: TLSPEMSource
    /// Default: ``Mode/require``.
    public var mode: Mode
    /// The most intermediate CA certificates between the client's certificate and a trusted root
    /// (OpenSSL's verify depth: 0 accepts only certificates a trusted CA issued directly). Must be in
    /// ``depthRange``. Default: 2.
    public var verifyDepth: Int

    public init(trustRoots: TLSPEMSource, mode: Mode = .require, verifyDepth: Int = 2) {
        self.trustRoots = trustRoots
        self.mode = mode
        self.verifyDepth = verifyDepth
    }
}

/// Defaults shared by server and client configurations.
public enum TLSDefaults {
    /// Cipher list for TLS 1.2 and lower: ECDHE with AEAD only (forward secrecy, no CBC, no RSA key
    /// exchange), as Mozilla's "intermediate" profile.
    public static let cipherList =
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
    /// TLS 1.3 cipher suites (RFC 8446 §9.1 mandatory plus ChaCha20).
    public static let cipherSuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
}

/// What a TLS listener offers (the *protocol* side; how the handler operates is ``TLSHandler/Configuration``,
/// STYLE.md P8). Built into a ``TLSServerContext`` once, off the event loop.
public struct TLSServerConfiguration: Hashable, Sendable {
    /// The identity presented when the client sends no SNI or a name no virtual host matches.
    public var defaultIdentity: TLSIdentity
    /// Identities chosen by SNI. Default: none.
    public var virtualHosts: [TLSVirtualHost] = []
    /// Lowest version accepted. Default: TLS 1.2 (../shared/DESIGN.md §1 step 2).
    public var minimumVersion: TLSVersion = .tls1_2
    /// Highest version accepted. Default: TLS 1.3.
    public var maximumVersion: TLSVersion = .tls1_3
    /// OpenSSL cipher list for TLS ≤ 1.2. Default: ``TLSDefaults/cipherList``.
    public var cipherList: String = TLSDefaults.cipherList
    /// TLS 1.3 cipher suites. Default: ``TLSDefaults/cipherSuites``.
    public var cipherSuites: String = TLSDefaults.cipherSuites
    /// ALPN protocols the server accepts, in preference order. Default: `["http/1.1"]`. A client that
    /// offers ALPN but none of these gets a fatal `no_application_protocol` alert (RFC 7301 §3.2); a
    /// client that offers no ALPN is accepted.
    public var applicationProtocols: [String] = ["http/1.1"]
    /// Session resumption (session IDs and tickets). Sessions never resume across virtual hosts or
    /// client-certificate settings: each context's session ID context is a digest of
    /// ``sessionContextScope``, the virtual host, its names and its ``TLSClientAuthentication`` including
    /// the CA certificates (``TLSServerContext``). Default: on.
    public var sessionResumption: Bool = true
    /// Client certificates (mTLS) asked for without SNI or under a name no virtual host matches.
    /// Virtual hosts have their own (``TLSVirtualHost/clientAuthentication``). Default: nil (none asked).
    public var clientAuthentication: TLSClientAuthentication? = nil
    /// Mixed into every session ID context, so that sessions of two servers in one process (the
    /// gateway's listeners) never resume into each other even with the same settings. Default: "".
    public var sessionContextScope: String = ""

    /// - Parameters:
    ///   - defaultIdentity: the certificate chain and key presented without a matching SNI name.
    ///   - configure: adjusts the defaults.
    public init(defaultIdentity: TLSIdentity, _ configure: (inout Self) -> Void = { _ in }) {
        self.defaultIdentity = defaultIdentity
        configure(&self)
    }
}

/// How a client verifies the server's certificate.
public struct TLSCertificateVerification: Hashable, Sendable, CustomStringConvertible {
    enum Base: Hashable, Sendable {
        case full
        case noHostnameVerification
        case none
    }

    let base: Base

    /// Chain to a trusted root and the expected host name or IP address (the default).
    public static let fullVerification = TLSCertificateVerification(base: .full)
    /// Chain to a trusted root only.
    public static let noHostnameVerification = TLSCertificateVerification(base: .noHostnameVerification)
    /// No verification at all. Only for tests and explicitly configured upstreams.
    public static let none = TLSCertificateVerification(base: .none)

    public var description: String {
        switch self.base {
        case .full: "full"
        case .noHostnameVerification: "noHostnameVerification"
        case .none: "none"
        }
    }
}

/// Which roots a client trusts.
public struct TLSTrustRoots: Hashable, Sendable {
    enum Base: Hashable, Sendable {
        case system
        case source(TLSPEMSource)
    }

    let base: Base

    /// The system CA bundle (OpenSSL's default verify paths, `SSL_CERT_FILE` / `SSL_CERT_DIR` honoured).
    public static let system = TLSTrustRoots(base: .system)
    /// A CA file or in-memory PEM bundle, used instead of the system bundle.
    public static func certificates(_ source: TLSPEMSource) -> TLSTrustRoots { TLSTrustRoots(base: .source(source)) }
}

/// What a TLS client (toward `wss://` upstreams) offers and verifies. Built into a ``TLSClientContext``
/// once, off the event loop.
public struct TLSClientConfiguration: Hashable, Sendable {
    /// Default: ``TLSCertificateVerification/fullVerification`` (../shared/DESIGN.md §7).
    public var certificateVerification: TLSCertificateVerification = .fullVerification
    /// Default: ``TLSTrustRoots/system``.
    public var trustRoots: TLSTrustRoots = .system
    /// A client certificate for mTLS. Default: nil.
    public var identity: TLSIdentity? = nil
    /// Default: TLS 1.2.
    public var minimumVersion: TLSVersion = .tls1_2
    /// Default: TLS 1.3.
    public var maximumVersion: TLSVersion = .tls1_3
    /// Default: ``TLSDefaults/cipherList``.
    public var cipherList: String = TLSDefaults.cipherList
    /// Default: ``TLSDefaults/cipherSuites``.
    public var cipherSuites: String = TLSDefaults.cipherSuites
    /// ALPN protocols offered. Default: none.
    public var applicationProtocols: [String] = []
    /// Reuse sessions per (upstream name, this configuration's verification policy). Default: on.
    public var sessionReuse: Bool = true

    public init(_ configure: (inout Self) -> Void = { _ in }) {
        configure(&self)
    }
}
