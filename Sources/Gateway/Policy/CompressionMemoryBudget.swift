import Foundation
import NIOConcurrencyHelpers

/// The process-wide budget for zlib memory (`limits.compression_memory`, issue #10 item 7).
///
/// Every leg with permessage-deflate holds zlib state: an inflater for what the peer sends and, unless
/// the gateway sends that leg uncompressed (window 8) or verbatim, a deflater for what it sends. zlib's
/// own formulas (zconf.h, "Memory Usage"):
/// - inflate: `2^windowBits` bytes of window + about 7 KiB of state;
/// - deflate: `2^(windowBits+2) + 2^(memLevel+9)` bytes + about 6 KiB of state.
/// At window 15 and memLevel 8 a leg is 32 + 7 + 256 + 6 ≈ 301 KiB; websockets' 12/5 choice is about
/// 52 KiB. A connection reserves the worst case of what it negotiates when it negotiates (the streams
/// themselves are made on the first compressed message) and gives it back when it ends.
///
/// Once the budget is spent, permessage-deflate is declined on new connections: the connection still
/// opens, plain. One lock; two calls per connection that negotiates, never per frame.
final class CompressionMemoryBudget: Sendable {
    /// The budget in bytes.
    let limit: Int
    private let used = NIOLockedValueBox(0)

    init(limit: Int) {
        self.limit = limit
    }

    /// Bytes reserved now.
    var reserved: Int { self.used.withLockedValue { $0 } }

    /// The default budget: a quarter of the machine's physical memory (about 3,400 fully compressing
    /// legs per GiB at window 15, memLevel 8).
    static var defaultLimit: Int { Int(clamping: ProcessInfo.processInfo.physicalMemory / 4) }

    /// zlib memory of an inflater with `windowBits` (at least 9, as ``PerMessageInflater`` makes it).
    static func inflaterBytes(windowBits: Int) -> Int {
        (1 << max(windowBits, 9)) + 7 * 1024
    }

    /// zlib memory of a deflater; 0 for a window of 8 (the gateway then sends uncompressed).
    static func deflaterBytes(windowBits: Int, memoryLevel: Int) -> Int {
        guard windowBits >= 9 else { return 0 }
        return (1 << (windowBits + 2)) + (1 << (memoryLevel + 9)) + 6 * 1024
    }

    /// Reserves `bytes` if they fit; nil when the budget is spent. `force` reserves even past the budget:
    /// for an agreement already made with the upstream, which the gateway can no longer decline.
    func reserve(_ bytes: Int, force: Bool = false) -> Reservation? {
        let granted = self.used.withLockedValue { used -> Bool in
            guard force || used + bytes <= self.limit else { return false }
            used += bytes
            return true
        }
        return granted ? Reservation(budget: self, bytes: bytes) : nil
    }

    /// Whether `bytes` would fit now (no reservation is made).
    func fits(_ bytes: Int) -> Bool {
        self.used.withLockedValue { $0 + bytes <= self.limit }
    }

    fileprivate func give(_ bytes: Int) {
        self.used.withLockedValue { $0 -= bytes }
    }

    /// Bytes held for one connection; given back by ``release()`` or when it is freed.
    final class Reservation: Sendable {
        private let budget: CompressionMemoryBudget
        /// Whether the bytes were given back (once).
        private let released = NIOLockedValueBox(false)
        let bytes: Int

        fileprivate init(budget: CompressionMemoryBudget, bytes: Int) {
            self.budget = budget
            self.bytes = bytes
        }

        /// Gives the bytes back (once; later calls do nothing).
        func release() {
            let first = self.released.withLockedValue { released -> Bool in
                defer { released = true }
                return !released
            }
            if first { self.budget.give(self.bytes) }
        }

        deinit { self.release() }
    }
}
