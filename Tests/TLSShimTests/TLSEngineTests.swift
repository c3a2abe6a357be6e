import TLSShim
import Testing

/// The public engine without NIO (issue #15 part 2): two engines over memory, ciphertext handed over in
/// pieces of every size, records written into caller-owned windows. The same `SSL*` wrapper as the
/// handler's, so SNI, ALPN, client certificates and the failure classes are TLSShim's.
@Suite struct TLSEngineTests {
    /// One end: its engine, the ciphertext that came to it, and what it made of it.
    final class Peer {
        let engine: TLSEngine
        var inbox: [UInt8] = []
        var handshakeDone = false
        var plaintext: [UInt8] = []
        var failure: TLSError?
        var closeNotify = false
        /// The size of the output window each call gets.
        var outputRoom = 64 * 1024

        init(_ engine: TLSEngine) { self.engine = engine }

        /// Hands the engine at most `chunk` bytes of its inbox; the records it writes go to `peer`.
        func step(chunk: Int, to peer: Peer) {
            let input = Array(self.inbox.prefix(chunk))
            self.inbox.removeFirst(input.count)
            var output = [UInt8](repeating: 0, count: self.outputRoom)
            var left = 0
            var produced = 0
            input.withUnsafeBytes { input in
                output.withUnsafeMutableBytes { output in
                    var windows = TLSEngine.Windows(input: input, output: output)
                    self.run(&windows) {
                        // A full window: its records go out and the call is made again with room.
                        peer.inbox += UnsafeRawBufferPointer(rebasing: output[..<$0.produced])
                        $0.produced = 0
                    }
                    left = windows.input.count
                    produced = windows.produced
                }
            }
            #expect(left == 0 || self.failure != nil || self.closeNotify, "the engine takes every byte it is handed")
            peer.inbox += output[..<produced]
        }

        private func run(_ windows: inout TLSEngine.Windows, send: (inout TLSEngine.Windows) -> Void) {
            func flush(_ windows: inout TLSEngine.Windows) {
                // A record larger than the whole window can never fit.
                if windows.produced == 0 { self.failure = TLSError(code: .connectionFailed, reason: "record larger than the window") }
                send(&windows)
            }
            while self.failure == nil && !self.closeNotify {
                if !self.handshakeDone {
                    switch self.engine.handshake(&windows) {
                    case .complete: self.handshakeDone = true
                    case .needsInput: return
                    case .needsOutputRoom: flush(&windows)
                    case .failed(let error): self.failure = error
                    }
                    continue
                }
                var room = [UInt8](repeating: 0, count: 4096)
                let result = room.withUnsafeMutableBytes { self.engine.read(into: $0, &windows) }
                switch result {
                case .plaintext(let count): self.plaintext += room[..<count]
                case .needsInput: return
                case .needsOutputRoom: flush(&windows)
                case .closeNotify: self.closeNotify = true
                case .failed(let error): self.failure = error
                }
            }
        }

        func send(_ bytes: [UInt8], to peer: Peer) {
            var output = [UInt8](repeating: 0, count: TLSEngine.recordBound(plaintextBytes: bytes.count))
            var produced = 0
            bytes.withUnsafeBytes { plaintext in
                output.withUnsafeMutableBytes { output in
                    var windows = TLSEngine.Windows(input: UnsafeRawBufferPointer(start: nil, count: 0), output: output)
                    #expect(self.engine.write(plaintext, &windows) == .sealed)
                    produced = windows.produced
                }
            }
            #expect(produced > bytes.count && produced <= output.count)
            peer.inbox += output[..<produced]
        }

        func shutdown(to peer: Peer) {
            var output = [UInt8](repeating: 0, count: 256)
            var produced = 0
            output.withUnsafeMutableBytes { output in
                var windows = TLSEngine.Windows(input: UnsafeRawBufferPointer(start: nil, count: 0), output: output)
                #expect(self.engine.shutdown(&windows) == .sent)
                produced = windows.produced
            }
            peer.inbox += output[..<produced]
        }
    }

    static func pair(
        server: TLSServerConfiguration = Fixtures.serverConfiguration(),
        client: TLSClientConfiguration = Fixtures.clientConfiguration(),
        serverName: String? = "localhost"
    ) throws -> (server: Peer, client: Peer) {
        let serverEngine = try TLSServerContext(configuration: server).makeEngine()
        let clientEngine = try TLSClientContext(configuration: client).makeEngine(serverName: serverName)
        return (Peer(serverEngine), Peer(clientEngine))
    }

    /// Runs both ends until neither has anything left to read.
    static func exchange(_ server: Peer, _ client: Peer, chunk: Int = .max) {
        client.step(chunk: chunk, to: server)  // the ClientHello, or nothing once it is sent
        for _ in 0..<1_000_000 where !server.inbox.isEmpty || !client.inbox.isEmpty {
            if !server.inbox.isEmpty { server.step(chunk: chunk, to: client) }
            if !client.inbox.isEmpty { client.step(chunk: chunk, to: server) }
        }
    }

    @Test(arguments: Array(1...40) + [64, 100, 517, 1000, 1500, 4096, 16_389, .max])
    func theHandshakeAndDataGoThroughInPiecesOfAnySize(chunk: Int) throws {
        let (server, client) = try Self.pair()
        Self.exchange(server, client, chunk: chunk)
        #expect(server.handshakeDone && client.handshakeDone)
        #expect(server.failure == nil && client.failure == nil)

        let request = Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        client.send(request, to: server)
        let large = (0..<40_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        server.send(large, to: client)
        Self.exchange(server, client, chunk: chunk)
        #expect(server.plaintext == request)
        #expect(client.plaintext == large)
        #expect(server.engine.connectionInfo.version == .tls1_3)
    }

    /// Output windows smaller than a flight: the engine says so, OpenSSL keeps the record that did not
    /// fit, and the handshake finishes once the caller has sent what is there and lent room again.
    @Test(arguments: [1200, 3000])
    func aSmallOutputWindowAsksForRoomAndLosesNothing(room: Int) throws {
        let (server, client) = try Self.pair()
        server.outputRoom = room
        client.outputRoom = room
        Self.exchange(server, client, chunk: 7)
        #expect(server.failure == nil && client.failure == nil)
        #expect(server.handshakeDone && client.handshakeDone)
        client.send(Array("ping".utf8), to: server)
        Self.exchange(server, client)
        #expect(server.plaintext == Array("ping".utf8))
    }

    @Test(arguments: [
        ("api.example.test", "CN=api.example.test"),
        ("a.wild.example.test", "CN=*.wild.example.test"),
        ("localhost", "CN=localhost"),
    ])
    func sniPicksTheVirtualHostsCertificate(name: String, subject: String) throws {
        let (server, client) = try Self.pair(serverName: name)
        Self.exchange(server, client, chunk: 100)
        #expect(server.failure == nil && client.failure == nil, "the client verifies the certificate for \(name)")
        #expect(server.engine.serverName == name)
        #expect(server.engine.connectionInfo.serverName == name)
        #expect(client.engine.connectionInfo.peerCertificateSubject == subject)
    }

    @Test func alpnIsTheServersFirstChoiceTheClientOffers() throws {
        let (server, client) = try Self.pair(
            server: Fixtures.serverConfiguration { $0.applicationProtocols = ["h2", "http/1.1"] },
            client: Fixtures.clientConfiguration { $0.applicationProtocols = ["http/1.1", "h2"] }
        )
        Self.exchange(server, client)
        #expect(server.engine.connectionInfo.negotiatedProtocol == "h2")
        #expect(client.engine.connectionInfo.negotiatedProtocol == "h2")
    }

    @Test func noCommonALPNProtocolIsAClassifiedFailure() throws {
        let (server, client) = try Self.pair(client: Fixtures.clientConfiguration { $0.applicationProtocols = ["spdy/3"] })
        Self.exchange(server, client)
        #expect(server.failure?.code == .noApplicationProtocol)
        #expect(client.failure?.alert == .noApplicationProtocol)
        #expect(server.failure?.code.isHandshakeFailure == true)
    }

    static let mutualTLS = Fixtures.serverConfiguration {
        $0.clientAuthentication = TLSClientAuthentication(trustRoots: .pem(Fixtures.ca.certificatePEM))
    }

    @Test func aRequiredClientCertificateThatIsMissingIsAClassifiedFailure() throws {
        let (server, client) = try Self.pair(server: Self.mutualTLS)
        Self.exchange(server, client)
        #expect(server.failure?.code == .clientCertificateRequired)
        #expect(server.failure?.code.isHandshakeFailure == true)
        #expect(client.failure?.alert == .certificateRequired, "TLS 1.3: the client hears certificate_required")
    }

    @Test func aClientCertificateThatVerifiesIsInTheConnectionInfo() throws {
        let (server, client) = try Self.pair(
            server: Self.mutualTLS,
            client: Fixtures.clientConfiguration { $0.identity = Fixtures.client.identity }
        )
        Self.exchange(server, client)
        #expect(server.failure == nil && client.failure == nil)
        let info = server.engine.connectionInfo
        #expect(info.clientCertificateRequested)
        #expect(info.peerCertificate?.subject == "CN=client.example.test")
    }

    @Test func aPeerThatSpeaksNoTLSFailsTheHandshake() throws {
        let (server, _) = try Self.pair()
        let request = Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        var output = [UInt8](repeating: 0, count: 1024)
        let result = request.withUnsafeBytes { input in
            output.withUnsafeMutableBytes { output in
                var windows = TLSEngine.Windows(input: input, output: output)
                return server.engine.handshake(&windows)
            }
        }
        guard case .failed(let error) = result else {
            Issue.record("expected a failure, got \(result)")
            return
        }
        #expect(error.code.isHandshakeFailure)
    }

    @Test func closeNotifyEndsThePeersReadsBothWays() throws {
        let (server, client) = try Self.pair()
        Self.exchange(server, client)
        client.send(Array("last".utf8), to: server)
        client.shutdown(to: server)
        Self.exchange(server, client)
        #expect(server.plaintext == Array("last".utf8), "data before the close_notify is delivered")
        #expect(server.closeNotify && server.failure == nil)
        server.shutdown(to: client)
        Self.exchange(server, client)
        #expect(client.closeNotify && client.failure == nil)
    }

    /// A reload changes the certificate of connections made after it; an engine keeps its context.
    @Test func aReloadedProviderGivesNewEnginesTheNewCertificate() throws {
        let provider = TLSServerContextProvider(try TLSServerContext(configuration: Fixtures.serverConfiguration()))
        let before = try provider.current.makeEngine()
        try provider.reload(TLSServerConfiguration(defaultIdentity: Fixtures.apiHost.identity))
        let after = try provider.current.makeEngine()
        let clients = try (0..<2).map { _ in
            Peer(try TLSClientContext(configuration: Fixtures.clientConfiguration { $0.certificateVerification = .none }).makeEngine(serverName: nil))
        }
        for (engine, client) in zip([before, after], clients) {
            let server = Peer(engine)
            Self.exchange(server, client)
            #expect(server.handshakeDone && client.handshakeDone)
        }
        #expect(clients[0].engine.connectionInfo.peerCertificateSubject == "CN=localhost")
        #expect(clients[1].engine.connectionInfo.peerCertificateSubject == "CN=api.example.test")
    }
}
