import Foundation
import Testing

@testable import Gateway

/// `wsgate tap` reading the `/tap` stream (issue #14 §2): the gateway's event lines decode; hostile
/// lines (not UTF-8, not JSON, wrong types, unknown events, endless lines) are skipped and counted, never
/// a crash; lines split at every byte come out the same.
@Suite struct TapStreamEventTests {
    static let open =
        #"{"event":"open","connection":12,"time":1733480000.123,"route":"/chat","client":"127.0.0.1:50000","request":{"method":"GET","target":"/chat?name=a","headers":[["Host","127.0.0.1:8080"],["Authorization","[redacted]"]]}}"#
    static let text =
        #"{"event":"frame","connection":12,"time":1733480000.2,"direction":"client_to_upstream","opcode":"text","fin":true,"rsv1":false,"length":5,"payload":"hello","payload_encoding":"text","compressed":false,"truncated":false}"#
    static let binary =
        #"{"event":"frame","connection":12,"time":1733480000.3,"direction":"upstream_to_client","opcode":"binary","fin":true,"rsv1":false,"length":3,"payload":"AAH/","payload_encoding":"base64","compressed":false,"truncated":false}"#
    static let close = #"{"event":"close","connection":12,"time":1733480001,"code":1000,"reason":"bye","by":"client","leg":"client"}"#
    static let dropped = #"{"event":"dropped","count":7}"#

    @Test func decodesTheGatewaysEvents() {
        var decoder = TapLineDecoder()
        guard case .open(let open) = decoder.decode(Array(Self.open.utf8)) else {
            Issue.record("open")
            return
        }
        #expect(open.connection == 12 && open.route == "/chat" && open.client == "127.0.0.1:50000")
        #expect(open.target == "/chat?name=a" && open.headers[1] == .init(name: "Authorization", value: "[redacted]"))
        #expect(
            decoder.decode(Array(Self.text.utf8))
                == .frame(
                    .init(
                        connection: 12,
                        time: 1733480000.2,
                        direction: .clientToUpstream,
                        opcode: "text",
                        fin: true,
                        rsv1: false,
                        length: 5,
                        payload: .text("hello"),
                        compressed: false,
                        truncated: false
                    )
                )
        )
        guard case .frame(let binary) = decoder.decode(Array(Self.binary.utf8)) else {
            Issue.record("binary")
            return
        }
        #expect(binary.payload == .bytes([0, 1, 255]) && binary.direction == .upstreamToClient)
        #expect(
            decoder.decode(Array(Self.close.utf8))
                == .close(.init(connection: 12, time: 1_733_480_001, code: 1000, reason: "bye", by: "client", leg: "client"))
        )
        #expect(decoder.decode(Array(Self.dropped.utf8)) == .dropped(count: 7))
        let noPayload =
            #"{"event":"frame","connection":1,"time":1,"direction":"client_to_upstream","opcode":"ping","fin":true,"rsv1":false,"length":4,"payload":null,"payload_encoding":null,"compressed":false,"truncated":true}"#
        guard case .frame(let ping) = decoder.decode(Array(noPayload.utf8)) else {
            Issue.record("payload null")
            return
        }
        #expect(ping.payload == nil && ping.truncated)
        let noCode = #"{"event":"close","connection":1,"time":1,"code":null,"reason":"","by":"upstream","leg":"upstream"}"#
        #expect(decoder.decode(Array(noCode.utf8)) == .close(.init(connection: 1, time: 1, code: nil, reason: "", by: "upstream", leg: "upstream")))
        #expect(decoder.broken == 0 && decoder.unknown == 0)
    }

    /// Hostile lines: each is skipped and counted; the next good line still decodes.
    @Test(
        arguments: [
            ([0xFF, 0xFE, 0x7B, 0x7D], "broken"),  // not UTF-8
            (Array(#"{"event":"frame","connection":1"#.utf8), "broken"),  // cut JSON
            (Array("not json at all".utf8), "broken"),
            (Array("[1,2,3]".utf8), "broken"),
            (Array(#"{"event":"frame","connection":"12","time":1}"#.utf8), "broken"),  // wrong type
            (Array(#"{"event":"frame","connection":1,"time":1,"direction":"sideways","opcode":"text","length":1}"#.utf8), "broken"),
            (Array(#"{"event":"frame","connection":1,"time":1,"direction":"client_to_upstream","opcode":"text","length":-4}"#.utf8), "broken"),
            (
                Array(
                    #"{"event":"frame","connection":1,"time":1,"direction":"client_to_upstream","opcode":"binary","length":1,"payload":"@@@","payload_encoding":"base64"}"#
                        .utf8
                ), "broken"
            ),
            (Array(#"{"event":"open","connection":1,"time":1,"request":{"headers":[["a"]]}}"#.utf8), "broken"),
            (Array(#"{"event":"dropped","count":-1}"#.utf8), "broken"),
            (Array(#"{"event":"connection_upgraded_to_h3","connection":1}"#.utf8), "unknown"),
            (Array(#"{"connection":1}"#.utf8), "broken"),
        ] as [([UInt8], String)]
    )
    func skipsAndCountsHostileLines(line: [UInt8], kind: String) {
        var decoder = TapLineDecoder()
        #expect(decoder.decode(line) == nil)
        #expect(kind == "broken" ? decoder.broken == 1 : decoder.unknown == 1)
        #expect(decoder.decode(Array(Self.dropped.utf8)) == .dropped(count: 7))
    }

    /// Raw deflate data (a tap attached mid-message) is kept as bytes, not taken for a broken line.
    @Test func rawDeflatePayloadDecodesAsCompressedBytes() {
        var decoder = TapLineDecoder()
        let line =
            #"{"event":"frame","connection":1,"time":1,"direction":"client_to_upstream","opcode":"continuation","fin":true,"rsv1":false,"length":3,"payload":"AAH/","payload_encoding":"deflate-base64","compressed":true,"truncated":false}"#
        guard case .frame(let frame) = decoder.decode(Array(line.utf8)) else {
            Issue.record("deflate-base64")
            return
        }
        #expect(frame.payload == .bytes([0, 1, 255]) && frame.compressed)
        #expect(decoder.broken == 0)
    }

    @Test func blankLinesAreNeitherEventsNorErrors() {
        var decoder = TapLineDecoder()
        #expect(decoder.decode([UInt8]()) == nil)
        #expect(decoder.decode(Array("  \r".utf8)) == nil)
        #expect(decoder.broken == 0 && decoder.unknown == 0)
    }

    /// The stream split at every byte gives the same lines as in one piece; CRLF is accepted.
    @Test func linesSplitAtEveryByteComeOutWhole() {
        let stream = Array((Self.open + "\n" + Self.text + "\r\n" + Self.dropped + "\n" + Self.close).utf8)
        for cut in 0...stream.count {
            var splitter = TapLineSplitter()
            var lines = splitter.append(stream[..<cut]) + splitter.append(stream[cut...])
            if let last = splitter.finish() { lines.append(last) }
            #expect(lines.map { String(decoding: $0, as: UTF8.self) } == [Self.open, Self.text, Self.dropped, Self.close], "cut at \(cut)")
        }
    }

    /// A line longer than the bound is dropped whole and counted; memory stays at the bound even when no
    /// newline ever comes.
    @Test func anEndlessLineIsDroppedAndCounted() {
        var splitter = TapLineSplitter(maxLineLength: 64)
        var lines = splitter.append(Array(repeating: UInt8(ascii: "x"), count: 10_000))
        lines += splitter.append(Array(repeating: UInt8(ascii: "y"), count: 10_000))
        #expect(lines.isEmpty && splitter.oversized == 1)
        lines = splitter.append(Array(("zzz\n" + Self.dropped + "\n").utf8))
        #expect(lines.map { String(decoding: $0, as: UTF8.self) } == [Self.dropped])
        #expect(splitter.finish() == nil)
        _ = splitter.append(Array(repeating: UInt8(ascii: "x"), count: 100))
        #expect(splitter.finish() == nil && splitter.oversized == 2)
    }
}
