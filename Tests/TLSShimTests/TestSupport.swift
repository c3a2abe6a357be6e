import NIOCore
import NIOEmbedded
import NIOTLS
import TLSShim

/// Certificates generated once per test process (STYLE.md P13: nothing committed). A small CA issues
/// the server and client certificates; `untrusted*` are self-signed.
enum Fixtures {
    static let ca = try! TLSCertificateGenerator.selfSigned(
        TLSCertificateRequest(commonName: "wsgate test CA") { $0.isCertificateAuthority = true }
    )
    static let otherCA = try! TLSCertificateGenerator.selfSigned(
        TLSCertificateRequest(commonName: "other CA") { $0.isCertificateAuthority = true }
    )
    static let localhost = issue("localhost", dns: ["localhost"], ip: ["127.0.0.1", "::1"])
    static let apiHost = issue("api.example.test", dns: ["api.example.test"])
    static let wildcardHost = issue("*.wild.example.test", dns: ["*.wild.example.test"])
    static let expired = issue("localhost", dns: ["localhost"], ip: ["127.0.0.1"]) {
        $0.notBefore = -7_200
        $0.notAfter = -3_600
    }
    static let notYetValid = issue("localhost", dns: ["localhost"]) {
        $0.notBefore = 3_600
        $0.notAfter = 7_200
    }
    static let untrusted = try! TLSCertificateGenerator.selfSigned(
        TLSCertificateRequest(commonName: "localhost") {
            $0.dnsNames = ["localhost"]
            $0.ipAddresses = ["127.0.0.1"]
        }
    )
    static let client = issue("client.example.test", dns: [])

    static func issue(
        _ commonName: String,
        dns: [String],
        ip: [String] = [],
        by issuer: TLSGeneratedCertificate = Fixtures.ca,
        _ configure: (inout TLSCertificateRequest) -> Void = { _ in }
    ) -> TLSGeneratedCertificate {
        var request = TLSCertificateRequest(commonName: commonName)
        request.dnsNames = dns
        request.ipAddresses = ip
        configure(&request)
        return try! TLSCertificateGenerator.make(request, issuedBy: issuer)
    }

    /// A server with the localhost default and two virtual hosts.
    static func serverConfiguration(
        _ configure: (inout TLSServerConfiguration) -> Void = { _ in }
    ) -> TLSServerConfiguration {
        TLSServerConfiguration(defaultIdentity: localhost.identity) {
            $0.virtualHosts = [
                TLSVirtualHost(serverNames: ["api.example.test"], identity: apiHost.identity),
                TLSVirtualHost(serverNames: ["*.wild.example.test"], identity: wildcardHost.identity),
            ]
            configure(&$0)
        }
    }

    static func clientConfiguration(
        _ configure: (inout TLSClientConfiguration) -> Void = { _ in }
    ) -> TLSClientConfiguration {
        TLSClientConfiguration {
            $0.trustRoots = .certificates(.pem(ca.certificatePEM))
            $0.applicationProtocols = ["http/1.1"]
            configure(&$0)
        }
    }
}

/// Records what reaches the end of a pipeline: plaintext, user events, errors.
final class Recorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    var received = ByteBuffer()
    var handshakeCompleted: [String?] = []
    var inputClosed = false
    var errors: [any Error] = []
    var readCount = 0

    var tlsErrors: [TLSError] { self.errors.compactMap { $0 as? TLSError } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = Self.unwrapInboundIn(data)
        self.readCount += 1
        self.received.writeBuffer(&buffer)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted(let proto) = event {
            self.handshakeCompleted.append(proto)
        } else if let event = event as? ChannelEvent, event == .inputClosed {
            self.inputClosed = true
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.errors.append(error)
    }
}

@available(*, unavailable)
extension Recorder: Sendable {}

/// A client and a server `TLSHandler` over two `EmbeddedChannel`s, with a pump that moves ciphertext
/// between them (swift-nio-ssl's `interactInMemory`, STYLE.md P12).
final class InMemoryPair {
    let client: EmbeddedChannel
    let server: EmbeddedChannel
    let clientHandler: TLSHandler
    let serverHandler: TLSHandler
    let clientRecorder = Recorder()
    let serverRecorder = Recorder()
    /// Ciphertext buffers written by each side (counts coalescing).
    var clientWrites = 0
    var serverWrites = 0

    init(client clientHandler: TLSHandler, server serverHandler: TLSHandler) throws {
        self.clientHandler = clientHandler
        self.serverHandler = serverHandler
        self.client = EmbeddedChannel(loop: EmbeddedEventLoop())
        self.server = EmbeddedChannel(loop: EmbeddedEventLoop())
        try self.client.pipeline.syncOperations.addHandlers([clientHandler, self.clientRecorder])
        try self.server.pipeline.syncOperations.addHandlers([serverHandler, self.serverRecorder])
    }

    convenience init(
        server: TLSServerContext,
        client: TLSClientContext,
        serverName: String? = "localhost",
        serverHandlerConfiguration: TLSHandler.Configuration = .init(),
        clientHandlerConfiguration: TLSHandler.Configuration = .init()
    ) throws {
        try self.init(
            client: TLSHandler.client(context: client, serverName: serverName, configuration: clientHandlerConfiguration),
            server: TLSHandler.server(context: server, configuration: serverHandlerConfiguration)
        )
    }

    /// Activates both channels (the client sends its ClientHello).
    func activate() throws {
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 443)
        try self.server.connect(to: address).wait()
        try self.client.connect(to: address).wait()
    }

    /// Moves ciphertext until neither side has anything to send. `chunk`: deliver at most this many
    /// bytes per `channelRead` (1 = one byte at a time).
    func interact(chunk: Int = .max) throws {
        var moved = true
        var rounds = 0
        while moved {
            rounds += 1
            precondition(rounds < 1_000_000, "interact does not settle")
            moved = false
            if try self.move(from: self.client, to: self.server, chunk: chunk, counter: &self.clientWrites) { moved = true }
            if try self.move(from: self.server, to: self.client, chunk: chunk, counter: &self.serverWrites) { moved = true }
        }
    }

    private func move(from: EmbeddedChannel, to: EmbeddedChannel, chunk: Int, counter: inout Int) throws -> Bool {
        var moved = false
        while var buffer = try from.readOutbound(as: ByteBuffer.self) {
            counter += 1
            moved = true
            while buffer.readableBytes > 0 {
                let slice = buffer.readSlice(length: min(chunk, buffer.readableBytes))!
                guard to.isActive else { break }
                try to.writeInbound(slice)
            }
        }
        return moved
    }

    func handshake(chunk: Int = .max) throws {
        try self.activate()
        try self.interact(chunk: chunk)
    }

    /// Closes whatever is still open and checks that nothing is left over.
    func finish() throws -> Bool {
        if self.client.isActive { self.client.close(promise: nil) }
        try self.interact()
        if self.server.isActive { self.server.close(promise: nil) }
        try self.interact()
        let clientClean = try self.client.finish(acceptAlreadyClosed: true).isClean
        let serverClean = try self.server.finish(acceptAlreadyClosed: true).isClean
        return clientClean && serverClean
    }
}

/// Deterministic test payloads: byte k is `k * 31 + seed` (mod 256); with seed 0 and a length that is
/// a multiple of 256 the buffer repeats seamlessly.
func patternBuffer(_ count: Int, seed: UInt8 = 0) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.reserveCapacity(count)
    buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { pointer in
        for index in 0..<count { pointer[index] = UInt8(truncatingIfNeeded: index &* 31 &+ Int(seed)) }
        return count
    }
    return buffer
}
