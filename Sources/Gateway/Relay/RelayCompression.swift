import Frames
import NIOCore

/// The permessage-deflate agreements of one relayed connection (DESIGN §4) and what follows from them
/// for each direction.
struct RelayCompression {
    /// What the gateway (as the server) agreed with the client; nil: no compression on the client leg.
    var client: PerMessageDeflateParameters?
    /// What the gateway (as a client) agreed with the upstream; nil: none on the upstream leg.
    var upstream: PerMessageDeflateParameters?
    var policy: GatewayConfiguration.PerMessageDeflatePolicy = .init()
    /// This connection's share of `limits.compression_memory` (issue #10 item 7); the session holds it
    /// until the connection ends.
    var reservation: CompressionMemoryBudget.Reservation?

    static let none = RelayCompression()

    /// zlib memory the gateway may hold for the client leg under `agreement`: an inflater for the
    /// client's window and a deflater for the gateway's (``CompressionMemoryBudget``).
    func clientLegMemory(_ agreement: PerMessageDeflateParameters) -> Int {
        CompressionMemoryBudget.inflaterBytes(windowBits: agreement.clientMaxWindowBits)
            + CompressionMemoryBudget.deflaterBytes(
                windowBits: min(agreement.serverMaxWindowBits, self.policy.maxWindowBits),
                memoryLevel: self.policy.memoryLevel
            )
    }

    /// zlib memory the gateway may hold for the upstream leg under `agreement` (the gateway is the
    /// client there); with no agreement yet, the most an upstream can make it hold (window 15).
    func upstreamLegMemory(_ agreement: PerMessageDeflateParameters?) -> Int {
        CompressionMemoryBudget.inflaterBytes(windowBits: agreement?.serverMaxWindowBits ?? 15)
            + CompressionMemoryBudget.deflaterBytes(
                windowBits: min(agreement?.clientMaxWindowBits ?? 15, self.policy.maxWindowBits),
                memoryLevel: self.policy.memoryLevel
            )
    }

    /// Whether compressed messages from `source` go to the other leg unchanged: both legs negotiated
    /// and the receiver's agreement can inflate what the sender's allows it to send
    /// (``PerMessageDeflateParameters/canForwardVerbatim(from:to:)``; identical parameters qualify).
    func isVerbatim(from source: Side) -> Bool {
        guard let client = self.client, let upstream = self.upstream else { return false }
        switch source {
        case .client: return client.canForwardVerbatim(from: .client, to: upstream)
        case .upstream: return upstream.canForwardVerbatim(from: .server, to: client)
        }
    }

    /// The transcoder for messages from `source`, or nil when neither leg compresses that direction.
    func transcoder(from source: Side, maxMessageSize: Int, maxFrameSize: Int = .max, allocator: ByteBufferAllocator) -> MessageTranscoder? {
        let sourceAgreement = source == .client ? self.client : self.upstream
        let destinationAgreement = source == .client ? self.upstream : self.client
        guard sourceAgreement != nil || destinationAgreement != nil else { return nil }
        let verbatim = self.isVerbatim(from: source)
        // The source leg's sender is the client on the client leg, the server on the upstream leg.
        let inflater = sourceAgreement.map { agreement in
            source == .client
                ? PerMessageInflater(
                    windowBits: agreement.clientMaxWindowBits,
                    noContextTakeover: agreement.clientNoContextTakeover,
                    maxMessageSize: maxMessageSize
                )
                : PerMessageInflater(
                    windowBits: agreement.serverMaxWindowBits,
                    noContextTakeover: agreement.serverNoContextTakeover,
                    maxMessageSize: maxMessageSize
                )
        }
        // The gateway compresses toward the destination with its own window there (server role toward the
        // client, client role toward the upstream) — unless it forwards verbatim, or that window is 8, which
        // zlib cannot deflate raw: then it sends uncompressed (RFC 7692 §6 allows it).
        var deflater: PerMessageDeflater?
        if let agreement = destinationAgreement, !verbatim {
            let (bits, noTakeover) =
                source == .client
                ? (agreement.clientMaxWindowBits, agreement.clientNoContextTakeover)
                : (agreement.serverMaxWindowBits, agreement.serverNoContextTakeover)
            if bits >= 9 {
                deflater = PerMessageDeflater(
                    windowBits: min(bits, self.policy.maxWindowBits),
                    noContextTakeover: noTakeover || self.policy.noContextTakeover,
                    level: self.policy.compressionLevel,
                    memoryLevel: self.policy.memoryLevel
                )
            }
        }
        guard inflater != nil || deflater != nil else { return nil }
        return MessageTranscoder(
            reader: inflater.map { PerMessageDeflateReader(inflater: $0, discarding: verbatim, allocator: allocator) },
            writer: deflater.map { PerMessageDeflateWriter(deflater: $0, allocator: allocator) },
            masksOutput: source == .client,
            maxFrameSize: maxFrameSize
        )
    }
}

/// Flow control of transcoded output (issue #10 item 6), per source side: inflation stops between
/// transcoded frames when the destination is above its high watermark, when one read has inflated its
/// share, or when the `bytes` rate limit (counted in inflated bytes) says wait; the rest of the read is
/// kept and the source is not read until the transcoder resumes.
struct TranscodeFlow {
    /// Why inflation stopped.
    enum Reason: Equatable {
        /// The destination channel is not writable: resumed by its `writabilityChanged`.
        case writability
        /// One read inflated ``TranscodeFlow/inflationPerRead`` bytes: resumed on the next event-loop
        /// turn, so other connections on the loop get their turn and the destination flushes.
        case workPerRead
        /// The `bytes` rate limit with `throttle`: resumed when the tokens are back.
        case throttle(until: NIODeadline)
        /// The `bytes` rate limit with `close`: the sender gets 1008.
        case close(RateLimiter.Limit)
    }

    struct Pause {
        /// What the source sent after the point where inflation stopped (parsed on resume).
        var stash: ByteBuffer
        var reason: Reason
    }

    /// The inflated bytes one read (or one resumption) may produce toward the destination: the
    /// destination's high watermark, so one 64 KiB read of small messages that each inflate to 1 MiB
    /// queues about one watermark, not tens of MiB.
    let inflationPerRead: Int
    var paused = PerSide<Pause?>(nil)
    /// Set by the gate when it refuses a chunk, read by the suspension.
    var refusal = PerSide<Reason?>(nil)
    var inflatedThisRead = PerSide(0)

    init(inflationPerRead: Int) {
        self.inflationPerRead = max(inflationPerRead, 1)
    }
}
