import Testing

@testable import Gateway

@Suite struct RouteTableTests {
    private func route(_ hosts: [String], _ path: String) -> GatewayConfiguration.Route {
        .init(hosts: hosts, pathPrefix: path, upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 1)])
    }

    @Test func longestMatchOnHostThenPath() {
        let table = RouteTable([
            route([], "/"),  // 0
            route([], "/chat"),  // 1
            route(["*.example.com"], "/"),  // 2
            route(["api.example.com"], "/"),  // 3
            route(["*.eu.example.com"], "/"),  // 4
            route(["api.example.com"], "/v2"),  // 5
        ])
        #expect(table.match(host: "other.org", path: "/x")?.index == 0)
        #expect(table.match(host: "other.org", path: "/chat/room")?.index == 1)
        #expect(table.match(host: "other.org", path: "/chatter")?.index == 0)  // segment-wise
        #expect(table.match(host: "www.example.com", path: "/chat")?.index == 2)  // host beats path
        #expect(table.match(host: "API.example.com", path: "/")?.index == 3)  // exact beats wildcard
        #expect(table.match(host: "api.example.com", path: "/v2/x")?.index == 5)
        #expect(table.match(host: "a.eu.example.com", path: "/")?.index == 4)  // longer suffix wins
        #expect(table.match(host: "example.com", path: "/")?.index == 0)  // *.example.com needs a label
    }

    @Test func noRouteMeansNil() {
        let table = RouteTable([route(["a.example"], "/")])
        #expect(table.match(host: "b.example", path: "/") == nil)
    }

    @Test func pathPrefixIsSegmentWise() {
        #expect(RouteTable.pathMatches("/chat", prefix: "/chat"))
        #expect(RouteTable.pathMatches("/chat/", prefix: "/chat"))
        #expect(RouteTable.pathMatches("/chat/a", prefix: "/chat/"))
        #expect(!RouteTable.pathMatches("/chatter", prefix: "/chat"))
        #expect(RouteTable.pathMatches("/anything", prefix: "/"))
    }
}
