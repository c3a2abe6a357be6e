import Testing

@testable import Gateway

/// The dashboard and the demo chat page as text: the metric names come from their declarations, and
/// neither page has a way to turn a string into HTML (the Chromium tests show payload markup as text;
/// this keeps the pages from growing one).
@Suite struct DashboardPageTests {
    @Test func theMetricNamesAreFilledInFromTheirDeclarations() {
        #expect(!DashboardPage.html.contains("METRIC_NAMES"))
        for (key, name) in [
            ("closeCodes", "wsgate_close_codes_total"), ("tlsHandshakeFailures", "wsgate_tls_handshake_failures_total"),
            ("messages", "wsgate_messages_total"), ("connectionsOpen", "wsgate_connections_open"),
        ] {
            #expect(DashboardPage.html.contains("\(key): \"\(name)\""), "\(key)")
            #expect(GatewayMetrics.catalog.contains { $0.name == name }, "\(name) is declared")
        }
    }

    @Test(arguments: [("dashboard", DashboardPage.html), ("chat", DemoChatPage.html)])
    func noPageTurnsStringsIntoHTML(page: String, html: String) {
        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc"] {
            #expect(!html.contains(sink), "\(page) uses \(sink)")
        }
        #expect(html.contains("Content-Security-Policy") || page == "chat", "\(page) carries its CSP")
    }
}
