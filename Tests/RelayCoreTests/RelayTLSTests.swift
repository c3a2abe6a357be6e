import CRelayCore
import Frames
import NIOCore
import TLSShim
import Testing

@testable import RelayCore

/// The loop's TLS engine (core22) between two engines over memory buffers: the handshake as a phase,
/// ciphertext handed over in reads of every size down to one byte, records sealed into pool buffers.
@Suite struct RelayTLSTests {
    static let certificate = try! TLSCertificateGenerator.selfSigned(TLSCertificateRequest(commonName: "localhost"))

    /// One side of an in-memory TLS connection: its engine and the ciphertext that came to it.
    final class Peer {
        let engine: OpaquePointer
        var inbox = ByteBuffer()
        var handshakeDone = false
        var plaintext = ByteBuffer()
        var ended: Int32?

        init(_ context: RelayTLSContext) { self.engine = context.makeEngine()! }
        deinit { RelayTLS.free(self.engine) }

        /// Hands the engine at most `chunk` bytes of its inbox; what it writes goes to `peer`'s inbox.
        func step(chunk: Int, to peer: Peer) {
            var ciphertext = self.inbox.readSlice(length: min(chunk, self.inbox.readableBytes)) ?? ByteBuffer()
            var records = ByteBuffer()
            while true {
                if !self.handshakeDone {
                    let result = RelayTLS.handshake(self.engine, &ciphertext, &records)
                    if result == 1 {
                        self.handshakeDone = true
                        continue
                    }
                    if result != RelayTLS.wantRead { self.ended = result }
                    break
                }
                var room = ByteBuffer()
                room.reserveCapacity(4096)
                let result = RelayTLS.read(self.engine, &ciphertext, &records, into: &room)
                self.plaintext.writeBuffer(&room)
                if result <= 0 {
                    if result != RelayTLS.wantRead { self.ended = result }
                    break
                }
            }
            #expect(ciphertext.readableBytes == 0, "the engine takes every byte it is handed")
            peer.inbox.writeBuffer(&records)
        }

        func send(_ bytes: [UInt8], to peer: Peer) {
            var records = ByteBuffer()
            #expect(RelayTLS.write(self.engine, ByteBuffer(bytes: bytes), into: &records))
            peer.inbox.writeBuffer(&records)
        }
    }

    static func pair() throws -> (server: Peer, client: Peer) {
        let server = try RelayTLSContext(certificatePEM: Self.certificate.certificatePEM, privateKeyPEM: Self.certificate.privateKeyPEM)
        let client = RelayTLSContext(unverifiedClient: ())
        return (Peer(server), Peer(client))
    }

    /// Runs both engines until neither has anything left to read.
    static func exchange(_ server: Peer, _ client: Peer, chunk: Int) {
        client.step(chunk: chunk, to: server)  // the ClientHello
        for _ in 0..<100_000 where server.inbox.readableBytes > 0 || client.inbox.readableBytes > 0 {
            if server.inbox.readableBytes > 0 { server.step(chunk: chunk, to: client) }
            if client.inbox.readableBytes > 0 { client.step(chunk: chunk, to: server) }
        }
    }

    @Test(arguments: [1, 2, 5, 17, 100, 1000, 1 << 20])
    func theHandshakeAndDataBothWaysGoThroughInReadsOfAnySize(chunk: Int) throws {
        let (server, client) = try Self.pair()
        Self.exchange(server, client, chunk: chunk)
        #expect(server.handshakeDone && client.handshakeDone)
        #expect(server.ended == nil && client.ended == nil)

        let request = Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        client.send(request, to: server)
        let large = (0..<40_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        server.send(large, to: client)
        Self.exchange(server, client, chunk: chunk)
        #expect(Array(server.plaintext.readableBytesView) == request)
        #expect(Array(client.plaintext.readableBytesView) == large)
    }

    @Test func aClientThatSpeaksNoTLSFailsTheHandshake() throws {
        let (server, _) = try Self.pair()
        var ciphertext = ByteBuffer(string: "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        var records = ByteBuffer()
        #expect(RelayTLS.handshake(server.engine, &ciphertext, &records) == RelayTLS.failed)
    }

    @Test func theClientsCloseNotifyEndsTheServersReads() throws {
        let (server, client) = try Self.pair()
        Self.exchange(server, client, chunk: 1 << 20)
        var records = ByteBuffer()
        var none = ByteBuffer()
        _ = RelayTLS.shutdown(client.engine, &none, &records)
        server.inbox.writeBuffer(&records)
        server.step(chunk: 1 << 20, to: client)
        #expect(server.ended == RelayTLS.closed)
    }

    /// A read of an upstream leaves room for the records' overhead: sealing it never grows the pool buffer
    /// (a grown buffer is dropped by the pool, an allocation per read).
    @Test(arguments: [16 * 1024, 64 * 1024])
    func aSealedUpstreamReadFitsItsPoolBuffer(bufferSize: Int) throws {
        let (server, client) = try Self.pair()
        Self.exchange(server, client, chunk: 1 << 20)
        var pool = BufferPool(bufferSize: bufferSize)
        var records = pool.take()
        let plaintext = ByteBuffer(repeating: 0x41, count: RelayTLS.plaintextRoom(bufferSize: bufferSize))
        #expect(RelayTLS.write(server.engine, plaintext, into: &records))
        #expect(records.capacity == pool.bufferSize && records.readableBytes > plaintext.readableBytes)
        pool.give(records)
        #expect(pool.freeCount == 1, "the buffer went back to the pool")
    }

    /// The server prefers TLSShim's first TLS 1.3 suite (AES-128-GCM), as the gateway's listeners do.
    @Test func theServerChoosesTLSShimsFirstSuite() throws {
        let (server, client) = try Self.pair()
        Self.exchange(server, client, chunk: 1 << 20)
        #expect(String(cString: crelay_tls_cipher_name(server.engine)) == "TLS_AES_128_GCM_SHA256")
    }
}

/// End to end over loopback: a `wss://` client (a client engine over a raw socket, 5 s receive deadline)
/// through the core's TLS listener to a raw-socket echo upstream.
@Suite(.timeLimit(.minutes(1))) struct RelayTLSSmokeTests {
    /// A client engine over a ``TestSocket``: what it decrypts collects in `plaintext`.
    final class Client {
        let socket: TestSocket
        let engine: OpaquePointer
        var handshakeDone = false
        var plaintext = ByteBuffer()
        var ended = false

        init(port: UInt16, context: RelayTLSContext) throws {
            self.socket = try TestSocket(port: port)
            self.engine = context.makeEngine()!
        }

        deinit { RelayTLS.free(self.engine) }

        /// Hands what the socket received to the engine and sends what the engine wrote.
        func feed() throws {
            var records = ByteBuffer()
            if !self.handshakeDone {
                let result = RelayTLS.handshake(self.engine, &self.socket.pending, &records)
                self.handshakeDone = result == 1
                #expect(result == 1 || result == RelayTLS.wantRead)
            }
            while self.handshakeDone {
                var room = ByteBuffer()
                room.reserveCapacity(16384)
                let result = RelayTLS.read(self.engine, &self.socket.pending, &records, into: &room)
                self.plaintext.writeBuffer(&room)
                guard result > 0 else {
                    self.ended = result == RelayTLS.closed
                    break
                }
            }
            if records.readableBytes > 0 { try self.socket.send(Array(records.readableBytesView)) }
        }

        /// One socket read fed to the engine; false at the end of the stream.
        func receive() throws -> Bool {
            guard try self.socket.receive() else { return false }
            try self.feed()
            return true
        }

        func handshake() throws {
            try self.feed()  // the ClientHello
            while !self.handshakeDone {
                guard try self.receive() else { throw RelayCoreError(call: "TLS handshake: end of stream", errno: 0) }
            }
        }

        func send(_ bytes: [UInt8]) throws {
            var records = ByteBuffer()
            #expect(RelayTLS.write(self.engine, ByteBuffer(bytes: bytes), into: &records))
            try self.socket.send(Array(records.readableBytesView))
        }
    }

    @Test func aWSSClientIsRelayedThroughTheLoopsTLSEngine() throws {
        let upstream = try EchoUpstream()
        let certificate = RelayTLSTests.certificate
        var configuration = RelayCoreConfiguration()
        configuration.upstreamPort = upstream.port
        configuration.tls = try RelayTLSContext(certificatePEM: certificate.certificatePEM, privateKeyPEM: certificate.privateKeyPEM)
        let core = try RelayCore(configuration)
        defer { core.stop() }
        let client = try Client(port: core.port, context: RelayTLSContext(unverifiedClient: ()))
        try client.handshake()

        let key = RelayCoreSmokeTests.key
        try client.send(
            Array(
                ("GET /echo HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n").utf8
            )
        )
        while client.plaintext.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8)) == nil {
            guard try client.receive() else { throw RelayCoreError(call: "101: end of stream", errno: 0) }
        }
        let end = client.plaintext.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8))!.upperBound
        let head = client.plaintext.readString(length: end - client.plaintext.readerIndex)!
        #expect(head.hasPrefix("HTTP/1.1 101 "))
        #expect(head.contains("Sec-WebSocket-Accept: \(HandshakeKey.acceptValue(forKey: key))\r\n"))

        // A 40 KB message (several TLS records each way) and a Close.
        let keys = MaskingKeyGenerator()
        let payload = (0..<40_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try client.send(frame(.binary, payload, key: keys.nextKey()) + frame(.close, [0x03, 0xE8], key: keys.nextKey()))
        var parser = FrameParser(role: .client)
        var echoes: [Echo] = []
        var current: Echo?
        while echoes.count < 2 {
            while echoes.count < 2, let event = try parser.next(&client.plaintext) {
                switch event {
                case .header(let header): current = Echo(opcode: header.opcode, fin: header.fin, payload: [])
                case .payload(let chunk): current!.payload += Array(chunk.readableBytesView)
                case .frameEnd: echoes.append(current!)
                case .control(let control): echoes.append(Echo(opcode: control.opcode, fin: true, payload: Array(control.payload.readableBytesView)))
                }
            }
            if echoes.count < 2 {
                guard try client.receive() else { throw RelayCoreError(call: "frames: end of stream", errno: 0) }
            }
        }
        #expect(echoes[0] == Echo(opcode: .binary, fin: true, payload: payload))
        #expect(echoes[1] == Echo(opcode: .close, fin: true, payload: [0x03, 0xE8]))
        while try client.receive() {}
        #expect(client.plaintext.readableBytes == 0, "the gateway ends the client's TCP after the close handshake")
        #expect(client.ended, "with a close_notify before the TCP end")
    }
}
