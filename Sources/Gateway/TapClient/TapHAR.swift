import Foundation

/// `wsgate tap --har FILE`: the tapped connections as a HAR 1.2 log (W3C draft "HTTP Archive") in the
/// shape Chrome DevTools exports and imports for WebSockets, so DevTools (Network panel → Import HAR)
/// and HAR viewers show the messages:
///
/// - one entry per connection: the handshake request (method, `ws://` or `wss://` URL, as the client
///   connected, from `Host` and the target,
///   the redacted headers), a `101 Switching Protocols` response, `"_resourceType": "websocket"`;
/// - `"_webSocketMessages"`: one object per *message* (Chrome shows messages, not frames; fragments are
///   joined) with `type` (`send`: client to upstream, `receive`: upstream to client), `time` (seconds
///   since 1970, with fractions, as Chrome writes it), `opcode` (1 text, 2 binary) and `data` (the text,
///   or base64 for binary, for raw deflate data (`deflate-base64`), and for text that is not
///   UTF-8 after joining). Control frames are not messages and are left out, as in Chrome's export.
///
/// A connection whose `open` the tap did not see (it opened before the tap attached) still gets an entry,
/// with the URL `ws://wsgate-connection-N/`. The close (code, reason, who) is in the entry's `comment`
/// and in `_wsgateClose`. Memory is bounded: at most ``maxMessages`` messages in all and
/// ``maxMessageBytes`` per message are kept; what is left out is counted in the log's `comment`.
public struct TapHAR: Sendable {
    public var maxMessages: Int
    public var maxMessageBytes: Int
    /// The version written in `creator`.
    public var creatorVersion: String

    private var entries: [UInt64: Entry] = [:]
    /// Connection ids in the order they were first seen.
    private var order: [UInt64] = []
    private var messageCount = 0
    private var omittedMessages = 0
    private var dropped = 0

    public init(maxMessages: Int = 200_000, maxMessageBytes: Int = 1 << 20, creatorVersion: String = "1") {
        self.maxMessages = maxMessages
        self.maxMessageBytes = maxMessageBytes
        self.creatorVersion = creatorVersion
    }

    private struct Entry: Sendable {
        var open: TapStreamEvent.Open?
        var firstTime: Double
        var lastTime: Double
        var messages: [Message] = []
        /// A message being joined from fragments, per direction.
        var partial: [TapStreamEvent.Direction: Message] = [:]
        var closes: [TapStreamEvent.Close] = []
    }

    private struct Message: Sendable {
        var direction: TapStreamEvent.Direction
        var time: Double
        var binary: Bool
        /// The data could not be shown as text (deflated, or base64 captured in a text message).
        var raw: Bool
        var bytes: [UInt8]
    }

    /// How many connections and messages the log holds.
    public var counts: (connections: Int, messages: Int) { (self.order.count, self.messageCount) }

    /// Adds one event of the stream.
    public mutating func add(_ event: TapStreamEvent) {
        switch event {
        case .open(let open):
            var entry = self.take(open.connection, open.time)
            entry.open = open
            self.entries[open.connection] = entry
        case .frame(let frame):
            var entry = self.take(frame.connection, frame.time)
            self.addFrame(frame, to: &entry)
            self.entries[frame.connection] = entry
        case .close(let close):
            var entry = self.take(close.connection, close.time)
            if entry.closes.count < 4 { entry.closes.append(close) }
            self.entries[close.connection] = entry
        case .dropped(let count):
            self.dropped += count
        }
    }

    /// The entry of `connection` (a new one if it was not seen before), its times widened to `time`.
    private mutating func take(_ connection: UInt64, _ time: Double) -> Entry {
        guard var entry = self.entries[connection] else {
            self.order.append(connection)
            return Entry(firstTime: time, lastTime: time)
        }
        entry.firstTime = min(entry.firstTime, time)
        entry.lastTime = max(entry.lastTime, time)
        return entry
    }

    private mutating func addFrame(_ frame: TapStreamEvent.Frame, to entry: inout Entry) {
        var bytes: [UInt8]
        // A compressed message's payload comes inflated from the gateway; only raw deflate data is raw.
        var raw = frame.rawDeflate
        switch frame.payload {
        case .text(let text): bytes = Array(text.utf8)
        case .bytes(let data):
            bytes = data
            if frame.opcode == "text" || frame.opcode == "continuation" { raw = true }
        case nil: bytes = []
        }
        var message: Message
        switch frame.opcode {
        case "text", "binary":
            message = Message(direction: frame.direction, time: frame.time, binary: frame.opcode == "binary", raw: raw, bytes: [])
        case "continuation":
            guard let partial = entry.partial[frame.direction] else { return }  // its start was not seen
            message = partial
            message.raw = message.raw || raw
        default:
            return  // close, ping, pong: not messages
        }
        let room = max(0, self.maxMessageBytes - message.bytes.count)
        message.bytes += bytes.prefix(room)
        if frame.fin {
            entry.partial[frame.direction] = nil
            if self.messageCount < self.maxMessages {
                entry.messages.append(message)
                self.messageCount += 1
            } else {
                self.omittedMessages += 1
            }
        } else {
            entry.partial[frame.direction] = message
        }
    }

    /// The HAR document (UTF-8 JSON).
    public func json() -> Data {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let entries: [[String: Any]] = self.order.compactMap { id in
            guard let entry = self.entries[id] else { return nil }
            return Self.entryJSON(id: id, entry: entry, formatter: formatter)
        }
        var comments: [String] = []
        if self.dropped > 0 { comments.append("\(self.dropped) tap events were dropped by the gateway (the tap fell behind)") }
        if self.omittedMessages > 0 { comments.append("\(self.omittedMessages) messages left out (over \(self.maxMessages))") }
        var log: [String: Any] = [
            "version": "1.2",
            "creator": ["name": "wsgate tap", "version": self.creatorVersion],
            "pages": [] as [Any],
            "entries": entries,
        ]
        if !comments.isEmpty { log["comment"] = comments.joined(separator: "; ") }
        return (try? JSONSerialization.data(withJSONObject: ["log": log], options: [.prettyPrinted, .sortedKeys])) ?? Data("{}".utf8)
    }

    private static func entryJSON(id: UInt64, entry: Entry, formatter: ISO8601DateFormatter) -> [String: Any] {
        let open = entry.open
        let host = open?.headers.first { $0.name.lowercased() == "host" }?.value
        let target = open?.target ?? "/"
        // The scheme the client used (`wss` over TLS), as the gateway's `open` says; `ws` if it does not.
        let scheme = open?.scheme ?? "ws"
        let url = host.map { "\(scheme)://\($0)\(target.hasPrefix("/") ? target : "/" + target)" } ?? "ws://wsgate-connection-\(id)/"
        let query = (target.split(separator: "?", maxSplits: 1).dropFirst().first ?? "").split(separator: "&").map { pair -> [String: Any] in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return ["name": String(parts[0]), "value": parts.count > 1 ? String(parts[1]) : ""]
        }
        let messages: [[String: Any]] = entry.messages.map { message in
            let textual = !message.binary && !message.raw
            let text = textual ? String(validating: message.bytes, as: UTF8.self) : nil
            return [
                "type": message.direction == .clientToUpstream ? "send" : "receive",
                "time": message.time,
                "opcode": text == nil ? 2 : 1,
                "data": text ?? Data(message.bytes).base64EncodedString(),
            ]
        }
        var comment = open == nil ? "the tap attached after this connection opened" : "wsgate connection \(id)"
        var closes: [[String: Any]] = []
        for close in entry.closes {
            comment += "; \(close.leg) leg closed \(close.code.map(String.init) ?? "without a code") by \(close.by)"
            closes.append([
                "code": close.code.map { $0 as Any } ?? NSNull(), "reason": close.reason, "by": close.by, "leg": close.leg, "time": close.time,
            ])
        }
        var result: [String: Any] = [
            "startedDateTime": formatter.string(from: Date(timeIntervalSince1970: entry.firstTime)),
            "time": max(0, (entry.lastTime - entry.firstTime) * 1000),
            "request": [
                "method": open?.method ?? "GET",
                "url": url,
                "httpVersion": "HTTP/1.1",
                "cookies": [] as [Any],
                "headers": (open?.headers ?? []).map { ["name": $0.name, "value": $0.value] },
                "queryString": query,
                "headersSize": -1,
                "bodySize": 0,
            ] as [String: Any],
            "response": [
                "status": 101,
                "statusText": "Switching Protocols",
                "httpVersion": "HTTP/1.1",
                "cookies": [] as [Any],
                "headers": [] as [Any],
                "content": ["size": 0, "mimeType": "x-unknown"] as [String: Any],
                "redirectURL": "",
                "headersSize": -1,
                "bodySize": 0,
            ] as [String: Any],
            "cache": [:] as [String: Any],
            "timings": ["blocked": -1, "dns": -1, "connect": -1, "send": 0, "wait": 0, "receive": 0, "ssl": -1],
            "connection": String(id),
            "comment": comment,
            "_resourceType": "websocket",
            "_webSocketMessages": messages,
        ]
        if !closes.isEmpty { result["_wsgateClose"] = closes }
        if let open {
            result["_wsgateRoute"] = open.route
            if let listener = open.listener { result["_wsgateListener"] = listener }
            result["_wsgateClient"] = open.client
        }
        return result
    }
}
