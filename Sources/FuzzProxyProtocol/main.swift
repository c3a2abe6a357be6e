// libFuzzer harness for the PROXY protocol v1/v2 header decoder (``ProxyProtocolDecoder``, README,
// "Fuzzing"). The input is the start of a connection from a trusted proxy. Properties checked on every
// input (a failed one traps, a bug found):
// 1. **Streaming:** fed as the handler feeds it (every prefix, as bytes accumulate), a prefix shorter
//    than the header is "need more" (never an error: a valid header's start is never refused), and the
//    first prefix that decides gives the same header or error as the whole input. The decoder consumes
//    exactly the header's bytes, and nothing when it needs more or refuses.
// 2. **Modes:** `off` refuses everything, `v1` never yields a v2 header and `v2` never a v1 one, and
//    `any` decides as the mode of the version the first byte names.
// 3. **Strict limits:** a v1 header is at most 107 bytes, printable ASCII ending in CRLF; a v2 header at
//    most 16 + the configured maximum; an IPv4 address in a v1 line is in its one canonical spelling.
// 4. **Round trip:** a header with addresses, written again as v1 and as v2, decodes to the same
//    addresses and ports.
// Gateway types are internal: the harness imports them `@testable` (fuzz builds are debug builds);
// in a release build the file is empty and the program does nothing.
#if DEBUG
import NIOCore
@testable import Gateway

private typealias Outcome = Result<ProxyHeader?, ProxyProtocolError>

private func decode(_ bytes: some Collection<UInt8>, mode: ProxyProtocolMode, maximum: Int) -> (Outcome, consumed: Int) {
    var decoder = ProxyProtocolDecoder(mode: mode, maximumV2Length: maximum)
    var buffer = ByteBuffer(bytes: bytes)
    let before = buffer.readerIndex
    let outcome = Result { () throws(ProxyProtocolError) in try decoder.decode(&buffer) }
    return (outcome, buffer.readerIndex - before)
}

/// The header written as a v1 line and as a v2 block (no TLVs), when it carries addresses.
private func reserialized(_ header: ProxyHeader) -> [[UInt8]] {
    guard let source = header.source, let destination = header.destination, let sourcePort = header.sourcePort,
        let destinationPort = header.destinationPort, source.isIPv6 == destination.isIPv6
    else { return [] }
    let family = source.isIPv6 ? "TCP6" : "TCP4"
    let v1 = Array("PROXY \(family) \(source) \(destination) \(sourcePort) \(destinationPort)\r\n".utf8)
    var v2 = ProxyProtocolDecoder.v2Signature + [0x21, source.isIPv6 ? 0x21 : 0x11]
    let addresses =
        source.bytes + destination.bytes
        + [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xFF)]
    v2 += [UInt8(addresses.count >> 8), UInt8(addresses.count & 0xFF)] + addresses
    return [v1, v2]
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProxyProtocol(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    // Byte 0: the configured v2 maximum (small values reach the bound); the rest is the stream.
    let maximum = Int(data[0]) * 8
    let stream = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    for mode in ProxyProtocolMode.allCases {
        let (whole, consumed) = decode(stream, mode: mode, maximum: maximum)
        switch whole {
        case .success(nil):
            precondition(consumed == 0, "\(mode): consumed \(consumed) bytes but needs more")
        case .failure:
            precondition(consumed == 0, "\(mode): consumed \(consumed) bytes but refused")
        case .success(let header?):
            precondition(consumed == header.length && header.length <= stream.count, "\(mode): consumed \(consumed), header says \(header.length)")
            let bytes = stream.prefix(header.length)
            switch header.version {
            case 1:
                precondition(mode == .v1 || mode == .any, "\(mode): a v1 header")
                precondition(header.length <= 107, "v1 header of \(header.length) bytes")
                precondition(bytes.starts(with: Array("PROXY ".utf8)) && bytes.suffix(2).elementsEqual([13, 10]), "v1 without PROXY or CRLF")
                precondition(bytes.dropLast(2).allSatisfy { $0 >= 0x20 && $0 < 0x7F }, "v1 line with a control or non-ASCII byte")
                if let source = header.source, let destination = header.destination, !source.isIPv6, !destination.isIPv6,
                    bytes.starts(with: Array("PROXY TCP4 ".utf8))
                {
                    let fields = String(decoding: bytes.dropLast(2), as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
                    precondition(fields[2] == "\(source)" && fields[3] == "\(destination)", "non-canonical IPv4 accepted: \(fields)")
                }
            case 2:
                precondition(mode == .v2 || mode == .any, "\(mode): a v2 header")
                precondition(header.length >= 16 && header.length <= 16 + maximum, "v2 header of \(header.length) bytes, maximum \(maximum)")
                precondition(bytes.starts(with: ProxyProtocolDecoder.v2Signature), "v2 without its signature")
            default:
                preconditionFailure("version \(header.version)")
            }
            for again in reserialized(header) {
                let (outcome, _) = decode(again, mode: .any, maximum: 1024)
                guard case .success(let decoded?) = outcome else { preconditionFailure("\(header) written as \(again) does not decode: \(outcome)") }
                precondition(
                    decoded.source == header.source && decoded.destination == header.destination
                        && decoded.sourcePort == header.sourcePort && decoded.destinationPort == header.destinationPort,
                    "round trip: \(header) -> \(decoded)"
                )
            }
        }
        if mode == .off { precondition(stream.isEmpty || whole.isFailure, "off accepted a header") }
        if mode == .any, let first = stream.first {
            let named: ProxyProtocolMode = first == UInt8(ascii: "P") ? .v1 : .v2
            let (single, _) = decode(stream, mode: named, maximum: maximum)
            precondition(single == whole, "any: \(whole), \(named): \(single)")
        }
        // Streaming: every prefix, as the handler accumulates reads; once one decides, all longer ones agree.
        for length in 0..<min(stream.count, 300) {
            let (partial, _) = decode(stream.prefix(length), mode: mode, maximum: maximum)
            switch (partial, whole) {
            case (.success(nil), _):
                continue
            case (.success(let header?), .success(let expected?)):
                precondition(header == expected, "\(mode): prefix \(length) gave \(header), whole \(expected)")
            case (.failure(let error), .failure(let expected)):
                precondition(error == expected, "\(mode): prefix \(length) refused with \(error), whole with \(expected)")
            case (.success(let header?), _):
                preconditionFailure("\(mode): prefix \(length) gave \(header), whole \(whole)")
            case (.failure(let error), _):
                preconditionFailure("\(mode): prefix \(length) refused (\(error)), whole \(whole)")
            }
        }
    }
    return 0
}

extension Result {
    fileprivate var isFailure: Bool {
        if case .failure = self { return true }
        return false
    }
}
#endif
