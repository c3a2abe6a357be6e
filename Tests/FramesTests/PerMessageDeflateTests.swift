import Testing

@testable import Frames

/// Negotiation (RFC 7692 §7) as a server and as a client.
@Suite struct PerMessageDeflateTests {
    private func offers(_ header: String) throws -> [ExtensionOffer] {
        try ExtensionHeader.parse([header])
    }

    private func serve(_ header: String, _ preferences: PerMessageDeflate.Preferences = .init()) throws -> PerMessageDeflate.ServerNegotiation {
        PerMessageDeflate.negotiateAsServer(offers: try self.offers(header), preferences: preferences)
    }

    private func answer(_ header: String, _ preferences: PerMessageDeflate.Preferences = .init()) throws -> String? {
        try self.serve(header, preferences).response.map { ExtensionHeader.serialize([$0]) }
    }

    // MARK: Server: accepted offers and their answers

    @Test(arguments: [
        ("permessage-deflate", "permessage-deflate"),
        ("PerMessage-Deflate", "permessage-deflate"),
        ("permessage-deflate; client_max_window_bits", "permessage-deflate"),
        ("permessage-deflate; client_max_window_bits=10", "permessage-deflate; client_max_window_bits=10"),
        ("permessage-deflate; server_max_window_bits=9", "permessage-deflate; server_max_window_bits=9"),
        ("permessage-deflate; server_max_window_bits=15", "permessage-deflate; server_max_window_bits=15"),
        // Window 8 is accepted; the gateway then sends uncompressed in that direction (no raw-8 deflater).
        ("permessage-deflate; server_max_window_bits=8", "permessage-deflate; server_max_window_bits=8"),
        ("permessage-deflate; server_no_context_takeover", "permessage-deflate; server_no_context_takeover"),
        // A client_no_context_takeover offer is a hint; the answer need not repeat it (§7.1.1.2).
        ("permessage-deflate; client_no_context_takeover", "permessage-deflate"),
        ("permessage-deflate; server_max_window_bits=\"12\"", "permessage-deflate; server_max_window_bits=12"),
        (
            "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=9; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9"
        ),
    ])
    func acceptsValidOffers(offer: String, expected: String) throws {
        #expect(try self.answer(offer) == expected)
    }

    @Test func agreedParametersFollowTheAnswer() throws {
        let result = try self.serve("permessage-deflate; server_max_window_bits=10; client_max_window_bits=12; server_no_context_takeover")
        #expect(
            result.parameters
                == PerMessageDeflateParameters(serverNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 12)
        )
        #expect(result.declined.isEmpty)
    }

    @Test func preferencesLimitWhatTheRFCLetsTheServerChoose() throws {
        let small = PerMessageDeflate.Preferences(maxWindowBits: 10, noContextTakeover: true)
        // The client's window can only be limited when it offered client_max_window_bits.
        #expect(try self.answer("permessage-deflate", small) == "permessage-deflate; server_no_context_takeover; server_max_window_bits=10")
        #expect(
            try self.answer("permessage-deflate; client_max_window_bits", small)
                == "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=10"
        )
        #expect(
            try self.answer("permessage-deflate; client_max_window_bits=9; server_max_window_bits=12", small)
                == "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9"
        )
    }

    // MARK: Server: each decline rule of §7

    @Test(arguments: [
        ("permessage-deflate; x=1", PerMessageDeflate.Decline.unknownParameter("x")),
        ("permessage-deflate; client_max_window_bit", .unknownParameter("client_max_window_bit")),
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", .duplicateParameter("server_no_context_takeover")),
        ("permessage-deflate; client_no_context_takeover; CLIENT_NO_CONTEXT_TAKEOVER", .duplicateParameter("client_no_context_takeover")),
        ("permessage-deflate; server_max_window_bits=10; server_max_window_bits=10", .duplicateParameter("server_max_window_bits")),
        ("permessage-deflate; client_max_window_bits; client_max_window_bits=9", .duplicateParameter("client_max_window_bits")),
        ("permessage-deflate; server_max_window_bits", .invalidValue(parameter: "server_max_window_bits", value: nil)),
        ("permessage-deflate; server_max_window_bits=16", .invalidValue(parameter: "server_max_window_bits", value: "16")),
        ("permessage-deflate; server_max_window_bits=7", .invalidValue(parameter: "server_max_window_bits", value: "7")),
        ("permessage-deflate; server_max_window_bits=08", .invalidValue(parameter: "server_max_window_bits", value: "08")),
        ("permessage-deflate; server_max_window_bits=abc", .invalidValue(parameter: "server_max_window_bits", value: "abc")),
        ("permessage-deflate; server_max_window_bits=+9", .invalidValue(parameter: "server_max_window_bits", value: "+9")),
        ("permessage-deflate; client_max_window_bits=16", .invalidValue(parameter: "client_max_window_bits", value: "16")),
        ("permessage-deflate; client_max_window_bits=0", .invalidValue(parameter: "client_max_window_bits", value: "0")),
        ("permessage-deflate; server_no_context_takeover=1", .invalidValue(parameter: "server_no_context_takeover", value: "1")),
        ("permessage-deflate; client_no_context_takeover=true", .invalidValue(parameter: "client_no_context_takeover", value: "true")),
    ])
    func declinesInvalidOffers(offer: String, reason: PerMessageDeflate.Decline) throws {
        let result = try self.serve(offer)
        #expect(result.response == nil)
        #expect(result.declined == [reason])
    }

    @Test func firstAcceptableOfferWins() throws {
        let result = try self.serve(
            "x-webkit-deflate-frame, permessage-deflate; x=1, permessage-deflate; server_max_window_bits=10, permessage-deflate"
        )
        #expect(result.response.map { ExtensionHeader.serialize([$0]) } == "permessage-deflate; server_max_window_bits=10")
        #expect(result.declined == [.unknownParameter("x")])
        #expect(result.otherExtensions == ["x-webkit-deflate-frame"])
    }

    @Test func noOfferNoAnswer() throws {
        let result = try self.serve("x-custom; a=b")
        #expect(result.response == nil && result.declined.isEmpty)
        #expect(result.otherExtensions == ["x-custom"])
    }

    @Test func matchingAnswersWithTheOtherLegsParametersWhenTheOfferAllowsIt() throws {
        // websockets' server default: 12-bit windows both ways.
        let upstream = PerMessageDeflateParameters(serverMaxWindowBits: 12, clientMaxWindowBits: 12)
        let matched = PerMessageDeflate.negotiateAsServer(offers: try self.offers("permessage-deflate; client_max_window_bits"), matching: upstream)
        #expect(matched.parameters == upstream)
        #expect(
            matched.response.map { ExtensionHeader.serialize([$0]) } == "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
        )
        // Without client_max_window_bits in the offer the client's window cannot be limited: normal answer.
        let unmatched = PerMessageDeflate.negotiateAsServer(offers: try self.offers("permessage-deflate"), matching: upstream)
        #expect(unmatched.parameters == PerMessageDeflateParameters())
        // An offered server_no_context_takeover must be answered, so takeover parameters cannot match.
        let noTakeover = PerMessageDeflate.negotiateAsServer(
            offers: try self.offers("permessage-deflate; server_no_context_takeover; client_max_window_bits"),
            matching: upstream
        )
        #expect(noTakeover.parameters?.serverNoContextTakeover == true)
    }

    @Test func verbatimForwardingNeedsAReceiverAtLeastAsCapable() {
        let sender = PerMessageDeflateParameters(serverMaxWindowBits: 12, clientMaxWindowBits: 10)
        #expect(sender.canForwardVerbatim(from: .server, to: sender))
        #expect(sender.canForwardVerbatim(from: .server, to: .init(serverMaxWindowBits: 15)))
        #expect(!sender.canForwardVerbatim(from: .server, to: .init(serverMaxWindowBits: 11)))
        #expect(!sender.canForwardVerbatim(from: .server, to: .init(serverNoContextTakeover: true, serverMaxWindowBits: 15)))
        #expect(sender.canForwardVerbatim(from: .client, to: .init(clientMaxWindowBits: 10)))
        #expect(!sender.canForwardVerbatim(from: .client, to: .init(clientMaxWindowBits: 9)))
        let resetting = PerMessageDeflateParameters(clientNoContextTakeover: true)
        #expect(resetting.canForwardVerbatim(from: .client, to: .init()))
    }

    // MARK: Client: the offer and the checks on the answer

    @Test func clientOffers() {
        #expect(ExtensionHeader.serialize([PerMessageDeflate.clientOffer()]) == "permessage-deflate; client_max_window_bits")
        #expect(
            ExtensionHeader.serialize([PerMessageDeflate.clientOffer(.init(maxWindowBits: 10, noContextTakeover: true))])
                == "permessage-deflate; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=10"
        )
    }

    private func check(
        _ response: String?,
        offered: ExtensionOffer? = PerMessageDeflate.clientOffer()
    ) throws(FramesError) -> PerMessageDeflateParameters? {
        let elements = response.map { try! ExtensionHeader.parse([$0]) } ?? []
        return try PerMessageDeflate.validateResponse(elements, offered: offered)
    }

    @Test func clientAcceptsValidAnswers() throws {
        #expect(try self.check(nil) == nil)
        #expect(try self.check("permessage-deflate") == PerMessageDeflateParameters())
        #expect(
            try self.check("permessage-deflate; server_max_window_bits=12; client_max_window_bits=8; client_no_context_takeover")
                == PerMessageDeflateParameters(clientNoContextTakeover: true, serverMaxWindowBits: 12, clientMaxWindowBits: 8)
        )
        let limited = PerMessageDeflate.clientOffer(.init(maxWindowBits: 10, noContextTakeover: false))
        #expect(
            try self.check("permessage-deflate; server_max_window_bits=9", offered: limited) == .init(serverMaxWindowBits: 9, clientMaxWindowBits: 10)
        )
    }

    @Test(arguments: [
        // RFC 6455 §4.1: an extension that was not offered.
        "x-webkit-deflate-frame",
        "permessage-deflate, permessage-deflate",
        "permessage-deflate; x=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=abc",
        "permessage-deflate; server_max_window_bits",
        // In a response client_max_window_bits needs a value.
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; client_no_context_takeover=1",
    ])
    func clientFailsInvalidAnswers(response: String) {
        #expect(throws: FramesError.invalidExtensionResponse) { try self.check(response) }
    }

    @Test func clientFailsAnswersBeyondTheOffer() {
        let noClientWindow = ExtensionOffer(name: "permessage-deflate")
        #expect(throws: FramesError.invalidExtensionResponse) {
            try self.check("permessage-deflate; client_max_window_bits=10", offered: noClientWindow)
        }
        let limited = PerMessageDeflate.clientOffer(.init(maxWindowBits: 10))
        #expect(throws: FramesError.invalidExtensionResponse) { try self.check("permessage-deflate; server_max_window_bits=11", offered: limited) }
        #expect(throws: FramesError.invalidExtensionResponse) {
            try self.check("permessage-deflate; server_max_window_bits=10; client_max_window_bits=12", offered: limited)
        }
        // server_max_window_bits offered must be answered.
        #expect(throws: FramesError.invalidExtensionResponse) { try self.check("permessage-deflate", offered: limited) }
        // server_no_context_takeover offered must be answered.
        var noTakeover = ExtensionOffer(name: "permessage-deflate")
        noTakeover.parameters = [.init(name: "server_no_context_takeover")]
        #expect(throws: FramesError.invalidExtensionResponse) { try self.check("permessage-deflate", offered: noTakeover) }
        // Nothing offered: any extension fails.
        #expect(throws: FramesError.invalidExtensionResponse) { try self.check("permessage-deflate", offered: nil) }
    }
}
