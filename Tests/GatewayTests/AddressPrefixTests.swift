import Testing

@testable import Gateway

/// Issue #11 §3: the key per-IP limits count a client under (IPv6 by prefix).
@Suite struct AddressPrefixTests {
    @Test(
        arguments: [
            ("192.0.2.1", 64, "192.0.2.1"),
            ("::ffff:192.0.2.1", 64, "192.0.2.1"),  // a dual-stack socket's IPv4 client
            ("2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64"),
            ("2001:DB8:1:2::9", 64, "2001:db8:1:2::/64"),
            ("2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6/128"),
            ("2001:db8:1:2:3:4:5:6", 60, "2001:db8:1::/60"),
            ("2001:db8:1:2:3:4:5:6", 1, "::/1"),
            ("fe80::1%eth0", 64, "fe80::/64"),
            ("::1", 64, "::/64"),
            ("not:an:address", 64, "not:an:address"),
        ] as [(String, Int, String)]
    )
    func accountingKeys(_ ip: String, _ prefix: Int, _ expected: String) {
        #expect(AddressPrefix.accountingKey(ip, ipv6Prefix: prefix) == expected)
    }
}
