import TLSShim

/// `X-Forwarded-Client-Cert` (XFCC) in Envoy's format: the verified client certificate of the
/// connection, for the upstream (issue #13 §1).
///
/// One element, `;`-separated `Key=Value` pairs: `Hash` (lower-case hex SHA-256 of the DER
/// certificate), `Subject` (RFC 2253, always double-quoted, as Envoy does), then one `URI` and one
/// `DNS` pair per subject alternative name. A value containing `,`, `;`, `=` or `"` is quoted; inside
/// quotes `"` and `\` are escaped with a backslash. The gateway writes a single element (no `By`: it
/// does not present a client certificate to the upstream here) and never appends to a client's:
/// any `X-Forwarded-Client-Cert` the client sent is removed, whatever the route's `client_cert` says
/// (``UpstreamHandshake/requestHead(for:upstream:peer:peerIsTrusted:clientUsedTLS:clientCertificate:)``).
enum ClientCertificateHeader {
    static let name = "X-Forwarded-Client-Cert"
    static let lowercasedName = "x-forwarded-client-cert"

    /// The header value for `certificate`.
    static func value(for certificate: TLSPeerCertificate) -> String {
        var pairs = ["Hash=\(certificate.sha256Fingerprint)", "Subject=\(self.quoted(certificate.subject))"]
        pairs += certificate.uris.map { "URI=\(self.valueText($0))" }
        pairs += certificate.dnsNames.map { "DNS=\(self.valueText($0))" }
        return pairs.joined(separator: ";")
    }

    /// `text` as is, or quoted when it holds a separator.
    static func valueText(_ text: String) -> String {
        text.utf8.contains(where: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: ";") || $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: "\"") })
            ? self.quoted(text) : text
    }

    /// `"text"` with `"` and `\` escaped.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for character in text {
            if character == "\"" || character == "\\" { out.append("\\") }
            out.append(character)
        }
        out.append("\"")
        return out
    }
}
