import Foundation
import NIOPosix
import Testing

/// The built `wsgate` executable run as a child process, its output in files (so nothing blocks on a
/// full pipe). Every wait is bounded; the process is killed (SIGKILL, by its pid) if still running at
/// the end.
final class WSGateProcess: @unchecked Sendable {
    let process = Process()
    let stdoutPath: String
    let stderrPath: String

    /// The `wsgate` next to the test bundle (`swift build --build-tests` builds both), or in
    /// `.build/debug` of this package.
    static func executable() -> URL? {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("wsgate"),
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(".build/debug/wsgate"),
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    /// The built executable, or why there is none. (Its age is not checked: an incremental build that
    /// changes nothing does not relink, so an executable older than a touched source may be current.)
    static func builtExecutable() -> Result<URL, PeerError> {
        guard let executable = Self.executable() else {
            return .failure(PeerError("the wsgate executable is not built (run swift build --build-tests first)"))
        }
        return .success(executable)
    }

    /// Whether the process tests can run. Without a current executable they fail under CI (`CI` set:
    /// scripts/test builds it first) and otherwise cancel loudly, so that `swift test` alone still passes.
    static func require(sourceLocation: SourceLocation = #_sourceLocation) throws -> Bool {
        guard case .failure(let why) = Self.builtExecutable() else { return true }
        if ProcessInfo.processInfo.environment["CI"] != nil {
            Issue.record("\(why)", sourceLocation: sourceLocation)
            return false
        }
        print(
            """
            ************************************************************************
            SKIPPED: \(why)
            ************************************************************************
            """
        )
        try Test.cancel("\(why)")
    }

    /// Runs `wsgate arguments…`; with `fileLimit`, under `ulimit -n fileLimit` set by a shell that then
    /// execs it (same process id).
    init(_ arguments: [String], fileLimit: Int? = nil) throws {
        let executable = try Self.builtExecutable().get()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.stdoutPath = directory.appendingPathComponent("stdout").path
        self.stderrPath = directory.appendingPathComponent("stderr").path
        _ = FileManager.default.createFile(atPath: self.stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: self.stderrPath, contents: nil)
        if let fileLimit {
            self.process.executableURL = URL(fileURLWithPath: "/bin/sh")
            self.process.arguments = ["-c", "ulimit -n \(fileLimit) && exec \"$0\" \"$@\"", executable.path] + arguments
        } else {
            self.process.executableURL = executable
            self.process.arguments = arguments
        }
        self.process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: self.stdoutPath))
        self.process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: self.stderrPath))
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_BACKTRACE"] = "enable=no"
        self.process.environment = environment
        try self.process.run()
    }

    var output: String { (try? String(contentsOfFile: self.stdoutPath, encoding: .utf8)) ?? "" }
    var errors: String { (try? String(contentsOfFile: self.stderrPath, encoding: .utf8)) ?? "" }

    /// Waits until `condition(stdout, stderr)` holds.
    func waitFor(_ what: String, timeout: Duration = .seconds(20), _ condition: (String, String) -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition(self.output, self.errors) {
            guard ContinuousClock.now < deadline, self.process.isRunning else {
                throw PeerError("wsgate: \(what) did not happen; stdout: \(self.output) stderr: \(self.errors)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func signal(_ signal: Int32) {
        kill(self.process.processIdentifier, signal)
    }

    /// Waits for the exit and returns the status (the exit code, or the signal for `.uncaughtSignal`).
    func waitForExit(timeout: Duration) async throws -> (status: Int32, reason: Process.TerminationReason) {
        let deadline = ContinuousClock.now + timeout
        while self.process.isRunning {
            guard ContinuousClock.now < deadline else {
                throw PeerError("wsgate did not exit within \(timeout); stderr: \(self.errors)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return (self.process.terminationStatus, self.process.terminationReason)
    }

    deinit {
        if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
    }
}

/// A loopback port nothing listens on right now (bound, then released).
func freeLoopbackPort() async throws -> Int {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
    let port = channel.localAddress!.port!
    try await channel.close()
    return port
}
