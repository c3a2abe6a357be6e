import NIOCore
import Synchronization
import TLSShim

/// A `wss://` listener's TLS for the core's loops (issue #15 part 2): TLSShim's server context (SNI
/// virtual hosts, ALPN, client certificates, session ID contexts, TLSShim's defaults) behind a
/// ``TLSServerContextProvider``, so a reload changes what new connections get while the loops run.
/// Made before the loops start; shared by them (the provider locks, the contexts are read-only).
public final class RelayTLSContext: Sendable {
    /// The server context new connections start on (``reload(_:)`` replaces it; connections keep theirs).
    public let provider: TLSServerContextProvider
    /// Failed handshakes by class (the gateway's close code 1015 accounting): counted once per failure.
    private let failures = Mutex<[TLSError.Code: Int]>([:])

    public init(_ context: TLSServerContext) {
        self.provider = TLSServerContextProvider(context)
    }

    /// A context from a TLSShim configuration (reads its files: call it before the loops start).
    public convenience init(configuration: TLSServerConfiguration) throws(RelayCoreError) {
        do {
            self.init(try TLSServerContext(configuration: configuration))
        } catch {
            throw RelayCoreError(call: "TLS context: \(error)", errno: 0)
        }
    }

    /// A default identity from a PEM certificate chain and its private key, and virtual hosts the SNI
    /// selects (one name each), with TLSShim's defaults (TLS 1.3: AES-128-GCM first, in server preference,
    /// as the gateway's listeners).
    public convenience init(
        certificatePEM: String,
        privateKeyPEM: String,
        virtualHosts: [(serverName: String, certificatePEM: String, privateKeyPEM: String)] = [],
        cipherList: String = TLSDefaults.cipherList,
        cipherSuites: String = TLSDefaults.cipherSuites
    ) throws(RelayCoreError) {
        let identity = TLSIdentity(certificateChain: .pem(certificatePEM), privateKey: .pem(privateKeyPEM))
        try self.init(
            configuration: TLSServerConfiguration(defaultIdentity: identity) {
                $0.virtualHosts = virtualHosts.map {
                    TLSVirtualHost(
                        serverNames: [$0.serverName],
                        identity: TLSIdentity(certificateChain: .pem($0.certificatePEM), privateKey: .pem($0.privateKeyPEM))
                    )
                }
                $0.cipherList = cipherList
                $0.cipherSuites = cipherSuites
            }
        )
    }

    /// Builds a context from `configuration` on the calling thread (not a loop's) and installs it for the
    /// connections accepted from now on; on error the current one stays.
    public func reload(_ configuration: TLSServerConfiguration) throws {
        try self.provider.reload(configuration)
    }

    /// Failed handshakes so far, by ``TLSError/Code``.
    public var handshakeFailures: [TLSError.Code: Int] { self.failures.withLock { $0 } }

    func countHandshakeFailure(_ error: TLSError) {
        self.failures.withLock { $0[error.code, default: 0] += 1 }
    }

    /// A new connection's engine, retained behind the pointer the connection keeps (``RelayTLS/free(_:)``).
    func makeEngine() -> OpaquePointer? {
        guard let engine = try? self.provider.current.makeEngine() else { return nil }
        return OpaquePointer(Unmanaged.passRetained(engine).toOpaque())
    }
}

/// The calls of one connection's ``TLSEngine`` over pool buffers: ciphertext from a socket read is the
/// input window (consumed as OpenSSL takes it), records OpenSSL writes go into `records` (sent to the
/// socket before anything else is sealed, so records leave in sequence order), and plaintext is
/// decrypted straight into a pool buffer. No pointer outlives the call that lends it.
enum RelayTLS {
    /// Room reserved for records a handshake or read call writes (a flight, two session tickets, an alert).
    static let recordRoom = 4096

    /// The engine behind a connection's pointer, without a retain (the connection holds one).
    @inline(__always)
    static func with<Result>(_ pointer: OpaquePointer, _ body: (TLSEngine) -> Result) -> Result {
        Unmanaged<TLSEngine>.fromOpaque(UnsafeRawPointer(pointer))._withUnsafeGuaranteedRef(body)
    }

    static func free(_ pointer: OpaquePointer) { Unmanaged<TLSEngine>.fromOpaque(UnsafeRawPointer(pointer)).release() }

    /// The plaintext bytes a pool buffer of `bufferSize` bytes can hold so that their records still fit it.
    static func plaintextRoom(bufferSize: Int) -> Int {
        bufferSize - (TLSEngine.recordBound(plaintextBytes: bufferSize) - bufferSize)
    }

    /// Advances the handshake over `ciphertext`.
    static func handshake(_ engine: TLSEngine, _ ciphertext: inout ByteBuffer, _ records: inout ByteBuffer) -> TLSEngine.HandshakeResult {
        self.call(&ciphertext, &records) { engine.handshake(&$0) }
    }

    /// Writes a close_notify into `records` (the loop's end of a TLS client, and the test peers').
    static func shutdown(_ engine: TLSEngine, _ records: inout ByteBuffer) -> TLSEngine.ShutdownResult {
        var none = ByteBuffer()
        return self.call(&none, &records) { engine.shutdown(&$0) }
    }

    /// Decrypts into `plaintext`'s writable bytes.
    static func read(
        _ engine: TLSEngine,
        _ ciphertext: inout ByteBuffer,
        _ records: inout ByteBuffer,
        into plaintext: inout ByteBuffer
    ) -> TLSEngine.ReadResult {
        let result = self.call(&ciphertext, &records) { windows in
            plaintext.withUnsafeMutableWritableBytes { engine.read(into: $0, &windows) }
        }
        if case .plaintext(let count) = result { plaintext.moveWriterIndex(forwardBy: count) }
        return result
    }

    /// Seals all of `plaintext`'s readable bytes into `records`; `false` on failure.
    static func write(_ engine: TLSEngine, _ plaintext: ByteBuffer, into records: inout ByteBuffer) -> Bool {
        var sealed = false
        records.writeWithUnsafeMutableBytes(minimumWritableBytes: TLSEngine.recordBound(plaintextBytes: plaintext.readableBytes)) {
            var windows = TLSEngine.Windows(input: UnsafeRawBufferPointer(start: nil, count: 0), output: $0)
            if case .sealed = plaintext.withUnsafeReadableBytes({ engine.write($0, &windows) }) { sealed = true }
            return windows.produced
        }
        return sealed
    }

    /// One engine call with `ciphertext`'s readable bytes as its input and `records` taking its output.
    @inline(__always)
    private static func call<Result>(
        _ ciphertext: inout ByteBuffer,
        _ records: inout ByteBuffer,
        _ body: (inout TLSEngine.Windows) -> Result
    ) -> Result {
        var result: Result? = nil
        let before = ciphertext.readableBytes
        let left = ciphertext.withUnsafeReadableBytes { input in
            var left = 0
            records.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.recordRoom) { output in
                var windows = TLSEngine.Windows(input: input, output: output)
                result = body(&windows)
                left = windows.input.count
                return windows.produced
            }
            return left
        }
        ciphertext.moveReaderIndex(forwardBy: before - left)
        return result!
    }
}
