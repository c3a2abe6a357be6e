import Frames
import MetricsTestKit
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import Gateway

/// The upgrade handshake in memory: the handler the listener installs (``ClientConnectionHandler``,
/// which scans the head itself) on an `EmbeddedChannel`, and an upstream that is
/// another `EmbeddedChannel` on the same `EmbeddedEventLoop`, handed out by an injected
/// ``UpstreamConnector``. Requests and answers are delivered split at every byte and deadlines are
/// driven by hand.
@Suite struct ClientConnectionHandlerTests {
    static func request(version: String = "13", extra: String = "") -> String {
        "GET /chat HTTP/1.1\r\nHost: gw.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: \(version)\r\n\(extra)\r\n"
    }

    /// A client connection as the listener sets it up, without TLS.
    static func makeChannel(
        metrics: TestMetrics = TestMetrics(),
        configure: (inout GatewayConfiguration) -> Void = { _ in }
    ) throws -> EmbeddedChannel {
        var configuration = GatewayConfiguration(
            listeners: [.init(name: "public", host: "127.0.0.1", port: 0)],
            routes: [.init(hosts: ["gw.example"], pathPrefix: "/chat", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 1)])],
            accessLog: .off
        )
        configure(&configuration)
        let environment = try GatewayEnvironment(configuration, metrics: GatewayMetrics(factory: metrics))
        let channel = EmbeddedChannel()
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(
            ClientConnectionHandler(
                environment: environment,
                record: ConnectionRecord(id: 1, clientAddress: "127.0.0.1", listener: "public"),
                clientUsedTLS: false
            )
        )
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 40000)).wait()
        return channel
    }

    /// Delivers `text` in reads cut at `cuts` (errors from the pipeline are the handler's business).
    static func deliver(_ text: String, to channel: EmbeddedChannel, cutAt cuts: [Int] = []) {
        let bytes = Array(text.utf8)
        var start = 0
        for end in cuts.filter({ $0 > 0 && $0 < bytes.count }) + [bytes.count] where channel.isActive {
            _ = try? channel.writeInbound(ByteBuffer(bytes: bytes[start..<end]))
            start = end
        }
    }

    /// The HTTP answer written to the client: its status and headers.
    static func answer(_ channel: EmbeddedChannel) throws -> (status: Int, headers: [(String, String)])? {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            text += String(buffer: buffer)
        }
        guard let headEnd = text.range(of: "\r\n\r\n") else { return nil }
        let lines = text[..<headEnd.lowerBound].split(separator: "\r\n").map(String.init)
        let statusLine = lines[0].split(separator: " ")
        guard statusLine.count >= 2, statusLine[0] == "HTTP/1.1", let status = Int(statusLine[1]) else { return nil }
        let headers = lines.dropFirst().map { line -> (String, String) in
            let colon = line.firstIndex(of: ":")!
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        return (status, headers)
    }

    /// Catalog H-06: version 8 is 426 with Sec-WebSocket-Version: 13 and Connection: close at every split, then closed.
    @Test func anUnsupportedVersionIs426AtEverySplit() throws {
        let request = Self.request(version: "8")
        for cut in 0...request.utf8.count {
            let channel = try Self.makeChannel()
            Self.deliver(request, to: channel, cutAt: [cut])
            let answer = try #require(try Self.answer(channel), "no answer when cut at \(cut)")
            #expect(answer.status == 426, "cut at \(cut)")
            #expect(answer.headers.contains { $0 == ("Sec-WebSocket-Version", "13") })
            #expect(answer.headers.contains { $0 == ("Connection", "close") })
            #expect(!channel.isActive, "the connection stays open after a refusal (cut at \(cut))")
            #expect(try channel.finish(acceptAlreadyClosed: true).isClean)
        }
    }

    /// Catalog H-07: POST with the upgrade headers is 405, closed.
    /// Catalog H-04: a short Sec-WebSocket-Key is 400, closed.
    /// Catalog H-02: a 17 KiB head is 431, closed.
    @Test func eachInvalidRequestGetsItsExactAnswerAndIsCounted() throws {
        let metrics = TestMetrics()
        let cases: [(request: String, status: Int, reason: String)] = [
            (Self.request().replacingOccurrences(of: "GET", with: "POST"), 405, "method"),
            (Self.request().replacingOccurrences(of: "Host: gw.example", with: "Host: other.example"), 404, "no-route"),
            (Self.request().replacingOccurrences(of: "Upgrade: websocket\r\n", with: ""), 426, "not-an-upgrade"),
            (Self.request().replacingOccurrences(of: "dGhlIHNhbXBsZSBub25jZQ==", with: "short"), 400, "ws-key"),
            (Self.request(extra: "X-Pad: \(String(repeating: "p", count: 17 * 1024))\r\n"), 431, "head-too-large"),
            ("NOT HTTP AT ALL\r\n\r\n", 400, "malformed"),
        ]
        for (request, status, reason) in cases {
            let channel = try Self.makeChannel(metrics: metrics)
            Self.deliver(request, to: channel, cutAt: [5, 20, 100])
            #expect(try Self.answer(channel)?.status == status, "\(reason)")
            #expect(!channel.isActive)
            let counted = metrics.counters(label: "wsgate_upgrades_refused_total").filter { $0.dimensions.contains { $0 == ("reason", reason) } }
            #expect(counted.map(\.totalValue) == [1], "refusal \(reason) not counted once with its reason")
            #expect(counted.first?.dimensions.contains { $0 == ("status", String(status)) } == true)
            #expect(try channel.finish(acceptAlreadyClosed: true).isClean)
        }
    }

    /// Catalog H-01: an incomplete head is answered 408 at exactly the head deadline and closed.
    @Test func aHeadThatDoesNotArriveByTheDeadlineIs408() throws {
        let channel = try Self.makeChannel { $0.timeouts.requestHead = .seconds(10) }
        Self.deliver("GET /chat HTTP/1.1\r\nHost: gw.ex", to: channel)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(9_999))
        #expect(try Self.answer(channel) == nil)
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(try Self.answer(channel)?.status == 408)
        #expect(!channel.isActive)
        // The unfinished head is dropped with the connection: no decoder reports it at close.
        _ = try channel.finish(acceptAlreadyClosed: true)
    }
}

// MARK: - The whole upgrade, with an upstream in memory

/// Hands out `EmbeddedChannel`s on the client's `EmbeddedEventLoop` instead of connecting sockets.
final class EmbeddedUpstreamConnector: UpstreamConnector, @unchecked Sendable {
    enum Outcome {
        case connect
        case refuse
        case timeOut
        /// The connect neither succeeds nor fails until ``finishPending(_:)``.
        case hang
    }

    struct Refused: Error {}

    let loop: EmbeddedEventLoop
    let outcome: Outcome
    private(set) var channels: [EmbeddedChannel] = []
    private(set) var targets: [String] = []
    private var pending: EventLoopPromise<any Channel>?

    init(loop: EmbeddedEventLoop, outcome: Outcome) {
        self.loop = loop
        self.outcome = outcome
    }

    func connect(
        host: String,
        port: Int,
        on eventLoop: any EventLoop,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<any Channel> {
        #expect(eventLoop === self.loop, "the upstream is not connected on the client's event loop")
        self.targets.append("\(host):\(port)")
        let channel = EmbeddedChannel(loop: self.loop)
        self.channels.append(channel)
        let promise = self.loop.makePromise(of: (any Channel).self)
        do {
            try initializer(channel).wait()
        } catch {
            promise.fail(error)
            return promise.futureResult
        }
        switch self.outcome {
        case .connect:
            do {
                try channel.connect(to: SocketAddress(ipAddress: host, port: port)).wait()
                promise.succeed(channel)
            } catch {
                promise.fail(error)
            }
        case .refuse:
            channel.close(promise: nil)
            promise.fail(Refused())
        case .timeOut:
            channel.close(promise: nil)
            promise.fail(ChannelError.connectTimeout(.seconds(5)))
        case .hang:
            self.pending = promise
        }
        return promise.futureResult
    }

    /// Completes a hanging connect (every promise must be completed).
    func finishPending(_ error: any Error) {
        self.channels.last?.close(promise: nil)
        self.pending?.fail(error)
        self.pending = nil
    }
}

extension ClientConnectionHandlerTests {
    /// One client connection with its in-memory upstream.
    final class Upgrade {
        let loop = EmbeddedEventLoop()
        let client: EmbeddedChannel
        let connector: EmbeddedUpstreamConnector
        let handler: ClientConnectionHandler
        let metrics = TestMetrics()

        init(
            _ outcome: EmbeddedUpstreamConnector.Outcome = .connect,
            clientUsedTLS: Bool = false,
            authorizers: [[any UpgradeAuthorizer]]? = nil,
            configure: (inout GatewayConfiguration) -> Void = { _ in }
        ) throws {
            var configuration = GatewayConfiguration(
                listeners: [.init(name: "public", host: "127.0.0.1", port: 0)],
                routes: [
                    .init(hosts: ["gw.example"], pathPrefix: "/chat", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 9001)])
                ],
                accessLog: .off
            )
            configuration.routes[0].subprotocols = ["chat"]
            configure(&configuration)
            let environment = try GatewayEnvironment(configuration, metrics: GatewayMetrics(factory: self.metrics), authorizers: authorizers)
            self.connector = EmbeddedUpstreamConnector(loop: self.loop, outcome: outcome)
            self.client = EmbeddedChannel(loop: self.loop)
            self.handler = ClientConnectionHandler(
                environment: environment,
                record: ConnectionRecord(id: 1, clientAddress: "192.0.2.1", listener: "public"),
                clientUsedTLS: clientUsedTLS,
                connector: self.connector
            )
            let pipeline = self.client.pipeline.syncOperations
            try pipeline.addHandler(self.handler)
            try self.client.connect(to: .init(ipAddress: "192.0.2.1", port: 40000)).wait()
        }

        var upstream: EmbeddedChannel? { self.connector.channels.last }

        /// Delivers `bytes` to `channel` in reads cut at `cuts`, each followed by read-complete.
        func deliver(_ bytes: [UInt8], to channel: EmbeddedChannel, cutAt cuts: [Int] = []) {
            var start = 0
            for end in cuts.filter({ $0 > 0 && $0 < bytes.count }) + [bytes.count] where channel.isActive {
                _ = try? channel.writeInbound(ByteBuffer(bytes: bytes[start..<end]))
                channel.pipeline.fireChannelReadComplete()
                start = end
            }
            self.loop.run()
        }

        /// Everything written on `channel` so far.
        func written(on channel: EmbeddedChannel?) throws -> [UInt8] {
            guard let channel else { return [] }
            var bytes: [UInt8] = []
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
                bytes += buffer.readableBytesView
            }
            return bytes
        }

        /// Both channels end clean: everything they wrote was read, nothing is left inbound.
        func finish() throws {
            #expect(try self.client.finish(acceptAlreadyClosed: true).isClean)
            for channel in self.connector.channels {
                #expect(try channel.finish(acceptAlreadyClosed: true).isClean)
            }
        }

        /// How often the handshake was refused with `reason`.
        func refusals(_ reason: String) -> Int64 {
            self.metrics.counters(label: "wsgate_upgrades_refused_total")
                .filter { $0.dimensions.contains { $0 == ("reason", reason) } }
                .map(\.totalValue).reduce(0, +)
        }
    }

    static let clientKey = "dGhlIHNhbXBsZSBub25jZQ=="

    static let upgradeRequest = Array(
        ("GET /chat/room?x=1 HTTP/1.1\r\nHost: gw.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: \(clientKey)\r\nSec-WebSocket-Version: 13\r\n"
            + "Sec-WebSocket-Protocol: other, chat\r\nX-App: kept\r\n\r\n").utf8
    )

    /// A head as a peer wrote it: the start line and the headers.
    static func parseHead(_ bytes: [UInt8]) -> (start: String, headers: [(String, String)])? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n") else { return nil }
        let lines = text[..<end.lowerBound].components(separatedBy: "\r\n")
        let headers = lines.dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        return (lines[0], headers)
    }

    static func header(_ name: String, in headers: [(String, String)]) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// The upstream's 101 for the request it received, followed by `trailing` bytes (frames).
    static func switchingAnswer(to request: [UInt8], subprotocol: String? = "chat", trailing: [UInt8] = []) throws -> [UInt8] {
        let head = try #require(Self.parseHead(request), "the upstream got no request head")
        let key = try #require(Self.header("Sec-WebSocket-Key", in: head.headers))
        var text =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: \(HandshakeKey.acceptValue(forKey: key))\r\n"
        if let subprotocol { text += "Sec-WebSocket-Protocol: \(subprotocol)\r\n" }
        return Array((text + "\r\n").utf8) + trailing
    }

    /// Runs a whole upgrade, the client's request cut at `requestCut`, the upstream's answer (with a
    /// frame right behind it) cut at `answerCut`, then one message each way and a close handshake.
    static func upgradeAndRelay(requestCut: Int, answerCut: Int) throws {
        let upgrade = try Upgrade()
        upgrade.deliver(Self.upgradeRequest, to: upgrade.client, cutAt: [requestCut])
        let upstream = try #require(upgrade.upstream, "no upstream connected (request cut at \(requestCut))")
        #expect(upgrade.connector.targets == ["127.0.0.1:9001"])

        // DESIGN §1.6: the upstream gets a fresh key, the filtered subprotocol offer, the end-to-end headers.
        let request = try upgrade.written(on: upstream)
        let head = try #require(Self.parseHead(request))
        #expect(head.start == "GET /chat/room?x=1 HTTP/1.1")
        let key = try #require(Self.header("Sec-WebSocket-Key", in: head.headers))
        #expect(key != Self.clientKey && HandshakeKey.isValidKey(key))
        #expect(Self.header("Sec-WebSocket-Protocol", in: head.headers) == "chat")
        #expect(Self.header("X-App", in: head.headers) == "kept")
        #expect(Self.header("X-Forwarded-For", in: head.headers) == "192.0.2.1")
        #expect(try upgrade.written(on: upgrade.client).isEmpty, "the client was answered before the upstream")

        let early = RelayHandlerEmbeddedTests.upstreamFrame(.text, Array("welcome".utf8))
        let answer = try Self.switchingAnswer(to: request, trailing: early)
        upgrade.deliver(answer, to: upstream, cutAt: [answerCut])
        #expect(upgrade.handler.state == .relaying, "answer cut at \(answerCut)")

        // DESIGN §1.8: the client's 101, then the upstream's first frame.
        let toClient = try upgrade.written(on: upgrade.client)
        let response = try #require(Self.parseHead(toClient))
        #expect(response.start == "HTTP/1.1 101 Switching Protocols")
        #expect(Self.header("Sec-WebSocket-Accept", in: response.headers) == HandshakeKey.acceptValue(forKey: Self.clientKey))
        #expect(Self.header("Sec-WebSocket-Protocol", in: response.headers) == "chat")
        let headEnd = try #require((0..<toClient.count).first { toClient[$0...].starts(with: Array("\r\n\r\n".utf8)) }) + 4
        #expect(Array(toClient[headEnd...]) == early, "answer cut at \(answerCut)")

        // Frames both ways, then the close handshake ends both legs.
        upgrade.deliver(RelayHandlerEmbeddedTests.clientFrame(.text, Array("hi".utf8)), to: upgrade.client)
        let relayed = try RelayHandlerEmbeddedTests.frames(upgrade.written(on: upstream), sentTo: .upstream)
        #expect(relayed.map(\.payload) == [Array("hi".utf8)])
        let close = RelayHandlerEmbeddedTests.closePayload(1000)
        upgrade.deliver(RelayHandlerEmbeddedTests.clientFrame(.close, close), to: upgrade.client)
        #expect(try RelayHandlerEmbeddedTests.frames(upgrade.written(on: upstream), sentTo: .upstream).map(\.opcode) == [.close])
        upgrade.deliver(RelayHandlerEmbeddedTests.upstreamFrame(.close, close), to: upstream)
        #expect(try upgrade.written(on: upgrade.client) == RelayHandlerEmbeddedTests.upstreamFrame(.close, close))
        #expect(!upgrade.client.isActive && !upstream.isActive)
        try upgrade.finish()
    }

    @Test func aWholeUpgradeWithTheRequestSplitAtEveryByte() throws {
        for cut in 0...Self.upgradeRequest.count {
            try Self.upgradeAndRelay(requestCut: cut, answerCut: 0)
        }
    }

    @Test func aWholeUpgradeWithTheUpstreamAnswerSplitAtEveryByte() throws {
        let answerLength = try Self.switchingAnswer(to: Array("GET / HTTP/1.1\r\nSec-WebSocket-Key: \(Self.clientKey)\r\n\r\n".utf8)).count + 9
        for cut in 0...answerLength {
            try Self.upgradeAndRelay(requestCut: 0, answerCut: cut)
        }
    }

    /// Catalog U-03: a 403 from the upstream is relayed with its safe headers and Connection: close, never a 101, both legs closed.
    @Test func anUpstreamRefusalSplitAtEveryByteIsRelayedWithItsSafeHeadersAndBodyThenBothClose() throws {
        let answer = Array("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nX-Internal: secret\r\nContent-Length: 7\r\n\r\ngo away".utf8)
        for cut in 0...answer.count {
            let upgrade = try Upgrade()
            upgrade.deliver(Self.upgradeRequest, to: upgrade.client)
            let upstream = try #require(upgrade.upstream)
            _ = try upgrade.written(on: upstream)
            upgrade.deliver(answer, to: upstream, cutAt: [cut])
            let toClient = String(decoding: try upgrade.written(on: upgrade.client), as: UTF8.self)
            #expect(toClient.hasPrefix("HTTP/1.1 403 Forbidden\r\n"), "cut at \(cut)")
            #expect(toClient.contains("Content-Type: text/plain\r\n") && toClient.contains("Connection: close\r\n"))
            #expect(!toClient.contains("X-Internal"))
            #expect(toClient.hasSuffix("\r\n\r\ngo away"), "cut at \(cut)")
            #expect(!upgrade.client.isActive && !upstream.isActive)
            #expect(upgrade.refusals("upstream-refused") == 1)
            try upgrade.finish()
        }
    }

    /// Catalog U-10: connection refused is 502 and a connect timeout 504, each after exactly one connection attempt (no retry).
    @Test func eachUpstreamFailureGetsItsExactStatus() throws {
        let cases: [(name: String, outcome: EmbeddedUpstreamConnector.Outcome, answer: String?, status: Int, reason: String)] = [
            ("refused", .refuse, nil, 502, "upstream-connect-failed"),
            ("connect timeout", .timeOut, nil, 504, "upstream-connect-timeout"),
            (
                "wrong accept", .connect,
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n", 502,
                "upstream-invalid-101"
            ),
            ("closed without answer", .connect, "", 502, "upstream-no-answer"),
        ]
        for (name, outcome, answer, status, reason) in cases {
            let upgrade = try Upgrade(outcome)
            upgrade.deliver(Self.upgradeRequest, to: upgrade.client)
            if let answer, let upstream = upgrade.upstream {
                _ = try upgrade.written(on: upstream)
                if answer.isEmpty {
                    upstream.close(promise: nil)
                } else {
                    upgrade.deliver(Array(answer.utf8), to: upstream)
                }
            }
            upgrade.loop.run()
            #expect(try Self.answer(upgrade.client)?.status == status, "\(name)")
            #expect(!upgrade.client.isActive, "\(name)")
            #expect(upgrade.upstream?.isActive != true, "\(name): the upstream stays open")
            #expect(upgrade.refusals(reason) == 1, "\(name)")
            #expect(upgrade.connector.targets.count == 1, "\(name): the connection was tried again")
            try upgrade.finish()
        }
    }

    @Test func bytesAfterTheRequestAreRefusedAndNeverForwarded() throws {
        let upgrade = try Upgrade()
        upgrade.deliver(Self.upgradeRequest + RelayHandlerEmbeddedTests.clientFrame(.text, Array("too soon".utf8)), to: upgrade.client)
        let upstream = try #require(upgrade.upstream)
        let request = try upgrade.written(on: upstream)
        upgrade.deliver(try Self.switchingAnswer(to: request), to: upstream)
        #expect(try Self.answer(upgrade.client)?.status == 400)
        #expect(upgrade.refusals("early-data") == 1)
        #expect(try upgrade.written(on: upstream).isEmpty, "early client bytes reached the upstream")
        #expect(!upgrade.client.isActive && !upstream.isActive)
        try upgrade.finish()
    }

    /// Catalog U-09: an upstream that connects (or hangs connecting) and never answers gets 504 at exactly connect+handshake deadline, both legs closed.
    /// Catalog U-10: (b) a connect that hangs (SYNs dropped) is 504 exactly at the upstream deadline, under virtual time.
    @Test func theUpstreamDeadlineCoversConnectAndAnswer() throws {
        for outcome in [EmbeddedUpstreamConnector.Outcome.hang, .connect] {
            let upgrade = try Upgrade(outcome) {
                $0.timeouts.upstreamConnect = .seconds(5)
                $0.timeouts.upstreamHandshake = .seconds(10)
            }
            upgrade.deliver(Self.upgradeRequest, to: upgrade.client)
            _ = try upgrade.written(on: upgrade.upstream)
            upgrade.loop.advanceTime(by: .milliseconds(14_999))
            #expect(try Self.answer(upgrade.client) == nil, "\(outcome)")
            #expect(upgrade.client.isActive)
            upgrade.loop.advanceTime(by: .milliseconds(1))
            #expect(try Self.answer(upgrade.client)?.status == 504, "\(outcome)")
            #expect(upgrade.refusals("upstream-timeout") == 1)
            #expect(!upgrade.client.isActive && upgrade.upstream?.isActive != true)
            // A connect that completes after the deadline changes nothing.
            upgrade.connector.finishPending(ChannelError.connectTimeout(.seconds(5)))
            upgrade.loop.run()
            #expect(upgrade.refusals("upstream-connect-timeout") == 0)
            try upgrade.finish()
        }
    }
}
