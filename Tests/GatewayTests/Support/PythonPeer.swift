import Foundation
import Testing

/// An independent WebSocket peer in Python (`websockets`, `aiohttp`), run as a child process with a
/// bounded lifetime. If Python or the package is missing the test fails with what to install, unless
/// `WSGATE_SKIP_PYTHON=1` is set, in which case it says loudly that it skipped.
final class PythonPeer: @unchecked Sendable {
    let process = Process()
    private let stdout = Pipe()
    private let stderr = Pipe()

    /// Whether python3 with `module` is available; records an issue (or prints the skip) if not.
    static func available(_ module: String, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import \(module)"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        let ok = (try? probe.run()).map { probe.waitUntilExit(); return probe.terminationStatus == 0 } ?? false
        if ok { return true }
        if ProcessInfo.processInfo.environment["WSGATE_SKIP_PYTHON"] == "1" {
            print("⚠️  SKIPPED: python3 module '\(module)' is missing and WSGATE_SKIP_PYTHON=1 (pip install \(module))")
        } else {
            Issue.record("python3 module '\(module)' is missing: pip install \(module) (or set WSGATE_SKIP_PYTHON=1 to skip)", sourceLocation: sourceLocation)
        }
        return false
    }

    /// Starts `python3 -c script args…`.
    init(script: String, arguments: [String] = []) throws {
        self.process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        self.process.arguments = ["python3", "-u", "-c", script] + arguments
        self.process.standardOutput = self.stdout
        self.process.standardError = self.stderr
        try self.process.run()
    }

    /// The first line the script prints (a port, say), within `timeout`.
    func firstLine(timeout: Duration = .seconds(10)) async throws -> String {
        let handle = self.stdout.fileHandleForReading
        let deadline = ContinuousClock.now + timeout
        var data = Data()
        while ContinuousClock.now < deadline {
            let chunk = handle.availableDataOrEOF()
            if let chunk, !chunk.isEmpty {
                data.append(chunk)
                if let newline = data.firstIndex(of: 10) {
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

    /// Waits for the script to exit within `timeout`; returns its exit status and all output.
    func finish(timeout: Duration = .seconds(30)) async throws -> (status: Int32, output: String) {
        let deadline = ContinuousClock.now + timeout
        while self.process.isRunning {
            if ContinuousClock.now >= deadline {
                self.process.terminate()
                throw PeerError("python did not finish within \(timeout): \(self.errorOutput())")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let out = String(decoding: self.stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (self.process.terminationStatus, out + self.errorOutput())
    }

    func errorOutput() -> String {
        guard !self.process.isRunning else { return "(still running)" }
        return String(decoding: self.stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    func stop() {
        if self.process.isRunning { self.process.terminate() }
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
