import NIOCore
import NIOEmbedded
import Testing

@testable import TLSShim

/// A ClientHello taken from a real OpenSSL client and taken apart, so that tests can send it odd, large,
/// fragmented or broken (tlsfuzzer's record-layer-fragmentation, large-hello, large-number-of-extensions
/// and invalid-client-hello scripts, RELIABILITY T-03 and T-10).
struct ClientHelloMessage {
    /// Everything before the extensions: version, random, session ID, cipher suites, compression.
    var prefix: [UInt8]
    var extensions: [(type: UInt16, data: [UInt8])]

    /// Parses the ClientHello in `record` (one handshake record, as a client's first flight).
    init(record: [UInt8]) throws {
        guard record.count > 9, record[0] == 0x16, record[5] == 0x01 else { throw PeerTestError("not a ClientHello record") }
        let length = Int(record[6]) << 16 | Int(record[7]) << 8 | Int(record[8])
        let body = Array(record[9..<(9 + length)])
        func u16(_ at: Int) -> Int { Int(body[at]) << 8 | Int(body[at + 1]) }
        var offset = 2 + 32
        offset += 1 + Int(body[offset])  // session ID
        offset += 2 + u16(offset)  // cipher suites
        offset += 1 + Int(body[offset])  // compression methods
        self.prefix = Array(body[..<offset])
        let end = offset + 2 + u16(offset)
        offset += 2
        self.extensions = []
        while offset < end {
            let type = UInt16(u16(offset))
            let size = u16(offset + 2)
            self.extensions.append((type, Array(body[(offset + 4)..<(offset + 4 + size)])))
            offset += 4 + size
        }
    }

    /// The handshake message (type, 24-bit length, body).
    var message: [UInt8] {
        var extensionBytes: [UInt8] = []
        for (type, data) in self.extensions {
            extensionBytes += Self.u16(Int(type)) + Self.u16(data.count) + data
        }
        let body = self.prefix + Self.u16(extensionBytes.count) + extensionBytes
        return [0x01, UInt8(body.count >> 16), UInt8((body.count >> 8) & 0xFF), UInt8(body.count & 0xFF)] + body
    }

    static func u16(_ value: Int) -> [UInt8] { [UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)] }

    /// `message` in handshake records of at most `fragment` bytes each.
    static func records(_ message: [UInt8], fragment: Int = 16_384) -> [UInt8] {
        stride(from: 0, to: message.count, by: fragment).flatMap { start -> [UInt8] in
            let chunk = message[start..<min(start + fragment, message.count)]
            return [0x16, 0x03, 0x01] + Self.u16(chunk.count) + chunk
        }
    }

    /// The `server_name` extension body for `name` (RFC 6066 §3).
    static func serverName(_ name: [UInt8]) -> [UInt8] {
        Self.u16(name.count + 3) + [0x00] + Self.u16(name.count) + name
    }
}

@Suite struct TLSHandlerClientHelloTests {
    /// A client's first flight for `serverName`, as one record.
    static func hello(serverName: String? = "localhost", maximumVersion: TLSVersion = .tls1_3) throws -> [UInt8] {
        let client = try TLSClientContext(configuration: Fixtures.clientConfiguration { $0.maximumVersion = maximumVersion })
        let pair = try InMemoryPair(server: TLSHandlerTests.serverContext, client: client, serverName: serverName)
        try pair.activate()
        let record = try #require(try pair.client.readOutbound(as: ByteBuffer.self))
        _ = try? pair.finish()
        return Array(record.readableBytesView)
    }

    /// A server handler fed `bytes` as one read; returns whether it answered with a ServerHello (a
    /// handshake record and no error) and the errors it reported.
    static func serve(_ bytes: [UInt8]) throws -> (accepted: Bool, errors: [TLSError], active: Bool, answer: [UInt8]) {
        let channel = EmbeddedChannel(loop: EmbeddedEventLoop())
        let recorder = Recorder()
        try channel.pipeline.syncOperations.addHandlers([try TLSHandler.server(context: TLSHandlerTests.serverContext), recorder])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
        if channel.isActive { try channel.writeInbound(ByteBuffer(bytes: bytes)) }
        var answer: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { answer += buffer.readableBytesView }
        let result = (recorder.tlsErrors.isEmpty && answer.first == 0x16, recorder.tlsErrors, channel.isActive, answer)
        _ = try? channel.finish(acceptAlreadyClosed: true)
        return result
    }

    /// Catalog T-10: a ClientHello fragmented into 1-byte records (valid TLS) completes the handshake, on TLS 1.2 and 1.3.
    @Test(arguments: [TLSVersion.tls1_2, .tls1_3])
    func aClientHelloInOneByteRecordsCompletesTheHandshake(version: TLSVersion) throws {
        let client = try TLSClientContext(configuration: Fixtures.clientConfiguration { $0.maximumVersion = version })
        let pair = try InMemoryPair(server: TLSHandlerTests.serverContext, client: client)
        try pair.activate()
        let record = try #require(try pair.client.readOutbound(as: ByteBuffer.self))
        let message = Array(record.readableBytesView.dropFirst(5))
        for byte in ClientHelloMessage.records(message, fragment: 1).chunks(ofCount: 6) {
            try pair.server.writeInbound(ByteBuffer(bytes: byte))
        }
        try pair.interact()
        #expect(pair.serverRecorder.handshakeCompleted == ["http/1.1"])
        #expect(pair.clientRecorder.handshakeCompleted == ["http/1.1"])
        #expect(pair.serverHandler.connectionInfo?.version == version)
        #expect(try pair.finish())
    }

    /// Catalog T-10: valid but large hellos are answered: a 20 KB padding extension (the hello spans two records) and 500 unknown extensions.
    @Test func largeButValidClientHellosAreAnswered() throws {
        var padded = try ClientHelloMessage(record: Self.hello())
        padded.extensions.insert((21, [UInt8](repeating: 0, count: 20_000)), at: 0)
        let large = try Self.serve(ClientHelloMessage.records(padded.message))
        #expect(large.accepted, "\(large.errors)")

        var many = try ClientHelloMessage(record: Self.hello())
        many.extensions.insert(contentsOf: (0..<500).map { (UInt16(10_000 + $0), [UInt8]()) }, at: 0)
        let numerous = try Self.serve(ClientHelloMessage.records(many.message))
        #expect(numerous.accepted, "\(numerous.errors)")
    }

    /// Catalog T-10: a ClientHello announcing megabytes is refused from its 4-byte header, before any of it is buffered (bounded memory per pending handshake).
    @Test(arguments: [1 << 20, (1 << 24) - 1])
    func aHugeAnnouncedClientHelloIsRefusedFromItsHeader(length: Int) throws {
        let header: [UInt8] = [0x01, UInt8(length >> 16), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)]
        let result = try Self.serve(ClientHelloMessage.records(header + [UInt8](repeating: 0, count: 100)))
        #expect(!result.accepted)
        #expect(!result.active)
        #expect(result.errors.count == 1)
        #expect(result.errors.first?.code.isHandshakeFailure == true)
        #expect(result.answer.first == 0x15, "an alert")
    }

    /// Malformed hellos (tlsfuzzer test-invalid-client-hello): each breaks one length or value.
    static let malformations: [(String, @Sendable ([UInt8]) -> [UInt8])] = [
        (
            "extensions longer than the message",
            { hello in
                var bytes = hello
                let prefix = try! ClientHelloMessage(record: [0x16, 3, 1] + ClientHelloMessage.u16(hello.count) + hello).prefix.count
                bytes[4 + prefix] = 0xFF
                return bytes
            }
        ),
        (
            "message truncated by 10 bytes",
            { hello in
                let body = hello.count - 4 - 10
                return [0x01, 0, UInt8(body >> 8), UInt8(body & 0xFF)] + hello[4..<(hello.count - 10)]
            }
        ),
        (
            "session ID of 33 bytes",
            { hello in
                var bytes = hello
                bytes[4 + 34] = 33
                return bytes
            }
        ),
        (
            "odd cipher suites length",
            { hello in
                var bytes = hello
                let at = 4 + 35 + Int(hello[4 + 34])
                bytes[at + 1] |= 1
                return bytes
            }
        ),
        (
            "no compression methods",
            { hello in
                var bytes = hello
                let at = 4 + 35 + Int(hello[4 + 34])
                let suites = Int(hello[at]) << 8 | Int(hello[at + 1])
                bytes[at + 2 + suites] = 0
                return bytes
            }
        ),
        ("a handshake type other than ClientHello", { hello in [0x02] + hello.dropFirst() }),
    ]

    /// Catalog T-10: malformed ClientHellos get an alert and a handshake failure, never a crash or a hang.
    @Test(arguments: Self.malformations.indices)
    func aMalformedClientHelloGetsAnAlert(_ index: Int) throws {
        let (name, mutate) = Self.malformations[index]
        let message = Array(try Self.hello().dropFirst(5))
        let result = try Self.serve(ClientHelloMessage.records(mutate(message)))
        #expect(!result.accepted, "\(name)")
        #expect(!result.active, "\(name)")
        #expect(result.errors.count == 1, "\(name)")
        #expect(result.errors.first?.code.isHandshakeFailure == true, "\(name)")
        #expect(result.answer.first == 0x15, "\(name): an alert")
    }

    /// Catalog T-03: over-long SNI names (256 and 1,000 bytes; DNS names end at 255) and names with a NUL or a space are refused cleanly with an alert; a 255-byte name is accepted (RealPeerTests: the default certificate).
    @Test(arguments: [
        [UInt8](repeating: 0x61, count: 256), [UInt8](repeating: 0x61, count: 1000), Array("a\u{0}b.test".utf8), Array("a b.test".utf8),
    ])
    func anInvalidServerNameIsRefusedCleanly(name: [UInt8]) throws {
        var hello = try ClientHelloMessage(record: Self.hello())
        let index = try #require(hello.extensions.firstIndex { $0.type == 0 })
        hello.extensions[index].data = ClientHelloMessage.serverName(name)
        let result = try Self.serve(ClientHelloMessage.records(hello.message))
        #expect(!result.accepted, "\(name.count) bytes")
        #expect(!result.active)
        #expect(result.errors.count == 1)
        #expect(result.errors.first?.code.isHandshakeFailure == true)
        #expect(result.answer.first == 0x15, "an alert")

        hello.extensions[index].data = ClientHelloMessage.serverName([UInt8](repeating: 0x61, count: 255))
        #expect(try Self.serve(ClientHelloMessage.records(hello.message)).accepted)
    }
}

extension Array {
    /// Consecutive slices of at most `count` elements.
    func chunks(ofCount count: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: self.count, by: count).map { self[$0..<Swift.min($0 + count, self.count)] }
    }
}
