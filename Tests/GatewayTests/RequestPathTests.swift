import NIOHTTP1
import Testing

@testable import Gateway

/// Issue #11 §2: the path a route is chosen on is the path the upstream receives, and a client cannot
/// spell its way into another route's policies or out of an upstream's base path.
@Suite struct RequestPathTests {
    // MARK: The pure check

    @Test(arguments: [
        "/", "/chat", "/chat/", "/chat/room-1", "/a/b.c/~d_e", "/caf%C3%A9", "/a%20b", "/x:y@z!$&'()*+,;=",
        "/chat?name=b%c3%b6b+jr&x=/../", "/..a/.b/a..", "/api/v1?",
    ])
    func canonicalPathsAreAccepted(_ target: String) throws {
        let path = try RequestPath.validate(target: target).get()
        #expect(path == target.prefix { $0 != "?" })
    }

    @Test(arguments: [
        ("/public/../admin", RequestPath.Violation.dotSegment),
        ("/api/../../x", .dotSegment),
        ("/./admin", .dotSegment),
        ("/admin/..", .dotSegment),
        ("/admin/.", .dotSegment),
        ("/%2E%2E/admin", .nonCanonicalEncoding),
        ("/%61dmin", .nonCanonicalEncoding),
        ("/a%7Eb", .nonCanonicalEncoding),
        ("/caf%c3%a9", .nonCanonicalEncoding),
        ("//host/x", .emptySegment),
        ("/a//b", .emptySegment),
        ("/a%2Fb", .encodedSlash),
        ("/a%2fb", .encodedSlash),
        ("/a%5Cb", .encodedSlash),
        ("/a\\b", .backslash),
        ("/a%00b", .nul),
        ("/a\u{0}b", .nul),
        ("/a%", .badPercentEncoding),
        ("/a%4", .badPercentEncoding),
        ("/a%G1", .badPercentEncoding),
        ("/a b", .invalidCharacter),
        ("/a#frag", .invalidCharacter),
        ("/é", .invalidCharacter),
        ("/a\"b", .invalidCharacter),
        ("/%2e%2e/admin", .nonCanonicalEncoding),  // RELIABILITY H-17's inputs
        ("/echo%2F..%2Fadmin", .encodedSlash),
        ("/echo#frag", .invalidCharacter),
        ("ws://127.0.0.1/echo", .notOriginForm),
        ("*", .notOriginForm),
        ("http://other/admin", .notOriginForm),
        ("", .notOriginForm),
    ])
    func nonCanonicalPathsAreRefused(_ target: String, _ violation: RequestPath.Violation) {
        #expect(RequestPath.validate(target: target) == .failure(violation))
    }

    /// Hostile input: every byte at every position of a short path is either refused or accepted as is,
    /// and nothing accepted ever contains a dot segment, an empty inner segment or a `\`.
    @Test func everyByteAtEveryPositionKeepsTheInvariants() {
        for byte in UInt8.min...UInt8.max {
            for template in ["/X", "/aX", "/a/X/b", "/.X", "/X./b", "/%X1", "/%2X"] {
                let target = String(decoding: template.utf8.map { $0 == UInt8(ascii: "X") ? byte : $0 }, as: UTF8.self)
                guard case .success(let path) = RequestPath.validate(target: target) else { continue }
                let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
                #expect(!segments.contains(".") && !segments.contains(".."), "\(target.debugDescription)")
                #expect(!segments.dropLast().contains(""), "\(target.debugDescription)")
                #expect(!path.contains("\\") && !path.uppercased().contains("%2F"), "\(target.debugDescription)")
            }
        }
    }

    // MARK: Mapping onto the member's path

    @Test(
        arguments: [
            // (client target, route prefix, member path, upstream target)
            ("/", "/", "/echo", "/echo"),  // the issue's case: not /echo/
            ("/?a=1", "/", "/echo", "/echo?a=1"),
            ("/x", "/", "/echo", "/echo/x"),
            ("/x/", "/", "/echo/", "/echo/x/"),
            ("/chat", "/chat", "/rooms", "/rooms"),
            ("/chat/", "/chat", "/rooms", "/rooms/"),
            ("/chat/lobby?name=b%c3%b6b+jr", "/chat", "/rooms", "/rooms/lobby?name=b%c3%b6b+jr"),
            ("/chat/lobby", "/chat/", "/rooms", "/rooms/lobby"),
            ("/chat/lobby", "/chat", "/", "/lobby"),
            ("/chat", "/chat", "/", "/"),
            ("/chat/lobby", "/chat", nil, "/chat/lobby"),
            ("/anything?q", "/", nil, "/anything?q"),
        ] as [(String, String, String?, String)]
    )
    func theExactPrefixMapsToTheMemberPathAsWritten(_ target: String, _ prefix: String, _ member: String?, _ expected: String) {
        #expect(RequestPath.upstreamTarget(target, routePrefix: prefix, memberPath: member) == expected)
    }

    // MARK: Route chosen and what the upstream receives, through the handshake types

    static let routes = RouteTable([
        .init(pathPrefix: "/public", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 1, path: "/pub")]),
        .init(pathPrefix: "/admin", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 2)], subprotocols: ["admin.v1"]),
        .init(pathPrefix: "/api", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 3, path: "/base/api")]),
        .init(pathPrefix: "/", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 4, path: "/echo")]),
    ])

    private func validate(_ uri: String) -> Result<ClientUpgradeRequest, HandshakeRejection> {
        let headers = HTTPHeaders([
            ("Host", "gw.example"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
        ])
        return ClientUpgradeRequest.validate(
            HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: headers),
            limits: .init(),
            routes: Self.routes
        )
    }

    private func upstreamURI(_ uri: String) throws -> String {
        let request = try validate(uri).get()
        let upstream = request.route.route.upstreams[0]
        let head = UpstreamHandshake(subprotocolsOffered: []).requestHead(
            for: request,
            upstream: upstream,
            peer: IPAddress("192.0.2.1"),
            peerIsTrusted: false,
            clientUsedTLS: false
        )
        return "route \(request.route.index) \(head.decodedRequestHead?.uri ?? "unreadable")"
    }

    /// Catalog H-17: dot segments, encoded dots and slashes, empty segments in the target are refused with 400.
    @Test(arguments: ["/public/../admin", "/%61dmin", "//admin/x", "/api/../../x", "/public/%2E%2E/admin", "/public%2F..%2Fadmin"])
    func routeEscapesAreRefusedWith400(_ uri: String) throws {
        guard case .failure(let rejection) = validate(uri) else {
            Issue.record("\(uri) was accepted")
            return
        }
        #expect(rejection.response.status == 400)
        #expect(rejection.reason == "path")
    }

    /// Catalog H-17: the route decision and the path sent upstream use the same normalized target.
    @Test func theRouteIsChosenOnAndTheUpstreamReceivesTheSamePath() throws {
        #expect(try upstreamURI("/") == "route 3 /echo")
        #expect(try upstreamURI("/x?y=%2F..") == "route 3 /echo/x?y=%2F..")
        #expect(try upstreamURI("/public") == "route 0 /pub")
        #expect(try upstreamURI("/public/a") == "route 0 /pub/a")
        #expect(try upstreamURI("/admin/a") == "route 1 /admin/a")
        #expect(try upstreamURI("/api/v1") == "route 2 /base/api/v1")
        #expect(try upstreamURI("/publicity") == "route 3 /echo/publicity")
    }

    @Test(arguments: ["/a/../b", "//x", "/%61", "/a%2fb", "/a\\b"])
    func aRoutePrefixThatCouldNeverMatchIsAConfigurationError(_ prefix: String) {
        let configuration = GatewayConfiguration(
            listeners: [.init(host: "127.0.0.1", port: 8080)],
            routes: [.init(pathPrefix: prefix, upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 1)])]
        )
        do {
            try configuration.validate()
            Issue.record("\(prefix) was accepted")
        } catch {
            #expect(error.keyPath == "routes[0].path" && error.message.contains("would never match"), "\(error)")
        }
        var fine = configuration
        fine.routes[0].pathPrefix = "/chat/"
        #expect(throws: Never.self) { try fine.validate() }
    }

    /// Through a real gateway: the request line the upstream receives, and nothing for a refused path.
    @Test(.timeLimit(.minutes(1))) func theUpstreamReceivesTheMappedCanonicalPath() async throws {
        try await withGatewayAndRecordingUpstream(configure: { $0.routes[0].upstreams[0].path = "/echo" }) { port, upstream in
            func upgrade(_ path: String) async throws -> Int {
                let request =
                    "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                return try await TestWebSocketClient.rawHandshake(port: port, request: request).status
            }
            let root = try await upgrade("/")
            let room = try await upgrade("/room/1?name=b%c3%b6b")
            #expect(root == 101 && room == 101)
            for hostile in ["/x/../../etc", "/%2E%2E/x", "//x", "/x%2F..%2F..", "/x\\..\\.."] {
                let status = try await upgrade(hostile)
                #expect(status == 400, "\(hostile)")
            }
            // RELIABILITY H-17 over the wire. (A request line with two spaces is llhttp's to judge: it
            // reads `/echo`, which is then routed and forwarded alike.)
            for line in ["GET /echo/../admin HTTP/1.1", "GET /echo#frag HTTP/1.1", "GET * HTTP/1.1", "GET ws://127.0.0.1/echo HTTP/1.1"] {
                let request =
                    "\(line)\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                let status = try await TestWebSocketClient.rawHandshake(port: port, request: request).status
                #expect(status == 400, "\(line)")
            }
            let lines = upstream.requests.map { String($0.head.split(separator: "\r\n").first ?? "") }
            #expect(lines == ["GET /echo HTTP/1.1", "GET /echo/room/1?name=b%c3%b6b HTTP/1.1"])
        }
    }
}
