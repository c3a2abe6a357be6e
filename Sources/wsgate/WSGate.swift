import ArgumentParser
import Dispatch
import Gateway
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

@main
struct WSGate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsgate",
        abstract: "An intercepting WebSocket gateway.",
        discussion: "With no subcommand, runs the gateway on its embedded default in front of a built-in demo upstream.",
        subcommands: [Demo.self, Run.self, Check.self, Echo.self, Tap.self],
        defaultSubcommand: Demo.self
    )
}

/// `wsgate` / `wsgate demo`: the embedded default (``EmbeddedDefault``): ws and wss listeners in front
/// of the built-in demo upstream, permessage-deflate negotiated on the client leg, and the admin
/// listener on 127.0.0.1:9090, as a configuration file with no `admin` key gets.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway on 127.0.0.1:8080 in front of the built-in demo upstream (/echo, /chat), admin on 127.0.0.1:9090."
    )

    @Option(help: "The port of the ws listener.")
    var port = EmbeddedDefault.port

    @Option(help: "The port of the wss listener (self-signed certificate made at start).")
    var tlsPort = EmbeddedDefault.tlsPort

    @Option(help: "The port of the admin listener (/metrics, /healthz, /readyz), or 'off'.")
    var adminPort = AdminPort.port(EmbeddedDefault.adminPort)

    func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        // The demo upstream's accept errors are counted in the gateway's registry (/metrics) and logged.
        let registry = PrometheusCollectorRegistry()
        let upstream = try await DemoUpstream.start(
            host: EmbeddedDefault.host,
            port: 0,
            group: group,
            metricsFactory: GatewayService.metricsFactory(registry: registry),
            logger: gatewayLogger
        )
        let adminPort: Int? = if case .port(let port) = self.adminPort { port } else { nil }
        let configuration = EmbeddedDefault.configuration(
            upstreamPort: upstream.port,
            identity: try EmbeddedDefault.makeIdentity(),
            port: self.port,
            tlsPort: self.tlsPort,
            adminPort: adminPort
        )
        do {
            try await runGateway(configuration: configuration, path: nil, group: group, registry: registry) { started in
                printLine(
                    EmbeddedDefault.banner(
                        listeners: started.server.localAddresses,
                        admin: started.admin?.localAddress,
                        upstreamPort: upstream.port
                    )
                )
            }
        } catch {
            let ports = ([self.port, self.tlsPort] + (adminPort.map { [$0] } ?? [])).map(String.init).joined(separator: ", ")
            printError(
                """
                wsgate: cannot start: \(error)
                (the embedded default listens on 127.0.0.1 ports \(ports): choose others with --port, --tls-port \
                and --admin-port, or --admin-port off)
                """
            )
            try await upstream.close()
            try await group.shutdownGracefully()
            throw ExitCode(1)
        }
        try await upstream.close()
        try await group.shutdownGracefully()
    }
}

/// `--admin-port N` or `--admin-port off`.
enum AdminPort: ExpressibleByArgument, CustomStringConvertible {
    case port(Int)
    case off

    init?(argument: String) {
        if argument == "off" {
            self = .off
        } else if let port = Int(argument), (0...65535).contains(port) {
            self = .port(port)
        } else {
            return nil
        }
    }

    var description: String {
        switch self {
        case .port(let port): "\(port)"
        case .off: "off"
        }
    }

    var defaultValueDescription: String { self.description }
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
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoopCount)
        do {
            try await runGateway(configuration: configuration, path: self.config, group: group) { started in
                for (listener, address) in zip(configuration.listeners, started.server.localAddresses) {
                    printLine("wsgate: listener \(listener.name) on \(address)")
                }
                if let admin = started.admin?.localAddress {
                    printLine("wsgate: admin on \(admin) (dashboard at /, /connections, /tap, /metrics, /healthz, /readyz)")
                }
            }
        } catch {
            printError("wsgate: cannot start: \(error)")
            try await group.shutdownGracefully()
            throw ExitCode(1)
        }
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
            try configuration.checkJWKSFiles()
            let summary = "\(counted(configuration.listeners.count, "listener")), \(counted(configuration.routes.count, "route"))"
            printLine("wsgate: configuration \(self.config) is valid (\(summary))")
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
        let upstream = try await DemoUpstream.start(host: self.host, port: self.port, group: group, logger: gatewayLogger)
        // Trapped before the banner: whoever waits for it and then signals is heard.
        let termination = trapTermination()
        printLine("wsgate echo: ws://\(self.host):\(upstream.port)/echo and /chat")
        await termination.wait()
        try await upstream.close()
        try await group.shutdownGracefully()
    }
}

/// "1 listener", "2 routes".
func counted(_ count: Int, _ noun: String) -> String {
    count == 1 ? "1 \(noun)" : "\(count) \(noun)s"
}

/// Runs the gateway in a `ServiceGroup` until SIGTERM or SIGINT, then drains (Close 1001 to every
/// connection, up to `timeouts.drain`) and returns; SIGHUP reloads `path`. `onStarted` runs once the
/// listeners are bound (the banner). A second SIGTERM/SIGINT during the drain is ignored: the drain
/// deadline bounds the exit.
func runGateway(
    configuration: GatewayConfiguration,
    path: String?,
    group: any EventLoopGroup,
    registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
    onStarted: @escaping @Sendable (GatewayService.Started) -> Void
) async throws {
    let logger = gatewayLogger
    let service = GatewayService(
        configuration: configuration,
        configurationPath: path,
        group: group,
        logger: logger,
        registry: registry,
        onStarted: onStarted
    )
    var serviceConfiguration = ServiceGroupConfiguration(
        services: [.init(service: service)],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger
    )
    // A safety net above the drain deadline: the drain itself force-closes at its deadline.
    serviceConfiguration.maximumGracefulShutdownDuration = configuration.timeouts.drain + .seconds(10)
    try await ServiceGroup(configuration: serviceConfiguration).run()
}

/// The process's log: standard error.
let gatewayLogger = Logger(label: "wsgate") { StreamLogHandler.standardError(label: $0) }

/// Writes a line to standard error at once (unbuffered).
func printError(_ message: String) {
    writeLine(message, to: 2)
}

/// Writes a line to standard output at once, so banners show up even when stdout is a pipe.
func printLine(_ message: String) {
    writeLine(message, to: 1)
}

private func writeLine(_ message: String, to descriptor: Int32) {
    var line = message + "\n"
    line.withUTF8 { _ = Glibc.write(descriptor, $0.baseAddress, $0.count) }
}

/// SIGINT and SIGTERM, trapped from the call on: a signal that comes before ``Termination/wait()`` is
/// kept, not lost. Trap before printing a banner that a script (or a test) waits for and then signals:
/// between `signal(_, SIG_IGN)` and the dispatch sources' resume, a signal is ignored and lost, so a
/// trap set up after the banner left a window in which Ctrl-C did nothing and the process never exited.
func trapTermination() -> Termination {
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    let sources = [SIGINT, SIGTERM].map { DispatchSource.makeSignalSource(signal: $0) }
    for source in sources {
        source.setEventHandler { continuation.yield() }
        source.resume()
    }
    signalSources = sources
    return Termination(signals: stream)
}

/// The trapped SIGINT/SIGTERM of ``trapTermination()``.
struct Termination {
    let signals: AsyncStream<Void>

    /// Returns once SIGINT or SIGTERM has arrived (at once if one already did).
    func wait() async {
        for await _ in self.signals { return }
    }
}

nonisolated(unsafe) private var signalSources: [any DispatchSourceSignal] = []
