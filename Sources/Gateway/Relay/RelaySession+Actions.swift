import Frames
import NIOCore

/// Performing what the close handshakes decide (``RelayCloseState``): the actions, the Close frames
/// the gateway writes, and the encoders for the frames it writes itself.
extension Relay {
    func perform(_ actions: [RelayCloseState.Action]) {
        for action in actions {
            switch action {
            case .stopReading(let side):
                self.discarding[side] = true
                self.transcodingStopped(side)  // issue #10 item 6
            case .sendClose(let side, let message):
                if case .code(let code, let reason) = message, let code {
                    self.operations.metrics?.close(side: side, code: code, byPeer: false)
                    self.tapClose(leg: side, code: code, reason: reason, by: "gateway")
                }
                self.writeClose(message, to: side)
            case .startCloseTimer(let side):
                self.transport.cancel(.close(side))
                self.schedule(.close(side), in: self.closeTimeout)
            case .startGraceTimer(let side):
                self.transport.cancel(.grace(side))
                self.schedule(.grace(side), in: self.violationGrace)
            case .closeLeg(let side):
                self.transport.cancel(.close(side))
                self.closeConnection(side)
            case .finish:
                self.closeConnection(.client)
                self.closeConnection(.upstream)
                self.finish()
            }
        }
    }

    /// Flushes what was written to `side` and closes its connection.
    func closeConnection(_ side: Side) {
        guard self.transport.isAttached(side) else { return }
        self.transport.flush(side)
        self.transport.close(side)
    }

    /// The encoder for frames the gateway writes toward `side`: masked with fresh keys toward the
    /// upstream (the gateway is its client), unmasked toward the client.
    func encoder(toward side: Side) -> FrameEncoder {
        side == .upstream ? FrameEncoder(role: .client, keys: self.resources.maskingKeys) : FrameEncoder(role: .server)
    }

    /// Writes `message` as a Close frame to `side`. The state machine only asks for it between frames;
    /// should the stream toward `side` be mid-frame after all, its TCP connection is closed instead (a
    /// Close is never written inside a half-relayed frame, DESIGN §3).
    func writeClose(_ message: CloseMessage, to side: Side) {
        guard self.transport.isAttached(side) else { return }
        if self.direction(side.other, { $0.leg.unfinishedPayload > 0 }) {
            self.transport.close(side)
            self.perform(self.closeState.closeImpossible(side, boundary: self.boundaries))
            return
        }
        var encoder = self.encoder(toward: side)
        var bytes = self.transport.buffer(capacity: 14 + 125)
        switch message {
        case .code(let code?, let reason):
            encoder.writeClose(code: code, reason: reason, to: &bytes)
        case .code(nil, _):
            encoder.writeFrame(opcode: .close, payload: ByteBuffer(), to: &bytes)
        case .relay(let payload):
            encoder.writeFrame(opcode: .close, payload: payload, to: &bytes)
        }
        self.transport.writeAndFlush(bytes, to: side)
    }
}
