import NIOCore

/// Fired inbound once a PROXY protocol header was read: the address the rest of the pipeline must treat
/// as the connection's peer (nil: the header carried none, the socket's peer stands).
struct ProxyProtocolReceived: Sendable, Hashable {
    var header: ProxyHeader
}

/// The first handler of a listener with `proxy_protocol` (issue #11 §1): reads the PROXY header within
/// `deadline`, hands it to `accept` (per-IP admission of the carried address; false closes), fires
/// ``ProxyProtocolReceived`` and passes on the bytes behind the header, then leaves the pipeline.
/// A malformed, oversized or late header closes the connection with reading turned off: nothing after
/// the first bad byte is read or answered (there is no protocol to answer in yet).
///
/// Only peers in `trusted_proxies` reach it; the listener closes the others at accept
/// (`GatewayServer`), since a header from anyone else would let them choose their own address.
final class ProxyProtocolHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var decoder: ProxyProtocolDecoder
    private let deadline: TimeAmount
    private let accept: (ProxyHeader) -> Bool
    private let rejected: (ProxyProtocolRefusal) -> Void
    private var buffered: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var finished = false

    /// `rejected` is told why a connection was closed (the deadline, the error's code, or `accept`).
    init(
        mode: ProxyProtocolMode,
        deadline: TimeAmount,
        accept: @escaping (ProxyHeader) -> Bool,
        rejected: @escaping (ProxyProtocolRefusal) -> Void = { _ in }
    ) {
        self.decoder = ProxyProtocolDecoder(mode: mode)
        self.deadline = deadline
        self.accept = accept
        self.rejected = rejected
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.timer = context.eventLoop.scheduleTask(in: self.deadline) {
            let (handler, context) = bound.value
            handler.fail(context: context, reason: .timeout)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.finished else { return }
        var bytes = Self.unwrapInboundIn(data)
        if self.buffered == nil {
            self.buffered = bytes
        } else {
            self.buffered!.writeBuffer(&bytes)
        }
        let header: ProxyHeader?
        do {
            header = try self.decoder.decode(&self.buffered!)
        } catch {
            return self.fail(context: context, reason: ProxyProtocolRefusal(error.code))
        }
        guard let header else { return }
        self.finished = true
        self.timer?.cancel()
        guard self.accept(header) else { return self.fail(context: context, reason: .refused) }
        context.fireUserInboundEventTriggered(ProxyProtocolReceived(header: header))
        let rest = self.buffered!
        self.buffered = nil
        if rest.readableBytes > 0 {
            context.fireChannelRead(Self.wrapInboundOut(rest))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Nothing is passed on before the header is complete.
    }

    private func fail(context: ChannelHandlerContext, reason: ProxyProtocolRefusal) {
        self.finished = true
        self.buffered = nil
        self.timer?.cancel()
        guard context.channel.isActive else { return }
        self.rejected(reason)
        context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension ProxyProtocolHandler: Sendable {}
