import Frames
import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// Upstream faults after the 101 (RELIABILITY §4.6: U-02, U-07, U-08, U-11, U-12), in the in-memory pair
/// of ``RelayHandlerEmbeddedTests`` under virtual time: what the client gets, what the upstream gets, and
/// when each TCP connection ends.
extension RelayHandlerEmbeddedTests {
    static func code(_ frame: Frame?) -> UInt16? {
        guard let frame, frame.opcode == .close, frame.payload.count >= 2 else { return nil }
        return UInt16(frame.payload[0]) << 8 | UInt16(frame.payload[1])
    }

    static func maskedUpstreamFrame(_ opcode: Opcode, _ payload: [UInt8]) -> [UInt8] {
        let key = MaskingKey(0x0A, 0x0B, 0x0C, 0x0D)
        var buffer = ByteBuffer()
        FrameHeader(opcode: opcode, maskingKey: key, payloadLength: payload.count).write(to: &buffer)
        var masked = payload
        masked.withUnsafeMutableBytes { key.apply(to: $0) }
        buffer.writeBytes(masked)
        return Array(buffer.readableBytesView)
    }

    /// The client answers the gateway's 1014; then the upstream gets its own Close and both legs end.
    /// Returns the frames written toward the upstream.
    static func clientAnswers1014(_ pair: Pair) throws -> [Frame] {
        try pair.deliver(Self.clientFrame(.close, Self.closePayload(1014)), from: .client)
        return try Self.frames(pair.written(to: .upstream), sentTo: .upstream)
    }

    /// Catalog U-02: a masked frame from the upstream fails the upstream leg with 1002, the client gets 1014, and the masked payload is never delivered; counted as an upstream violation.
    @Test func aMaskedUpstreamFrameIsNeverDeliveredAndFailsTheUpstreamWith1002() throws {
        let wire = Self.maskedUpstreamFrame(.text, Array("secret payload".utf8))
        for cut in 0...wire.count {
            let pair = try Pair()
            try pair.deliver(wire, from: .upstream, cutAt: [cut])
            let toClient = try Self.frames(pair.written(to: .client), sentTo: .client)
            #expect(toClient.map(\.opcode) == [.close], "cut \(cut): only the Close, no data")
            #expect(Self.code(toClient.first) == 1014)
            let toUpstream = try Self.clientAnswers1014(pair)
            #expect(toUpstream.map(\.opcode) == [.close])
            #expect(Self.code(toUpstream.first) == 1002)
            #expect(!pair.client.isActive && !pair.upstream.isActive)
            let rule = GatewayMetrics.slug(FramesError.Code.maskedServerFrame.description)
            #expect(
                pair.metrics.counterTotal(label: "wsgate_protocol_violations_total", dimensions: [("side", "upstream"), ("rule", rule)]) == 1
            )
        }
    }

    /// Upstream protocol violations (the server-side frames of Autobahn's fuzzingserver cases 1–7), each
    /// with the code the upstream leg is failed with. `halfRelayed`: the bytes of the offending frame the
    /// gateway had relayed in any case when the violation showed (its header: the relay cuts through),
    /// so that frame toward the client can never end.
    static let upstreamViolations: [(name: String, bytes: [UInt8], code: UInt16, relayedBefore: [Opcode], halfRelayed: [UInt8])] = [
        ("64-bit length with the top bit set (msb-len)", [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0x01], 1002, [], []),
        ("RSV2 set", [0xA1, 0x01, 0x61], 1002, [], []),
        ("RSV1 without a negotiated extension", [0xC1, 0x01, 0x61], 1002, [], []),
        ("reserved data opcode", [0x83, 0x00], 1002, [], []),
        ("reserved control opcode", [0x8B, 0x00], 1002, [], []),
        ("fragmented ping", [0x09, 0x00], 1002, [], []),
        ("ping of 126 bytes", [0x89, 0x7E, 0x00, 0x7E] + [UInt8](repeating: 0x70, count: 126), 1002, [], []),
        ("continuation without a message", [0x80, 0x01, 0x61], 1002, [], []),
        ("text frame inside a fragmented message", [0x01, 0x01, 0x61, 0x81, 0x01, 0x62], 1002, [.text], []),
        ("invalid UTF-8 in a text frame", [0x81, 0x02, 0xC3, 0x28], 1007, [], [0x81, 0x02]),
        ("invalid UTF-8 across fragments", [0x01, 0x01, 0x61, 0x80, 0x02, 0xED, 0xA0], 1007, [], [0x01, 0x01, 0x61, 0x80, 0x02]),
    ]

    /// Catalog U-07: each upstream protocol violation after the 101 fails the upstream leg with its code (1002/1007) and gives the client Close 1014, never the invalid frame; valid frames before it are relayed intact. Invalid UTF-8 shows after the frame's header was relayed (cut-through): no invalid byte reaches the client, whose TCP ends without a Close (as R-08, and U-01's exception).
    @Test(arguments: Self.upstreamViolations.indices)
    func anUpstreamViolationFailsTheUpstreamLegAndGivesTheClient1014(_ index: Int) throws {
        let violation = Self.upstreamViolations[index]
        let valid = Self.upstreamFrame(.binary, [1, 2, 3])
        let wire = valid + violation.bytes
        for cut in valid.count...wire.count {
            let pair = try Pair()
            try pair.deliver(wire, from: .upstream, cutAt: [cut])
            let toUpstream: [Frame]
            if violation.halfRelayed.isEmpty {
                let toClient = try Self.frames(pair.written(to: .client), sentTo: .client)
                #expect(toClient.map(\.opcode) == [.binary] + violation.relayedBefore + [.close], "\(violation.name), cut \(cut)")
                #expect(toClient.first?.payload == [1, 2, 3])
                #expect(Self.code(toClient.last) == 1014, "\(violation.name)")
                toUpstream = try Self.clientAnswers1014(pair)
            } else {
                // Relayed: the valid frame, the offending frame's header and at most its bytes that were
                // still valid UTF-8 when they were relayed; never the byte that breaks it (the last).
                let toClient = try pair.written(to: .client)
                #expect(wire.starts(with: toClient) && toClient.count < wire.count, "\(violation.name), cut \(cut)")
                #expect(toClient.starts(with: valid + violation.halfRelayed), "\(violation.name), cut \(cut)")
                #expect(!pair.client.isActive, "the client's frame can never end: its TCP is closed")
                toUpstream = try Self.frames(pair.written(to: .upstream), sentTo: .upstream)
            }
            #expect(toUpstream.map(\.opcode) == [.close], "\(violation.name)")
            #expect(Self.code(toUpstream.first) == violation.code, "\(violation.name)")
            #expect(!pair.client.isActive && !pair.upstream.isActive)
            #expect(pair.metrics.counterTotal(label: "wsgate_protocol_violations_total", dimensions: [("side", "upstream")]) == 1)
        }
    }

    /// Close payloads an upstream may not send (RFC 6455 §7.4.1: 1005, 1006 and 1015 never on the wire;
    /// codes below 1000 and from 5000 on are invalid; 1004 is reserved), a 1-byte body, and a reason that
    /// is not UTF-8.
    static let invalidUpstreamCloses: [([UInt8], UInt16)] = [
        (Self.closePayload(1005), 1002), (Self.closePayload(1006), 1002), (Self.closePayload(1015), 1002), (Self.closePayload(999), 1002),
        (Self.closePayload(5000), 1002), (Self.closePayload(1004), 1002), (Self.closePayload(2999), 1002), ([0x03], 1002),
        // A reason that is not UTF-8 is invalid payload data (RFC 6455 §7.4.1: 1007).
        (Self.closePayload(1000) + [0xC3, 0x28], 1007),
    ]

    /// Catalog U-11: an upstream Close with a reserved or invalid code or a 1-byte body is a protocol error: 1002 toward the upstream (1007 for a reason that is not UTF-8), 1014 to the client, which never sees the invalid code.
    @Test(arguments: Self.invalidUpstreamCloses)
    func anInvalidUpstreamCloseGivesTheUpstream1002AndTheClient1014(_ payload: [UInt8], upstreamCode: UInt16) throws {
        let pair = try Pair()
        try pair.deliver(Self.upstreamFrame(.close, payload), from: .upstream)
        let toClient = try Self.frames(pair.written(to: .client), sentTo: .client)
        #expect(toClient.map(\.opcode) == [.close], "\(payload)")
        #expect(Self.code(toClient.first) == 1014, "\(payload)")
        let toUpstream = try Self.clientAnswers1014(pair)
        #expect(toUpstream.map(\.opcode) == [.close])
        #expect(Self.code(toUpstream.first) == upstreamCode, "\(payload)")
        #expect(!pair.client.isActive && !pair.upstream.isActive)
    }

    /// Catalog U-11: valid upstream close codes and reasons (1000, 1001, 1012–1014, 3000–4999) reach the client unchanged (P-11).
    @Test(arguments: [1000, 1001, 1012, 1013, 1014, 3000, 4000, 4999] as [UInt16])
    func aValidUpstreamCloseReachesTheClientUnchanged(_ code: UInt16) throws {
        let pair = try Pair()
        let payload = Self.closePayload(code, "état ✓")
        try pair.deliver(Self.upstreamFrame(.close, payload), from: .upstream)
        #expect(try pair.written(to: .client) == Self.upstreamFrame(.close, payload))
        try pair.deliver(Self.clientFrame(.close, payload), from: .client)
        #expect(try Self.frames(pair.written(to: .upstream), sentTo: .upstream).map(\.payload) == [payload])
        #expect(pair.metrics.counterTotal(label: "wsgate_protocol_violations_total") == 0)
    }

    // MARK: Close handshakes that never finish (U-12)

    /// Catalog U-12: (a) the upstream sends Close and then neither reads nor closes; the client answers: the client's TCP is closed by the gateway at once (server role), one Close per leg, and the upstream leg ends with it (Deviation U-12: the gateway does not wait for the upstream's TCP close).
    @Test func anUpstreamCloseThatIsAnsweredEndsBothLegsWithOneClosePerLeg() throws {
        let pair = try Pair(closeTimeout: .seconds(10))
        try pair.deliver(Self.upstreamFrame(.close, Self.closePayload(1000, "done")), from: .upstream)
        #expect(try Self.frames(pair.written(to: .client), sentTo: .client).map(\.payload) == [Self.closePayload(1000, "done")])
        #expect(pair.client.isActive, "closed before the client answered")
        try pair.deliver(Self.clientFrame(.close, Self.closePayload(1000)), from: .client)
        #expect(!pair.client.isActive, "the gateway (server role) closes the client's TCP once its handshake is done")
        #expect(try Self.frames(pair.written(to: .upstream), sentTo: .upstream).map(\.opcode) == [.close])
        // What wsgate does (Deviation U-12): the upstream leg's handshake is complete too, so its TCP is
        // closed now rather than left to the upstream.
        #expect(!pair.upstream.isActive)
        #expect(pair.finished)
        pair.loop.advanceTime(by: .seconds(60))
        #expect(try pair.written(to: .client).isEmpty && pair.written(to: .upstream).isEmpty, "a second Close")
    }

    /// Catalog U-12: (a') the upstream sends Close and the client never answers: both TCP connections end at the close timeout, with one Close per leg.
    @Test func anUpstreamCloseTheClientNeverAnswersEndsAtTheCloseTimeout() throws {
        let pair = try Pair(closeTimeout: .seconds(10))
        try pair.deliver(Self.upstreamFrame(.close, Self.closePayload(1001)), from: .upstream)
        #expect(try Self.frames(pair.written(to: .client), sentTo: .client).map(\.opcode) == [.close])
        pair.loop.advanceTime(by: .milliseconds(9_999))
        #expect(pair.client.isActive && pair.upstream.isActive)
        pair.loop.advanceTime(by: .milliseconds(1))
        #expect(!pair.client.isActive && !pair.upstream.isActive)
        #expect(pair.finished)
        // The upstream's Close is answered with its own code before its TCP ends; no other Close goes out.
        #expect(try Self.frames(pair.written(to: .upstream), sentTo: .upstream).map(\.payload) == [Self.closePayload(1001)])
        #expect(try pair.written(to: .client).isEmpty)
    }

    /// Catalog U-12: (b) the client sends Close and never reads; the upstream answers: the answer is written, the client's TCP is closed at once (server role), one Close per leg, no timer needed.
    @Test func aClientCloseAnsweredByTheUpstreamEndsTheClientsTCPAtOnce() throws {
        let pair = try Pair(closeTimeout: .seconds(10))
        pair.client.isWritable = false  // the client reads nothing
        try pair.deliver(Self.clientFrame(.close, Self.closePayload(1000)), from: .client)
        #expect(try Self.frames(pair.written(to: .upstream), sentTo: .upstream).map(\.opcode) == [.close])
        try pair.deliver(Self.upstreamFrame(.close, Self.closePayload(1000)), from: .upstream)
        #expect(!pair.client.isActive && !pair.upstream.isActive)
        #expect(try Self.frames(pair.written(to: .client), sentTo: .client).map(\.opcode) == [.close])
        #expect(pair.finished)
    }

    /// Catalog U-12: (c) the client sends Close and the upstream never answers: both TCP connections end exactly at the close timeout; the client still gets one Close.
    @Test func aClientCloseTheUpstreamNeverAnswersEndsAtTheCloseTimeout() throws {
        let pair = try Pair(closeTimeout: .seconds(10))
        try pair.deliver(Self.clientFrame(.close, Self.closePayload(1000)), from: .client)
        #expect(try Self.frames(pair.written(to: .upstream), sentTo: .upstream).map(\.opcode) == [.close])
        pair.loop.advanceTime(by: .milliseconds(9_999))
        #expect(pair.client.isActive && pair.upstream.isActive)
        pair.loop.advanceTime(by: .milliseconds(1))
        #expect(!pair.client.isActive && !pair.upstream.isActive)
        #expect(try Self.frames(pair.written(to: .client), sentTo: .client).map(\.opcode) == [.close])
        #expect(try pair.written(to: .upstream).isEmpty, "one Close per leg")
    }

    // MARK: A slow upstream reader (U-08)

    /// Catalog U-08: an upstream that cannot take more stops the gateway reading the client (no read is issued while it is unwritable, so at most one read is buffered), and when it drains every byte arrives, in order.
    @Test func aSlowUpstreamHoldsTheClientAndLosesNothing() throws {
        let pair = try Pair(limits: .init())
        let messages = (0..<40).map { index in [UInt8](repeating: UInt8(index), count: 4096) }
        let wire = messages.flatMap { Self.clientFrame(.binary, $0) }
        // The first read arrives; the upstream then fills up.
        pair.client.read()
        try pair.deliver(Array(wire.prefix(wire.count / 4)), from: .client, cutAt: [1000, 5000])
        pair.upstream.isWritable = false
        pair.upstream.pipeline.fireChannelWritabilityChanged()
        let readsWhenFull = pair.clientReads.reads
        // Data already on its way (read before the stop) is still relayed, not dropped.
        try pair.deliver(Array(wire[(wire.count / 4)..<(wire.count / 2)]), from: .client)
        for _ in 0..<10 { pair.client.read() }
        #expect(pair.clientReads.reads == readsWhenFull, "the client was read while the upstream took nothing")
        pair.upstream.isWritable = true
        pair.upstream.pipeline.fireChannelWritabilityChanged()
        #expect(pair.clientReads.reads == readsWhenFull + 1, "reading resumes when the upstream drains")
        try pair.deliver(Array(wire[(wire.count / 2)...]), from: .client, cutAt: [7, 9000, 20_000])
        let toUpstream = try Self.frames(pair.written(to: .upstream), sentTo: .upstream)
        #expect(toUpstream.map(\.payload) == messages, "lost or reordered while the upstream was slow")
        #expect(pair.client.isActive && pair.upstream.isActive)
    }
}
