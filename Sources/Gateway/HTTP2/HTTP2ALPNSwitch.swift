import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOTLS
import TLSShim

/// On a listener with `tls.http2: on` (issue #16), right behind the TLS handler: when ALPN chose `h2`
/// (RFC 7301, RFC 9113 §3.2), the HTTP/1.1 handlers behind it (request limiter, decoder,
/// ``ClientConnectionHandler``) are replaced by swift-nio-http2's handler and the
/// ``HTTP2ConnectionGuard``; each stream then gets the pipeline of
/// ``HTTP2ConnectionSetup/initializeStream(_:client:tls:)``. With `http/1.1` (or no ALPN) nothing
/// changes. A TLS failure never reaches here: the HTTP/1.1 handler records it as before.
///
/// Drain: the drain's `ChannelShouldQuiesceEvent` is answered with GOAWAY first (the graceful form,
/// last stream ID 2^31-1, RFC 9113 §6.8), then passed on to swift-nio-http2, which hands it to every
/// stream (each relay's Close 1001, the per-stream close rules).
final class HTTP2ALPNSwitch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let setup: HTTP2ConnectionSetup
    /// The client a PROXY protocol header named, if any (the streams' client address).
    private var client: IPAddress?
    private(set) var switched = false
    /// The connection's guard once switched (it knows whether a GOAWAY went out already).
    private var connectionGuard: HTTP2ConnectionGuard?

    init(setup: HTTP2ConnectionSetup) {
        self.setup = setup
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let proxied = event as? ProxyProtocolReceived, let source = proxied.header.source {
            self.client = source
        }
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event, negotiated == "h2", !self.switched {
            do {
                try self.switchToHTTP2(context: context)
            } catch {
                context.close(promise: nil)
            }
            // Not passed on: the handlers that wait for it (HTTP/1.1's) are gone.
            return
        }
        if event is ChannelShouldQuiesceEvent, self.switched, self.connectionGuard?.goingAway == false {
            // Only one graceful GOAWAY: a later one may not raise the last stream ID (RFC 9113 §6.8).
            let goAway = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil))
            context.channel.writeAndFlush(goAway, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func switchToHTTP2(context: ChannelHandlerContext) throws {
        let pipeline = context.pipeline.syncOperations
        let info = try? pipeline.handler(type: TLSHandler.self).connectionInfo
        let setup = self.setup
        let client = self.client
        let environment = setup.environment
        let connectionGuard = HTTP2ConnectionGuard(
            maxStreams: environment.limits.http2.maxStreamsPerConnection,
            idleTimeout: TimeAmount(environment.timeouts.requestHead)
        )
        let delegate = HTTP2ConnectionGuard.Delegate(connectionGuard: NIOLoopBound(connectionGuard, eventLoop: context.eventLoop))
        let memory = NIOLoopBound(HTTP2ConnectionMemory(limits: environment.limits.http2), eventLoop: context.eventLoop)
        let handler = HTTP2ConnectionSetup.handler(limits: environment.limits, on: context.eventLoop, streamDelegate: delegate) { stream in
            stream.eventLoop.makeCompletedFuture { try setup.initializeStream(stream, client: client, tls: info, memory: memory.value) }
        }
        // The client certificate belongs to the connection: counted once here, not per stream.
        if let info, info.clientCertificateRequested {
            environment.metrics.clientCertificate(listener: setup.listener, info.peerCertificate == nil ? .notPresented : .verified)
        }
        try pipeline.addHandler(connectionGuard, position: .after(self))
        try pipeline.addHandler(handler, position: .after(self))
        if let upgrade = try? pipeline.handler(type: ClientConnectionHandler.self) { pipeline.removeHandler(upgrade, promise: nil) }
        self.switched = true
        self.connectionGuard = connectionGuard
    }
}

extension HTTP2ALPNSwitch {
    /// Adds the switch behind the TLS handler when `listener` offers `h2`.
    static func add(
        to pipeline: ChannelPipeline.SynchronousOperations,
        listener: GatewayConfiguration.Listener,
        environment: GatewayEnvironment,
        admitsClientAddressAtHead: Bool,
        countsSocketAddress: Bool
    ) throws {
        guard listener.http2 else { return }
        let setup = HTTP2ConnectionSetup(
            environment: environment,
            listener: listener.name,
            requireSNIHostMatch: listener.edge.requireSNIHostMatch,
            admitsClientAddressAtHead: admitsClientAddressAtHead,
            countsSocketAddress: countsSocketAddress
        )
        try pipeline.addHandler(HTTP2ALPNSwitch(setup: setup))
    }
}

@available(*, unavailable)
extension HTTP2ALPNSwitch: Sendable {}
