import Frames
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import Gateway

/// ``UpstreamHandshake/check(_:)``: which upstream answers switch to frames (DESIGN §1.7), which are
/// refusals relayed to the client, and which are invalid (502).
@Suite struct UpstreamHandshakeTests {
    static let key = "AQIDBAUGBwgJCgsMDQ4PEA=="
    static let accept = HandshakeKey.acceptValue(forKey: key)

    static func handshake(subprotocols: [String] = ["chat", "v2"], deflate: Bool = false) -> UpstreamHandshake {
        UpstreamHandshake(key: key, subprotocolsOffered: subprotocols, deflateOffer: deflate ? PerMessageDeflate.clientOffer() : nil)
    }

    /// A 101 with the given headers in place of the valid defaults (nil removes one).
    static func answer(status: HTTPResponseStatus = .switchingProtocols, _ overrides: [String: String?] = [:]) -> HTTPResponseHead {
        var fields: [(String, String?)] = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)]
        for (name, value) in overrides where !fields.contains(where: { $0.0 == name }) { fields.append((name, value)) }
        var headers = HTTPHeaders()
        for (name, value) in fields {
            let value = overrides[name] ?? value
            if let value { headers.add(name: name, value: value) }
        }
        return HTTPResponseHead(version: .http1_1, status: status, headers: headers)
    }

    @Test func aValidAnswerIsAcceptedWithWhatItChose() {
        #expect(Self.handshake().check(Self.answer()) == .accepted(subprotocol: nil, deflate: nil))
        #expect(Self.handshake().check(Self.answer(["Sec-WebSocket-Protocol": "v2"])) == .accepted(subprotocol: "v2", deflate: nil))
        // Tokens are case-insensitive and may come with others in Connection (RFC 9110 §7.6.1).
        #expect(
            Self.handshake().check(Self.answer(["Upgrade": "WebSocket", "Connection": "keep-alive, UPGRADE"]))
                == .accepted(subprotocol: nil, deflate: nil)
        )
        #expect(Self.handshake().check(Self.answer(["Sec-WebSocket-Accept": " \(Self.accept) "])) == .accepted(subprotocol: nil, deflate: nil))
    }

    @Test(arguments: [HTTPResponseStatus.ok, .forbidden, .notFound, .found, .serviceUnavailable])
    func anythingButA101IsARefusalToRelay(status: HTTPResponseStatus) {
        #expect(Self.handshake().check(Self.answer(status: status)) == .refused(status: Int(status.code)))
    }

    /// NIO's decoder passes any three digits as a status; one outside 100–599 is invalid (RFC 9110 §15:
    /// "as if it had a 5xx"), so the client gets 502, not the upstream's 836 relayed as its answer
    /// (found by FuzzUpstreamResponse; the input is in Fuzz/Corpus/FuzzUpstreamResponse).
    @Test(arguments: [0, 99, 600, 836, 999])
    func aStatusOutsideTheHTTPRangeIsInvalidNotRelayed(code: Int) {
        #expect(Self.handshake().check(Self.answer(status: HTTPResponseStatus(statusCode: code))) == .invalid("status \(code) outside 100–599"))
    }

    /// Catalog U-06: a 101 with a subprotocol the gateway did not offer (or two) is invalid.
    @Test func a101ThatBreaksRFC6455Section4Point1IsInvalid() {
        let cases: [(String, [String: String?], String)] = [
            ("no Upgrade", ["Upgrade": nil], "101 without Upgrade: websocket"),
            ("another Upgrade", ["Upgrade": "h2c"], "101 without Upgrade: websocket"),
            ("two Upgrade tokens", ["Upgrade": "websocket, h2c"], "101 without Upgrade: websocket"),
            ("no Connection", ["Connection": nil], "101 without Connection: upgrade"),
            ("Connection without upgrade", ["Connection": "keep-alive"], "101 without Connection: upgrade"),
            ("no accept", ["Sec-WebSocket-Accept": nil], "wrong or missing Sec-WebSocket-Accept"),
            (
                "the client's accept", ["Sec-WebSocket-Accept": HandshakeKey.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==")],
                "wrong or missing Sec-WebSocket-Accept"
            ),
            ("an unoffered subprotocol", ["Sec-WebSocket-Protocol": "other"], "subprotocol the gateway did not offer: other"),
            ("two subprotocols", ["Sec-WebSocket-Protocol": "chat, v2"], "subprotocol the gateway did not offer: chat, v2"),
        ]
        for (name, overrides, why) in cases {
            #expect(Self.handshake().check(Self.answer(overrides)) == .invalid(why), "\(name)")
        }
        var twice = Self.answer()
        twice.headers.add(name: "Sec-WebSocket-Accept", value: Self.accept)
        #expect(Self.handshake().check(twice) == .invalid("wrong or missing Sec-WebSocket-Accept"))
        #expect(
            Self.handshake(subprotocols: []).check(Self.answer(["Sec-WebSocket-Protocol": "chat"]))
                == .invalid("subprotocol the gateway did not offer: chat")
        )
    }

    /// Catalog U-06: an extension the gateway did not offer, server_max_window_bits=16, unknown parameters and two permessage-deflate elements are invalid, checked against what the gateway offered upstream.
    @Test func extensionsAreOnlyWhatWasOfferedWithValidParameters() {
        // Nothing offered: any extension is invalid; an empty list is none (RFC 9110 §5.6.1).
        #expect(Self.handshake().check(Self.answer(["Sec-WebSocket-Extensions": " , "])) == .accepted(subprotocol: nil, deflate: nil))
        guard case .invalid = Self.handshake().check(Self.answer(["Sec-WebSocket-Extensions": "permessage-deflate"])) else {
            Issue.record("an unoffered extension was accepted")
            return
        }
        // Offered: the agreed parameters, or nothing when the upstream declined.
        let offered = Self.handshake(deflate: true)
        #expect(offered.check(Self.answer()) == .accepted(subprotocol: nil, deflate: nil))
        #expect(
            offered.check(Self.answer(["Sec-WebSocket-Extensions": "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"]))
                == .accepted(subprotocol: nil, deflate: PerMessageDeflateParameters(serverNoContextTakeover: true, clientMaxWindowBits: 10))
        )
        for invalid in [
            "permessage-deflate; unknown=1", "permessage-deflate; server_max_window_bits=16", "x-webkit-deflate-frame",
            "permessage-deflate, permessage-deflate", "permessage-deflate; =",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        ] {
            guard case .invalid(let why) = offered.check(Self.answer(["Sec-WebSocket-Extensions": invalid])) else {
                Issue.record("\(invalid) was accepted")
                continue
            }
            #expect(why.hasPrefix("Sec-WebSocket-Extensions: "), "\(invalid)")
        }
    }
}

extension ByteBuffer {
    /// These bytes (an upgrade request as ``UpstreamHandshake/requestHead(for:upstream:peer:peerIsTrusted:clientUsedTLS:clientCertificate:grant:)``
    /// writes it) read by NIO's llhttp request decoder: the head, if they are exactly one request head
    /// with no body and nothing after it.
    var decodedRequestHead: HTTPRequestHead? {
        let decoder = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .fireError)))
        defer { _ = try? decoder.finish() }
        guard (try? decoder.writeInbound(self)) != nil else { return nil }
        var parts: [HTTPServerRequestPart] = []
        while let part = try? decoder.readInbound(as: HTTPServerRequestPart.self) { parts.append(part) }
        guard parts.count == 2, case .head(let head) = parts[0], case .end = parts[1] else { return nil }
        return head
    }
}

/// The upgrade request as the gateway writes it upstream (issue #15: straight into one buffer).
@Suite struct UpstreamRequestWriterTests {
    /// The exact bytes: request line, the gateway's handshake headers, the client's end-to-end headers
    /// (hop-by-hop ones and those named in `Connection` removed), then the forwarding headers; llhttp
    /// reads them back as one head and nothing else.
    @Test func theRequestIsWrittenExactlyAndReadsBack() throws {
        var headers = HTTPHeaders()
        for (name, value) in [
            ("Host", "gw.example"), ("Upgrade", "websocket"), ("Connection", "Upgrade, X-Hop"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Protocol", "chat"), ("X-Hop", "dropped"), ("Keep-Alive", "5"),
            ("X-App", "kept"), ("X-Forwarded-For", "203.0.113.9"),
        ] {
            headers.add(name: name, value: value)
        }
        let route = GatewayConfiguration.Route(upstreams: [.init(scheme: .ws, host: "::1", port: 8080, path: "/in")])
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/chat?x=1", headers: headers)
        guard case .success(let request) = ClientUpgradeRequest.validate(head, limits: .init(), routes: RouteTable([route])) else {
            Issue.record("the fixture request is invalid")
            return
        }
        let handshake = UpstreamHandshake(
            key: UpstreamHandshakeTests.key,
            subprotocolsOffered: ["chat"],
            deflateOffer: PerMessageDeflate.clientOffer()
        )
        let bytes = handshake.requestHead(
            for: request,
            upstream: route.upstreams[0],
            peer: IPAddress("192.0.2.7"),
            peerIsTrusted: false,
            clientUsedTLS: true
        )
        let text = String(buffer: bytes)
        let lines = text.components(separatedBy: "\r\n")
        #expect(
            lines.prefix(7) == [
                "GET /in/chat?x=1 HTTP/1.1", "Host: [::1]:8080", "Upgrade: websocket", "Connection: Upgrade",
                "Sec-WebSocket-Key: \(UpstreamHandshakeTests.key)", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: chat",
            ]
        )
        #expect(lines[7].hasPrefix("Sec-WebSocket-Extensions: permessage-deflate"))
        #expect(lines[8] == "X-App: kept")
        #expect(text.hasSuffix("\r\n\r\n") && !text.contains("X-Hop") && !text.contains("Keep-Alive") && !text.contains("203.0.113.9"))
        let decoded = try #require(bytes.decodedRequestHead)
        #expect(decoded.uri == "/in/chat?x=1" && decoded.headers["X-Forwarded-For"] == ["192.0.2.7"])
        #expect(decoded.headers["X-Forwarded-Proto"] == ["https"] && decoded.headers["Host"] == ["[::1]:8080"])
    }

    /// The forwarding headers are written straight into the request for a peer that is not trusted
    /// (issue #15): the same lines, in the same order, as ``ForwardingHeaders/headers(incoming:hop:)``
    /// gives, for every kind of peer and scheme, trusted or not.
    @Test(arguments: [false, true])
    func forwardingHeadersAreExactlyForwardingHeadersOwn(peerIsTrusted: Bool) throws {
        var headers = HTTPHeaders()
        for (name, value) in [
            ("Host", "gw.example:8443"), ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"), ("X-Forwarded-For", "203.0.113.9"), ("Forwarded", "for=203.0.113.9"), ("X-Forwarded-Proto", "https"),
        ] {
            headers.add(name: name, value: value)
        }
        let route = GatewayConfiguration.Route(upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 80, path: "/")])
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: headers)
        let request = try #require(try? ClientUpgradeRequest.validate(head, limits: .init(), routes: RouteTable([route])).get())
        for peer in [IPAddress("192.0.2.7"), IPAddress("2001:db8::1"), nil] {
            for usedTLS in [false, true] {
                let bytes = UpstreamHandshakeTests.handshake().requestHead(
                    for: request,
                    upstream: route.upstreams[0],
                    peer: peer,
                    peerIsTrusted: peerIsTrusted,
                    clientUsedTLS: usedTLS
                )
                let hop = ForwardingHeaders.Hop(peer: peer, peerIsTrusted: peerIsTrusted, usedTLS: usedTLS, host: request.authority)
                let expected = ForwardingHeaders.headers(incoming: head.headers.lazy.map { (name: $0.name, value: $0.value) }, hop: hop)
                    .map { "\($0.0): \($0.1)" }
                let lines = String(buffer: bytes).components(separatedBy: "\r\n")
                func name(_ line: String) -> Substring { line.prefix { $0 != ":" } }
                let written = lines.filter { line in expected.contains { name($0) == name(line) } }
                #expect(written == expected, "peer \(String(describing: peer)), TLS \(usedTLS)")
            }
        }
    }
}
