import NIOCore
import TestPeers
import Testing

@testable import Frames

/// The hex inputs of ../shared/RELIABILITY.md §4.1 (P-02 … P-13), each run through the parser whole,
/// byte by byte, split at every byte and in random chunkings (P-01), with the verdict the catalog expects.
@Suite struct CatalogCorpusTests {
    private func bytes(_ hex: String) -> [UInt8] { Array(buffer: ByteBuffer(hex: hex)) }
    /// The last entry of the transcript: the verdict.
    private func verdict(_ hex: String, _ configuration: FrameParser.Configuration = .init()) -> TranscriptEntry? {
        expectSameUnderAllSplits(bytes(hex), role: .server, configuration: configuration).last
    }

    /// Catalog P-01: seeded random inputs (the catalog's frames spliced, mutated and truncated, and plain noise) give the same events and verdict whole, byte by byte, at every split and in random chunkings, and the only verdicts are the parser's documented frame errors.
    @Test func p01RandomInputsGiveTheSameVerdictUnderEverySplitAndOnlyDocumentedErrors() {
        let corpus = [
            "81 85 37 fa 21 3d 7f 9f 4d 51 58", "01 83 37 fa 21 3d 7f 9f 4d", "80 83 37 fa 21 3d 51 58 4e", "89 80 37 fa 21 3d",
            "8a 82 37 fa 21 3d 01 02", "88 82 37 fa 21 3d 34 12", "82 fe 00 7e 37 fa 21 3d", "82 ff 00 00 00 01 00 00 00 00 37 fa 21 3d",
            "c1 85 37 fa 21 3d 7f 9f 4d 51 58", "83 80 37 fa 21 3d", "81 05 48 65 6c 6c 6f", "88 81 37 fa 21 3d 34",
        ].map { bytes($0) }
        let documented: Set<FramesError.Code> = [
            .unmaskedClientFrame, .reservedBitSet, .reservedOpcode, .fragmentedControlFrame, .controlFramePayloadTooLong,
            .continuationWithoutMessage, .dataFrameInsideFragmentedMessage, .payloadLengthMostSignificantBitSet, .nonMinimalLengthEncoding,
            .frameAfterClose, .closePayloadTooShort, .invalidCloseCode, .invalidUTF8, .frameTooLarge, .messageTooLarge, .tooManyFragments,
        ]
        var configuration = FrameParser.Configuration()
        configuration.maxFrameSize = 200
        configuration.maxMessageSize = 300
        configuration.maxFragmentsPerMessage = 4
        var random = SplitMix64(seed: 0x5_01)
        for round in 0..<300 {
            var input: [UInt8] = []
            if round % 10 == 9 {
                input = (0..<Int(random.next() % 48)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            } else {
                for _ in 0..<(Int(random.next() % 4) + 1) { input += corpus[Int(random.next() % UInt64(corpus.count))] }
                for _ in 0..<Int(random.next() % 3) where !input.isEmpty {
                    input[Int(random.next() % UInt64(input.count))] ^= UInt8(truncatingIfNeeded: 1 << (random.next() % 8))
                }
                if random.next() % 4 == 0 { input.removeLast(Int(random.next() % UInt64(input.count + 1))) }
            }
            let entries = expectSameUnderAllSplits(input, role: .server, configuration: configuration)
            if case .error(let code) = entries.last {
                #expect(documented.contains(code), "round \(round): \(code)")
            }
        }
    }

    /// Catalog P-02: the parser's verdict on the catalog bytes is unmaskedClientFrame under every split.
    /// Catalog P-01: the extension-header parser on seeded random headers either returns offers that survive serialize-then-parse unchanged or throws its one documented error (malformedExtensionHeader); never a crash or another error.
    @Test func p01RandomExtensionHeadersParseOrFailWithTheDocumentedError() {
        let alphabet = Array("abcxyz019-_;,=\" \\\té!/")
        var random = SplitMix64(seed: 0x5_02)
        var parsed = 0
        for round in 0..<3000 {
            let length = Int(random.next() % 40)
            let header = String((0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] })
            do {
                let offers = try ExtensionHeader.parse([header])
                parsed += 1
                let again = try ExtensionHeader.parse([ExtensionHeader.serialize(offers)])
                #expect(again == offers, "round \(round): \(header)")
            } catch {
                #expect(error.code == .malformedExtensionHeader, "round \(round): \(header): \(error)")
            }
        }
        #expect(parsed > 100, "the generator reaches valid headers too")
    }

    @Test func p02UnmaskedClientFrame() {
        #expect(verdict("81 05 48 65 6c 6c 6f") == .error(.unmaskedClientFrame))
    }

    /// Catalog P-03: the parser rejects RSV1/2/3 and a ping with RSV=6 (catalog bytes) under every split.
    @Test func p03ReservedBitsWithoutExtension() {
        for hex in ["c1 85 37 fa 21 3d 7f 9f 4d 51 58", "a1 85 37 fa 21 3d 7f 9f 4d 51 58", "91 85 37 fa 21 3d 7f 9f 4d 51 58", "e9 80 37 fa 21 3d"] {
            #expect(verdict(hex) == .error(.reservedBitSet), "\(hex)")
        }
    }

    /// Catalog P-04: opcodes 3, 0xB and the Autobahn 4.2.3 sequence: "Hello" delivered, then reservedOpcode, the ping never parsed.
    @Test func p04ReservedOpcodes() {
        #expect(verdict("83 80 37 fa 21 3d") == .error(.reservedOpcode))
        #expect(verdict("8b 80 37 fa 21 3d") == .error(.reservedOpcode))
        // Autobahn 4.2.3: "Hello", then opcode 13, then a ping: the first message is delivered, the ping is not.
        let entries = expectSameUnderAllSplits(
            bytes("81 85 37 fa 21 3d 7f 9f 4d 51 58  8d 80 37 fa 21 3d  89 80 37 fa 21 3d"),
            role: .server
        )
        #expect(entries.dropFirst() == [.payload(Array("Hello".utf8)), .frameEnd, .error(.reservedOpcode)])
    }

    /// Catalog P-05: the parser rejects a 126-byte ping, a FIN=0 ping and a 1-byte Close body, and accepts a 125-byte ping.
    @Test func p05ControlFrameRules() {
        #expect(verdict("89 fe 00 7e 37 fa 21 3d" + String(repeating: " 00", count: 126)) == .error(.controlFramePayloadTooLong))
        #expect(verdict("09 80 37 fa 21 3d") == .error(.fragmentedControlFrame))
        #expect(verdict("88 81 37 fa 21 3d 34") == .error(.closePayloadTooShort))
        let ping125 = frame(0x9, key: testKey, payload: Array(repeating: 0x50, count: 125))
        #expect(expectSameUnderAllSplits(ping125, role: .server) == [.control(.ping, Array(repeating: 0x50, count: 125))])
    }

    /// Catalog P-06: the parser rejects a bare continuation and a text inside a fragmented message; fr/ping/ag/pong/ment is "fragment".
    @Test func p06FragmentationSequenceErrors() {
        #expect(verdict("80 85 37 fa 21 3d 7f 9f 4d 51 58") == .error(.continuationWithoutMessage))
        let textThenText = frame(0x1, fin: false, key: testKey, payload: Array("Hel".utf8)) + frame(0x1, key: testKey, payload: Array("lo!".utf8))
        #expect(expectSameUnderAllSplits(textThenText, role: .server).last == .error(.dataFrameInsideFragmentedMessage))
        // (c) valid: "fr", ping "p", "ag", pong, "ment".
        let valid =
            frame(0x1, fin: false, key: testKey, payload: Array("fr".utf8)) + frame(0x9, key: testKey, payload: Array("p".utf8))
            + frame(0x0, fin: false, key: testKey, payload: Array("ag".utf8)) + frame(0xA, key: testKey)
            + frame(0x0, key: testKey, payload: Array("ment".utf8))
        let entries = expectSameUnderAllSplits(valid, role: .server)
        let text = entries.flatMap { entry -> [UInt8] in if case .payload(let p) = entry { p } else { [] } }
        #expect(String(decoding: text, as: UTF8.self) == "fragment")
        #expect(entries.contains(.control(.ping, Array("p".utf8))))
    }

    /// Catalog P-08: a 4 GiB header is frameTooLarge (1009) before any payload, under every split.
    @Test func p08HugeDeclaredLengthFailsRightAfterTheHeader() throws {
        // A 4 GiB binary header and 1 KiB of payload: 1009 before a single payload byte is delivered.
        let input = bytes("82 ff 00 00 00 01 00 00 00 00 37 fa 21 3d") + Array(repeating: 0, count: 1024)
        #expect(expectSameUnderAllSplits(input, role: .server) == [.error(.frameTooLarge)])
        #expect(FramesError.frameTooLarge.closeCode == .messageTooBig)
    }

    /// Catalog P-10: (a)-(e) in the parser: 1007 verdicts, 6.4.1 failing inside frame 2, a split 4-byte scalar valid.
    @Test func p10InvalidUTF8FailsFast() throws {
        let surrogate = bytes("ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80 65 64 69 74 65 64")
        #expect(expectSameUnderAllSplits(frame(0x1, key: testKey, payload: surrogate), role: .server).last == .error(.invalidUTF8))
        // (b) Autobahn 6.4.1: fails on frame 2 (U+110000), before frame 3 is even sent.
        var parser = FrameParser(role: .server)
        var first = ByteBuffer(bytes: frame(0x1, fin: false, key: testKey, payload: bytes("ce ba e1 bd b9 cf 83 ce bc ce b5")))
        while try parser.next(&first) != nil {}
        var second = ByteBuffer(bytes: frame(0x0, fin: false, key: testKey, payload: bytes("f4 90 80 80")))
        #expect(try parser.next(&second) != nil)  // the header
        #expect(throws: FramesError.invalidUTF8) { try parser.next(&second) }
        // (c) overlong, (d) truncated at FIN, (e) valid 4-byte scalar split across frames.
        #expect(expectSameUnderAllSplits(frame(0x1, key: testKey, payload: [0xC0, 0xAF]), role: .server).last == .error(.invalidUTF8))
        #expect(expectSameUnderAllSplits(frame(0x1, key: testKey, payload: [0x61, 0xCE]), role: .server).last == .error(.invalidUTF8))
        let split = frame(0x1, fin: false, key: testKey, payload: [0xF0, 0x9F]) + frame(0x0, key: testKey, payload: [0x98, 0x80])
        #expect(expectSameUnderAllSplits(split, role: .server).last == .frameEnd)
    }

    /// Catalog P-11: the parser rejects codes 999 and 1005, a 124-byte reason, and an invalid UTF-8 reason.
    @Test func p11CloseCodesAndReasons() {
        #expect(verdict("88 82 37 fa 21 3d 34 1d") == .error(.invalidCloseCode))  // 999
        #expect(verdict("88 82 37 fa 21 3d 34 17") == .error(.invalidCloseCode))  // 1005
        let reason124 = frame(0x8, key: testKey, payload: [0x03, 0xE8] + Array(repeating: 0x61, count: 124))
        #expect(expectSameUnderAllSplits(reason124, role: .server) == [.error(.controlFramePayloadTooLong)])
        let badReason = frame(0x8, key: testKey, payload: [0x03, 0xE8] + bytes("ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80 65 64 69 74 65 64"))
        #expect(expectSameUnderAllSplits(badReason, role: .server) == [.error(.invalidUTF8)])
    }

    /// Catalog P-12: the parser delivers the Close and rejects any frame after it, also between fragments (7.1.5).
    @Test func p12NothingAfterClose() {
        let input =
            frame(0x1, key: testKey, payload: Array("Hello".utf8)) + bytes("88 82 37 fa 21 3d 34 12")
            + frame(0x1, key: testKey, payload: Array("after".utf8))
        let entries = expectSameUnderAllSplits(input, role: .server)
        #expect(entries.suffix(2) == [.control(.close, [0x03, 0xE8]), .error(.frameAfterClose)])
        // (e) Autobahn 7.1.5: fragment 1, Close, fragment 2: the Close is delivered, fragment 2 is not.
        let between =
            frame(0x1, fin: false, key: testKey, payload: Array("frag1".utf8)) + bytes("88 82 37 fa 21 3d 34 12")
            + frame(0x0, key: testKey, payload: Array("frag2".utf8))
        #expect(expectSameUnderAllSplits(between, role: .server).suffix(2) == [.control(.close, [0x03, 0xE8]), .error(.frameAfterClose)])
    }

    /// Catalog P-13: the parser rejects RSV1 on a continuation and on a ping with deflate, and RSV1 without it.
    @Test func p13MisusedCompressionBit() {
        let continuationWithRSV1 = frame(0x1, fin: false, rsv: 4, key: testKey, payload: [1]) + frame(0x0, rsv: 4, key: testKey, payload: [2])
        #expect(expectSameUnderAllSplits(continuationWithRSV1, role: .server, configuration: .deflate).last == .error(.reservedBitSet))
        #expect(verdict("c9 80 37 fa 21 3d", .deflate) == .error(.reservedBitSet))
        #expect(verdict("c1 85 37 fa 21 3d 7f 9f 4d 51 58") == .error(.reservedBitSet))
    }
}
