import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import TLSShim

/// Real sockets against independent peers: `openssl s_client` / `openssl s_server` and Python's `ssl`
/// module. A missing peer fails loudly with what to install (CI installs `openssl` and `python3`).
/// Serialized: each test starts external processes, and the machine has two cores.
@Suite(.serialized) struct RealPeerTests {
    static let serverContext = TLSHandlerTests.serverContext

    /// PEM files for the external peers (the CA, and each fixture's certificate and key).
    static func files(_ directory: TemporaryDirectory) throws -> (ca: String, pair: (TLSGeneratedCertificate) throws -> (String, String)) {
        let ca = try directory.write("ca.pem", Fixtures.ca.certificatePEM)
        return (
            ca,
            { certificate in
                let name = UUID().uuidString
                return (
                    try directory.write("\(name).crt", certificate.certificatePEM),
                    try directory.write("\(name).key", certificate.privateKeyPEM)
                )
            }
        )
    }

    // MARK: openssl s_client → TLSShim server

    /// Catalog T-05: TLS 1.2 with an ECDHE AEAD suite and TLS 1.3 succeed.
    @Test(arguments: [("-tls1_2", TLSVersion.tls1_2), ("-tls1_3", .tls1_3)])
    func opensslClientHandshakeSNIAndALPN(flag: String, version: TLSVersion) async throws {
        let openssl = try Peers.openssl()
        let directory = try TemporaryDirectory()
        let (ca, _) = try Self.files(directory)
        let server = try await TestServer.start(context: Self.serverContext, mode: .greetAndClose)
        defer { Task { await server.stop() } }
        let client = try ExternalProcess(
            openssl,
            [
                "s_client", "-connect", "127.0.0.1:\(server.port)", "-servername", "api.example.test",
                "-alpn", "http/1.1", flag, "-CAfile", ca, "-verify_return_error", "-ign_eof",
            ],
            in: directory
        )
        let info = try await server.firstHandshakeResult().get()
        #expect(info.version == version)
        #expect(info.serverName == "api.example.test")
        #expect(info.negotiatedProtocol == "http/1.1")
        let status = try await client.waitForExit()
        let output = client.output
        #expect(status == 0, "\(output)")
        #expect(output.contains("hello from wsgate"))
        #expect(output.contains("ALPN protocol: http/1.1"))
        #expect(output.contains("Verify return code: 0 (ok)"))
        #expect(output.contains("CN = api.example.test"))
        #expect(output.contains(version == .tls1_3 ? "TLSv1.3" : "TLSv1.2"))
    }

    /// Catalog T-03: a ClientHello without SNI gets the default certificate (the documented policy).
    @Test func opensslClientWithoutSNIGetsTheDefaultCertificate() async throws {
        let openssl = try Peers.openssl()
        let directory = try TemporaryDirectory()
        let (ca, _) = try Self.files(directory)
        let server = try await TestServer.start(context: Self.serverContext, mode: .greetAndClose)
        defer { Task { await server.stop() } }
        let client = try ExternalProcess(
            openssl,
            ["s_client", "-connect", "127.0.0.1:\(server.port)", "-noservername", "-CAfile", ca, "-ign_eof"],
            in: directory
        )
        let info = try await server.firstHandshakeResult().get()
        #expect(info.serverName == nil)
        try await client.waitForExit()
        #expect(client.output.contains("CN = localhost"))
    }

    /// ../shared/DESIGN.md §1 step 2: no renegotiation. `R` asks `s_client` to renegotiate (TLS 1.2);
    /// the server refuses, so no second handshake ever completes.
    /// Catalog T-02: a client-initiated TLS 1.2 renegotiation is refused with a no_renegotiation alert and no second handshake completes.
    @Test func renegotiationIsRefused() async throws {
        let openssl = try Peers.openssl()
        let directory = try TemporaryDirectory()
        let (ca, _) = try Self.files(directory)
        let server = try await TestServer.start(context: Self.serverContext, mode: .echo)
        defer { Task { await server.stop() } }
        let client = try ExternalProcess(
            openssl,
            ["s_client", "-connect", "127.0.0.1:\(server.port)", "-tls1_2", "-CAfile", ca, "-servername", "localhost"],
            in: directory,
            interactiveInput: true
        )
        _ = try await server.firstHandshakeResult().get()
        _ = try await client.waitForOutput(containing: "Verify return code")
        client.send("R")
        _ = try await client.waitForOutput(containing: "RENEGOTIATING")
        let status = try await client.waitForExit(timeout: 10)
        #expect(status != 0)
        #expect(client.output.contains("no renegotiation"), "\(client.output)")
        let events = try await server.eventsUntilClosed(timeout: 10)
        let handshakes = events.filter { if case .handshake = $0 { true } else { false } }
        #expect(handshakes.isEmpty, "a second handshake completed")
        // The client gives up with a fatal alert; the server reports it on the established connection.
        let errors = events.compactMap { if case .error(let error) = $0 { error } else { nil } }
        #expect(errors.map(\.code) == [.connectionFailed])
    }

    /// Catalog T-05: a TLS 1.0 client is refused with a protocol_version failure.
    @Test func tls10OnlyOpensslClientIsRefused() async throws {
        let openssl = try Peers.openssl()
        let directory = try TemporaryDirectory()
        let server = try await TestServer.start(context: Self.serverContext, mode: .greetAndClose)
        defer { Task { await server.stop() } }
        // SECLEVEL=0 so that the client's own OpenSSL is willing to speak TLS 1.0 at all.
        let client = try ExternalProcess(
            openssl,
            ["s_client", "-connect", "127.0.0.1:\(server.port)", "-tls1", "-cipher", "DEFAULT@SECLEVEL=0", "-ign_eof"],
            in: directory
        )
        let result = try await server.firstHandshakeResult()
        guard case .failure(let error) = result else {
            Issue.record("a TLS 1.0 client completed a handshake")
            return
        }
        #expect(error.code == .protocolVersion)
        #expect(error.reason == "unsupported protocol")
        let status = try await client.waitForExit()
        #expect(status != 0)
    }

    @Test func clientThatStallsMidHandshakeTimesOut() async throws {
        let server = try await TestServer.start(
            context: Self.serverContext,
            mode: .greetAndClose,
            handlerConfiguration: .init { $0.handshakeTimeout = .milliseconds(300) }
        )
        defer { Task { await server.stop() } }
        // A plain TCP client that sends the first 5 bytes of a TLS record header and then nothing. The
        // clock starts before the connection exists, since the server's deadline starts at accept.
        let started = ContinuousClock.now
        let raw = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: server.port).get()
        try await raw.writeAndFlush(ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x02, 0x00]))
        let result = try await server.firstHandshakeResult(timeout: 5)
        guard case .failure(let error) = result else {
            Issue.record("a stalled client completed a handshake")
            return
        }
        #expect(error.code == .handshakeTimeout)
        #expect(ContinuousClock.now - started >= .milliseconds(250))
        try await withTimeout(5, "the server to close the stalled connection") { try await raw.closeFuture.get() }
    }

    @Test func clientThatDisconnectsMidHandshakeIsEOF() async throws {
        let server = try await TestServer.start(context: Self.serverContext, mode: .greetAndClose)
        defer { Task { await server.stop() } }
        let raw = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: server.port).get()
        try await raw.writeAndFlush(ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))
        try await raw.close()
        let result = try await server.firstHandshakeResult(timeout: 5)
        guard case .failure(let error) = result else {
            Issue.record("handshake completed")
            return
        }
        #expect(error.code == .eofDuringHandshake)
    }

    // MARK: TLSShim client → openssl s_server

    static func startOpensslServer(
        certificate: TLSGeneratedCertificate,
        extra: [String] = [],
        in directory: TemporaryDirectory
    ) async throws -> (ExternalProcess, Int) {
        let openssl = try Peers.openssl()
        let (_, pair) = try Self.files(directory)
        let (cert, key) = try pair(certificate)
        let server = try ExternalProcess(
            openssl,
            ["s_server", "-accept", "127.0.0.1:0", "-cert", cert, "-key", key, "-naccept", "1", "-www"] + extra,
            in: directory
        )
        let output = try await server.waitForOutput(containing: "ACCEPT")
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("ACCEPT") }),
            let port = line.split(separator: ":").last.flatMap({ Int($0) })
        else { throw PeerTestError("no port in s_server output:\n\(output)") }
        return (server, port)
    }

    @Test(arguments: [("-tls1_2", TLSVersion.tls1_2), ("-tls1_3", .tls1_3)])
    func clientAgainstOpensslServer(flag: String, version: TLSVersion) async throws {
        let directory = try TemporaryDirectory()
        let (server, port) = try await Self.startOpensslServer(
            certificate: Fixtures.localhost,
            extra: [flag, "-alpn", "http/1.1"],
            in: directory
        )
        let client = try TLSClientContext(configuration: Fixtures.clientConfiguration { $0.sessionReuse = false })
        let outcome = try await runClient(
            context: client,
            serverName: "localhost",
            port: port,
            request: ByteBuffer(string: "GET / HTTP/1.0\r\n\r\n")
        )
        #expect(outcome.error == nil)
        #expect(outcome.info?.version == version)
        #expect(outcome.info?.negotiatedProtocol == "http/1.1")
        #expect(outcome.info?.peerCertificateSubject == "CN=localhost")
        let body = String(buffer: outcome.received)
        #expect(body.hasPrefix("HTTP/1.0 200 ok"), "\(body.prefix(200))")
        try await server.waitForExit()
    }

    /// Catalog T-11: TLSShim's client refuses a self-signed, wrong-name or expired server certificate, each with its own failure class, and alerts the server.
    @Test(arguments: [
        ("untrusted", TLSError.Code.certificateNotTrusted, "localhost"),
        ("wrong name", .hostnameMismatch, "wrong.example.test"),
        ("expired", .certificateExpired, "localhost"),
    ])
    func clientClassifiesOpensslServerCertificates(kind: String, code: TLSError.Code, serverName: String) async throws {
        let certificate =
            switch kind {
            case "untrusted": Fixtures.untrusted
            case "expired": Fixtures.expired
            default: Fixtures.localhost
            }
        let directory = try TemporaryDirectory()
        let (server, port) = try await Self.startOpensslServer(certificate: certificate, in: directory)
        let client = try TLSClientContext(configuration: Fixtures.clientConfiguration())
        let outcome = try await runClient(context: client, serverName: serverName, port: port)
        #expect(outcome.info == nil)
        #expect(outcome.error?.code == code, "\(String(describing: outcome.error))")
        #expect(outcome.error?.code.isHandshakeFailure == true)
        try await server.waitForExit()
        // s_server saw our alert.
        #expect(server.output.contains("alert"), "\(server.output)")
    }

    // MARK: Python ssl

    static let pythonPeer = #"""
        import hashlib, socket, ssl, sys

        def client(port, sni, ca, version, nbytes):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.set_alpn_protocols(["http/1.1"])
            if version == "1.0":
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                ctx.set_ciphers("DEFAULT@SECLEVEL=0")
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.maximum_version = ssl.TLSVersion.TLSv1
            else:
                ctx.load_verify_locations(ca)
                v = ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3
                ctx.minimum_version = v
                ctx.maximum_version = v
            raw = socket.create_connection(("127.0.0.1", port), timeout=20)
            try:
                s = ctx.wrap_socket(raw, server_hostname=sni)
            except (ssl.SSLError, OSError) as e:
                print("HANDSHAKE-FAILED", e, flush=True)
                sys.exit(3)
            print("VERSION", s.version(), flush=True)
            print("ALPN", s.selected_alpn_protocol(), flush=True)
            print("SUBJECT", dict(x[0] for x in s.getpeercert()["subject"])["commonName"], flush=True)
            chunk = bytes(range(256)) * 4096
            total = 0
            while total < nbytes:
                s.sendall(chunk)
                got = bytearray()
                while len(got) < len(chunk):
                    data = s.recv(len(chunk) - len(got))
                    if not data:
                        print("EOF-EARLY", total + len(got), flush=True)
                        sys.exit(4)
                    got += data
                if got != chunk:
                    print("MISMATCH at", total, flush=True)
                    sys.exit(5)
                total += len(chunk)
            print("ECHOED", total, flush=True)
            s.unwrap()
            s.close()

        def server(cert, key, nbytes_unused):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            ctx.set_alpn_protocols(["http/1.1"])
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            listener.settimeout(20)
            print("PORT", listener.getsockname()[1], flush=True)
            conn, _ = listener.accept()
            conn.settimeout(20)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s = ctx.wrap_socket(conn, server_side=True)
            total = 0
            while True:
                data = s.recv(1 << 20)
                if not data:
                    break
                s.sendall(data)
                total += len(data)
            print("SERVED", total, flush=True)
            s.close()

        if sys.argv[1] == "client":
            client(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
        else:
            server(sys.argv[2], sys.argv[3], 0)
        """#

    static func python(_ arguments: [String], in directory: TemporaryDirectory) throws -> ExternalProcess {
        let python = try Peers.python3()
        let script = try directory.write("peer.py", Self.pythonPeer)
        return try ExternalProcess(python, [script] + arguments, in: directory)
    }

    @Test(arguments: ["1.2", "1.3"])
    func pythonClientHandshake(version: String) async throws {
        let directory = try TemporaryDirectory()
        let (ca, _) = try Self.files(directory)
        let server = try await TestServer.start(context: Self.serverContext, mode: .echo)
        defer { Task { await server.stop() } }
        let client = try Self.python(["client", "\(server.port)", "x.wild.example.test", ca, version, "0"], in: directory)
        let info = try await server.firstHandshakeResult().get()
        #expect(info.version == (version == "1.2" ? .tls1_2 : .tls1_3))
        #expect(info.serverName == "x.wild.example.test")
        #expect(info.negotiatedProtocol == "http/1.1")
        let status = try await client.waitForExit()
        #expect(status == 0, "\(client.output)")
        #expect(client.stdout.contains("VERSION TLSv\(version)"))
        #expect(client.stdout.contains("ALPN http/1.1"))
        #expect(client.stdout.contains("SUBJECT *.wild.example.test"))
    }

    /// Catalog T-05: a TLS 1.0 client (Python ssl) is refused with a protocol_version failure.
    @Test func tls10OnlyPythonClientIsRefused() async throws {
        let directory = try TemporaryDirectory()
        let server = try await TestServer.start(context: Self.serverContext, mode: .echo)
        defer { Task { await server.stop() } }
        let client = try Self.python(["client", "\(server.port)", "localhost", "-", "1.0", "0"], in: directory)
        let result = try await server.firstHandshakeResult()
        guard case .failure(let error) = result else {
            Issue.record("a TLS 1.0 client completed a handshake")
            return
        }
        #expect(error.code == .protocolVersion)
        #expect(try await client.waitForExit() == 3)
        #expect(client.stdout.contains("HANDSHAKE-FAILED"))
    }

    /// 64 MiB from Python to our server and back, checked byte for byte by Python.
    @Test func sixtyFourMiBEachWayWithPythonClient() async throws {
        let directory = try TemporaryDirectory()
        let (ca, _) = try Self.files(directory)
        let server = try await TestServer.start(context: Self.serverContext, mode: .echo)
        defer { Task { await server.stop() } }
        let client = try Self.python(["client", "\(server.port)", "localhost", ca, "1.3", "\(64 << 20)"], in: directory)
        let status = try await client.waitForExit(timeout: 40)
        #expect(status == 0, "\(client.output)")
        #expect(client.stdout.contains("ECHOED \(64 << 20)"))
        let events = try await server.eventsUntilClosed()
        let received = events.compactMap { if case .received(let count) = $0 { count } else { nil } }
        #expect(received == [64 << 20])
        #expect(!events.contains { if case .error = $0 { true } else { false } })
    }

    /// 64 MiB from our client to a Python echo server and back, checked byte for byte here.
    @Test func sixtyFourMiBEachWayWithPythonServer() async throws {
        let directory = try TemporaryDirectory()
        let (_, pair) = try Self.files(directory)
        let (cert, key) = try pair(Fixtures.localhost)
        let server = try Self.python(["server", cert, key], in: directory)
        let output = try await server.waitForOutput(containing: "PORT")
        guard let port = output.split(separator: "\n").first(where: { $0.hasPrefix("PORT") })?.split(separator: " ").last.flatMap({ Int($0) })
        else { throw PeerTestError("no port from the Python server: \(output)") }
        let client = try TLSClientContext(configuration: Fixtures.clientConfiguration())
        let outcome = try await runClient(context: client, serverName: "localhost", port: port, streamBytes: 64 << 20, timeout: 40)
        #expect(outcome.error == nil)
        #expect(outcome.receivedCount == 64 << 20)
        #expect(outcome.patternIntact)
        try await server.waitForExit()
        #expect(server.stdout.contains("SERVED \(64 << 20)"), "\(server.output)")
    }

    /// 64 MiB each way between a TLSShim client and a TLSShim server over loopback, checked here.
    @Test func sixtyFourMiBEachWayTLSShimToTLSShim() async throws {
        let server = try await TestServer.start(context: Self.serverContext, mode: .echo)
        defer { Task { await server.stop() } }
        let client = try TLSClientContext(configuration: Fixtures.clientConfiguration())
        let outcome = try await runClient(context: client, serverName: "localhost", port: server.port, streamBytes: 64 << 20, timeout: 40)
        #expect(outcome.error == nil)
        #expect(outcome.receivedCount == 64 << 20)
        #expect(outcome.patternIntact)
        let events = try await server.eventsUntilClosed()
        #expect(!events.contains { if case .error = $0 { true } else { false } })
    }
}
