import NIOCore
import TestPeers
import Testing

@testable import Gateway

/// The PROXY protocol decoder (issue #11 §1) against valid v1/v2 headers split at every byte, and
/// hostile ones: truncated, oversized, wrong signature, unknown version, command or family, lying
/// lengths. A hostile header throws as soon as its bytes show it, without waiting for more.
@Suite struct ProxyProtocolTests {
    static let v1TCP4 = Array("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n".utf8)
    static let v1TCP6 = Array("PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n".utf8)

    /// A v2 header: `command` 0x20 LOCAL / 0x21 PROXY, `family` 0x11 INET+STREAM etc.
    static func v2(command: UInt8 = 0x21, family: UInt8 = 0x11, body: [UInt8]? = nil, length: Int? = nil) -> [UInt8] {
        let body =
            body
            ?? {
                switch family >> 4 {
                case 1: return [192, 0, 2, 1, 198, 51, 100, 2, 0xDC, 0x04, 0x01, 0xBB]
                case 2:
                    return [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [1] + [0x20, 0x01, 0x0D, 0xB8]
                        + [UInt8](repeating: 0, count: 11) + [2] + [0xDC, 0x04, 0x01, 0xBB]
                case 3: return [UInt8](repeating: 0x61, count: 216)
                default: return []
                }
            }()
        let length = length ?? body.count
        return ProxyProtocolDecoder.v2Signature + [command, family, UInt8(length >> 8), UInt8(length & 0xFF)] + body
    }

    static func decode(_ bytes: [UInt8], mode: ProxyProtocolMode = .any) throws(ProxyProtocolError) -> (ProxyHeader?, Int) {
        var decoder = ProxyProtocolDecoder(mode: mode)
        var buffer = ByteBuffer(bytes: bytes)
        let header = try decoder.decode(&buffer)
        return (header, buffer.readableBytes)
    }

    /// Feeds `bytes` split at every byte: nil until the last byte, then the header.
    static func decodeSplitAtEveryByte(_ bytes: [UInt8], mode: ProxyProtocolMode = .any) throws -> ProxyHeader {
        for cut in 0..<bytes.count {
            let (partial, left) = try Self.decode(Array(bytes[..<cut]), mode: mode)
            #expect(partial == nil, "complete after \(cut) of \(bytes.count) bytes")
            #expect(left == cut, "consumed bytes of an incomplete header")
        }
        let (header, left) = try Self.decode(bytes + Array("GET".utf8), mode: mode)
        #expect(left == 3, "the bytes behind the header are left for the next handler")
        return try #require(header)
    }

    @Test func v1TCP4AndTCP6() throws {
        let four = try Self.decodeSplitAtEveryByte(Self.v1TCP4)
        #expect(four.source?.description == "192.0.2.1" && four.sourcePort == 56324)
        #expect(four.destination?.description == "198.51.100.2" && four.destinationPort == 443)
        #expect(four.version == 1 && four.length == Self.v1TCP4.count)
        let six = try Self.decodeSplitAtEveryByte(Self.v1TCP6, mode: .v1)
        #expect(six.source?.description == "2001:db8::1")
    }

    @Test func v1UnknownKeepsTheConnectionsAddress() throws {
        let header = try Self.decodeSplitAtEveryByte(Array("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n".utf8))
        #expect(header.source == nil)
        #expect(try Self.decodeSplitAtEveryByte(Array("PROXY UNKNOWN\r\n".utf8)).source == nil)
    }

    @Test func v2InetInet6LocalUnspecUnixAndTLVs() throws {
        let inet = try Self.decodeSplitAtEveryByte(Self.v2())
        #expect(inet.source?.description == "192.0.2.1" && inet.sourcePort == 56324 && inet.destinationPort == 443 && inet.version == 2)
        let inet6 = try Self.decodeSplitAtEveryByte(Self.v2(family: 0x21), mode: .v2)
        #expect(inet6.source?.description == "2001:db8::1" && inet6.destination?.description == "2001:db8::2")
        #expect(try Self.decodeSplitAtEveryByte(Self.v2(command: 0x20)).source == nil)  // LOCAL: health check
        #expect(try Self.decodeSplitAtEveryByte(Self.v2(command: 0x20, family: 0x00)).source == nil)
        #expect(try Self.decodeSplitAtEveryByte(Self.v2(family: 0x00)).source == nil)  // UNSPEC
        #expect(try Self.decodeSplitAtEveryByte(Self.v2(family: 0x31)).source == nil)  // UNIX: no IP address
        // TLVs (here an AWS VPC endpoint id, type 0xEA) are skipped.
        let tlv: [UInt8] = [0xEA, 0x00, 0x05, 0x01, 0x76, 0x70, 0x63, 0x65]
        let withTLV = try Self.decodeSplitAtEveryByte(Self.v2(body: Array(Self.v2().dropFirst(16)) + tlv))
        #expect(withTLV.source?.description == "192.0.2.1" && withTLV.length == 16 + 12 + tlv.count)
    }

    @Test(
        arguments: [
            ("GET / HTTP/1.1\r\n", ProxyProtocolError.Code.signature),
            ("\u{16}\u{03}\u{01}", .signature),  // a TLS ClientHello where a header must be
            ("PROXY", nil), ("PROXZ", .signature), ("proxy TCP4", .signature),
            ("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n", .malformedV1),  // LF without CR
            ("PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n", .malformedV1),
            ("PROXY TCP4  192.0.2.1 198.51.100.2 56324 443\r\n", .malformedV1),  // double space
            ("PROXY TCP4 2001:db8::1 198.51.100.2 56324 443\r\n", .malformedV1),  // family mismatch
            ("PROXY TCP6 192.0.2.1 198.51.100.2 56324 443\r\n", .malformedV1),
            ("PROXY TCP4 192.0.2.1 198.51.100.2 65536 443\r\n", .malformedV1),
            ("PROXY TCP4 192.0.2.1 198.51.100.2 -1 443\r\n", .malformedV1),
            ("PROXY TCP4 192.0.2.256 198.51.100.2 1 443\r\n", .malformedV1),
            ("PROXY TCP4 example.com 198.51.100.2 1 443\r\n", .malformedV1),
            ("PROXY UDP4 192.0.2.1 198.51.100.2 1 443\r\n", .malformedV1),
            ("PROXY TCP4 192.0.2.1\u{0} 198.51.100.2 1 443\r\n", .malformedV1),
            ("PROXY UNKNOWNX\r\n", .malformedV1),
            ("PROXY \r\n", .malformedV1),
        ] as [(String, ProxyProtocolError.Code?)]
    )
    func hostileV1(text: String, expected: ProxyProtocolError.Code?) {
        do {
            let (header, _) = try Self.decode(Array(text.utf8))
            #expect(expected == nil && header == nil, "accepted \(text.debugDescription)")
        } catch {
            #expect(error.code == expected, "\(text.debugDescription)")
        }
    }

    @Test func v1OverTheLineLimitIsRefusedAtByte107() throws {
        let long = Array("PROXY UNKNOWN ".utf8) + [UInt8](repeating: 0x61, count: 200)
        #expect(try Self.decode(Array(long.prefix(106))).0 == nil)
        #expect(throws: ProxyProtocolError(code: .tooLong)) { try Self.decode(Array(long.prefix(107))) }
        // A 107-byte line including CRLF is the longest allowed.
        let longest = Array("PROXY UNKNOWN ".utf8) + [UInt8](repeating: 0x61, count: 107 - 16) + [13, 10]
        #expect(longest.count == 107)
        #expect(try Self.decode(longest).0 != nil)
    }

    @Test func hostileV2() throws {
        func code(_ bytes: [UInt8], mode: ProxyProtocolMode = .any) -> ProxyProtocolError.Code? {
            do {
                _ = try Self.decode(bytes, mode: mode)
                return nil
            } catch { return error.code }
        }
        var wrongSignature = Self.v2()
        wrongSignature[11] = 0x0B
        #expect(code(wrongSignature) == .signature)
        #expect(code(Array(wrongSignature.prefix(12))) == .signature)  // refused before the rest arrives
        #expect(code(Self.v2(command: 0x11)) == .versionOrCommand)  // version 1 in the v2 format
        #expect(code(Self.v2(command: 0x22)) == .versionOrCommand)  // command 2
        #expect(code(Array(Self.v2(command: 0x2F).prefix(13))) == .versionOrCommand)
        #expect(code(Self.v2(family: 0x41)) == .family)  // unknown family
        #expect(code(Self.v2(family: 0xF1)) == .family)
        #expect(code(Self.v2(family: 0x12)) == .family)  // DGRAM on a stream connection
        #expect(code(Self.v2(family: 0x13)) == .family)
        #expect(code(Self.v2(family: 0x11, body: [1, 2, 3])) == .shortAddress)  // length shorter than INET's 12
        #expect(code(Self.v2(family: 0x21, body: [UInt8](repeating: 0, count: 12))) == .shortAddress)
        // A length over the bound is refused from the 16-byte preamble, without waiting for the body.
        #expect(code(Array(Self.v2(body: [], length: 65535).prefix(16))) == .tooLong)
        #expect(code(Array(Self.v2(body: [], length: 1025).prefix(16))) == .tooLong)
        // A length that promises more than is sent waits (the deadline ends it), consuming nothing.
        #expect(try Self.decode(Self.v2(body: [UInt8](repeating: 0, count: 12), length: 200)).0 == nil)
        // The version the listener does not take.
        #expect(code(Self.v2(), mode: .v1) == .signature)
        #expect(code(Self.v1TCP4, mode: .v2) == .signature)
        #expect(code(Self.v1TCP4, mode: .off) == .signature)
    }

    @Test func hostileHeadersTruncatedAtEveryByteNeverYieldAHeader() throws {
        for whole in [Self.v1TCP4, Self.v1TCP6, Self.v2(), Self.v2(family: 0x21), Self.v2(family: 0x31)] {
            for cut in 0..<whole.count {
                let (header, left) = try Self.decode(Array(whole[..<cut]))
                #expect(header == nil && left == cut)
            }
        }
    }

    /// Mutated headers (seeded, reproducible): never a crash, and the same verdict whether the bytes
    /// arrive whole or one at a time (the decoder looks only at what it has).
    @Test func mutatedHeadersGetTheSameVerdictWholeAndByteByByte() throws {
        var generator = SplitMix64(seed: 0x11_2026)
        let seeds = [Self.v1TCP4, Self.v1TCP6, Self.v2(), Self.v2(family: 0x21), Self.v2(command: 0x20), Array("PROXY UNKNOWN\r\n".utf8)]
        for round in 0..<1500 {
            var bytes = seeds[Int(generator.next() % UInt64(seeds.count))]
            for _ in 0..<(1 + Int(generator.next() % 3)) {
                let index = Int(generator.next() % UInt64(bytes.count))
                switch generator.next() % 3 {
                case 0: bytes[index] = UInt8(truncatingIfNeeded: generator.next())
                case 1: bytes.remove(at: index)
                default: bytes.insert(UInt8(truncatingIfNeeded: generator.next()), at: index)
                }
            }
            let whole = Self.verdict { () throws(ProxyProtocolError) in try Self.decode(bytes).0 }
            var incremental: String = "incomplete"
            for end in 1...bytes.count {
                incremental = Self.verdict { () throws(ProxyProtocolError) in try Self.decode(Array(bytes[..<end])).0 }
                if incremental != "incomplete" { break }
            }
            #expect(whole == incremental, "round \(round): \(bytes)")
        }
    }

    private static func verdict(_ body: () throws(ProxyProtocolError) -> ProxyHeader?) -> String {
        do {
            return try body().map { "header \($0.length) \($0.source?.description ?? "-")" } ?? "incomplete"
        } catch {
            return "error \(error.code)"
        }
    }
}
