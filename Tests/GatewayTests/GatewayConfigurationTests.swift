import Testing

@testable import Gateway

@Suite struct GatewayConfigurationTests {
    @Test func defaultsFollowTheDesign() {
        // ../shared/DESIGN.md §7.
        let limits = GatewayConfiguration.Limits()
        #expect(limits.requestHeadBytes == 16 * 1024)
        #expect(limits.requestHeaders == 100)
        #expect(limits.maxMessageSize == 1 << 20)
        #expect(limits.maxFragments == 1024)
        #expect(limits.bufferHighWatermark == 256 * 1024)
        let timeouts = GatewayConfiguration.Timeouts()
        #expect(timeouts.requestHead == .seconds(10))
        #expect(timeouts.upstreamConnect == .seconds(5))
        #expect(timeouts.close == .seconds(10))
        #expect(timeouts.idle == .seconds(120))
    }
}
