internal import COpenSSL
import NIOCore

/// The BIO between an `SSL*` and the channel, over the channel's own `ByteBuffer`s.
///
/// - Received ciphertext is queued as the buffers it arrived in; OpenSSL's read callback copies from
///   them straight into its record buffer (as a socket BIO's `read(2)` would).
/// - Ciphertext OpenSSL writes is appended to one outbound buffer, which the handler takes whole and
///   writes to the channel (``takeOutbound()``), without copying it again.
///
/// The memory BIOs this replaces (`BIO_s_mem`) cost one more copy each way (into and out of their
/// `BUF_MEM`), and each kept the largest buffer it ever needed for the life of the connection: a
/// connection that once moved a 64 KiB message held over 128 KiB of BIO memory while idle. Here an idle
/// connection holds nothing: OpenSSL reads whatever is queued up to the end of the record it needs, so
/// when it stops for more input the queue is empty and the channel's read buffers are released (a
/// partial record waits in OpenSSL's own record buffer, as it would over a socket).
///
/// One object per `SSL*`, used as both its read and its write BIO; OpenSSL owns the `BIO` (freed by
/// `SSL_free`), the connection owns this object, and the `BIO` points back at it unretained. Confined to
/// the connection's event loop; not Sendable.
///
/// A ``TLSEngine``'s BIO is *windowed* instead: OpenSSL reads ciphertext from, and writes records into,
/// memory the engine's caller lends for one call (``inputWindow``, ``outputWindow``); the queues stay
/// empty. It has a `BIO_METHOD` of its own (`windowBIOMethod`), so the handler's callbacks are unchanged.
final class ByteBufferBIO {
    /// The `BIO` handed to `SSL_set_bio`.
    let bio: OpaquePointer
    /// Received ciphertext OpenSSL has not read yet, oldest first; no buffer in it is empty.
    private var inbound = CircularBuffer<ByteBuffer>(initialCapacity: 4)
    /// Bytes readable in ``inbound``.
    private(set) var inboundBytes = 0
    /// Ciphertext OpenSSL wrote that the handler has not taken yet.
    private var outbound: ByteBuffer?
    /// Capacity for the next outbound buffer (``reserveOutbound(_:)``).
    private var outboundReservation = 0
    private static let allocator = ByteBufferAllocator()
    /// Engine mode: ciphertext and records in caller memory lent for one call (see the type's doc).
    let windowed: Bool
    /// Engine mode: ciphertext OpenSSL has not read yet, where the caller has it.
    var inputWindow = UnsafeRawBufferPointer(start: nil, count: 0)
    /// Engine mode: where records go; ``outputUsed`` bytes at its start are written.
    var outputWindow = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    var outputUsed = 0

    init(windowed: Bool = false) {
        guard let bio = BIO_new(windowed ? windowBIOMethod : byteBufferBIOMethod) else {
            fatalError("BIO_new failed: out of memory")
        }
        self.bio = bio
        self.windowed = windowed
        BIO_set_data(bio, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Stops the `BIO` from reaching this object (before `SSL_free`, which frees the `BIO`).
    func detach() {
        BIO_set_data(self.bio, nil)
    }

    /// The object behind a `BIO` of this type, inside OpenSSL's callbacks.
    fileprivate static func from(_ bio: OpaquePointer) -> ByteBufferBIO? {
        BIO_get_data(bio).map { Unmanaged<ByteBufferBIO>.fromOpaque($0).takeUnretainedValue() }
    }

    // MARK: Inbound

    /// Queues received ciphertext (no copy: the buffer is kept until OpenSSL has read it).
    func enqueue(_ buffer: ByteBuffer) {
        guard buffer.readableBytes > 0 else { return }
        self.inboundBytes += buffer.readableBytes
        self.inbound.append(buffer)
    }

    /// Copies up to `target.count` queued bytes into `target`; 0 when nothing is queued.
    fileprivate func read(into target: UnsafeMutableRawBufferPointer) -> Int {
        var copied = 0
        while copied < target.count, !self.inbound.isEmpty {
            let index = self.inbound.startIndex
            let count = min(self.inbound[index].readableBytes, target.count - copied)
            self.inbound[index].withUnsafeReadableBytes { source in
                UnsafeMutableRawBufferPointer(rebasing: target[copied..<(copied + count)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[..<count]))
            }
            self.inbound[index].moveReaderIndex(forwardBy: count)
            if self.inbound[index].readableBytes == 0 { _ = self.inbound.removeFirst() }
            copied += count
        }
        self.inboundBytes -= copied
        return copied
    }

    /// What the queued ciphertext keeps allocated: the whole storage of every buffer in the queue.
    var inboundStorageBytes: Int {
        self.inbound.reduce(0) { $0 + $1.storageCapacity }
    }

    // MARK: Windows (engine mode)

    /// Copies up to `target.count` bytes of the input window into `target` and moves the window past them.
    fileprivate func readWindow(into target: UnsafeMutableRawBufferPointer) -> Int {
        let count = min(target.count, self.inputWindow.count)
        guard count > 0, let source = self.inputWindow.baseAddress, let destination = target.baseAddress else { return 0 }
        destination.copyMemory(from: source, byteCount: count)
        self.inputWindow = UnsafeRawBufferPointer(rebasing: self.inputWindow[count...])
        return count
    }

    /// Appends `bytes` (one record, or a part OpenSSL writes whole) to the output window; `false` when it
    /// does not fit: nothing is written, and OpenSSL keeps the record for a call with more room.
    fileprivate func writeWindow(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count <= self.outputWindow.count - self.outputUsed, let base = self.outputWindow.baseAddress,
            let source = bytes.baseAddress
        else { return false }
        (base + self.outputUsed).copyMemory(from: source, byteCount: bytes.count)
        self.outputUsed += bytes.count
        return true
    }

    // MARK: Outbound

    /// Makes room for about `bytes` of ciphertext in the outbound buffer, so that the records of one
    /// flush are appended without regrowing it.
    func reserveOutbound(_ bytes: Int) {
        if self.outbound == nil {
            self.outboundReservation = max(self.outboundReservation, bytes)
        } else {
            self.outbound!.reserveCapacity(minimumWritableBytes: bytes)
        }
    }

    fileprivate func append(_ bytes: UnsafeRawBufferPointer) {
        if self.outbound == nil {
            self.outbound = Self.allocator.buffer(capacity: max(bytes.count, self.outboundReservation))
            self.outboundReservation = 0
        }
        self.outbound!.writeBytes(bytes)
    }

    /// Ciphertext waiting to be sent.
    var outboundBytes: Int { self.outbound?.readableBytes ?? 0 }

    /// Hands over the ciphertext written so far (nil: none).
    func takeOutbound() -> ByteBuffer? {
        guard let buffer = self.outbound else { return nil }
        self.outbound = nil
        return buffer.readableBytes > 0 ? buffer : nil
    }
}

/// The `BIO_METHOD` of ``ByteBufferBIO``, made once per process. Never changed after it is made, and
/// OpenSSL only reads it, so every event loop may share it.
nonisolated(unsafe) private let byteBufferBIOMethod: OpaquePointer = {
    let type = BIO_get_new_index()
    guard type != -1, let method = BIO_meth_new(type | BIO_TYPE_SOURCE_SINK, "wsgate ByteBuffer") else {
        fatalError("BIO_meth_new failed")
    }
    guard BIO_meth_set_write(method, byteBufferBIOWrite) == 1,
        BIO_meth_set_read(method, byteBufferBIORead) == 1,
        BIO_meth_set_ctrl(method, byteBufferBIOControl) == 1,
        BIO_meth_set_create(method, byteBufferBIOCreate) == 1
    else { fatalError("BIO_meth_set_* failed") }
    return method
}()

private func byteBufferBIOCreate(_ bio: OpaquePointer?) -> Int32 {
    guard let bio else { return 0 }
    BIO_set_init(bio, 1)
    return 1
}

/// Like a non-blocking socket: the bytes queued, or -1 with "retry read" when there are none (never
/// EOF: the end of input is the channel's event, not the BIO's).
private func byteBufferBIORead(_ bio: OpaquePointer?, _ data: UnsafeMutablePointer<CChar>?, _ length: Int32) -> Int32 {
    guard let bio, let data, length > 0 else { return 0 }
    copenssl_BIO_clear_retry_flags(bio)
    guard let state = ByteBufferBIO.from(bio) else { return -1 }
    let copied = state.read(into: UnsafeMutableRawBufferPointer(start: data, count: Int(length)))
    guard copied > 0 else {
        copenssl_BIO_set_retry_read(bio)
        return -1
    }
    return Int32(copied)
}

/// Takes every byte (the outbound buffer grows as needed, like a memory BIO's).
private func byteBufferBIOWrite(_ bio: OpaquePointer?, _ data: UnsafePointer<CChar>?, _ length: Int32) -> Int32 {
    guard let bio, let data, length > 0 else { return 0 }
    copenssl_BIO_clear_retry_flags(bio)
    guard let state = ByteBufferBIO.from(bio) else { return -1 }
    state.append(UnsafeRawBufferPointer(start: data, count: Int(length)))
    return length
}

/// The controls OpenSSL uses on a source/sink BIO, answered as `BIO_s_mem` answers them.
private func byteBufferBIOControl(
    _ bio: OpaquePointer?,
    _ command: Int32,
    _ argument: Int,
    _ pointer: UnsafeMutableRawPointer?
) -> Int {
    guard let bio else { return 0 }
    switch command {
    case BIO_CTRL_FLUSH, BIO_CTRL_DUP:
        return 1
    case BIO_CTRL_PENDING:
        return ByteBufferBIO.from(bio)?.inboundBytes ?? 0
    case BIO_CTRL_WPENDING:
        return ByteBufferBIO.from(bio)?.outboundBytes ?? 0
    default:
        return 0
    }
}

// MARK: - Windowed BIO (TLSEngine)

/// The `BIO_METHOD` of windowed ``ByteBufferBIO``s (``TLSEngine``): the same object, its windows instead of
/// its queues. Made once per process, read-only afterwards.
nonisolated(unsafe) private let windowBIOMethod: OpaquePointer = {
    let type = BIO_get_new_index()
    guard type != -1, let method = BIO_meth_new(type | BIO_TYPE_SOURCE_SINK, "wsgate memory window") else {
        fatalError("BIO_meth_new failed")
    }
    guard BIO_meth_set_write(method, windowBIOWrite) == 1,
        BIO_meth_set_read(method, windowBIORead) == 1,
        BIO_meth_set_ctrl(method, windowBIOControl) == 1,
        BIO_meth_set_create(method, byteBufferBIOCreate) == 1
    else { fatalError("BIO_meth_set_* failed") }
    return method
}()

/// The BIO's object for the length of `body`, without a retain (the engine owns it and outlives the call).
@inline(__always)
private func withWindowState<Result>(_ bio: OpaquePointer, _ body: (ByteBufferBIO) -> Result) -> Result? {
    guard let pointer = BIO_get_data(bio) else { return nil }
    return Unmanaged<ByteBufferBIO>.fromOpaque(pointer)._withUnsafeGuaranteedRef(body)
}

/// The input window's bytes, or -1 with "retry read" when it is empty (the caller brings more).
private func windowBIORead(_ bio: OpaquePointer?, _ data: UnsafeMutablePointer<CChar>?, _ length: Int32) -> Int32 {
    guard let bio, let data, length > 0 else { return 0 }
    copenssl_BIO_clear_retry_flags(bio)
    let copied = withWindowState(bio) { $0.readWindow(into: UnsafeMutableRawBufferPointer(start: data, count: Int(length))) } ?? 0
    guard copied > 0 else {
        copenssl_BIO_set_retry_read(bio)
        return -1
    }
    return Int32(copied)
}

/// All of the bytes into the output window or, when they do not fit, none, with "retry write": OpenSSL
/// keeps the record and writes it again on the next call.
private func windowBIOWrite(_ bio: OpaquePointer?, _ data: UnsafePointer<CChar>?, _ length: Int32) -> Int32 {
    guard let bio, let data, length > 0 else { return 0 }
    copenssl_BIO_clear_retry_flags(bio)
    guard withWindowState(bio, { $0.writeWindow(UnsafeRawBufferPointer(start: data, count: Int(length))) }) == true else {
        copenssl_BIO_set_retry_write(bio)
        return -1
    }
    return length
}

private func windowBIOControl(_ bio: OpaquePointer?, _ command: Int32, _ argument: Int, _ pointer: UnsafeMutableRawPointer?) -> Int {
    guard let bio else { return 0 }
    switch command {
    case BIO_CTRL_FLUSH, BIO_CTRL_DUP:
        return 1
    case BIO_CTRL_PENDING:
        return withWindowState(bio) { $0.inputWindow.count } ?? 0
    default:
        return 0
    }
}
