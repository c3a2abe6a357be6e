import NIOConcurrencyHelpers
import NIOCore

/// Admission limits shared by every event loop (DESIGN §1.1, §5): open connections per listener and per
/// client IP, and upgrade requests per second per client IP. One lock; each call is a dictionary
/// look-up, done once per connection, never per frame.
///
/// Decisions: the connection caps close a new connection at accept, before anything is read or any TLS
/// work is done (the cheapest answer under a flood, and what HAProxy's `maxconn` and Envoy's listener
/// `connection_limit` do); the handshake rate answers `429 Too Many Requests` with `Retry-After` once
/// the request head is read, before any upstream contact, so a well-behaved client learns when to retry.
final class ConnectionAdmission: Sendable {
    enum Refusal: String, Equatable, Sendable {
        case listenerConnections = "listener_connections"
        case ipConnections = "ip_connections"
    }

    private struct State {
        var perListener: [String: Int] = [:]
        var perIP: [String: Int] = [:]
        var handshakes: [String: TokenBucket] = [:]
    }

    private let limits: GatewayConfiguration.ConnectionLimits
    private let listenerLimits: [String: Int]
    private let clock: any GatewayClock
    private let state = NIOLockedValueBox(State())

    init(_ configuration: GatewayConfiguration, clock: any GatewayClock = SystemGatewayClock()) {
        self.limits = configuration.connectionLimits
        var listenerLimits: [String: Int] = [:]
        for listener in configuration.listeners {
            if let limit = listener.maxConnections { listenerLimits[listener.name] = limit }
        }
        self.listenerLimits = listenerLimits
        self.clock = clock
    }

    /// A connection was accepted on `listener` from `ip`. Either it counts (and ``release(listener:ip:)``
    /// must be called when it closes) or the refusal says which cap it hit (and nothing was counted).
    func admit(listener: String, ip: String?) -> Refusal? {
        let ip = ip.map(self.accountingKey)
        return self.state.withLockedValue { state in
            if let limit = self.listenerLimits[listener], state.perListener[listener, default: 0] >= limit {
                return .listenerConnections
            }
            if let ip, let limit = self.limits.perIPConnections, state.perIP[ip, default: 0] >= limit {
                return .ipConnections
            }
            state.perListener[listener, default: 0] += 1
            if let ip, self.limits.perIPConnections != nil { state.perIP[ip, default: 0] += 1 }
            return nil
        }
    }

    /// The per-IP cap alone, for an address learnt after accept (a PROXY protocol header, issue #11):
    /// the connection was admitted on its listener with no IP. ``releaseAddress(_:)`` undoes it.
    func admitAddress(_ ip: String) -> Refusal? {
        guard let limit = self.limits.perIPConnections else { return nil }
        return self.state.withLockedValue { state in
            if state.perIP[ip, default: 0] >= limit { return .ipConnections }
            state.perIP[ip, default: 0] += 1
            return nil
        }
    }

    func releaseAddress(_ ip: String) {
        guard self.limits.perIPConnections != nil else { return }
        self.state.withLockedValue { state in
            let left = state.perIP[ip, default: 1] - 1
            state.perIP[ip] = left > 0 ? left : nil
        }
    }

    /// An admitted connection closed.
    func release(listener: String, ip: String?) {
        let ip = ip.map(self.accountingKey)
        self.state.withLockedValue { state in
            state.perListener[listener, default: 1] -= 1
            if let ip, self.limits.perIPConnections != nil {
                let left = state.perIP[ip, default: 1] - 1
                state.perIP[ip] = left > 0 ? left : nil
            }
        }
    }

    /// An upgrade request from `ip`: `nil` when it may proceed, otherwise the seconds until it could
    /// (for `Retry-After`, rounded up).
    func admitHandshake(ip: String?) -> Int? {
        guard let rate = self.limits.perIPHandshakes, let ip = ip.map(self.accountingKey) else { return nil }
        let now = self.clock.now
        return self.state.withLockedValue { state in
            var bucket = state.handshakes[ip] ?? TokenBucket(rate: rate.perSecond, burst: rate.burst, now: now)
            defer {
                // A full bucket is the same as no entry: forget it, so the table only holds busy clients.
                if bucket.tokens(at: now) >= Int128(bucket.burst) { state.handshakes[ip] = nil } else { state.handshakes[ip] = bucket }
            }
            if let at = bucket.availableAt(cost: 1, now: now) {
                let nanoseconds = (at - now).nanoseconds
                return Int((nanoseconds + 999_999_999) / 1_000_000_000)
            }
            bucket.take(1)
            if state.handshakes.count >= Self.handshakeTableSweepSize {
                // Bound the table: drop clients whose bucket has refilled (they would start full anyway).
                state.handshakes = state.handshakes.filter { $0.value.tokens(at: now) < Int128($0.value.burst) }
            }
            return nil
        }
    }

    /// What per-IP limits count `ip` under: the address, or for IPv6 its configured prefix.
    private func accountingKey(_ ip: String) -> String {
        AddressPrefix.accountingKey(ip, ipv6Prefix: self.limits.ipv6Prefix)
    }

    /// Above this many tracked addresses, refilled entries are swept on the next handshake.
    static let handshakeTableSweepSize = 4096

    /// Open connections counted on `listener` (tests).
    func openConnections(listener: String) -> Int { self.state.withLockedValue { $0.perListener[listener, default: 0] } }
}
