import Testing

@testable import Gateway

/// CIDR blocks for `trusted_proxies` (issue #11 §1): IPv4 and IPv6, host bits ignored, IPv4-mapped
/// peers matched as IPv4, and anything that is not an address literal refused.
@Suite struct IPAddressRangeTests {
    @Test(arguments: [
        ("10.0.0.0/8", "10.255.1.2", true), ("10.0.0.0/8", "11.0.0.1", false),
        ("192.0.2.7", "192.0.2.7", true), ("192.0.2.7", "192.0.2.8", false),
        ("10.1.2.3/8", "10.9.9.9", true),  // host bits ignored
        ("172.16.0.0/12", "172.31.255.255", true), ("172.16.0.0/12", "172.32.0.0", false),
        ("0.0.0.0/0", "203.0.113.9", true), ("0.0.0.0/0", "::1", false),
        ("2001:db8::/32", "2001:db8:ffff::1", true), ("2001:db8::/32", "2001:db9::1", false),
        ("::1", "::1", true), ("::1", "127.0.0.1", false),
        ("fd00::/7", "fdff::1", true), ("fe80::/10", "febf::1", true), ("fe80::/10", "fec0::1", false),
        ("10.0.0.0/8", "::ffff:10.1.2.3", true),  // IPv4-mapped peer of a dual-stack socket
        ("::ffff:10.0.0.0/104", "10.7.7.7", true), ("2001:db8::1/127", "2001:db8::", true),
    ])
    func membership(range: String, address: String, inside: Bool) throws {
        let block = try #require(IPAddressRange(range))
        let ip = try #require(IPAddress(address))
        #expect(block.contains(ip) == inside)
    }

    @Test(arguments: [
        "", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/08x", "example.com", "10.0.0", "010.0.0.1x",
        "1.2.3.4/8/8", "[::1]", "fe80::1%eth0", "10.0.0.0/0008", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4\u{0}",
    ])
    func malformedRangesAreRefused(text: String) {
        #expect(IPAddressRange(text) == nil)
    }

    @Test func addressesPrintCanonically() throws {
        #expect(try #require(IPAddress("2001:DB8:0:0:0:0:0:1")).description == "2001:db8::1")
        #expect(try #require(IPAddress("::ffff:192.0.2.1")).description == "192.0.2.1")
        #expect(try #require(IPAddressRange("10.1.2.3/8")).description == "10.0.0.0/8")
    }

    @Test func trustedProxiesMatchAnyOfTheirRanges() {
        let trusted = TrustedProxies(["10.0.0.0/8", "::1"].compactMap { IPAddressRange($0) })
        #expect(trusted.contains("10.2.3.4"))
        #expect(trusted.contains("::1"))
        #expect(!trusted.contains("203.0.113.9"))
        #expect(!trusted.contains(nil as String?))
        #expect(!TrustedProxies().contains("10.2.3.4"))
    }
}
