import Foundation
import Frames
import NIOCore
import Testing

@testable import RelayCore

/// End to end over loopback: a raw-socket client through the core (one loop) to a raw-socket echo
/// upstream, every socket bounded by a 5 s receive deadline so a failure ends the test instead of
/// hanging it.
@Suite(.timeLimit(.minutes(1))) struct RelayCoreSmokeTests {
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="

    @Test func framesGoThroughBothWaysRemaskedAndTheCloseHandshakeEndsBothLegs() throws {
        let upstream = try EchoUpstream()
        var configuration = RelayCoreConfiguration()
        configuration.upstreamPort = upstream.port
        let core = try RelayCore(configuration)
        defer { core.stop() }
        let client = try TestSocket(port: core.port)
        try client.upgrade(key: Self.key)

        // A text message split mid-header and mid-payload, then a fragmented binary message around a Ping.
        let keys = MaskingKeyGenerator(fill: { raw in for index in raw.indices { raw[index] = UInt8(index & 0xFF) } })
        let text = frame(.text, Array("hello, relay".utf8), key: keys.nextKey())
        try client.send(Array(text[0..<1]))
        try client.send(Array(text[1..<9]))
        try client.send(Array(text[9...]))
        try client.send(
            frame(.binary, [1, 2, 3], fin: false, key: keys.nextKey()) + frame(.ping, [9], key: keys.nextKey())
                + frame(.continuation, [4, 5], key: keys.nextKey())
        )
        var parser = FrameParser(role: .client)
        let echoes = try client.readFrames(&parser, count: 4)
        #expect(echoes[0] == Echo(opcode: .text, fin: true, payload: Array("hello, relay".utf8)))
        #expect(echoes[1] == Echo(opcode: .binary, fin: false, payload: [1, 2, 3]))
        #expect(echoes[2] == Echo(opcode: .pong, fin: true, payload: [9]))
        #expect(echoes[3] == Echo(opcode: .continuation, fin: true, payload: [4, 5]))

        try client.send(frame(.close, [0x03, 0xE8], key: keys.nextKey()))
        let close = try client.readFrames(&parser, count: 1)
        #expect(close.first == Echo(opcode: .close, fin: true, payload: [0x03, 0xE8]))
        #expect(try client.readToEnd().isEmpty, "the gateway ends the client's TCP after the close handshake")
        let seen = upstream.finish()
        #expect(seen.request.contains("Sec-WebSocket-Key: ") && !seen.request.contains(Self.key), "a fresh key upstream")
        #expect(!seen.keys.isEmpty && seen.keys.allSatisfy { $0.packed != 0 })
        #expect(Set(seen.keys.map(\.packed)).count == seen.keys.count, "a fresh masking key per frame")
    }

    @Test func anUnmaskedClientFrameGetsA1002AndTheUpstreamA1001() throws {
        let upstream = try EchoUpstream()
        var configuration = RelayCoreConfiguration()
        configuration.upstreamPort = upstream.port
        let core = try RelayCore(configuration)
        defer { core.stop() }
        let client = try TestSocket(port: core.port)
        try client.upgrade(key: Self.key)
        try client.send(frame(.text, Array("no mask".utf8), key: nil))
        var parser = FrameParser(role: .client)
        let close = try client.readFrames(&parser, count: 1)
        #expect(close.first?.opcode == .close)
        #expect(close.first?.payload.prefix(2) == [0x03, 0xEA])
        #expect(try client.readToEnd().isEmpty)
        #expect(upstream.finish().closeCodes == [1001])
    }
}

struct Echo: Equatable {
    var opcode: Opcode
    var fin: Bool
    var payload: [UInt8]
}

func frame(_ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, key: MaskingKey?) -> [UInt8] {
    var buffer = ByteBuffer()
    FrameHeader(fin: fin, opcode: opcode, maskingKey: key, payloadLength: payload.count).write(to: &buffer)
    var body = ByteBuffer(bytes: payload)
    if let key { key.apply(to: &body) }
    buffer.writeBuffer(&body)
    return Array(buffer.readableBytesView)
}

/// A blocking loopback socket with a 5 s receive deadline.
final class TestSocket {
    let fd: Int32
    var pending = ByteBuffer()

    init(fd: Int32) {
        self.fd = fd
        var deadline = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &deadline, socklen_t(MemoryLayout<timeval>.size))
    }

    convenience init(port: UInt16) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = Sockets.address(host: "127.0.0.1", port: port)!
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw RelayCoreError(call: "connect", errno: errno) }
        self.init(fd: fd)
    }

    deinit { close(self.fd) }

    func send(_ bytes: [UInt8]) throws {
        let sent = bytes.withUnsafeBytes { Glibc.send(self.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == bytes.count else { throw RelayCoreError(call: "send", errno: errno) }
        usleep(2000)  // let each write arrive as its own segment
    }

    /// One read into `pending`; false at the end of the stream.
    func receive() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 4096)
        let count = chunk.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
        guard count >= 0 else { throw RelayCoreError(call: "recv (deadline?)", errno: errno) }
        self.pending.writeBytes(chunk[0..<count])
        return count > 0
    }

    func readHead() throws -> String {
        while true {
            if let end = self.pending.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8)) {
                let length = end.upperBound - self.pending.readerIndex
                return self.pending.readString(length: length)!
            }
            guard try self.receive() else { throw RelayCoreError(call: "head: end of stream", errno: 0) }
        }
    }

    func upgrade(key: String) throws {
        try self.send(
            Array(
                ("GET /echo HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n").utf8
            )
        )
        let head = try self.readHead()
        #expect(head.hasPrefix("HTTP/1.1 101 "))
        #expect(head.contains("Sec-WebSocket-Accept: \(HandshakeKey.acceptValue(forKey: key))\r\n"))
    }

    /// Reads `count` whole frames (payloads joined), however they are split.
    func readFrames(_ parser: inout FrameParser, count: Int) throws -> [Echo] {
        var echoes: [Echo] = []
        var current: Echo?
        while echoes.count < count {
            while echoes.count < count, let event = try parser.next(&self.pending) {
                switch event {
                case .header(let header): current = Echo(opcode: header.opcode, fin: header.fin, payload: [])
                case .payload(let chunk): current!.payload += Array(chunk.readableBytesView)
                case .frameEnd: echoes.append(current!)
                case .control(let control): echoes.append(Echo(opcode: control.opcode, fin: true, payload: Array(control.payload.readableBytesView)))
                }
            }
            if echoes.count < count {
                guard try self.receive() else { throw RelayCoreError(call: "frames: end of stream", errno: 0) }
            }
        }
        return echoes
    }

    /// Reads until the peer ends the stream; returns what came before the end.
    func readToEnd() throws -> [UInt8] {
        while try self.receive() {}
        return Array(self.pending.readableBytesView)
    }
}

/// A one-connection WebSocket echo server on its own thread: answers the upgrade, echoes data frames
/// frame by frame (unmasked, as a server sends), answers Ping with Pong and Close with Close, then closes.
final class EchoUpstream: @unchecked Sendable {
    struct Seen {
        var request = ""
        var keys: [MaskingKey] = []
        var closeCodes: [UInt16] = []
    }

    let listener: Int32
    let port: UInt16
    /// Echoes nothing and answers no Close (it only records what it gets) until the gateway ends it.
    let silent: Bool
    private let done = DispatchSemaphore(value: 0)
    private var seen = Seen()

    init(silent: Bool = false) throws {
        self.silent = silent
        self.listener = try Sockets.listener(Sockets.address(host: "127.0.0.1", port: 0)!, reusePort: false)
        self.port = Sockets.localPort(self.listener)
        let thread = Thread { self.serve() }
        thread.start()
    }

    /// Waits (at most 5 s) for the upstream's connection to end and returns what it saw.
    func finish() -> Seen {
        _ = self.done.wait(timeout: .now() + 5)
        close(self.listener)
        return self.seen
    }

    private func serve() {
        defer { self.done.signal() }
        var pollFD = pollfd(fd: self.listener, events: Int16(POLLIN), revents: 0)
        guard poll(&pollFD, 1, 5000) == 1 else { return }
        let fd = accept(self.listener, nil, nil)
        guard fd >= 0 else { return }
        let socket = TestSocket(fd: fd)
        do {
            self.seen.request = try socket.readHead()
            let key = self.seen.request.split(separator: "\r\n").first { $0.hasPrefix("Sec-WebSocket-Key: ") }!.dropFirst(19)
            try socket.send(
                Array(
                    ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        + "Sec-WebSocket-Accept: \(HandshakeKey.acceptValue(forKey: String(key)))\r\n\r\n").utf8
                )
            )
            var parser = FrameParser(role: .server)
            var header: FrameHeader?
            var payload: [UInt8] = []
            while try socket.receive() {
                while let event = try parser.next(&socket.pending) {
                    switch event {
                    case .header(let h):
                        header = h
                        payload = []
                        if let key = h.maskingKey { self.seen.keys.append(key) }
                    case .payload(let chunk): payload += Array(chunk.readableBytesView)
                    case .frameEnd:
                        if !self.silent { try socket.send(frame(header!.opcode, payload, fin: header!.fin, key: nil)) }
                    case .control(let control):
                        let body = Array(control.payload.readableBytesView)
                        if control.opcode == .ping && !self.silent { try socket.send(frame(.pong, body, key: nil)) }
                        if control.opcode == .close {
                            self.seen.closeCodes.append(control.closeCode?.rawValue ?? 0)
                            if self.silent { continue }
                            try socket.send(frame(.close, body, key: nil))
                            return
                        }
                    }
                }
            }
        } catch {
            return
        }
    }
}
