import Frames
import MetricsTestKit
import NIOCore
import NIOEmbedded
import TestPeers
import Testing

@testable import Gateway

/// The reliability catalog's client-frame entries (../shared/RELIABILITY.md §4.1, R-01, R-02, R-04)
/// through the relay in memory (the pair of ``RelayHandlerEmbeddedTests``, virtual time), with the
/// catalog's own bytes (mask key K = `37 fa 21 3d`) delivered split at every byte.
///
/// "Fail(code)" is the catalog's Part 0: the offender gets a Close with `code` and its TCP is closed;
/// the offending frame never reaches the other side, which gets Close 1001; one violation is counted
/// for the offender's side and rule. The parser's verdicts alone, under every split, are
/// `CatalogCorpusTests` (FramesTests).
@Suite struct RelayCatalogTests {
    typealias Base = RelayHandlerEmbeddedTests
    typealias Pair = Base.Pair

    /// RFC 6455 §5.7's example key, which the catalog's hex uses.
    static let key = MaskingKey(0x37, 0xFA, 0x21, 0x3D)

    static func hex(_ text: String) -> [UInt8] {
        let digits = Array(text.filter(\.isHexDigit))
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    /// A client frame masked with ``key``, with any reserved bits.
    static func frame(_ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, rsv: ReservedBits = []) -> [UInt8] {
        var buffer = ByteBuffer()
        FrameHeader(fin: fin, reservedBits: rsv, opcode: opcode, maskingKey: Self.key, payloadLength: payload.count).write(to: &buffer)
        var masked = payload
        masked.withUnsafeMutableBytes { Self.key.apply(to: $0) }
        buffer.writeBytes(masked)
        return Array(buffer.readableBytesView)
    }

    static func text(_ string: String, fin: Bool = true) -> [UInt8] { Self.frame(.text, Array(string.utf8), fin: fin) }

    static func violations(_ metrics: TestMetrics, _ side: Side, _ rule: FramesError.Code) -> Int64 {
        metrics.counterTotal(
            label: "wsgate_protocol_violations_total",
            dimensions: [("side", side.rawValue), ("rule", GatewayMetrics.slug(rule.description))]
        )
    }

    /// A pair whose session also counts protocol violations (in `pair.metrics`).
    static func pair(limits: GatewayConfiguration.Limits = .init()) throws -> Pair {
        let pair = try Pair(limits: limits)
        pair.session.operations.metrics = GatewayMetrics(factory: pair.metrics)
        return pair
    }

    /// Delivers `bytes` from the client split at every byte and expects Fail(`code`): the upstream gets
    /// exactly the frames `forwarded` (payloads, in order) and then Close 1001; the client, whose
    /// upstream never answers, gets its Close with `code` at the violation grace and its TCP closed; one
    /// violation of `rule` is counted.
    static func expectFail(
        _ bytes: [UInt8],
        code: UInt16,
        rule: FramesError.Code,
        forwarded: [[UInt8]] = [],
        limits: GatewayConfiguration.Limits = .init(),
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let pair = try Self.pair(limits: limits)
        try pair.deliver(bytes, from: .client, cutAt: Array(1..<max(1, bytes.count)))
        let toUpstream = try pair.frames(to: .upstream)
        #expect(toUpstream.dropLast().map(\.payload) == forwarded, "forwarded", sourceLocation: sourceLocation)
        #expect(toUpstream.last?.opcode == .close, sourceLocation: sourceLocation)
        #expect(toUpstream.last?.payload.prefix(2) == [0x03, 0xE9], "the other side gets 1001", sourceLocation: sourceLocation)
        pair.loop.advanceTime(by: RelaySession.defaultViolationGrace)
        let toClient = try pair.frames(to: .client)
        #expect(toClient.map(\.opcode) == [.close], sourceLocation: sourceLocation)
        #expect(
            toClient.first?.payload.prefix(2) == [UInt8(code >> 8), UInt8(code & 0xFF)],
            "the offender gets \(code)",
            sourceLocation: sourceLocation
        )
        #expect(!pair.client.isActive, "the offender's TCP is closed", sourceLocation: sourceLocation)
        #expect(Self.violations(pair.metrics, .client, rule) == 1, "one violation counted", sourceLocation: sourceLocation)
        pair.loop.advanceTime(by: .seconds(10))
        #expect(pair.finished, sourceLocation: sourceLocation)
    }

    // MARK: 4.1 Protocol violations

    /// Catalog P-02: an unmasked text "Hello" is Fail(1002), nothing reaches the upstream, counted as unmasked.
    @Test func p02AnUnmaskedFrameFailsWith1002AndNothingReachesTheUpstream() throws {
        try Self.expectFail(Self.hex("81 05 48 65 6c 6c 6f"), code: 1002, rule: .unmaskedClientFrame)
    }

    /// Catalog P-03: RSV1, RSV2, RSV3 and a ping with RSV=6 without an extension: Fail(1002) each, nothing forwarded.
    @Test(arguments: [
        "c1 85 37 fa 21 3d 7f 9f 4d 51 58", "a1 85 37 fa 21 3d 7f 9f 4d 51 58", "91 85 37 fa 21 3d 7f 9f 4d 51 58", "e9 80 37 fa 21 3d",
    ])
    func p03ReservedBitsFailWith1002(hex: String) throws {
        try Self.expectFail(Self.hex(hex), code: 1002, rule: .reservedBitSet)
    }

    /// Catalog P-04: opcodes 3 and 0xB are Fail(1002); Autobahn 4.2.3: "Hello" is relayed, then opcode 13
    /// fails and the ping behind it is neither forwarded nor answered.
    @Test func p04ReservedOpcodesFailWith1002AndWhatFollowsIsDropped() throws {
        try Self.expectFail(Self.hex("83 80 37 fa 21 3d"), code: 1002, rule: .reservedOpcode)
        try Self.expectFail(Self.hex("8b 80 37 fa 21 3d"), code: 1002, rule: .reservedOpcode)
        try Self.expectFail(
            Self.hex("81 85 37 fa 21 3d 7f 9f 4d 51 58  8d 80 37 fa 21 3d  89 80 37 fa 21 3d"),
            code: 1002,
            rule: .reservedOpcode,
            forwarded: [Array("Hello".utf8)]
        )
    }

    /// Catalog P-05: a 126-byte ping, a ping with FIN=0 and a 1-byte Close body are Fail(1002); a
    /// 125-byte ping reaches the upstream and its 125-byte pong comes back unchanged.
    @Test func p05ControlFrameRules() throws {
        try Self.expectFail(
            Self.hex("89 fe 00 7e 37 fa 21 3d") + [UInt8](repeating: 0x37, count: 126),
            code: 1002,
            rule: .controlFramePayloadTooLong
        )
        try Self.expectFail(Self.hex("09 80 37 fa 21 3d"), code: 1002, rule: .fragmentedControlFrame)
        try Self.expectFail(Self.hex("88 81 37 fa 21 3d 34"), code: 1002, rule: .closePayloadTooShort)

        let pair = try Pair()
        let payload = (0..<125).map { UInt8($0) }
        let ping = Self.frame(.ping, payload)
        try pair.deliver(ping, from: .client, cutAt: Array(1..<ping.count))
        #expect(try pair.frames(to: .upstream).map(\.opcode) == [.ping])
        try pair.deliver(Base.upstreamFrame(.pong, payload), from: .upstream)
        #expect(try pair.frames(to: .client) == [Base.Frame(opcode: .pong, fin: true, masked: false, key: nil, payload: payload)])
        #expect(pair.client.isActive && pair.upstream.isActive)
    }

    /// Catalog P-06: a continuation with nothing to continue and a new text inside a fragmented one are
    /// Fail(1002) and no partial message is completed upstream; "fr", ping, "ag", pong, "ment" is relayed
    /// as it came.
    @Test func p06FragmentationSequenceErrors() throws {
        try Self.expectFail(Self.hex("80 85 37 fa 21 3d 7f 9f 4d 51 58"), code: 1002, rule: .continuationWithoutMessage)
        // (b) the first fragment is relayed cut-through (FIN=0: never a complete message), the second text fails.
        try Self.expectFail(
            Self.text("Hel", fin: false) + Self.text("lo!"),
            code: 1002,
            rule: .dataFrameInsideFragmentedMessage,
            forwarded: [Array("Hel".utf8)]
        )
        let pair = try Pair()
        let valid =
            Self.text("fr", fin: false) + Self.frame(.ping, Array("p".utf8)) + Self.frame(.continuation, Array("ag".utf8), fin: false)
            + Self.frame(.pong, []) + Self.frame(.continuation, Array("ment".utf8))
        try pair.deliver(valid, from: .client, cutAt: Array(1..<valid.count))
        let frames = try pair.frames(to: .upstream)
        #expect(frames.map(\.opcode) == [.text, .ping, .continuation, .pong, .continuation])
        #expect(frames.map(\.fin) == [false, true, false, true, true])
        #expect(String(decoding: frames.filter { !$0.opcode.isControl }.flatMap(\.payload), as: UTF8.self) == "fragment")
        // The upstream's pong answers the ping in between.
        try pair.deliver(Base.upstreamFrame(.pong, Array("p".utf8)), from: .upstream)
        #expect(try pair.frames(to: .client).map(\.opcode) == [.pong])
    }

    /// Catalog P-08: a 4 GiB binary header and 1 KiB of payload: Fail(1009) right after the header, and
    /// no header or payload of that frame reaches the upstream.
    @Test func p08AHugeDeclaredLengthFailsWith1009BeforeAnythingIsForwarded() throws {
        try Self.expectFail(
            Self.hex("82 ff 00 00 00 01 00 00 00 00 37 fa 21 3d") + [UInt8](repeating: 0x55, count: 1024),
            code: 1009,
            rule: .frameTooLarge
        )
    }

    /// The first frame written toward the upstream, which may be incomplete: its header fields and the
    /// payload bytes so far, unmasked.
    static func partialFrame(_ bytes: [UInt8]) -> (opcode: UInt8, fin: Bool, declared: Int, payload: [UInt8])? {
        guard bytes.count >= 6, bytes[1] & 0x80 != 0, bytes[1] & 0x7F < 126 else { return nil }
        let key = Array(bytes[2..<6])
        let payload = bytes.dropFirst(6).enumerated().map { $0.element ^ key[$0.offset % 4] }
        return (bytes[0] & 0x0F, bytes[0] & 0x80 != 0, Int(bytes[1] & 0x7F), payload)
    }

    /// Catalog P-10: (a) Autobahn 6.3.1 and (c) an overlong `c0 af` are Fail(1007) for the client, and the invalid byte never reaches the upstream; deviation (cut-through): the valid prefix already relayed leaves the upstream inside a frame, so it gets no Close and its TCP ends at the close timeout.
    @Test(arguments: [
        ("ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80 65 64 69 74 65 64", 12),
        ("c0 af", 0),
    ])
    func p10InvalidUTF8FailsFastAndTheInvalidByteNeverReachesTheUpstream(hex: String, invalidAt: Int) throws {
        let payload = Self.hex(hex)
        for whole in [false, true] {
            let pair = try Self.pair()
            let bytes = Self.frame(.text, payload)
            try pair.deliver(bytes, from: .client, cutAt: whole ? [] : Array(1..<bytes.count))
            let toUpstream = try pair.written(to: .upstream)
            if let frame = Self.partialFrame(toUpstream) {
                #expect(frame.opcode == 1 && frame.declared == payload.count)
                #expect(frame.payload.count < invalidAt + 1 && frame.payload == Array(payload.prefix(frame.payload.count)), "only the valid prefix")
                #expect(toUpstream.count == 6 + frame.payload.count, "no Close inside the frame")
            } else {
                #expect(toUpstream.isEmpty || toUpstream.count < 6, "\(toUpstream)")
            }
            pair.loop.advanceTime(by: RelaySession.defaultViolationGrace)
            #expect(try pair.frames(to: .client).map(\.payload) == [Base.closePayload(1007, FramesError.Code.invalidUTF8.description)])
            #expect(!pair.client.isActive)
            #expect(Self.violations(pair.metrics, .client, .invalidUTF8) == 1)
            pair.loop.advanceTime(by: .seconds(10))
            #expect(!pair.upstream.isActive, "the close timeout ends the upstream's TCP")
            #expect(pair.finished)
        }
    }

    /// Catalog P-10: (d) a text message ending inside a scalar (`… ce` with FIN=1) is Fail(1007); deviation (cut-through): its bytes, each valid so far, have reached the upstream when FIN shows the truncation, then Close 1001; (b) Autobahn 6.4.1 fails on frame 2 before any of it is relayed: the upstream has frame 1 and at most frame 2's header and valid prefix (cut-through), never its invalid byte or frame 3; (e) a 4-byte scalar split across two frames is relayed.
    @Test func p10TruncationAtFINFailFastAcrossFramesAndASplitScalar() throws {
        let truncated = try Self.pair()
        try truncated.deliver(Self.frame(.text, Array("abc".utf8) + [0xCE]), from: .client)
        let toUpstream = try truncated.written(to: .upstream)
        #expect(Self.partialFrame(Array(toUpstream.prefix(10)))?.payload == [0x61, 0x62, 0x63, 0xCE])
        #expect(try Base.frames(Array(toUpstream.dropFirst(10)), sentTo: .upstream).map(\.payload) == [Base.closePayload(1001)])
        truncated.loop.advanceTime(by: RelaySession.defaultViolationGrace)
        #expect(try truncated.frames(to: .client).first?.payload.prefix(2) == [0x03, 0xEF])
        #expect(Self.violations(truncated.metrics, .client, .invalidUTF8) == 1)

        // (b) frame by frame, as Autobahn sends it (with pauses): frame 1 is relayed; frame 2 fails inside
        // its payload, so frame 3 is never read.
        let pair = try Self.pair()
        let first = Self.frame(.text, Self.hex("ce ba e1 bd b9 cf 83 ce bc ce b5"), fin: false)
        try pair.deliver(first, from: .client, cutAt: Array(1..<first.count))
        #expect(try pair.frames(to: .upstream).map(\.payload) == [Self.hex("ce ba e1 bd b9 cf 83 ce bc ce b5")])
        pair.loop.advanceTime(by: .seconds(1))
        let second = Self.frame(.continuation, Self.hex("f4 90 80 80"), fin: false)
        try pair.deliver(second, from: .client, cutAt: Array(1..<second.count))
        // Cut-through: frame 2's header and its bytes valid so far (`f4`) may be relayed, never the invalid
        // `90`, and no Close inside the frame.
        let afterSecond = try pair.written(to: .upstream)
        if let partial = Self.partialFrame(afterSecond) {
            #expect(partial.opcode == 0 && partial.payload.count <= 1 && afterSecond.count == 6 + partial.payload.count, "\(afterSecond)")
        } else {
            #expect(afterSecond.count < 6)
        }
        pair.loop.advanceTime(by: RelaySession.defaultViolationGrace)
        #expect(try pair.frames(to: .client).first?.payload.prefix(2) == [0x03, 0xEF])
        #expect(Self.violations(pair.metrics, .client, .invalidUTF8) == 1)
        // Frame 3 is never relayed.
        try? pair.deliver(Self.frame(.continuation, Self.hex("65 64 69 74 65 64")), from: .client)
        #expect(try pair.written(to: .upstream).isEmpty)

        // (e) valid.
        let valid = try Pair()
        let split = Self.frame(.text, [0xF0, 0x9F], fin: false) + Self.frame(.continuation, [0x98, 0x80])
        try valid.deliver(split, from: .client, cutAt: Array(1..<split.count))
        #expect(try valid.frames(to: .upstream).flatMap(\.payload) == [0xF0, 0x9F, 0x98, 0x80])
        #expect(valid.client.isActive)
    }

    /// Catalog P-11: invalid close codes and a 124-byte reason are Fail(1002), an invalid UTF-8 reason
    /// Fail(1007).
    @Test(arguments: [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] as [UInt16])
    func p11AnInvalidCloseCodeFailsWith1002(code: UInt16) throws {
        try Self.expectFail(Self.frame(.close, Base.closePayload(code)), code: 1002, rule: .invalidCloseCode)
    }

    /// Catalog P-11: a 124-byte reason (payload 126) is Fail(1002); the Autobahn 7.5.1 reason (invalid UTF-8) Fail(1007).
    @Test func p11AnOverlongOrInvalidReasonFails() throws {
        try Self.expectFail(
            Self.frame(.close, Base.closePayload(1000, String(repeating: "a", count: 124))),
            code: 1002,
            rule: .controlFramePayloadTooLong
        )
        try Self.expectFail(
            Self.frame(.close, [0x03, 0xE8] + Self.hex("ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80 65 64 69 74 65 64")),
            code: 1007,
            rule: .invalidUTF8
        )
    }

    /// Catalog P-11: every valid code (1012–1014 and 4xxx included) with a 123-byte reason reaches the
    /// upstream unchanged, and the upstream's answer reaches the client unchanged.
    @Test(arguments: [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999] as [UInt16])
    func p11AValidCloseCodeAndReasonAreRelayedUnchangedBothWays(code: UInt16) throws {
        let pair = try Pair()
        let reason = String(repeating: "é", count: 61) + "!"  // 123 bytes: the longest a Close may carry
        let close = Self.frame(.close, Base.closePayload(code, reason))
        try pair.deliver(close, from: .client, cutAt: Array(1..<close.count))
        #expect(try pair.frames(to: .upstream).map(\.payload) == [Base.closePayload(code, reason)])
        try pair.deliver(Base.upstreamFrame(.close, Base.closePayload(code, "answer ✓")), from: .upstream)
        #expect(try pair.written(to: .client) == Base.upstreamFrame(.close, Base.closePayload(code, "answer ✓")))
        #expect(!pair.client.isActive && !pair.upstream.isActive)
    }

    /// Catalog P-11: the gateway never puts 1005, 1006 or 1015 on the wire: a Close without a code is
    /// relayed without one, and an upstream lost without a Close gives the client 1014.
    @Test func p11NeitherLegEverSeesAReservedCodeFromTheGateway() throws {
        let pair = try Pair()
        try pair.deliver(Self.frame(.close, []), from: .client)
        #expect(try pair.frames(to: .upstream).map(\.payload) == [[]])
        try pair.deliver(Base.upstreamFrame(.close, []), from: .upstream)
        #expect(try pair.frames(to: .client).map(\.payload) == [[]])

        let lost = try Pair()
        lost.upstream.pipeline.fireChannelInactive()
        let toClient = try lost.frames(to: .client)
        #expect(toClient.map(\.opcode) == [.close])
        #expect(toClient.first?.payload.prefix(2) == [0x03, 0xF6])
    }

    /// Catalog P-12: after the client's Close, "after", a second Close and a ping are not forwarded; the
    /// close handshake completes once each way and both TCP connections end.
    @Test(arguments: ["after", "close", "ping"])
    func p12NothingAfterACloseIsForwardedAndTheHandshakeCompletesOnce(trailer: String) throws {
        let pair = try Pair()
        let close = Self.hex("88 82 37 fa 21 3d 34 12")
        let after =
            switch trailer {
            case "after": Self.text("after")
            case "close": close
            default: Self.frame(.ping, [])
            }
        let bytes = Self.text("Hello") + close + after
        try pair.deliver(bytes, from: .client, cutAt: Array(1..<bytes.count))
        let toUpstream = try pair.frames(to: .upstream)
        #expect(toUpstream.map(\.opcode) == [.text, .close], "\(trailer)")
        #expect(toUpstream.last?.payload == Base.closePayload(1000))
        try pair.deliver(Base.upstreamFrame(.close, Base.closePayload(1000)), from: .upstream)
        #expect(try pair.frames(to: .client).map(\.payload) == [Base.closePayload(1000)], "one Close toward the client")
        #expect(!pair.client.isActive && !pair.upstream.isActive)
        #expect(try pair.frames(to: .upstream).isEmpty)
    }

    /// Catalog P-12: Autobahn 7.1.6 (256 KiB message, Close, ping back to back): the message and the Close
    /// arrive well-formed, the ping does not; 7.1.5 (fragment, Close, fragment): the Close is relayed,
    /// fragment 2 is dropped, and the upstream's answer (1002 here, as websockets sends) reaches the client unchanged.
    @Test func p12ACloseAfterALargeMessageOrBetweenFragments() throws {
        let pair = try Pair()
        let big = (0..<(256 << 10)).map { UInt8(truncatingIfNeeded: $0) }
        try pair.deliver(
            Self.frame(.binary, big) + Self.hex("88 82 37 fa 21 3d 34 12") + Self.frame(.ping, []),
            from: .client,
            cutAt: [1000, 70_000]
        )
        let toUpstream = try pair.frames(to: .upstream)
        #expect(toUpstream.map(\.opcode) == [.binary, .close])
        #expect(toUpstream.first?.payload == big)

        let between = try Pair()
        let bytes = Self.text("frag1", fin: false) + Self.hex("88 82 37 fa 21 3d 34 12") + Self.frame(.continuation, Array("frag2".utf8))
        try between.deliver(bytes, from: .client, cutAt: Array(1..<bytes.count))
        let frames = try between.frames(to: .upstream)
        #expect(frames.map(\.opcode) == [.text, .close])
        #expect(frames.first?.payload == Array("frag1".utf8))
        try between.deliver(Base.upstreamFrame(.close, Base.closePayload(1002, "incomplete")), from: .upstream)
        #expect(try between.written(to: .client) == Base.upstreamFrame(.close, Base.closePayload(1002, "incomplete")))
        #expect(!between.client.isActive && !between.upstream.isActive)
    }

    /// Catalog P-13: RSV1 on a connection that did not negotiate deflate is Fail(1002) (with deflate, the
    /// continuation, control and invalid-data cases are `RelayCompressionTests.p13…`).
    @Test func p13CompressedBitWithoutDeflateFailsWith1002() throws {
        try Self.expectFail(Self.frame(.text, Array("Hello".utf8), rsv: .rsv1), code: 1002, rule: .reservedBitSet)
    }

    /// Catalog P-14: 10,000 identical frames, all with the client key `37 fa 21 3d`, reach the upstream
    /// under keys that are never the client's, repeat at most once (the birthday bound), are not zero,
    /// and follow no counter pattern.
    @Test func p14RemaskingKeysAreFreshAndUnpredictable() throws {
        let pair = try Pair()
        let frame = Self.text("Hello")
        var keys: [UInt32] = []
        for _ in 0..<100 {
            try pair.deliver(Array((0..<100).map { _ in frame }.joined()), from: .client)
            keys += try pair.frames(to: .upstream).compactMap { $0.key.map(\.packed) }
        }
        #expect(keys.count == 10_000)
        #expect(!keys.contains(Self.key.packed), "the client's key was reused")
        #expect(keys.count - Set(keys).count <= 1, "keys repeat")
        #expect(keys.filter { $0 == 0 }.count <= 1)
        // Not a counter or a clock: the steps between consecutive keys are all different, and the keys
        // are not sorted.
        let steps = zip(keys, keys.dropFirst()).map { $1 &- $0 }
        #expect(Set(steps).count >= steps.count - 1)
        #expect(keys != keys.sorted())
        // Every bit varies: each of the 32 is set in roughly half the keys (5,000 ± 5σ, σ = 50).
        for bit in 0..<32 {
            let set = keys.filter { $0 & (1 << bit) != 0 }.count
            #expect((4750...5250).contains(set), "bit \(bit) set in \(set) of 10,000 keys")
        }
    }

    /// Catalog P-15: a seeded random stream (sizes 0 B–1 MiB, random fragmentation, pings between
    /// fragments, random read sizes) reaches the upstream byte-exact with its frame boundaries, order and
    /// control frames as sent, and the same stream from the upstream reaches the client byte for byte.
    @Test func p15MessagesAndFragmentsArriveExactlyUnderARandomLoad() throws {
        var limits = GatewayConfiguration.Limits()
        limits.maxMessageSize = 2 << 20
        limits.maxFrameSize = 2 << 20
        let pair = try Pair(limits: limits)
        var random = SplitMix64(seed: 15)
        var sentFrames: [Base.Frame] = []
        var clientWire: [UInt8] = []
        var upstreamWire: [UInt8] = []
        for index in 0..<600 {
            // Sizes spread over every length encoding: mostly small, some up to 1 MiB.
            let size = index % 100 == 0 ? Int(random.next() % (1 << 20)) : Int(random.next() % (1 << (random.next() % 17)))
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
            let fragments = Int(random.next() % 4) + 1
            let cuts = ([0, size] + (1..<fragments).map { _ in size == 0 ? 0 : Int(random.next() % UInt64(size + 1)) }).sorted()
            for piece in 0..<fragments {
                let opcode: Opcode = piece == 0 ? .binary : .continuation
                let bytes = Array(payload[cuts[piece]..<cuts[piece + 1]])
                let fin = piece == fragments - 1
                sentFrames.append(.init(opcode: opcode, fin: fin, masked: true, key: nil, payload: bytes))
                clientWire += Base.clientFrame(opcode, bytes, fin: fin)
                upstreamWire += Base.upstreamFrame(opcode, bytes, fin: fin)
                if !fin && random.next() % 3 == 0 {
                    let ping = Array("ping \(index)".utf8)
                    sentFrames.append(.init(opcode: .ping, fin: true, masked: true, key: nil, payload: ping))
                    clientWire += Base.clientFrame(.ping, ping)
                    upstreamWire += Base.upstreamFrame(.ping, ping)
                }
            }
        }
        var cuts: [Int] = []
        var at = 0
        while at < clientWire.count {
            at += Int(random.next() % 70_000) + 1
            cuts.append(at)
        }
        try pair.deliver(clientWire, from: .client, cutAt: cuts)
        let received = try pair.frames(to: .upstream)
        #expect(received.count == sentFrames.count)
        #expect(received.map(\.opcode) == sentFrames.map(\.opcode))
        #expect(received.map(\.fin) == sentFrames.map(\.fin))
        #expect(received.map(\.payload) == sentFrames.map(\.payload), "payloads differ")
        try pair.deliver(upstreamWire, from: .upstream, cutAt: cuts)
        #expect(try pair.written(to: .client) == upstreamWire)
        #expect(pair.client.isActive && pair.upstream.isActive)
    }

    // MARK: 4.2 Resource exhaustion

    /// Catalog R-01: with a 1 MiB message limit, 64 fragments of 32 KiB fail with 1009 at the fragment
    /// that crosses 1 MiB (its header, before its payload): the upstream gets exactly 1 MiB of the message,
    /// then Close 1001.
    @Test func r01AMessageBuiltFromFragmentsFailsWith1009WhereItCrossesTheLimit() throws {
        let chunk = [UInt8](repeating: 0x42, count: 32 << 10)
        var bytes: [UInt8] = []
        for index in 0..<64 {
            bytes += Self.frame(index == 0 ? .binary : .continuation, chunk, fin: index == 63)
        }
        let pair = try Self.pair()
        var cuts: [Int] = []
        for cut in stride(from: 65_536, to: bytes.count, by: 65_536) { cuts.append(cut) }
        try pair.deliver(bytes, from: .client, cutAt: cuts)
        let toUpstream = try pair.frames(to: .upstream)
        #expect(toUpstream.dropLast().reduce(0) { $0 + $1.payload.count } == 1 << 20)
        #expect(toUpstream.dropLast().count == 32)
        #expect(toUpstream.last?.payload.prefix(2) == [0x03, 0xE9])
        pair.loop.advanceTime(by: RelaySession.defaultViolationGrace)
        #expect(try pair.frames(to: .client).first?.payload.prefix(2) == [0x03, 0xF1])
        #expect(Self.violations(pair.metrics, .client, .messageTooLarge) == 1)
        #expect(!pair.client.isActive)
    }

    /// Catalog R-02: a text frame and 1,000,000 one-byte continuations (7 MB) fail with 1008 at the
    /// 1,024-fragment cap; the fragments before it are relayed as they come (no buffering of the
    /// message), and nothing after it is.
    @Test func r02AMillionTinyFragmentsFailWith1008AtTheCap() throws {
        var bytes = Self.frame(.text, Array("a".utf8), fin: false)
        let continuation = Self.frame(.continuation, Array("a".utf8), fin: false)
        bytes.reserveCapacity(bytes.count + continuation.count * 1_000_001)
        for _ in 0..<1_000_000 { bytes.append(contentsOf: continuation) }
        bytes += Self.frame(.continuation, Array("a".utf8))
        let pair = try Self.pair()
        try pair.deliver(bytes, from: .client, cutAt: [4096, 8192, 65_536])
        let toUpstream = try pair.frames(to: .upstream)
        #expect(toUpstream.dropLast().count == 1024, "relayed before the cap")
        #expect(toUpstream.last?.payload.prefix(2) == [0x03, 0xE9])
        pair.loop.advanceTime(by: RelaySession.defaultViolationGrace)
        #expect(try pair.frames(to: .client).first?.payload.prefix(2) == [0x03, 0xF0])
        #expect(Self.violations(pair.metrics, .client, .tooManyFragments) == 1)
    }

    /// Catalog R-13: a client that stops reading stops the gateway reading the upstream; an upstream that then stops reading stops the gateway reading the client (backpressure end to end); when the client reads again, everything arrives byte-exact and both legs are read again.
    @Test func r13ASlowReadingClientBacksPressureUpToTheUpstreamAndLosesNothing() throws {
        let pair = try Pair()
        let upstreamReads = Base.ReadCounter()
        try pair.upstream.pipeline.syncOperations.addHandler(upstreamReads, position: .first)
        pair.client.isWritable = false
        pair.client.pipeline.fireChannelWritabilityChanged()
        let echo = Array((0..<16).map { Base.upstreamFrame(.binary, [UInt8](repeating: UInt8($0), count: 64 << 10)) }.joined())
        try pair.deliver(echo, from: .upstream, cutAt: [100_000, 500_000])
        pair.upstream.read()
        #expect(upstreamReads.reads == 0, "the upstream was read while the client could take nothing")
        // The upstream, no longer read, stops reading in turn: its socket fills up.
        pair.upstream.isWritable = false
        pair.upstream.pipeline.fireChannelWritabilityChanged()
        pair.client.read()
        #expect(pair.clientReads.reads == 0, "the client was read while the upstream could take nothing")
        // The client reads again: what was read arrives whole, and the upstream is read again.
        pair.client.isWritable = true
        pair.client.pipeline.fireChannelWritabilityChanged()
        #expect(try pair.written(to: .client) == echo)
        #expect(upstreamReads.reads == 1)
        pair.upstream.isWritable = true
        pair.upstream.pipeline.fireChannelWritabilityChanged()
        #expect(pair.clientReads.reads == 1)
        #expect(pair.client.isActive && pair.upstream.isActive)
    }

    /// Catalog R-04: a client that floods pings and never reads, with no control-frame limit: its pings reach the upstream, whose pongs, once the client's socket is full, stop the gateway reading the upstream (at most the read in hand is queued toward the client), and an upstream that then stops reading stops the gateway reading the client: memory stays bounded by reads, not by the flood.
    @Test func r04APingFloodFromAClientThatDoesNotReadIsBoundedByBackpressure() throws {
        let pair = try Pair()
        let upstreamReads = Base.ReadCounter()
        try pair.upstream.pipeline.syncOperations.addHandler(upstreamReads, position: .first)
        let ping = Self.frame(.ping, [UInt8](repeating: 0x70, count: 125))
        try pair.deliver(Array((0..<1000).map { _ in ping }.joined()), from: .client)
        #expect(try pair.frames(to: .upstream).count == 1000)
        // The client does not read: its socket fills.
        pair.client.isWritable = false
        pair.client.pipeline.fireChannelWritabilityChanged()
        let pong = Base.upstreamFrame(.pong, [UInt8](repeating: 0x70, count: 125))
        try pair.deliver(Array((0..<1000).map { _ in pong }.joined()), from: .upstream)
        pair.upstream.read()
        #expect(upstreamReads.reads == 0, "the upstream was read while the client could take nothing")
        #expect(try pair.written(to: .client).count == 1000 * pong.count, "only the read in hand")
        // The upstream stops reading too: the client is no longer read.
        pair.upstream.isWritable = false
        pair.upstream.pipeline.fireChannelWritabilityChanged()
        pair.client.read()
        #expect(pair.clientReads.reads == 0)
        #expect(pair.client.isActive && pair.upstream.isActive)
    }

    /// Catalog R-04: a flood of 125-byte pings under the route's default control-frame limit (100/s,
    /// burst 100) is closed with 1008: the upstream sees no more pings than the limit, then Close 1001.
    @Test func r04APingFloodIsClosedWith1008AndTheUpstreamSeesNoMoreThanTheLimit() throws {
        let pair = try Pair { $0.rateLimits = GatewayConfiguration.RateLimits() }
        let ping = Self.frame(.ping, [UInt8](repeating: 0x70, count: 125))
        try pair.deliver(Array((0..<10_000).map { _ in ping }.joined()), from: .client, cutAt: [131, 4096, 65_536])
        let toUpstream = try pair.frames(to: .upstream)
        #expect(toUpstream.filter { $0.opcode == .ping }.count == 100)
        #expect(toUpstream.last?.payload.prefix(2) == [0x03, 0xE9])
        pair.loop.advanceTime(by: RelaySession.defaultViolationGrace)
        #expect(try pair.frames(to: .client).last?.payload == Base.closePayload(1008, "rate limit: control_frames"))
        #expect(pair.count("wsgate_rate_limit_decisions_total", [("side", "client"), ("limit", "control_frames"), ("action", "close")]) == 1)
    }
}
