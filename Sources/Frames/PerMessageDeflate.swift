/// The parameters of permessage-deflate (RFC 7692 §7.1) that both ends of one WebSocket connection
/// agreed on, from the negotiation response.
///
/// "Server" and "client" are the RFC's roles on that connection: the server compresses with a window of
/// at most ``serverMaxWindowBits`` and resets its compressor after each message when
/// ``serverNoContextTakeover`` is set; the same for the client.
public struct PerMessageDeflateParameters: Hashable, Sendable, CustomStringConvertible {
    /// `server_no_context_takeover` was in the response (RFC 7692 §7.1.1.1).
    public var serverNoContextTakeover: Bool
    /// `client_no_context_takeover` was in the response (RFC 7692 §7.1.1.2).
    public var clientNoContextTakeover: Bool
    /// The largest window (base-2 logarithm, 8–15) the server compresses with: the response's
    /// `server_max_window_bits`, 15 when absent (RFC 7692 §7.1.2.1).
    public var serverMaxWindowBits: Int
    /// The largest window (8–15) the client compresses with: the response's `client_max_window_bits`,
    /// 15 when absent (RFC 7692 §7.1.2.2).
    public var clientMaxWindowBits: Int

    public init(
        serverNoContextTakeover: Bool = false,
        clientNoContextTakeover: Bool = false,
        serverMaxWindowBits: Int = 15,
        clientMaxWindowBits: Int = 15
    ) {
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
    }

    /// Whether compressed messages sent by `sender` under `self` can be forwarded unchanged to a peer
    /// that inflates them under `receiving` (the same role on another connection): the receiver's window
    /// is at least the sender's, and a sender that keeps its context is matched by a receiver that keeps
    /// it too. Identical parameters always qualify.
    public func canForwardVerbatim(from sender: PerMessageDeflate.Role, to receiving: PerMessageDeflateParameters) -> Bool {
        switch sender {
        case .server:
            return receiving.serverMaxWindowBits >= self.serverMaxWindowBits
                && (self.serverNoContextTakeover || !receiving.serverNoContextTakeover)
        case .client:
            return receiving.clientMaxWindowBits >= self.clientMaxWindowBits
                && (self.clientNoContextTakeover || !receiving.clientNoContextTakeover)
        }
    }

    public var description: String {
        var parts: [String] = []
        if self.serverNoContextTakeover { parts.append("server_no_context_takeover") }
        if self.clientNoContextTakeover { parts.append("client_no_context_takeover") }
        if self.serverMaxWindowBits != 15 { parts.append("server_max_window_bits=\(self.serverMaxWindowBits)") }
        if self.clientMaxWindowBits != 15 { parts.append("client_max_window_bits=\(self.clientMaxWindowBits)") }
        return (["permessage-deflate"] + parts).joined(separator: "; ")
    }
}

/// permessage-deflate (RFC 7692): negotiation as a server and as a client. The codec is
/// ``PerMessageInflater`` and ``PerMessageDeflater``.
///
/// **Window bits 8.** zlib (1.2.9 and later, 1.2.13 here) refuses raw deflate with `windowBits` 8
/// (`deflateInit2` returns `Z_STREAM_ERROR`; older versions silently used 9, madler/zlib#171). So no
/// deflater is ever created with 8. When the agreed window for what *we* send is 8 (a client's
/// `server_max_window_bits=8` offer, or an upstream's `client_max_window_bits=8` answer) the offer is
/// accepted and our messages in that direction are sent **uncompressed** (RFC 7692 §6 lets an endpoint
/// send any message uncompressed); ``PerMessageDeflater/init(windowBits:noContextTakeover:level:memoryLevel:)``
/// is simply not called. Inflating with 8 works in zlib, but a peer whose zlib silently used 9 would
/// then fail, so inflaters use at least 9 (inflating with a larger window than the sender's is always
/// correct).
public enum PerMessageDeflate {
    /// The extension token (RFC 7692 §7).
    public static let extensionName = "permessage-deflate"

    /// One end of a connection, in the RFC's terms.
    public enum Role: Hashable, Sendable {
        case server
        case client
    }

    /// The range of `*_max_window_bits` values (RFC 7692 §7.1.2).
    public static let windowBitsRange = 8...15

    /// The most bytes a compressed payload that inflates to `inflated` bytes may take on the wire: zlib's
    /// conservative `deflateBound` for raw deflate, `n + ⌈n/8⌉ + ⌈n/64⌉ + 5` (fixed-Huffman coding spends
    /// at most 9 bits on a literal; stored blocks 5 bytes per block), plus 64 bytes for the empty blocks
    /// a sender's sync flushes add (one per fragment in practice). Incompressible data grows when
    /// deflated, so a message of exactly the limit after inflation is a few bytes larger on the wire:
    /// the parser allows a compressed message and frame this much (issue #10 item 4), and the inflater
    /// enforces the limit on what it produces. Saturates instead of overflowing.
    public static func maxCompressedSize(forInflated inflated: Int) -> Int {
        guard inflated < Int.max / 4 else { return Int.max }
        return inflated + (inflated + 7) / 8 + (inflated + 63) / 64 + 5 + 64
    }

    /// What an endpoint wants from the negotiation, within what the RFC allows it to ask.
    public struct Preferences: Hashable, Sendable {
        /// The largest window (9–15, or 8 to never compress) this endpoint compresses with, and the largest
        /// it asks the peer to compress with where the negotiation lets it ask. Default: 15.
        public var maxWindowBits: Int = 15
        /// This endpoint resets its compressor after every message (less memory across messages, less
        /// compression). As a server it answers `server_no_context_takeover`; as a client it offers
        /// `client_no_context_takeover`. Default: false.
        public var noContextTakeover: Bool = false

        public init(maxWindowBits: Int = 15, noContextTakeover: Bool = false) {
            self.maxWindowBits = maxWindowBits
            self.noContextTakeover = noContextTakeover
        }
    }

    /// Whether `name` is `permessage-deflate` (extension tokens compare case-insensitively).
    public static func isPerMessageDeflate(_ name: String) -> Bool {
        name.lowercased() == Self.extensionName
    }
}

// MARK: - Offers

extension PerMessageDeflate {
    /// A client's offer after validation (RFC 7692 §7.1).
    public struct Offer: Hashable, Sendable {
        public var serverNoContextTakeover = false
        public var clientNoContextTakeover = false
        /// `server_max_window_bits=N`; nil when absent.
        public var serverMaxWindowBits: Int?
        /// `client_max_window_bits` is present (with or without a value).
        public var clientMaxWindowBitsOffered = false
        /// Its value, if it had one.
        public var clientMaxWindowBits: Int?

        public init() {}
    }

    /// Why an offer (or a response) is not acceptable: each case is one rule of RFC 7692 §7.
    public enum Decline: Error, Hashable, Sendable, CustomStringConvertible {
        /// Not `permessage-deflate` at all.
        case otherExtension(String)
        /// "contains an extension parameter not defined for use in an offer/response".
        case unknownParameter(String)
        /// "contains multiple extension parameters with the same name".
        case duplicateParameter(String)
        /// "contains an extension parameter with an invalid value" (including a value on a parameter
        /// that takes none, and no value where one is required).
        case invalidValue(parameter: String, value: String?)
        /// The configuration the peer asks for is one this endpoint does not support.
        case unsupported(String)

        public var description: String {
            switch self {
            case .otherExtension(let name): "not permessage-deflate: \(ASCII.excerpt(name))"
            case .unknownParameter(let name): "unknown parameter \(ASCII.excerpt(name)) (RFC 7692 §7)"
            case .duplicateParameter(let name): "duplicate parameter \(name) (RFC 7692 §7)"
            case .invalidValue(let name, let value?): "invalid value \(ASCII.excerpt(value)) for \(name) (RFC 7692 §7.1)"
            case .invalidValue(let name, nil): "\(name) needs a value (RFC 7692 §7.1.2)"
            case .unsupported(let why): "unsupported: \(why)"
            }
        }
    }

    /// The four parameter names, lowercased.
    enum ParameterName: String, CaseIterable {
        case serverNoContextTakeover = "server_no_context_takeover"
        case clientNoContextTakeover = "client_no_context_takeover"
        case serverMaxWindowBits = "server_max_window_bits"
        case clientMaxWindowBits = "client_max_window_bits"
    }

    /// A window-bits value: a decimal integer 8–15 without leading zeros (RFC 7692 §7.1.2.1), so `"08"`,
    /// `"+9"` and `"16"` are invalid.
    static func windowBits(_ value: String) -> Int? {
        guard (1...2).contains(value.utf8.count), value.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
            value.utf8.first != 0x30, let bits = Int(value), Self.windowBitsRange.contains(bits)
        else { return nil }
        return bits
    }

    /// The parameters of one element, each name at most once, with the value rules shared by offers and
    /// responses: the two `*_no_context_takeover` parameters take no value, `server_max_window_bits`
    /// needs one, `client_max_window_bits` needs one unless `allowsBareClientWindow` (offers only).
    static func parameters(
        of element: ExtensionOffer,
        allowsBareClientWindow: Bool
    ) -> Result<[ParameterName: Int?], Decline> {
        guard Self.isPerMessageDeflate(element.name) else { return .failure(.otherExtension(element.name)) }
        var seen: [ParameterName: Int?] = [:]
        for parameter in element.parameters {
            guard let name = ParameterName(rawValue: parameter.name.lowercased()) else {
                return .failure(.unknownParameter(parameter.name))
            }
            guard seen[name] == nil else { return .failure(.duplicateParameter(name.rawValue)) }
            switch name {
            case .serverNoContextTakeover, .clientNoContextTakeover:
                if let value = parameter.value { return .failure(.invalidValue(parameter: name.rawValue, value: value)) }
                seen[name] = .some(nil)
            case .serverMaxWindowBits, .clientMaxWindowBits:
                guard let value = parameter.value else {
                    if name == .clientMaxWindowBits && allowsBareClientWindow {
                        seen[name] = .some(nil)
                        continue
                    }
                    return .failure(.invalidValue(parameter: name.rawValue, value: nil))
                }
                guard let bits = Self.windowBits(value) else {
                    return .failure(.invalidValue(parameter: name.rawValue, value: value))
                }
                seen[name] = .some(bits)
            }
        }
        return .success(seen)
    }

    /// Validates one element of a client's `Sec-WebSocket-Extensions` as a permessage-deflate offer
    /// (RFC 7692 §7: unknown, duplicate and invalid parameters decline it).
    public static func validateOffer(_ element: ExtensionOffer) -> Result<Offer, Decline> {
        Self.parameters(of: element, allowsBareClientWindow: true).map { seen in
            var offer = Offer()
            offer.serverNoContextTakeover = seen[.serverNoContextTakeover] != nil
            offer.clientNoContextTakeover = seen[.clientNoContextTakeover] != nil
            offer.serverMaxWindowBits = seen[.serverMaxWindowBits] ?? nil
            offer.clientMaxWindowBitsOffered = seen[.clientMaxWindowBits] != nil
            offer.clientMaxWindowBits = seen[.clientMaxWindowBits] ?? nil
            return offer
        }
    }
}

// MARK: - Server side

extension PerMessageDeflate {
    /// The result of answering a client's offers as a server.
    public struct ServerNegotiation: Hashable, Sendable {
        /// The agreed parameters and the response element, or nil when no offer was accepted.
        public var accepted: (parameters: PerMessageDeflateParameters, response: ExtensionOffer)? {
            guard let parameters = self.parameters, let response = self.response else { return nil }
            return (parameters, response)
        }
        public var parameters: PerMessageDeflateParameters?
        public var response: ExtensionOffer?
        /// Each permessage-deflate offer declined before the accepted one (or all, if none was), with
        /// its reason, in order.
        public var declined: [Decline] = []
        /// Names of offered extensions that are not permessage-deflate (never forwarded).
        public var otherExtensions: [String] = []
    }

    /// Answers a client's offers (RFC 7692 §7): the **first acceptable** permessage-deflate offer is
    /// accepted; an offer with an unknown or duplicate parameter or an invalid value is declined.
    ///
    /// The answer follows `preferences` where the RFC lets a server choose: our window is the smaller of
    /// our preference and the client's `server_max_window_bits` (which must be echoed, §7.1.2.1); the
    /// client's window is limited to our preference only if the offer allows it (`client_max_window_bits`
    /// present, §7.1.2.2); `server_no_context_takeover` is answered when offered (§7.1.1.1) or preferred.
    ///
    /// `matching`: when given (the parameters another connection agreed on, to forward compressed
    /// payloads verbatim), the accepted offer is answered with exactly those parameters if that answer
    /// is valid for it and within `preferences`; otherwise with the normal answer.
    public static func negotiateAsServer(
        offers: [ExtensionOffer],
        preferences: Preferences = Preferences(),
        matching: PerMessageDeflateParameters? = nil
    ) -> ServerNegotiation {
        var result = ServerNegotiation()
        for element in offers {
            guard Self.isPerMessageDeflate(element.name) else {
                result.otherExtensions.append(element.name)
                continue
            }
            guard result.parameters == nil else { continue }
            switch Self.validateOffer(element) {
            case .failure(let decline):
                result.declined.append(decline)
            case .success(let offer):
                let answer =
                    matching.flatMap { Self.answer(offer, with: $0, preferences: preferences) }
                    ?? Self.answer(offer, preferences: preferences)
                result.parameters = answer.parameters
                result.response = answer.response
            }
        }
        return result
    }

    /// The normal answer to a valid offer.
    static func answer(_ offer: Offer, preferences: Preferences) -> (parameters: PerMessageDeflateParameters, response: ExtensionOffer) {
        var parameters = PerMessageDeflateParameters()
        parameters.serverMaxWindowBits = min(offer.serverMaxWindowBits ?? 15, preferences.maxWindowBits)
        parameters.serverNoContextTakeover = offer.serverNoContextTakeover || preferences.noContextTakeover
        if offer.clientMaxWindowBitsOffered {
            parameters.clientMaxWindowBits = min(offer.clientMaxWindowBits ?? 15, preferences.maxWindowBits)
        }
        return (parameters, Self.response(parameters, echoingServerWindow: offer.serverMaxWindowBits != nil))
    }

    /// An answer with exactly `target`, if it is valid for `offer` and within `preferences`.
    static func answer(
        _ offer: Offer,
        with target: PerMessageDeflateParameters,
        preferences: Preferences
    ) -> (parameters: PerMessageDeflateParameters, response: ExtensionOffer)? {
        // §7.1.2.1: the response's server window must not exceed the offered one.
        if let offered = offer.serverMaxWindowBits, target.serverMaxWindowBits > offered { return nil }
        // §7.1.2.2: client_max_window_bits may only be answered if offered, at most the offered value.
        if target.clientMaxWindowBits < 15 {
            guard offer.clientMaxWindowBitsOffered, target.clientMaxWindowBits <= (offer.clientMaxWindowBits ?? 15) else { return nil }
        }
        // §7.1.1.1: an offered server_no_context_takeover must be answered.
        if offer.serverNoContextTakeover && !target.serverNoContextTakeover { return nil }
        guard target.serverMaxWindowBits <= preferences.maxWindowBits, target.clientMaxWindowBits <= preferences.maxWindowBits,
            target.serverNoContextTakeover || !preferences.noContextTakeover
        else { return nil }
        return (target, Self.response(target, echoingServerWindow: offer.serverMaxWindowBits != nil))
    }

    /// The response element for `parameters`; window values are written when below 15 (or when the
    /// offer had `server_max_window_bits`, which must be answered).
    static func response(_ parameters: PerMessageDeflateParameters, echoingServerWindow: Bool) -> ExtensionOffer {
        var response = ExtensionOffer(name: Self.extensionName)
        if parameters.serverNoContextTakeover {
            response.parameters.append(.init(name: ParameterName.serverNoContextTakeover.rawValue))
        }
        if parameters.clientNoContextTakeover {
            response.parameters.append(.init(name: ParameterName.clientNoContextTakeover.rawValue))
        }
        if parameters.serverMaxWindowBits < 15 || echoingServerWindow {
            response.parameters.append(.init(name: ParameterName.serverMaxWindowBits.rawValue, value: String(parameters.serverMaxWindowBits)))
        }
        if parameters.clientMaxWindowBits < 15 {
            response.parameters.append(.init(name: ParameterName.clientMaxWindowBits.rawValue, value: String(parameters.clientMaxWindowBits)))
        }
        return response
    }
}

// MARK: - Client side

extension PerMessageDeflate {
    /// The offer a client sends for `preferences`: always `client_max_window_bits` (we can follow any
    /// window the server asks for, 8 by sending uncompressed), with our limit as its value when below 15;
    /// `server_max_window_bits` when our limit is below 15 (bounds our inflater's memory);
    /// `client_no_context_takeover` when preferred.
    public static func clientOffer(_ preferences: Preferences = Preferences()) -> ExtensionOffer {
        var offer = ExtensionOffer(name: Self.extensionName)
        if preferences.noContextTakeover {
            offer.parameters.append(.init(name: ParameterName.clientNoContextTakeover.rawValue))
        }
        if preferences.maxWindowBits < 15 {
            offer.parameters.append(.init(name: ParameterName.serverMaxWindowBits.rawValue, value: String(preferences.maxWindowBits)))
            offer.parameters.append(.init(name: ParameterName.clientMaxWindowBits.rawValue, value: String(preferences.maxWindowBits)))
        } else {
            offer.parameters.append(.init(name: ParameterName.clientMaxWindowBits.rawValue))
        }
        return offer
    }

    /// Checks a server's `Sec-WebSocket-Extensions` answer against the single permessage-deflate element
    /// we offered (`offered`, or nothing when nil). Returns the agreed parameters, nil when the server
    /// declined, or throws ``FramesError/Code/invalidExtensionResponse`` when the client MUST fail the
    /// connection (RFC 6455 §4.1, RFC 7692 §7): an extension we did not offer, more than one element, an
    /// unknown, duplicate or invalid parameter, `client_max_window_bits` we did not offer, a window
    /// larger than we asked for, or a missing `server_no_context_takeover`/`server_max_window_bits` that
    /// the server must echo.
    public static func validateResponse(
        _ elements: [ExtensionOffer],
        offered: ExtensionOffer?
    ) throws(FramesError) -> PerMessageDeflateParameters? {
        guard let first = elements.first else { return nil }
        func fail(_ why: String) -> FramesError { FramesError(.invalidExtensionResponse, detail: why) }
        guard let offered else { throw fail("extension \(ASCII.excerpt(first.name)) was not offered") }
        guard elements.count == 1 else { throw fail("\(elements.count) extensions in the response, at most one was offered") }
        let ours: Offer
        switch Self.validateOffer(offered) {
        case .success(let offer): ours = offer
        case .failure(let decline): preconditionFailure("our own offer is invalid: \(decline)")
        }
        let seen: [ParameterName: Int?]
        switch Self.parameters(of: first, allowsBareClientWindow: false) {
        case .success(let parameters): seen = parameters
        case .failure(.otherExtension(let name)): throw fail("extension \(ASCII.excerpt(name)) was not offered")
        case .failure(let decline): throw fail(decline.description)
        }
        var parameters = PerMessageDeflateParameters()
        parameters.serverNoContextTakeover = seen[.serverNoContextTakeover] != nil
        parameters.clientNoContextTakeover = seen[.clientNoContextTakeover] != nil
        if ours.serverNoContextTakeover && !parameters.serverNoContextTakeover {
            throw fail("server_no_context_takeover was offered but not answered (RFC 7692 §7.1.1.1)")
        }
        if case .some(.some(let bits)) = seen[.serverMaxWindowBits] {
            if let limit = ours.serverMaxWindowBits, bits > limit {
                throw fail("server_max_window_bits=\(bits) is larger than the \(limit) offered (RFC 7692 §7.1.2.1)")
            }
            parameters.serverMaxWindowBits = bits
        } else if let limit = ours.serverMaxWindowBits {
            throw fail("server_max_window_bits=\(limit) was offered but not answered (RFC 7692 §7.1.2.1)")
        }
        if case .some(.some(let bits)) = seen[.clientMaxWindowBits] {
            guard ours.clientMaxWindowBitsOffered else {
                throw fail("client_max_window_bits was not offered (RFC 7692 §7.1.2.2)")
            }
            if let limit = ours.clientMaxWindowBits, bits > limit {
                throw fail("client_max_window_bits=\(bits) is larger than the \(limit) offered (RFC 7692 §7.1.2.2)")
            }
            parameters.clientMaxWindowBits = bits
        } else if let limit = ours.clientMaxWindowBits {
            // Our offer said we will not use more than `limit`; keep to it.
            parameters.clientMaxWindowBits = limit
        }
        return parameters
    }
}
