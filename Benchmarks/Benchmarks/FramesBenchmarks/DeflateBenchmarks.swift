// permessage-deflate codec benchmarks (PerMessageDeflate+Codec.swift, PerMessageDeflate+Stream.swift).
// MB/s in BENCHMARKS.md are bytes of the *plain* message per second of one core (10^6 bytes/s).
//
// - deflate: PerMessageDeflateWriter over a message fed in 64 KiB chunks, with context takeover (the
//   common case; the window carries over between samples as it does between messages), level 1 and 6.
// - inflate (transcoding): PerMessageDeflateReader handing out 32 KiB chunks, UTF-8 validated; what the
//   relay does when the legs differ and the message is forwarded uncompressed.
// - inflate (verbatim): the discarding reader (one reused buffer), UTF-8 validated: the extra work of
//   the verbatim path, where the compressed bytes are forwarded as they came.
// - transcode deflate→deflate: inflate then deflate (level 1): what the relay does when both legs
//   compress with parameters that do not allow verbatim forwarding.
// Compressed inputs are made with no context takeover so each sample inflates the same bytes with a
// fresh (reset, not re-created) stream.

import Benchmark
import Frames
import NIOCore

/// About `count` bytes of JSON-like text (the workload of TOOLCHAIN.md §3): records with counters,
/// names and a little non-ASCII, so the compressor has both matches and literals.
func jsonText(_ count: Int) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(count + 128)
    var index = 0
    while out.count < count {
        out += Array(
            "{\"id\":\(index),\"user\":\"user-\(index % 97)\",\"event\":\"message\",\"text\":\"héllo wörld \(index * 7919 % 10007)\",\"ok\":\(index % 3 == 0)},"
                .utf8
        )
        index += 1
    }
    return Array(out.prefix(count))
}

/// `message` compressed as one message with a fresh context (tail stripped).
func compressedMessage(_ message: [UInt8]) -> [UInt8] {
    var writer = PerMessageDeflateWriter(deflater: PerMessageDeflater(windowBits: 15, noContextTakeover: true))
    var out: [UInt8] = []
    try! writer.append(ByteBuffer(bytes: message)) { out += $0.readableBytesView }
    out += try! writer.finish { out += $0.readableBytesView }.readableBytesView
    return out
}

func deflateBenchmarks() {
    let sizes: [(label: String, size: Int, count: Int)] = [("1 MiB", 1 << 20, 1), ("256 × 4 KiB", 4096, 256)]
    for (label, size, count) in sizes {
        let plain = jsonText(size)
        let plainChunks = stride(from: 0, to: plain.count, by: 64 * 1024).map {
            ByteBuffer(bytes: plain[$0..<min(plain.count, $0 + 64 * 1024)])
        }
        let compressed = ByteBuffer(bytes: compressedMessage(plain))

        for level in [1, 6] {
            var writer = PerMessageDeflateWriter(deflater: PerMessageDeflater(windowBits: 15, noContextTakeover: false, level: level))
            Benchmark("deflate \(label) JSON level \(level)") { benchmark in
                for _ in 0..<count {
                    for chunk in plainChunks {
                        try writer.append(chunk) { blackHole($0) }
                    }
                    blackHole(try writer.finish { blackHole($0) })
                }
            }
        }

        var transcodingReader = PerMessageDeflateReader(
            inflater: PerMessageInflater(windowBits: 15, noContextTakeover: true, maxMessageSize: 64 << 20)
        )
        Benchmark("inflate \(label) JSON, chunks handed out (transcoding)") { benchmark in
            for _ in 0..<count {
                try transcodingReader.begin(validatingUTF8: true)
                try transcodingReader.append(compressed) { blackHole($0) }
                blackHole(try transcodingReader.finish { blackHole($0) })
            }
        }

        var verbatimReader = PerMessageDeflateReader(
            inflater: PerMessageInflater(windowBits: 15, noContextTakeover: true, maxMessageSize: 64 << 20),
            discarding: true
        )
        Benchmark("inflate \(label) JSON, validate only (verbatim)") { benchmark in
            for _ in 0..<count {
                try verbatimReader.begin(validatingUTF8: true)
                try verbatimReader.append(compressed) { blackHole($0) }
                blackHole(try verbatimReader.finish { blackHole($0) })
            }
        }

        var chainReader = PerMessageDeflateReader(
            inflater: PerMessageInflater(windowBits: 15, noContextTakeover: true, maxMessageSize: 64 << 20)
        )
        var chainWriter = PerMessageDeflateWriter(deflater: PerMessageDeflater(windowBits: 15, noContextTakeover: false, level: 1))
        Benchmark("transcode \(label) JSON deflate→deflate level 1") { benchmark in
            for _ in 0..<count {
                try chainReader.begin(validatingUTF8: true)
                try chainReader.append(compressed) { chunk in try! chainWriter.append(chunk) { blackHole($0) } }
                if let last = try chainReader.finish({ chunk in try! chainWriter.append(chunk) { blackHole($0) } }) {
                    try chainWriter.append(last) { blackHole($0) }
                }
                blackHole(try chainWriter.finish { blackHole($0) })
            }
        }
    }
}
