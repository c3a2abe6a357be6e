import Frames
import NIOCore

/// libFuzzer entry point for the permessage-deflate codec (build recipe: README, "Fuzzing").
///
/// The first input byte chooses the window (8–15 for inflating, 9–15 for deflating), context takeover,
/// the read size the payload is fed in, and the output chunk size; the rest is the payload. For each input
/// it traps with `fatalError` (a bug found) when one of these fails:
/// 1. **Hostile input is bounded:** the rest, inflated as one compressed message with a 4 KiB message
///    limit, never traps and never yields more than the limit; a message that would be larger fails with
///    1009 (`messageTooLarge`), invalid DEFLATE data with 1007.
/// 2. **Chunking changes nothing:** fed whole and fed in reads of the chosen size, the verdict is the
///    same, and on success so are the bytes.
/// 3. **UTF-8:** inflated as text, a message that passes is valid UTF-8.
/// 4. **Round trip:** the rest, compressed by the writer in reads of the chosen size and inflated back by a
///    reader with the same parameters, twice on the same streams (context takeover), is the rest again.
///
/// The file holds only this function: a normal `swift build` links it as a program that does nothing.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMe(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let control = data[0]
    let payload = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let windowBits = 8 + Int(control & 0x07)
    let noContextTakeover = control & 0x08 != 0
    let split = 1 + Int(control >> 4) * 7
    let chunkSize = 16 + Int(control >> 5) * 61
    let limit = 4096

    /// Inflates `compressed` as one message fed in reads of `step` bytes.
    func inflate(_ compressed: [UInt8], step: Int, text: Bool, inflater: PerMessageInflater) -> Result<[UInt8], FramesError> {
        var reader = PerMessageDeflateReader(inflater: inflater, chunkSize: chunkSize)
        var out: [UInt8] = []
        let collect: (ByteBuffer) -> Void = { chunk in
            guard chunk.readableBytes <= chunkSize else { fatalError("a chunk of \(chunk.readableBytes) > \(chunkSize)") }
            out += chunk.readableBytesView
        }
        return Result { () throws(FramesError) in
            try reader.begin(validatingUTF8: text)
            var start = 0
            while start < compressed.count {
                let end = min(compressed.count, start + step)
                try reader.append(ByteBuffer(bytes: compressed[start..<end]), collect)
                start = end
            }
            if let last = try reader.finish(collect) { out += last.readableBytesView }
            return out
        }
    }

    // 1–3: hostile input.
    func fresh() -> PerMessageInflater { PerMessageInflater(windowBits: windowBits, noContextTakeover: noContextTakeover, maxMessageSize: limit) }
    let whole = inflate(payload, step: max(payload.count, 1), text: false, inflater: fresh())
    let chunked = inflate(payload, step: split, text: false, inflater: fresh())
    switch (whole, chunked) {
    case (.success(let a), .success(let b)):
        guard a == b else { fatalError("whole and chunked inflation differ: \(a.count) vs \(b.count) bytes") }
        guard a.count <= limit else { fatalError("inflated \(a.count) bytes past the \(limit)-byte limit") }
    case (.failure(let a), .failure(let b)):
        for error in [a, b] where error.code != .messageTooLarge && error.code != .invalidCompressedData {
            fatalError("unexpected error inflating hostile input: \(error)")
        }
    default:
        fatalError("whole and chunked inflation disagree: \(whole) vs \(chunked)")
    }
    if case .success(let text) = inflate(payload, step: split, text: true, inflater: fresh()) {
        guard String(validating: text, as: UTF8.self) != nil else { fatalError("invalid UTF-8 passed as text") }
    }

    // 4: round trip, twice on the same streams.
    let deflateBits = max(windowBits, 9)
    var writer = PerMessageDeflateWriter(
        deflater: PerMessageDeflater(windowBits: deflateBits, noContextTakeover: noContextTakeover),
        chunkSize: chunkSize
    )
    let inflater = PerMessageInflater(windowBits: deflateBits, noContextTakeover: noContextTakeover, maxMessageSize: max(payload.count, 1))
    for round in 0..<2 {
        var compressed: [UInt8] = []
        let collect: (ByteBuffer) -> Void = { compressed += $0.readableBytesView }
        do {
            var start = 0
            while start < payload.count {
                let end = min(payload.count, start + split)
                try writer.append(ByteBuffer(bytes: payload[start..<end]), collect)
                start = end
            }
            compressed += try writer.finish(collect).readableBytesView
        } catch {
            fatalError("deflating failed: \(error)")
        }
        guard case .success(let back) = inflate(compressed, step: split, text: false, inflater: inflater), back == payload else {
            fatalError("round \(round) did not round-trip \(payload.count) bytes at window \(deflateBits)")
        }
    }
    return 0
}
