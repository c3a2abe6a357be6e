import CRelayCore
import NIOCore
import TLSShim

/// A server-side TLS identity for the core's listener (issue #15 part 2, core22): an OpenSSL context with
/// TLSShim's defaults (see `CRelayTLS.h`). Made once, before the loops start; shared read-only by them.
public final class RelayTLSContext: @unchecked Sendable {
    let context: OpaquePointer

    /// A server context from a PEM certificate chain and its private key, with TLSShim's default ciphers
    /// (TLS 1.3: AES-128-GCM first, in server preference, as the gateway's listeners).
    public init(
        certificatePEM: String,
        privateKeyPEM: String,
        cipherList: String = TLSDefaults.cipherList,
        cipherSuites: String = TLSDefaults.cipherSuites
    ) throws(RelayCoreError) {
        var reason = [CChar](repeating: 0, count: 256)
        guard
            let context = crelay_tls_server_context(certificatePEM, privateKeyPEM, cipherList, cipherSuites, &reason, reason.count)
        else {
            throw RelayCoreError(
                call: "TLS context: " + String(decoding: reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
                errno: 0
            )
        }
        self.context = context
    }

    /// A client context that verifies nothing (tests drive a client engine against the server's).
    init(unverifiedClient: ()) {
        self.context = crelay_tls_client_context()!
    }

    deinit { crelay_tls_context_free(self.context) }

    /// A new connection's engine (freed with ``RelayTLS/free(_:)``).
    func makeEngine() -> OpaquePointer? { crelay_tls_new(self.context) }
}

/// The calls of one TLS connection's engine over pool buffers: ciphertext from a socket read is the input
/// window (consumed as OpenSSL takes it), records OpenSSL writes go into `records` (sent to the socket
/// before anything else is sealed, so records leave in sequence order), and plaintext is decrypted
/// straight into a pool buffer. No pointer outlives the call that sets it.
enum RelayTLS {
    /// What an engine call returned (`CRelayTLS.h`).
    static let wantRead = Int32(CRELAY_TLS_WANT_READ)
    static let closed = Int32(CRELAY_TLS_CLOSED)
    static let failed = Int32(CRELAY_TLS_FAILED)
    /// Room reserved for records a handshake or read call writes (a flight, two session tickets, an alert).
    static let recordRoom = 4096

    static func free(_ engine: OpaquePointer) { crelay_tls_free(engine) }

    /// The plaintext bytes a pool buffer of `bufferSize` bytes can hold so that their records still fit it.
    static func plaintextRoom(bufferSize: Int) -> Int {
        bufferSize - (crelay_tls_output_bound(bufferSize) - bufferSize)
    }

    /// Advances the handshake over `ciphertext`: 1 done, ``wantRead`` or ``failed``.
    static func handshake(_ engine: OpaquePointer, _ ciphertext: inout ByteBuffer, _ records: inout ByteBuffer) -> Int32 {
        self.call(engine, &ciphertext, &records) { crelay_tls_handshake($0) }
    }

    /// Writes a close_notify into `records` (the loop's end of a TLS client, and the test peers').
    static func shutdown(_ engine: OpaquePointer, _ ciphertext: inout ByteBuffer, _ records: inout ByteBuffer) -> Int32 {
        self.call(engine, &ciphertext, &records) { crelay_tls_shutdown($0) }
    }

    /// Decrypts into `plaintext`'s writable bytes: the count (> 0), ``wantRead``, ``closed`` or ``failed``.
    static func read(
        _ engine: OpaquePointer,
        _ ciphertext: inout ByteBuffer,
        _ records: inout ByteBuffer,
        into plaintext: inout ByteBuffer
    ) -> Int32 {
        let result = self.call(engine, &ciphertext, &records) { engine in
            plaintext.withUnsafeMutableWritableBytes {
                crelay_tls_read(engine, $0.baseAddress?.assumingMemoryBound(to: UInt8.self), $0.count)
            }
        }
        if result > 0 { plaintext.moveWriterIndex(forwardBy: Int(result)) }
        return result
    }

    /// Encrypts all of `plaintext`'s readable bytes into `records`; `false` on failure.
    static func write(_ engine: OpaquePointer, _ plaintext: ByteBuffer, into records: inout ByteBuffer) -> Bool {
        let count = plaintext.readableBytes
        var result: Int32 = 0
        records.writeWithUnsafeMutableBytes(minimumWritableBytes: crelay_tls_output_bound(count)) { output in
            crelay_tls_set_output(engine, output.baseAddress?.assumingMemoryBound(to: UInt8.self), output.count)
            result = plaintext.withUnsafeReadableBytes {
                crelay_tls_write(engine, $0.baseAddress?.assumingMemoryBound(to: UInt8.self), $0.count)
            }
            let used = crelay_tls_output_used(engine)
            crelay_tls_set_output(engine, nil, 0)
            return used
        }
        return result == Int32(count)
    }

    /// One engine call with `ciphertext`'s readable bytes as its input and `records` taking its output.
    @inline(__always)
    private static func call(
        _ engine: OpaquePointer,
        _ ciphertext: inout ByteBuffer,
        _ records: inout ByteBuffer,
        _ body: (OpaquePointer) -> Int32
    ) -> Int32 {
        var result: Int32 = 0
        let before = ciphertext.readableBytes
        let left = ciphertext.withUnsafeReadableBytes { input in
            crelay_tls_set_input(engine, input.baseAddress?.assumingMemoryBound(to: UInt8.self), input.count)
            records.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.recordRoom) { output in
                crelay_tls_set_output(engine, output.baseAddress?.assumingMemoryBound(to: UInt8.self), output.count)
                result = body(engine)
                let used = crelay_tls_output_used(engine)
                crelay_tls_set_output(engine, nil, 0)
                return used
            }
            let left = crelay_tls_input_left(engine)
            crelay_tls_set_input(engine, nil, 0)
            return left
        }
        ciphertext.moveReaderIndex(forwardBy: before - left)
        return result
    }
}
