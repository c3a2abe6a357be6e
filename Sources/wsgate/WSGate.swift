import ArgumentParser
import Dispatch
import Gateway
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

@main
struct WSGate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsgate",
        abstract: "An intercepting WebSocket gateway.",
        discussion: "With no subcommand, runs the gateway on its embedded default in front of a built-in demo upstream.",
        subcommands: [Demo.self, Run.self, Check.self, Echo.self],
        defaultSubcommand: Demo.self
    )
}

/// `wsgate` / `wsgate demo`: the embedded default.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway on 127.0.0.1:8080 in front of the built-in demo upstream (/echo, /chat).")

    @Option(help: "The port of the ws listener.")
    var port = EmbeddedDefault.port

    func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let upstream = try await DemoUpstream.start(host: EmbeddedDefault.host, port: 0, group: group)
        let server = try await GatewayServer.start(
            configuration: EmbeddedDefault.configuration(upstreamPort: upstream.port, port: self.port),
            group: group
        )
        let address = "ws://\(EmbeddedDefault.host):\(self.port)"
        print(
            """
            wsgate is running on its embedded default.
              gateway  \(address)  →  built-in demo upstream on 127.0.0.1:\(upstream.port)
              echo     \(address)/echo        (every message comes back)
              chat     \(address)/chat?name=you  (a room; who is online is broadcast on every join and leave)
            Try it:
              python3 -m websockets \(address)/echo
            Stop with Ctrl-C.
            """
        )
        try await waitForTermination()
        try await server.close()
        try await upstream.close()
        try await group.shutdownGracefully()
    }
}

/// `wsgate run -c FILE`.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway with a configuration file.")

    @Option(name: .shortAndLong, help: "The YAML configuration file.")
    var config: String

    func run() async throws {
        let configuration: GatewayConfiguration
        do {
            configuration = try GatewayConfiguration.load(path: self.config)
        } catch {
            printError("wsgate: \(self.config): \(error)")
            throw ExitCode(1)
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let server: GatewayServer
        do {
            server = try await GatewayServer.start(configuration: configuration, group: group)
        } catch {
            printError("wsgate: cannot start: \(error)")
            try await group.shutdownGracefully()
            throw ExitCode(1)
        }
        for (listener, address) in zip(configuration.listeners, server.localAddresses) {
            print("wsgate: listener \(listener.name) on \(address)")
        }
        try await waitForTermination()
        try await server.close()
        try await group.shutdownGracefully()
    }
}

/// `wsgate check -c FILE`: validate and exit 0 or 1, like `nginx -t`.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check a configuration file and exit 0 (valid) or 1 (invalid).")

    @Option(name: .shortAndLong, help: "The YAML configuration file.")
    var config: String

    func run() throws {
        do {
            let configuration = try GatewayConfiguration.load(path: self.config)
            print("wsgate: configuration \(self.config) is valid (\(configuration.listeners.count) listeners, \(configuration.routes.count) routes)")
        } catch {
            printError("wsgate: \(self.config): \(error)")
            throw ExitCode(1)
        }
    }
}

/// `wsgate echo --port N`: the demo upstream alone (also a benchmark upstream).
struct Echo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the built-in demo upstream alone (/echo and /chat).")

    @Option(help: "The port to listen on.")
    var port: Int

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let upstream = try await DemoUpstream.start(host: self.host, port: self.port, group: group)
        print("wsgate echo: ws://\(self.host):\(upstream.port)/echo and /chat")
        try await waitForTermination()
        try await upstream.close()
        try await group.shutdownGracefully()
    }
}

func printError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
}

/// Returns when SIGINT or SIGTERM arrives (graceful drain is a later feature; this stops accepting and exits).
func waitForTermination() async throws {
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let sources = [SIGINT, SIGTERM].map { DispatchSource.makeSignalSource(signal: $0) }
        let resumed = NIOLockedValueBox(false)
        for source in sources {
            source.setEventHandler {
                let first = resumed.withLockedValue { done in
                    defer { done = true }
                    return !done
                }
                if first { continuation.resume() }
            }
            source.resume()
        }
        signalSources = sources
    }
}

nonisolated(unsafe) private var signalSources: [any DispatchSourceSignal] = []
