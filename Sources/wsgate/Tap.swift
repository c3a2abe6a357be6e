import ArgumentParser
import Dispatch
import Foundation
import Gateway
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// `wsgate tap`: the admin listener's frame tap (`GET /tap`, issue #14 §2) in a terminal, one line per
/// frame (``TapTerminalView``), and with `--har FILE` as a HAR file Chrome DevTools opens (``TapHAR``),
/// written on Ctrl-C (SIGINT), SIGTERM and when the stream ends.
struct Tap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Watch WebSocket frames live through the admin listener (one line per frame), or record them as a HAR file.",
        discussion: """
            → is client to upstream, ← upstream to client. Colors only when standard output is a terminal and NO_COLOR is unset. \
            With --har, the file is written on Ctrl-C and when the stream ends (Chrome DevTools: Network → Import HAR).
            """
    )

    @Option(help: "The admin listener's URL.")
    var admin = "http://127.0.0.1:\(EmbeddedDefault.adminPort)"

    @Option(help: "Only connections on this route (its path prefix, e.g. /chat).")
    var route: String?

    @Option(help: "Only this connection (its id, as /connections lists it).")
    var connection: UInt64?

    @Option(help: "Only connections from this client address (IP, or IP:port).")
    var client: String?

    @Option(help: "Payload capture: none, truncated (the gateway's default, 1 KiB per frame) or full.")
    var payload: PayloadMode?

    @Option(help: "A file whose first line is the admin bearer token (the gateway's admin.token_file).")
    var tokenFile: String?

    @Option(help: "Also write the tapped connections and their messages to this HAR 1.2 file.")
    var har: String?

    @Flag(help: "Print no line per frame (with --har: record only).")
    var quiet = false

    enum PayloadMode: String, ExpressibleByArgument, CaseIterable {
        case none, truncated, full
    }

    /// What the stream callbacks share with the end of the run.
    private struct State {
        var splitter = TapLineSplitter()
        var decoder = TapLineDecoder()
        var har: TapHAR?
    }

    func run() async throws {
        let admin: TapClient.Admin
        do {
            admin = try TapClient.Admin(self.admin)
        } catch {
            printError("wsgate tap: \(error)")
            throw ExitCode(2)
        }
        var token: String?
        if let tokenFile {
            guard let data = FileManager.default.contents(atPath: tokenFile),
                let line = String(decoding: data, as: UTF8.self).split(separator: "\n").first?.trimmingCharacters(in: .whitespaces),
                !line.isEmpty
            else {
                printError("wsgate tap: \(tokenFile): no token (the file cannot be read or is empty)")
                throw ExitCode(2)
            }
            token = line
        }
        var query: [(String, String)] = []
        if let route { query.append(("route", route)) }
        if let connection { query.append(("connection", String(connection))) }
        if let client { query.append(("client", client)) }
        if let payload { query.append(("payload", payload.rawValue)) }

        let colors = TapTerminalView.wantsColors(isTerminal: isatty(STDOUT_FILENO) == 1, noColor: ProcessInfo.processInfo.environment["NO_COLOR"])
        let view = TapTerminalView(colors: colors)
        let quiet = self.quiet
        let state = NIOLockedValueBox(State(har: self.har == nil ? nil : TapHAR()))
        let group = MultiThreadedEventLoopGroup.singleton
        let stream: TapStream
        do {
            stream = try await TapClient.open(admin, query: query, token: token, group: group) { buffer in
                state.withLockedValue { state in
                    for line in state.splitter.append(buffer.readableBytesView) {
                        Self.handle(line, state: &state, view: view, quiet: quiet)
                    }
                }
            }
        } catch {
            printError("wsgate tap: \(TapClient.target(admin, query: query)) on \(admin.host):\(admin.port): \(error)")
            throw ExitCode(1)
        }
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let sources = [SIGINT, SIGTERM].map { DispatchSource.makeSignalSource(signal: $0) }
        // Set when the user stops the stream: the connection error that closing causes is no failure.
        let stopped = NIOLockedValueBox(false)
        for source in sources {
            source.setEventHandler {
                stopped.withLockedValue { $0 = true }
                Task { await stream.close() }
            }
            source.resume()
        }
        defer { for source in sources { source.cancel() } }
        // Said once Ctrl-C is trapped (scripts and tests wait for this line, then signal): a signal
        // between `signal(_, SIG_IGN)` and the sources' resume was lost, and tap never exited.
        printError("wsgate tap: streaming http://\(admin.host):\(admin.port)\(TapClient.target(admin, query: query)) (Ctrl-C to stop)")
        var failure: (any Error)?
        do {
            try await stream.finished.get()
        } catch {
            failure = error
        }
        await stream.close()

        let (summary, harData, counts) = state.withLockedValue { state in
            if let last = state.splitter.finish() { Self.handle(last, state: &state, view: view, quiet: quiet) }
            return (view.summary(decoder: state.decoder, splitter: state.splitter), state.har?.json(), state.har?.counts)
        }
        if let summary { printError(summary) }
        if let path = self.har, let harData {
            do {
                try harData.write(to: URL(fileURLWithPath: path))
                let (connections, messages) = counts ?? (0, 0)
                printError(
                    "wsgate tap: wrote \(path) (\(connections) connection\(connections == 1 ? "" : "s"), \(messages) message\(messages == 1 ? "" : "s"))"
                )
            } catch {
                printError("wsgate tap: cannot write \(path): \(error)")
                throw ExitCode(1)
            }
        }
        if let failure, !stopped.withLockedValue({ $0 }) {
            printError("wsgate tap: the stream failed: \(failure)")
            throw ExitCode(1)
        }
    }

    private static func handle(_ line: [UInt8], state: inout State, view: TapTerminalView, quiet: Bool) {
        guard let event = state.decoder.decode(line) else { return }
        state.har?.add(event)
        if !quiet { printLine(view.line(event)) }
    }
}
