/// The one error type of the `TLSShim` module.
///
/// A handshake failure is classified by the state the connection was in and OpenSSL's normalised
/// error (STYLE.md P7): the ``code`` says *what* happened (an alert from the peer, a certificate that is
/// not trusted, a name mismatch, an expired certificate, a protocol version nobody shares, a deadline,
/// an EOF), ``reason`` keeps OpenSSL's own text so that the gateway can tell the client why (it records
/// close code 1015 for every connection lost this way, ../shared/DESIGN.md §1). Equality compares the
/// code only (STYLE.md P6), so `#expect(throws: TLSError(code: .invalidConfiguration, reason: ""))`
/// matches any reason text; switch on ``code`` (or read ``Code/isHandshakeFailure``) to classify.
public struct TLSError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong. A struct over a private enum so that codes can be added later without breaking
    /// `switch` statements in other modules (STYLE.md P6, P9).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: Hashable, Sendable {
            case alertReceived
            case certificateNotTrusted
            case hostnameMismatch
            case certificateExpired
            case certificateNotYetValid
            case certificateInvalid
            case clientCertificateRequired
            case clientCertificateUntrusted
            case clientCertificateExpired
            case clientCertificateInvalid
            case protocolVersion
            case noSharedCipher
            case noApplicationProtocol
            case handshakeTimeout
            case eofDuringHandshake
            case plaintextHTTP
            case handshakeFailed
            case uncleanShutdown
            case connectionFailed
            case writeAfterClose
            case invalidConfiguration
            case invalidCertificate
            case invalidPrivateKey
            case certificateGenerationFailed
        }

        fileprivate let base: Base
        fileprivate init(_ base: Base) { self.base = base }

        /// The peer sent a fatal alert during the handshake (RFC 8446 §6.2); ``TLSError/alert`` says which.
        public static let alertReceived = Code(.alertReceived)
        /// The peer's chain does not lead to a trusted root (self-signed, unknown issuer, untrusted CA).
        public static let certificateNotTrusted = Code(.certificateNotTrusted)
        /// The certificate does not cover the expected host name or IP address (RFC 6125 / RFC 9525).
        public static let hostnameMismatch = Code(.hostnameMismatch)
        /// A certificate in the chain is past its notAfter time.
        public static let certificateExpired = Code(.certificateExpired)
        /// A certificate in the chain is before its notBefore time.
        public static let certificateNotYetValid = Code(.certificateNotYetValid)
        /// Certificate verification failed for another reason (signature, purpose, constraints).
        public static let certificateInvalid = Code(.certificateInvalid)
        /// Server side: the client sent no certificate where one is required (the server sent
        /// `certificate_required` in TLS 1.3, `handshake_failure` in TLS 1.2).
        public static let clientCertificateRequired = Code(.clientCertificateRequired)
        /// Server side: the client's certificate does not chain to a trusted CA (self-signed, another CA's;
        /// the server sent `unknown_ca`).
        public static let clientCertificateUntrusted = Code(.clientCertificateUntrusted)
        /// Server side: the client's certificate (or one in its chain) is past notAfter or before notBefore.
        public static let clientCertificateExpired = Code(.clientCertificateExpired)
        /// Server side: the client's certificate failed verification for another reason (signature,
        /// purpose, chain longer than the verify depth).
        public static let clientCertificateInvalid = Code(.clientCertificateInvalid)
        /// The two ends share no protocol version (for example a TLS 1.0-only client against the
        /// TLS 1.2 minimum of ../shared/DESIGN.md §1 step 2).
        public static let protocolVersion = Code(.protocolVersion)
        /// The two ends share no cipher suite.
        public static let noSharedCipher = Code(.noSharedCipher)
        /// RFC 7301 §3.2: the client offered ALPN protocols and the server supports none of them.
        public static let noApplicationProtocol = Code(.noApplicationProtocol)
        /// The handshake did not finish within the configured deadline.
        public static let handshakeTimeout = Code(.handshakeTimeout)
        /// The transport closed (or half-closed) before the handshake finished.
        public static let eofDuringHandshake = Code(.eofDuringHandshake)
        /// A server received a plain HTTP request where a TLS ClientHello belongs (someone used
        /// `http://` or `ws://` toward a TLS port).
        public static let plaintextHTTP = Code(.plaintextHTTP)
        /// Any other handshake failure; ``TLSError/reason`` carries OpenSSL's text.
        public static let handshakeFailed = Code(.handshakeFailed)
        /// The transport closed after the handshake without a `close_notify` (possible truncation).
        public static let uncleanShutdown = Code(.uncleanShutdown)
        /// OpenSSL failed on an established connection (bad record MAC, decode error, alert after the
        /// handshake).
        public static let connectionFailed = Code(.connectionFailed)
        /// A write was issued after the TLS output was closed.
        public static let writeAfterClose = Code(.writeAfterClose)
        /// A configuration value OpenSSL refused (cipher list, version range, CA file, ALPN list).
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// A certificate (chain) could not be read or parsed.
        public static let invalidCertificate = Code(.invalidCertificate)
        /// A private key could not be read, parsed, or does not match its certificate.
        public static let invalidPrivateKey = Code(.invalidPrivateKey)
        /// The self-signed certificate helper failed inside OpenSSL.
        public static let certificateGenerationFailed = Code(.certificateGenerationFailed)

        /// Whether this code is one of the handshake failure classes (the gateway records 1015 for these).
        public var isHandshakeFailure: Bool {
            switch self.base {
            case .alertReceived, .certificateNotTrusted, .hostnameMismatch, .certificateExpired,
                .certificateNotYetValid, .certificateInvalid, .clientCertificateRequired, .clientCertificateUntrusted,
                .clientCertificateExpired, .clientCertificateInvalid, .protocolVersion, .noSharedCipher,
                .noApplicationProtocol, .handshakeTimeout, .eofDuringHandshake, .plaintextHTTP, .handshakeFailed:
                true
            case .uncleanShutdown, .connectionFailed, .writeAfterClose, .invalidConfiguration,
                .invalidCertificate, .invalidPrivateKey, .certificateGenerationFailed:
                false
            }
        }

        public var description: String {
            switch self.base {
            case .alertReceived: "alert received"
            case .certificateNotTrusted: "certificate not trusted"
            case .hostnameMismatch: "host name mismatch"
            case .certificateExpired: "certificate expired"
            case .certificateNotYetValid: "certificate not yet valid"
            case .certificateInvalid: "certificate invalid"
            case .clientCertificateRequired: "client certificate required"
            case .clientCertificateUntrusted: "client certificate untrusted"
            case .clientCertificateExpired: "client certificate expired"
            case .clientCertificateInvalid: "client certificate invalid"
            case .protocolVersion: "protocol version"
            case .noSharedCipher: "no shared cipher"
            case .noApplicationProtocol: "no application protocol"
            case .handshakeTimeout: "handshake timeout"
            case .eofDuringHandshake: "EOF during handshake"
            case .plaintextHTTP: "plaintext HTTP"
            case .handshakeFailed: "handshake failed"
            case .uncleanShutdown: "unclean shutdown"
            case .connectionFailed: "connection failed"
            case .writeAfterClose: "write after close"
            case .invalidConfiguration: "invalid configuration"
            case .invalidCertificate: "invalid certificate"
            case .invalidPrivateKey: "invalid private key"
            case .certificateGenerationFailed: "certificate generation failed"
            }
        }
    }

    /// One entry of OpenSSL's error queue, drained into a value (STYLE.md P7), or a synthetic entry for a
    /// failure the handler detected itself (deadline, EOF).
    public struct OpenSSLError: Hashable, Sendable, CustomStringConvertible {
        /// OpenSSL's packed error code (`ERR_get_error`), 0 for synthetic entries.
        public var code: UInt
        /// OpenSSL's reason string (`ERR_reason_error_string`), or the synthetic reason.
        public var reason: String
        /// The OpenSSL source file and line that raised it ("" / 0 for synthetic entries).
        public var file: String
        public var line: Int

        public var description: String {
            self.code == 0 ? self.reason : "\(self.reason) (\(self.file):\(self.line))"
        }
    }

    /// What went wrong.
    public var code: Code
    /// Human-readable reason, OpenSSL's own text where OpenSSL produced it ("certificate has expired",
    /// "tlsv1 alert unknown ca", "unsupported protocol"). Safe to show to a client.
    public var reason: String
    /// The TLS alert received from the peer, for ``Code/alertReceived``.
    public var alert: TLSAlert?
    /// OpenSSL's error queue at the time of the failure, oldest first.
    public var openSSLErrors: [OpenSSLError]

    public init(code: Code, reason: String, alert: TLSAlert? = nil, openSSLErrors: [OpenSSLError] = []) {
        self.code = code
        self.reason = reason
        self.alert = alert
        self.openSSLErrors = openSSLErrors
    }

    public var description: String {
        "TLSError(\(self.code): \(self.reason))"
    }

    /// Equality compares the code only (STYLE.md P6).
    public static func == (lhs: TLSError, rhs: TLSError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.code) }
}

/// A TLS alert description (RFC 8446 §6 / RFC 5246 §7.2), as received from the peer.
public struct TLSAlert: Hashable, Sendable, CustomStringConvertible {
    /// The alert's wire value (0–255).
    public var rawValue: UInt8
    /// OpenSSL's name for it (`SSL_alert_desc_string_long`), such as "unknown CA".
    public var name: String

    public init(rawValue: UInt8, name: String) {
        self.rawValue = rawValue
        self.name = name
    }

    public static func == (lhs: TLSAlert, rhs: TLSAlert) -> Bool { lhs.rawValue == rhs.rawValue }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.rawValue) }

    public static let handshakeFailure = TLSAlert(rawValue: 40, name: "handshake failure")
    public static let badCertificate = TLSAlert(rawValue: 42, name: "bad certificate")
    public static let certificateExpired = TLSAlert(rawValue: 45, name: "certificate expired")
    public static let unknownCA = TLSAlert(rawValue: 48, name: "unknown CA")
    public static let decryptError = TLSAlert(rawValue: 51, name: "decrypt error")
    public static let protocolVersion = TLSAlert(rawValue: 70, name: "protocol version")
    public static let internalError = TLSAlert(rawValue: 80, name: "internal error")
    public static let unrecognizedName = TLSAlert(rawValue: 112, name: "unrecognized name")
    public static let certificateRequired = TLSAlert(rawValue: 116, name: "certificate required")
    public static let noApplicationProtocol = TLSAlert(rawValue: 120, name: "no application protocol")

    public var description: String { "\(self.name) (\(self.rawValue))" }
}
