import Frames
import NIOCore

extension FrameEncoder {
    /// The demo upstream's answer to a control frame: a Pong with the Ping's payload, or the Close sent
    /// back unchanged (the parser validated its body, RFC 6455 §5.5.1, §7.4); nothing for a Pong.
    mutating func demoReply(to frame: ControlFrame, allocator: ByteBufferAllocator) -> (bytes: ByteBuffer, isClose: Bool)? {
        let opcode: Opcode
        switch frame.opcode {
        case .ping: opcode = .pong
        case .close: opcode = .close
        default: return nil
        }
        var bytes = allocator.buffer(capacity: 2 + frame.payload.readableBytes)
        self.writeFrame(opcode: opcode, payload: frame.payload, to: &bytes)
        return (bytes, opcode == .close)
    }
}
