import Foundation
import Frames

/// One event of the frame tap (issue #14 §2), as the relay produces it: values, no JSON. It is
/// rendered as one NDJSON line on the admin listener's event loop (``jsonLine(payload:)``), so a
/// tapped relay pays for a copy of the captured bytes, never for the encoding.
enum TapEvent: Sendable, Equatable {
    case open(TapOpen)
    case frame(TapFrame)
    case close(TapClose)

    /// The bytes this event holds, for the tap's memory bound.
    var size: Int {
        switch self {
        case .open(let open): 256 + open.target.utf8.count + open.headers.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count + 8 }
        case .frame(let frame): 160 + frame.payload.count
        case .close(let close): 128 + close.reason.utf8.count
        }
    }

    /// The seconds since 1970, with milliseconds, of an event happening now.
    static var now: Double { (Date().timeIntervalSince1970 * 1000).rounded() / 1000 }

    /// One JSON object and a newline. `payload` is the subscriber's capture mode and bound (a frame's
    /// captured bytes are cut to it).
    func jsonLine(payload: TapPayloadMode, maxPayload: Int) -> String {
        switch self {
        case .open(let open):
            let headers = open.headers.map { "[\(Self.quote($0.0)),\(Self.quote($0.1))]" }.joined(separator: ",")
            return "{\"event\":\"open\",\"connection\":\(open.connection),\"time\":\(open.time),\"route\":\(Self.quote(open.route)),"
                + "\"scheme\":\"\(open.scheme)\",\"listener\":\(Self.quote(open.listener)),"
                + "\"client\":\(Self.quote(open.client)),\"request\":{\"method\":\(Self.quote(open.method)),"
                + "\"target\":\(Self.quote(open.target)),\"headers\":[\(headers)]}}\n"
        case .frame(let frame):
            return frame.jsonLine(payload: payload, maxPayload: maxPayload)
        case .close(let close):
            let code = close.code.map(String.init) ?? "null"
            return "{\"event\":\"close\",\"connection\":\(close.connection),\"time\":\(close.time),\"code\":\(code),"
                + "\"reason\":\(Self.quote(close.reason)),\"by\":\"\(close.by)\",\"leg\":\"\(close.leg.rawValue)\"}\n"
        }
    }

    /// `{"event":"dropped","count":N}`: events this tap lost because it fell behind.
    static func droppedLine(_ count: Int) -> String {
        "{\"event\":\"dropped\",\"count\":\(count)}\n"
    }

    static func quote(_ text: String) -> String { JSONLineLogHandler.quote(text) }
}

/// How much of each frame's payload a tap shows (`payload=` on `/tap`).
enum TapPayloadMode: String, Sendable, Equatable {
    case none, truncated, full
}

/// The handshake of a connection that started relaying, with its secrets redacted (``TapRedaction``).
struct TapOpen: Sendable, Equatable {
    var connection: UInt64
    var time: Double
    var route: String
    /// `wss` when the client's connection used TLS, else `ws`: what the client put in its URL.
    var scheme: String
    /// The listener it came in on (its name in the configuration).
    var listener: String
    var client: String
    var method: String
    var target: String
    var headers: [(String, String)]

    static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.connection == rhs.connection && lhs.time == rhs.time && lhs.route == rhs.route && lhs.scheme == rhs.scheme
            && lhs.listener == rhs.listener && lhs.client == rhs.client
            && lhs.method == rhs.method && lhs.target == rhs.target && lhs.headers.elementsEqual(rhs.headers, by: { $0 == $1 })
    }
}

/// One relayed frame, with up to the tap's capture bound of its payload (unmasked).
struct TapFrame: Sendable, Equatable {
    var connection: UInt64
    var time: Double
    /// The leg it came from.
    var from: Side
    var opcode: Opcode
    /// For a continuation frame, the opcode of the message it continues (for the payload's encoding).
    var messageOpcode: Opcode
    var fin: Bool
    var rsv1: Bool
    var length: Int
    var payload: [UInt8]
    /// The message is permessage-deflate compressed (RSV1 on its first frame).
    var compressed: Bool
    /// For a compressed frame shown inflated: how many bytes its compressed bytes inflated to (the
    /// payload is up to the bound of those). `nil`: the payload is the wire bytes — for a compressed
    /// frame, raw deflate data (`payload_encoding` `deflate-base64`), e.g. a tap attached mid-message.
    var inflatedLength: Int? = nil

    func jsonLine(payload mode: TapPayloadMode, maxPayload: Int) -> String {
        let direction = self.from == .client ? "client_to_upstream" : "upstream_to_client"
        var line = "{\"event\":\"frame\",\"connection\":\(self.connection),\"time\":\(self.time),\"direction\":\"\(direction)\","
        line += "\"opcode\":\"\(Self.name(self.opcode))\",\"fin\":\(self.fin),\"rsv1\":\(self.rsv1),\"length\":\(self.length),"
        // The length of what is shown: the inflated bytes of a compressed frame shown inflated.
        let total = self.inflatedLength ?? self.length
        if mode == .none {
            line += "\"payload\":null,\"payload_encoding\":null,"
            line += "\"compressed\":\(self.compressed),\"truncated\":\(total > 0)}\n"
            return line
        }
        var shown = self.payload.prefix(mode == .full ? self.payload.count : maxPayload)
        let raw = self.compressed && self.inflatedLength == nil
        let textual = !raw && (self.messageOpcode == .text || self.opcode == .text)
        var text: String?
        if textual {
            // A cut inside a UTF-8 sequence drops the sequence's first bytes (at most 3).
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
            line += "\"payload\":\(TapEvent.quote(text)),\"payload_encoding\":\"text\","
        } else {
            let encoding = raw ? "deflate-base64" : "base64"
            line += "\"payload\":\"\(Data(shown).base64EncodedString())\",\"payload_encoding\":\"\(encoding)\","
        }
        line += "\"compressed\":\(self.compressed),\"truncated\":\(shown.count < total)}\n"
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
}

/// A leg's close: a Close frame from its peer (`by` the peer's side), one the gateway sent (`by`
/// `gateway`), or its TCP connection lost without one (code 1006, `by` the peer's side).
struct TapClose: Sendable, Equatable {
    var connection: UInt64
    var time: Double
    var code: Int?
    var reason: String
    /// `client`, `upstream` or `gateway`.
    var by: String
    var leg: Side
}
