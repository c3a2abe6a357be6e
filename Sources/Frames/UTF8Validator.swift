/// A streaming UTF-8 validator for WebSocket text messages (RFC 6455 §8.1) and close reasons.
///
/// A text message may be split into frames, and a frame into reads, at any byte, even inside a scalar.
/// The validator carries at most 3 bytes of an unfinished scalar from one chunk to the next, and it
/// **fails fast**: ``feed(_:)`` returns `false` for the chunk that holds the first byte after which the
/// message can no longer be valid UTF-8 (a truncated scalar is only accepted at the very end of a chunk,
/// and only if some continuation could still complete it). Autobahn|Testsuite 6.x checks this.
///
/// Performance: the bulk of each chunk is validated by the standard library's `UTF8Span(validating:)`,
/// which does not allocate (about 50 GB/s on ASCII and 1.7 GB/s on mixed scripts on this project's
/// machine, ../shared/TOOLCHAIN.md §4; a hand-written DFA ran at 0.53 GB/s on mixed text).
public struct UTF8Validator: Sendable, Hashable {
    /// Bytes of an unfinished scalar, in order, in the low bytes of memory.
    @usableFromInline var carry: UInt32 = 0
    @usableFromInline var carryCount: Int = 0

    public init() {}

    /// Whether the bytes fed so far end on a scalar boundary: at the end of a message this must be true.
    @inlinable
    public var isComplete: Bool { self.carryCount == 0 }

    /// Forgets any unfinished scalar (for the next message).
    @inlinable
    public mutating func reset() {
        self.carry = 0
        self.carryCount = 0
    }

    /// Validates the next chunk. Returns `false` as soon as the stream can no longer be valid UTF-8.
    public mutating func feed(_ chunk: UnsafeRawBufferPointer) -> Bool {
        // ASCII, the common case for small text frames (JSON): eight bytes per step, and none of the
        // standard library's validation set-up, which costs more than the check for a 32-byte chunk.
        if self.carryCount == 0 && Self.isASCII(chunk) { return true }
        var start = 0
        if self.carryCount > 0 {
            let lead = withUnsafeBytes(of: self.carry) { $0[0] }
            let need = lead >= 0xF0 ? 4 : (lead >= 0xE0 ? 3 : 2)
            withUnsafeMutableBytes(of: &self.carry) { carry in
                while self.carryCount < need && start < chunk.count {
                    carry[self.carryCount] = chunk[start]
                    self.carryCount += 1
                    start += 1
                }
            }
            let count = self.carryCount
            let carried = withUnsafeBytes(of: self.carry) { Self.check(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            switch carried {
            case .valid:
                self.reset()
            case .truncated:
                // Still unfinished and the chunk is used up (otherwise `need` bytes would be here).
                return true
            case .invalid:
                return false
            }
        }
        let rest = UnsafeRawBufferPointer(rebasing: chunk[start...])
        switch Self.check(rest) {
        case .valid:
            return true
        case .truncated(let from):
            withUnsafeMutableBytes(of: &self.carry) { carry in
                for index in from..<rest.count {
                    carry[self.carryCount] = rest[index]
                    self.carryCount += 1
                }
            }
            return true
        case .invalid:
            return false
        }
    }

    /// Whether every byte is below 0x80. Stops at the first 32-byte block that is not, so mixed text
    /// pays little for the attempt.
    static func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let high: UInt64 = 0x8080_8080_8080_8080
        let count = bytes.count
        var index = 0
        while index + 32 <= count {
            let bits =
                base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                | base.loadUnaligned(fromByteOffset: index + 8, as: UInt64.self)
                | base.loadUnaligned(fromByteOffset: index + 16, as: UInt64.self)
                | base.loadUnaligned(fromByteOffset: index + 24, as: UInt64.self)
            if bits & high != 0 { return false }
            index += 32
        }
        var bits: UInt64 = 0
        while index + 8 <= count {
            bits |= base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            index += 8
        }
        while index < count {
            bits |= UInt64(bytes[index])
            index += 1
        }
        return bits & high == 0
    }

    /// Validates a complete byte sequence (a close reason, a whole message).
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if case .valid = Self.check(bytes) { return true }
        return false
    }

    @usableFromInline
    enum CheckResult {
        case valid
        /// Valid up to a scalar that starts at this offset and is cut off by the end of the input.
        case truncated(from: Int)
        case invalid
    }

    @usableFromInline
    static func check(_ bytes: UnsafeRawBufferPointer) -> CheckResult {
        let elements = bytes.assumingMemoryBound(to: UInt8.self)
        do throws(UTF8.ValidationError) {
            _ = try UTF8Span(validating: elements.span)
            return .valid
        } catch {
            if error.kind == .truncatedScalar && error.byteOffsets.upperBound == bytes.count {
                return .truncated(from: error.byteOffsets.lowerBound)
            }
            return .invalid
        }
    }
}
