import Foundation

/// Where the tests find their external peers: the Python interpreter of the virtual environment that
/// `scripts/provision-test-peers` makes (`.build/test-peers`, packages in `scripts/test-peers/`), and
/// programs from Debian packages (Chromium, HAProxy, OpenSSL) that `scripts/test` installs as root.
///
/// Every Python peer runs this interpreter, never the `python3` on `PATH`, so a test meets the pinned
/// packages whatever the machine has. When the environment is missing or its requirements changed, the
/// first call provisions it (once per test process, under the script's lock), so `swift test` by hand
/// works as well as `scripts/test`.
public enum TestPeers {
    /// The package's root directory (this file is `Tests/TestPeers/TestPeers.swift`).
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The virtual environment (`WSGATE_TEST_PEERS`, else `.build/test-peers`).
    public static var environment: URL {
        if let explicit = ProcessInfo.processInfo.environment["WSGATE_TEST_PEERS"], !explicit.isEmpty {
            return URL(fileURLWithPath: explicit)
        }
        return self.packageRoot.appendingPathComponent(".build/test-peers")
    }

    /// The provisioned `python3`, provisioning it first if needed; or why there is none.
    public static func python() throws(TestPeerError) -> String {
        try self.provisionedPython.get()
    }

    /// Runs `scripts/provision-test-peers python` once per process (it returns at once when the
    /// environment is current). Blocking is fine here: it happens once, before any peer starts. With
    /// `WSGATE_SKIP_PYTHON=1` nothing is provisioned: an environment already there is still used.
    private static let provisionedPython: Result<String, TestPeerError> = {
        let python = TestPeers.environment.appendingPathComponent("bin/python3").path
        let script = TestPeers.packageRoot.appendingPathComponent("scripts/provision-test-peers").path
        if ProcessInfo.processInfo.environment["WSGATE_SKIP_PYTHON"] == "1" {
            guard FileManager.default.isExecutableFile(atPath: python) else {
                return .failure(TestPeerError("no provisioned Python at \(python) (WSGATE_SKIP_PYTHON=1: not provisioned)"))
            }
            return .success(python)
        }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-provision-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: log) }
        do {
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let handle = try FileHandle(forWritingTo: log)
            defer { try? handle.close() }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = [script, "python"]
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            process.waitUntilExit()
            let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            guard process.terminationStatus == 0 else {
                return .failure(TestPeerError("the Python test peers could not be provisioned (\(script) python): \(output)"))
            }
            if !output.isEmpty { print(output, terminator: "") }
        } catch {
            return .failure(TestPeerError("cannot run \(script): \(error)"))
        }
        guard FileManager.default.isExecutableFile(atPath: python) else {
            return .failure(TestPeerError("\(script) left no \(python)"))
        }
        return .success(python)
    }()

    /// A program from a Debian package (`chromium`, `haproxy`, `openssl`): the first of `names` on
    /// `PATH` or in the system directories (`haproxy` is in `/usr/sbin`, often not on a user's `PATH`).
    /// Missing: an error that says how to install it.
    public static func executable(_ names: String..., package: String) throws(TestPeerError) -> String {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        let directories = path + ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        for name in names {
            if name.hasPrefix("/") {
                if FileManager.default.isExecutableFile(atPath: name) { return name }
                continue
            }
            for directory in directories where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
                return "\(directory)/\(name)"
            }
        }
        throw TestPeerError(
            "\(names.joined(separator: " or ")) is not installed: scripts/test installs it when run as root "
                + "(or: apt-get install -y \(package))"
        )
    }
}

/// Why a peer is not available, with what to do about it.
public struct TestPeerError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
