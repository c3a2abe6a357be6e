import Foundation
import Frames
import NIOCore

/// One event of the frame tap (issue #14 §2), as the relay produces it: values, no JSON. It is
/// written as one NDJSON line into the admin connection's buffer on the admin listener's event loop
/// (``TapEventEncoder``), so a tapped relay pays for a copy of the captured bytes, never for the encoding.
enum TapEvent: Sendable, Equatable {
    /// Boxed: an `open` is rare and large (strings and headers); a frame event stays small to copy.
    indirect case open(TapOpen)
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

    /// One JSON object and a newline (``TapEventEncoder``), as a `String`: for tests and tools; the
    /// admin side encodes straight into its buffer.
    func jsonLine(payload: TapPayloadMode, maxPayload: Int) -> String {
        var buffer = ByteBuffer()
        TapEventEncoder.write(self, payload: payload, maxPayload: maxPayload, to: &buffer)
        return String(buffer: buffer)
    }

    /// `{"event":"dropped","count":N}`, as a `String` (``TapEventEncoder/writeDropped(_:to:)``).
    static func droppedLine(_ count: Int) -> String {
        var buffer = ByteBuffer()
        TapEventEncoder.writeDropped(count, to: &buffer)
        return String(buffer: buffer)
    }
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
    /// The connection was already relaying when the tap attached (`"attached_live":true`): this `open`
    /// is what the live table keeps of it (``TapRedaction`` applied), sent before its first frame
    /// to that tap, so the frames can be labelled. `time` is then when the connection started.
    var attachedLive = false

    static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.connection == rhs.connection && lhs.attachedLive == rhs.attachedLive && lhs.time == rhs.time && lhs.route == rhs.route
            && lhs.scheme == rhs.scheme
            && lhs.listener == rhs.listener && lhs.client == rhs.client
            && lhs.method == rhs.method && lhs.target == rhs.target && lhs.headers.elementsEqual(rhs.headers, by: { $0 == $1 })
    }
}

extension TapOpen {
    /// The `open` of a connection that was relaying before the tap attached (``attachedLive``): what the
    /// live table keeps of it, the target redacted, no headers; `time` is when it started (`now` is
    /// its event loop's clock, whose distance from `started` is taken off the wall clock).
    init(live info: LiveConnectionInfo, redaction: TapRedaction, now: NIODeadline) {
        let age = Double(max(0, (now - info.started).nanoseconds / 1_000_000)) / 1000
        self.init(
            connection: info.id,
            time: ((TapEvent.now - age) * 1000).rounded() / 1000,
            route: info.route,
            scheme: info.scheme,
            listener: info.listener,
            client: info.client,
            method: info.method,
            target: redaction.including(queryParameters: info.tokenQueryParameters).redactedTarget(info.target),
            headers: [],
            attachedLive: true
        )
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
        TapEvent.frame(self).jsonLine(payload: mode, maxPayload: maxPayload)
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
