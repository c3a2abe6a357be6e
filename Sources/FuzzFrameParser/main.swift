import Frames
import NIOCore

// libFuzzer harness for `FrameParser` (README, "Fuzzing"). Byte 0 picks the role and configuration,
// byte 1 the chunk size; the rest is the stream. Properties checked on every input:
// - no trap, no sanitizer report;
// - the same events and error whole, in chunks, and with remasking (after unmasking again), see `agrees`;
// - every completed data frame delivered exactly its declared length; control payloads ≤ 125 bytes.

private struct Run {
    var events: [String] = []
    var payload: [UInt8] = []
    var error: FramesError.Code?

    /// Same events and error. The payload is the same when no error occurred; before an error, how much
    /// of the offending frame was delivered depends on where reads ended, so one must be a prefix of the
    /// other (cut-through: nothing from the chunk that holds the offending byte is delivered).
    func agrees(with other: Run) -> Bool {
        guard self.events == other.events, self.error == other.error else { return false }
        if self.error == nil { return self.payload == other.payload }
        let shorter = min(self.payload.count, other.payload.count)
        return self.payload.prefix(shorter) == other.payload.prefix(shorter)
    }
}

private func parse(
    _ stream: UnsafeRawBufferPointer,
    role: FrameParser.Role,
    configuration: FrameParser.Configuration,
    chunk: Int,
    remask: MaskingKey?
) -> Run {
    var parser = FrameParser(role: role, configuration: configuration)
    var run = Run()
    var declared = 0
    var delivered = 0
    var offset = 0
    while offset < stream.count {
        let end = min(stream.count, offset + chunk)
        var buffer = ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: stream[offset..<end]))
        offset = end
        do {
            while let event = try parser.next(&buffer) {
                switch event {
                case .header(let header):
                    run.events.append("h\(header.opcode.rawValue) \(header.fin) \(header.payloadLength) \(header.reservedBits.rawValue)")
                    declared = header.payloadLength
                    delivered = 0
                    parser.remaskPayload(with: remask)
                case .payload(var bytes):
                    precondition(bytes.readableBytes > 0, "empty payload event")
                    let start = delivered
                    delivered += bytes.readableBytes
                    precondition(delivered <= declared, "payload beyond the declared length")
                    if let remask { remask.apply(to: &bytes, offset: start) }
                    run.payload += bytes.readableBytesView
                case .frameEnd:
                    precondition(delivered == declared, "frame ended short: \(delivered) of \(declared)")
                    run.events.append("e")
                case .control(let frame):
                    precondition(frame.payload.readableBytes <= 125, "control payload over 125 bytes")
                    run.events.append("c\(frame.opcode.rawValue)")
                    run.payload += frame.payload.readableBytesView
                }
            }
            precondition(buffer.readableBytes == 0, "bytes left unconsumed without an error")
        } catch {
            run.error = error.code
            return run
        }
    }
    return run
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let options = data[0]
    let chunk = Int(data[1] % 17) + 1
    let role: FrameParser.Role = options & 1 == 0 ? .server : .client
    let configuration = FrameParser.Configuration {
        $0.allowedReservedBits = options & 2 != 0 ? [.rsv1] : []
        $0.validatesUTF8 = options & 4 == 0
        $0.rejectsNonMinimalLengths = options & 8 == 0
        if options & 16 != 0 {
            $0.maxFrameSize = 64
            $0.maxMessageSize = 200
            $0.maxFragmentsPerMessage = 4
        }
    }
    let stream = UnsafeRawBufferPointer(start: data + 2, count: size - 2)
    let whole = parse(stream, role: role, configuration: configuration, chunk: max(1, stream.count), remask: nil)
    let chunked = parse(stream, role: role, configuration: configuration, chunk: chunk, remask: nil)
    precondition(whole.agrees(with: chunked), "chunking changed the result: \(whole) vs \(chunked)")
    let remasked = parse(stream, role: role, configuration: configuration, chunk: chunk, remask: MaskingKey(0x5A, 0x01, 0xC3, 0x7E))
    precondition(whole.agrees(with: remasked), "remasking changed the result: \(whole) vs \(remasked)")
    return 0
}
