import Foundation
import Frames
import MetricsTestKit
import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// Issue #14 on the relay, in memory: live counters under virtual time, the live table's figures and
/// close, and the tap's frame events, with reads cut at every byte.
@Suite struct RelaySessionObservationTests {
    typealias Pair = RelayHandlerEmbeddedTests.Pair

    static func info(id: UInt64 = 7, route: String = "/r", client: String = "127.0.0.1:50000") -> LiveConnectionInfo {
        LiveConnectionInfo(
            id: id,
            listener: "plain",
            route: route,
            client: client,
            clientAddress: "127.0.0.1",
            upstream: "ws://127.0.0.1:9001",
            started: .now(),
            tls: nil
        )
    }

    /// `pair`'s session with live counters in `metrics`, as ``UpgradeRecorder/relayStarted(_:route:)`` wires it.
    static func countTraffic(_ pair: Pair, _ metrics: TestMetrics) {
        let counters = GatewayMetrics(factory: metrics).trafficCounters(listener: "plain", route: "/r")
        pair.session.traffic = RelayTraffic(messages: counters.messages, bytes: counters.bytes)
    }

    static func total(_ metrics: TestMetrics, _ name: String, _ direction: String) -> Int64 {
        metrics.counters(label: name).filter { $0.dimensions.contains { $0 == ("direction", direction) } }.map(\.totalValue).reduce(0, +)
    }

    /// The value of `future` once `loop` has run what it was given.
    static func value<T>(_ future: EventLoopFuture<T>, _ loop: EmbeddedEventLoop) throws -> T {
        var result: Result<T, any Error>?
        future.assumeIsolated().whenComplete { result = $0 }
        loop.run()
        return try #require(result).get()
    }

    // MARK: Live counters

    @Test func trafficReachesTheCountersWithinASecondWhileTheConnectionLivesAndIsNotCountedAgainAtClose() throws {
        let pair = try Pair()
        let metrics = TestMetrics()
        Self.countTraffic(pair, metrics)
        try pair.deliver(RelayHandlerEmbeddedTests.clientFrame(.text, Array("hello".utf8)), from: .client)
        try pair.deliver(RelayHandlerEmbeddedTests.upstreamFrame(.binary, [1, 2, 3]), from: .upstream)
        try pair.deliver(RelayHandlerEmbeddedTests.upstreamFrame(.binary, [4]), from: .upstream)
        // Not per frame: nothing yet.
        #expect(Self.total(metrics, "wsgate_bytes_total", "client_to_upstream") == 0)
        pair.loop.advanceTime(by: .seconds(1))
        #expect(Self.total(metrics, "wsgate_messages_total", "client_to_upstream") == 1)
        #expect(Self.total(metrics, "wsgate_bytes_total", "client_to_upstream") == 5)
        #expect(Self.total(metrics, "wsgate_messages_total", "upstream_to_client") == 2)
        #expect(Self.total(metrics, "wsgate_bytes_total", "upstream_to_client") == 4)
        // More traffic later, then the close: only the rest is added.
        try pair.deliver(RelayHandlerEmbeddedTests.clientFrame(.text, Array("again".utf8)), from: .client)
        try pair.deliver(RelayHandlerEmbeddedTests.clientFrame(.close, RelayHandlerEmbeddedTests.closePayload(1000)), from: .client)
        try pair.deliver(RelayHandlerEmbeddedTests.upstreamFrame(.close, RelayHandlerEmbeddedTests.closePayload(1000)), from: .upstream)
        pair.loop.run()
        #expect(pair.finished)
        #expect(Self.total(metrics, "wsgate_messages_total", "client_to_upstream") == 2)
        #expect(Self.total(metrics, "wsgate_bytes_total", "client_to_upstream") == 10)
        #expect(Self.total(metrics, "wsgate_bytes_total", "upstream_to_client") == 4)
        pair.loop.advanceTime(by: .seconds(5))
        #expect(Self.total(metrics, "wsgate_bytes_total", "client_to_upstream") == 10, "counted twice")
    }

    // MARK: Live table

    @Test func theTableReadsFiguresOnTheRelaysLoopAndRendersTheDocumentedShape() throws {
        let pair = try Pair()
        let table = LiveConnectionTable()
        table.insert(Self.info(), session: pair.session)
        try pair.deliver(RelayHandlerEmbeddedTests.clientFrame(.text, Array("hello".utf8)), from: .client)
        let rows = try Self.value(table.snapshot(limit: 10, on: pair.loop), pair.loop)
        #expect(rows.count == 1)
        #expect(rows[0].figures.clientToUpstream == (1, 5))
        #expect(rows[0].figures.state == .open)
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(LiveConnectionJSON.list(rows, now: .now()).utf8)) as? [String: Any]
        )
        let connection = try #require((json["connections"] as? [[String: Any]])?.first)
        #expect(
            Set(connection.keys) == [
                "id", "listener", "route", "client", "upstream", "protocol", "age_seconds", "tls", "subprotocol", "extensions",
                "client_to_upstream", "upstream_to_client", "state",
            ]
        )
        #expect(connection["id"] as? Int == 7)
        #expect(connection["protocol"] as? String == "http1")
        #expect(connection["tls"] is NSNull)
        #expect((connection["client_to_upstream"] as? [String: Int]) == ["messages": 1, "bytes": 5])
        #expect((connection["extensions"] as? [String: Any])?.keys.sorted() == ["client", "upstream"])
        #expect(try Self.value(table.row(8, on: pair.loop), pair.loop) == nil)
    }

    @Test func aCloseThroughTheTableReachesBothLegsAndTheStateShowsClosing() throws {
        let pair = try Pair()
        let table = LiveConnectionTable()
        table.insert(Self.info(), session: pair.session)
        #expect(table.close(7, code: CloseCodeRequest(code: .policyViolation, reason: "operator")))
        #expect(!table.close(8, code: CloseCodeRequest(code: .policyViolation, reason: "")))
        pair.loop.run()
        for side in [Side.client, .upstream] {
            let frames = try RelayHandlerEmbeddedTests.frames(pair.written(to: side), sentTo: side)
            #expect(frames.map(\.opcode) == [.close], "\(side)")
            #expect(frames.first?.payload == RelayHandlerEmbeddedTests.closePayload(1008, "operator"), "\(side)")
        }
        #expect(try Self.value(table.row(7, on: pair.loop), pair.loop)?.figures.state == .closing)
    }

    @Test func aDrainedConnectionShowsDraining() throws {
        let pair = try Pair()
        pair.session.drain()
        #expect(pair.session.liveFigures.state == .draining)
    }

    // MARK: Tap

    /// A hub with one subscriber watching `pair` (entered in the hub's table as connection 7).
    static func tap(
        _ pair: Pair,
        filter: TapSubscriber.Filter = .init(),
        payload: TapPayloadMode = .truncated,
        maxPayload: Int = 1024,
        maxEvents: Int = 100
    )
        -> TapSubscriber
    {
        Self.tap(pair.session, pair.loop, filter: filter, payload: payload, maxPayload: maxPayload, maxEvents: maxEvents)
    }

    static func tap(
        _ session: RelaySession,
        _ loop: EmbeddedEventLoop,
        filter: TapSubscriber.Filter = .init(),
        payload: TapPayloadMode = .truncated,
        maxPayload: Int = 1024,
        maxEvents: Int = 100
    )
        -> TapSubscriber
    {
        let live = LiveConnectionTable()
        let hub = TapHub(live: live)
        session.tapInfo = Self.info()
        live.insert(Self.info(), session: session)
        let subscriber = TapSubscriber(filter: filter, payload: payload, maxPayload: maxPayload, maxEvents: maxEvents) {}
        #expect(hub.attach(subscriber))
        loop.run()
        // Attached to a live connection: its `open` comes first (taken here, so tests see the frames).
        if session.tap != nil {
            let first = subscriber.take(max: 1).events
            if case .open(let open) = first.first { #expect(open.attachedLive && open.connection == 7) } else { Issue.record("\(first)") }
        }
        return subscriber
    }

    static func frames(_ subscriber: TapSubscriber) -> [TapFrame] {
        subscriber.take(max: 1000).events.compactMap { if case .frame(let frame) = $0 { frame } else { nil } }
    }

    @Test func aMaskedClientFrameSplitAtEveryByteIsTappedUnmaskedAndBounded() throws {
        let payload = Array("héllo, wörld".utf8) + [UInt8](repeating: 0x61, count: 100)
        let wire = RelayHandlerEmbeddedTests.clientFrame(.text, payload)
        for cut in 0...wire.count {
            let pair = try Pair()
            let subscriber = Self.tap(pair, maxPayload: 1024)
            try pair.deliver(wire, from: .client, cutAt: [cut])
            let frames = Self.frames(subscriber)
            #expect(frames.count == 1, "cut at \(cut)")
            #expect(frames.first?.payload == payload, "cut at \(cut)")
            #expect(frames.first?.length == payload.count)
            #expect(frames.first?.from == .client)
            // Relayed all the same.
            #expect(try RelayHandlerEmbeddedTests.frames(pair.written(to: .upstream), sentTo: .upstream).first?.payload == payload)
        }
    }

    @Test func theCaptureBoundTruncatesAndTheLineSaysSoWithoutCuttingAUTF8Sequence() throws {
        let pair = try Pair()
        let subscriber = Self.tap(pair, maxPayload: 2)
        try pair.deliver(RelayHandlerEmbeddedTests.upstreamFrame(.text, Array("aé and more".utf8)), from: .upstream)
        let frame = try #require(Self.frames(subscriber).first)
        #expect(frame.payload == [0x61, 0xC3])
        let line = frame.jsonLine(payload: .truncated, maxPayload: 2)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["payload"] as? String == "a")
        #expect(object["payload_encoding"] as? String == "text")
        #expect(object["truncated"] as? Bool == true)
        #expect(object["direction"] as? String == "upstream_to_client")
        #expect(object["length"] as? Int == 12)
        let none = try #require(try JSONSerialization.jsonObject(with: Data(frame.jsonLine(payload: .none, maxPayload: 2).utf8)) as? [String: Any])
        #expect(none["payload"] is NSNull)
    }

    @Test func controlFramesAndClosesAreTappedAndAFilterThatDoesNotMatchSeesNothing() throws {
        let pair = try Pair()
        let subscriber = Self.tap(pair)
        let other = try Pair()
        let elsewhere = Self.tap(other, filter: .init(route: "/other"))
        for pair in [pair, other] {
            try pair.deliver(RelayHandlerEmbeddedTests.clientFrame(.ping, [9]), from: .client)
            try pair.deliver(RelayHandlerEmbeddedTests.clientFrame(.close, RelayHandlerEmbeddedTests.closePayload(1000, "bye")), from: .client)
        }
        let events = subscriber.take(max: 100).events
        #expect(events.count == 3)
        if case .frame(let ping) = events[0] { #expect(ping.opcode == .ping && ping.payload == [9]) } else { Issue.record("\(events[0])") }
        if case .close(let close) = events[2] {
            #expect(close == TapClose(connection: 7, time: close.time, code: 1000, reason: "bye", by: "client", leg: .client))
        } else {
            Issue.record("\(events[2])")
        }
        #expect(elsewhere.take(max: 100).events.isEmpty)
    }

    @Test func aTapThatFallsBehindDropsAndCountsWhileTheRelayForwardsEverything() throws {
        let pair = try Pair()
        let subscriber = Self.tap(pair, maxEvents: 3)
        for index in 0..<20 {
            try pair.deliver(RelayHandlerEmbeddedTests.upstreamFrame(.binary, [UInt8(index)]), from: .upstream)
        }
        #expect(try RelayHandlerEmbeddedTests.frames(pair.written(to: .client), sentTo: .client).count == 20)
        let (events, dropped) = subscriber.take(max: 100)
        #expect(events.count == 3)
        #expect(dropped == 17)
    }

    @Test func aDetachedTapLeavesTheRelayWithNoTapAtAll() throws {
        let pair = try Pair()
        let live = LiveConnectionTable()
        let hub = TapHub(live: live)
        pair.session.tapInfo = Self.info()
        live.insert(Self.info(), session: pair.session)
        let subscriber = TapSubscriber(filter: .init(connection: 7)) {}
        #expect(hub.attach(subscriber))
        pair.loop.run()
        #expect(pair.session.tap != nil)
        hub.detach(subscriber)
        pair.loop.run()
        #expect(pair.session.tap == nil)
    }

    // MARK: Compressed messages (issue #14 §2: shown inflated)

    /// A compressed message from the client, in 3 frames, read at every byte: the tap shows each frame
    /// `compressed` with what it inflated to (together, the message), whether the relay transcodes it
    /// (toward a leg without compression, or with other parameters) or forwards it verbatim (both legs
    /// agree: inflated only to validate it, and that inflation is what the tap sees). What is relayed
    /// is what it is without a tap.
    @Test(arguments: [RelayCompressionTests.Legs.clientOnly, .bothSame, .bothDifferent])
    func aCompressedMessageIsTappedInflatedAndRelayedUnchanged(legs: RelayCompressionTests.Legs) throws {
        let message = Array(String(repeating: "hello, compressed wörld ", count: 20).utf8)
        let (client, upstream) = legs.agreements
        var relayed: [[UInt8]] = []
        for tapped in [false, true] {
            let pair = try RelayCompressionTests.Pair(client: client, upstream: upstream)
            let subscriber = tapped ? Self.tap(pair.session, pair.loop, maxPayload: 4096) : nil
            let wire = try pair.message(message, from: .client, fragments: 3)
            try pair.deliver(wire, from: .client, cutAt: Array(1..<wire.count))
            let frames = try pair.frames(to: .upstream)
            relayed.append(frames.flatMap(\.payload))
            #expect(try pair.messages(frames, to: .upstream) == [message])
            guard let subscriber else { continue }
            let tappedFrames = Self.frames(subscriber)
            #expect(tappedFrames.count == 3)
            #expect(tappedFrames.filter { !$0.compressed }.isEmpty)
            #expect(tappedFrames.flatMap(\.payload) == message)
            #expect(tappedFrames.reduce(0) { $0 + ($1.inflatedLength ?? -10_000) } == message.count)
        }
        // Byte for byte the same payloads with a tap as without.
        #expect(relayed[0] == relayed[1])
    }

    /// The capture bound counts inflated bytes: a compressed message that inflates to more is cut there
    /// and the line says `truncated`, the payload being the inflated bytes (`base64` for binary), not
    /// deflate data. A tap that saw no inflation (attached mid-message) marks raw data `deflate-base64`.
    @Test(arguments: [RelayCompressionTests.Legs.clientOnly, .bothSame])
    func theCaptureBoundCountsInflatedBytesAndRawDeflateIsMarked(legs: RelayCompressionTests.Legs) throws {
        let (client, upstream) = legs.agreements
        let pair = try RelayCompressionTests.Pair(client: client, upstream: upstream)
        let subscriber = Self.tap(pair.session, pair.loop, maxPayload: 10)
        let message = [UInt8](repeating: 0x61, count: 5000)
        try pair.deliver(try pair.message(message, from: .client), from: .client)
        let frame = try #require(Self.frames(subscriber).first)
        #expect(frame.payload == Array(message.prefix(10)))
        #expect(frame.inflatedLength == 5000)
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(frame.jsonLine(payload: .truncated, maxPayload: 10).utf8)) as? [String: Any]
        )
        #expect(object["compressed"] as? Bool == true)
        #expect(object["truncated"] as? Bool == true)
        #expect(object["payload_encoding"] as? String == "base64")
        #expect(object["payload"] as? String == Data(message.prefix(10)).base64EncodedString())
        #expect(object["rsv1"] as? Bool == true)

        var raw = frame
        raw.inflatedLength = nil
        raw.payload = [1, 2, 3]
        let line = try #require(try JSONSerialization.jsonObject(with: Data(raw.jsonLine(payload: .full, maxPayload: 10).utf8)) as? [String: Any])
        #expect(line["payload_encoding"] as? String == "deflate-base64")
        #expect(line["compressed"] as? Bool == true)
    }

    /// A tap attached between the frames of a compressed message did not see its RSV1: the relay's
    /// inflater still shows it the rest of the message inflated, and it says `compressed`.
    @Test(arguments: [RelayCompressionTests.Legs.clientOnly, .bothSame])
    func aTapAttachedMidMessageShowsTheRestInflated(legs: RelayCompressionTests.Legs) throws {
        let (client, upstream) = legs.agreements
        let pair = try RelayCompressionTests.Pair(client: client, upstream: upstream)
        let message = Array(String(repeating: "abcdefgh", count: 100).utf8)
        let wire = try pair.message(message, from: .client, fragments: 2)
        // The first frame: a 6-byte header (masked, short length) and half the compressed payload.
        try #require(wire[1] & 0x7F < 126)
        let firstEnd = 6 + Int(wire[1] & 0x7F)
        try pair.deliver(Array(wire[..<firstEnd]), from: .client)
        let subscriber = Self.tap(pair.session, pair.loop)
        try pair.deliver(Array(wire[firstEnd...]), from: .client)
        let frames = Self.frames(subscriber)
        #expect(frames.count == 1)
        #expect(frames.first?.compressed == true && frames.first?.opcode == .continuation)
        let payload = try #require(frames.first?.payload)
        #expect(!payload.isEmpty && message.suffix(payload.count).elementsEqual(payload))
    }

    // MARK: Per read, not per frame (issue #15)

    /// The frames of one read are offered to the tap together at the read's end (one lock and one wake
    /// per read) and share one timestamp (the clock is read once per read, not per frame).
    @Test func theFramesOfOneReadAreOfferedAtItsEndWithOneTimestamp() throws {
        let pair = try Pair()
        let subscriber = Self.tap(pair)
        let read =
            RelayHandlerEmbeddedTests.upstreamFrame(.binary, [1]) + RelayHandlerEmbeddedTests.upstreamFrame(.text, Array("two".utf8))
            + RelayHandlerEmbeddedTests.upstreamFrame(.ping, [])
        // The read, then its end (`writeInbound` would fire both).
        pair.upstream.pipeline.syncOperations.fireChannelRead(NIOAny(ByteBuffer(bytes: read)))
        #expect(subscriber.queued.events == 0)
        pair.upstream.pipeline.syncOperations.fireChannelReadComplete()
        let frames = Self.frames(subscriber)
        #expect(frames.map(\.opcode) == [.binary, .text, .ping])
        #expect(Set(frames.map(\.time)).count == 1)
        // A close ends the flow now, after the frames read before it.
        pair.upstream.pipeline.syncOperations.fireChannelRead(NIOAny(ByteBuffer(bytes: RelayHandlerEmbeddedTests.upstreamFrame(.binary, [2]))))
        pair.session.gatewayClose(.goingAway, reason: "bye")
        let events = subscriber.take(max: 10).events
        #expect(events.count >= 2)
        if case .frame(let frame) = events.first { #expect(frame.payload == [2]) } else { Issue.record("\(events)") }
        if case .close(let close) = events.dropFirst().first { #expect(close.by == "gateway") } else { Issue.record("\(events)") }
    }

    /// Issue #14 leftover: a tap attached while a connection relays is sent that connection's `open`
    /// first, marked `attached_live`, from the live table: route, scheme, listener, client, method and
    /// the target with its secrets redacted (the route's `auth.jwt` query names too), no headers, and
    /// the connection's start as its time. A tap that was already watching is not sent it again.
    @Test func aTapAttachedToALiveConnectionIsSentItsOpenFirst() throws {
        let pair = try Pair()
        var info = Self.info()
        info.scheme = "wss"
        info.target = "/r?access_token=SECRET&sig=SECRET2&name=a"
        info.tokenQueryParameters = ["SIG"]
        info.started = pair.loop.now
        let live = LiveConnectionTable()
        let hub = TapHub(live: live)
        pair.session.tapInfo = info
        live.insert(info, session: pair.session)
        pair.loop.advanceTime(by: .seconds(2))
        let first = TapSubscriber(filter: .init(route: "/r")) {}
        #expect(hub.attach(first))
        pair.loop.run()
        try pair.deliver(RelayHandlerEmbeddedTests.upstreamFrame(.text, Array("hi".utf8)), from: .upstream)
        let events = first.take(max: 10).events
        #expect(events.count == 2)
        guard case .open(let open) = events.first, case .frame(let frame) = events.last else {
            Issue.record("\(events)")
            return
        }
        #expect(open.attachedLive && open.scheme == "wss" && open.route == "/r" && open.listener == "plain" && open.method == "GET")
        #expect(open.target == "/r?access_token=[redacted]&sig=[redacted]&name=a")
        #expect(open.headers.isEmpty)
        #expect(abs(open.time - (TapEvent.now - 2)) < 1, "started 2 s ago on the loop's clock")
        #expect(frame.connection == open.connection)
        let line = TapEvent.open(open).jsonLine(payload: .none, maxPayload: 0)
        #expect(line.hasSuffix(",\"headers\":[]},\"attached_live\":true}\n"))
        var decoder = TapLineDecoder()
        #expect(decoder.decode(Array(line.utf8).dropLast()) != nil, "wsgate tap reads it")
        // A second tap: only it is sent the open.
        let second = TapSubscriber(filter: .init()) {}
        #expect(hub.attach(second))
        pair.loop.run()
        #expect(first.queued.events == 0)
        if case .open(let again) = second.take(max: 10).events.first { #expect(again.attachedLive) } else { Issue.record("no open") }
    }

    /// Without a tap, or once it detached, the relay's inflater shows nobody anything.
    @Test func aDetachedTapLeavesNoInflationObserver() throws {
        let pair = try RelayCompressionTests.Pair(client: PerMessageDeflateParameters(), upstream: PerMessageDeflateParameters())
        let transcoder = try #require(pair.session.directions.client.transcoder)
        #expect(transcoder.inflationObserver == nil)
        _ = Self.tap(pair.session, pair.loop)
        #expect(transcoder.inflationObserver != nil)
        pair.session.tap = nil
        #expect(transcoder.inflationObserver == nil)
    }
}
