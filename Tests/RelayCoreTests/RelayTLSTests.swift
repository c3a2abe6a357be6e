import Frames
import NIOCore
import TLSShim
import Testing

@testable import RelayCore

/// The loop's TLS calls (TLSShim's `TLSEngine` over pool buffers) between two engines over memory
/// buffers: the handshake as a phase, ciphertext handed over in reads of every size down to one byte,
/// records sealed into pool buffers.
@Suite struct RelayTLSTests {
    static let certificate = try! TLSCertificateGenerator.selfSigned(TLSCertificateRequest(commonName: "localhost"))
    /// A client that verifies nothing (the certificates are self-signed).
    static let client = try! TLSClientContext(configuration: TLSClientConfiguration { $0.certificateVerification = .none })

    /// The engine a listener's context makes for an accepted connection (owned from here on).
    static func serverEngine(_ context: RelayTLSContext) -> TLSEngine {
        Unmanaged<TLSEngine>.fromOpaque(UnsafeRawPointer(context.makeEngine()!)).takeRetainedValue()
    }

    /// One side of an in-memory TLS connection: its engine and the ciphertext that came to it.
    final class Peer {
        let engine: TLSEngine
        var inbox = ByteBuffer()
        var handshakeDone = false
        var plaintext = ByteBuffer()
        var closeNotify = false
        var failure: TLSError?

        init(_ engine: TLSEngine) { self.engine = engine }

        /// Hands the engine at most `chunk` bytes of its inbox; what it writes goes to `peer`'s inbox.
        func step(chunk: Int, to peer: Peer) {
            var ciphertext = self.inbox.readSlice(length: min(chunk, self.inbox.readableBytes)) ?? ByteBuffer()
            var records = ByteBuffer()
            loop: while true {
                if !self.handshakeDone {
                    switch RelayTLS.handshake(self.engine, &ciphertext, &records) {
                    case .complete: self.handshakeDone = true
                    case .needsInput, .needsOutputRoom: break loop
                    case .failed(let error):
                        self.failure = error
                        break loop
                    }
                    continue
                }
                var room = ByteBuffer()
                room.reserveCapacity(4096)
                let result = RelayTLS.read(self.engine, &ciphertext, &records, into: &room)
                self.plaintext.writeBuffer(&room)
                switch result {
                case .plaintext: continue
                case .needsInput, .needsOutputRoom: break loop
                case .closeNotify:
                    self.closeNotify = true
                    break loop
                case .failed(let error):
                    self.failure = error
                    break loop
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

    static func pair(_ context: RelayTLSContext? = nil, serverName: String? = nil) throws -> (server: Peer, client: Peer) {
        let context = try context ?? RelayTLSContext(certificatePEM: Self.certificate.certificatePEM, privateKeyPEM: Self.certificate.privateKeyPEM)
        return (Peer(Self.serverEngine(context)), Peer(try Self.client.makeEngine(serverName: serverName)))
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
        #expect(server.failure == nil && client.failure == nil)

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
        guard case .failed(let error) = RelayTLS.handshake(server.engine, &ciphertext, &records) else {
            Issue.record("the handshake did not fail")
            return
        }
        #expect(error.code.isHandshakeFailure)
    }

    @Test func theClientsCloseNotifyEndsTheServersReads() throws {
        let (server, client) = try Self.pair()
        Self.exchange(server, client, chunk: 1 << 20)
        var records = ByteBuffer()
        #expect(RelayTLS.shutdown(client.engine, &records) == .sent)
        server.inbox.writeBuffer(&records)
        server.step(chunk: 1 << 20, to: client)
        #expect(server.closeNotify)
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
        #expect(server.engine.connectionInfo.cipherSuite == "TLS_AES_128_GCM_SHA256")
    }

    static let apiHost = try! TLSCertificateGenerator.selfSigned(TLSCertificateRequest(commonName: "api.test") { $0.dnsNames = ["api.test"] })

    /// A listener context with a virtual host: the SNI picks its certificate (TLSShim's client-hello
    /// callback), and a reload gives connections made after it the new default.
    @Test func sniAndReloadComeFromTLSShim() throws {
        let context = try RelayTLSContext(
            configuration: TLSServerConfiguration(defaultIdentity: Self.certificate.identity) {
                $0.virtualHosts = [TLSVirtualHost(serverNames: ["api.test"], identity: Self.apiHost.identity)]
            }
        )
        for (name, subject) in [("api.test", "CN=api.test"), ("other.test", "CN=localhost")] {
            let (server, client) = try Self.pair(context, serverName: name)
            Self.exchange(server, client, chunk: 1 << 20)
            #expect(client.engine.connectionInfo.peerCertificateSubject == subject)
            #expect(server.engine.connectionInfo.serverName == name)
        }
        try context.reload(TLSServerConfiguration(defaultIdentity: Self.apiHost.identity))
        let (server, client) = try Self.pair(context)
        Self.exchange(server, client, chunk: 1 << 20)
        #expect(server.handshakeDone)
        #expect(client.engine.connectionInfo.peerCertificateSubject == "CN=api.test")
    }
}

/// End to end over loopback: a `wss://` client (a client engine over a raw socket, 5 s receive deadline)
/// through the core's TLS listener to a raw-socket echo upstream.
@Suite(.timeLimit(.minutes(1))) struct RelayTLSSmokeTests {
    /// A client engine over a ``TestSocket``: what it decrypts collects in `plaintext`.
    final class Client {
        let socket: TestSocket
        let engine: TLSEngine
        var handshakeDone = false
        var plaintext = ByteBuffer()
        var ended = false

        init(port: UInt16, serverName: String? = nil) throws {
            self.socket = try TestSocket(port: port)
            self.engine = try RelayTLSTests.client.makeEngine(serverName: serverName)
        }

        /// Hands what the socket received to the engine and sends what the engine wrote.
        func feed() throws {
            var records = ByteBuffer()
            if !self.handshakeDone {
                let result = RelayTLS.handshake(self.engine, &self.socket.pending, &records)
                self.handshakeDone = result == .complete
                #expect(result == .complete || result == .needsInput)
            }
            while self.handshakeDone {
                var room = ByteBuffer()
                room.reserveCapacity(16384)
                let result = RelayTLS.read(self.engine, &self.socket.pending, &records, into: &room)
                self.plaintext.writeBuffer(&room)
                guard case .plaintext = result else {
                    self.ended = result == .closeNotify
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
        let client = try Client(port: core.port)
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

    /// A client that speaks plain HTTP to the `wss://` listener: its connection ends, and the failure is
    /// counted under TLSShim's class (the gateway's close code 1015 accounting).
    @Test func aFailedHandshakeIsCountedByItsClass() throws {
        let upstream = try EchoUpstream()
        var configuration = RelayCoreConfiguration()
        configuration.upstreamPort = upstream.port
        let certificate = RelayTLSTests.certificate
        let tls = try RelayTLSContext(certificatePEM: certificate.certificatePEM, privateKeyPEM: certificate.privateKeyPEM)
        configuration.tls = tls
        let core = try RelayCore(configuration)
        defer { core.stop() }
        let socket = try TestSocket(port: core.port)
        try socket.send(Array("GET / HTTP/1.1\r\nHost: test\r\n\r\n".utf8))
        while try socket.receive() {}  // an alert, then the end of the stream
        let failures = tls.handshakeFailures
        #expect(failures.values.reduce(0, +) == 1)
        #expect(failures.keys.allSatisfy { $0.isHandshakeFailure })
    }
}
