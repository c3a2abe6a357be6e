import NIOCore
import NIOHTTP1

extension UpgradePipelineSwitch {
    /// The client side of step 1: the HTTP/1.1 request decoder is removed, or, on an HTTP/2 stream
    /// (issue #16), the stream's codec switches to frames at once (it holds no bytes: DATA before the
    /// answer was refused as early data). Either way the client's collector catches what arrives until
    /// the relay is installed.
    func removeClientDecoder() throws -> EventLoopFuture<Void> {
        let pipeline = self.client.pipeline.syncOperations
        if let codec = try? pipeline.handler(type: HTTP2WebSocketStreamCodec.self) {
            try pipeline.addHandler(self.clientCollector, position: .after(codec))
            codec.beginFrames()
            return self.client.eventLoop.makeSucceededVoidFuture()
        }
        return try Self.removeDecoder(ByteToMessageHandler<HTTPRequestDecoder>.self, from: self.client, collector: self.clientCollector)
    }
}
