import Foundation
import Testing

@testable import Gateway

/// `admin.token_file` in the `wsgate run` process (issue #14): the token guards the connections
/// endpoints and not the probes, SIGHUP reads the file again, and an admin listener off loopback without
/// a token is warned about at start.
@Suite(.serialized, .timeLimit(.minutes(2))) struct AdminTokenTests {
    static func config(port: Int, adminHost: String, adminPort: Int, tokenFile: String?) -> String {
        """
        listeners:
          - address: 127.0.0.1:\(port)
        routes:
          - path: /
            upstreams: [ws://127.0.0.1:9]
        access_log: off
        admin:
          address: \(adminHost):\(adminPort)
        \(tokenFile.map { "  token_file: \($0)" } ?? "")
        """
    }

    static func get(_ port: Int, _ path: String, token: String?) async throws -> Int {
        var request = "GET \(path) HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n"
        if let token { request += "Authorization: Bearer \(token)\r\n" }
        return try await TestWebSocketClient.rawHandshake(port: port, request: request + "\r\n").status
    }

    @Test func theTokenFromTheFileGuardsTheConnectionsAndSighupReadsItAgain() async throws {
        guard try WSGateProcess.require() else { return }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-admin-token-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let tokenPath = directory.appendingPathComponent("token").path
        try "first-token\n".write(toFile: tokenPath, atomically: true, encoding: .utf8)
        let configPath = directory.appendingPathComponent("wsgate.yaml").path
        let port = try await freeLoopbackPort()
        let adminPort = try await freeLoopbackPort()
        try Self.config(port: port, adminHost: "127.0.0.1", adminPort: adminPort, tokenFile: tokenPath)
            .write(toFile: configPath, atomically: true, encoding: .utf8)

        let gateway = try WSGateProcess(["run", "-c", configPath])
        try await gateway.waitFor("the admin banner") { out, _ in out.contains("wsgate: admin on") }
        #expect(!gateway.errors.contains("without admin.token_file"))
        #expect(try await Self.get(adminPort, "/connections", token: nil) == 401)
        #expect(try await Self.get(adminPort, "/tap", token: "second-token") == 401)
        // The dashboard page holds no data and loads without the token (it sends the token itself).
        #expect(try await Self.get(adminPort, "/", token: nil) == 200)
        #expect(try await Self.get(adminPort, "/connections", token: "first-token") == 200)
        #expect(try await Self.get(adminPort, "/metrics", token: nil) == 200)
        #expect(try await Self.get(adminPort, "/readyz", token: nil) == 200)

        try "second-token\n".write(toFile: tokenPath, atomically: true, encoding: .utf8)
        gateway.signal(SIGHUP)
        try await gateway.waitFor("the token reload") { _, err in err.contains("admin token reloaded") }
        #expect(try await Self.get(adminPort, "/connections", token: "first-token") == 401)
        #expect(try await Self.get(adminPort, "/connections", token: "second-token") == 200)

        // A file that cannot be read keeps the token in force (the guard never falls open).
        try FileManager.default.removeItem(atPath: tokenPath)
        gateway.signal(SIGHUP)
        try await gateway.waitFor("the refused token reload") { _, err in err.contains("admin token not reloaded") }
        #expect(try await Self.get(adminPort, "/connections", token: nil) == 401)
        #expect(try await Self.get(adminPort, "/connections", token: "second-token") == 200)
        gateway.signal(SIGTERM)
        _ = try await gateway.waitForExit(timeout: .seconds(10))
    }

    @Test func anAdminListenerOffLoopbackWithoutATokenIsWarnedAbout() async throws {
        guard try WSGateProcess.require() else { return }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-admin-open-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let configPath = directory.appendingPathComponent("wsgate.yaml").path
        try Self.config(port: try await freeLoopbackPort(), adminHost: "0.0.0.0", adminPort: try await freeLoopbackPort(), tokenFile: nil)
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        let gateway = try WSGateProcess(["run", "-c", configPath])
        try await gateway.waitFor("the warning") { _, err in err.contains("without admin.token_file") }
        gateway.signal(SIGTERM)
        _ = try await gateway.waitForExit(timeout: .seconds(10))
    }
}
