import Foundation
import NIOCore
import NIOPosix
import NIOTLS
import TLSShim
import TestPeers

/// A test failure with a message (missing peer binaries, timeouts, unexpected peer output).
struct PeerTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` and fails if it takes longer than `seconds` (every wait in the real-socket suites is
/// bounded, STYLE.md P13).
func withTimeout<T: Sendable>(
    _ seconds: Double,
    _ what: String,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw PeerTestError("timed out after \(seconds) s waiting for \(what)")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// Locates peer binaries; a missing one fails the test loudly with what to install.
enum Peers {
    static func path(of tool: String, install: String) throws -> String {
        let searchPath = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in searchPath.split(separator: ":") {
            let candidate = "\(directory)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw PeerTestError("'\(tool)' is not installed: this real-peer suite needs it (install \(install))")
    }

    static func openssl() throws -> String { try self.path(of: "openssl", install: "apt-get install openssl") }
    /// The provisioned interpreter (`.build/test-peers`, scripts/provision-test-peers), not PATH's.
    static func python3() throws -> String { try TestPeers.python() }
}

/// A temporary directory for PEM files handed to external peers; removed on deinit.
final class TemporaryDirectory: Sendable {
    let path: String

    init() throws {
        self.path = NSTemporaryDirectory() + "tlsshim-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: self.path, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ contents: String) throws -> String {
        let file = "\(self.path)/\(name)"
        try contents.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    deinit { try? FileManager.default.removeItem(atPath: self.path) }
}

/// An external process whose output goes to files (no pipe can fill up and block it).
final class ExternalProcess: @unchecked Sendable {
    let process = Process()
    private let stdoutPath: String
    private let stderrPath: String
    let commandLine: String

    /// Standard input, when the process was started with `interactiveInput: true`.
    let input: Pipe?

    init(_ executable: String, _ arguments: [String], in directory: TemporaryDirectory, interactiveInput: Bool = false) throws {
        let id = UUID().uuidString
        self.stdoutPath = "\(directory.path)/\(id).out"
        self.stderrPath = "\(directory.path)/\(id).err"
        _ = FileManager.default.createFile(atPath: self.stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: self.stderrPath, contents: nil)
        self.commandLine = ([executable] + arguments).joined(separator: " ")
        self.process.executableURL = URL(fileURLWithPath: executable)
        self.process.arguments = arguments
        self.input = interactiveInput ? Pipe() : nil
        self.process.standardInput = self.input ?? FileHandle.nullDevice
        self.process.standardOutput = FileHandle(forWritingAtPath: self.stdoutPath)
        self.process.standardError = FileHandle(forWritingAtPath: self.stderrPath)
        try self.process.run()
    }

    var stdout: String { (try? String(contentsOfFile: self.stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: self.stderrPath, encoding: .utf8)) ?? "" }
    var output: String { self.stdout + self.stderr }

    /// Waits until stdout or stderr contains `text`; returns the output.
    func waitForOutput(containing text: String, timeout: Double = 10) async throws -> String {
        try await withTimeout(timeout, "'\(text)' from \(self.commandLine)") {
            while true {
                let output = self.output
                if output.contains(text) { return output }
                if !self.process.isRunning {
                    let final = self.output
                    if final.contains(text) { return final }
                    throw PeerTestError("\(self.commandLine) exited without printing '\(text)':\n\(final)")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    /// Waits for the process to exit; returns its status.
    @discardableResult
    func waitForExit(timeout: Double = 20) async throws -> Int32 {
        do {
            return try await withTimeout(timeout, "\(self.commandLine) to exit") {
                while self.process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
                return self.process.terminationStatus
            }
        } catch {
            self.terminate()
            throw PeerTestError("\(error); output so far:\n\(self.output)")
        }
    }

    /// SIGKILL, not `Process.terminate()`'s SIGTERM: children inherit the test runner's blocked
    /// signal mask, so a SIGTERM would stay pending forever and leave the peer running.
    func terminate() {
        if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
    }

    /// Writes a line to the process's standard input (needs `interactiveInput: true`).
    func send(_ line: String) {
        self.input?.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    deinit { self.terminate() }
}

/// What a server-side probe saw on one connection.
enum ServerEvent: Sendable {
    case handshake(TLSConnectionInfo)
    case error(TLSError)
    case received(Int)
    case closed
}

/// Behind a server `TLSHandler`: reports handshake info and errors, then greets-and-closes or echoes.
final class ServerProbe: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Mode { case greetAndClose, echo }

    private let events: AsyncStream<ServerEvent>.Continuation
    private let mode: Mode
    private var received = 0

    init(events: AsyncStream<ServerEvent>.Continuation, mode: Mode) {
        self.events = events
        self.mode = mode
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent {
            let handler = try? context.pipeline.syncOperations.handler(type: TLSHandler.self)
            if let info = handler?.connectionInfo { self.events.yield(.handshake(info)) }
            if self.mode == .greetAndClose {
                context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer(string: "hello from wsgate\n")), promise: nil)
                context.close(promise: nil)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = Self.unwrapInboundIn(data)
        self.received += buffer.readableBytes
        if self.mode == .echo {
            context.write(Self.wrapOutboundOut(buffer), promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? TLSError { self.events.yield(.error(error)) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.events.yield(.received(self.received))
        self.events.yield(.closed)
    }
}

@available(*, unavailable)
extension ServerProbe: Sendable {}

/// A TLSShim server on 127.0.0.1 with an ephemeral port.
struct TestServer {
    let channel: Channel
    let events: AsyncStream<ServerEvent>
    var port: Int { self.channel.localAddress!.port! }

    static func start(
        context: TLSServerContext,
        mode: ServerProbe.Mode,
        handlerConfiguration: TLSHandler.Configuration = .init()
    ) async throws -> TestServer {
        let (events, continuation) = AsyncStream<ServerEvent>.makeStream()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        TLSHandler.server(context: context, configuration: handlerConfiguration),
                        ServerProbe(events: continuation, mode: mode),
                    ])
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return TestServer(channel: channel, events: events)
    }

    /// The first handshake result (info or error) of any connection.
    func firstHandshakeResult(timeout: Double = 10) async throws -> Result<TLSConnectionInfo, TLSError> {
        try await withTimeout(timeout, "a server handshake result") {
            for await event in self.events {
                switch event {
                case .handshake(let info): return .success(info)
                case .error(let error): return .failure(error)
                case .received, .closed: continue
                }
            }
            throw PeerTestError("server event stream ended")
        }
    }

    /// Collects events until the first connection closes.
    func eventsUntilClosed(timeout: Double = 20) async throws -> [ServerEvent] {
        try await withTimeout(timeout, "the server connection to close") {
            var collected: [ServerEvent] = []
            for await event in self.events {
                collected.append(event)
                if case .closed = event { return collected }
            }
            return collected
        }
    }

    func stop() async {
        try? await self.channel.close()
    }
}

/// Behind a client `TLSHandler`: sends a request (or streams a pattern) after the handshake and
/// collects what comes back until the connection closes.
final class ClientProbe: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Outcome: Sendable {
        var info: TLSConnectionInfo?
        var error: TLSError?
        var received: ByteBuffer
        var receivedCount: Int
        var patternIntact: Bool
    }

    private let done: EventLoopPromise<Outcome>
    private let request: ByteBuffer?
    private let streamBytes: Int
    private let keepReceived: Bool
    private var outcome = Outcome(info: nil, error: nil, received: ByteBuffer(), receivedCount: 0, patternIntact: true)
    private var sent = 0
    /// Pattern chunk (see `patternBuffer`); 1 MiB is a multiple of 256, so the stream repeats it seamlessly.
    private static let chunk = patternBuffer(1 << 20, seed: 0)

    init(done: EventLoopPromise<Outcome>, request: ByteBuffer?, streamBytes: Int = 0) {
        self.done = done
        self.request = request
        self.streamBytes = streamBytes
        self.keepReceived = streamBytes == 0
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent {
            self.outcome.info = try? context.pipeline.syncOperations.handler(type: TLSHandler.self).connectionInfo
            if let request { context.writeAndFlush(Self.wrapOutboundOut(request), promise: nil) }
            if self.streamBytes > 0 { self.sendNext(context: context) }
        }
    }

    /// Keeps up to 8 MiB in flight: enough to fill the pipe, bounded memory.
    private func sendNext(context: ChannelHandlerContext) {
        while self.sent < self.streamBytes && self.sent - self.outcome.receivedCount < 8 << 20 {
            self.sent += Self.chunk.readableBytes
            context.writeAndFlush(Self.wrapOutboundOut(Self.chunk), promise: nil)
        }
        if self.sent >= self.streamBytes && self.outcome.receivedCount >= self.streamBytes {
            context.close(mode: .all, promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = Self.unwrapInboundIn(data)
        if self.streamBytes > 0 {
            let start = self.outcome.receivedCount
            // Compare against the pattern chunk with memcmp, piece by piece across chunk boundaries
            // (a byte loop is too slow for 64 MiB in a debug build).
            let intact = buffer.withUnsafeReadableBytes { bytes in
                Self.chunk.withUnsafeReadableBytes { pattern in
                    var done = 0
                    while done < bytes.count {
                        let phase = (start + done) % pattern.count
                        let length = min(bytes.count - done, pattern.count - phase)
                        if memcmp(bytes.baseAddress! + done, pattern.baseAddress! + phase, length) != 0 { return false }
                        done += length
                    }
                    return true
                }
            }
            if !intact { self.outcome.patternIntact = false }
            self.outcome.receivedCount += buffer.readableBytes
            self.sendNext(context: context)
        } else {
            self.outcome.receivedCount += buffer.readableBytes
            self.outcome.received.writeBuffer(&buffer)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? TLSError, self.outcome.error == nil { self.outcome.error = error }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.done.succeed(self.outcome)
    }
}

@available(*, unavailable)
extension ClientProbe: Sendable {}

/// Connects a TLSShim client to 127.0.0.1:`port` and returns the outcome when the connection closes.
func runClient(
    context: TLSClientContext,
    serverName: String?,
    port: Int,
    request: ByteBuffer? = nil,
    streamBytes: Int = 0,
    timeout: Double = 20
) async throws -> ClientProbe.Outcome {
    let group = MultiThreadedEventLoopGroup.singleton
    let done = group.any().makePromise(of: ClientProbe.Outcome.self)
    let channel = try await ClientBootstrap(group: done.futureResult.eventLoop)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandlers([
                    TLSHandler.client(context: context, serverName: serverName),
                    ClientProbe(done: done, request: request, streamBytes: streamBytes),
                ])
            }
        }
        .connect(host: "127.0.0.1", port: port)
        .get()
    do {
        return try await withTimeout(timeout, "the client connection to close") { try await done.futureResult.get() }
    } catch {
        try? await channel.close()
        throw error
    }
}
