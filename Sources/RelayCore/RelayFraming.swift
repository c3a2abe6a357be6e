import Frames
import NIOCore

/// What relaying one read of one direction found.
struct RelayStep {
    /// A Close frame was relayed; what came after it in the read was not (RFC 6455 §5.5.1: nothing
    /// follows a Close; it is discarded, not an error).
    var closed = false
    /// The source broke the framing here (the bytes before it were relayed).
    var failure: FramesError?
    /// Frames that went through the batch entry points (whole small messages, one pass each).
    var batchedFrames = 0
    /// Messages completed by the per-event calls (a data frame with FIN ended).
    var messageEnds = 0
    /// The relayed Close's status code (1005 when it has none), when ``closed``.
    var closeCode: UInt16 = 0

    /// Data messages completed in this read (the batch's frames are whole messages each).
    var messages: Int { self.batchedFrames + self.messageEnds }
}

/// The frame work of the relay on one read, apart from the sockets (pure over buffers, so tests can
/// split reads at every byte): every frame is parsed with `Frames.FrameParser` (RFC 6455 §5, §8.1).
///
/// Issue #15, core22: whole small messages go through ``FrameParser/nextBatch(_:copyingTo:maskingWith:)``
/// / ``FrameParser/nextBatchInPlace(_:)`` first — one call per read of such frames instead of three
/// events per frame — and the per-event calls take the first frame the batch leaves (a control frame, a
/// fragment, a frame cut off by the end of the read, or one that breaks a rule, whose error the per-event
/// call throws), then the batch again. The output, the keys drawn and the errors are those of the
/// per-event path alone (the batch's contract), which the tests check at every split.
enum RelayFraming {
    /// Client → upstream: parsed, copied into `output` with a new header and a fresh key per frame from
    /// `keys` (RFC 6455 §5.3, §10.3), the payload remasked in the same pass. `input` is consumed.
    static func towardUpstream(
        _ flow: inout Flow,
        _ input: inout ByteBuffer,
        into output: inout ByteBuffer,
        keys: MaskingKeyGenerator,
        encoder: inout FrameEncoder,
        batching: Bool = true
    ) -> RelayStep {
        var step = RelayStep()
        do {
            frames: while true {
                if batching && flow.parser.isBetweenMessages {
                    step.batchedFrames += flow.parser.nextBatch(&input, copyingTo: &output, maskingWith: keys).frames
                }
                guard let event = try flow.parser.next(&input, copyingPayloadTo: &output) else { break }
                switch event {
                case .header(let header):
                    let key = keys.nextKey()
                    FrameHeader(
                        fin: header.fin,
                        reservedBits: header.reservedBits,
                        opcode: header.opcode,
                        maskingKey: key,
                        payloadLength: header.payloadLength
                    ).write(to: &output)
                    flow.parser.remaskPayload(with: key)
                    flow.wireMidFrame = header.payloadLength > 0
                case .payload:
                    break
                case .frameEnd:
                    flow.wireMidFrame = false
                    if !flow.parser.isInsideMessage { step.messageEnds += 1 }
                case .control(let frame):
                    encoder.writeFrame(opcode: frame.opcode, payload: frame.payload, to: &output)
                    if frame.opcode == .close {
                        step.closed = true
                        step.closeCode = frame.closeCode?.rawValue ?? 1005
                        break frames
                    }
                }
            }
        } catch {
            step.failure = error
        }
        return step
    }

    /// Upstream → client: parsed in place; `input`'s readable bytes become those to forward unchanged (every
    /// complete event's, and a partial header or control frame consumed so far), from its reader index.
    static func towardClient(_ flow: inout Flow, _ input: inout ByteBuffer, batching: Bool = true) -> RelayStep {
        var step = RelayStep()
        let start = input.readerIndex
        var validEnd = start
        do {
            frames: while true {
                // Whole unmasked messages are only validated and stay where they are.
                if batching && flow.parser.isBetweenMessages {
                    step.batchedFrames += flow.parser.nextBatchInPlace(&input).frames
                    validEnd = input.readerIndex
                }
                guard let event = try flow.parser.nextInPlace(&input) else { break }
                switch event {
                case .header(let header):
                    flow.wireMidFrame = header.payloadLength > 0
                case .payload:
                    break
                case .frameEnd:
                    flow.wireMidFrame = false
                    if !flow.parser.isInsideMessage { step.messageEnds += 1 }
                case .control(let frame):
                    if frame.opcode == .close {
                        step.closed = true
                        step.closeCode = frame.closeCode?.rawValue ?? 1005
                        validEnd = input.readerIndex
                        break frames
                    }
                }
                validEnd = input.readerIndex
            }
            // More bytes needed: what was consumed (a partial header, a partial control frame) is valid so
            // far and goes out too; the wire is then inside a frame until the next event says otherwise.
            if input.readerIndex > validEnd {
                flow.wireMidFrame = true
                validEnd = input.readerIndex
            }
        } catch {
            step.failure = error
        }
        input.moveReaderIndex(to: start)
        input.moveWriterIndex(to: validEnd)
        return step
    }

    /// A source whose direction the gateway has closed (its own Close went the other way, e.g. a drain's
    /// 1001) is still parsed, so that its answering Close is seen (RFC 6455 §7.1.1: the server ends the TCP
    /// connection once both Closes are exchanged); its data frames go nowhere. `input` is consumed.
    static func awaitingClose(_ flow: inout Flow, _ input: inout ByteBuffer) -> RelayStep {
        var step = RelayStep()
        do {
            while let event = try flow.parser.nextInPlace(&input) {
                if case .control(let frame) = event, frame.opcode == .close {
                    step.closed = true
                    step.closeCode = frame.closeCode?.rawValue ?? 1005
                    break
                }
            }
        } catch {
            step.failure = error
        }
        return step
    }
}
