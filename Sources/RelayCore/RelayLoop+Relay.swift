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
            let capacity = input.writableBytes
            let count = input.withUnsafeMutableWritableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                input.moveWriterIndex(forwardBy: count)
                connection.pointee[leg: side].readable = false
                self.relay(input, from: side, connection)
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
        var failure: FramesError?
        var closed = false
        do {
            while let event = try connection.pointee.fromClient.parser.next(&input, copyingPayloadTo: &output) {
                switch event {
                case .header(let header):
                    let key = self.keys.nextKey()
                    FrameHeader(
                        fin: header.fin,
                        reservedBits: header.reservedBits,
                        opcode: header.opcode,
                        maskingKey: key,
                        payloadLength: header.payloadLength
                    ).write(to: &output)
                    connection.pointee.fromClient.parser.remaskPayload(with: key)
                    connection.pointee.fromClient.wireMidFrame = header.payloadLength > 0
                case .payload:
                    break
                case .frameEnd:
                    connection.pointee.fromClient.wireMidFrame = false
                case .control(let frame):
                    self.towardUpstream.writeFrame(opcode: frame.opcode, payload: frame.payload, to: &output)
                    closed = closed || frame.opcode == .close
                }
            }
        } catch {
            failure = error
        }
        self.pool.give(input)
        self.send(output, to: .upstream, connection)
        if closed { self.closePassed(from: .client, connection) }
        if let failure { self.violation(by: .client, failure, connection) }
    }

    /// Upstream → client: parsed in place; the bytes of every complete event are forwarded unchanged.
    private func relayFromUpstream(_ input: consuming ByteBuffer, _ connection: UnsafeMutablePointer<RelayConnection>) {
        var input = input
        let start = input.readerIndex
        var validEnd = start
        var failure: FramesError?
        var closed = false
        do {
            while let event = try connection.pointee.fromUpstream.parser.nextInPlace(&input) {
                switch event {
                case .header(let header):
                    connection.pointee.fromUpstream.wireMidFrame = header.payloadLength > 0
                case .payload:
                    break
                case .frameEnd:
                    connection.pointee.fromUpstream.wireMidFrame = false
                case .control(let frame):
                    closed = closed || frame.opcode == .close
                }
                validEnd = input.readerIndex
            }
            // More bytes needed: what was consumed (a partial header, a partial control frame) is valid so
            // far and goes out too; the wire is then inside a frame until the next event says otherwise.
            if input.readerIndex > validEnd {
                connection.pointee.fromUpstream.wireMidFrame = true
                validEnd = input.readerIndex
            }
        } catch {
            failure = error
        }
        input.moveReaderIndex(to: start)
        input.moveWriterIndex(to: validEnd)
        self.send(input, to: .client, connection)
        if closed { self.closePassed(from: .upstream, connection) }
        if let failure { self.violation(by: .upstream, failure, connection) }
    }

    /// Writes `buffer` (a pool buffer, given back here or kept as the leg's pending bytes) to `side`.
    func send(_ buffer: consuming ByteBuffer, to side: Side, _ connection: UnsafeMutablePointer<RelayConnection>) {
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
        self.send(pending, to: side, connection)
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
    private func sourceEnded(_ side: Side, _ connection: UnsafeMutablePointer<RelayConnection>, _ handle: Slab<RelayConnection>.Handle) {
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
    private func sendClose(_ code: CloseCode, to side: Side, _ connection: UnsafeMutablePointer<RelayConnection>) {
        let flow = connection.pointee[from: side.other]
        guard connection.pointee[leg: side].fd >= 0, !flow.wireMidFrame, !flow.closePassed else { return }
        var buffer = self.pool.take()
        if side == .client {
            self.towardClient.writeClose(code: code, to: &buffer)
        } else {
            self.towardUpstream.writeClose(code: code, to: &buffer)
        }
        connection.pointee[from: side.other].closePassed = true
        self.send(buffer, to: side, connection)
    }

    private func endAfterFlush(_ side: Side, _ connection: UnsafeMutablePointer<RelayConnection>) {
        connection.pointee[leg: side].closeAfterFlush = true
        if connection.pointee[leg: side].pending == nil {
            self.closeLeg(side, of: connection)
        }
    }

    private func armCloseTimeout(_ connection: UnsafeMutablePointer<RelayConnection>) {
        // The handle is the connection's slot: recover it from the pointer's index in the slab.
        guard let handle = self.slab.handle(of: connection) else { return }
        self.setDeadline(connection, handle, milliseconds: self.configuration.closeTimeoutMilliseconds)
    }
}
