import CRelayCore
import NIOCore
import TLSShim

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The client leg over TLS (issue #15 part 2, core22): the handshake is a connection phase before the
/// upgrade head, ciphertext is read into a pool buffer and decrypted into another (the engine reads the
/// first where it lies), and everything toward the client is sealed into a pool buffer just before it is
/// sent. Records the engine writes on its own (the handshake's flights, session tickets, alerts) go to the
/// socket at once, so they keep their place in the record sequence.
extension RelayLoop {
    /// The client is readable during the TLS handshake or while its upgrade head arrives: reads ciphertext
    /// until `EAGAIN`, or until the head is complete (the rest is read once relaying).
    func readClientTLS(_ connection: UnsafeMutablePointer<RelayConnection>, _ handle: Slab<RelayConnection>.Handle) {
        while connection.pointee.client.fd >= 0 {
            var ciphertext = self.pool.take()
            let count = ciphertext.withUnsafeMutableWritableBytes { read(connection.pointee.client.fd, $0.baseAddress, $0.count) }
            if count > 0 {
                ciphertext.moveWriterIndex(forwardBy: count)
                guard self.unseal(ciphertext, connection, handle) else { return }
                switch connection.pointee.phase {
                case .tlsHandshake, .head:
                    continue
                case .connecting, .awaitingSwitch, .relaying, .closing:
                    connection.pointee.client.readable = true
                    return
                }
            }
            self.pool.give(ciphertext)
            if count < 0 && errno == EINTR { continue }
            if count < 0 && errno == EAGAIN { return }
            self.closeAll(handle)
            return
        }
    }

    /// Feeds one read of ciphertext to the client's engine: handshake steps while in that phase, then
    /// plaintext into pool buffers, each delivered as the phase wants it. `false` when the connection ended
    /// here (a failed handshake, an alert, the peer's close_notify, or what a delivery did).
    func unseal(
        _ ciphertext: consuming ByteBuffer,
        _ connection: UnsafeMutablePointer<RelayConnection>,
        _ handle: Slab<RelayConnection>.Handle
    ) -> Bool {
        var ciphertext = ciphertext
        guard let pointer = connection.pointee.tls else {
            self.pool.give(ciphertext)
            return false
        }
        // Whether the client's stream ended here; the connection is closed after the engine's last call.
        let ended = RelayTLS.with(pointer) { engine -> Bool? in
            var records = self.pool.take()
            var plaintext = self.pool.take()
            var more = true
            var ended = false
            while more, connection.pointee.client.fd >= 0 {
                if connection.pointee.phase == .tlsHandshake {
                    let result = RelayTLS.handshake(engine, &ciphertext, &records)
                    records = self.sendRecords(records, connection)
                    switch result {
                    case .complete:
                        connection.pointee.phase = .head
                    case .needsInput:
                        more = false
                    case .needsOutputRoom:
                        continue  // the records went out; OpenSSL writes the rest into the next buffer
                    case .failed(let error):
                        // Classified as the gateway's listeners classify it (close code 1015 there).
                        self.tls?.countHandshakeFailure(error)
                        ended = true
                        more = false
                    }
                    continue
                }
                if plaintext.writableBytes == 0 {
                    self.deliver(plaintext, connection, handle)
                    plaintext = self.pool.take()
                    guard connection.pointee.client.fd >= 0 else { break }
                }
                let result = RelayTLS.read(engine, &ciphertext, &records, into: &plaintext)
                records = self.sendRecords(records, connection)
                switch result {
                case .plaintext, .needsOutputRoom:
                    continue
                case .needsInput:
                    more = false
                case .closeNotify, .failed:
                    ended = true
                    more = false
                }
            }
            self.pool.give(ciphertext)
            self.pool.give(records)
            if plaintext.readableBytes > 0 && connection.pointee.client.fd >= 0 {
                self.deliver(plaintext, connection, handle)
            } else {
                self.pool.give(plaintext)
            }
            return connection.pointee.client.fd >= 0 ? ended : nil
        }
        guard let ended else { return false }
        if !ended { return true }
        // The peer's close_notify or a TLS failure: the end of the client's stream.
        switch connection.pointee.phase {
        case .tlsHandshake, .head, .connecting, .awaitingSwitch:
            self.closeAll(handle)
        case .relaying, .closing:
            self.sourceEnded(.client, connection, handle)
        }
        return false
    }

    /// Plaintext from the client, as the connection's phase takes it.
    private func deliver(
        _ plaintext: consuming ByteBuffer,
        _ connection: UnsafeMutablePointer<RelayConnection>,
        _ handle: Slab<RelayConnection>.Handle
    ) {
        switch connection.pointee.phase {
        case .tlsHandshake:
            self.pool.give(plaintext)
        case .head, .connecting, .awaitingSwitch:
            var plaintext = plaintext
            if connection.pointee.clientEarly == nil {
                connection.pointee.clientEarly = plaintext
            } else {
                connection.pointee.clientEarly!.writeBuffer(&plaintext)
                self.pool.give(plaintext)
            }
            if connection.pointee.phase == .head {
                self.scanClientHead(connection, handle)
            }
        case .relaying, .closing:
            self.relay(plaintext, from: .client, connection)
        }
    }

    /// Sends what the engine wrote (if anything) and returns an empty pool buffer for its next call.
    private func sendRecords(_ records: consuming ByteBuffer, _ connection: UnsafeMutablePointer<RelayConnection>) -> ByteBuffer {
        guard records.readableBytes > 0 else { return records }
        self.sendRaw(records, to: .client, connection)
        return self.pool.take()
    }

    /// The gateway ends a TLS client's connection: a close_notify first (RFC 8446 §6.1), as nginx sends,
    /// so the client can tell the end from a truncation. Best effort, one `send`, and only when nothing is
    /// still owed to the socket (records must leave in order) and the handshake is done.
    func sendCloseNotify(_ engine: OpaquePointer, _ connection: UnsafeMutablePointer<RelayConnection>) {
        guard connection.pointee.phase != .tlsHandshake, connection.pointee.client.pending == nil else { return }
        var records = self.pool.take()
        _ = RelayTLS.with(engine) { RelayTLS.shutdown($0, &records) }
        if records.readableBytes > 0 {
            _ = records.withUnsafeReadableBytes { Glibc.send(connection.pointee.client.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        self.pool.give(records)
    }

    /// `plaintext` (a pool buffer, given back here) sealed into records in another pool buffer; `nil` when
    /// the engine failed.
    func seal(_ plaintext: consuming ByteBuffer, _ engine: OpaquePointer) -> ByteBuffer? {
        var records = self.pool.take()
        let sealed = RelayTLS.with(engine) { RelayTLS.write($0, plaintext, into: &records) }
        self.pool.give(plaintext)
        guard sealed else {
            self.pool.give(records)
            return nil
        }
        return records
    }
}
