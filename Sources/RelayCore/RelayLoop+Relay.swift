import Frames
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The relay proper: every frame of both directions goes through the `Frames` parser (masking by role,
/// lengths and limits, fragmentation, UTF-8 of text messages, Close bodies; RFC 6455 §5, §8.1), as the
/// gateway does. Toward the upstream each frame is written anew with a fresh masking key and its payload
/// remasked in the same pass that copies it (§5.3, §10.3); toward the client the upstream's bytes are
/// validated in place and forwarded as they are (unmasked frames need no change).
extension RelayLoop {
    /// Reads from `side` and relays until the socket is drained, it ends, or the destination pushes back.
    func pump(from side: Side, _ connection: UnsafeMutablePointer<RelayConnection>, _ handle: Slab<RelayConnection>.Handle, hungUp: Bool) {
        let destination = side.other
        while true {
            let fd = connection.pointee[leg: side].fd
            guard fd >= 0, !connection.pointee[leg: side].stopped else { return }
            if connection.pointee[leg: destination].pending != nil {
                connection.pointee[leg: side].readable = true  // resume when the destination drains
                return
            }
            var input = self.pool.take()
            let capacity = side == .upstream ? min(input.writableBytes, self.upstreamReadSize) : input.writableBytes
            let count = input.withUnsafeMutableWritableBytes { read(fd, $0.baseAddress, capacity) }
            if count > 0 {
                input.moveWriterIndex(forwardBy: count)
                connection.pointee[leg: side].readable = false
                if side == .client && connection.pointee.tls != nil {
                    guard self.unseal(input, connection, handle) else { return }
                } else {
                    self.relay(input, from: side, connection)
                }
                // A short read drained the socket; new bytes raise a new edge. After a hang-up the end
                // itself must still be read.
                if count < capacity && !hungUp { return }
                continue
            }
            self.pool.give(input)
            if count == 0 {
                self.sourceEnded(side, connection, handle)
                return
            }
            switch errno {
            case EINTR: continue
            case EAGAIN: connection.pointee[leg: side].readable = false
            default: self.sourceEnded(side, connection, handle)
            }
            return
        }
    }

    /// Relays one read of `side`'s bytes (a pool buffer, given back here).
    func relay(_ input: consuming ByteBuffer, from side: Side, _ connection: UnsafeMutablePointer<RelayConnection>) {
        // After its Close a peer is still read (to see its TCP end) but nothing it sends is relayed; before
        // its Close (the gateway closed the direction) it is parsed for that Close.
        if connection.pointee[from: side].closePassed {
            if !connection.pointee[from: side].parser.isClosed {
                self.awaitClose(input, from: side, connection)
            } else {
                self.pool.give(input)
            }
            return
        }
        if side == .client {
            self.relayFromClient(input, connection)
        } else {
            self.relayFromUpstream(input, connection)
        }
    }

    /// Client → upstream: parsed, copied and remasked with fresh keys into a second pool buffer.
    private func relayFromClient(_ input: consuming ByteBuffer, _ connection: UnsafeMutablePointer<RelayConnection>) {
        var input = input
        var output = self.pool.take()
        let step = RelayFraming.towardUpstream(
            &connection.pointee.fromClient,
            &input,
            into: &output,
            keys: self.keys,
            encoder: &self.towardUpstream,
            batching: self.configuration.batchedParsing
        )
        self.batchedFrames &+= step.batchedFrames
        self.counters.messagesToUpstream &+= UInt64(step.messages)
        self.counters.bytesToUpstream &+= UInt64(output.readableBytes)
        self.pool.give(input)
        self.send(output, to: .upstream, connection)
        if step.closed {
            self.closeCodes.count(step.closeCode)
            self.closePassed(from: .client, connection)
        }
        if let failure = step.failure { self.violation(by: .client, failure, connection) }
        if connection.pointee.drainOwed { self.continueDrain(connection) }
    }

    /// Upstream → client: parsed in place; the bytes of every complete event are forwarded unchanged.
    private func relayFromUpstream(_ input: consuming ByteBuffer, _ connection: UnsafeMutablePointer<RelayConnection>) {
        var input = input
        let step = RelayFraming.towardClient(
            &connection.pointee.fromUpstream,
            &input,
            batching: self.configuration.batchedParsing
        )
        self.batchedFrames &+= step.batchedFrames
        self.counters.messagesToClient &+= UInt64(step.messages)
        self.counters.bytesToClient &+= UInt64(input.readableBytes)
        self.send(input, to: .client, connection)
        if step.closed {
            self.closeCodes.count(step.closeCode)
            self.closePassed(from: .upstream, connection)
        }
        if let failure = step.failure { self.violation(by: .upstream, failure, connection) }
        if connection.pointee.drainOwed { self.continueDrain(connection) }
    }

    /// `side`'s bytes after the gateway closed its direction (``RelayFraming/awaitingClose(_:_:)``): its
    /// Close answers the gateway's, and a client that answered is done (the gateway, its server, ends the
    /// TCP connection first, RFC 6455 §7.1.1); an upstream ends its own.
    private func awaitClose(_ input: consuming ByteBuffer, from side: Side, _ connection: UnsafeMutablePointer<RelayConnection>) {
        var input = input
        let step = RelayFraming.awaitingClose(&connection.pointee[from: side], &input)
        self.pool.give(input)
        if let failure = step.failure {
            self.violation(by: side, failure, connection)
        } else if step.closed && side == .client && connection.pointee[from: .upstream].closePassed {
            self.endAfterFlush(.client, connection)
        }
    }

    /// Writes `buffer` (a pool buffer, given back here or kept as the leg's pending bytes) to `side`,
    /// sealed into TLS records first toward a TLS client.
    func send(_ buffer: consuming ByteBuffer, to side: Side, _ connection: UnsafeMutablePointer<RelayConnection>) {
        guard side == .client, let engine = connection.pointee.tls, connection.pointee.client.fd >= 0 else {
            self.sendRaw(buffer, to: side, connection)
            return
        }
        guard let records = self.seal(buffer, engine) else {
            self.closeLeg(.client, of: connection)
            return
        }
        self.sendRaw(records, to: .client, connection)
    }

    /// Writes `buffer`'s bytes as they are (a pool buffer, given back here or kept as pending).
    func sendRaw(_ buffer: consuming ByteBuffer, to side: Side, _ connection: UnsafeMutablePointer<RelayConnection>) {
        var buffer = buffer
        let fd = connection.pointee[leg: side].fd
        guard fd >= 0 else {
            self.pool.give(buffer)
            return
        }
        if connection.pointee[leg: side].pending != nil {
            connection.pointee[leg: side].pending!.writeBuffer(&buffer)
            self.pool.give(buffer)
            return
        }
        if buffer.readableBytes > 0 {
            let sent = buffer.withUnsafeReadableBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 && errno != EAGAIN && errno != EINTR {
                self.pool.give(buffer)
                self.closeLeg(side, of: connection)
                return
            }
            buffer.moveReaderIndex(forwardBy: max(0, sent))
        }
        if buffer.readableBytes > 0 {
            connection.pointee[leg: side].pending = buffer
            return
        }
        self.pool.give(buffer)
        if connection.pointee[leg: side].closeAfterFlush {
            self.closeLeg(side, of: connection)
        }
    }

    /// `side` became writable: write what it is owed, then resume the reads that waited for it.
    func flush(_ side: Side, _ connection: UnsafeMutablePointer<RelayConnection>, _ handle: Slab<RelayConnection>.Handle) {
        guard let pending = connection.pointee[leg: side].pending.take() else { return }
        self.sendRaw(pending, to: side, connection)
        guard connection.pointee[leg: side].pending == nil, connection.pointee[leg: side.other].readable else { return }
        self.pump(from: side.other, connection, handle, hungUp: false)
    }

    /// A Close from `side` was forwarded. When it answers the other peer's Close the handshake is complete:
    /// the gateway, as the client's server, ends the client's TCP connection first (RFC 6455 §7.1.1); the
    /// upstream ends its own. The close timeout bounds both.
    private func closePassed(from side: Side, _ connection: UnsafeMutablePointer<RelayConnection>) {
        connection.pointee[from: side].closePassed = true
        if connection.pointee.phase == .relaying {
            connection.pointee.phase = .closing
            self.armCloseTimeout(connection)
        }
        if connection.pointee[from: side.other].closePassed {
            self.endAfterFlush(.client, connection)
        }
    }

    /// `side` broke the framing: it gets a Close with the error's code (RFC 6455 §7.4.1) and its TCP ends
    /// (it can no longer be parsed, §7.1.7); the other peer gets 1001 (the client failed) or 1014 (the
    /// upstream failed). A Close owed inside a frame becomes a TCP close.
    private func violation(by side: Side, _ error: FramesError, _ connection: UnsafeMutablePointer<RelayConnection>) {
        connection.pointee[leg: side].stopped = true
        self.sendClose(error.closeCode, to: side, connection)
        self.endAfterFlush(side, connection)
        let other = side.other
        if !connection.pointee[from: side].closePassed {
            self.sendClose(side == .client ? .goingAway : .badGateway, to: other, connection)
        }
        self.endAfterFlush(other, connection)
        if connection.pointee.phase == .relaying { self.armCloseTimeout(connection) }
        connection.pointee.phase = .closing
    }

    /// `side`'s TCP connection ended (or failed). After its Close this is the normal end; without one the
    /// other peer gets 1014 (upstream lost) or 1001 (client lost).
    func sourceEnded(_ side: Side, _ connection: UnsafeMutablePointer<RelayConnection>, _ handle: Slab<RelayConnection>.Handle) {
        self.closeLeg(side, of: connection)
        let other = side.other
        if !connection.pointee[from: side].closePassed {
            self.sendClose(side == .upstream ? .badGateway : .goingAway, to: other, connection)
            self.endAfterFlush(other, connection)
        } else if connection.pointee[from: other].closePassed {
            self.endAfterFlush(other, connection)
        }
        if connection.pointee.phase == .relaying { self.armCloseTimeout(connection) }
        connection.pointee.phase = .closing
        _ = handle
    }

    /// The gateway's own Close toward `side`, unless that direction is inside a frame or already closed.
    func sendClose(_ code: CloseCode, to side: Side, _ connection: UnsafeMutablePointer<RelayConnection>) {
        let flow = connection.pointee[from: side.other]
        guard connection.pointee[leg: side].fd >= 0, !flow.wireMidFrame, !flow.closePassed else { return }
        var buffer = self.pool.take()
        if side == .client {
            self.towardClient.writeClose(code: code, to: &buffer)
        } else {
            self.towardUpstream.writeClose(code: code, to: &buffer)
        }
        connection.pointee[from: side.other].closePassed = true
        self.closeCodes.count(code.rawValue)
        self.send(buffer, to: side, connection)
    }

    func endAfterFlush(_ side: Side, _ connection: UnsafeMutablePointer<RelayConnection>) {
        connection.pointee[leg: side].closeAfterFlush = true
        if connection.pointee[leg: side].pending == nil {
            self.closeLeg(side, of: connection)
        }
    }

    func armCloseTimeout(_ connection: UnsafeMutablePointer<RelayConnection>) {
        // The handle is the connection's slot: recover it from the pointer's index in the slab.
        guard let handle = self.slab.handle(of: connection) else { return }
        self.setDeadline(connection, handle, milliseconds: self.configuration.closeTimeoutMilliseconds)
    }
}
