import Foundation
import NIOPosix
import Testing

@testable import Gateway

/// The seed's scenario in a real browser (issue #14 §4): the demo chat page (``DemoChatPage``, its own
/// JavaScript) in two headless Chromium pages, over `wss` through the embedded default's `/chat`
/// (``EmbeddedDefault/configuration(upstreamPort:identity:port:tlsPort:adminPort:)`` on ephemeral ports
/// in front of the demo upstream). Two people join with names, each sees both names online, messages go
/// both ways (a message with markup shows as text), one page closes and the other's list updates.
///
/// The page is served over HTTPS (the gateway refuses an `http:` page on its TLS listener, a browser an
/// `https:` page to `ws:`) by a Python `http.server` with the gateway's own self-signed certificate,
/// which Chromium trusts by its SPKI pin, as in ``ChromiumTests``. Every step has a deadline; a step
/// that does not happen fails the test and names the step. Without Chromium the test fails, or with
/// `WSGATE_SKIP_BROWSER=1` is skipped loudly (``ChromiumTests/requireChromium(sourceLocation:)``).
@Suite(.timeLimit(.minutes(3)), .serialized) struct ChromiumChatTests {
    @Test func twoPagesChatOverWSSAndSeeEachOtherJoinAndLeave() async throws {
        guard let chromium = try ChromiumTests.requireChromium(), try await PythonPeer.require("ssl") else { return }
        let identity = try EmbeddedDefault.makeIdentity()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-chat-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cert = directory.appendingPathComponent("cert.pem")
        try identity.certificatePEM.write(to: cert, atomically: true, encoding: .utf8)
        try identity.privateKeyPEM.write(to: directory.appendingPathComponent("key.pem"), atomically: true, encoding: .utf8)
        try DemoChatPage.html.write(to: directory.appendingPathComponent("chat.html"), atomically: true, encoding: .utf8)
        let pages = try PythonPeer(script: ChromiumTests.pageServer, arguments: [directory.path, "tls"])
        defer { kill(pages.process.processIdentifier, SIGKILL) }
        let origin = "https://localhost:\(try await pages.firstLine())"

        try await withDemo { demo in
            var configuration = EmbeddedDefault.configuration(upstreamPort: demo.port, identity: identity, port: 0, tlsPort: 0, adminPort: nil)
            configuration.accessLog = .off
            let server = try await GatewayServer.start(configuration: configuration, group: MultiThreadedEventLoopGroup.singleton)
            let wssPort = server.localAddresses[1].port ?? 0
            let run: (status: Int32, output: String)
            do {
                run = try await ChromiumDriver.run(
                    Self.scenario,
                    chromium: chromium,
                    arguments: [
                        "\(origin)/chat.html?gateway=wss://localhost:\(wssPort)", cert.path, directory.appendingPathComponent("profile").path,
                    ],
                    timeout: .seconds(100)
                )
            } catch {
                try? await server.close()
                throw error
            }
            try? await server.close()
            ChromiumDriver.expectDone(run)
        }
    }

    /// `python3 -c LIBRARY+scenario CHROMIUM PAGE CERT PROFILE`.
    static let scenario = #"""
        chromium, page_url, cert, profile = sys.argv[1:5]
        browser = Browser(chromium, profile, ["--ignore-certificate-errors-spki-list=" + spki_pin(cert)], time.monotonic() + 80)
        ONLINE = "[...document.querySelectorAll('#online li')].map(e => e.textContent).join(',')"
        MESSAGES = "[...document.querySelectorAll('#messages li')].map(e => e.querySelector('.from').textContent + e.querySelector('.text').textContent)"
        def say(page, text):
            page.eval("document.getElementById('text').value = %s; document.getElementById('send').click(); true" % json.dumps(text))
        alice = browser.open("alice", page_url + "&name=alice")
        bob = browser.open("bob", page_url + "&name=bob")
        alice.eval("document.getElementById('join').click(); true")
        alice.wait("alice is connected and online", "document.getElementById('status').dataset.state === 'open' && %s === 'alice'" % ONLINE, 15)
        bob.eval("document.getElementById('join').click(); true")
        bob.wait("bob sees alice and bob online", "%s === 'alice,bob'" % ONLINE, 15)
        alice.wait("alice sees alice and bob online", "%s === 'alice,bob'" % ONLINE, 15)
        say(alice, "hello bob")
        bob.wait("bob receives alice's message", "%s.includes('alice:hello bob')" % MESSAGES, 15)
        alice.wait("alice sees her own message", "%s.includes('alice:hello bob')" % MESSAGES, 15)
        markup = "<img src=x onerror=\"window.pwned=1\"> hi alice"
        say(bob, markup)
        alice.wait("alice receives bob's message as text", "%s.includes(%s) && !document.querySelector('#messages img') && !window.pwned" % (MESSAGES, json.dumps("bob:" + markup)), 15)
        bob.close()
        alice.wait("alice's list drops bob when his page closes", "%s === 'alice'" % ONLINE, 15)
        if alice.eval("document.getElementById('status').dataset.state") != "open": fail("alice stays connected", "status is not open")
        ok("alice stays connected")
        browser.close()
        print("DONE", flush=True)
        """#
}
