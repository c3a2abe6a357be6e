import Foundation
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

@testable import Gateway

/// Issue #11 §4: a chat member that never reads is disconnected at the write-buffer watermark
/// instead of growing the process without bound; the others see it leave.
@Suite(.timeLimit(.minutes(1))) struct DemoChatHandlerTests {
    private func member(_ name: String, room: DemoChatRoom, loop: EmbeddedEventLoop) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.pipeline.syncOperations.addHandler(DemoChatHandler(room: room, requestedName: name))
        return channel
    }

    /// The text of every frame written to `channel` so far (server frames: 2- or 4-byte headers).
    private func texts(_ channel: EmbeddedChannel) throws -> [String] {
        var texts: [String] = []
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            let length = Int(buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self)! & 0x7F)
            buffer.moveReaderIndex(forwardBy: length == 126 ? 4 : 2)
            texts.append(buffer.readString(length: buffer.readableBytes)!)
        }
        return texts
    }

    @Test func aMemberAboveTheWatermarkIsDisconnectedAndLeavesTheRoom() throws {
        let loop = EmbeddedEventLoop()
        let room = DemoChatRoom()
        let alice = try member("alice", room: room, loop: loop)
        let slow = try member("slow", room: room, loop: loop)
        loop.run()
        _ = try texts(alice)
        _ = try texts(slow)
        #expect(room.onlineNames == ["alice", "slow"])

        slow.isWritable = false  // its unsent frames are above the high watermark
        room.broadcast(from: "alice", text: "hello")
        loop.run()

        #expect(!slow.isActive)
        #expect(try texts(slow).isEmpty)  // nothing more is queued for it
        #expect(room.onlineNames == ["alice"])
        #expect(
            try texts(alice) == [
                #"{"type":"message","from":"alice","text":"hello"}"#,
                #"{"type":"presence","online":["alice"]}"#,
            ]
        )
        #expect(alice.isActive)
        _ = try alice.finish(acceptAlreadyClosed: true)
    }

    @Test func aWritableMemberKeepsEveryMessage() throws {
        let loop = EmbeddedEventLoop()
        let room = DemoChatRoom()
        let bob = try member("bob", room: room, loop: loop)
        loop.run()
        for index in 0..<100 { room.broadcast(from: "x", text: "\(index)") }
        loop.run()
        #expect(try texts(bob).count == 1 + 100)
        #expect(bob.isActive)
    }

    /// Over real sockets: a member that completes its upgrade and never reads a byte. Alice keeps
    /// talking; on main the demo buffers everything for the stalled member and it never leaves.
    @Test func aMemberThatNeverReadsIsDroppedOverRealSockets() async throws {
        try await withDemo { demo in
            let stalled = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.autoRead, value: false)
                .channelOption(.socketOption(.so_rcvbuf), value: 4096)
                .connect(host: "127.0.0.1", port: demo.port)
                .get()
            defer { stalled.close(promise: nil) }
            let request =
                "GET /chat?name=stalled HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            try await stalled.writeAndFlush(ByteBuffer(string: request))

            let alice = try await TestWebSocketClient.connect(port: demo.port, path: "/chat?name=alice")
            // Both in the room (the stalled member's upgrade may be handled before or after alice's).
            while try await alice.receiveMessage(timeout: .seconds(10)) != .text(#"{"type":"presence","online":["alice","stalled"]}"#) {}
            let text = String(repeating: "x", count: 60_000)
            var sent = 0
            var stalledLeft = false
            sending: while sent < 1_000 {
                try await alice.send(text: text)
                sent += 1
                // Read until our own message comes back; note any presence on the way.
                while true {
                    guard case .text(let json) = try await alice.receiveMessage(timeout: .seconds(10)) else { continue }
                    if json == #"{"type":"presence","online":["alice"]}"# {
                        stalledLeft = true
                        break sending
                    }
                    if json.hasPrefix(#"{"type":"message""#) { break }
                }
            }
            #expect(stalledLeft, "the stalled member was still in the room after \(sent) messages of 60 KB")
            // Kernel buffers absorb a few MB first; the demo itself holds at most its 256 KiB watermark.
            #expect(sent < 1_000)
            #expect(demo.room.onlineNames == ["alice"])
            try await alice.close()
        }
    }
}
