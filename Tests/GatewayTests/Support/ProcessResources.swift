import Foundation
import TestPeers

/// What this process holds, for the fault tests' "back to baseline" checks (Linux `/proc/self`).
enum ProcessResources {
    /// Open socket descriptors (`/proc/self/fd/*` that link to `socket:[…]`): listeners and every
    /// connection of the in-process gateway and upstreams. Pipes and files the test harness opens (a
    /// child process's output) are not counted, so the baseline does not move with them.
    static func openSockets() -> Int {
        let directory = "/proc/self/fd"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return -1 }
        return entries.reduce(0) { count, entry in
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/\(entry)")) ?? ""
            return count + (target.hasPrefix("socket:") ? 1 : 0)
        }
    }

    /// Resident set size in bytes (`/proc/self/statm`, second field, in pages).
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return -1 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return -1 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`): for cost bounds on synchronous
    /// work, which a loaded machine does not inflate as it does wall-clock time.
    static func threadCPUTime() -> Duration {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return .seconds(time.tv_sec) + .nanoseconds(time.tv_nsec)
    }

    /// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
    static func settle(within timeout: Duration, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    /// The fault tests' scale: `WSGATE_FAULT_SCALE` (default 1) multiplies connection counts, so the
    /// catalog's sizes (1,000 resets, 20,000 aborts) run by hand with the same tests.
    static var faultScale: Int {
        max(1, Int(ProcessInfo.processInfo.environment["WSGATE_FAULT_SCALE"] ?? "") ?? 1)
    }
}

/// `scripts/test-peers/storm.py` (fault storms: resets, TLS aborts) run by the provisioned Python.
enum Storm {
    static let script = TestPeers.packageRoot.appendingPathComponent("scripts/test-peers/storm.py").path

    /// Runs one storm and returns its outcome counts (the JSON line it prints last).
    static func run(_ mode: String, port: Int, _ arguments: [String] = [], timeout: Duration = .seconds(90)) async throws -> [String: Int] {
        let result = try await runPython([Self.script, mode, "--port", "\(port)"] + arguments, timeout: timeout)
        guard result.status == 0,
            let line = result.output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
            let counts = try? JSONDecoder().decode([String: Int].self, from: Data(line.utf8))
        else {
            throw PeerError("storm \(mode) failed (status \(result.status)): \(result.output.suffix(2000))")
        }
        return counts
    }
}
