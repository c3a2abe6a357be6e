import Foundation

/// One line of the admin listener's `/tap` stream (issue #14 §2, the NDJSON shapes of
/// docs/DESIGN-NOTES.md "Frame tap"), as `wsgate tap` reads it. The stream comes from a gateway the
/// user points the tool at, through whatever sits between: every field is checked, and a line that is
/// not one of these events is skipped and counted by ``TapLineDecoder``, never a crash.
public enum TapStreamEvent: Equatable, Sendable {
    case open(Open)
    case frame(Frame)
    case close(Close)
    /// `count` events the gateway dropped because this tap fell behind.
    case dropped(count: Int)

    /// A connection's handshake (secrets already redacted by the gateway).
    public struct Open: Equatable, Sendable {
        public var connection: UInt64
        public var time: Double
        public var route: String
        /// `ws` or `wss` as the client connected (`nil` from a gateway that does not say).
        public var scheme: String? = nil
        /// The gateway listener the connection came in on.
        public var listener: String? = nil
        public var client: String
        public var method: String
        public var target: String
        public var headers: [Header]
    }

    /// One header as the tap shows it.
    public struct Header: Equatable, Sendable {
        public var name: String
        public var value: String
    }

    /// Which way a frame went.
    public enum Direction: String, Equatable, Sendable {
        case clientToUpstream = "client_to_upstream"
        case upstreamToClient = "upstream_to_client"
    }

    /// One relayed frame. `payload` is what the tap captured (`nil` with `payload=none`), as text or as
    /// the bytes decoded from base64.
    public struct Frame: Equatable, Sendable {
        public var connection: UInt64
        public var time: Double
        public var direction: Direction
        /// `text`, `binary`, `continuation`, `close`, `ping`, `pong` (or whatever else the gateway names).
        public var opcode: String
        public var fin: Bool
        public var rsv1: Bool
        public var length: Int
        public var payload: Payload?
        /// The message is permessage-deflate compressed; its payload is shown inflated unless ``rawDeflate``.
        public var compressed: Bool
        public var truncated: Bool
        /// The payload is the deflate data as it travelled (`payload_encoding` `deflate-base64`), not the message.
        public var rawDeflate = false
    }

    /// A captured payload.
    public enum Payload: Equatable, Sendable {
        case text(String)
        case bytes([UInt8])
    }

    /// A leg's close.
    public struct Close: Equatable, Sendable {
        public var connection: UInt64
        public var time: Double
        /// `nil`: no code (a Close without a body).
        public var code: Int?
        public var reason: String
        /// `client`, `upstream` or `gateway`.
        public var by: String
        /// `client` or `upstream`.
        public var leg: String
    }
}

/// Decodes `/tap` lines into ``TapStreamEvent``s, counting what it skips.
public struct TapLineDecoder: Sendable {
    /// Lines that were not one of the events: not UTF-8, not JSON, missing or mistyped fields.
    public private(set) var broken = 0
    /// Well-formed JSON objects with an `event` this tool does not know (a newer gateway's).
    public private(set) var unknown = 0

    public init() {}

    /// The event on `line` (without its newline), or `nil` for an empty or skipped line.
    public mutating func decode(_ line: some Collection<UInt8>) -> TapStreamEvent? {
        let bytes = Array(line)
        if bytes.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\t") }) { return nil }
        guard String(validating: bytes, as: UTF8.self) != nil,
            let wire = try? JSONDecoder().decode(Wire.self, from: Data(bytes))
        else {
            self.broken += 1
            return nil
        }
        switch Self.event(wire) {
        case .some(.some(let event)):
            return event
        case .some(.none):
            self.broken += 1
            return nil
        case .none:
            self.unknown += 1
            return nil
        }
    }

    /// `nil`: an unknown event; `.some(nil)`: a known event with a field missing or wrong.
    private static func event(_ wire: Wire) -> TapStreamEvent?? {
        switch wire.event {
        case "open":
            guard let connection = wire.connection, let time = wire.time, let request = wire.request else { return .some(nil) }
            var headers: [TapStreamEvent.Header] = []
            for pair in request.headers ?? [] {
                guard pair.count == 2 else { return .some(nil) }
                headers.append(.init(name: pair[0], value: pair[1]))
            }
            let open = TapStreamEvent.Open(
                connection: connection,
                time: time,
                route: wire.route ?? "",
                scheme: wire.scheme == "wss" ? "wss" : (wire.scheme == "ws" ? "ws" : nil),
                listener: wire.listener,
                client: wire.client ?? "",
                method: request.method ?? "GET",
                target: request.target ?? "/",
                headers: headers
            )
            return .open(open)
        case "frame":
            guard let connection = wire.connection, let time = wire.time, let directionText = wire.direction,
                let direction = TapStreamEvent.Direction(rawValue: directionText), let opcode = wire.opcode,
                let length = wire.length, length >= 0
            else { return .some(nil) }
            var payload: TapStreamEvent.Payload?
            if let text = wire.payload {
                switch wire.payload_encoding ?? "text" {
                case "text": payload = .text(text)
                case "base64", "deflate-base64":  // raw deflate data: shown as bytes (`compressed` says so)
                    guard let data = Data(base64Encoded: text) else { return .some(nil) }
                    payload = .bytes(Array(data))
                default: return .some(nil)
                }
            }
            let frame = TapStreamEvent.Frame(
                connection: connection,
                time: time,
                direction: direction,
                opcode: opcode,
                fin: wire.fin ?? true,
                rsv1: wire.rsv1 ?? false,
                length: length,
                payload: payload,
                compressed: wire.compressed ?? false,
                truncated: wire.truncated ?? false,
                rawDeflate: wire.payload_encoding == "deflate-base64"
            )
            return .frame(frame)
        case "close":
            guard let connection = wire.connection, let time = wire.time else { return .some(nil) }
            return .close(
                .init(connection: connection, time: time, code: wire.code, reason: wire.reason ?? "", by: wire.by ?? "", leg: wire.leg ?? "")
            )
        case "dropped":
            guard let count = wire.count, count >= 0 else { return .some(nil) }
            return .dropped(count: count)
        default:
            return nil
        }
    }

    /// Every field any event has; which are required depends on `event`.
    private struct Wire: Decodable {
        var event: String
        var connection: UInt64?
        var time: Double?
        var route: String?
        var scheme: String?
        var listener: String?
        var client: String?
        var request: Request?
        var direction: String?
        var opcode: String?
        var fin: Bool?
        var rsv1: Bool?
        var length: Int?
        var payload: String?
        var payload_encoding: String?
        var compressed: Bool?
        var truncated: Bool?
        var code: Int?
        var reason: String?
        var by: String?
        var leg: String?
        var count: Int?
    }

    private struct Request: Decodable {
        var method: String?
        var target: String?
        var headers: [[String]]?
    }
}

/// Splits a byte stream into lines (LF, an optional CR before it dropped), keeping at most
/// `maxLineLength` bytes of a line in memory: a longer line is dropped whole and counted, so a gateway
/// (or anything in between) that never sends a newline cannot grow the tool without bound.
public struct TapLineSplitter: Sendable {
    public let maxLineLength: Int
    /// Lines dropped for being longer than ``maxLineLength``.
    public private(set) var oversized = 0
    private var pending: [UInt8] = []
    /// Inside a line already over the limit: its bytes are dropped up to the next newline.
    private var discarding = false

    /// 4 MiB: a `payload=full` frame of the gateway's largest capture, base64-encoded, fits.
    public init(maxLineLength: Int = 4 << 20) {
        self.maxLineLength = maxLineLength
    }

    /// The complete lines in `bytes` (with what came before them), without their line ends.
    public mutating func append(_ bytes: some Collection<UInt8>) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                if self.discarding {
                    self.discarding = false
                } else {
                    if self.pending.last == UInt8(ascii: "\r") { self.pending.removeLast() }
                    lines.append(self.pending)
                }
                self.pending.removeAll(keepingCapacity: true)
            } else if !self.discarding {
                if self.pending.count >= self.maxLineLength {
                    self.oversized += 1
                    self.discarding = true
                    self.pending = []
                } else {
                    self.pending.append(byte)
                }
            }
        }
        return lines
    }

    /// The last line if the stream ended without a newline after it.
    public mutating func finish() -> [UInt8]? {
        defer { self.pending = [] }
        guard !self.discarding, !self.pending.isEmpty else { return nil }
        return self.pending
    }
}
