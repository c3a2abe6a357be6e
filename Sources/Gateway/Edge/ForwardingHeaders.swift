/// Where the client address for logs, per-IP limits and `Forwarded: for=` comes from.
public enum ClientAddressSource: String, Sendable, Hashable, CaseIterable {
    /// The connection's peer (after a PROXY protocol header, the address it carried).
    case peer
    /// The right-most address of `X-Forwarded-For` + peer that is not a trusted proxy.
    case chain
}

/// The forwarding headers sent upstream (issue #11 §1): what the gateway tells the upstream about the
/// client must be true, so headers the client wrote are believed only from a trusted proxy.
///
/// From a peer that is not in `trusted_proxies`, every header in ``clientSentNames`` is dropped and the
/// gateway sets `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded` (RFC 7239)
/// exactly once. From a trusted peer the chains (`X-Forwarded-For`, `Forwarded`) are appended to, the
/// proxy's `X-Forwarded-Proto`/`-Host` are kept (it saw the original request; ours are the fallback),
/// and its other forwarding headers pass through.
enum ForwardingHeaders {
    /// Forwarding headers a client may try to forge (lowercased).
    static let clientSentNames: Set<String> = [
        "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-forwarded-prefix",
        "x-forwarded-ssl", "x-real-ip", "true-client-ip", "x-client-ip", "forwarded",
    ]

    /// This hop as the gateway saw it.
    struct Hop: Sendable, Hashable {
        /// The immediate peer (after PROXY protocol); nil when it has no IP address.
        var peer: IPAddress?
        var peerIsTrusted: Bool
        var usedTLS: Bool
        /// The client's `Host` (validated, so it is safe to copy).
        var host: HostHeader
    }

    /// The forwarding headers for the upstream request, in order, each name once. `incoming` are the
    /// client's headers (any order, any case); only forwarding ones are looked at.
    static func headers(incoming: some Sequence<(name: String, value: String)>, hop: Hop) -> [(String, String)] {
        let proto = hop.usedTLS ? "https" : "http"
        let peerText = hop.peer?.description
        var chainFor: [String] = []
        var chainForwarded: [String] = []
        var passed: [(String, String)] = []
        var keptProto: String?
        var keptHost: String?
        if hop.peerIsTrusted {
            for (name, value) in incoming {
                let lower = name.lowercased()
                guard Self.clientSentNames.contains(lower), Self.isSafe(value) else { continue }
                switch lower {
                case "x-forwarded-for": chainFor.append(Self.trimmed(value[...]))
                case "forwarded": chainForwarded.append(Self.trimmed(value[...]))
                case "x-forwarded-proto": keptProto = keptProto ?? Self.trimmed(value[...])
                case "x-forwarded-host": keptHost = keptHost ?? Self.trimmed(value[...])
                default: passed.append((name, value))
                }
            }
        }
        chainFor.removeAll(where: \.isEmpty)
        chainForwarded.removeAll(where: \.isEmpty)
        chainFor.append(peerText ?? "unknown")
        chainForwarded.append(Self.forwardedElement(for: hop.peer, host: hop.host.value, proto: proto))
        return [
            ("X-Forwarded-For", chainFor.joined(separator: ", ")),
            ("X-Forwarded-Proto", keptProto ?? proto),
            ("X-Forwarded-Host", keptHost ?? hop.host.value),
            ("Forwarded", chainForwarded.joined(separator: ", ")),
        ] + passed
    }

    /// One RFC 7239 `forwarded-element`: `for=…;host=…;proto=…`. IPv6 nodes are `"[v6]"` (§6), an absent
    /// address is `unknown` (§6.2); values that are not a `token` are a `quoted-string` with `"` and `\`
    /// escaped (RFC 9110 §5.6.4).
    static func forwardedElement(for peer: IPAddress?, host: String, proto: String) -> String {
        let node = peer.map { $0.isIPv6 ? "[\($0)]" : $0.description } ?? "unknown"
        return "for=\(Self.value(node));host=\(Self.value(host));proto=\(Self.value(proto))"
    }

    /// A `token` as is, anything else as a `quoted-string`.
    static func value(_ text: String) -> String {
        if !text.isEmpty && text.utf8.allSatisfy(Self.isTokenByte) { return text }
        var quoted = "\""
        for scalar in text.unicodeScalars {
            if scalar == "\"" || scalar == "\\" { quoted.append("\\") }
            quoted.unicodeScalars.append(scalar)
        }
        return quoted + "\""
    }

    /// RFC 9110 §5.6.2 `tchar`.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// RFC 9110 §5.6.3 OWS (spaces and tabs) trimmed from both ends.
    private static func trimmed(_ text: Substring) -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = text.firstIndex(where: { !isSpace($0) }), let last = text.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(text[first...last])
    }

    /// No CR, LF or NUL (NIO's decoder refuses them already; this keeps the guarantee local).
    private static func isSafe(_ value: String) -> Bool {
        !value.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 })
    }

    /// The client address (issue #11 §1): with `.peer` the peer; with `.chain` and a trusted peer, the
    /// right-most `X-Forwarded-For` entry that is not a trusted proxy. An entry that is not an IP literal
    /// ends the walk at the hop that sent it (it is not believed); a chain of only trusted proxies gives
    /// its left-most entry.
    static func clientAddress(
        peer: IPAddress?,
        forwardedFor values: [String],
        source: ClientAddressSource,
        trusted: TrustedProxies
    ) -> IPAddress? {
        guard case .chain = source, let peer, trusted.contains(peer) else { return peer }
        var client = peer
        let entries = values.flatMap { $0.split(separator: ",") }.map { Self.trimmed($0) }
        for entry in entries.reversed() {
            guard let address = IPAddress(entry) else { return client }
            client = address
            if !trusted.contains(address) { return address }
        }
        return client
    }
}
