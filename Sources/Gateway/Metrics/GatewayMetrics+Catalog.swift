import CoreMetrics

/// The documentation catalog: every declared metric with its type and labels, in declaration order,
/// derived from ``GatewayMetrics``' stored families. The README's metrics list is checked against it by
/// a test (`OperationsDocumentationTests`), names, types and labels, so that a new metric is documented.
extension GatewayMetrics {
    struct Descriptor: Sendable, Equatable {
        enum Kind: String, Sendable { case counter, gauge, histogram }
        var name: String
        var kind: Kind
        var labels: [String]
        var help: String
    }

    /// Every declared family's descriptor (a family is a stored property of ``GatewayMetrics``, so
    /// declaring one is all it takes to be catalogued).
    static let catalog: [Descriptor] = GatewayMetrics(factory: NOOPMetricsHandler.instance).families.map(\.descriptor)

    /// The stored families, in declaration order.
    var families: [any MetricFamily] {
        Mirror(reflecting: self).children.compactMap { $0.value as? any MetricFamily }
    }

    /// Histogram buckets (seconds) for the upstream connect latency.
    static let connectSecondsBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

    /// A label value from a human description: the part before " (", lower-case, non-alphanumerics as
    /// `_` ("reserved bit set (RFC 6455 §5.2)" → `reserved_bit_set`). Bounded by the set of codes.
    static func slug(_ text: String) -> String {
        let head = text.components(separatedBy: " (").first ?? text
        var out = ""
        for scalar in head.lowercased().unicodeScalars {
            let keep = ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar)
            if keep {
                out.unicodeScalars.append(scalar)
            } else if !out.hasSuffix("_") {
                out += "_"
            }
        }
        while out.hasSuffix("_") { out.removeLast() }
        return out
    }
}
