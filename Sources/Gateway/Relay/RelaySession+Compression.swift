import Frames
import NIOCore

// MARK: - permessage-deflate (issue #5 A; the transcoder is in RelayCompression.swift)

extension RelaySession {
    /// Sets up what `compression` agreed: RSV1 is accepted only from a leg that negotiated, and each
    /// direction where a leg compresses gets a ``MessageTranscoder`` (the read loop then copies
    /// that direction's payloads and hands them to it).
    func compressionAttached(_ compression: RelayCompression, limits: GatewayConfiguration.Limits) {
        if compression.client != nil { self.clientParser.configuration.allowedReservedBits = .rsv1 }
        if compression.upstream != nil { self.upstreamParser.configuration.allowedReservedBits = .rsv1 }
        let allocator = ByteBufferAllocator()
        self.directions.client.transcoder = compression.transcoder(from: .client, maxMessageSize: limits.maxMessageSize, allocator: allocator)
        self.directions.upstream.transcoder = compression.transcoder(from: .upstream, maxMessageSize: limits.maxMessageSize, allocator: allocator)
    }

    /// The `count` plain payload bytes of a verbatim compressed message that the parser just appended to
    /// `output` at `start`: inflated to validate them (size after inflation, UTF-8), then masked here
    /// toward the upstream with the forwarded header's key.
    func inspectVerbatim(
        _ count: Int,
        at start: Int,
        in output: inout ByteBuffer,
        _ transcoder: MessageTranscoder,
        from side: Side
    ) throws(FramesError) {
        try transcoder.payload(output.getSlice(at: start, length: count)!) { _ in }
        guard side == .client, let (key, offset) = self.verbatimMask else { return }
        self.verbatimMask = (key, offset + count)
        let from = start - output.readerIndex
        output.withUnsafeMutableReadableBytes { raw in
            key.apply(to: UnsafeMutableRawBufferPointer(rebasing: raw[from..<(from + count)]), offset: offset)
        }
    }
}
