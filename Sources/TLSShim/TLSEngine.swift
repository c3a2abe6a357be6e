internal import COpenSSL

/// One TLS connection without NIO (issue #15 part 2): the same `SSL*` wrapper as ``TLSHandler``'s
/// (``TLSConnection``, so SNI virtual hosts, ALPN, client certificates, session ID contexts and the
/// handshake-failure classes are the handler's), driven by a caller that owns the socket and the memory.
///
/// Every call takes ``Windows``: ciphertext OpenSSL reads where it lies (no copy into a queue) and room
/// where it writes records (the buffer that goes to the socket). Nothing is kept between calls but
/// OpenSSL's own record state: when a call returns, the input window starts at the first byte OpenSSL
/// did not take (the caller keeps those bytes for the next call) and `produced` says how many bytes of
/// records are at the start of the output window.
///
/// Made by ``TLSServerContext/makeEngine()`` or ``TLSClientContext/makeEngine(serverName:)``; it keeps
/// its context alive, so a reload (``TLSServerContextProvider``) leaves it on the one it started with.
/// Confined to one thread at a time; not Sendable. Counted in ``TLSShim/liveConnections``.
public final class TLSEngine {
    let connection: TLSConnection
    /// The connection's `SSL*` and BIO object, held here so a call reaches them without the connection.
    private let ssl: OpaquePointer
    private let io: ByteBufferBIO

    init(_ connection: TLSConnection) {
        self.connection = connection
        self.ssl = connection.ssl
        self.io = connection.io
    }

    /// The memory of one call: ciphertext in, records out.
    public struct Windows {
        /// Ciphertext not read yet; a call moves its start past what OpenSSL read.
        public var input: UnsafeRawBufferPointer
        /// Room for records; a call writes them after the first ``produced`` bytes.
        public var output: UnsafeMutableRawBufferPointer
        /// Bytes of records at the start of ``output``.
        public var produced: Int

        public init(input: UnsafeRawBufferPointer, output: UnsafeMutableRawBufferPointer, produced: Int = 0) {
            self.input = input
            self.output = output
            self.produced = produced
        }
    }

    public enum HandshakeResult: Equatable {
        case complete
        /// OpenSSL read the whole input window and needs more ciphertext.
        case needsInput
        /// The output window is full: call again with room (OpenSSL keeps the record that did not fit).
        case needsOutputRoom
        /// Classified as the handler classifies it (``TLSError/Code/isHandshakeFailure``: close code 1015).
        case failed(TLSError)
    }

    public enum ReadResult: Equatable {
        /// Plaintext bytes written at the start of the plaintext buffer.
        case plaintext(Int)
        case needsInput
        case needsOutputRoom
        /// The peer's close_notify (RFC 8446 §6.1): the end of its data.
        case closeNotify
        case failed(TLSError)
    }

    public enum WriteResult: Equatable {
        /// Every plaintext byte is in records in the output window.
        case sealed
        /// The output window is full: call again with room and the same plaintext (size the window with
        /// ``recordBound(plaintextBytes:)`` and this never happens).
        case needsOutputRoom
        case failed(TLSError)
    }

    public enum ShutdownResult: Equatable {
        /// Our close_notify is in the output window.
        case sent
        case needsOutputRoom
        case failed(TLSError)
    }

    /// The most bytes of records `plaintextBytes` can become in one write: per record of up to 16 KiB, a
    /// 5-byte header and at most 8 (explicit nonce) + 16 (tag) + 1 (TLS 1.3 inner type) + 256 (padding,
    /// which OpenSSL does not add without a callback).
    public static func recordBound(plaintextBytes: Int) -> Int {
        plaintextBytes + (plaintextBytes / 16_384 + 1) * (5 + 8 + 16 + 1 + 256)
    }

    /// Advances the handshake with the input window.
    public func handshake(_ windows: inout Windows) -> HandshakeResult {
        self.lend(&windows) {
            OpenSSLErrorQueue.clear()
            let result = SSL_do_handshake(self.ssl)
            if result == 1 { return .complete }
            switch SSL_get_error(self.ssl, result) {
            case SSL_ERROR_WANT_READ:
                return .needsInput
            case SSL_ERROR_WANT_WRITE:
                return .needsOutputRoom
            case let sslError:
                return .failed(self.connection.handshakeFailure(sslError: sslError))
            }
        }
    }

    /// Decrypts from the input window into `plaintext` (post-handshake messages such as session tickets
    /// and KeyUpdate are handled on the way, their answers written into the output window).
    public func read(into plaintext: UnsafeMutableRawBufferPointer, _ windows: inout Windows) -> ReadResult {
        self.lend(&windows) {
            OpenSSLErrorQueue.clear()
            var count = 0
            if plaintext.count > 0, SSL_read_ex(self.ssl, plaintext.baseAddress, plaintext.count, &count) == 1 {
                return .plaintext(count)
            }
            switch SSL_get_error(self.ssl, 0) {
            case SSL_ERROR_WANT_READ: return .needsInput
            case SSL_ERROR_WANT_WRITE: return .needsOutputRoom
            case SSL_ERROR_ZERO_RETURN: return .closeNotify
            default: return .failed(HandshakeFailureClassifier.classifyEstablished(errors: OpenSSLErrorQueue.drain()))
            }
        }
    }

    /// Seals all of `plaintext` into records in the output window.
    public func write(_ plaintext: UnsafeRawBufferPointer, _ windows: inout Windows) -> WriteResult {
        guard let base = plaintext.baseAddress, plaintext.count > 0 else { return .sealed }
        return self.lend(&windows) {
            OpenSSLErrorQueue.clear()
            var written = 0
            if SSL_write_ex(self.ssl, base, plaintext.count, &written) == 1 { return .sealed }
            if SSL_get_error(self.ssl, 0) == SSL_ERROR_WANT_WRITE { return .needsOutputRoom }
            return .failed(HandshakeFailureClassifier.classifyEstablished(errors: OpenSSLErrorQueue.drain()))
        }
    }

    /// Writes our close_notify (RFC 8446 §6.1) into the output window; we do not wait for the peer's.
    /// Only after the handshake is complete.
    public func shutdown(_ windows: inout Windows) -> ShutdownResult {
        self.lend(&windows) {
            OpenSSLErrorQueue.clear()
            let result = SSL_shutdown(self.ssl)
            if result >= 0 { return .sent }
            if SSL_get_error(self.ssl, result) == SSL_ERROR_WANT_WRITE { return .needsOutputRoom }
            return .failed(HandshakeFailureClassifier.classifyEstablished(errors: OpenSSLErrorQueue.drain()))
        }
    }

    /// What the handshake negotiated (SNI name, ALPN, version and cipher, the verified client
    /// certificate, the TLS names' client-certificate settings), as ``TLSHandler/connectionInfo``. Valid
    /// after `.complete`; builds strings, so read it once per connection.
    public var connectionInfo: TLSConnectionInfo { self.connection.info }

    /// Server side: the SNI name from the ClientHello, as soon as the client-hello callback ran.
    public var serverName: String? { self.connection.requestedServerName }

    /// Whether this is the server's end.
    public var isServer: Bool { self.connection.serverContext != nil }

    /// Plaintext OpenSSL has decrypted and not handed out yet.
    public var pendingPlaintextBytes: Int { Int(SSL_pending(self.ssl)) }

    /// Lends `windows` to the BIO for `body` only: no pointer outlives the call.
    @inline(__always)
    private func lend<Result>(_ windows: inout Windows, _ body: () -> Result) -> Result {
        self.io.inputWindow = windows.input
        self.io.outputWindow = UnsafeMutableRawBufferPointer(rebasing: windows.output[min(windows.produced, windows.output.count)...])
        self.io.outputUsed = 0
        let result = body()
        windows.input = self.io.inputWindow
        windows.produced += self.io.outputUsed
        self.io.inputWindow = UnsafeRawBufferPointer(start: nil, count: 0)
        self.io.outputWindow = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        return result
    }
}

extension TLSServerContext {
    /// A server engine for one accepted connection: starts on the default identity; the client-hello
    /// callback switches it to the virtual host its SNI names (certificate, client-certificate check,
    /// session ID context), and ALPN is chosen from ``TLSServerConfiguration/applicationProtocols``.
    public func makeEngine() throws -> TLSEngine {
        TLSEngine(try TLSConnection(serverContext: self, windowed: true))
    }
}

extension TLSClientContext {
    /// A client engine toward `serverName` (SNI and the name verified; nil: neither, which full
    /// verification refuses), with this context's session reuse and ALPN list.
    public func makeEngine(serverName: String?) throws -> TLSEngine {
        TLSEngine(try TLSConnection(clientContext: self, serverName: serverName, windowed: true))
    }
}
