// The RelayCore prototype's frame work on one connection pair, without sockets: what
// `RelayLoop.relayFromClient` / `relayFromUpstream` (Sources/RelayCore/RelayLoop+Relay.swift) do per read,
// with the loop's pool (16 KiB buffers), its per-loop key generator (4 KiB per `getrandom(2)`) and its
// encoder toward the upstream. The socket's read is a copy of the next 16 KiB of wire bytes into a pool
// buffer; its write takes every byte, so the buffer goes back to the pool at once.

import Frames
import NIOCore

/// `count` text frames of 32 bytes (stream-32's message), masked as a client sends them or plain as an
/// upstream sends them, as contiguous wire bytes (kept for the whole run).
func wire(count: Int, role: FrameEncoder.Role) -> UnsafeRawBufferPointer {
    var out = ByteBufferAllocator().buffer(capacity: count * 40)
    var encoder = FrameEncoder(role: role)
    let body = ByteBuffer(string: String(repeating: "m", count: 32))
    for _ in 0..<count {
        encoder.writeFrame(opcode: .text, payload: body, to: &out)
    }
    let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: out.readableBytes, alignment: 64)
    out.withUnsafeReadableBytes { bytes.copyMemory(from: $0) }
    return UnsafeRawBufferPointer(bytes)
}

/// One relayed pair's two flows on a loop's pool, keys and encoder.
final class CoreRelay {
    var pool = BufferPool()
    var fromClient: Flow
    var fromUpstream: Flow
    let keys = MaskingKeyGenerator(batchBytes: 4096)
    var towardUpstream: FrameEncoder
    let batching: Bool

    /// `batching: false`: every frame through the per-event calls (the prototype's `batchedParsing` off).
    init(batching: Bool = true) {
        var limits = FrameParser.Configuration()
        limits.maxFrameSize = 16 << 20
        limits.maxMessageSize = 16 << 20
        limits.maxFragmentsPerMessage = 100_000
        self.fromClient = Flow(parser: FrameParser(role: .server, configuration: limits))
        self.fromUpstream = Flow(parser: FrameParser(role: .client, configuration: limits))
        self.towardUpstream = FrameEncoder(role: .client, keys: self.keys)
        self.batching = batching
    }

    /// The next read's bytes of `wire` from `offset`, in a pool buffer (as `read(2)` into it).
    private func read(_ wire: UnsafeRawBufferPointer, _ offset: inout Int) -> ByteBuffer {
        var input = self.pool.take()
        let count = min(self.pool.bufferSize, wire.count - offset)
        input.writeBytes(UnsafeRawBufferPointer(rebasing: wire[offset..<(offset + count)]))
        offset += count
        return input
    }

    /// Client → upstream: every read parsed, copied and remasked into a second pool buffer, which the
    /// upstream's socket takes whole. Returns the bytes written.
    func relayFromClient(_ wire: UnsafeRawBufferPointer) -> Int {
        var offset = 0
        var written = 0
        while offset < wire.count {
            var input = self.read(wire, &offset)
            var output = self.pool.take()
            let step = RelayFraming.towardUpstream(
                &self.fromClient,
                &input,
                into: &output,
                keys: self.keys,
                encoder: &self.towardUpstream,
                batching: self.batching
            )
            precondition(step.failure == nil && !step.closed)
            self.pool.give(input)
            written += output.readableBytes
            self.pool.give(output)
        }
        return written
    }

    /// Upstream → client: every read parsed in place and forwarded from the same buffer. Returns the
    /// bytes written.
    func relayFromUpstream(_ wire: UnsafeRawBufferPointer) -> Int {
        var offset = 0
        var written = 0
        while offset < wire.count {
            var input = self.read(wire, &offset)
            let step = RelayFraming.towardClient(&self.fromUpstream, &input, batching: self.batching)
            precondition(step.failure == nil && !step.closed)
            written += input.readableBytes
            self.pool.give(input)
        }
        return written
    }
}
