import Foundation
import Frames
import NIOCore
import Testing

@testable import Gateway

/// The tap's NDJSON written straight into a `ByteBuffer` (issue #15): every line parses as JSON and is
/// byte for byte what issue #14's `String`-interpolating encoder wrote (kept here as the oracle,
/// ``LegacyTapJSON``), on hostile input: control characters, quotes, backslashes, U+2028, invalid
/// UTF-8 in text frames, cuts inside a sequence, very long payloads, every capture mode.
@Suite struct TapEventEncoderTests {
    static func encoded(_ event: TapEvent, _ mode: TapPayloadMode, _ maxPayload: Int) -> String {
        var buffer = ByteBuffer()
        TapEventEncoder.write(event, payload: mode, maxPayload: maxPayload, to: &buffer)
        return String(buffer: buffer)
    }

    static func parses(_ line: String) -> Bool {
        guard line.hasSuffix("\n"), !line.dropLast().contains("\n") else { return false }
        return (try? JSONSerialization.jsonObject(with: Data(line.utf8))) is [String: Any]
    }

    static let hostileStrings: [String] = [
        "", "plain", "quote \" and backslash \\ and both \\\"", "\u{0}\u{1}\u{8}\u{b}\u{c}\u{1f}\u{7f}",
        "\n\r\t", "line\u{2028}separator\u{2029}", "é ü 漢字 🎉", "</script><!--", String(repeating: "a\"", count: 5000),
        "exactly8", "12345678\"", String(repeating: "\u{1b}", count: 9),
    ]

    static let hostilePayloads: [[UInt8]] = {
        var payloads = Self.hostileStrings.map { Array($0.utf8) }
        payloads += [
            [0xFF], [0xC3], [0x61, 0xC3], [0xE2, 0x82], [0xF0, 0x9F, 0x8E], [0xED, 0xA0, 0x80],  // cut, surrogate
            [0xC0, 0xAF], [0xF4, 0x90, 0x80, 0x80], [0x80, 0x61], Array("ok".utf8) + [0xFE, 0xFE, 0xFE, 0xFE, 0xFE],
            Array(0...255), Array(repeating: 0x5C, count: 3), Array(String(repeating: "é", count: 700).utf8),
        ]
        var random = SplitMix64(seed: 15)
        for length in [1, 2, 3, 7, 8, 9, 63, 64, 65, 1000, 70_000] {
            payloads.append((0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            payloads.append((0..<length).map { _ in [0x22, 0x5C, 0x0A, 0x61, 0x7F, 0x1F][Int(random.next() % 6)] })
        }
        return payloads
    }()

    @Test func framesOfEveryKindAreWhatTheStringEncoderWroteAndParse() {
        var checked = 0
        for payload in Self.hostilePayloads {
            for opcode in [Opcode.text, .binary, .continuation, .ping, .close] {
                for (compressed, inflated) in [(false, false), (true, false), (true, true)] {
                    let frame = TapFrame(
                        connection: UInt64.max - 1,
                        time: 1_733_480_102.125,
                        from: checked % 2 == 0 ? .client : .upstream,
                        opcode: opcode,
                        messageOpcode: opcode == .continuation ? .text : opcode,
                        fin: checked % 3 != 0,
                        rsv1: compressed,
                        length: payload.count + (checked % 2),
                        payload: payload,
                        compressed: compressed,
                        inflatedLength: inflated ? payload.count + 5 : nil
                    )
                    for (mode, bound) in [
                        (TapPayloadMode.none, 0), (.truncated, 0), (.truncated, 1), (.truncated, 5), (.truncated, 1024), (.full, 3),
                    ] {
                        let new = Self.encoded(.frame(frame), mode, bound)
                        let old = LegacyTapJSON.line(.frame(frame), payload: mode, maxPayload: bound)
                        #expect(new == old, "payload \(payload.prefix(16)) opcode \(opcode) mode \(mode) \(bound)")
                        #expect(Self.parses(new), "\(new.prefix(200))")
                        checked += 1
                    }
                }
            }
        }
        #expect(checked > 1000)
    }

    @Test func opensClosesAndDroppedAreWhatTheStringEncoderWroteAndParse() {
        for (index, text) in Self.hostileStrings.enumerated() {
            let open = TapOpen(
                connection: UInt64(index),
                time: 1_733_480_000 + Double(index) / 1000,
                route: text,
                scheme: index % 2 == 0 ? "ws" : "wss",
                listener: text,
                client: "[::1]:\(index)",
                method: "GET",
                target: "/chat?q=" + text,
                headers: index == 0 ? [] : [(text, text), ("Host", "example"), ("X-\(index)", "\u{0}")]
            )
            let close = TapClose(
                connection: UInt64(index),
                time: 1,
                code: index == 0 ? nil : 1000 + index,
                reason: text,
                by: "gateway",
                leg: index % 2 == 0 ? .client : .upstream
            )
            for event in [TapEvent.open(open), .close(close)] {
                let new = Self.encoded(event, .full, 0)
                #expect(new == LegacyTapJSON.line(event, payload: .full, maxPayload: 0))
                #expect(Self.parses(new), "\(new.prefix(200))")
            }
        }
        for count in [0, 1, 9, 10, 4096, Int.max] {
            var buffer = ByteBuffer()
            TapEventEncoder.writeDropped(count, to: &buffer)
            #expect(String(buffer: buffer) == "{\"event\":\"dropped\",\"count\":\(count)}\n")
        }
    }

    /// Times are written as Swift printed them: whole milliseconds (what ``TapEvent/now`` gives) by digits,
    /// anything else through the standard library.
    @Test func timesArePrintedAsTheDoubleDescribesItself() {
        var random = SplitMix64(seed: 2028)
        var times: [Double] = [
            0, 0.001, 0.01, 0.1, 0.5, 1, 1.05, 1.005, 1.25, 1_733_480_102, 1_733_480_102.1, 1_733_480_102.012, 999_999_999_999.999,
        ]
        times += (0..<2000).map { _ in Double(random.next() % 4_000_000_000_000) / 1000 }
        times += [1e12, 1e13 + 0.5, 0.0001, 1.23456, -1, .infinity]
        for time in times {
            var buffer = ByteBuffer()
            TapEventEncoder.writeTime(time, to: &buffer)
            #expect(String(buffer: buffer) == "\(time)")
        }
        #expect("\(TapEvent.now)".count >= 12)
    }
}

/// Issue #14's encoder, `String` interpolation throughout, kept as the oracle the buffer encoder must
/// equal byte for byte.
enum LegacyTapJSON {
    static func line(_ event: TapEvent, payload: TapPayloadMode, maxPayload: Int) -> String {
        switch event {
        case .open(let open):
            let headers = open.headers.map { "[\(Self.quote($0.0)),\(Self.quote($0.1))]" }.joined(separator: ",")
            return "{\"event\":\"open\",\"connection\":\(open.connection),\"time\":\(open.time),\"route\":\(Self.quote(open.route)),"
                + "\"scheme\":\"\(open.scheme)\",\"listener\":\(Self.quote(open.listener)),"
                + "\"client\":\(Self.quote(open.client)),\"request\":{\"method\":\(Self.quote(open.method)),"
                + "\"target\":\(Self.quote(open.target)),\"headers\":[\(headers)]}}\n"
        case .frame(let frame):
            return Self.line(frame, payload: payload, maxPayload: maxPayload)
        case .close(let close):
            let code = close.code.map(String.init) ?? "null"
            return "{\"event\":\"close\",\"connection\":\(close.connection),\"time\":\(close.time),\"code\":\(code),"
                + "\"reason\":\(Self.quote(close.reason)),\"by\":\"\(close.by)\",\"leg\":\"\(close.leg.rawValue)\"}\n"
        }
    }

    static func line(_ frame: TapFrame, payload mode: TapPayloadMode, maxPayload: Int) -> String {
        let direction = frame.from == .client ? "client_to_upstream" : "upstream_to_client"
        var line = "{\"event\":\"frame\",\"connection\":\(frame.connection),\"time\":\(frame.time),\"direction\":\"\(direction)\","
        line += "\"opcode\":\"\(Self.name(frame.opcode))\",\"fin\":\(frame.fin),\"rsv1\":\(frame.rsv1),\"length\":\(frame.length),"
        let total = frame.inflatedLength ?? frame.length
        if mode == .none {
            line += "\"payload\":null,\"payload_encoding\":null,"
            line += "\"compressed\":\(frame.compressed),\"truncated\":\(total > 0)}\n"
            return line
        }
        var shown = frame.payload.prefix(mode == .full ? frame.payload.count : maxPayload)
        let raw = frame.compressed && frame.inflatedLength == nil
        let textual = !raw && (frame.messageOpcode == .text || frame.opcode == .text)
        var text: String?
        if textual {
            for _ in 0..<4 {
                if let decoded = String(validating: shown, as: UTF8.self) {
                    text = decoded
                    break
                }
                guard !shown.isEmpty, shown.count < total else { break }
                shown = shown.dropLast()
            }
        }
        if let text {
            line += "\"payload\":\(Self.quote(text)),\"payload_encoding\":\"text\","
        } else {
            let encoding = raw ? "deflate-base64" : "base64"
            line += "\"payload\":\"\(Data(shown).base64EncodedString())\",\"payload_encoding\":\"\(encoding)\","
        }
        line += "\"compressed\":\(frame.compressed),\"truncated\":\(shown.count < total)}\n"
        return line
    }

    static func name(_ opcode: Opcode) -> String {
        switch opcode {
        case .continuation: "continuation"
        case .text: "text"
        case .binary: "binary"
        case .close: "close"
        case .ping: "ping"
        case .pong: "pong"
        default: "reserved"
        }
    }

    static func quote(_ text: String) -> String { JSONLineLogHandler.quote(text) }
}
