import Testing

@testable import TLSShim

@Suite struct TLSServerContextCertificatesTests {
    /// Catalog G-03: what a reload logs about a listener's certificates names each identity's subject, serial and expiry, as loaded.
    @Test func summariesNameEachIdentityAsLoaded() throws {
        let context = try TLSServerContext(configuration: Fixtures.serverConfiguration())
        let summaries = context.certificateSummaries
        #expect(summaries.count == 3)
        #expect(summaries[0].hasPrefix("subject=CN=localhost, serial="), "\(summaries)")
        #expect(summaries[1].hasPrefix("subject=CN=api.example.test, serial="), "\(summaries)")
        #expect(summaries[2].hasPrefix("subject=CN=*.wild.example.test, serial="), "\(summaries)")
        #expect(summaries.allSatisfy { $0.contains(", not_after=") && !$0.contains("=?") }, "\(summaries)")
        // A reissued certificate for the same name has another serial.
        let renewed = try TLSServerContext(
            configuration: TLSServerConfiguration(defaultIdentity: Fixtures.issue("localhost", dns: ["localhost"]).identity)
        )
        #expect(renewed.certificateSummaries.count == 1)
        #expect(renewed.certificateSummaries[0] != summaries[0])
        #expect(renewed.certificateSummaries[0].hasPrefix("subject=CN=localhost, serial="))
    }
}
