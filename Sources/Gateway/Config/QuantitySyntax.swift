/// Quantity syntax of the configuration file: durations (`250ms`, `10s`, `1m30s`), sizes (`512`, `16KiB`,
/// `64KB`) and the field accessors that turn a parse failure into a message naming the key path. Rates
/// (`{ rate: N, burst: M }`) are read in `GatewayConfiguration+PolicyYAML.swift`.
extension GatewayConfiguration {
    /// Parses a duration in human units: one or more `<whole number><unit>` parts with the units
    /// `h`, `m`, `s`, `ms` in that order, each at most once (`250ms`, `10s`, `2m`, `1h`, `1m30s`).
    /// Returns `nil` for anything else: a bare number, spaces, fractions, upper-case units, or a total
    /// over `Int64.max` nanoseconds (about 292 years).
    public static func parseDuration(_ text: String) -> Duration? {
        guard case .value(let duration) = DurationSyntax.parse(text) else { return nil }
        return duration
    }

    /// Parses a size in bytes: a whole number with an optional unit, case-sensitive: `B`; binary
    /// `KiB`, `MiB`, `GiB` (powers of 1,024); decimal `KB`, `MB`, `GB` (powers of 1,000, so `64KB` is
    /// 64,000). Returns `nil` for anything else, and when the result would overflow `Int`.
    public static func parseSize(_ text: String) -> Int? {
        guard case .value(let size) = SizeSyntax.parse(text) else { return nil }
        return size
    }
}

extension YAMLField {
    /// A size in bytes (``GatewayConfiguration/parseSize(_:)``).
    func size() throws(ConfigurationError) -> Int {
        let text = try self.string()
        switch SizeSyntax.parse(text) {
        case .value(let size): return size
        case .overflow: throw self.path.error(.outOfRange, "\(quote(text)) is too large (at most \(Int.max) bytes)")
        case .malformed, .bareNumber:
            throw self.path.error(.invalidValue, "\(quote(text)) is not a size (use B, KiB, MiB, GiB, KB, MB, GB)")
        }
    }

    /// A duration with units (``GatewayConfiguration/parseDuration(_:)``).
    func duration() throws(ConfigurationError) -> Duration {
        let text = try self.string()
        switch DurationSyntax.parse(text) {
        case .value(let duration): return duration
        case .bareNumber:
            throw self.path.error(.invalidValue, "\(text) has no unit: add one (ms, s, m, h), for example \(text)s")
        case .overflow: throw self.path.error(.outOfRange, "\(quote(text)) is too large (at most about 292 years)")
        case .malformed:
            throw self.path.error(.invalidValue, "\(quote(text)) is not a duration (use ms, s, m, h, e.g. 250ms, 10s, 1m30s)")
        }
    }
}

/// The outcome of parsing a quantity, kept apart so that each failure gets its own message.
enum QuantityParseResult<Value: Hashable & Sendable>: Hashable, Sendable {
    case value(Value)
    /// Only digits: a duration needs a unit.
    case bareNumber
    case malformed
    case overflow
}

/// `1h`, `2m`, `10s`, `250ms` and combinations in descending unit order (`1h30m`, `1m30s`).
enum DurationSyntax {
    /// Units, largest first, with their size in nanoseconds.
    static let units: [(name: String, nanoseconds: Int64)] = [
        ("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000), ("ms", 1_000_000),
    ]

    static func parse(_ text: String) -> QuantityParseResult<Duration> {
        let scalars = Array(text.unicodeScalars)
        if !scalars.isEmpty, scalars.allSatisfy({ ("0"..."9").contains($0) }) { return .bareNumber }
        var total: Int64 = 0
        var nextUnit = 0  // index into `units`: each unit at most once, largest first
        var index = 0
        var overflowed = false
        guard !scalars.isEmpty else { return .malformed }
        while index < scalars.count {
            let digitsStart = index
            while index < scalars.count, ("0"..."9").contains(scalars[index]) { index += 1 }
            let unitStart = index
            while index < scalars.count, ("a"..."z").contains(scalars[index]) { index += 1 }
            guard digitsStart < unitStart, unitStart < index else { return .malformed }
            let unitName = String(String.UnicodeScalarView(scalars[unitStart..<index]))
            guard let unitIndex = units.firstIndex(where: { $0.name == unitName }), unitIndex >= nextUnit else {
                return .malformed
            }
            nextUnit = unitIndex + 1
            guard let number = Int64(String(String.UnicodeScalarView(scalars[digitsStart..<unitStart]))) else {
                overflowed = true
                continue
            }
            let (part, multiplyOverflow) = number.multipliedReportingOverflow(by: units[unitIndex].nanoseconds)
            let (sum, addOverflow) = total.addingReportingOverflow(part)
            if multiplyOverflow || addOverflow { overflowed = true }
            total = sum
        }
        return overflowed ? .overflow : .value(.nanoseconds(total))
    }
}

/// `512`, `512B`, `16KiB`, `1MiB`, `1GiB`, `64KB` (64,000), `1MB`, `1GB`.
enum SizeSyntax {
    static let units: [String: Int] = [
        "": 1, "B": 1,
        "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
        "KB": 1_000, "MB": 1_000_000, "GB": 1_000_000_000,
    ]

    static func parse(_ text: String) -> QuantityParseResult<Int> {
        let digits = text.prefix { $0.isASCIIDigit }
        guard !digits.isEmpty, let multiplier = units[String(text.dropFirst(digits.count))] else { return .malformed }
        guard let number = Int(digits) else { return .overflow }
        let (size, overflow) = number.multipliedReportingOverflow(by: multiplier)
        return overflow ? .overflow : .value(size)
    }
}
