import NIOCore
import TestPeers
import Testing

@testable import Frames

@Suite struct FrameEncoderTests {
    @Test(
        arguments: [
            (0, [0x82, 0x00]),
            (125, [0x82, 0x7D]),
            (126, [0x82, 0x7E, 0x00, 0x7E]),
            (65535, [0x82, 0x7E, 0xFF, 0xFF]),
            (65536, [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]),
            (Int(UInt32.max) + 1, [0x82, 0x7F, 0, 0, 0, 1, 0, 0, 0, 0]),
        ] as [(Int, [UInt8])]
    )
    func serverHeadersUseTheMinimalLengthEncoding(length: Int, expected: [UInt8]) {
        var encoder = FrameEncoder(role: .server)
        let header = encoder.makeHeader(opcode: .binary, payloadLength: length)
        var buffer = ByteBuffer()
        #expect(header.write(to: &buffer) == expected.count)
        #expect(header.encodedSize == expected.count)
        #expect(Array(buffer: buffer) == expected)
    }

    @Test func serverFramesAreUnmaskedAndParseBack() throws {
        var encoder = FrameEncoder(role: .server)
        var buffer = ByteBuffer()
        encoder.writeFrame(opcode: .text, payload: ByteBuffer(string: "Hello"), to: &buffer)
        // RFC 6455 §5.7: a single-frame unmasked text message.
        #expect(Array(buffer: buffer) == [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
    }

    @Test func clientFramesAreMaskedWithAFreshKeyEach() throws {
        var encoder = FrameEncoder(role: .client, keys: deterministicKeys(seed: 1))
        var buffer = ByteBuffer()
        var keys: Set<MaskingKey> = []
        for index in 0..<200 {
            let payload = ByteBuffer(string: "message \(index)")
            encoder.writeFrame(opcode: index % 3 == 0 ? .text : .continuation, fin: index % 3 == 2, payload: payload, to: &buffer)
        }
        // Parse as the server would: every frame masked, keys all different, payload intact.
        var parser = FrameParser(role: .server)
        var text = ""
        var opcode = Opcode.text
        var index = 0
        while let event = try parser.next(&buffer) {
            switch event {
            case .header(let header):
                let key = try #require(header.maskingKey)
                keys.insert(key)
                #expect(header.opcode == opcode)
                opcode = header.fin ? .text : .continuation
            case .payload(let bytes): text += String(buffer: bytes)
            case .frameEnd:
                #expect(text.hasSuffix("message \(index)"), "\(text)")
                index += 1
            case .control: Issue.record("unexpected control frame")
            }
        }
        #expect(index == 200)
        #expect(keys.count == 200)
    }

    @Test func closeFrameFromCodeAndReason() throws {
        var encoder = FrameEncoder(role: .server)
        var buffer = ByteBuffer()
        encoder.writeClose(code: .normalClosure, reason: "bye", to: &buffer)
        #expect(Array(buffer: buffer) == [0x88, 0x05, 0x03, 0xE8, 0x62, 0x79, 0x65])
        buffer.clear()
        encoder.writeClose(code: nil, to: &buffer)
        #expect(Array(buffer: buffer) == [0x88, 0x00])
    }

    @Test func longCloseReasonsAreCutAtAScalarBoundaryWithin123Bytes() throws {
        var encoder = FrameEncoder(role: .client, keys: deterministicKeys(seed: 2))
        var buffer = ByteBuffer()
        let reason = String(repeating: "a", count: 121) + "€€"  // 121 + 6 bytes
        encoder.writeClose(code: .goingAway, reason: reason, to: &buffer)
        var parser = FrameParser(role: .server)
        guard case .control(let close) = try parser.next(&buffer) else {
            Issue.record("no close frame")
            return
        }
        #expect(close.closeCode == .goingAway)
        #expect(close.closeReason == String(repeating: "a", count: 121))
        #expect(close.payload.readableBytes == 123)
    }

    @Test func randomMessagesRoundTripThroughEncoderAndParserUnderRandomChunking() throws {
        var random = SplitMix64(seed: 2024)
        for round in 0..<150 {
            var encoder = FrameEncoder(role: .client, keys: deterministicKeys(seed: UInt64(round)))
            var wire = ByteBuffer()
            var sent: [(Opcode, [UInt8])] = []
            for _ in 0..<Int(random.next() % 6) + 1 {
                let isText = random.next() % 2 == 0
                let length = Int(random.next() % (random.next() % 4 == 0 ? 70000 : 300))
                let bytes: [UInt8] =
                    isText
                    ? Array(String(repeating: "wsgé€🚀", count: length / 10 + 1).utf8)
                    : (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                sent.append((isText ? .text : .binary, bytes))
                // Fragment at random boundaries (text may split inside a scalar) with pings in between.
                var start = 0
                var first = true
                repeat {
                    let end = min(bytes.count, start + Int(random.next() % 20000) + 1)
                    let fin = end == bytes.count
                    encoder.writeFrame(
                        opcode: first ? (isText ? .text : .binary) : .continuation,
                        fin: fin,
                        payload: ByteBuffer(bytes: bytes[start..<end]),
                        to: &wire
                    )
                    if random.next() % 3 == 0 { encoder.writeFrame(opcode: .ping, payload: ByteBuffer(string: "p"), to: &wire) }
                    first = false
                    start = end
                } while start < bytes.count
            }
            encoder.writeClose(code: .normalClosure, reason: "done", to: &wire)

            var parser = FrameParser(role: .server)
            var received: [(Opcode, [UInt8])] = []
            var current: [UInt8] = []
            var opcode = Opcode.continuation
            var sawClose = false
            var frameFin = false
            let all = Array(buffer: wire)
            var offset = 0
            while offset < all.count {
                let end = min(all.count, offset + Int(random.next() % 3000) + 1)
                var chunk = ByteBuffer(bytes: all[offset..<end])
                offset = end
                while let event = try parser.next(&chunk) {
                    switch event {
                    case .header(let header):
                        if header.opcode != .continuation { opcode = header.opcode }
                        frameFin = header.fin
                    case .payload(let bytes): current += Array(buffer: bytes)
                    case .frameEnd:
                        if frameFin {
                            received.append((opcode, current))
                            current = []
                        }
                    case .control(let frame):
                        if frame.opcode == .close {
                            sawClose = true
                            #expect(frame.closeCode == .normalClosure && frame.closeReason == "done")
                        } else {
                            #expect(frame.opcode == .ping && Array(buffer: frame.payload) == Array("p".utf8))
                        }
                    }
                }
            }
            #expect(sawClose)
            #expect(received.map(\.0) == sent.map(\.0), "round \(round)")
            #expect(received.map(\.1) == sent.map(\.1), "round \(round)")
        }
    }
}
