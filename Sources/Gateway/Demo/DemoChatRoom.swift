import Frames
import NIOConcurrencyHelpers
import NIOCore

/// The `/chat` room of the demo upstream: who is online, and the fan-out of presence and messages.
///
/// Members live on different event loops, so the member list is guarded by a lock. Frames are encoded
/// once per broadcast and handed to each member on its own event loop (`EventLoop.execute`), where its
/// handler writes them. The tasks are enqueued while the lock is held, so every member sees the
/// broadcasts in the same order.
///
/// Messages (DESIGN: the demo's chat protocol), all text frames with a JSON object:
/// - `{"type":"presence","online":["alice","bob"]}`: after every join and leave, to everyone in the
///   room, names sorted;
/// - `{"type":"message","from":"alice","text":"…"}`: each text message a member sends, to everyone,
///   the sender included.
final class DemoChatRoom: Sendable {
    /// The longest name a member may have, in characters; longer `?name=` values are cut.
    static let maxNameLength = 32

    /// A member as the room knows it.
    struct Member: Sendable {
        var name: String
        /// The member's handler, usable on its own event loop only.
        var handler: NIOLoopBound<DemoChatHandler>
    }

    private struct State {
        var members: [Int: Member] = [:]
        var nextID = 1
        /// The number of the next `guest-N` name.
        var nextGuest = 1
    }

    private let state = NIOLockedValueBox(State())

    init() {}

    /// The names online now, sorted.
    var onlineNames: [String] {
        self.state.withLockedValue { $0.members.values.map(\.name) }.sorted()
    }

    /// Adds a member (named `requestedName`, or `guest-N` if it is `nil`) and tells everyone, the new
    /// member included, who is online. Returns the member's id (for ``leave(id:)``) and name.
    func join(requestedName: String?, handler: NIOLoopBound<DemoChatHandler>) -> (id: Int, name: String) {
        self.state.withLockedValue { state in
            let id = state.nextID
            state.nextID += 1
            let name: String
            if let requestedName {
                name = requestedName
            } else {
                name = "guest-\(state.nextGuest)"
                state.nextGuest += 1
            }
            state.members[id] = Member(name: name, handler: handler)
            Self.broadcastPresence(state.members)
            return (id, name)
        }
    }

    /// Removes a member and tells those who remain. Leaving twice is harmless.
    func leave(id: Int) {
        self.state.withLockedValue { state in
            guard state.members.removeValue(forKey: id) != nil else { return }
            Self.broadcastPresence(state.members)
        }
    }

    /// Sends `text` from `name` to every member.
    func broadcast(from name: String, text: String) {
        var json = #"{"type":"message","from":"#
        Self.appendJSONString(name, to: &json)
        json += #","text":"#
        Self.appendJSONString(text, to: &json)
        json += "}"
        let frame = Self.textFrame(json)
        self.state.withLockedValue { state in
            Self.send(frame, to: state.members)
        }
    }

    /// Called with the lock held.
    private static func broadcastPresence(_ members: [Int: Member]) {
        guard !members.isEmpty else { return }
        var json = #"{"type":"presence","online":["#
        for (index, name) in members.values.map(\.name).sorted().enumerated() {
            if index > 0 { json += "," }
            Self.appendJSONString(name, to: &json)
        }
        json += "]}"
        Self.send(Self.textFrame(json), to: members)
    }

    /// Called with the lock held: enqueues `frame` on each member's event loop.
    private static func send(_ frame: ByteBuffer, to members: [Int: Member]) {
        for member in members.values {
            let handler = member.handler
            handler.eventLoop.execute {
                handler.value.deliver(frame)
            }
        }
    }

    /// An unmasked, unfragmented text frame (server role, RFC 6455 §5.6).
    static func textFrame(_ text: String) -> ByteBuffer {
        let header = FrameHeader(opcode: .text, payloadLength: text.utf8.count)
        var buffer = ByteBufferAllocator().buffer(capacity: header.encodedSize + text.utf8.count)
        header.write(to: &buffer)
        buffer.writeString(text)
        return buffer
    }

    /// Appends `text` as a JSON string literal (RFC 8259 §7): quotes, backslash and the control
    /// characters U+0000–U+001F are escaped; everything else is written as UTF-8.
    static func appendJSONString(_ text: String, to json: inout String) {
        json.append("\"")
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": json.append("\\\"")
            case "\\": json.append("\\\\")
            case "\n": json.append("\\n")
            case "\r": json.append("\\r")
            case "\t": json.append("\\t")
            case "\u{08}": json.append("\\b")
            case "\u{0C}": json.append("\\f")
            case "\u{00}"..."\u{1F}":
                let hex = String(scalar.value, radix: 16)
                json.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
            default: json.unicodeScalars.append(scalar)
            }
        }
        json.append("\"")
    }

    /// The member name requested by a query string: the value of the first `name` parameter,
    /// percent-decoded (`+` is a space, as in HTML forms), cut to ``maxNameLength`` characters; `nil`
    /// if there is none or it is empty.
    static func name(fromQuery query: Substring?) -> String? {
        guard let query else { return nil }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts[0] == "name", parts.count == 2 else { continue }
            let decoded = Self.percentDecode(parts[1])
            let name = String(decoded.prefix(Self.maxNameLength))
            return name.isEmpty ? nil : name
        }
        return nil
    }

    /// Decodes `%XX` escapes and `+`; a `%` not followed by two hex digits stays as it is. Bytes that
    /// are not UTF-8 become U+FFFD.
    static func percentDecode(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        let utf8 = Array(text.utf8)
        var index = 0
        while index < utf8.count {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%"), index + 2 < utf8.count,
                let high = Self.hexValue(utf8[index + 1]), let low = Self.hexValue(utf8[index + 2])
            {
                bytes.append(high << 4 | low)
                index += 3
            } else {
                bytes.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
