import Foundation
import Testing

@testable import Gateway

/// `wsgate tap --har`: one entry per connection in Chrome's WebSocket shape (`_resourceType`,
/// `_webSocketMessages` with `type`, `time`, `opcode`, `data`), fragments joined into messages, control
/// frames left out, binary as base64, and the bounds on what is kept.
@Suite struct TapHARTests {
    func frame(
        _ connection: UInt64,
        _ time: Double,
        _ direction: TapStreamEvent.Direction,
        _ opcode: String,
        _ payload: TapStreamEvent.Payload?,
        fin: Bool = true,
        compressed: Bool = false,
        rawDeflate: Bool = false
    ) -> TapStreamEvent {
        .frame(
            .init(
                connection: connection,
                time: time,
                direction: direction,
                opcode: opcode,
                fin: fin,
                rsv1: compressed,
                length: 0,
                payload: payload,
                compressed: compressed,
                truncated: false,
                rawDeflate: rawDeflate
            )
        )
    }

    func document(_ har: TapHAR) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: har.json()) as? [String: Any]
        return try #require(object?["log"] as? [String: Any])
    }

    @Test func anEntryPerConnectionInChromesWebSocketShape() throws {
        var har = TapHAR()
        har.add(
            .open(
                .init(
                    connection: 12,
                    time: 1733480000.5,
                    route: "/chat",
                    client: "127.0.0.1:50000",
                    method: "GET",
                    target: "/chat?name=alice",
                    headers: [.init(name: "Host", value: "127.0.0.1:8080"), .init(name: "Cookie", value: "[redacted]")]
                )
            )
        )
        har.add(self.frame(12, 1_733_480_001, .clientToUpstream, "text", .text("hel"), fin: false))
        har.add(self.frame(12, 1733480001.1, .upstreamToClient, "ping", .bytes([1])))
        har.add(self.frame(12, 1733480001.2, .clientToUpstream, "continuation", .text("lo ✓")))
        har.add(self.frame(12, 1_733_480_002, .upstreamToClient, "binary", .bytes([0, 1, 0xFF])))
        har.add(self.frame(12, 1_733_480_003, .upstreamToClient, "text", .text("<img src=x onerror=alert(1)>")))
        har.add(.close(.init(connection: 12, time: 1_733_480_004, code: 1000, reason: "", by: "client", leg: "client")))
        // Seen only from its frames: the tap attached after it opened.
        har.add(self.frame(40, 1_733_480_005, .upstreamToClient, "text", .text("late")))
        har.add(.dropped(count: 3))
        #expect(har.counts == (2, 4))

        let log = try self.document(har)
        #expect(log["version"] as? String == "1.2")
        #expect((log["creator"] as? [String: Any])?["name"] as? String == "wsgate tap")
        #expect((log["comment"] as? String)?.contains("3 tap events were dropped") == true)
        let entries = try #require(log["entries"] as? [[String: Any]])
        #expect(entries.count == 2)
        let entry = entries[0]
        #expect(entry["_resourceType"] as? String == "websocket")
        #expect(entry["startedDateTime"] as? String == "2024-12-06T10:13:20.500Z")
        #expect(entry["time"] as? Double == 3500)
        let request = try #require(entry["request"] as? [String: Any])
        #expect(request["url"] as? String == "ws://127.0.0.1:8080/chat?name=alice")
        #expect(request["method"] as? String == "GET")
        #expect((request["queryString"] as? [[String: String]]) == [["name": "name", "value": "alice"]])
        #expect((request["headers"] as? [[String: String]])?.last == ["name": "Cookie", "value": "[redacted]"])
        #expect((entry["response"] as? [String: Any])?["status"] as? Int == 101)
        let messages = try #require(entry["_webSocketMessages"] as? [[String: Any]])
        #expect(messages.map { $0["type"] as? String } == ["send", "receive", "receive"])
        #expect(messages.map { $0["opcode"] as? Int } == [1, 2, 1])
        #expect(messages.map { $0["data"] as? String } == ["hello ✓", "AAH/", "<img src=x onerror=alert(1)>"])
        #expect(messages.map { $0["time"] as? Double } == [1_733_480_001, 1_733_480_002, 1_733_480_003])
        #expect((entry["comment"] as? String)?.contains("client leg closed 1000 by client") == true)

        let late = entries[1]
        #expect((late["request"] as? [String: Any])?["url"] as? String == "ws://wsgate-connection-40/")
        #expect((late["_webSocketMessages"] as? [[String: Any]])?.count == 1)
    }

    /// Deflated payloads (forwarded compressed) and base64 in a text message are not shown as text;
    /// a continuation whose start was not seen is left out.
    @Test func rawPayloadsAreBase64AndOrphanContinuationsAreLeftOut() throws {
        var har = TapHAR()
        har.add(self.frame(1, 1, .clientToUpstream, "text", .bytes([0xF2, 0x48]), compressed: true))
        har.add(self.frame(1, 2, .clientToUpstream, "continuation", .text("orphan")))
        har.add(self.frame(1, 3, .clientToUpstream, "text", .bytes([0xC3, 0x28])))
        let entry = try #require((try self.document(har)["entries"] as? [[String: Any]])?.first)
        let messages = try #require(entry["_webSocketMessages"] as? [[String: Any]])
        #expect(messages.map { $0["opcode"] as? Int } == [2, 2])
        #expect(messages.map { $0["data"] as? String } == ["8kg=", "wyg="])
    }

    @Test func messagesAndMessageSizeAreBounded() throws {
        var har = TapHAR(maxMessages: 2, maxMessageBytes: 4)
        for index in 0..<5 {
            har.add(self.frame(1, Double(index), .clientToUpstream, "text", .text("abcdefgh")))
        }
        #expect(har.counts == (1, 2))
        let log = try self.document(har)
        #expect((log["comment"] as? String)?.contains("3 messages left out") == true)
        let entry = try #require((log["entries"] as? [[String: Any]])?.first)
        #expect((entry["_webSocketMessages"] as? [[String: Any]])?.map { $0["data"] as? String } == ["abcd", "abcd"])
    }

    /// The gateway's `open` says how the client connected: `wss://` over TLS (issue #14 §2), through the
    /// real decoder from the line the gateway writes; and the listener is kept.
    @Test func aTLSConnectionGetsAWssURLFromTheOpenEvent() throws {
        let open = TapOpen(
            connection: 3,
            time: 1_733_480_000,
            route: "/chat",
            scheme: "wss",
            listener: "public-tls",
            client: "127.0.0.1:50000",
            method: "GET",
            target: "/chat",
            headers: [("Host", "gw.example")]
        )
        var decoder = TapLineDecoder()
        let line = TapEvent.open(open).jsonLine(payload: .full, maxPayload: 0)
        let decoded = decoder.decode(Array(line.utf8.dropLast()))
        let event = try #require(decoded)
        var har = TapHAR()
        har.add(event)
        var plain = open
        plain.connection = 4
        plain.scheme = "ws"
        let second = decoder.decode(Array(TapEvent.open(plain).jsonLine(payload: .full, maxPayload: 0).utf8))
        har.add(try #require(second))
        let entries = try #require(try self.document(har)["entries"] as? [[String: Any]])
        #expect(entries.map { ($0["request"] as? [String: Any])?["url"] as? String } == ["wss://gw.example/chat", "ws://gw.example/chat"])
        #expect(entries.first?["_wsgateListener"] as? String == "public-tls")
    }

    /// A compressed message comes inflated from the gateway: shown as its text; raw deflate data
    /// (`deflate-base64`) as base64.
    @Test func anInflatedCompressedMessageIsTextAndRawDeflateIsBase64() throws {
        var har = TapHAR()
        har.add(self.frame(1, 1, .clientToUpstream, "text", .text("hel"), fin: false, compressed: true))
        har.add(self.frame(1, 2, .clientToUpstream, "continuation", .text("lo"), compressed: true))
        har.add(self.frame(1, 3, .clientToUpstream, "text", .bytes([0xF2, 0x48]), compressed: true, rawDeflate: true))
        let entry = try #require((try self.document(har)["entries"] as? [[String: Any]])?.first)
        let messages = try #require(entry["_webSocketMessages"] as? [[String: Any]])
        #expect(messages.map { $0["opcode"] as? Int } == [1, 2])
        #expect(messages.map { $0["data"] as? String } == ["hello", "8kg="])
    }
}
