import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// A real HAProxy (`/usr/sbin/haproxy`, Debian package `haproxy`) in TCP mode in front of a port. If it
/// is missing the test fails saying what to install, unless `WSGATE_SKIP_HAPROXY=1` is set: then it
/// prints a banner and the test is reported as skipped (the pattern of `PythonPeer.require`).
final class HAProxy: @unchecked Sendable {
    static let path = ProcessInfo.processInfo.environment["WSGATE_HAPROXY"] ?? "/usr/sbin/haproxy"

    let process = Process()
    let port: Int
    private let directory: URL

    static func require(sourceLocation: SourceLocation = #_sourceLocation) throws -> Bool {
        guard !FileManager.default.isExecutableFile(atPath: Self.path) else { return true }
        let why = "\(Self.path) is missing (apt-get install -y haproxy, or set WSGATE_HAPROXY to its path)"
        if ProcessInfo.processInfo.environment["WSGATE_SKIP_HAPROXY"] == "1" {
            print(
                """
                ************************************************************************
                SKIPPED: \(why). WSGATE_SKIP_HAPROXY=1 is set, so this does not fail.
                ************************************************************************
                """
            )
            try Test.cancel("WSGATE_SKIP_HAPROXY=1 and \(why)")
        }
        Issue.record("\(why); or set WSGATE_SKIP_HAPROXY=1 to skip loudly", sourceLocation: sourceLocation)
        return false
    }

    /// Starts HAProxy listening on a free loopback port and sending `option` (`send-proxy` or
    /// `send-proxy-v2`) to `127.0.0.1:target`; returns once its port accepts connections.
    static func start(forwardingTo target: Int, option: String) async throws -> HAProxy {
        let port = try await Self.freePort()
        let haproxy = try HAProxy(port: port, target: target, option: option)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if haproxy.process.isRunning == false { throw RawClient.Failure("haproxy exited: \(haproxy.output)") }
            if (try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get())
                .map({ $0.close(promise: nil) }) != nil
            {
                return haproxy
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        haproxy.stop()
        throw RawClient.Failure("haproxy did not start listening: \(haproxy.output)")
    }

    private init(port: Int, target: Int, option: String) throws {
        self.port = port
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-haproxy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        let configuration = """
            global
                maxconn 100
            defaults
                mode tcp
                timeout connect 5s
                timeout client 30s
                timeout server 30s
            frontend edge
                bind 127.0.0.1:\(port)
                default_backend gateway
            backend gateway
                server gw 127.0.0.1:\(target) \(option)

            """
        let file = self.directory.appendingPathComponent("haproxy.cfg")
        try configuration.write(to: file, atomically: true, encoding: .utf8)
        self.process.executableURL = URL(fileURLWithPath: Self.path)
        self.process.arguments = ["-db", "-f", file.path]
        let log = self.directory.appendingPathComponent("haproxy.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        self.process.standardOutput = handle
        self.process.standardError = handle
        self.process.standardInput = FileHandle.nullDevice
        try self.process.run()
    }

    var output: String {
        (try? String(contentsOf: self.directory.appendingPathComponent("haproxy.log"), encoding: .utf8)) ?? ""
    }

    func stop() {
        if self.process.isRunning {
            // SIGKILL, not `terminate()`'s SIGTERM: inherited blocked from the test runner, it may stay
            // pending and leave this wait hanging (as `PythonPeer.stop()`).
            kill(self.process.processIdentifier, SIGKILL)
            self.process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: self.directory)
    }

    private static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress!.port!
        try await channel.close()
        return port
    }
}

/// A TCP client bound to a chosen local address: sends bytes and returns what came back up to the end
/// of the response head (or the peer's close).
enum RawClient {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    private final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let done: EventLoopPromise<String>
        var bytes: [UInt8] = []
        var finished = false
        init(done: EventLoopPromise<String>) { self.done = done }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            self.bytes += Array(buffer: Self.unwrapInboundIn(data))
            if !self.finished, self.bytes.count >= 4,
                self.bytes.indices.dropLast(3).contains(where: { self.bytes[$0..<($0 + 4)].elementsEqual([13, 10, 13, 10]) })
            {
                self.finish()
            }
        }
        func channelInactive(context: ChannelHandlerContext) { self.finish() }
        func finish() {
            guard !self.finished else { return }
            self.finished = true
            self.done.succeed(String(decoding: self.bytes, as: UTF8.self))
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    static func exchange(from local: String, port: Int, _ text: String, timeout: TimeAmount = .seconds(5)) async throws -> String {
        let (answer, channel) = try await Self.connect(from: local, port: port, text, timeout: timeout)
        channel.close(promise: nil)
        return answer
    }

    /// Like ``exchange(from:port:_:timeout:)`` but leaves the connection open (close `channel`).
    static func connect(
        from local: String,
        port: Int,
        _ text: String,
        timeout: TimeAmount = .seconds(5)
    ) async throws -> (answer: String, channel: any Channel) {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let done = loop.makePromise(of: String.self)
        let channel = try await ClientBootstrap(group: loop)
            .bind(to: try SocketAddress(ipAddress: local, port: 0))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(done: done)) }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        // A connection closed at accept may refuse the write; what came back (nothing) is the answer.
        try? await channel.writeAndFlush(ByteBuffer(string: text))
        let timer = loop.scheduleTask(in: timeout) { done.fail(Failure("no answer within \(timeout)")) }
        defer { timer.cancel() }
        do {
            return (try await done.futureResult.get(), channel)
        } catch {
            channel.close(promise: nil)
            throw error
        }
    }
}
