import Testing

@testable import Frames

/// Shorthands for expected values.
private func offer(_ name: String, _ parameters: (String, String?)...) -> ExtensionOffer {
    ExtensionOffer(name: name, parameters: parameters.map { ExtensionParameter(name: $0.0, value: $0.1) })
}

/// The parse error for `values`, or `nil` (and a recorded issue) if they parsed.
private func parseError(_ values: [String]) -> FramesError? {
    do {
        let offers = try ExtensionHeader.parse(values)
        Issue.record("expected an error, parsed \(offers)")
        return nil
    } catch {
        return error
    }
}

@Suite struct ExtensionHeaderTests {
    // MARK: - Valid input

    /// The examples of RFC 7692 §5, §7.1.2.1 and §7.1.2.2, and of RFC 6455 §9.1.
    @Test(arguments: [
        ("permessage-deflate; client_max_window_bits", [offer("permessage-deflate", ("client_max_window_bits", nil))]),
        (
            "permessage-deflate; client_max_window_bits=10, permessage-deflate",
            [offer("permessage-deflate", ("client_max_window_bits", "10")), offer("permessage-deflate")]
        ),
        (
            "permessage-deflate; server_max_window_bits=\"10\"",
            [offer("permessage-deflate", ("server_max_window_bits", "10"))]
        ),
        (
            "permessage-deflate; server_no_context_takeover; client_max_window_bits",
            [offer("permessage-deflate", ("server_no_context_takeover", nil), ("client_max_window_bits", nil))]
        ),
        ("foo, bar; baz=2", [offer("foo"), offer("bar", ("baz", "2"))]),
        ("deflate-stream", [offer("deflate-stream")]),
        (
            "mux; max-channels=4; flow-control, deflate-stream",
            [offer("mux", ("max-channels", "4"), ("flow-control", nil)), offer("deflate-stream")]
        ),
        ("private-extension", [offer("private-extension")]),
    ])
    func rfcExamplesParse(header: String, expected: [ExtensionOffer]) throws {
        #expect(try ExtensionHeader.parse([header]) == expected)
    }

    @Test func severalOffersKeepTheirOrder() throws {
        let header =
            "permessage-deflate; client_max_window_bits=15; server_max_window_bits=10, "
            + "permessage-deflate; client_max_window_bits, x-webkit-deflate-frame"
        #expect(
            try ExtensionHeader.parse([header]) == [
                offer("permessage-deflate", ("client_max_window_bits", "15"), ("server_max_window_bits", "10")),
                offer("permessage-deflate", ("client_max_window_bits", nil)),
                offer("x-webkit-deflate-frame"),
            ]
        )
    }

    /// RFC 7230 §3.2.2: repeated header fields are one comma-joined list.
    @Test func repeatedHeaderValuesAreOneList() throws {
        let values = ["permessage-deflate; client_max_window_bits", "foo", "bar; baz=2, qux"]
        let expected = [
            offer("permessage-deflate", ("client_max_window_bits", nil)), offer("foo"), offer("bar", ("baz", "2")),
            offer("qux"),
        ]
        #expect(try ExtensionHeader.parse(values) == expected)
        #expect(try ExtensionHeader.parse([values.joined(separator: ",")]) == expected)
        // Substrings and other sequences of StringProtocol work too.
        let line = "a; b, c"
        #expect(try ExtensionHeader.parse(line.split(separator: ",")) == [offer("a", ("b", nil)), offer("c")])
    }

    /// An empty field among non-empty ones is an empty list element, as in its comma-joined form.
    @Test func emptyRepeatedValueAmongOthersIsTolerated() throws {
        #expect(try ExtensionHeader.parse(["", "a", " , "]) == [offer("a")])
    }

    @Test func parametersWithoutValues() throws {
        #expect(
            try ExtensionHeader.parse(["x; a; b=1; c"]) == [offer("x", ("a", nil), ("b", "1"), ("c", nil))]
        )
    }

    /// Quoted-pair (RFC 7230 §3.2.6) is unescaped; the result must be a token (RFC 6455 §9.1).
    @Test(arguments: [
        (#"x; a="10""#, "10"),
        (#"x; a="\1\0""#, "10"),
        (#"x; a="a\-b""#, "a-b"),
        (#"x; a="\!#$%&'*+-.^_`|~""#, "!#$%&'*+-.^_`|~"),
        (#"x; a=!#$%&'*+-.^_`|~09AZaz"#, "!#$%&'*+-.^_`|~09AZaz"),
    ])
    func quotedValuesAreUnescaped(header: String, value: String) throws {
        #expect(try ExtensionHeader.parse([header]) == [offer("x", ("a", value))])
    }

    /// RFC 7230 §3.2.3: OWS (spaces and tabs) around `,`, `;` and `=`.
    @Test(arguments: [
        "x;a=1;b,y",
        "x ; a = 1 ; b , y",
        "\tx\t;\ta\t=\t1\t;\tb\t,\ty\t",
        "  x;   a=\"1\"  ;b   ,   y   ",
        " \t x \t ; \t a \t = \t \"1\" \t ; \t b \t , \t y \t ",
    ])
    func optionalWhitespaceIsAllowed(header: String) throws {
        #expect(try ExtensionHeader.parse([header]) == [offer("x", ("a", "1"), ("b", nil)), offer("y")])
    }

    /// RFC 7230 §7: empty list elements are ignored.
    @Test(arguments: [", a, , b,,", ",a,b", "a,b,", "a , , , b", "\t,\ta\t,\t\t,b\t,\t"])
    func emptyListElementsAreIgnored(header: String) throws {
        #expect(try ExtensionHeader.parse([header]) == [offer("a"), offer("b")])
    }

    /// Names are kept exactly as received (not case-folded); callers compare case-insensitively.
    @Test func namesKeepTheirCase() throws {
        #expect(
            try ExtensionHeader.parse(["PerMessage-Deflate; Client_Max_Window_Bits=10"])
                == [offer("PerMessage-Deflate", ("Client_Max_Window_Bits", "10"))]
        )
    }

    /// Duplicates are kept, in order: RFC 7692 §7 makes declining them the negotiation layer's job.
    @Test func duplicatesAreKeptInOrder() throws {
        #expect(
            try ExtensionHeader.parse(["d; b=1; a; b=2, d, d; b=1"]) == [
                offer("d", ("b", "1"), ("a", nil), ("b", "2")), offer("d"), offer("d", ("b", "1")),
            ]
        )
    }

    // MARK: - Malformed input

    /// Every malformed class, with the exact error code and the detail that names the fault and offset.
    @Test(arguments: [
        // No extension at all: extension-list = 1#extension.
        ("", "no extension"),
        ("   \t ", "no extension"),
        (",", "no extension"),
        (" ,, ,\t, ", "no extension"),
        // ';' with nothing after it.
        ("a;", "';' with no parameter after it at byte offset 1"),
        ("a ; ", "';' with no parameter after it at byte offset 2"),
        ("a;, b", "';' with no parameter after it at byte offset 1"),
        ("a;;b", "';' with no parameter after it at byte offset 1"),
        ("a; b; ; c", "';' with no parameter after it at byte offset 4"),
        // '=' with nothing after it.
        ("a; b=", "'=' with no value after it (parameter \"b\") at byte offset 4"),
        ("a; b = ", "'=' with no value after it (parameter \"b\") at byte offset 5"),
        ("a; b=, c", "'=' with no value after it (parameter \"b\") at byte offset 4"),
        ("a; b=; c", "'=' with no value after it (parameter \"b\") at byte offset 4"),
        // Unterminated quoted-string.
        (#"a; b="10"#, "unterminated quoted-string at byte offset 5"),
        (#"a; b=""#, "unterminated quoted-string at byte offset 5"),
        (#"a; b="1\"#, "unterminated quoted-string (ends in a '\\') at byte offset 5"),
        (#"a; b="1\""#, "unterminated quoted-string at byte offset 5"),
        // Quoted value that is not a token after unescaping.
        (#"a; b="""#, "quoted value \"\" is not a token after unescaping (RFC 6455 §9.1) at byte offset 5"),
        (#"a; b="1 0""#, "quoted value \"1 0\" is not a token"),
        (#"a; b="x,y""#, "quoted value \"x,y\" is not a token"),
        (#"a; b="x;y""#, "quoted value \"x;y\" is not a token"),
        (#"a; b="\"""#, "quoted value \"\"\" is not a token"),
        (#"a; b="\\""#, "quoted value \"\\\" is not a token"),
        ("a; b=\"\t\"", "is not a token"),
        // Control characters.
        (
            "a\u{0}",
            "control character 0x00 after extension \"a\" where ';', ',' or the end was expected at byte offset 1"
        ),
        ("a\r\n b", "control character 0x0D after extension \"a\""),
        ("\u{7F}", "control character 0x7F where an extension name (a token) was expected at byte offset 0"),
        ("a; b=\"1\u{1}\"", "control character 0x01 inside a quoted-string at byte offset 7"),
        ("a; b=\"1\\\u{1B}\"", "control character 0x1B inside a quoted-string at byte offset 8"),
        ("a; b\u{0B}", "control character 0x0B after extension \"a\""),
        // Non-ASCII bytes.
        ("é", "non-ASCII byte 0xC3 where an extension name (a token) was expected at byte offset 0"),
        ("aé", "non-ASCII byte 0xC3 after extension \"a\""),
        ("a; é", "non-ASCII byte 0xC3 where a parameter name (a token) was expected at byte offset 3"),
        ("a; b=é", "non-ASCII byte 0xC3 where a token or quoted-string value (a token) was expected at byte offset 5"),
        ("a; b=\"é\"", "non-ASCII byte 0xC3 inside a quoted-string at byte offset 6"),
        ("a; b=\"\\é\"", "non-ASCII byte 0xC3 inside a quoted-string at byte offset 7"),
        ("a\u{A0}", "non-ASCII byte 0xC2"),
        // Trailing garbage and misplaced separators.
        ("a b", "'b' after extension \"a\" where ';', ',' or the end was expected at byte offset 2"),
        ("a; b=c d", "'d' after extension \"a\" where ';', ',' or the end was expected at byte offset 7"),
        (#"a; b="c"d"#, "'d' after extension \"a\" where ';', ',' or the end was expected at byte offset 8"),
        ("a; b=\"c\"\"", "'\"' after extension \"a\" where ';', ',' or the end was expected at byte offset 8"),
        ("a=b", "'=' after extension \"a\" where ';', ',' or the end was expected at byte offset 1"),
        ("a; b=c=d", "'=' after extension \"a\""),
        ("a; b==c", "'=' where a token or quoted-string value (a token) was expected at byte offset 5"),
        (#""a""#, "'\"' where an extension name (a token) was expected at byte offset 0"),
        (#"a; "b""#, "'\"' where a parameter name (a token) was expected at byte offset 3"),
        ("a; b=@", "'@' where a token or quoted-string value (a token) was expected at byte offset 5"),
        ("a, ;b", "';' where an extension name (a token) was expected at byte offset 3"),
        ("a; =1", "'=' where a parameter name (a token) was expected at byte offset 3"),
        ("a; b(c)", "'(' after extension \"a\""),
        ("a/b", "'/' after extension \"a\""),
    ])
    func malformedHeaderIsRejected(header: String, detail: String) throws {
        #expect(throws: FramesError.malformedExtensionHeader) { try ExtensionHeader.parse([header]) }
        let error = try #require(parseError([header]))
        #expect(error.code == .malformedExtensionHeader)
        #expect(error.detail.contains(detail), "detail was: \(error.detail)")
        #expect(error.closeCode == .protocolError)
    }

    @Test func noValuesAtAllIsAnError() throws {
        #expect(throws: FramesError.malformedExtensionHeader) { try ExtensionHeader.parse([String]()) }
        #expect(throws: FramesError.malformedExtensionHeader) { try ExtensionHeader.parse(["", " ", ","]) }
    }

    /// The byte offset is relative to the value it is in, and the detail names that value.
    @Test func errorDetailNamesTheValue() throws {
        let error = try #require(parseError(["a", "b; c="]))
        #expect(error.detail == "'=' with no value after it (parameter \"c\") at byte offset 4 of header value 1")
    }

    /// A bad value among good ones fails the whole header.
    @Test func oneMalformedValueFailsTheHeader() {
        #expect(throws: FramesError.malformedExtensionHeader) { try ExtensionHeader.parse(["a", "b;", "c"]) }
    }

    // MARK: - Serialisation

    @Test func serializeIsCanonical() {
        let offers = [
            offer("permessage-deflate", ("client_max_window_bits", "10"), ("server_no_context_takeover", nil)),
            offer("foo"),
        ]
        #expect(
            ExtensionHeader.serialize(offers)
                == "permessage-deflate; client_max_window_bits=10; server_no_context_takeover, foo"
        )
        #expect(ExtensionHeader.serialize([]) == "")
    }

    /// A non-token value is written as a quoted-string with `"` and `\` escaped.
    @Test func serializeQuotesNonTokenValues() {
        #expect(ExtensionHeader.serialize([offer("a", ("b", #"x y"\"#))]) == #"a; b="x y\"\\""#)
        #expect(ExtensionHeader.serialize([offer("a", ("b", ""))]) == #"a; b="""#)
    }

    @Test(arguments: [
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; client_max_window_bits=10, permessage-deflate",
        "permessage-deflate; server_max_window_bits=\"10\"",
        " \t x \t ; \t a \t = \t \"1\" \t ; \t b \t , \t y \t ",
        ", a, , b,,",
        #"x; a="\1\0"; b=!#$%&'*+-.^_`|~09AZaz, Y; Z"#,
        "d; b=1; a; b=2, d, d; b=1",
    ])
    func serializeThenParseRoundTrips(header: String) throws {
        let offers = try ExtensionHeader.parse([header])
        let serialized = ExtensionHeader.serialize(offers)
        #expect(try ExtensionHeader.parse([serialized]) == offers)
        #expect(ExtensionHeader.serialize(try ExtensionHeader.parse([serialized])) == serialized)
    }

    @Test func handBuiltOffersRoundTrip() throws {
        let offers = [
            offer("permessage-deflate", ("client_max_window_bits", "15"), ("client_no_context_takeover", nil)),
            offer("x-custom", ("k", "v"), ("k", "v"), ("flag", nil)),
            offer("bare"),
        ]
        #expect(try ExtensionHeader.parse([ExtensionHeader.serialize(offers)]) == offers)
    }

    // MARK: - Linear time (step counts, not timing)

    /// 1 MiB inputs built to make a backtracking parser (CVE-2020-7662) go quadratic or worse. They are
    /// built inside the test (not passed as arguments) so that test-case names stay short.
    enum HostileInput: String, CaseIterable, Sendable {
        case semicolonChain, unterminatedEscapes, unterminatedQuote, commasOnly, owsThenGarbage, emptyParameters
        case trailingEquals, equalsChain, longTokenThenGarbage, longParameterNameThenEquals
        case manyOffers, manyParameters, longQuotedToken, longToken, manyValues, manyEmptyValues

        static let size = 1 << 20

        var values: [String] {
            let n = Self.size
            switch self {
            case .semicolonChain: return [String(repeating: "a;", count: n / 2)]
            case .unterminatedEscapes: return ["a; b=\"" + String(repeating: "\\\\", count: n / 2)]
            case .unterminatedQuote: return ["a; b=\"" + String(repeating: "x", count: n)]
            case .commasOnly: return [String(repeating: ",", count: n)]
            case .owsThenGarbage: return ["a" + String(repeating: " \t", count: n / 2) + "\u{1}"]
            case .emptyParameters: return ["a" + String(repeating: "; b", count: n / 3) + "; ;"]
            case .trailingEquals: return ["a" + String(repeating: "; b=c", count: n / 5) + "; d="]
            case .equalsChain: return ["a; b" + String(repeating: "=", count: n)]
            case .longTokenThenGarbage: return [String(repeating: "t", count: n) + " x"]
            case .longParameterNameThenEquals: return ["a; " + String(repeating: "p", count: n) + " = ,"]
            case .manyOffers: return [String(repeating: "a, ", count: n / 3)]
            case .manyParameters: return ["a" + String(repeating: "; b=\"c\"", count: n / 8)]
            case .longQuotedToken: return ["a; b=\"" + String(repeating: "\\x", count: n / 2) + "\""]
            case .longToken: return [String(repeating: "t", count: n)]
            case .manyValues: return Array(repeating: "a; b", count: n / 4)
            case .manyEmptyValues: return Array(repeating: " ,", count: n / 2)
            }
        }

        /// Whether the input is valid, and whether the scanner must read all of it before deciding.
        var isValid: Bool {
            switch self {
            case .manyOffers, .manyParameters, .longQuotedToken, .longToken, .manyValues: true
            case .semicolonChain, .unterminatedEscapes, .unterminatedQuote, .commasOnly, .owsThenGarbage,
                .emptyParameters, .trailingEquals, .equalsChain, .longTokenThenGarbage,
                .longParameterNameThenEquals, .manyEmptyValues:
                false
            }
        }
        var failsFast: Bool { self == .equalsChain }
    }

    /// Catalog H-14: pathological Sec-WebSocket-Extensions values (unclosed quotes, escape runs, long lists) parse in linear steps and fail with a short error.
    @Test(arguments: HostileInput.allCases)
    func scanIsLinearOnHostileInput(input: HostileInput) {
        let values = input.values
        var steps = 0
        let result = Result { () throws(FramesError) in try ExtensionHeader.parse(values, steps: &steps) }
        let bytes = values.reduce(0) { $0 + $1.utf8.count }
        // Each position of a value (its bytes and its end) is inspected at most three times.
        #expect(steps <= 3 * (bytes + values.count), "\(steps) steps for \(bytes) bytes")
        if !input.failsFast {
            #expect(steps >= bytes, "\(steps) steps for \(bytes) bytes: the input must be read to the end")
        }
        switch result {
        case .success:
            #expect(input.isValid)
        case .failure(let error):
            #expect(!input.isValid, "failed: \(error)")
            #expect(error.code == .malformedExtensionHeader)
            #expect(error.detail.utf8.count < 300, "the detail must not echo the input: \(error.detail.prefix(300))")
        }
    }

    /// The step bound holds on every short input too, not just the big ones.
    @Test func stepBoundHoldsOnEveryShortInput() {
        let alphabet: [String] = ["a", " ", ",", ";", "=", "\"", "\\", "\t", "é", "\u{1}"]
        var inputs = [""]
        for _ in 0..<4 {
            inputs = inputs.flatMap { prefix in alphabet.map { prefix + $0 } }
            for input in inputs {
                var steps = 0
                _ = try? ExtensionHeader.parse([input], steps: &steps)
                #expect(steps <= 3 * (input.utf8.count + 1), "\(input.debugDescription): \(steps) steps")
            }
        }
    }
}
