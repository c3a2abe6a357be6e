import Foundation
import Testing

/// The dashboard (issue #14 §3) and `wsgate tap` (§2) end to end, against `wsgate` with no configuration
/// (the built executable, the embedded default on ephemeral ports): headless Chromium loads the admin
/// listener's `/` (``DashboardPage``); a WebSocket the test opens to the demo's `/echo` appears in the
/// live connections, its frames (a payload of HTML markup) appear in the tap view as text with direction
/// arrows, the counters and close codes follow, and the row disappears when the test closes it. A
/// screenshot is saved (its path printed). Meanwhile `wsgate tap --har FILE` streams the same traffic:
/// its terminal lines and, after SIGINT, its HAR file are checked.
///
/// Without Chromium the test fails, or with `WSGATE_SKIP_BROWSER=1` is skipped loudly
/// (``ChromiumTests/requireChromium(sourceLocation:)``); without a built `wsgate` it is skipped loudly
/// (``WSGateProcess/require(sourceLocation:)``).
@Suite(.timeLimit(.minutes(3)), .serialized) struct DashboardChromiumTests {
    @Test func theDashboardShowsATestConnectionItsFramesAndItsCloseAndTapRecordsAHAR() async throws {
        guard let chromium = try ChromiumTests.requireChromium(), try WSGateProcess.require(),
            try await PythonPeer.require("websockets")
        else { return }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-dashboard-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory.appendingPathComponent("profile")) }

        let gateway = try WSGateProcess(["--port", "0", "--tls-port", "0", "--admin-port", "0"])
        try await gateway.waitFor("the banner") { out, _ in out.contains("Stop with Ctrl-C.") }
        let banner = gateway.output.split(separator: "\n")
        let echo = try #require(banner.lazy.compactMap { $0.split(separator: " ").first { $0.hasPrefix("ws://") && $0.hasSuffix("/echo") } }.first)
        let healthz = try #require(banner.lazy.compactMap { $0.split(separator: " ").first { $0.hasSuffix("/healthz") } }.first)
        let admin = String(healthz.dropLast("/healthz".count))

        let har = directory.appendingPathComponent("tap.har").path
        let tap = try WSGateProcess(["tap", "--admin", admin, "--har", har])
        try await tap.waitFor("wsgate tap to stream") { _, errors in errors.contains("wsgate tap: streaming") }

        let screenshot = directory.appendingPathComponent("dashboard.png").path
        let run = try await ChromiumDriver.run(
            Self.scenario,
            chromium: chromium,
            arguments: [admin + "/", String(echo), directory.appendingPathComponent("profile").path, screenshot],
            timeout: .seconds(100)
        )
        ChromiumDriver.expectDone(run)
        print("dashboard screenshot: \(screenshot)")
        #expect(FileManager.default.fileExists(atPath: screenshot))

        // wsgate tap saw the same frames; on SIGINT it writes the HAR and exits 0.
        try await tap.waitFor("the echoed frame in wsgate tap's output") { out, _ in out.contains("←  text") }
        tap.signal(SIGINT)
        let exit = try await tap.waitForExit(timeout: .seconds(10))
        #expect(exit.reason == .exit && exit.status == 0, "\(exit) \(tap.errors)")
        let lines = tap.output.split(separator: "\n")
        #expect(lines.contains { $0.contains(" open ") && $0.contains("GET /echo?probe=dashboard") }, "\(tap.output)")
        #expect(lines.contains { $0.contains("→  text") && $0.hasSuffix(Self.payload) }, "\(tap.output)")
        #expect(lines.contains { $0.contains("←  text") && $0.hasSuffix(Self.payload) }, "\(tap.output)")
        #expect(lines.contains { $0.contains(" close  1000") }, "\(tap.output)")
        #expect(!tap.output.contains("\u{1B}["), "no colours when standard output is not a terminal")
        #expect(tap.errors.contains("wrote \(har) (1 connection, 2 messages)"), "\(tap.errors)")

        let document = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: har))) as? [String: Any]
        let entries = try #require((document?["log"] as? [String: Any])?["entries"] as? [[String: Any]])
        #expect(entries.count == 1)
        let entry = try #require(entries.first)
        #expect(entry["_resourceType"] as? String == "websocket")
        #expect(((entry["request"] as? [String: Any])?["url"] as? String)?.hasSuffix("/echo?probe=dashboard") == true)
        let messages = try #require(entry["_webSocketMessages"] as? [[String: Any]])
        #expect(messages.map { $0["type"] as? String } == ["send", "receive"])
        #expect(messages.map { $0["opcode"] as? Int } == [1, 1])
        #expect(messages.map { $0["data"] as? String } == [Self.payload, Self.payload])

        gateway.signal(SIGTERM)
        _ = try await gateway.waitForExit(timeout: .seconds(15))
    }

    /// With `admin.token_file`: the page loads without the token (a browser cannot send one when it
    /// navigates) and says it needs one; opened as `/#token=…` it shows the live connections. `wsgate tap`
    /// without the token is refused with the gateway's 401, with `--token-file` it streams.
    @Test func withATokenTheDashboardAndTapUseTheBearerToken() async throws {
        guard let chromium = try ChromiumTests.requireChromium(), try WSGateProcess.require(),
            try await PythonPeer.require("websockets")
        else { return }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-dashboard-token-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let token = "t0ken-\(UUID().uuidString)"
        try (token + "\n").write(to: directory.appendingPathComponent("token"), atomically: true, encoding: .utf8)
        let listenerPort = try await freeLoopbackPort()
        let adminPort = try await freeLoopbackPort()
        try await withDemo { demo in
            let config = """
                listeners:
                  - name: plain
                    address: 127.0.0.1:\(listenerPort)
                routes:
                  - upstreams: ["ws://127.0.0.1:\(demo.port)"]
                admin:
                  address: 127.0.0.1:\(adminPort)
                  token_file: token
                access_log: off
                """
            try config.write(to: directory.appendingPathComponent("wsgate.yaml"), atomically: true, encoding: .utf8)
            let gateway = try WSGateProcess(["run", "-c", directory.appendingPathComponent("wsgate.yaml").path])
            try await gateway.waitFor("the admin banner") { out, _ in out.contains("wsgate: admin on") }
            let admin = "http://127.0.0.1:\(adminPort)"

            let refused = try WSGateProcess(["tap", "--admin", admin])
            let refusedExit = try await refused.waitForExit(timeout: .seconds(10))
            #expect(refusedExit.status == 1 && refused.errors.contains("401"), "\(refused.errors)")
            let tap = try WSGateProcess(["tap", "--admin", admin, "--token-file", directory.appendingPathComponent("token").path])
            try await tap.waitFor("wsgate tap to stream with the token") { _, errors in errors.contains("wsgate tap: streaming") }
            tap.signal(SIGINT)
            #expect(try await tap.waitForExit(timeout: .seconds(10)).status == 0, "\(tap.errors)")

            let run = try await ChromiumDriver.run(
                Self.tokenScenario,
                chromium: chromium,
                arguments: [admin + "/", token, "ws://127.0.0.1:\(listenerPort)/echo", directory.appendingPathComponent("profile").path],
                timeout: .seconds(90)
            )
            ChromiumDriver.expectDone(run)
            gateway.signal(SIGTERM)
            _ = try await gateway.waitForExit(timeout: .seconds(15))
        }
    }

    /// `python3 -c LIBRARY+scenario CHROMIUM DASHBOARD_URL TOKEN ECHO_URL PROFILE`.
    static let tokenScenario = #"""
        from websockets.sync.client import connect
        chromium, dashboard, token, echo_url, profile = sys.argv[1:6]
        browser = Browser(chromium, profile, [], time.monotonic() + 70)
        bare = browser.open("without token", dashboard)
        bare.wait("without the token the page says it needs one", "document.getElementById('status').className === 'error' && document.getElementById('status').textContent.includes('#token=')", 15)
        page = browser.open("with token", dashboard + "#token=" + token)
        page.wait("with #token= the page polls", "document.getElementById('status').textContent.includes('with a bearer token')", 15)
        ws = connect(echo_url, open_timeout=10, compression=None)
        row = "document.querySelector('#connection-rows tr[data-client$=\":%d\"]')" % ws.socket.getsockname()[1]
        page.wait("a connection appears", "!!%s" % row, 10)
        page.eval("%s.querySelector('button.tap').click(); true" % row)
        page.wait("the tap attaches with the token", "document.getElementById('tap-state').textContent.startsWith('Tapping connection')", 10)
        ws.close()
        page.wait("the connection disappears", "!%s" % row, 10)
        browser.close()
        print("DONE", flush=True)
        """#

    /// Attacker-controlled text: it must show as text, and its handler must never run.
    static let payload = #"<img src=x onerror="window.pwned=1">hello"#

    /// `python3 -c LIBRARY+scenario CHROMIUM DASHBOARD_URL ECHO_URL PROFILE SCREENSHOT`.
    static let scenario = #"""
        from websockets.sync.client import connect
        chromium, dashboard, echo_url, profile, screenshot = sys.argv[1:6]
        payload = '<img src=x onerror="window.pwned=1">hello'
        browser = Browser(chromium, profile, [], time.monotonic() + 80)
        page = browser.open("dashboard", dashboard)
        page.wait("the dashboard polls the admin API", "document.getElementById('status').textContent.startsWith('Updated')", 15)
        # No permessage-deflate offer: the frames are tapped as the client sent them, as text.
        ws = connect(echo_url + "?probe=dashboard", open_timeout=10, close_timeout=10, compression=None)
        row = "document.querySelector('#connection-rows tr[data-client$=\":%d\"]')" % ws.socket.getsockname()[1]
        connection = page.wait("the test's connection appears", "%s && %s.dataset.id" % (row, row), 10)
        page.eval("%s.querySelector('button.tap').click(); true" % row)
        page.wait("the tap of that connection is attached", "document.getElementById('tap-state').textContent.startsWith('Tapping connection %s')" % connection, 10)
        ws.send(payload)
        if ws.recv(timeout=10) != payload: fail("the echo", "another message came back")
        FRAMES = "[...document.querySelectorAll('#tap-rows tr[data-kind=frame]')].map(r => r.querySelector('.arrow').textContent + ' ' + r.querySelector('.payload').textContent)"
        page.wait("both frames appear in the tap view as text with arrows", "%s.includes(%s) && %s.includes(%s)" % (FRAMES, json.dumps("→ " + payload), FRAMES, json.dumps("← " + payload)), 10)
        page.wait("the markup is text: no img element, its handler never ran", "!document.querySelector('img') && window.pwned === undefined", 5)
        page.wait("the connection's live counters show one message each way", "%s && [...%s.querySelectorAll('td.n')].map(c => c.textContent)[0] === '1' && [...%s.querySelectorAll('td.n')].map(c => c.textContent)[2] === '1'" % (row, row, row), 10)
        page.wait("the route's counters", "document.getElementById('route-rows').textContent.includes('ws')", 10)
        page.screenshot(screenshot)
        ok("screenshot " + screenshot)
        ws.close()
        page.wait("the connection disappears when closed", "!%s" % row, 10)
        page.wait("the tap view shows the close", "!!document.querySelector('#tap-rows tr[data-kind=close]')", 10)
        page.wait("the close code is counted", "document.getElementById('close-rows').textContent.includes('1000')", 10)
        browser.close()
        print("DONE", flush=True)
        """#
}
