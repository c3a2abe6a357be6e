import Frames
import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// SIGTERM's drain over many relayed sessions at once, in memory and under virtual time (RELIABILITY
/// G-01, G-02): the ``ConnectionRegistry`` fires the drain into every session, as `GatewayServer.drain`
/// does, and each session is a ``RelayHandlerEmbeddedTests/Pair``.
extension ConnectionRegistryTests {
    typealias T = RelayHandlerEmbeddedTests

    /// What a session was doing when the drain began.
    enum Activity: CaseIterable {
        /// No frame in flight either way.
        case idle
        /// A 1 KiB message half relayed in each direction.
        case streaming
        /// In the middle of a fragmented message each way: fragments sent, the current one half relayed.
        case fragmented
    }

    struct Session {
        let pair: T.Pair
        let activity: Activity
        /// The bytes each peer has not sent yet (the rest of what it was sending at the drain).
        var clientRest: [UInt8] = []
        var upstreamRest: [UInt8] = []
        /// Frames each peer sends in total, for checking what the other peer got.
        var clientMessage: [UInt8] = []
        var upstreamMessage: [UInt8] = []
    }

    static func session(_ activity: Activity, closeTimeout: TimeAmount = .seconds(10)) throws -> Session {
        let pair = try T.Pair(closeTimeout: closeTimeout)
        var session = Session(pair: pair, activity: activity)
        let kib = (0..<1024).map { UInt8(truncatingIfNeeded: $0) }
        let (clientWire, upstreamWire): ([UInt8], [UInt8])
        switch activity {
        case .idle:
            return session
        case .streaming:
            clientWire = T.clientFrame(.binary, kib)
            upstreamWire = T.upstreamFrame(.binary, kib)
        case .fragmented:
            // Two fragments of a 3 KiB message sent whole, the third half sent; more would follow.
            clientWire =
                T.clientFrame(.binary, kib, fin: false) + T.clientFrame(.continuation, kib, fin: false)
                + T.clientFrame(.continuation, kib, fin: false)
            upstreamWire =
                T.upstreamFrame(.binary, kib, fin: false) + T.upstreamFrame(.continuation, kib, fin: false)
                + T.upstreamFrame(.continuation, kib, fin: false)
        }
        let clientCut = clientWire.count - 500
        let upstreamCut = upstreamWire.count - 500
        try pair.deliver(Array(clientWire.prefix(clientCut)), from: .client)
        try pair.deliver(Array(upstreamWire.prefix(upstreamCut)), from: .upstream)
        session.clientRest = Array(clientWire.dropFirst(clientCut))
        session.upstreamRest = Array(upstreamWire.dropFirst(upstreamCut))
        session.clientMessage = clientWire
        session.upstreamMessage = upstreamWire
        return session
    }

    /// 200 sessions, as in the catalog: 100 idle, 50 streaming, 50 in a fragmented message.
    static func sessions(closeTimeout: TimeAmount = .seconds(10)) throws -> [Session] {
        try (0..<100).map { _ in try Self.session(.idle, closeTimeout: closeTimeout) }
            + (0..<50).map { _ in try Self.session(.streaming, closeTimeout: closeTimeout) }
            + (0..<50).map { _ in try Self.session(.fragmented, closeTimeout: closeTimeout) }
    }

    /// Catalog G-01: a drain gives every session Close 1001 on both legs, each at a frame boundary (a frame being relayed is finished first; a fragmented message is closed between fragments); cooperating peers answer and every session ends with no 1006 and no Close inside a frame.
    @Test func aDrainClosesEverySessionWith1001AtAFrameBoundaryOnBothLegs() throws {
        let registry = ConnectionRegistry()
        let sessions = try Self.sessions()
        var written: [ObjectIdentifier: [Side: [UInt8]]] = [:]
        for session in sessions {
            registry.register(session.pair.client)
            // What the peers got before the drain.
            written[ObjectIdentifier(session.pair)] = [
                .client: try session.pair.written(to: .client), .upstream: try session.pair.written(to: .upstream),
            ]
        }
        #expect(registry.count == 200)

        registry.startDrain()
        #expect(registry.isDraining)
        for session in sessions {
            let pair = session.pair
            let key = ObjectIdentifier(pair)
            let toClient = try pair.written(to: .client)
            let toUpstream = try pair.written(to: .upstream)
            if session.activity == .idle {
                #expect(T.code(try T.frames(toClient, sentTo: .client).first) == 1001)
                #expect(T.code(try T.frames(toUpstream, sentTo: .upstream).first) == 1001)
            } else {
                #expect(toClient.isEmpty && toUpstream.isEmpty, "a Close inside a half-relayed frame (\(session.activity))")
                // The peers finish the frame they were sending; then the Close follows it.
                try pair.deliver(session.upstreamRest, from: .upstream)
                try pair.deliver(session.clientRest, from: .client)
            }
            written[key]![.client]! += toClient + (try pair.written(to: .client))
            written[key]![.upstream]! += toUpstream + (try pair.written(to: .upstream))
            for side in [Side.client, .upstream] {
                // `frames` fails on a partial frame or a protocol error in what a peer received.
                let frames = try T.frames(written[key]![side]!, sentTo: side)
                #expect(frames.filter { $0.opcode == .close }.count == 1, "\(session.activity) toward \(side)")
                #expect(frames.last?.opcode == .close)
                #expect(T.code(frames.last) == 1001)
                #expect(frames.last?.payload.dropFirst(2) == ArraySlice(RelaySession.drainReason.utf8))
                // Nothing the other peer sent before the drain was cut: every data frame arrives whole.
                let sent = side == .client ? session.upstreamMessage : session.clientMessage
                let data = frames.filter { $0.opcode != .close }
                #expect(data.reduce(0) { $0 + $1.payload.count } == (sent.isEmpty ? 0 : (session.activity == .streaming ? 1024 : 3072)))
            }
            #expect(pair.client.isActive && pair.upstream.isActive, "closed before the peers answered")
        }

        // The peers answer their Close: each session ends, none lost by its peer.
        for session in sessions {
            let pair = session.pair
            try pair.deliver(T.clientFrame(.close, T.closePayload(1001)), from: .client)
            try pair.deliver(T.upstreamFrame(.close, T.closePayload(1001)), from: .upstream)
            pair.loop.run()
            #expect(!pair.client.isActive && !pair.upstream.isActive)
            #expect(pair.finished && pair.outcome == .init(code: .goingAway, closedBy: "gateway"))
            #expect(pair.metrics.counterTotal(label: "wsgate_close_codes_total", dimensions: [("code", "1006")]) == 0)
        }
        #expect(registry.count == 0)
    }

    /// Catalog G-02: peers that never answer a Close (nor read), and upstreams stopped in the middle of a frame, are closed by the drain deadline: at the close timeout when it is shorter (10 s by default, inside the 25 s drain), else exactly at the deadline (``ConnectionRegistry/forceCloseAll()``), never with a Close inside a frame; nothing is left open.
    @Test(arguments: [10, 60] as [Int64])
    func uncooperativePeersAreClosedByTheDrainDeadline(closeTimeout: Int64) throws {
        let drainDeadline: Int64 = 25
        let end = min(closeTimeout, drainDeadline)
        let registry = ConnectionRegistry()
        // 20 sessions whose peers never answer, and 5 whose upstream stopped in the middle of a frame
        // toward the client (kill -STOP), so the client's Close can never be written.
        let silent = try (0..<20).map { index in try Self.session(index % 2 == 0 ? .idle : .fragmented, closeTimeout: .seconds(closeTimeout)) }
        let stuck = try (0..<5).map { _ in try Self.session(.streaming, closeTimeout: .seconds(closeTimeout)) }
        let all = silent + stuck
        for session in all { registry.register(session.pair.client) }
        for session in silent where session.activity == .fragmented {
            // They finish their frames, then go silent.
            try session.pair.deliver(session.upstreamRest, from: .upstream)
            try session.pair.deliver(session.clientRest, from: .client)
        }
        for session in stuck {
            // The client finishes its frame; the upstream never does.
            try session.pair.deliver(session.clientRest, from: .client)
        }
        for session in all {
            _ = try session.pair.written(to: .client)
            _ = try session.pair.written(to: .upstream)
        }
        registry.startDrain()
        for session in silent {
            #expect(T.code(try T.frames(session.pair.written(to: .client), sentTo: .client).last) == 1001)
            #expect(T.code(try T.frames(session.pair.written(to: .upstream), sentTo: .upstream).last) == 1001)
        }
        for session in stuck {
            #expect(try session.pair.written(to: .client).isEmpty, "a Close inside the half frame")
            #expect(T.code(try T.frames(session.pair.written(to: .upstream), sentTo: .upstream).last) == 1001)
        }
        for session in all { session.pair.loop.advanceTime(by: .milliseconds(end * 1000 - 1)) }
        #expect(registry.count == 25, "closed before the deadline")
        for session in all { session.pair.loop.advanceTime(by: .milliseconds(1)) }
        if closeTimeout < drainDeadline {
            // The close timeout ended every leg (a stuck client's TCP goes with its upstream's: the half
            // frame can never end).
            #expect(registry.count == 0)
        } else {
            #expect(registry.count == 25)
            #expect(registry.forceCloseAll() == 25)
            for session in all { session.pair.loop.run() }
        }
        for session in all {
            #expect(!session.pair.client.isActive && !session.pair.upstream.isActive)
            #expect(session.pair.finished)
            let late = (try session.pair.written(to: .client), try session.pair.written(to: .upstream))
            #expect(late.0.isEmpty && late.1.isEmpty, "written after the drain's Close: \(late.0.prefix(8)) \(late.1.prefix(8)) \(session.activity)")
        }
        #expect(registry.count == 0)
    }
}
