import Foundation
import Testing

@testable import Gateway

/// Durations and sizes (`QuantitySyntax.swift`): each failure kind apart, and the public parsers.
@Suite struct QuantitySyntaxTests {
    @Test(arguments: [
        ("250ms", Duration.milliseconds(250)),
        ("10s", .seconds(10)),
        ("90s", .seconds(90)),
        ("2m", .seconds(120)),
        ("1h", .seconds(3600)),
        ("1m30s", .seconds(90)),
        ("1h30m", .seconds(5400)),
        ("1h2m3s4ms", .milliseconds(3_723_004)),
        ("0s", .zero),
        ("2562047h", .seconds(2_562_047 * 3600)),
    ])
    func validDurations(text: String, expected: Duration) {
        #expect(GatewayConfiguration.parseDuration(text) == expected)
    }

    @Test(arguments: [
        ("10", QuantityParseResult<Duration>.bareNumber),
        ("0", .bareNumber),
        ("", .malformed),
        ("s", .malformed),
        ("ms", .malformed),
        ("10 s", .malformed),
        (" 10s", .malformed),
        ("10s ", .malformed),
        ("1.5s", .malformed),
        ("-1s", .malformed),
        ("+1s", .malformed),
        ("10S", .malformed),
        ("10sec", .malformed),
        ("1d", .malformed),
        ("10us", .malformed),
        ("30s1m", .malformed),
        ("1s1s", .malformed),
        ("1m30", .malformed),
        ("2562048h", .overflow),
        ("9223372036854775808ms", .overflow),
        ("9223372036854775807s", .overflow),
        ("2562047h1h", .malformed),
    ])
    func invalidDurations(text: String, expected: QuantityParseResult<Duration>) {
        #expect(DurationSyntax.parse(text) == expected)
        #expect(GatewayConfiguration.parseDuration(text) == nil)
    }

    @Test(arguments: [
        ("0", 0),
        ("512", 512),
        ("512B", 512),
        ("16KiB", 16_384),
        ("1MiB", 1_048_576),
        ("1GiB", 1_073_741_824),
        ("64KB", 64_000),
        ("1MB", 1_000_000),
        ("2GB", 2_000_000_000),
        ("8589934591GiB", Int.max - (1 << 30) + 1),
        ("9223372036854775807", Int.max),
    ])
    func validSizes(text: String, expected: Int) {
        #expect(GatewayConfiguration.parseSize(text) == expected)
    }

    @Test(arguments: [
        ("", QuantityParseResult<Int>.malformed),
        ("10 MB", .malformed),
        ("1.5MiB", .malformed),
        ("16kib", .malformed),
        ("16KIB", .malformed),
        ("16kb", .malformed),
        ("16K", .malformed),
        ("KiB", .malformed),
        ("-1", .malformed),
        ("1TiB", .malformed),
        ("0x10", .malformed),
        (" 1", .malformed),
        ("1\u{301}KiB", .malformed),
        ("\u{FF11}KiB", .malformed),
        ("9223372036854775808", .overflow),
        ("8589934592GiB", .overflow),
        ("9999999999999GB", .overflow),
    ])
    func invalidSizes(text: String, expected: QuantityParseResult<Int>) {
        #expect(SizeSyntax.parse(text) == expected)
        #expect(GatewayConfiguration.parseSize(text) == nil)
    }

    @Test func fieldErrorsNameTheKindOfFailure() throws {
        #expect(GatewayConfiguration.parseDuration("90s") == .seconds(90))
        let document = #"{listeners: [{address: "127.0.0.1:1"}], routes: [{upstreams: ["ws://a"]}], timeouts: {idle: %@}}"#
        for (text, code, message) in [
            ("10", ConfigurationError.Code.invalidValue, "10 has no unit: add one (ms, s, m, h), for example 10s"),
            ("9223372036854775808ms", .outOfRange, #""9223372036854775808ms" is too large (at most about 292 years)"#),
            ("ten", .invalidValue, #""ten" is not a duration (use ms, s, m, h, e.g. 250ms, 10s, 1m30s)"#),
        ] {
            #expect(throws: ConfigurationError(code, keyPath: "timeouts.idle", message: message)) {
                try GatewayConfiguration(yaml: document.replacingOccurrences(of: "%@", with: text))
            }
        }
    }
}
