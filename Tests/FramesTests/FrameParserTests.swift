import NIOCore
import Testing

@testable import Frames

/// Exact bytes in, exact events or error out; every input also split at every byte and in random chunks.
@Suite struct FrameParserTests {
    // MARK: RFC 6455 §5.7 examples

    @Test func singleFrameUnmaskedText() {
        // §5.7: 0x81 0x05 "Hello", as a server sends it.
        let entries = expectSameUnderAllSplits([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F], role: .client)
        #expect(entries == [.header(FrameHeader(opcode: .text, payloadLength: 5)), .payload(Array("Hello".utf8)), .frameEnd])
    }

    @Test func singleFrameMaskedText() {
        // §5.7: 0x81 0x85 0x37 0xfa 0x21 0x3d 0x7f 0x9f 0x4d 0x51 0x58 contains "Hello", masked.
        let input: [UInt8] = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        let entries = expectSameUnderAllSplits(input, role: .server)
        let key = MaskingKey(0x37, 0xFA, 0x21, 0x3D)
        #expect(
            entries == [
                .header(FrameHeader(opcode: .text, maskingKey: key, payloadLength: 5)), .payload(Array("Hello".utf8)),
                .frameEnd,
            ]
        )
    }

    @Test func fragmentedUnmaskedText() {
        // §5.7: 0x01 0x03 0x48 0x65 0x6c ("Hel") then 0x80 0x02 0x6c 0x6f ("lo").
        let entries = expectSameUnderAllSplits([0x01, 0x03, 0x48, 0x65, 0x6C, 0x80, 0x02, 0x6C, 0x6F], role: .client)
        #expect(
            entries == [
                .header(FrameHeader(fin: false, opcode: .text, payloadLength: 3)), .payload(Array("Hel".utf8)), .frameEnd,
                .header(FrameHeader(opcode: .continuation, payloadLength: 2)), .payload(Array("lo".utf8)), .frameEnd,
            ]
        )
    }

    @Test func unmaskedPingAndMaskedPong() {
        // §5.7: 0x89 0x05 "Hello" (unmasked ping) and 0x8a 0x85 … (masked pong "Hello").
        #expect(
            expectSameUnderAllSplits([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F], role: .client)
                == [.control(.ping, Array("Hello".utf8))]
        )
        #expect(
            expectSameUnderAllSplits([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58], role: .server)
                == [.control(.pong, Array("Hello".utf8))]
        )
    }

    @Test func binary256BytesWith16BitLength() {
        // §5.7: 0x82 0x7E 0x0100 [256 bytes of binary data].
        let payload = (0..<256).map { UInt8($0) }
        let entries = expectSameUnderAllSplits([0x82, 0x7E, 0x01, 0x00] + payload, role: .client)
        #expect(entries == [.header(FrameHeader(opcode: .binary, payloadLength: 256)), .payload(payload), .frameEnd])
    }

    @Test func binary64KiBWith64BitLength() {
        // §5.7: 0x82 0x7F 0x0000000000010000 [65536 bytes of binary data].
        let payload = (0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let input: [UInt8] = [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0] + payload
        let entries = expectSameUnderAllSplits(input, role: .client)
        #expect(entries == [.header(FrameHeader(opcode: .binary, payloadLength: 65536)), .payload(payload), .frameEnd])
    }

    // MARK: Masking by role (§5.1)

    @Test func serverRejectsUnmaskedClientFrame() {
        let entries = expectSameUnderAllSplits(frame(0x1, payload: Array("hi".utf8)), role: .server)
        #expect(entries == [.error(.unmaskedClientFrame)])
        #expect(FramesError.unmaskedClientFrame.closeCode == .protocolError)
    }

    @Test func clientRejectsMaskedServerFrame() {
        let entries = expectSameUnderAllSplits(frame(0x2, key: testKey, payload: [1, 2, 3]), role: .client)
        #expect(entries == [.error(.maskedServerFrame)])
    }

    @Test func unmaskedControlFrameFromClientIsRejected() {
        #expect(expectSameUnderAllSplits(frame(0x9), role: .server) == [.error(.unmaskedClientFrame)])
    }

    // MARK: RSV bits (§5.2, RFC 7692 §6)

    @Test(arguments: [0b100, 0b010, 0b001, 0b111] as [UInt8])
    func reservedBitsWithoutExtensionAreRejected(rsv: UInt8) {
        let entries = expectSameUnderAllSplits(frame(0x1, rsv: rsv, key: testKey, payload: [0x61]), role: .server)
        #expect(entries == [.error(.reservedBitSet)])
        #expect(FramesError.reservedBitSet.closeCode == .protocolError)
    }

    @Test func rsv1IsAllowedOnTheFirstFrameOfACompressedMessage() {
        // With permessage-deflate RSV1 marks a compressed message; its payload is not UTF-8 checked here
        // (that happens after inflation), so bytes that are invalid UTF-8 pass.
        let input = frame(0x1, fin: false, rsv: 0b100, key: testKey, payload: [0xF2, 0x48]) + frame(0x0, key: testKey, payload: [0xCD])
        let entries = expectSameUnderAllSplits(input, role: .server, configuration: .deflate)
        let key = MaskingKey(0x37, 0xFA, 0x21, 0x3D)
        #expect(
            entries == [
                .header(FrameHeader(fin: false, reservedBits: .rsv1, opcode: .text, maskingKey: key, payloadLength: 2)),
                .payload([0xF2, 0x48]), .frameEnd,
                .header(FrameHeader(opcode: .continuation, maskingKey: key, payloadLength: 1)), .payload([0xCD]), .frameEnd,
            ]
        )
    }

    @Test func rsv1OnAContinuationFrameIsRejectedEvenWithDeflate() {
        let input = frame(0x1, fin: false, rsv: 0b100, key: testKey, payload: [1]) + frame(0x0, rsv: 0b100, key: testKey, payload: [2])
        let entries = expectSameUnderAllSplits(input, role: .server, configuration: .deflate)
        #expect(entries.last == .error(.reservedBitSet))
        #expect(entries.count == 4)
    }

    @Test func rsv1OnAControlFrameIsRejectedEvenWithDeflate() {
        let entries = expectSameUnderAllSplits(frame(0x9, rsv: 0b100, key: testKey), role: .server, configuration: .deflate)
        #expect(entries == [.error(.reservedBitSet)])
    }

    @Test func rsv2IsRejectedWithDeflate() {
        let entries = expectSameUnderAllSplits(frame(0x2, rsv: 0b010, key: testKey), role: .server, configuration: .deflate)
        #expect(entries == [.error(.reservedBitSet)])
    }

    // MARK: Opcodes (§5.2)

    @Test(arguments: [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF] as [UInt8])
    func reservedOpcodesAreRejected(opcode: UInt8) {
        let entries = expectSameUnderAllSplits(frame(opcode, key: testKey, payload: [0]), role: .server)
        #expect(entries == [.error(.reservedOpcode)])
        // Fail fast: the first byte alone shows it.
        var parser = FrameParser(role: .server)
        var first = ByteBuffer(bytes: [0x80 | opcode])
        #expect(throws: FramesError.reservedOpcode) { try parser.next(&first) }
    }

    // MARK: Control frames (§5.5)

    @Test func fragmentedPingIsRejected() {
        #expect(expectSameUnderAllSplits(frame(0x9, fin: false, key: testKey), role: .server) == [.error(.fragmentedControlFrame)])
    }

    @Test func controlFrameOf126BytesIsRejectedFromTheLengthByte() {
        let entries = expectSameUnderAllSplits(frame(0x9, key: testKey, payload: Array(repeating: 0x61, count: 126)), role: .server)
        #expect(entries == [.error(.controlFramePayloadTooLong)])
        var parser = FrameParser(role: .server)
        var twoBytes = ByteBuffer(bytes: [0x89, 0xFE])
        #expect(throws: FramesError.controlFramePayloadTooLong) { try parser.next(&twoBytes) }
    }

    @Test func controlFrameOf125BytesIsAccepted() {
        let payload = Array(repeating: UInt8(0x62), count: 125)
        #expect(expectSameUnderAllSplits(frame(0xA, key: testKey, payload: payload), role: .server) == [.control(.pong, payload)])
    }

    @Test func controlFramesBetweenFragmentsAreFine() {
        let input =
            frame(0x1, fin: false, key: testKey, payload: Array("ab".utf8)) + frame(0x9, key: testKey, payload: [7])
            + frame(0x0, fin: false, key: testKey, payload: []) + frame(0xA, key: testKey)
            + frame(0x0, key: testKey, payload: Array("c".utf8))
        let entries = expectSameUnderAllSplits(input, role: .server)
        let payloads = entries.compactMap { entry -> [UInt8]? in if case .payload(let p) = entry { p } else { nil } }
        #expect(payloads == [Array("ab".utf8), Array("c".utf8)])
        #expect(entries.filter { if case .control = $0 { true } else { false } } == [.control(.ping, [7]), .control(.pong, [])])
        #expect(entries.filter { $0 == .frameEnd }.count == 3)
        #expect(!entries.contains { if case .error = $0 { true } else { false } })
    }

    // MARK: Close frames (§5.5.1, §7.4)

    @Test func emptyCloseIsValid() {
        #expect(expectSameUnderAllSplits(frame(0x8, key: testKey), role: .server) == [.control(.close, [])])
    }

    @Test func closeWithOneBytePayloadIsRejected() {
        let entries = expectSameUnderAllSplits(frame(0x8, key: testKey, payload: [0x03]), role: .server)
        #expect(entries == [.error(.closePayloadTooShort)])
        #expect(FramesError.closePayloadTooShort.closeCode == .protocolError)
    }

    @Test(arguments: [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] as [UInt16])
    func closeWithInvalidCodeIsRejected(code: UInt16) {
        let entries = expectSameUnderAllSplits(frame(0x8, key: testKey, payload: [UInt8(code >> 8), UInt8(code & 0xFF)]), role: .server)
        #expect(entries == [.error(.invalidCloseCode)])
    }

    @Test(arguments: [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999] as [UInt16])
    func closeWithValidCodeIsRelayedWithItsReason(code: UInt16) throws {
        let payload = [UInt8(code >> 8), UInt8(code & 0xFF)] + Array("bye €".utf8)
        #expect(expectSameUnderAllSplits(frame(0x8, key: testKey, payload: payload), role: .server) == [.control(.close, payload)])
        var parser = FrameParser(role: .server)
        var buffer = ByteBuffer(bytes: frame(0x8, key: testKey, payload: payload))
        guard case .control(let close) = try parser.next(&buffer) else {
            Issue.record("no close")
            return
        }
        #expect(close.closeCode == CloseCode(code))
        #expect(close.closeReason == "bye €")
    }

    @Test func closeReasonMustBeUTF8() {
        // 1000 followed by 0xC3 0x28 (an invalid two-byte sequence).
        let entries = expectSameUnderAllSplits(frame(0x8, key: testKey, payload: [0x03, 0xE8, 0xC3, 0x28]), role: .server)
        #expect(entries == [.error(.invalidUTF8)])
        #expect(FramesError.invalidUTF8.closeCode == .invalidPayloadData)
    }

    @Test func closeReasonOf123BytesIsTheMaximum() {
        let payload: [UInt8] = [0x03, 0xE8] + Array(repeating: 0x7A, count: 123)
        #expect(expectSameUnderAllSplits(frame(0x8, key: testKey, payload: payload), role: .server) == [.control(.close, payload)])
    }

    @Test func anyFrameAfterCloseIsAViolation() {
        let input = frame(0x8, key: testKey, payload: [0x03, 0xE8]) + frame(0x9, key: testKey)
        let entries = expectSameUnderAllSplits(input, role: .server)
        #expect(entries == [.control(.close, [0x03, 0xE8]), .error(.frameAfterClose)])
    }

    // MARK: Fragmentation (§5.4)

    @Test func continuationWithNothingToContinueIsRejected() {
        #expect(expectSameUnderAllSplits(frame(0x0, key: testKey, payload: [1]), role: .server) == [.error(.continuationWithoutMessage)])
    }

    @Test func continuationAfterAFinishedMessageIsRejected() {
        let input = frame(0x2, key: testKey, payload: [1]) + frame(0x0, key: testKey, payload: [2])
        #expect(expectSameUnderAllSplits(input, role: .server).last == .error(.continuationWithoutMessage))
    }

    @Test(arguments: [0x1, 0x2] as [UInt8])
    func newDataFrameInsideAFragmentedMessageIsRejected(opcode: UInt8) {
        let input = frame(0x2, fin: false, key: testKey, payload: [1]) + frame(opcode, key: testKey, payload: [2])
        let entries = expectSameUnderAllSplits(input, role: .server)
        #expect(entries.count == 4)
        #expect(entries.last == .error(.dataFrameInsideFragmentedMessage))
    }

    // MARK: Lengths (§5.2)

    @Test func sixtyFourBitLengthWithTopBitSetIsAProtocolErrorNotTooBig() {
        // 0x82 0x7F then 0x80 00 00 00 00 00 00 00: "length" 2^63, which cannot be a length.
        let input: [UInt8] = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0] + testKey
        let entries = expectSameUnderAllSplits(input, role: .server)
        #expect(entries == [.error(.payloadLengthMostSignificantBitSet)])
        #expect(FramesError.payloadLengthMostSignificantBitSet.closeCode == .protocolError)
        // All ones too (it would trap in an unchecked Int conversion).
        let ones: [UInt8] = [0x82, 0xFF] + Array(repeating: 0xFF, count: 8) + testKey
        #expect(expectSameUnderAllSplits(ones, role: .server) == [.error(.payloadLengthMostSignificantBitSet)])
    }

    @Test func nonMinimalLengthsAreRejectedByDefault() {
        // 5 bytes announced as a 16-bit length, and 200 bytes as a 64-bit length.
        let short = frame(0x2, key: testKey, payload: [1, 2, 3, 4, 5], lengthBytes: 2)
        #expect(expectSameUnderAllSplits(short, role: .server) == [.error(.nonMinimalLengthEncoding)])
        let medium = frame(0x2, key: testKey, payload: Array(repeating: 9, count: 200), lengthBytes: 8)
        #expect(expectSameUnderAllSplits(medium, role: .server) == [.error(.nonMinimalLengthEncoding)])
    }

    @Test func nonMinimalLengthsCanBeAccepted() {
        let lenient = FrameParser.Configuration { $0.rejectsNonMinimalLengths = false }
        let input = frame(0x2, key: testKey, payload: [1, 2, 3], lengthBytes: 8)
        let entries = expectSameUnderAllSplits(input, role: .server, configuration: lenient)
        #expect(entries.dropFirst() == [.payload([1, 2, 3]), .frameEnd])
    }

    // MARK: Limits

    @Test func frameOverTheSizeLimitFailsBeforeItsPayloadArrives() {
        let config = FrameParser.Configuration { $0.maxFrameSize = 100 }
        let input = frame(0x2, key: testKey, payload: Array(repeating: 0, count: 101))
        #expect(expectSameUnderAllSplits(input, role: .server, configuration: config) == [.error(.frameTooLarge)])
        var parser = FrameParser(role: .server, configuration: config)
        var header = ByteBuffer(bytes: input.prefix(4))  // 0x82 0xFE 0x00 0x65: the length alone
        #expect(throws: FramesError.frameTooLarge) { try parser.next(&header) }
        #expect(FramesError.frameTooLarge.closeCode == .messageTooBig)
    }

    /// Catalog R-01: the message limit fails at the fragment that crosses it, not at the end.
    @Test func messageOverTheSizeLimitFailsAtTheFrameThatCrossesIt() {
        let config = FrameParser.Configuration {
            $0.maxFrameSize = 100
            $0.maxMessageSize = 150
        }
        let input =
            frame(0x2, fin: false, key: testKey, payload: Array(repeating: 1, count: 100))
            + frame(0x0, key: testKey, payload: Array(repeating: 2, count: 50))
            + frame(0x2, fin: false, key: testKey, payload: Array(repeating: 3, count: 100))
            + frame(0x0, key: testKey, payload: Array(repeating: 4, count: 51))
        let entries = expectSameUnderAllSplits(input, role: .server, configuration: config)
        #expect(entries.count == 10)
        #expect(entries.last == .error(.messageTooLarge))
    }

    /// Catalog R-02: a message over the fragment cap is a policy violation (1008).
    @Test func tooManyFragmentsIsAPolicyViolation() {
        let config = FrameParser.Configuration { $0.maxFragmentsPerMessage = 3 }
        let ok = frame(0x2, fin: false, key: testKey) + frame(0x0, fin: false, key: testKey) + frame(0x0, key: testKey)
        #expect(!expectSameUnderAllSplits(ok, role: .server, configuration: config).contains(.error(.tooManyFragments)))
        let over =
            frame(0x2, fin: false, key: testKey) + frame(0x0, fin: false, key: testKey) + frame(0x0, fin: false, key: testKey)
            + frame(0x0, key: testKey)
        #expect(expectSameUnderAllSplits(over, role: .server, configuration: config).last == .error(.tooManyFragments))
        #expect(FramesError.tooManyFragments.closeCode == .policyViolation)
    }

    // MARK: UTF-8 (§8.1)

    @Test func textSplitInsideAScalarAcrossFragmentsIsValid() {
        // "€" is E2 82 AC; "🚀" is F0 9F 9A 80. Split across three fragments.
        let input =
            frame(0x1, fin: false, key: testKey, payload: [0x61, 0xE2]) + frame(0x0, fin: false, key: testKey, payload: [0x82, 0xAC, 0xF0, 0x9F])
            + frame(0x0, key: testKey, payload: [0x9A, 0x80])
        let entries = expectSameUnderAllSplits(input, role: .server)
        #expect(!entries.contains { if case .error = $0 { true } else { false } })
    }

    @Test func invalidUTF8FailsFastBeforeTheFrameEnds() throws {
        // A text frame announcing 10 bytes whose 2nd byte (0xFF) can never be UTF-8. The parser must fail
        // when it sees that byte, without waiting for the other 8.
        var parser = FrameParser(role: .client)
        var buffer = ByteBuffer(bytes: [0x81, 0x0A, 0x61, 0xFF])
        #expect(try parser.next(&buffer) == .header(FrameHeader(opcode: .text, payloadLength: 10)))
        #expect(throws: FramesError.invalidUTF8) { try parser.next(&buffer) }
    }

    @Test func invalidUTF8InALaterFragmentFailsBeforeThatFragmentEnds() throws {
        var parser = FrameParser(role: .client)
        var buffer = ByteBuffer(bytes: frame(0x1, fin: false, payload: Array("κόσμε".utf8)))
        while try parser.next(&buffer) != nil {}
        // The second fragment starts with a lone continuation byte after a complete scalar.
        var next = ByteBuffer(bytes: [0x80, 0x20, 0x80])
        #expect(try parser.next(&next) == .header(FrameHeader(opcode: .continuation, payloadLength: 32)))
        #expect(throws: FramesError.invalidUTF8) { try parser.next(&next) }
    }

    @Test func textEndingInsideAScalarIsInvalidAtFIN() {
        let input = frame(0x1, key: testKey, payload: [0x61, 0xE2, 0x82])
        let entries = expectSameUnderAllSplits(input, role: .server)
        #expect(entries.last == .error(.invalidUTF8))
        #expect(entries.dropLast() == [.header(FrameHeader(opcode: .text, maskingKey: MaskingKey(0x37, 0xFA, 0x21, 0x3D), payloadLength: 3))])
    }

    @Test func fuzzRegressionInvalidUTF8AfterAValidPrefixInTheSameFrame() {
        // Found by FuzzFrameParser: "Hello" masked with a key whose first byte differs (0x38), so the
        // plaintext is 0x47 0xCB 0x4D …; 0xCB needs a continuation byte and 0x4D is not one. Whole, the
        // frame fails before any payload is delivered; in small reads "G" and the lead byte 0xCB are
        // delivered first. Both must fail with 1007 at the same point in the event sequence.
        let input: [UInt8] = [0x81, 0x85, 0x38, 0xFA, 0x21, 0x3D, 0x7F, 0x31, 0x4D, 0x51, 0x58]
        let entries = expectSameUnderAllSplits(input, role: .server)
        #expect(
            entries == [.header(FrameHeader(opcode: .text, maskingKey: MaskingKey(0x38, 0xFA, 0x21, 0x3D), payloadLength: 5)), .error(.invalidUTF8)]
        )
        // Byte by byte, nothing after the valid prefix "G" 0xCB is delivered.
        var parser = FrameParser(role: .server)
        var delivered: [UInt8] = []
        var failed = false
        for byte in input where !failed {
            var buffer = ByteBuffer(bytes: [byte])
            do {
                while let event = try parser.next(&buffer) {
                    if case .payload(let bytes) = event { delivered += Array(buffer: bytes) }
                }
            } catch {
                #expect(error == .invalidUTF8)
                failed = true
            }
        }
        #expect(failed)
        #expect(delivered == [0x47, 0xCB])
    }

    @Test func binaryMessagesAreNotUTF8Checked() {
        let input = frame(0x2, key: testKey, payload: [0xFF, 0xFE, 0xC0])
        #expect(expectSameUnderAllSplits(input, role: .server).dropFirst() == [.payload([0xFF, 0xFE, 0xC0]), .frameEnd])
    }

    @Test func utf8CheckCanBeTurnedOff() {
        let config = FrameParser.Configuration { $0.validatesUTF8 = false }
        let input = frame(0x1, key: testKey, payload: [0xFF])
        #expect(expectSameUnderAllSplits(input, role: .server, configuration: config).dropFirst() == [.payload([0xFF]), .frameEnd])
    }

    // MARK: Zero-length frames and remasking

    @Test func zeroLengthDataFramesProduceHeaderAndEnd() {
        let entries = expectSameUnderAllSplits(frame(0x1, key: testKey) + frame(0x2, key: testKey), role: .server)
        #expect(entries.count == 4)
        #expect(entries[1] == .frameEnd && entries[3] == .frameEnd)
    }

    @Test(arguments: [0x1, 0x2] as [UInt8])
    func remaskedPayloadIsThePlaintextUnderTheNewKey(opcode: UInt8) throws {
        let text = Array("remask me at every offset — ünïcödé".utf8)
        let input = frame(opcode, key: testKey, payload: text)
        let newKey = MaskingKey(0xA1, 0xB2, 0xC3, 0xD4)
        for chunk in 1...7 {
            var parser = FrameParser(role: .server)
            var out: [UInt8] = []
            var offset = 0
            while offset < input.count {
                var buffer = ByteBuffer(bytes: input[offset..<min(input.count, offset + chunk)])
                offset += chunk
                while let event = try parser.next(&buffer) {
                    switch event {
                    case .header: parser.remaskPayload(with: newKey)
                    case .payload(let bytes): out += Array(buffer: bytes)
                    case .frameEnd, .control: break
                    }
                }
            }
            let expected = text.enumerated().map { $0.element ^ newKey[$0.offset] }
            #expect(out == expected, "chunk size \(chunk)")
        }
    }

    @Test(arguments: [0x1, 0x2] as [UInt8])
    func copiedPayloadIsThePlaintextUnderTheNewKeyAndTheInputIsUntouched(opcode: UInt8) throws {
        let text = Array("remask me at every offset — ünïcödé".utf8)
        let input = frame(opcode, key: testKey, payload: text)
        let newKey = MaskingKey(0xA1, 0xB2, 0xC3, 0xD4)
        for chunk in 1...7 {
            var parser = FrameParser(role: .server)
            var out = ByteBuffer()
            var offset = 0
            while offset < input.count {
                let piece = Array(input[offset..<min(input.count, offset + chunk)])
                var buffer = ByteBuffer(bytes: piece)
                let shared = buffer
                offset += chunk
                while let event = try parser.next(&buffer, copyingPayloadTo: &out) {
                    if case .header = event { parser.remaskPayload(with: newKey) }
                }
                // A write to the input would have copied its (shared) storage away from `shared`'s.
                #expect(buffer.withVeryUnsafeBytes { $0.baseAddress } == shared.withVeryUnsafeBytes { $0.baseAddress })
                #expect(Array(buffer: shared) == piece)
            }
            let expected = text.enumerated().map { $0.element ^ newKey[$0.offset] }
            #expect(Array(buffer: out) == expected, "chunk size \(chunk)")
        }
    }

    @Test func parsingTheSameBufferNeverCopiesPayload() throws {
        // Cut-through: payload events are slices of the input's storage, not copies.
        var parser = FrameParser(role: .server)
        var buffer = ByteBuffer(bytes: frame(0x2, key: testKey, payload: Array(repeating: 7, count: 1000)))
        _ = try parser.next(&buffer)
        let base = buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        guard case .payload(let slice) = try parser.next(&buffer) else {
            Issue.record("expected payload")
            return
        }
        #expect(slice.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } == base)
    }

    /// The relay's frame deadline runs while this is false (issue #10): a header or payload partly
    /// received, or a fragmented message open.
    @Test func isBetweenMessagesOnlyWithNothingPartlyReceived() throws {
        var parser = FrameParser(role: .client)
        #expect(parser.isBetweenMessages)
        var header = ByteBuffer(bytes: [0x01])  // first byte of a non-final text frame
        _ = try parser.next(&header)
        #expect(!parser.isBetweenMessages, "a partial header")
        var rest = ByteBuffer(bytes: [0x01, 0x61])
        while try parser.next(&rest) != nil {}
        #expect(!parser.isBetweenMessages, "a fragmented message is open")
        var last = ByteBuffer(bytes: [0x80, 0x02, 0x62])
        while try parser.next(&last) != nil {}
        #expect(!parser.isBetweenMessages, "the last frame's payload is partly received")
        var end = ByteBuffer(bytes: [0x63])
        while try parser.next(&end) != nil {}
        #expect(parser.isBetweenMessages)
    }
}
