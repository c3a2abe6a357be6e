import Frames
import MetricsTestKit
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import Testing

@testable import Gateway

/// An HTTP/2 stream's pipeline in memory (issue #16): ``HTTP2WebSocketStreamCodec`` and the same
/// ``ClientConnectionHandler`` as an HTTP/1.1 connection's, on an `EmbeddedChannel` standing for the
/// stream channel (its inbound and outbound are HTTP/2 frame payloads), bridged to an upstream that is
/// another `EmbeddedChannel` (``EmbeddedUpstreamConnector``).
@Suite struct HTTP2WebSocketStreamCodecTests {
    final class Stream {
        let loop = EmbeddedEventLoop()
        let client: EmbeddedChannel
        let connector: EmbeddedUpstreamConnector
        let handler: ClientConnectionHandler
        let metrics = TestMetrics()

        init(configure: (inout GatewayConfiguration) -> Void = { _ in }) throws {
            var configuration = GatewayConfiguration(
                listeners: [.init(name: "public", host: "127.0.0.1", port: 0)],
                routes: [.init(hosts: ["gw.example"], pathPrefix: "/chat", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 9001)])],
                accessLog: .off
            )
            configuration.routes[0].subprotocols = ["chat"]
            configure(&configuration)
            let environment = try GatewayEnvironment(configuration, metrics: GatewayMetrics(factory: self.metrics))
            self.connector = EmbeddedUpstreamConnector(loop: self.loop, outcome: .connect)
            self.client = EmbeddedChannel(loop: self.loop)
            let record = ConnectionRecord(id: 1, clientAddress: "192.0.2.1", listener: "public", httpProtocol: "h2")
            self.handler = ClientConnectionHandler(
                environment: environment,
                record: record,
                clientUsedTLS: true,
                connector: self.connector,
                answerEncoding: .http2,
                establishedTLS: nil
            )
            let recorder = UpgradeRecorder(record: record, metrics: environment.metrics, accessLog: environment.accessLog)
            let pipeline = self.client.pipeline.syncOperations
            let maxHeaderList = configuration.limits.http2.maxHeaderListBytes
            try pipeline.addHandler(HTTP2WebSocketStreamCodec(recorder: recorder, closeTimeout: .seconds(10), maxHeaderListBytes: maxHeaderList))
            try pipeline.addHandler(self.handler)
            try self.client.connect(to: .init(ipAddress: "192.0.2.1", port: 40000)).wait()
        }

        var upstream: EmbeddedChannel? { self.connector.channels.last }

        func send(_ payload: HTTP2Frame.FramePayload) {
            _ = try? self.client.writeInbound(payload)
            self.client.pipeline.fireChannelReadComplete()
            self.loop.run()
        }

        /// `bytes` as DATA frames cut at `cuts`.
        func sendData(_ bytes: [UInt8], cutAt cuts: [Int] = [], endStream: Bool = false) {
            var start = 0
            let ends = cuts.filter { $0 > 0 && $0 < bytes.count } + [bytes.count]
            for (index, end) in ends.enumerated() where self.client.isActive {
                let last = index == ends.count - 1
                self.send(.data(.init(data: .byteBuffer(ByteBuffer(bytes: bytes[start..<end])), endStream: last && endStream)))
                start = end
            }
        }

        func deliver(_ bytes: [UInt8], toUpstream upstream: EmbeddedChannel) {
            _ = try? upstream.writeInbound(ByteBuffer(bytes: bytes))
            upstream.pipeline.fireChannelReadComplete()
            self.loop.run()
        }

        /// The frame payloads written to the client.
        func toClient() throws -> [HTTP2Frame.FramePayload] {
            var out: [HTTP2Frame.FramePayload] = []
            while let payload = try self.client.readOutbound(as: HTTP2Frame.FramePayload.self) { out.append(payload) }
            return out
        }

        func refusals(_ reason: String) -> Int64 {
            self.metrics.counters(label: "wsgate_upgrades_refused_total")
                .filter { $0.dimensions.contains { $0 == ("reason", reason) } }
                .map(\.totalValue).reduce(0, +)
        }
    }

    static let connect = HTTP2Frame.FramePayload.headers(
        .init(
            headers: ExtendedConnectTests.request([":path": "/chat/room?x=1"], extra: [("sec-websocket-protocol", "other, chat"), ("x-app", "kept")])
        )
    )

    static func written(on channel: EmbeddedChannel) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes += buffer.readableBytesView }
        return bytes
    }

    static func dataBytes(_ payloads: [HTTP2Frame.FramePayload]) -> [UInt8] {
        payloads.flatMap { payload -> [UInt8] in
            guard case .data(let data) = payload, case .byteBuffer(let buffer) = data.data else { return [] }
            return Array(buffer.readableBytesView)
        }
    }

    /// Opens the stream up to the relay: the upstream's 101 answered, the client's `:status 200` read.
    static func open(_ stream: Stream) throws -> EmbeddedChannel {
        stream.send(Self.connect)
        let upstream = try #require(stream.upstream, "no upstream connected")
        let request = try Self.written(on: upstream)
        stream.deliver(try ClientConnectionHandlerTests.switchingAnswer(to: request), toUpstream: upstream)
        return upstream
    }

    @Test func anExtendedConnectIsBridgedToAnHTTP1UpgradeWithAFreshKeyAndAnswered200() throws {
        let stream = try Stream()
        stream.send(Self.connect)
        let upstream = try #require(stream.upstream)
        #expect(stream.connector.targets == ["127.0.0.1:9001"])
        let request = try Self.written(on: upstream)
        let head = try #require(ClientConnectionHandlerTests.parseHead(request))
        #expect(head.start == "GET /chat/room?x=1 HTTP/1.1")
        let key = try #require(ClientConnectionHandlerTests.header("Sec-WebSocket-Key", in: head.headers))
        #expect(HandshakeKey.isValidKey(key) && key != ExtendedConnect.placeholderKey, "the upstream gets a fresh key")
        #expect(ClientConnectionHandlerTests.header("Sec-WebSocket-Protocol", in: head.headers) == "chat")
        #expect(ClientConnectionHandlerTests.header("x-app", in: head.headers) == "kept")
        #expect(try stream.toClient().isEmpty, "answered before the upstream")

        let early = RelayHandlerEmbeddedTests.upstreamFrame(.text, Array("welcome".utf8))
        stream.deliver(try ClientConnectionHandlerTests.switchingAnswer(to: request, trailing: early), toUpstream: upstream)
        #expect(stream.handler.state == .relaying)
        let answer = try stream.toClient()
        guard case .headers(let headers) = answer.first else {
            Issue.record("no HEADERS answer: \(answer)")
            return
        }
        #expect(headers.headers.first(name: ":status") == "200" && !headers.endStream)
        #expect(headers.headers.first(name: "sec-websocket-protocol") == "chat")
        #expect(!headers.headers.contains { $0.name == "sec-websocket-accept" || $0.name == "upgrade" })
        #expect(Self.dataBytes(Array(answer.dropFirst())) == early, "the upstream's first frame follows as DATA")
    }

    /// DATA carries RFC 6455 frames exactly as TCP would (RFC 8441 §5).
    /// Catalog P-01: on an HTTP/2 stream, a client frame split into DATA frames at every byte reaches the upstream whole, remasked with a fresh key.
    @Test func aClientFrameSplitIntoDATAAtEveryByteReachesTheUpstreamRemasked() throws {
        let payload = Array("héllo over h2".utf8) + [UInt8](repeating: 0x61, count: 130)
        let key = MaskingKey(0x11, 0x22, 0x33, 0x44)
        let wire = RelayHandlerEmbeddedTests.clientFrame(.text, payload, key: key)
        for cut in 0...wire.count {
            let stream = try Stream()
            let upstream = try Self.open(stream)
            _ = try stream.toClient()
            stream.sendData(wire, cutAt: [cut, cut + 1])
            let frames = try RelayHandlerEmbeddedTests.frames(Self.written(on: upstream), sentTo: .upstream)
            #expect(frames.map(\.payload) == [payload], "cut at \(cut)")
            #expect(frames.first?.masked == true && frames.first?.key != key)
        }
    }

    /// Catalog P-02: on an HTTP/2 stream as on TCP, an unmasked client frame is closed with 1002.
    @Test func anUnmaskedClientFrameOnAStreamIsClosed1002() throws {
        let stream = try Stream()
        let upstream = try Self.open(stream)
        _ = try stream.toClient()
        stream.sendData(RelayHandlerEmbeddedTests.upstreamFrame(.text, Array("no mask".utf8)))
        // The offender's Close waits for the violation grace (the upstream may still answer), as on TCP.
        stream.loop.advanceTime(by: RelaySession.defaultViolationGrace)
        let toClient = try RelayHandlerEmbeddedTests.frames(Self.dataBytes(try stream.toClient()), sentTo: .client)
        #expect(toClient.first?.opcode == .close)
        #expect(toClient.first.map { Array($0.payload.prefix(2)) } == [0x03, 0xEA])
        _ = upstream
    }

    /// RFC 8441 §5: the end of the close handshake ends the stream with END_STREAM.
    @Test func theCloseHandshakeEndsTheStreamWithEndStream() throws {
        let stream = try Stream()
        let upstream = try Self.open(stream)
        _ = try stream.toClient()
        let close = RelayHandlerEmbeddedTests.closePayload(1000)
        stream.sendData(RelayHandlerEmbeddedTests.clientFrame(.close, close))
        _ = try Self.written(on: upstream)
        stream.deliver(RelayHandlerEmbeddedTests.upstreamFrame(.close, close), toUpstream: upstream)
        let out = try stream.toClient()
        #expect(Self.dataBytes(out) == RelayHandlerEmbeddedTests.upstreamFrame(.close, close))
        guard case .data(let last) = out.last else {
            Issue.record("no DATA: \(out)")
            return
        }
        #expect(last.endStream, "the stream was not ended with END_STREAM")
        // The client's END_STREAM would close the stream; without it the stream is reset after the close timeout.
        #expect(stream.client.isActive)
        stream.loop.advanceTime(by: .seconds(10))
        #expect(!stream.client.isActive && !upstream.isActive)
    }

    /// RFC 6455 §4.1 as for HTTP/1.1: DATA before the answer is early data, 400, never forwarded.
    @Test func dataBeforeTheAnswerIsRefusedAsEarlyData() throws {
        let stream = try Stream()
        stream.send(Self.connect)
        let upstream = try #require(stream.upstream)
        _ = try Self.written(on: upstream)
        stream.sendData(RelayHandlerEmbeddedTests.clientFrame(.text, Array("too soon".utf8)))
        let answer = try stream.toClient()
        guard case .headers(let headers) = answer.first else {
            Issue.record("no HEADERS answer: \(answer)")
            return
        }
        #expect(headers.headers.first(name: ":status") == "400")
        #expect(stream.refusals("early-data") == 1)
        #expect(try Self.written(on: upstream).isEmpty)
        #expect(!stream.client.isActive && !upstream.isActive)
    }

    /// Refusals are the HTTP/1.1 statuses, as `:status` HEADERS with END_STREAM (here: the route's
    /// origin policy, decided by the same checks as for HTTP/1.1, and a CONNECT without `:protocol`).
    @Test func refusalsAreStatusHeadersWithEndStreamAndCounted() throws {
        let cases: [(HTTP2Frame.FramePayload, Int, String)] = [
            (.headers(.init(headers: ExtendedConnectTests.request([":path": "/chat"], extra: [("origin", "null")]))), 403, "origin-null"),
            (.headers(.init(headers: ExtendedConnectTests.request([":protocol": nil, ":scheme": nil, ":path": nil]))), 400, "h2-no-protocol"),
            (.headers(.init(headers: ExtendedConnectTests.request([":path": "/nowhere"]))), 404, "no-route"),
        ]
        for (request, status, reason) in cases {
            let stream = try Stream()
            stream.send(request)
            let answer = try stream.toClient()
            guard case .headers(let headers) = answer.first else {
                Issue.record("\(reason): no HEADERS answer: \(answer)")
                continue
            }
            #expect(headers.headers.first(name: ":status") == String(status), "\(reason)")
            let ended = answer.contains { payload in
                switch payload {
                case .data(let data): data.endStream
                case .headers(let last): last.endStream
                default: false
                }
            }
            #expect(ended, "\(reason): the refusal did not end the stream")
            // RFC 9113 §8.1: the client's side is still open, so the stream is reset with NO_ERROR.
            guard case .rstStream(.noError) = answer.last else {
                Issue.record("\(reason): no RST_STREAM NO_ERROR after the answer: \(answer)")
                continue
            }
            #expect(stream.refusals(reason) == 1, "\(reason) not counted")
            #expect(stream.connector.targets.isEmpty)
            #expect(!stream.client.isActive)
        }
    }

    /// RFC 9113 §6.5.2 / RFC 6585 §5: a request over `max_header_list` (but within swift-nio-http2's hard
    /// limit) is answered 431 with END_STREAM and RST_STREAM NO_ERROR on its stream alone; nothing reaches
    /// an upstream. One byte less is served.
    @Test func aRequestOverTheHeaderListLimitIsAnswered431OnItsStream() throws {
        var headers = ExtendedConnectTests.request([":path": "/chat/room?x=1"], extra: [("sec-websocket-protocol", "chat")])
        let base = HTTP2WebSocketStreamCodec.headerListSize(headers)
        headers.add(name: "x-pad", value: String(repeating: "p", count: 2000))
        let size = HTTP2WebSocketStreamCodec.headerListSize(headers)
        #expect(size == base + 5 + 2000 + 32, "RFC 9113 §6.5.2: name + value + 32 per field")
        let over = try Stream { $0.limits.http2.maxHeaderListBytes = size - 1 }
        over.send(.headers(.init(headers: headers)))
        let answer = try over.toClient()
        guard case .headers(let block) = answer.first else {
            Issue.record("no answer: \(answer)")
            return
        }
        #expect(block.headers.first(name: ":status") == "431")
        #expect(answer.contains { if case .data(let data) = $0 { return data.endStream } else { return block.endStream } })
        guard case .rstStream(.noError) = answer.last else {
            Issue.record("no RST_STREAM NO_ERROR after the 431: \(answer)")
            return
        }
        #expect(over.refusals("head-too-large") == 1)
        #expect(over.connector.targets.isEmpty)
        let within = try Stream { $0.limits.http2.maxHeaderListBytes = size }
        within.send(.headers(.init(headers: headers)))
        #expect(within.connector.targets.count == 1, "a request of exactly the limit was refused")
    }

    /// A slow upstream closes the client's window: above the watermark the stream stops reading (the
    /// relay's backpressure), and swift-nio-http2 opens the window only for DATA that was read.
    @Test func anUnwritableUpstreamStopsReadingTheStream() throws {
        let stream = try Stream {
            $0.limits.bufferHighWatermark = 1024
            $0.limits.bufferLowWatermark = 512
        }
        let upstream = try Self.open(stream)
        _ = try stream.toClient()
        try upstream.syncOptions?.setOption(.writeBufferWaterMark, value: .init(low: 512, high: 1024))
        let reads = ReadCounter()
        try stream.client.pipeline.syncOperations.addHandler(reads, position: .first)
        // An upstream that takes nothing more (above its high watermark).
        upstream.isWritable = false
        upstream.pipeline.fireChannelWritabilityChanged()
        let before = reads.count
        stream.client.read()
        #expect(reads.count == before, "the stream was asked to read while the upstream cannot take more")
        upstream.isWritable = true
        upstream.pipeline.fireChannelWritabilityChanged()
        stream.loop.run()
        #expect(reads.count > before, "reading did not resume when the upstream drained")
    }
}
