import Testing

@testable import Gateway

/// `wsgate tap --admin URL` and the request it sends.
@Suite struct TapClientTests {
    @Test func parsesTheAdminURL() throws {
        #expect(try TapClient.Admin("http://127.0.0.1:9090") == .init(host: "127.0.0.1", port: 9090, prefix: ""))
        #expect(try TapClient.Admin("http://[::1]:9090/ops/") == .init(host: "::1", port: 9090, prefix: "/ops"))
        #expect(try TapClient.Admin("http://admin.internal") == .init(host: "admin.internal", port: 80, prefix: ""))
        for bad in ["https://127.0.0.1:9090", "127.0.0.1:9090", "http://:9090", "http://h:0", "http://h:99999", "http://u@h:1", "http://[::1]x"] {
            #expect(throws: TapClientError.self, "\(bad)") { try TapClient.Admin(bad) }
        }
    }

    @Test func theQueryIsPercentEncoded() throws {
        let admin = try TapClient.Admin("http://127.0.0.1:9090/ops")
        #expect(TapClient.target(admin, query: []) == "/ops/tap")
        #expect(
            TapClient.target(admin, query: [("route", "/chat"), ("client", "::1"), ("x", "a b&c=d✓")])
                == "/ops/tap?route=/chat&client=%3A%3A1&x=a%20b%26c%3Dd%E2%9C%93"
        )
    }
}

extension TapClient.Admin {
    init(host: String, port: Int, prefix: String) {
        self = try! TapClient.Admin("http://x:1")
        self.host = host
        self.port = port
        self.prefix = prefix
    }
}
