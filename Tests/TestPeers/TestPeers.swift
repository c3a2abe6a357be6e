import Foundation

/// Where the tests find their external peers: the Python interpreter of the virtual environment that
/// `scripts/provision-test-peers` makes (`.build/test-peers`, packages in `scripts/test-peers/`), and
/// programs from Debian packages (Chromium, HAProxy, OpenSSL) that `scripts/test` installs as root.
///
/// Every Python peer runs this interpreter, never the `python3` on `PATH`, so a test meets the pinned
/// packages whatever the machine has. `swift test` by hand works once `scripts/test` (or
/// `scripts/provision-test-peers`) has run; before that, the tests that need a peer fail and say so.
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

    /// The provisioned `python3`, or why there is none.
    public static func python() throws(TestPeerError) -> String {
        try self.provisionedPython.get()
    }

    /// Checks once per process that the environment exists and was made from the current
    /// `requirements.txt` (the script keeps a copy as `.requirements`). It does not provision: pip
    /// downloads take from seconds to minutes, which would run inside some suite's time limit and fail
    /// it there (tried: a 60 s suite timed out while pip ran); `scripts/test` provisions before the build.
    private static let provisionedPython: Result<String, TestPeerError> = {
        let environment = TestPeers.environment
        let python = environment.appendingPathComponent("bin/python3").path
        let requirements = TestPeers.packageRoot.appendingPathComponent("scripts/test-peers/requirements.txt")
        let stamp = environment.appendingPathComponent(".requirements")
        let remedy = "run scripts/provision-test-peers python (scripts/test does), or set WSGATE_SKIP_PYTHON=1 to skip these tests loudly"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            return .failure(TestPeerError("the Python test peers are not provisioned (no \(python)): \(remedy)"))
        }
        guard let wanted = FileManager.default.contents(atPath: requirements.path),
            FileManager.default.contents(atPath: stamp.path) == wanted
        else {
            return .failure(TestPeerError("\(requirements.path) changed since \(environment.path) was made: \(remedy)"))
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
