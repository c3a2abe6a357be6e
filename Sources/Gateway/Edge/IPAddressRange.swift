#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address as its network-order bytes (4 or 16), parsed with `inet_pton` so that only
/// what the C library accepts as an address literal is one (no names, no zones, no leading zeros
/// tricks). An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is the IPv4 address: a dual-stack socket
/// reports IPv4 peers that way, and a trust decision must not depend on the socket family.
struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// 4 bytes (IPv4) or 16 bytes (IPv6), network order.
    let bytes: [UInt8]

    init?(_ text: some StringProtocol) {
        let text = String(text)
        if text.utf8.contains(where: { $0 == 0 }) { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.init(bytes: withUnsafeBytes(of: &v4) { Array($0) })
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        self.init(bytes: withUnsafeBytes(of: &v6) { Array($0) })
    }

    /// From 4 or 16 network-order bytes (IPv4-mapped IPv6 becomes IPv4).
    init?(bytes: [UInt8]) {
        switch bytes.count {
        case 4:
            self.bytes = bytes
        case 16:
            let mapped = bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF
            self.bytes = mapped ? Array(bytes[12...]) : bytes
        default:
            return nil
        }
    }

    var isIPv6: Bool { self.bytes.count == 16 }

    /// The canonical text (`inet_ntop`): dotted quad, or RFC 5952 IPv6 without brackets.
    var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let family = self.isIPv6 ? AF_INET6 : AF_INET
        let ok = self.bytes.withUnsafeBytes { raw in
            inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count)) != nil
        }
        guard ok else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A CIDR block (`10.0.0.0/8`, `2001:db8::/32`) or a single address (`192.0.2.7`, `::1`). Host bits
/// set in the written address are ignored (`10.1.2.3/8` is `10.0.0.0/8`), as in HAProxy and nginx.
struct IPAddressRange: Hashable, Sendable, CustomStringConvertible {
    let network: IPAddress
    let prefixLength: Int

    /// Parses `address[/prefix]`; nil if the address is not a literal or the prefix is not 0…32 (IPv4)
    /// or 0…128 (IPv6) written in digits.
    init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        // An IPv4-mapped IPv6 range is written against 128 bits; keep its prefix meaningful on 32.
        let writtenBits = parts[0].contains(":") ? 128 : 32
        let bits = address.bytes.count * 8
        var prefix = bits
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].count <= 3, parts[1].utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                let written = Int(parts[1]), written <= writtenBits
            else { return nil }
            prefix = written - (writtenBits - bits)
            guard prefix >= 0 else { return nil }
        }
        self.prefixLength = prefix
        self.network = IPAddress(bytes: Self.mask(address.bytes, prefix: prefix))!
    }

    /// True when `address` is inside the block (an IPv4 address never matches an IPv6 block).
    func contains(_ address: IPAddress) -> Bool {
        guard address.bytes.count == self.network.bytes.count else { return false }
        return Self.mask(address.bytes, prefix: self.prefixLength) == self.network.bytes
    }

    var description: String { "\(self.network)/\(self.prefixLength)" }

    private static func mask(_ bytes: [UInt8], prefix: Int) -> [UInt8] {
        var masked = bytes
        for index in masked.indices {
            let keep = min(8, max(0, prefix - index * 8))
            masked[index] &= keep == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
        return masked
    }
}

/// The `trusted_proxies` list: peers whose forwarding headers and PROXY protocol headers are believed.
struct TrustedProxies: Hashable, Sendable {
    let ranges: [IPAddressRange]

    init(_ ranges: [IPAddressRange] = []) { self.ranges = ranges }

    var isEmpty: Bool { self.ranges.isEmpty }

    func contains(_ address: IPAddress?) -> Bool {
        guard let address else { return false }
        return self.ranges.contains { $0.contains(address) }
    }

    func contains(_ text: String?) -> Bool {
        self.contains(text.flatMap { IPAddress($0) })
    }
}
