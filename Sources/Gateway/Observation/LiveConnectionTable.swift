import NIOConcurrencyHelpers
import NIOCore

/// What `/connections` says about a connection that does not change while it lives (issue #14 §1).
struct LiveConnectionInfo: Sendable, Equatable {
    struct TLS: Sendable, Equatable {
        var version: String
        var cipher: String
        var serverName: String?
    }

    var id: UInt64
    var listener: String
    var route: String
    /// `address:port` as the socket saw it, or the address a PROXY header or `X-Forwarded-For` named.
    var client: String
    /// The address alone (for a tap's `client=` filter).
    var clientAddress: String
    var upstream: String
    /// Which protocol carried the WebSocket: `http1` or `h2` (issue #16).
    var `protocol` = "http1"
    var started: NIODeadline
    var tls: TLS?
    var subprotocol: String?
    var clientExtensions: String?
    var upstreamExtensions: String?
    /// For the `open` a tap attached later is sent (``TapOpen/attachedLive``): `ws` or `wss`, the upgrade
    /// request's method and target as received (redacted when sent; the headers are not kept), and the
    /// query parameters the route's `auth.jwt` reads tokens from (redacted too).
    var scheme = "ws"
    var method = "GET"
    var target = ""
    var tokenQueryParameters: [String] = []
}

/// What moves while a connection lives, read on its event loop (``RelaySession/liveFigures``).
struct LiveConnectionFigures: Sendable, Equatable {
    enum State: String, Sendable {
        case open, closing, draining
    }

    var clientToUpstream: (messages: Int, bytes: Int)
    var upstreamToClient: (messages: Int, bytes: Int)
    var state: State

    static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.clientToUpstream == rhs.clientToUpstream && lhs.upstreamToClient == rhs.upstreamToClient && lhs.state == rhs.state
    }
}

/// The relayed connections of a gateway (issue #14 §1), shared across reloads like
/// ``ConnectionRegistry``. A connection is entered when it starts relaying (after the 101) and removed
/// when its relay finishes: connections still in their handshake are not listed (they have no route
/// answer, upstream or figures yet; `wsgate_connections_accepted_total` counts them).
///
/// The table holds no figures: they live in each ``RelaySession`` on its event loop, where the relay
/// updates them without locks. A snapshot hops to each event loop once (``snapshot(limit:on:)``), so
/// reading the table costs the relay nothing per frame; the lock here is taken at a connection's start
/// and end and by readers, never by a frame.
final class LiveConnectionTable: Sendable {
    struct Entry: Sendable {
        let info: LiveConnectionInfo
        let eventLoop: any EventLoop
        let session: NIOLoopBound<RelaySession>
    }

    /// One connection as `/connections` shows it.
    struct Row: Sendable, Equatable {
        var info: LiveConnectionInfo
        var figures: LiveConnectionFigures
    }

    private let entries = NIOLockedValueBox<[UInt64: Entry]>([:])

    var count: Int { self.entries.withLockedValue { $0.count } }

    func insert(_ info: LiveConnectionInfo, session: RelaySession) {
        let entry = Entry(info: info, eventLoop: session.eventLoop, session: NIOLoopBound(session, eventLoop: session.eventLoop))
        self.entries.withLockedValue { $0[info.id] = entry }
    }

    func remove(_ id: UInt64) {
        self.entries.withLockedValue { _ = $0.removeValue(forKey: id) }
    }

    func entry(_ id: UInt64) -> Entry? {
        self.entries.withLockedValue { $0[id] }
    }

    /// Every entry (for the tap hub to reach every session).
    var allEntries: [Entry] { self.entries.withLockedValue { Array($0.values) } }

    /// The `limit` oldest connections (lowest ids), each read on its own event loop: one hop per event
    /// loop, not per connection. The result, in id order, completes on `eventLoop`.
    func snapshot(limit: Int, on eventLoop: any EventLoop) -> EventLoopFuture<[Row]> {
        let chosen = self.entries.withLockedValue { entries in
            entries.keys.sorted().prefix(max(0, limit)).map { entries[$0]! }
        }
        var byLoop: [ObjectIdentifier: [Entry]] = [:]
        for entry in chosen { byLoop[ObjectIdentifier(entry.eventLoop), default: []].append(entry) }
        let reads = byLoop.values.map { entries in
            entries[0].eventLoop.submit {
                entries.map { Row(info: $0.info, figures: $0.session.value.liveFigures) }
            }
        }
        return EventLoopFuture.whenAllSucceed(reads, on: eventLoop).map { groups in
            groups.flatMap { $0 }.sorted { $0.info.id < $1.info.id }
        }
    }

    /// One connection, read on its event loop; `nil` when it is not (or no longer) relaying.
    func row(_ id: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Row?> {
        guard let entry = self.entry(id) else { return eventLoop.makeSucceededFuture(nil) }
        return entry.eventLoop.submit { Row(info: entry.info, figures: entry.session.value.liveFigures) }.hop(to: eventLoop)
    }

    /// Asks connection `id`'s relay to close both legs with `code` and `reason` (the relay's close rules:
    /// each leg gets the Close at its next frame boundary). False when `id` is not relaying.
    func close(_ id: UInt64, code: CloseCodeRequest) -> Bool {
        guard let entry = self.entry(id) else { return false }
        entry.eventLoop.execute {
            entry.session.value.gatewayClose(code.code, reason: code.reason)
        }
        return true
    }
}
