import NIOCore

/// The gateway's own keep-alive toward one leg (DESIGN §3, §7), as a pure state machine: after
/// `interval` without a byte from the leg the gateway pings it; if its pong does not come within
/// `deadline`, the leg is dead (its connection is closed, the other side gets 1001).
///
/// The ping payload is `wsgate` + an 8-byte nonce of the session + a 4-byte sequence number (18 bytes),
/// so the gateway recognises its pongs: they are consumed, never relayed (the other side never asked
/// for them), and a peer cannot forge one without the nonce. A leg that is talking is alive: any byte
/// read from it postpones the next ping, so busy legs are never pinged.
struct KeepAlive: Sendable {
    enum State: Equatable, Sendable {
        /// Waiting for `interval` of silence.
        case quiet
        /// A ping is owed but the stream toward the leg is inside a frame; send it at the frame's end.
        case pingOwed
        /// Ping `sequence` was sent; its pong is due by `deadline`.
        case awaitingPong(sequence: UInt32, deadline: NIODeadline)
        /// Keep-alive has ended (the leg is closing or was found dead).
        case stopped
    }

    enum Action: Equatable, Sendable {
        /// Nothing to do now; check again at `at`.
        case checkAt(NIODeadline)
        /// Send a ping with this payload, then check again at the pong deadline.
        case sendPing(payload: [UInt8], checkAt: NIODeadline)
        /// The leg is dead.
        case dead
        case none
    }

    static let magic: [UInt8] = Array("wsgate".utf8)
    static let payloadLength = 18

    let interval: TimeAmount
    let deadline: TimeAmount
    let nonce: UInt64
    private(set) var state: State = .quiet
    private(set) var lastHeard: NIODeadline
    private var sequence: UInt32 = 0

    init(interval: TimeAmount, deadline: TimeAmount, nonce: UInt64, now: NIODeadline) {
        self.interval = interval
        self.deadline = deadline
        self.nonce = nonce
        self.lastHeard = now
    }

    /// Something was read from the leg.
    mutating func heard(at now: NIODeadline) {
        self.lastHeard = now
    }

    /// The timer fired. `midFrame` says whether a frame toward the leg is half-written (no control frame
    /// may be written then).
    mutating func timerFired(now: NIODeadline, midFrame: Bool) -> Action {
        switch self.state {
        case .stopped:
            return .none
        case .quiet, .pingOwed:
            let due = self.lastHeard + self.interval
            guard now >= due else {
                self.state = .quiet
                return .checkAt(due)
            }
            guard !midFrame else {
                self.state = .pingOwed
                return .none
            }
            return self.ping(now: now)
        case .awaitingPong(_, let deadline):
            guard now >= deadline else { return .checkAt(deadline) }
            self.state = .stopped
            return .dead
        }
    }

    /// A frame toward the leg ended: an owed ping can go now.
    mutating func frameBoundary(now: NIODeadline) -> Action {
        guard case .pingOwed = self.state else { return .none }
        return self.ping(now: now)
    }

    /// A pong arrived from the leg. Returns whether it is one of the gateway's (then it is consumed).
    mutating func pongReceived(_ payload: ByteBuffer, now: NIODeadline) -> Bool {
        guard payload.readableBytes == Self.payloadLength,
            payload.readableBytesView.prefix(Self.magic.count).elementsEqual(Self.magic),
            payload.getInteger(at: payload.readerIndex + Self.magic.count, as: UInt64.self) == self.nonce,
            let sequence = payload.getInteger(at: payload.readerIndex + Self.magic.count + 8, as: UInt32.self)
        else { return false }
        if case .awaitingPong(self.sequence, _) = self.state, sequence == self.sequence {
            self.state = .quiet
            self.lastHeard = now
        }
        return true
    }

    /// Keep-alive ends (the connection is closing).
    mutating func stop() {
        self.state = .stopped
    }

    private mutating func ping(now: NIODeadline) -> Action {
        self.sequence &+= 1
        let deadline = now + self.deadline
        self.state = .awaitingPong(sequence: self.sequence, deadline: deadline)
        var payload = Self.magic
        withUnsafeBytes(of: self.nonce.bigEndian) { payload += $0 }
        withUnsafeBytes(of: self.sequence.bigEndian) { payload += $0 }
        return .sendPing(payload: payload, checkAt: deadline)
    }
}
