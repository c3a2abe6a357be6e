#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The key per-IP limits count a client address under (issue #11 §3). One IPv6 host is usually given
/// a whole /64 (RFC 6177, SLAAC and privacy addresses rotate the low 64 bits at will), so counting
/// IPv6 addresses one by one would let a single host open `per_ip_connections` from each of 2⁶⁴
/// addresses. IPv6 addresses are therefore counted by their prefix (`connection_limits.ipv6_prefix`,
/// default 64); IPv4 addresses, and IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack
/// socket reports for an IPv4 client), are counted one by one.
enum AddressPrefix {
    /// `ip` when it is IPv4; its first `ipv6Prefix` bits as `network/prefix` when it is IPv6; the text
    /// unchanged when it parses as neither (it is then only ever equal to itself).
    static func accountingKey(_ ip: String, ipv6Prefix: Int) -> String {
        guard ip.contains(":") else { return ip }
        var address = in6_addr()
        let literal = ip.split(separator: "%", maxSplits: 1).first.map(String.init) ?? ip  // zone index
        guard inet_pton(AF_INET6, literal, &address) == 1 else { return ip }
        var bytes = withUnsafeBytes(of: &address) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return "\(bytes[12]).\(bytes[13]).\(bytes[14]).\(bytes[15])"
        }
        let prefix = max(0, min(128, ipv6Prefix))
        for index in 0..<16 {
            let keep = max(0, min(8, prefix - index * 8))
            bytes[index] &= keep == 8 ? 0xFF : ~(UInt8(0xFF) >> keep)
        }
        withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &address, &text, socklen_t(text.count)) != nil else { return ip }
        let literalBytes = text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: literalBytes, as: UTF8.self) + "/\(prefix)"
    }
}
