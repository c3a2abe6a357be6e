import Frames
import Testing

@Suite struct CloseCodeTests {
    /// RFC 6455 §7.4 and the IANA registry: 1000–1003, 1007–1014 and 3000–4999 may be sent.
    @Test func validityOnTheWireMatchesTheRegistryForEveryCode() {
        for raw in 0...UInt16.max {
            let expected = (1000...1003).contains(raw) || (1007...1014).contains(raw) || (3000...4999).contains(raw)
            #expect(CloseCode(raw).isValidOnWire == expected, "code \(raw)")
        }
    }

    @Test(arguments: [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] as [UInt16])
    func reservedAndUnassignedCodesAreInvalid(raw: UInt16) {
        #expect(!CloseCode(raw).isValidOnWire)
    }

    @Test func errorCodesMapToTheirCloseCode() {
        #expect(FramesError.reservedOpcode.closeCode == .protocolError)
        #expect(FramesError.invalidUTF8.closeCode == .invalidPayloadData)
        #expect(FramesError.tooManyFragments.closeCode == .policyViolation)
        #expect(FramesError.frameTooLarge.closeCode == .messageTooBig)
        #expect(FramesError.messageTooLarge.closeCode == .messageTooBig)
        #expect(FramesError.payloadLengthMostSignificantBitSet.closeCode == .protocolError)
    }
}
