import Foundation

/// `wsgate tap`'s terminal view: one line per event, e.g.
///
/// ```
/// 10:15:02.125  #12  open   GET /chat?name=alice  from 127.0.0.1:50000  route /chat
/// 10:15:02.131  #12  →  text          5 B  hello
/// 10:15:02.132  #12  ←  text         41 B  {"type":"message","from":"alice","text":"hello"}
/// 10:15:04.010  #12  close  1000 "bye" by client (client leg)
/// ```
///
/// `→` is client to upstream, `←` upstream to client. Payloads are attacker-controlled: a preview
/// shows control characters (C0, DEL, C1, which include the terminal's escape sequences) as `\u{…}`
/// escapes, so a frame cannot move the cursor, retitle the window or recolour the view; binary
/// payloads show as hex. Colours (ANSI SGR) only when ``colors`` is on: `wsgate tap` turns them on when
/// standard output is a terminal and `NO_COLOR` is unset or empty (no-color.org).
public struct TapTerminalView: Sendable {
    public var colors: Bool
    /// The time zone of the time column.
    public var timeZone: TimeZone
    /// The longest payload preview, in characters (binary: bytes shown in hex).
    public var previewLength: Int

    public init(colors: Bool, timeZone: TimeZone = .current, previewLength: Int = 96) {
        self.colors = colors
        self.timeZone = timeZone
        self.previewLength = previewLength
    }

    /// Whether to colour: standard output is a terminal and `NO_COLOR` is unset or empty (no-color.org:
    /// "when present and not an empty string", colour is off).
    public static func wantsColors(isTerminal: Bool, noColor: String?) -> Bool {
        isTerminal && (noColor ?? "").isEmpty
    }

    /// The line for `event` (without a newline).
    public func line(_ event: TapStreamEvent) -> String {
        switch event {
        case .open(let open):
            let request = "\(Self.clean(open.method, 16)) \(Self.clean(open.target, 200))"
            return
                "\(self.time(open.time))  \(self.id(open.connection))  \(self.paint("open ", .green))  \(request)  from \(Self.clean(open.client, 64))  route \(Self.clean(open.route, 64))"
        case .frame(let frame):
            let arrow = frame.direction == .clientToUpstream ? self.paint("→", .cyan) : self.paint("←", .magenta)
            var flags = ""
            if !frame.fin { flags += " (more)" }
            if frame.compressed { flags += " (deflated)" }
            let opcode = Self.clean(frame.opcode, 12).padding(toLength: 12, withPad: " ", startingAt: 0)
            let length = String(frame.length)
            let size = String(repeating: " ", count: max(0, 8 - length.count)) + length + " B"
            var line = "\(self.time(frame.time))  \(self.id(frame.connection))  \(arrow)  \(opcode)\(size)  \(self.preview(frame))"
            if frame.truncated { line += self.paint(" …(truncated)", .dim) }
            return line + flags
        case .close(let close):
            let code = close.code.map(String.init) ?? "no code"
            let reason = close.reason.isEmpty ? "" : " " + Self.quoted(close.reason, 123)
            return
                "\(self.time(close.time))  \(self.id(close.connection))  \(self.paint("close", .red))  \(code)\(reason) by \(Self.clean(close.by, 16)) (\(Self.clean(close.leg, 16)) leg)"
        case .dropped(let count):
            return self.paint("… \(count) event\(count == 1 ? "" : "s") dropped: this tap fell behind (the gateway never waits for it)", .yellow)
        }
    }

    /// The summary printed when the stream ends: skipped lines, if any.
    public func summary(decoder: TapLineDecoder, splitter: TapLineSplitter) -> String? {
        var parts: [String] = []
        if decoder.broken > 0 { parts.append("\(decoder.broken) unreadable") }
        if decoder.unknown > 0 { parts.append("\(decoder.unknown) of unknown events") }
        if splitter.oversized > 0 { parts.append("\(splitter.oversized) over \(splitter.maxLineLength) bytes") }
        guard !parts.isEmpty else { return nil }
        return "wsgate tap: skipped lines: " + parts.joined(separator: ", ")
    }

    private func preview(_ frame: TapStreamEvent.Frame) -> String {
        switch frame.payload {
        case nil:
            return self.paint("(payload not captured)", .dim)
        case .text(let text):
            return Self.clean(text, self.previewLength)
        case .bytes(let bytes) where frame.opcode == "close" && bytes.count >= 2:
            // RFC 6455 §5.5.1: a two-byte code, then a UTF-8 reason.
            let code = Int(bytes[0]) << 8 | Int(bytes[1])
            let reason = String(decoding: bytes.dropFirst(2), as: UTF8.self)
            return "code \(code)" + (reason.isEmpty ? "" : " " + Self.quoted(reason, self.previewLength))
        case .bytes(let bytes):
            let shown = bytes.prefix(max(1, self.previewLength / 3))
            var hex = shown.map { String($0, radix: 16).leftPadded(2) }.joined(separator: " ")
            if shown.count < bytes.count { hex += " …" }
            return self.paint("hex ", .dim) + hex
        }
    }

    private func time(_ seconds: Double) -> String {
        guard seconds.isFinite, abs(seconds) < 1e11 else { return "??:??:??.???" }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = self.timeZone
        let date = Date(timeIntervalSince1970: seconds)
        let parts = calendar.dateComponents([.hour, .minute, .second], from: date)
        let millis = Int((seconds - seconds.rounded(.down)) * 1000)
        let text =
            String(parts.hour ?? 0).leftPadded(2, "0") + ":" + String(parts.minute ?? 0).leftPadded(2, "0") + ":"
            + String(parts.second ?? 0).leftPadded(2, "0") + "." + String(millis).leftPadded(3, "0")
        return self.paint(text, .dim)
    }

    private func id(_ connection: UInt64) -> String {
        self.paint("#\(connection)", .bold)
    }

    /// `text` with control characters escaped, cut to `limit` characters (`…` marks the cut).
    static func clean(_ text: String, _ limit: Int) -> String {
        var result = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count >= limit {
                result += "…"
                break
            }
            switch scalar.value {
            case 0x0A: result += "\\n"
            case 0x0D: result += "\\r"
            case 0x09: result += "\\t"
            case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069:
                // C0, DEL, C1 (ESC, CSI), line separators and bidirectional overrides.
                result += "\\u{\(String(scalar.value, radix: 16))}"
            default:
                result.unicodeScalars.append(scalar)
            }
            count += 1
        }
        return result
    }

    static func quoted(_ text: String, _ limit: Int) -> String {
        "\"" + Self.clean(text, limit).replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    enum Color: String {
        case green = "32"
        case cyan = "36"
        case magenta = "35"
        case red = "31"
        case yellow = "33"
        case dim = "2"
        case bold = "1"
    }

    private func paint(_ text: String, _ color: Color) -> String {
        self.colors ? "\u{1B}[\(color.rawValue)m\(text)\u{1B}[0m" : text
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int, _ pad: Character = "0") -> String {
        self.count >= width ? self : String(repeating: pad, count: width - self.count) + self
    }
}
