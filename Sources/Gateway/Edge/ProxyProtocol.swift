import NIOCore

/// Which PROXY protocol header a listener requires (`listeners[].proxy_protocol`).
public enum ProxyProtocolMode: String, Sendable, Hashable, CaseIterable {
    case off
    case v1
    case v2
    /// Either version, told apart by the first byte.
    case any
}

/// What a PROXY protocol header said about the connection.
struct ProxyHeader: Hashable, Sendable {
    /// The original client and its port; nil when the header carries no IP address (v1 `UNKNOWN`, v2
    /// `LOCAL`, `UNSPEC` or `UNIX`): then the connection's own peer stands (the spec's rule).
    var source: IPAddress?
    var sourcePort: Int?
    var destination: IPAddress?
    var destinationPort: Int?
    /// 1 or 2.
    var version: Int
    /// The bytes the header took (consumed from the stream).
    var length: Int
}

/// A hostile or malformed PROXY header: the connection is closed without reading further.
struct ProxyProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    enum Code: String, Hashable, Sendable, CustomStringConvertible {
        /// Neither `PROXY ` (v1) nor the 12-byte v2 signature, or a version the listener does not accept.
        case signature
        /// v1 longer than 107 bytes without CRLF, or a v2 length over the bound.
        case tooLong = "too-long"
        /// v1 line not `PROXY TCP4|TCP6 src dst sport dport` (or `PROXY UNKNOWN…`).
        case malformedV1 = "malformed-v1"
        /// v2 version nibble not 2, or command not LOCAL/PROXY.
        case versionOrCommand = "version-or-command"
        /// v2 address family not UNSPEC/INET/INET6/UNIX, or a transport other than STREAM/UNSPEC.
        case family
        /// v2 length shorter than the family's address block.
        case shortAddress = "short-address"

        var description: String { self.rawValue }
    }

    var code: Code
    var description: String { "PROXY protocol: \(self.code)" }

    static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    func hash(into hasher: inout Hasher) { hasher.combine(self.code) }
}

/// A streaming PROXY protocol v1/v2 decoder (haproxy.org/download/3.0/doc/proxy-protocol.txt) with
/// limits. ``decode(_:)`` looks at the bytes received so far: it returns the header once complete
/// (consuming exactly its bytes), nil when more bytes are needed (consuming nothing), and throws as
/// soon as the bytes seen cannot start a valid header, so a hostile peer is refused early.
struct ProxyProtocolDecoder {
    /// v1: "the maximum line length is 107 bytes including the CRLF" (spec §2.1).
    static let v1MaximumLength = 107
    /// v2 signature (spec §2.2).
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    private static let v1Prefix = Array("PROXY ".utf8)

    let mode: ProxyProtocolMode
    /// The largest v2 address-and-TLV length accepted (the 16-bit field allows 65,535). Default 1,024:
    /// room for cloud load balancers' TLVs (AWS, Azure, GCP send under 300 bytes).
    let maximumV2Length: Int

    init(mode: ProxyProtocolMode, maximumV2Length: Int = 1024) {
        self.mode = mode
        self.maximumV2Length = maximumV2Length
    }

    mutating func decode(_ buffer: inout ByteBuffer) throws(ProxyProtocolError) -> ProxyHeader? {
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
        let header: ProxyHeader?
        switch (first, self.mode) {
        case (UInt8(ascii: "P"), .v1), (UInt8(ascii: "P"), .any):
            header = try Self.decodeV1(buffer)
        case (0x0D, .v2), (0x0D, .any):
            header = try self.decodeV2(buffer)
        case (_, .off), (_, .v1), (_, .v2), (_, .any):
            throw ProxyProtocolError(code: .signature)
        }
        if let header { buffer.moveReaderIndex(forwardBy: header.length) }
        return header
    }

    // MARK: v1

    private static func decodeV1(_ buffer: ByteBuffer) throws(ProxyProtocolError) -> ProxyHeader? {
        let seen = buffer.readableBytesView.prefix(Self.v1MaximumLength)
        guard seen.starts(with: Self.v1Prefix.prefix(seen.count)) else { throw ProxyProtocolError(code: .signature) }
        guard let lf = seen.firstIndex(of: 0x0A) else {
            if seen.count >= Self.v1MaximumLength { throw ProxyProtocolError(code: .tooLong) }
            return nil
        }
        let start = seen.startIndex
        guard lf - start >= Self.v1Prefix.count + 1, seen[lf - 1] == 0x0D else { throw ProxyProtocolError(code: .malformedV1) }
        let length = lf - start + 1
        let line = Array(seen[(start + Self.v1Prefix.count)..<(lf - 1)])
        // Only printable ASCII on the line (the spec's grammar is ASCII; a NUL or CR inside is hostile).
        guard line.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { throw ProxyProtocolError(code: .malformedV1) }
        if line.elementsEqual("UNKNOWN".utf8) || line.starts(with: Array("UNKNOWN ".utf8)) {
            // "the receiver must ignore anything presented before the CRLF" (spec §2.1).
            return ProxyHeader(version: 1, length: length)
        }
        let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        guard fields.count == 5, fields[0] == "TCP4" || fields[0] == "TCP6",
            let source = IPAddress(fields[1]), let destination = IPAddress(fields[2]),
            fields[1].contains(":") == (fields[0] == "TCP6"), fields[2].contains(":") == (fields[0] == "TCP6"),
            let sourcePort = Self.port(fields[3]), let destinationPort = Self.port(fields[4])
        else { throw ProxyProtocolError(code: .malformedV1) }
        return ProxyHeader(
            source: source,
            sourcePort: sourcePort,
            destination: destination,
            destinationPort: destinationPort,
            version: 1,
            length: length
        )
    }

    /// A decimal port 0–65535, digits only.
    private static func port(_ text: String) -> Int? {
        guard (1...5).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let value = Int(text), value <= 65535 else {
            return nil
        }
        return value
    }

    // MARK: v2

    private func decodeV2(_ buffer: ByteBuffer) throws(ProxyProtocolError) -> ProxyHeader? {
        let seen = buffer.readableBytesView
        let signatureSeen = min(seen.count, Self.v2Signature.count)
        guard seen.prefix(signatureSeen).elementsEqual(Self.v2Signature.prefix(signatureSeen)) else {
            throw ProxyProtocolError(code: .signature)
        }
        guard let versionCommand = buffer.getInteger(at: buffer.readerIndex + 12, as: UInt8.self) else { return nil }
        // Version 2 (high nibble); command LOCAL (0) or PROXY (1).
        guard versionCommand >> 4 == 2, versionCommand & 0x0F <= 1 else { throw ProxyProtocolError(code: .versionOrCommand) }
        let isLocal = versionCommand & 0x0F == 0
        guard let familyTransport = buffer.getInteger(at: buffer.readerIndex + 13, as: UInt8.self) else { return nil }
        let family = familyTransport >> 4
        let transport = familyTransport & 0x0F
        // Families UNSPEC 0, INET 1, INET6 2, UNIX 3; transports UNSPEC 0, STREAM 1 (DGRAM is not this connection).
        guard family <= 3, transport <= 1 || isLocal else { throw ProxyProtocolError(code: .family) }
        guard let length = buffer.getInteger(at: buffer.readerIndex + 14, as: UInt16.self).map(Int.init) else { return nil }
        guard length <= self.maximumV2Length else { throw ProxyProtocolError(code: .tooLong) }
        let addressLength = [0, 12, 36, 216][Int(family)]
        guard isLocal || length >= addressLength else { throw ProxyProtocolError(code: .shortAddress) }
        guard seen.count >= 16 + length else { return nil }
        var header = ProxyHeader(version: 2, length: 16 + length)
        // LOCAL: the proxy speaks for itself (health checks); UNSPEC and UNIX carry no IP address.
        guard !isLocal, family == 1 || family == 2 else { return header }
        let body = buffer.getBytes(at: buffer.readerIndex + 16, length: addressLength)!
        let size = family == 1 ? 4 : 16
        header.source = IPAddress(bytes: Array(body[0..<size]))
        header.destination = IPAddress(bytes: Array(body[size..<(2 * size)]))
        header.sourcePort = Int(body[2 * size]) << 8 | Int(body[2 * size + 1])
        header.destinationPort = Int(body[2 * size + 2]) << 8 | Int(body[2 * size + 3])
        // TLVs (the rest of `length`) are skipped: nothing in them changes what the gateway believes.
        return header
    }
}
