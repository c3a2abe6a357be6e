import Foundation
import TestPeers
import Testing

/// An independent WebSocket peer in Python (`websockets`, `aiohttp`, `picows`), run as a child process
/// with a bounded lifetime by the provisioned interpreter (``TestPeers/python()``, never the `python3`
/// on `PATH`). If it cannot be provisioned or lacks the package the test fails and says why, unless
/// `WSGATE_SKIP_PYTHON=1` is set, in which case it says loudly that it skipped.
final class PythonPeer: @unchecked Sendable {
    let process = Process()
    private let stdout = Pipe()
    private let stderr = Pipe()
    /// What was read from stdout past the line ``firstLine(timeout:)`` returned, for ``finish(timeout:)``.
    private var unread = Data()

    /// Checks that the provisioned python3 can import `module`. If not, the test fails and says what to
    /// do, unless `WSGATE_SKIP_PYTHON=1` is set: then it prints a banner and cancels the test (reported as
    /// skipped).
    static func require(_ module: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Bool {
        let why: String
        do {
            let probe = try await runPython(["-c", "import \(module)"], timeout: .seconds(30))
            guard probe.status != 0 else { return true }
            why = "the provisioned python3 cannot import \(module) (is it in scripts/test-peers/requirements.txt?): \(probe.output)"
        } catch let error as TestPeerError {
            why = error.description
        }
        if ProcessInfo.processInfo.environment["WSGATE_SKIP_PYTHON"] == "1" {
            print(
                """
                ************************************************************************
                SKIPPED: \(why). WSGATE_SKIP_PYTHON=1 is set, so this does not fail.
                ************************************************************************
                """
            )
            try Test.cancel("WSGATE_SKIP_PYTHON=1 and \(why)")
        }
        Issue.record("\(why); or set WSGATE_SKIP_PYTHON=1 to skip loudly", sourceLocation: sourceLocation)
        return false
    }

    /// Starts the provisioned `python3 -c script args…`.
    init(script: String, arguments: [String] = []) throws {
        self.process.executableURL = URL(fileURLWithPath: try TestPeers.python())
        self.process.arguments = ["-u", "-c", script] + arguments
        self.process.standardOutput = self.stdout
        self.process.standardError = self.stderr
        try self.process.run()
    }

    /// The first line the script prints (a port, say), within `timeout`; what came with it stays for
    /// ``finish(timeout:)``.
    func firstLine(timeout: Duration = .seconds(30)) async throws -> String {
        let handle = self.stdout.fileHandleForReading
        let deadline = ContinuousClock.now + timeout
        var data = Data()
        while ContinuousClock.now < deadline {
            let chunk = handle.availableDataOrEOF()
            if let chunk, !chunk.isEmpty {
                data.append(chunk)
                if let newline = data.firstIndex(of: 10) {
                    self.unread = Data(data[data.index(after: newline)...])
                    return String(decoding: data[..<newline], as: UTF8.self)
                }
            } else if !self.process.isRunning {
                break
            } else {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        throw PeerError("no line from python within \(timeout): \(self.errorOutput())")
    }

    /// Waits for the script to exit within `timeout` (a bound for a hang: the scripts bound their own
    /// steps); returns its exit status and all output.
    func finish(timeout: Duration = .seconds(60)) async throws -> (status: Int32, output: String) {
        let deadline = ContinuousClock.now + timeout
        while self.process.isRunning {
            if ContinuousClock.now >= deadline {
                self.stop()
                throw PeerError("python did not finish within \(timeout): \(self.errorOutput())")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let out = String(decoding: self.unread + self.stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (self.process.terminationStatus, out + self.errorOutput())
    }

    func errorOutput() -> String {
        guard !self.process.isRunning else { return "(still running)" }
        return String(decoding: self.stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    /// SIGKILL, not `Process.terminate()`'s SIGTERM: the child inherits the test runner's blocked signal
    /// mask (SIGTERM included), so a SIGTERM stays pending and a peer that serves until killed (the
    /// forward-auth service) outlived every test run.
    func stop() {
        if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
    }

    deinit { self.stop() }
}

struct PeerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension FileHandle {
    /// Non-blocking read of what is available (nil when nothing is).
    fileprivate func availableDataOrEOF() -> Data? {
        var poll = pollfd(fd: self.fileDescriptor, events: Int16(POLLIN), revents: 0)
        guard Glibc.poll(&poll, 1, 0) > 0 else { return nil }
        return self.availableData
    }
}

/// Runs the provisioned `python3 arguments…` (``TestPeers/python()``) with its output captured, killing
/// it after `timeout`.
func runPython(_ arguments: [String], timeout: Duration) async throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try TestPeers.python())
    process.arguments = arguments
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-python-\(UUID().uuidString).log")
    _ = FileManager.default.createFile(atPath: output.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: output) }
    let handle = try FileHandle(forWritingTo: output)
    defer { try? handle.close() }
    process.standardOutput = handle
    process.standardError = handle
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = ContinuousClock.now + timeout
    while process.isRunning {
        if ContinuousClock.now >= deadline {
            kill(process.processIdentifier, SIGKILL)  // SIGTERM is blocked in the child (see PythonPeer.stop)
            process.waitUntilExit()
            let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
            return (-1, "timed out after \(timeout); output: \(text)")
        }
        try await Task.sleep(for: .milliseconds(20))
    }
    let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
    return (process.terminationStatus, text)
}
