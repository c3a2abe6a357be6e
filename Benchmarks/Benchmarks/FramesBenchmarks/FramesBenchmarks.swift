// Benchmarks for the `Frames` module (issue: "benchmark target kept out of `swift test`").
// Run: cd Benchmarks && swift package --disable-sandbox benchmark   (see ../BENCHMARKS.md)
//
// Every benchmark prepares its input outside the measured region. Each sample is one closure call:
// inputs are reset before `benchmark.startMeasurement()`, so wall clock and malloc counts cover only
// the work named by the benchmark. Figures are per sample; BENCHMARKS.md converts them to GB/s or
// ns per frame.

import Benchmark
import Frames
import NIOCore

// MARK: - Inputs

let kib64 = 64 * 1024
let mib1 = 1024 * 1024
let key = MaskingKey(0x37, 0xFA, 0x21, 0x3D)
let otherKey = MaskingKey(0x11, 0x22, 0x33, 0x44)

/// A page-aligned scratch area that lives for the whole run.
func scratch(_ count: Int, fill: UInt8 = 0x61) -> UnsafeMutableRawBufferPointer {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 4096)
    buffer.initializeMemory(as: UInt8.self, repeating: fill)
    return buffer
}

/// 1 MiB of ASCII text.
func asciiText(_ count: Int) -> [UInt8] {
    let line = Array("The quick brown fox jumps over the lazy dog 0123456789.\n".utf8)
    return (0..<count).map { line[$0 % line.count] }
}

/// About `count` bytes of Latin-1 supplement, Cyrillic, CJK and emoji text with ASCII punctuation
/// and spaces: about 67% of the bytes are non-ASCII. Ends on a scalar boundary.
func mixedText(_ count: Int) -> [UInt8] {
    let seed = Array("Größe café naïve déjà vu, the fiancée said — Привет, мир! Как дела? 你好世界，今天天气很好。東京 😀🚀🎉 ok. ".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(count + seed.count)
    while out.count + seed.count <= count { out += seed }
    // Fill the rest with ASCII so the total is exactly `count`.
    while out.count < count { out.append(0x20) }
    return out
}

/// `count` masked client text frames of `payload` bytes each (what a server reads).
func clientFrames(count: Int, payload: Int, opcode: Opcode = .text) -> ByteBuffer {
    var out = ByteBufferAllocator().buffer(capacity: count * (payload + 14))
    var encoder = FrameEncoder(role: .client)
    let body = ByteBuffer(bytes: asciiText(payload))
    for _ in 0..<count {
        encoder.writeFrame(opcode: opcode, payload: body, to: &out)
    }
    return out
}

/// Copies `pristine` into `target` without allocating (target has enough capacity and is unique).
@inline(__always)
func reset(_ target: inout ByteBuffer, from pristine: UnsafeRawBufferPointer) {
    target.clear()
    target.writeBytes(pristine)
}

// MARK: - Benchmarks

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .cpuTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 10,
        maxDuration: .seconds(2),
        maxIterations: 20_000,
        // `thresholds check` (Thresholds/FramesBenchmarks.*.p90.json): an absolute slack of 4 mallocs per
        // sample over the recorded p90, for the harness's own 16-18 (BENCHMARKS.md, "thresh23").
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 4])]
    )

    // --- permessage-deflate: DeflateBenchmarks.swift. -------------------------------------------------
    deflateBenchmarks()

    // --- Masking: MaskingKey.apply(to:offset:) in place. ------------------------------------------
    // 64 KiB: 16 passes per sample (1 MiB per sample) so the clock reads are < 1% of a sample.
    for (label, size, passes) in [("64 KiB", kib64, 16), ("1 MiB", mib1, 1)] {
        for offset in [0, 3] {
            let bytes = scratch(size)
            Benchmark("mask \(label) offset \(offset) (\(passes) pass\(passes == 1 ? "" : "es")/sample)") { benchmark in
                for _ in 0..<passes {
                    key.apply(to: bytes, offset: offset)
                }
                blackHole(bytes.baseAddress)
            }
        }
    }

    // --- UTF-8 validation: UTF8Validator.feed. -----------------------------------------------------
    let ascii = asciiText(mib1)
    let mixed = mixedText(mib1)
    for (label, text) in [("ASCII", ascii), ("mixed", mixed)] {
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: text.count, alignment: 4096)
        bytes.copyBytes(from: text)
        let raw = UnsafeRawBufferPointer(bytes)
        Benchmark("validate UTF-8 1 MiB \(label), one feed") { benchmark in
            var validator = UTF8Validator()
            let ok = validator.feed(raw)
            precondition(ok && validator.isComplete)
            blackHole(validator)
        }
        Benchmark("validate UTF-8 1 MiB \(label), 4 KiB feeds") { benchmark in
            var validator = UTF8Validator()
            var start = 0
            while start < raw.count {
                let end = min(start + 4096, raw.count)
                let ok = validator.feed(UnsafeRawBufferPointer(rebasing: raw[start..<end]))
                precondition(ok)
                start = end
            }
            precondition(validator.isComplete)
            blackHole(validator)
        }
        Benchmark("validate UTF-8 1 MiB \(label), isValid") { benchmark in
            blackHole(UTF8Validator.isValid(raw))
        }
    }

    // --- Parsing 1,000 small frames: FrameParser(role: .server). -------------------------------------
    // 1,000 masked client text frames with 32-byte payloads (38 bytes each on the wire) in one buffer.
    // The working buffer is refilled from a pristine copy before startMeasurement(): no allocation.
    let frameCount = 1000
    let smallFrames = clientFrames(count: frameCount, payload: 32)
    let smallPristine = UnsafeMutableRawBufferPointer.allocate(byteCount: smallFrames.readableBytes, alignment: 64)
    smallFrames.withUnsafeReadableBytes { smallPristine.copyMemory(from: $0) }

    // The third variant turns UTF-8 validation off, to show what the per-frame validator call costs.
    for (remask, validates) in [(false, true), (true, true), (false, false)] {
        var work = ByteBufferAllocator().buffer(capacity: smallPristine.count)
        let name =
            remask
            ? "parse 1000 small frames + remaskPayload (relay)"
            : (validates ? "parse 1000 small frames" : "parse 1000 small frames, validatesUTF8 off")
        let configuration = FrameParser.Configuration { $0.validatesUTF8 = validates }
        Benchmark(name) { benchmark in
            reset(&work, from: UnsafeRawBufferPointer(smallPristine))
            benchmark.startMeasurement()
            var parser = FrameParser(role: .server, configuration: configuration)
            var frames = 0
            do {
                while let event = try parser.next(&work) {
                    switch event {
                    case .header:
                        if remask { parser.remaskPayload(with: otherKey) }
                    case .frameEnd:
                        frames += 1
                    default:
                        break
                    }
                    blackHole(event)
                }
            } catch {
                fatalError("\(error)")
            }
            benchmark.stopMeasurement()
            precondition(frames == frameCount)
        }
    }

    // --- Encoding 1,000 small frames: FrameEncoder(role: .client).writeFrame into a reused buffer. ---
    do {
        var encoder = FrameEncoder(role: .client)
        var out = ByteBufferAllocator().buffer(capacity: frameCount * (32 + 14))
        let payload = ByteBuffer(bytes: asciiText(32))
        Benchmark("encode 1000 small frames (client, 32 B text)") { benchmark in
            out.clear()
            benchmark.startMeasurement()
            for _ in 0..<frameCount {
                encoder.writeFrame(opcode: .text, payload: payload, to: &out)
            }
            benchmark.stopMeasurement()
            precondition(out.readableBytes == frameCount * 38)
            blackHole(out.readableBytes)
        }
    }

    // --- Parsing a 1 MiB binary frame delivered in 64 KiB reads. --------------------------------------
    // The wire bytes (14-byte header + 1 MiB masked payload) are cut into 64 KiB reads, each its own
    // preallocated ByteBuffer (as a channel read would be), refilled before startMeasurement().
    let bigFrame = clientFrames(count: 1, payload: mib1, opcode: .binary)
    let bigPristine = UnsafeMutableRawBufferPointer.allocate(byteCount: bigFrame.readableBytes, alignment: 64)
    bigFrame.withUnsafeReadableBytes { bigPristine.copyMemory(from: $0) }
    let readSize = kib64
    let readCount = (bigPristine.count + readSize - 1) / readSize
    for remask in [false, true] {
        var reads = (0..<readCount).map { _ in ByteBufferAllocator().buffer(capacity: readSize) }
        let name =
            remask
            ? "parse 1 MiB binary frame in 64 KiB reads + remaskPayload (relay)"
            : "parse 1 MiB binary frame in 64 KiB reads"
        Benchmark(name) { benchmark in
            for index in 0..<readCount {
                let start = index * readSize
                let end = min(start + readSize, bigPristine.count)
                reset(&reads[index], from: UnsafeRawBufferPointer(rebasing: bigPristine[start..<end]))
            }
            benchmark.startMeasurement()
            var parser = FrameParser(role: .server)
            var payloadBytes = 0
            do {
                for index in 0..<readCount {
                    while let event = try parser.next(&reads[index]) {
                        switch event {
                        case .header:
                            if remask { parser.remaskPayload(with: otherKey) }
                        case .payload(let chunk):
                            payloadBytes += chunk.readableBytes
                        default:
                            break
                        }
                        blackHole(event)
                    }
                }
                // The frame ends when the parser sees its last byte; one more call yields .frameEnd.
                var empty = ByteBuffer()
                while let event = try parser.next(&empty) { blackHole(event) }
            } catch {
                fatalError("\(error)")
            }
            benchmark.stopMeasurement()
            precondition(payloadBytes == mib1)
        }
    }
}
