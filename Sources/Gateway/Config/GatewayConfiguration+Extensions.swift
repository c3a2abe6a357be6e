import Frames

extension GatewayConfiguration {
    /// What a route does with WebSocket extensions, per leg (DESIGN §4). Only permessage-deflate
    /// (RFC 7692) is implemented; every other extension a client offers is dropped (never forwarded)
    /// and counted.
    public struct Extensions: Sendable, Hashable {
        public var permessageDeflate: PerMessageDeflatePolicy

        public init(permessageDeflate: PerMessageDeflatePolicy = PerMessageDeflatePolicy()) {
            self.permessageDeflate = permessageDeflate
        }
    }

    /// `negotiate` or `strip` for one leg. A struct over an internal enum (STYLE P9), so cases can be
    /// added (`require`) without breaking switches elsewhere.
    public struct ExtensionMode: Sendable, Hashable, CustomStringConvertible {
        enum Base: String, Sendable, Hashable {
            case negotiate
            case strip
        }

        let base: Base

        /// Client leg: the gateway answers the client's offers itself. Upstream leg: the gateway offers
        /// the extension to the upstream and checks the answer (an invalid one is a 502).
        public static let negotiate = ExtensionMode(base: .negotiate)
        /// No extension on that leg: client offers are not answered, nothing is offered upstream.
        public static let strip = ExtensionMode(base: .strip)

        public var isNegotiate: Bool { self.base == .negotiate }
        public var description: String { self.base.rawValue }

        init(base: Base) { self.base = base }

        /// `negotiate` or `strip`; nil otherwise.
        public init?(_ text: String) {
            guard let base = Base(rawValue: text) else { return nil }
            self.base = base
        }
    }

    /// permessage-deflate per leg. Default: `strip` on both legs (no compression anywhere).
    public struct PerMessageDeflatePolicy: Sendable, Hashable {
        /// Toward the client. Default: strip.
        public var client: ExtensionMode = .strip
        /// Toward the upstream. Default: strip.
        public var upstream: ExtensionMode = .strip
        /// The largest LZ77 window (base-2 logarithm, 9–15) the gateway compresses with and asks peers to
        /// compress with where RFC 7692 lets it ask: `server_max_window_bits`/`client_max_window_bits` in
        /// the client-leg answer (the latter only if the client offered it), both in the upstream offer
        /// when below 15. Smaller windows use less memory per connection (a 15-bit deflater holds about
        /// 256 KiB, an inflater 32 KiB + 7 KiB). Default: 15.
        public var maxWindowBits: Int = 15
        /// The gateway resets its own compressor after each message (`server_no_context_takeover` in the
        /// client-leg answer, `client_no_context_takeover` in the upstream offer). Default: false.
        public var noContextTakeover: Bool = false
        /// zlib level 0–9 for what the gateway compresses. Default: 1 (about 4× the speed of 6 for about
        /// 10 % more bytes on JSON-like text; ../shared/TOOLCHAIN.md §3).
        public var compressionLevel: Int = 1
        /// zlib memLevel 1–9 of the gateway's compressors (hash memory 2^(memLevel+9) bytes). Default: 8.
        public var memoryLevel: Int = 8

        public init(client: ExtensionMode = .strip, upstream: ExtensionMode = .strip) {
            self.client = client
            self.upstream = upstream
        }

        /// What the gateway asks for in the negotiation.
        var preferences: PerMessageDeflate.Preferences {
            PerMessageDeflate.Preferences(maxWindowBits: self.maxWindowBits, noContextTakeover: self.noContextTakeover)
        }
    }
}
