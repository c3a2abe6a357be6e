import Foundation
import Testing

@testable import Gateway

/// File-descriptor exhaustion (RELIABILITY R-12) on the real process: `wsgate run` with a low
/// `RLIMIT_NOFILE` (`ulimit -n 64`, set by the shell that execs it) and
/// more connections than it has descriptors for.
@Suite(.serialized, .timeLimit(.minutes(2))) struct FDExhaustionTests {
    static func config(port: Int, adminPort: Int, upstreamPort: Int) -> String {
        """
        listeners:
          - address: 127.0.0.1:\(port)
        routes:
          - path: /
            upstreams: [ws://127.0.0.1:\(upstreamPort)]
        access_log: off
        admin:
          address: 127.0.0.1:\(adminPort)
        timeouts:
          request_head: 60s
          drain: 2s
        """
    }

    static let fileLimit = 64

    /// CPU time (user + system) of process `pid` so far, in seconds (`/proc/PID/stat` fields 14 and 15).
    static func cpuSeconds(_ pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return -1 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command name: field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return -1 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func openDescriptors(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// A blocking loopback TCP connection that sends nothing (the kernel completes it into the
    /// listener's backlog whether or not the gateway can accept it); -1 if it failed.
    static func rawConnection(port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return -1
        }
        return fd
    }

    /// Catalog R-12: out of descriptors, accept errors back off (CPU < 5 % of a core while saturated, no log flood, no exit), existing sessions keep working, and accepting resumes within about a second of descriptors being freed; each pause is counted (`wsgate_accept_errors_total`) and logged once a minute with its errno.
    @Test func acceptErrorsBackOffAndTheGatewayRecoversWhenDescriptorsFree() async throws {
        guard try WSGateProcess.require() else { return }
        try await withDemo { demo in
            let port = try await freeLoopbackPort()
            let adminPort = try await freeLoopbackPort()
            let configPath = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-r12-\(UUID().uuidString).yaml").path
            defer { try? FileManager.default.removeItem(atPath: configPath) }
            try Self.config(port: port, adminPort: adminPort, upstreamPort: demo.port).write(toFile: configPath, atomically: true, encoding: .utf8)
            // `ulimit -n 64`: the process starts with about 20 descriptors (listeners, event loops).
            let gateway = try WSGateProcess(["run", "-c", configPath], fileLimit: Self.fileLimit)
            try await gateway.waitFor("the admin banner") { out, _ in out.contains("wsgate: admin on") }
            let pid = gateway.process.processIdentifier

            // An established session (two descriptors) before the gateway runs out.
            let existing = try await TestWebSocketClient.connect(port: port, path: "/echo")
            try await existing.send(text: "before")
            #expect(try await existing.receiveMessage() == .text("before"))
            let limit = Self.fileLimit
            #expect(Self.openDescriptors(pid) < limit - 16, "\(Self.openDescriptors(pid)) descriptors open at start")

            // More connections than descriptors left: the gateway accepts until EMFILE, the rest wait
            // in the listener's backlog.
            var held: [Int32] = []
            defer { for fd in held where fd >= 0 { close(fd) } }
            for _ in 0..<Self.fileLimit { held.append(Self.rawConnection(port: port)) }
            #expect(held.allSatisfy { $0 >= 0 })
            let saturated = await ProcessResources.settle(within: .seconds(5)) { Self.openDescriptors(pid) >= limit - 1 }
            #expect(saturated, "the gateway holds \(Self.openDescriptors(pid)) descriptors of \(limit)")

            // Saturated: no busy loop (CPU under 5 % of a core over 3 s; a loop retrying accept would
            // take all of one) and no flood of log lines. Measured once the last accepts are set up.
            try await Task.sleep(for: .milliseconds(500))
            let stderrBefore = gateway.errors.utf8.count
            let cpuBefore = Self.cpuSeconds(pid)
            try await Task.sleep(for: .seconds(3))
            let cpu = Self.cpuSeconds(pid) - cpuBefore
            #expect(cpu >= 0 && cpu < 0.15, "gateway CPU while saturated: \(cpu) s in 3 s")
            #expect(gateway.errors.utf8.count - stderrBefore < 4096, "log output while saturated: \(gateway.errors.suffix(2000))")
            // One pause a second, but one log line (a minute's worth), naming the errno and the pause.
            let pauseLines = gateway.errors.split(separator: "\n").filter { $0.contains("accept failed, listener paused") }
            #expect(pauseLines.count == 1, "\(pauseLines)")
            #expect(pauseLines.first?.contains("error=EMFILE") == true && pauseLines.first?.contains("pause=1000ms") == true, "\(pauseLines)")
            #expect(gateway.process.isRunning)
            // The admin listener, out of descriptors too, pauses and logs the same way (listener=admin).
            for _ in 0..<2 { held.append(Self.rawConnection(port: adminPort)) }
            try await gateway.waitFor("the admin listener's pause line", timeout: .seconds(10)) { _, err in
                err.split(separator: "\n").contains { $0.contains("accept failed, listener paused") && $0.contains("listener=admin") }
            }

            // The existing session is unaffected.
            try await existing.send(text: "during")
            #expect(try await existing.receiveMessage() == .text("during"))

            // Free the descriptors: a new upgrade succeeds within about a second (NIO's accept backoff
            // is 1 s) plus the time to accept and close what waited in the backlog.
            for fd in held { close(fd) }
            held.removeAll()
            let freed = ContinuousClock.now
            // One attempt: it waits in the backlog until the next accept after the backoff.
            let client = try await TestWebSocketClient.connect(port: port, path: "/echo", timeout: .seconds(10))
            let recovery = ContinuousClock.now - freed
            // The pause's length (1 s) is pinned under virtual time (AcceptBackoffTests); here, that
            // accepting resumes at all, long before the client's 10 s: a loaded machine takes seconds to
            // accept and close the ~60 connections that waited, so the bound is not "about a second".
            #expect(recovery < .seconds(8), "recovered after \(recovery)")
            try await client.send(text: "after")
            #expect(try await client.receiveMessage() == .text("after"))
            try await existing.send(text: "still")
            #expect(try await existing.receiveMessage() == .text("still"))
            #expect(gateway.process.isRunning)
            // Every pause was counted (about one a second while saturated).
            let metrics = try await OperationsMetricsTests.get(adminPort, "/metrics").body
            let counted = metrics.split(separator: "\n").first {
                $0.hasPrefix("wsgate_accept_errors_total{") && $0.contains(#"error="EMFILE""#) && !$0.contains(#"listener="admin""#)
            }
            #expect((counted?.split(separator: " ").last.flatMap { Int($0) } ?? 0) >= 2, "\(counted ?? "no wsgate_accept_errors_total")")
            let admin = metrics.split(separator: "\n").first { $0.hasPrefix("wsgate_accept_errors_total{") && $0.contains(#"listener="admin""#) }
            #expect((admin?.split(separator: " ").last.flatMap { Int($0) } ?? 0) >= 1, "\(admin ?? "no admin wsgate_accept_errors_total")")
            try await client.close()
            try await existing.close()
            gateway.signal(SIGTERM)
            #expect(try await gateway.waitForExit(timeout: .seconds(15)).status == 0)
        }
    }
}
