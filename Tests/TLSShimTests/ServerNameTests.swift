import Testing

@testable import TLSShim

@Suite struct ServerNameTests {
    @Test func matcherPrefersExactNamesAndMatchesOneWildcardLabel() throws {
        let matcher = try ServerNameMatcher(hosts: [["*.example.test"], ["api.example.test", "API2.example.test."]])
        #expect(matcher.match("api.example.test") == 1)
        #expect(matcher.match("api2.example.test") == 1)
        #expect(matcher.match("Other.Example.Test") == 0)
        #expect(matcher.match("other.example.test.") == 0)
        #expect(matcher.match("example.test") == nil)
        #expect(matcher.match("a.b.example.test") == nil)
        #expect(matcher.match(".example.test") == nil)
        #expect(matcher.match("") == nil)
    }

    @Test(arguments: ["", "*", "*.", "a.*.test", "*.*.test", "*a.test"])
    func invalidConfiguredNames(name: String) {
        #expect(throws: TLSError(code: .invalidConfiguration, reason: "")) {
            try ServerNameMatcher(hosts: [[name]])
        }
    }

    /// RFC 6066 §3 `server_name` extension bodies, as a client sends them.
    @Test func parsesTheServerNameExtension() {
        // list length 0x000e, type 0 (host_name), length 0x000b, "example.com"
        let valid: [UInt8] = [0x00, 0x0E, 0x00, 0x00, 0x0B] + Array("example.com".utf8)
        #expect(valid.withUnsafeBytes { parseServerNameExtension($0) } == "example.com")
        // An unknown name type first (type 7, length 1), then the host name.
        let skipped: [UInt8] = [0x00, 0x0A, 0x07, 0x00, 0x01, 0xFF, 0x00, 0x00, 0x03] + Array("a.b".utf8)
        #expect(skipped.withUnsafeBytes { parseServerNameExtension($0) } == "a.b")
        // No host_name entry at all.
        let none: [UInt8] = [0x00, 0x04, 0x07, 0x00, 0x01, 0xFF]
        #expect(none.withUnsafeBytes { parseServerNameExtension($0) } == "")
    }

    /// Catalog T-03: malformed server_name extensions (bad lengths, empty, NUL, non-ASCII) are rejected.
    @Test(arguments: [
        [UInt8](),  // empty
        [0x00],  // truncated list length
        [0x00, 0x05, 0x00, 0x00, 0x03, 0x61],  // list length larger than the bytes
        [0x00, 0x04, 0x00, 0x00, 0x09, 0x61],  // entry length larger than the list
        [0x00, 0x03, 0x00, 0x00, 0x00],  // empty host name
        [0x00, 0x05, 0x00, 0x00, 0x02, 0x61, 0x00],  // NUL inside the name
        [0x00, 0x05, 0x00, 0x00, 0x02, 0x61, 0xC3],  // non-ASCII
        [0x00, 0x02, 0x00, 0x00],  // entry header cut short
    ])
    func rejectsMalformedServerNameExtensions(bytes: [UInt8]) {
        #expect(bytes.withUnsafeBytes { parseServerNameExtension($0) } == nil)
    }
}
