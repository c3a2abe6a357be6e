/// One parameter of an extension offer: `extension-param = token [ "=" (token | quoted-string) ]`
/// (RFC 6455 §9.1).
///
/// ``name`` and ``value`` hold exactly the bytes received (a quoted value is stored unescaped, without
/// its quotes). Names are **not** case-folded: RFC 6455 §9.1 extension and parameter names are tokens,
/// and the negotiation layer compares them case-insensitively; keeping them as received lets an
/// intercepting gateway forward a header byte-for-byte equivalent to what the peer sent.
public struct ExtensionParameter: Hashable, Sendable {
    /// The parameter name (an RFC 7230 §3.2.6 token), as received.
    public var name: String
    /// The parameter value, or `nil` for a parameter without `=` (e.g. `client_max_window_bits`,
    /// RFC 7692 §7.1.2.1). A quoted-string value is stored unescaped; RFC 6455 §9.1 requires it to be a
    /// token after unescaping, so a parsed value is always a token.
    public var value: String?

    public init(name: String, value: String? = nil) {
        self.name = name
        self.value = value
    }
}

/// One element of `extension-list`: `extension = extension-token *( ";" extension-param )`
/// (RFC 6455 §9.1).
///
/// Parameter order is preserved and duplicate parameters are kept: RFC 7692 §7 says an offer with a
/// duplicated parameter must be declined, and that is the negotiation layer's decision, not the
/// grammar's.
public struct ExtensionOffer: Hashable, Sendable {
    /// The extension name (an RFC 7230 §3.2.6 token), as received: not case-folded.
    public var name: String
    /// The parameters in the order received, duplicates included.
    public var parameters: [ExtensionParameter]

    public init(name: String, parameters: [ExtensionParameter] = []) {
        self.name = name
        self.parameters = parameters
    }
}

/// The `Sec-WebSocket-Extensions` header grammar of RFC 6455 §9.1, with the token, quoted-string and
/// OWS rules of RFC 7230 §3.2.3/§3.2.6 and the list rule of RFC 7230 §7:
///
/// ```
/// Sec-WebSocket-Extensions = extension-list
/// extension-list = 1#extension
/// extension = extension-token *( ";" extension-param )
/// extension-param = token [ "=" (token | quoted-string) ]
///     ; a quoted-string value, after unescaping, MUST conform to the token ABNF.
/// ```
///
/// What is accepted:
/// - OWS (spaces and horizontal tabs) around `,`, `;` and `=`;
/// - empty list elements (`a, , b`, leading and trailing commas): RFC 7230 §7 says a recipient MUST
///   accept and ignore a reasonable number of them;
/// - repeated header fields: RFC 7230 §3.2.2 makes them equivalent to one field whose values are
///   joined with commas, so `["a", "b"]` parses exactly like `["a, b"]` and an empty field among
///   non-empty ones is an empty list element.
///
/// What throws ``FramesError/Code/malformedExtensionHeader`` (with a ``FramesError/detail`` naming the
/// problem and its byte offset inside the header value):
/// - no extension at all (no values, or only OWS and commas): `1#extension` needs one;
/// - a byte that is not a tchar where a token is expected, including control characters and any
///   non-ASCII byte;
/// - `;` with no parameter after it, `=` with no value after it;
/// - an unterminated quoted-string, a control or non-ASCII byte inside one, or a quoted value that is
///   empty or not a token after unescaping;
/// - anything after an extension or parameter other than `;`, `,` or the end of the value.
///
/// > Important: The parser is a hand-written single pass over the UTF-8 bytes, with no regular
/// > expression and no backtracking, so its cost is linear in the input on every input, valid or
/// > hostile. CVE-2020-7662 was a regular-expression denial of service in the `websocket-extensions`
/// > npm package: a crafted `Sec-WebSocket-Extensions` value made its backtracking regex take
/// > exponential time and stalled the server. Here every byte is inspected a bounded number of times
/// > (the tests assert that the scanner's step counter stays ≤ 3·(n + 1) on 1 MiB hostile inputs), and
/// > each token or quoted value is copied once.
public enum ExtensionHeader {
    /// Parses one or more `Sec-WebSocket-Extensions` field values (the header may be repeated; each
    /// value is a comma-separated list) into offers, in order.
    ///
    /// - Throws: ``FramesError/malformedExtensionHeader`` when the values do not follow RFC 6455 §9.1
    ///   (see ``ExtensionHeader``).
    public static func parse<S: Sequence>(
        _ values: S
    ) throws(FramesError) -> [ExtensionOffer] where S.Element: StringProtocol {
        var steps = 0
        return try Self.parse(values, steps: &steps)
    }

    /// ``parse(_:)`` that also reports how many byte inspections the scanner made, so tests can check
    /// that the cost is linear without timing anything.
    static func parse<S: Sequence>(
        _ values: S,
        steps: inout Int
    ) throws(FramesError) -> [ExtensionOffer] where S.Element: StringProtocol {
        var scanner = ExtensionHeaderScanner()
        defer { steps = scanner.steps }
        for value in values {
            try scanner.scan(value)
        }
        return try scanner.finish()
    }

    /// Serialises offers into one header value in the canonical form `name; p1; p2=v, other`.
    ///
    /// A value that is a token is written bare; any other value is written as a quoted-string with `"`
    /// and `\` escaped (RFC 7230 §3.2.6). Names are written as given and are not validated: offers
    /// returned by ``parse(_:)`` always round-trip (`parse([serialize(x)]) == x`), while a caller that
    /// builds offers by hand must use tokens (a non-token value would be serialised but then rejected
    /// by a strict parser, because RFC 6455 §9.1 requires values to be tokens).
    public static func serialize(_ offers: [ExtensionOffer]) -> String {
        var out = ""
        for (index, offer) in offers.enumerated() {
            if index > 0 { out += ", " }
            out += offer.name
            for parameter in offer.parameters {
                out += "; "
                out += parameter.name
                guard let value = parameter.value else { continue }
                out += "="
                if HTTPSyntax.isToken(value) {
                    out += value
                } else {
                    out += "\""
                    for scalar in value.unicodeScalars {
                        if scalar == "\"" || scalar == "\\" { out += "\\" }
                        out.unicodeScalars.append(scalar)
                    }
                    out += "\""
                }
            }
        }
        return out
    }
}

/// The single-pass scanner behind ``ExtensionHeader/parse(_:)``: one instance per header, fed each field
/// value in turn with ``scan(_:)``, then ``finish()``.
///
/// Every byte read goes through `peek`, which counts it in ``steps``. Each position of a value (its n
/// bytes and its end) is inspected at most three times: by the loop that stops on it, by at most one
/// OWS skip that returns it to its caller for dispatch, and by the token scan that starts on it. So a
/// value of n bytes costs at most `3·(n + 1)` steps, on any input.
struct ExtensionHeaderScanner {
    /// The offers parsed so far, over all values.
    private(set) var offers: [ExtensionOffer] = []
    /// Byte inspections so far (the linear-time witness for tests).
    private(set) var steps = 0
    /// Index of the value being scanned, for error details.
    private var valueIndex = -1
    /// Reused buffer for the unescaped content of a quoted-string.
    private var scratch: [UInt8] = []

    /// Scans one field value (a `#extension` list) and appends its offers.
    mutating func scan(_ value: some StringProtocol) throws(FramesError) {
        self.valueIndex += 1
        let contiguous: Result<Void, FramesError>? = value.utf8.withContiguousStorageIfAvailable { bytes in
            Result { () throws(FramesError) in try self.scanList(bytes) }
        }
        if let contiguous {
            try contiguous.get()
        } else {
            let copy = Array(value.utf8)
            try copy.withUnsafeBufferPointer { bytes in
                Result { () throws(FramesError) in try self.scanList(bytes) }
            }.get()
        }
    }

    /// Returns the offers of all values, or throws if there were none: RFC 6455 §9.1
    /// `extension-list = 1#extension` needs at least one element (RFC 7230 §7: empty elements do not
    /// count).
    func finish() throws(FramesError) -> [ExtensionOffer] {
        guard !self.offers.isEmpty else {
            throw FramesError(
                .malformedExtensionHeader,
                detail: "no extension in \(self.valueIndex + 1) header value(s): extension-list = 1#extension "
                    + "needs at least one (RFC 6455 §9.1)"
            )
        }
        return self.offers
    }

    /// The byte at `index`, or `nil` at the end; counts one step.
    private mutating func peek(_ bytes: UnsafeBufferPointer<UInt8>, _ index: Int) -> UInt8? {
        self.steps &+= 1
        return index < bytes.count ? bytes[index] : nil
    }

    /// Skips OWS (RFC 7230 §3.2.3) from `index`. Returns the index of the first byte that is not OWS and
    /// that byte (`nil` at the end), so callers dispatch on it without reading it again.
    private mutating func skipOWS(_ bytes: UnsafeBufferPointer<UInt8>, from index: Int) -> (Int, UInt8?) {
        var index = index
        while let byte = self.peek(bytes, index) {
            guard ASCII.isOWS(byte) else { return (index, byte) }
            index += 1
        }
        return (index, nil)
    }

    /// RFC 7230 §7 `1#element` with empty elements tolerated:
    /// `[ ( "," / element ) *( OWS "," [ OWS element ] ) ]`.
    private mutating func scanList(_ bytes: UnsafeBufferPointer<UInt8>) throws(FramesError) {
        var index = 0
        while true {
            let byte: UInt8?
            (index, byte) = self.skipOWS(bytes, from: index)
            switch byte {
            case nil:
                return
            case ASCII.comma?:
                index += 1  // an empty list element
            case .some:
                guard let next = try self.scanExtension(bytes, from: index) else { return }
                index = next
            }
        }
    }

    /// `extension = extension-token *( ";" extension-param )`, followed by OWS and then `,` (consumed)
    /// or the end of the value. Returns the index after the `,`, or `nil` at the end of the value.
    private mutating func scanExtension(
        _ bytes: UnsafeBufferPointer<UInt8>,
        from start: Int
    ) throws(FramesError) -> Int? {
        let (name, afterName) = try self.scanToken(bytes, from: start, expected: "an extension name")
        var offer = ExtensionOffer(name: name)
        var index = afterName
        var next: Int?
        while true {
            let found: UInt8?
            (index, found) = self.skipOWS(bytes, from: index)
            guard let byte = found else {
                next = nil
                break
            }
            if byte == ASCII.comma {
                next = index + 1
                break
            }
            guard byte == ASCII.semicolon else {
                let what = "\(ASCII.describe(byte)) after extension \"\(ASCII.excerpt(name))\""
                throw self.error("\(what) where ';', ',' or the end was expected", at: index)
            }
            let semicolon = index
            let afterSemicolon: UInt8?
            (index, afterSemicolon) = self.skipOWS(bytes, from: index + 1)
            switch afterSemicolon {
            case nil, ASCII.comma?, ASCII.semicolon?:
                throw self.error("';' with no parameter after it", at: semicolon)
            case .some:
                break
            }
            let parameter: ExtensionParameter
            (parameter, index) = try self.scanParameter(bytes, from: index)
            offer.parameters.append(parameter)
        }
        self.offers.append(offer)
        return next
    }

    /// `extension-param = token [ "=" (token | quoted-string) ]` with OWS allowed around `=`.
    private mutating func scanParameter(
        _ bytes: UnsafeBufferPointer<UInt8>,
        from start: Int
    ) throws(FramesError) -> (ExtensionParameter, Int) {
        let (name, end) = try self.scanToken(bytes, from: start, expected: "a parameter name")
        let (equals, afterName) = self.skipOWS(bytes, from: end)
        guard afterName == ASCII.equals else {
            return (ExtensionParameter(name: name), equals)
        }
        let (valueStart, first) = self.skipOWS(bytes, from: equals + 1)
        switch first {
        case nil, ASCII.comma?, ASCII.semicolon?:
            throw self.error("'=' with no value after it (parameter \"\(ASCII.excerpt(name))\")", at: equals)
        case ASCII.doubleQuote?:
            let (value, end) = try self.scanQuotedToken(bytes, from: valueStart)
            return (ExtensionParameter(name: name, value: value), end)
        case .some:
            let (value, end) = try self.scanToken(bytes, from: valueStart, expected: "a token or quoted-string value")
            return (ExtensionParameter(name: name, value: value), end)
        }
    }

    /// RFC 7230 §3.2.6 `token = 1*tchar`, starting at `start`. Returns the token and the index after it.
    private mutating func scanToken(
        _ bytes: UnsafeBufferPointer<UInt8>,
        from start: Int,
        expected: String
    ) throws(FramesError) -> (String, Int) {
        var index = start
        while let byte = self.peek(bytes, index), ASCII.isTchar(byte) { index += 1 }
        guard index > start else {
            let found = index < bytes.count ? ASCII.describe(bytes[index]) : "the end of the value"
            throw self.error("\(found) where \(expected) (a token) was expected", at: start)
        }
        return (String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self), index)
    }

    /// RFC 7230 §3.2.6 `quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE` whose unescaped content
    /// must be a token (RFC 6455 §9.1). `start` is the index of the opening quote. Returns the unescaped
    /// value and the index after the closing quote.
    private mutating func scanQuotedToken(
        _ bytes: UnsafeBufferPointer<UInt8>,
        from start: Int
    ) throws(FramesError) -> (String, Int) {
        self.scratch.removeAll(keepingCapacity: true)
        var isToken = true
        var index = start + 1
        scanning: while true {
            guard var byte = self.peek(bytes, index) else {
                throw self.error("unterminated quoted-string", at: start)
            }
            switch byte {
            case ASCII.doubleQuote:
                index += 1
                break scanning
            case ASCII.backslash:
                // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                index += 1
                guard let escaped = self.peek(bytes, index) else {
                    throw self.error("unterminated quoted-string (ends in a '\\')", at: start)
                }
                byte = escaped
            default:
                break
            }
            guard ASCII.isQuotable(byte) else {
                throw self.error("\(ASCII.describe(byte)) inside a quoted-string", at: index)
            }
            isToken = isToken && ASCII.isTchar(byte)
            self.scratch.append(byte)
            index += 1
        }
        guard isToken, !self.scratch.isEmpty else {
            let shown = ASCII.excerpt(String(decoding: self.scratch, as: UTF8.self))
            throw self.error(
                "quoted value \"\(shown)\" is not a token after unescaping (RFC 6455 §9.1)",
                at: start
            )
        }
        return (String(decoding: self.scratch, as: UTF8.self), index)
    }

    /// A ``FramesError/Code/malformedExtensionHeader`` error saying what was wrong and where.
    private func error(_ what: String, at offset: Int) -> FramesError {
        FramesError(
            .malformedExtensionHeader,
            detail: "\(what) at byte offset \(offset) of header value \(self.valueIndex)"
        )
    }
}
