import Frames

/// Which leg of a connection.
enum Side: String, Sendable, Hashable {
    case client
    case upstream

    var other: Side { self == .client ? .upstream : .client }
}

/// One value per leg. A struct with a switch, not a dictionary: the relay reads these on every frame,
/// and hashing a `Side` (a `String` raw value) there cost about 7 % of the CPU in `stream-32`.
struct PerSide<Value> {
    var client: Value
    var upstream: Value

    init(client: Value, upstream: Value) {
        self.client = client
        self.upstream = upstream
    }

    init(_ both: Value) {
        self.init(client: both, upstream: both)
    }

    subscript(side: Side) -> Value {
        get {
            switch side {
            case .client: self.client
            case .upstream: self.upstream
            }
        }
        set {
            switch side {
            case .client: self.client = newValue
            case .upstream: self.upstream = newValue
            }
        }
    }
}

extension PerSide: Equatable where Value: Equatable {}

/// The close handshake across both legs (DESIGN §1 close-code table, §3 "Close"), as a state machine
/// that returns actions; ``RelaySession`` performs them.
///
/// - A leg is *done* when a Close has gone both ways on it, or our Close went to a peer that broke the
///   protocol (it gets no reply time), or its TCP connection is gone. A done leg's TCP connection is
///   closed at once (the gateway is the server toward the client, RFC 6455 §7.1.1).
/// - A valid Close from one side is relayed to the other with its code and reason unchanged.
/// - A client that breaks the protocol stops being read at once, and the upstream gets 1001; the
///   client's own Close (1002/1007/1008/1009) is sent when the upstream has closed, so that answers to
///   the client's earlier, valid messages still reach it first (Autobahn 3.*, 4.*, 5.15 expect them).
/// - An upstream that breaks the protocol gets its Close, and the client gets 1014 at once.
/// - When both legs are done, or the close timeout fires, everything is closed.
struct RelayCloseState {
    struct Leg: Equatable {
        var closeSent = false
        var closeReceived = false
        var tcpClosed = false
        var tcpCloseRequested = false
        var isDone: Bool { self.tcpClosed || (self.closeSent && self.closeReceived) }
    }

    /// Who ended the connection and with which code, for the access log.
    struct Outcome: Equatable {
        var code: CloseCode?
        var closedBy: String
    }

    enum Action: Equatable {
        /// Write a Close frame to `side` (at a frame boundary; if that is impossible, close its TCP).
        case sendClose(Side, CloseCode?, reason: String)
        /// Relay the peer's Close payload verbatim.
        case relayClose(to: Side)
        /// Discard what `side` sends from now on (it failed, or sent its Close); it is still read, so
        /// that its TCP close is seen.
        case stopReading(Side)
        /// Close `side`'s TCP connection once what was written to it is flushed.
        case closeLeg(Side)
        case startCloseTimer
        /// Close whatever is still open and report the outcome.
        case finish
    }

    private(set) var legs = PerSide(Leg())
    private(set) var outcome: Outcome?
    /// The Close owed to a client that broke the protocol, sent once the upstream leg is done.
    private var owedToClient: (code: CloseCode, reason: String)?
    private var timerStarted = false
    private var finished = false

    /// Whether frames may still be written to `side` (no Close sent to it yet, its TCP still open).
    func mayWrite(to side: Side) -> Bool { !self.legs[side].closeSent && !self.legs[side].tcpClosed }

    /// A valid Close frame arrived from `side`.
    mutating func closeReceived(from side: Side, code: CloseCode?) -> [Action] {
        self.record(code: code ?? .noStatusReceived, by: side.rawValue)
        self.legs[side].closeReceived = true
        var actions: [Action] = [.stopReading(side)]
        if side == .upstream, self.owedToClient != nil {
            // The upstream answered our 1001; the client now gets the Close it earned.
        } else if self.mayWrite(to: side.other) {
            self.legs[side.other].closeSent = true
            actions.append(.relayClose(to: side.other))
        }
        return actions + self.progress()
    }

    /// `side` broke the protocol with `error`.
    mutating func violation(by side: Side, error: FramesError) -> [Action] {
        self.record(code: error.closeCode, by: "gateway")
        var actions: [Action] = [.stopReading(side)]
        // The offender gets no time to answer: its leg is done once our Close is out.
        self.legs[side].closeReceived = true
        switch side {
        case .client where self.mayWrite(to: .upstream) && self.mayWrite(to: .client):
            self.owedToClient = (error.closeCode, error.code.description)
            self.legs[.upstream].closeSent = true
            actions.append(.sendClose(.upstream, .goingAway, reason: ""))
        case .client, .upstream:
            if self.mayWrite(to: side) {
                self.legs[side].closeSent = true
                actions.append(.sendClose(side, error.closeCode, reason: error.code.description))
            }
            if self.mayWrite(to: side.other) {
                self.legs[side.other].closeSent = true
                actions.append(.sendClose(side.other, side == .client ? .goingAway : .badGateway, reason: ""))
            }
        }
        return actions + self.progress()
    }

    /// The gateway ends the connection itself (idle timeout, drain): Close with `code` to both legs.
    mutating func gatewayClose(_ code: CloseCode, reason: String) -> [Action] {
        self.record(code: code, by: "gateway")
        var actions: [Action] = []
        for side in [Side.client, .upstream] where self.mayWrite(to: side) {
            self.legs[side].closeSent = true
            actions.append(.sendClose(side, code, reason: reason))
        }
        return actions + self.progress()
    }

    /// `side`'s TCP connection is gone. If it had not closed properly, the other leg gets 1014 (upstream
    /// lost) or 1001 (client lost).
    mutating func tcpClosed(_ side: Side) -> [Action] {
        // Expected when its Close came, or when the gateway closed it.
        let expected = self.legs[side].closeReceived || self.legs[side].tcpCloseRequested
        self.legs[side].tcpClosed = true
        self.legs[side].tcpCloseRequested = true
        var actions: [Action] = []
        if !expected {
            self.record(code: .abnormalClosure, by: side.rawValue)
            if side == .upstream && self.owedToClient != nil {
                // The client is owed its own Close, sent by `progress()`.
            } else if self.mayWrite(to: side.other) {
                self.legs[side.other].closeSent = true
                let lostUpstream = side == .upstream
                actions.append(.sendClose(side.other, lostUpstream ? .badGateway : .goingAway, reason: lostUpstream ? "upstream lost" : ""))
            }
        }
        return actions + self.progress()
    }

    /// A Close could not be written at a frame boundary (the leg was mid-frame); its TCP connection is
    /// being closed instead.
    mutating func closeImpossible(_ side: Side) -> [Action] {
        self.legs[side].tcpClosed = true
        self.legs[side].tcpCloseRequested = true
        return self.progress()
    }

    mutating func closeTimerFired() -> [Action] {
        var actions: [Action] = []
        if let owed = self.owedToClient, self.mayWrite(to: .client) {
            self.owedToClient = nil
            self.legs[.client].closeSent = true
            actions.append(.sendClose(.client, owed.code, reason: owed.reason))
        }
        return actions + self.finishOnce()
    }

    private mutating func progress() -> [Action] {
        var actions: [Action] = []
        if let owed = self.owedToClient, self.legs[.upstream].isDone, self.mayWrite(to: .client) {
            self.owedToClient = nil
            self.legs[.client].closeSent = true
            actions.append(.sendClose(.client, owed.code, reason: owed.reason))
        }
        for side in [Side.client, .upstream] where self.legs[side].isDone && !self.legs[side].tcpCloseRequested {
            self.legs[side].tcpCloseRequested = true
            actions.append(.closeLeg(side))
        }
        if self.legs[.client].isDone && self.legs[.upstream].isDone {
            return actions + self.finishOnce()
        }
        if !self.timerStarted {
            self.timerStarted = true
            actions.append(.startCloseTimer)
        }
        return actions
    }

    private mutating func finishOnce() -> [Action] {
        guard !self.finished else { return [] }
        self.finished = true
        return [.finish]
    }

    private mutating func record(code: CloseCode, by: String) {
        if self.outcome == nil { self.outcome = Outcome(code: code, closedBy: by) }
    }
}

// MARK: - Policies (issue #5 C–D): rate-limit closes and keep-alive timeouts

extension RelayCloseState {
    /// `side` broke a policy after the handshake (a rate limit with `action: close`): it gets `code`
    /// (1008) and the other side 1001 (DESIGN §1 close-code table). Ordering is that of a protocol
    /// violation: a client offender is no longer read, the upstream gets 1001 first and the client its
    /// 1008 once the upstream has closed, so answers to its earlier messages still reach it.
    mutating func policyViolation(by side: Side, code: CloseCode, reason: String) -> [Action] {
        self.record(code: code, by: "gateway")
        var actions: [Action] = [.stopReading(side)]
        self.legs[side].closeReceived = true
        switch side {
        case .client where self.mayWrite(to: .upstream) && self.mayWrite(to: .client):
            self.owedToClient = (code, reason)
            self.legs[.upstream].closeSent = true
            actions.append(.sendClose(.upstream, .goingAway, reason: ""))
        case .client, .upstream:
            if self.mayWrite(to: side) {
                self.legs[side].closeSent = true
                actions.append(.sendClose(side, code, reason: reason))
            }
            if self.mayWrite(to: side.other) {
                self.legs[side.other].closeSent = true
                actions.append(.sendClose(side.other, .goingAway, reason: ""))
            }
        }
        return actions + self.progress()
    }

    /// A keep-alive ping to `side` went unanswered: `side` is dead. Its connection is closed at once (no
    /// Close: it would not be read) and the other side gets 1001 (DESIGN §1: "idle/ping timeout on one
    /// leg").
    mutating func keepAliveExpired(_ side: Side) -> [Action] {
        self.record(code: .goingAway, by: "gateway")
        self.legs[side].tcpClosed = true
        var actions: [Action] = [.stopReading(side)]
        let clientIsOwedItsOwnClose = side == .upstream && self.owedToClient != nil
        if !clientIsOwedItsOwnClose, self.mayWrite(to: side.other) {
            self.legs[side.other].closeSent = true
            actions.append(.sendClose(side.other, .goingAway, reason: "keep-alive timeout"))
        }
        return actions + self.progress()
    }
}
