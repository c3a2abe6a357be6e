import Foundation
import Testing

@testable import Gateway

/// `wsgate tap`'s terminal lines: arrows by direction, times in the chosen zone, colours only when asked,
/// and no terminal control sequence from a payload ever reaches the terminal.
@Suite struct TapTerminalViewTests {
    let plain = TapTerminalView(colors: false, timeZone: TimeZone(identifier: "UTC")!)

    func frame(_ direction: TapStreamEvent.Direction, _ payload: TapStreamEvent.Payload?, opcode: String = "text", length: Int = 5) -> TapStreamEvent
    {
        .frame(
            .init(
                connection: 12,
                time: 1733480102.125,
                direction: direction,
                opcode: opcode,
                fin: true,
                rsv1: false,
                length: length,
                payload: payload,
                compressed: false,
                truncated: false
            )
        )
    }

    @Test func oneLinePerFrameWithArrowsTimeOpcodeLengthAndPreview() {
        #expect(self.plain.line(self.frame(.clientToUpstream, .text("hello"))) == "10:15:02.125  #12  →  text               5 B  hello")
        #expect(
            self.plain.line(self.frame(.upstreamToClient, .bytes([0, 1, 0xFF]), opcode: "binary", length: 3))
                == "10:15:02.125  #12  ←  binary             3 B  hex 00 01 ff"
        )
        #expect(self.plain.line(self.frame(.upstreamToClient, nil, opcode: "ping", length: 0)).hasSuffix("(payload not captured)"))
        #expect(
            self.plain.line(self.frame(.clientToUpstream, .bytes([0x03, 0xE8, 0x62, 0x79, 0x65]), opcode: "close")).hasSuffix("code 1000 \"bye\"")
        )
        let open = TapStreamEvent.open(
            .init(connection: 3, time: 1_733_480_102, route: "/chat", client: "127.0.0.1:5", method: "GET", target: "/chat?name=a", headers: [])
        )
        #expect(self.plain.line(open) == "10:15:02.000  #3  open   GET /chat?name=a  from 127.0.0.1:5  route /chat")
        let close = TapStreamEvent.close(.init(connection: 3, time: 1_733_480_102, code: 1000, reason: "bye", by: "client", leg: "client"))
        #expect(self.plain.line(close) == "10:15:02.000  #3  close  1000 \"bye\" by client (client leg)")
        #expect(self.plain.line(.dropped(count: 7)).hasPrefix("… 7 events dropped"))
    }

    /// ESC, CSI (C1), BEL, bidirectional overrides and newlines in a payload are shown escaped.
    @Test func controlCharactersInAPayloadAreEscaped() {
        let hostile = "\u{1B}]0;owned\u{07}\u{1B}[2J\u{9B}31m\nnext\u{202E}txt"
        let line = self.plain.line(self.frame(.clientToUpstream, .text(hostile)))
        #expect(!line.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0.value == 0x202E })
        #expect(line.hasSuffix(#"\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31m\nnext\u{202e}txt"#))
    }

    @Test func longPayloadsAreCut() {
        let view = TapTerminalView(colors: false, timeZone: TimeZone(identifier: "UTC")!, previewLength: 10)
        #expect(view.line(self.frame(.clientToUpstream, .text(String(repeating: "a", count: 50)), length: 50)).hasSuffix("aaaaaaaaaa…"))
    }

    @Test func coloursOnATerminalUnlessNO_COLORIsSet() {
        #expect(TapTerminalView.wantsColors(isTerminal: true, noColor: nil))
        #expect(TapTerminalView.wantsColors(isTerminal: true, noColor: ""))
        #expect(!TapTerminalView.wantsColors(isTerminal: true, noColor: "1"))
        #expect(!TapTerminalView.wantsColors(isTerminal: false, noColor: nil))
    }

    @Test func coloursOnlyWhenAsked() {
        let coloured = TapTerminalView(colors: true, timeZone: TimeZone(identifier: "UTC")!)
        #expect(coloured.line(self.frame(.clientToUpstream, .text("hi"))).contains("\u{1B}[36m→\u{1B}[0m"))
        #expect(!self.plain.line(self.frame(.clientToUpstream, .text("hi"))).contains("\u{1B}"))
    }
}
