import CRelayCore
import Frames
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The opening handshake of both legs (RFC 6455 §4): the client's request is scanned, the upstream is
/// connected without blocking and sent an upgrade with a fresh key, its 101 is checked, and only then does
/// the client get its 101. Every failure ends both legs: 400 to a client whose head is refused, 502 when
/// the upstream cannot be reached or answers anything but a valid 101.
extension RelayLoop {
    static let badRequest = Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
    static let badGateway = Array("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
    /// While draining, as the gateway answers upgrades once it drains (docs/DESIGN-NOTES.md "Drain").
    static let unavailable = Array("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)

    func handle(_ events: UInt32, on side: Side, of connection: UnsafeMutablePointer<RelayConnection>, _ handle: Slab<RelayConnection>.Handle) {
        let readable = events & (crelayIn | crelayHangUp) != 0
        switch connection.pointee.phase {
        case .tlsHandshake:
            if side == .client && readable { self.readClientTLS(connection, handle) }
            if side == .client && events & crelayOut != 0 { self.flush(.client, connection, handle) }
        case .head:
            if side == .client && readable {
                if connection.pointee.tls != nil {
                    self.readClientTLS(connection, handle)
                } else {
                    self.readClientHead(connection, handle)
                }
            }
            if side == .client && events & crelayOut != 0 { self.flush(.client, connection, handle) }
        case .connecting:
            if side == .upstream && events & (crelayOut | crelayHangUp) != 0 {
                self.finishConnect(connection)
            } else if side == .client && readable {
                connection.pointee.client.readable = true
            }
            if side == .client && events & crelayOut != 0 { self.flush(.client, connection, handle) }
        case .awaitingSwitch:
            if side == .upstream && readable {
                self.readUpstreamSwitch(connection, handle)
            } else if side == .client && readable {
                connection.pointee.client.readable = true
            }
            if side == .client && events & crelayOut != 0 { self.flush(.client, connection, handle) }
        case .relaying, .closing:
            if readable {
                self.pump(from: side, connection, handle, hungUp: events & crelayHangUp != 0)
            }
            if events & crelayOut != 0 {
                self.flush(side, connection, handle)
            }
        }
    }

    /// Reads into a pool buffer until `EAGAIN`, the buffer is full, or the peer ends; `false` when it ended.
    private func readHead(_ fd: Int32, into buffer: inout ByteBuffer) -> Bool {
        while buffer.writableBytes > 0 {
            let count = buffer.withUnsafeMutableWritableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                buffer.moveWriterIndex(forwardBy: count)
            } else if count == 0 {
                return false
            } else if errno == EINTR {
                continue
            } else {
                return errno == EAGAIN
            }
        }
        return true
    }

    private func readClientHead(_ connection: UnsafeMutablePointer<RelayConnection>, _ handle: Slab<RelayConnection>.Handle) {
        var buffer = connection.pointee.clientEarly.take() ?? self.pool.take()
        guard self.readHead(connection.pointee.client.fd, into: &buffer) else {
            self.pool.give(buffer)
            self.closeAll(handle)
            return
        }
        connection.pointee.clientEarly = buffer
        self.scanClientHead(connection, handle)
    }

    /// Scans the head held in `clientEarly` (plain bytes, or plaintext from the TLS engine); once it is
    /// complete, connects the upstream.
    func scanClientHead(_ connection: UnsafeMutablePointer<RelayConnection>, _ handle: Slab<RelayConnection>.Handle) {
        guard var buffer = connection.pointee.clientEarly.take() else { return }
        let scan = buffer.withUnsafeReadableBytes { UpgradeHeadScanner.scanRequest($0) }
        switch scan {
        case .incomplete:
            if buffer.readableBytes == 0 {
                self.pool.give(buffer)  // nothing arrived yet: hold no buffer
            } else {
                connection.pointee.clientEarly = buffer
            }
        case .invalid:
            self.pool.give(buffer)
            self.refuse(connection, .badRequest)
        case .complete(let head, let length):
            guard !self.draining else {
                self.pool.give(buffer)
                self.refuse(connection, .draining)
                return
            }
            buffer.moveReaderIndex(forwardBy: length)
            if buffer.readableBytes > 0 {
                connection.pointee.clientEarly = buffer
            } else {
                self.pool.give(buffer)
            }
            connection.pointee.target = head.target
            connection.pointee.clientAccept = HandshakeKey.acceptValue(forKey: head.key)
            // The buffer may have filled before the socket emptied: read again once relaying.
            connection.pointee.client.readable = true
            let fd = Sockets.connect(self.upstreamAddress)
            guard fd >= 0 else {
                self.refuse(connection, .badGateway)
                return
            }
            connection.pointee.upstream.fd = fd
            connection.pointee.phase = .connecting
            _ = crelay_epoll_add(self.epoll, fd, self.edgeEvents, handle.packed | Self.upstreamBit)
        }
    }

    /// Why an upgrade is refused, and the answer.
    enum Refusal {
        case badRequest
        case badGateway
        case draining

        var response: [UInt8] {
            switch self {
            case .badRequest: RelayLoop.badRequest
            case .badGateway: RelayLoop.badGateway
            case .draining: RelayLoop.unavailable
            }
        }
    }

    /// Answers the client with `refusal`'s response and ends both legs.
    private func refuse(_ connection: UnsafeMutablePointer<RelayConnection>, _ refusal: Refusal) {
        switch refusal {
        case .badRequest: self.counters.refusedBadRequest &+= 1
        case .badGateway: self.counters.refusedBadGateway &+= 1
        case .draining: self.counters.refusedDraining &+= 1
        }
        self.closeLeg(.upstream, of: connection)
        connection.pointee.phase = .closing
        var buffer = self.pool.take()
        buffer.writeBytes(refusal.response)
        connection.pointee.client.stopped = true
        connection.pointee.client.closeAfterFlush = true
        self.send(buffer, to: .client, connection)
    }

    private func finishConnect(_ connection: UnsafeMutablePointer<RelayConnection>) {
        let fd = connection.pointee.upstream.fd
        guard Sockets.pendingError(fd) == 0 else {
            self.refuse(connection, .badGateway)
            return
        }
        let key = HandshakeKey.makeKey()
        connection.pointee.expectedAccept = HandshakeKey.acceptValue(forKey: key)
        let request =
            "GET \(connection.pointee.target) HTTP/1.1\r\nHost: \(self.configuration.upstreamHostHeader)\r\nUpgrade: websocket\r\n"
            + "Connection: Upgrade\r\nSec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n"
        var bytes = request
        let sent = bytes.withUTF8 { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        // A fresh socket's send buffer takes a few hundred bytes whole; anything else is a failure here.
        guard sent == request.utf8.count else {
            self.refuse(connection, .badGateway)
            return
        }
        connection.pointee.phase = .awaitingSwitch
    }

    private func readUpstreamSwitch(_ connection: UnsafeMutablePointer<RelayConnection>, _ handle: Slab<RelayConnection>.Handle) {
        var buffer = connection.pointee.upstreamHead.take() ?? self.pool.take()
        guard self.readHead(connection.pointee.upstream.fd, into: &buffer) else {
            self.pool.give(buffer)
            self.refuse(connection, .badGateway)
            return
        }
        let expected = connection.pointee.expectedAccept
        let scan = buffer.withUnsafeReadableBytes { UpgradeHeadScanner.scanResponse($0, expectedAccept: expected) }
        switch scan {
        case .incomplete:
            if buffer.readableBytes == 0 { self.pool.give(buffer) } else { connection.pointee.upstreamHead = buffer }
        case .invalid:
            self.pool.give(buffer)
            self.refuse(connection, .badGateway)
        case .complete(_, let length):
            buffer.moveReaderIndex(forwardBy: length)
            self.switchProtocols(connection, handle, upstreamRest: buffer)
        }
    }

    /// Both 101s are done: frames flow. Bytes that came early on either leg are relayed first.
    private func switchProtocols(
        _ connection: UnsafeMutablePointer<RelayConnection>,
        _ handle: Slab<RelayConnection>.Handle,
        upstreamRest: ByteBuffer
    ) {
        var response = self.pool.take()
        response.writeString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ")
        response.writeString(connection.pointee.clientAccept)
        response.writeString("\r\n\r\n")
        connection.pointee.phase = .relaying
        connection.pointee.deadline = 0
        connection.pointee.target = ""
        connection.pointee.clientAccept = ""
        connection.pointee.expectedAccept = ""
        self.send(response, to: .client, connection)
        connection.pointee.upstream.readable = true
        if upstreamRest.readableBytes > 0 {
            self.relay(upstreamRest, from: .upstream, connection)
        } else {
            self.pool.give(upstreamRest)
        }
        if let early = connection.pointee.clientEarly.take() {
            self.relay(early, from: .client, connection)
        }
        // Edge-triggered: bytes that arrived during the handshake raised no new edge. Read both now.
        self.pump(from: .upstream, connection, handle, hungUp: false)
        self.pump(from: .client, connection, handle, hungUp: false)
        // A drain that began during the handshake: the Closes now (at once where nothing is in flight).
        if connection.pointee.drainOwed && connection.pointee.phase == .relaying { self.continueDrain(connection) }
    }
}

let crelayIn = crelay_epollin
let crelayOut = crelay_epollout
let crelayHangUp = crelay_epollrdhup | crelay_epollhup | crelay_epollerr
