import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// The request-head byte limit after the head (DESIGN §1.3, RELIABILITY H-02): bytes that follow a head
/// that fitted are early data, never a 431 (the limit's split-invariance is in ``RequestHeadScannerTests``).
@Suite struct HandshakeGuardsTests {
    /// Catalog H-02: frames sent before the 101 get the same answer whether they come in the head's read or after it: small ones wait for the switch (then 400 early data), ones that take the bytes past the head limit are refused at once with 400 early data, not 431.
    @Test func earlyDataGetsTheSameAnswerInTheHeadsReadOrAfterIt() throws {
        let head = Array(ClientConnectionHostileRequestTests.request().utf8)
        for size in [16, 17 * 1024] {
            let frame = RelayHandlerEmbeddedTests.clientFrame(.binary, Array(repeating: 0x61, count: size))
            let whole = try ClientConnectionHostileRequestTests.run(head + frame, cuts: [])
            let split = try ClientConnectionHostileRequestTests.run(head + frame, cuts: [head.count])
            let statuses = "\(String(describing: whole.status)) in one read, \(String(describing: split.status)) after the head"
            #expect(whole.status == split.status && whole.closed == split.closed, "\(size) bytes of frame: \(statuses)")
            if size > 16 * 1024 { #expect(whole.status == 400 && whole.closed, "\(statuses)") }
        }
    }
}
