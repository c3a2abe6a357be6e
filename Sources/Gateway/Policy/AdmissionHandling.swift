import NIOCore

extension GatewayEnvironment {
    /// Counts a newly accepted connection against its listener's and its IP's caps, and releases it when
    /// the channel closes. `false` when a cap is full: the refusal is counted and the caller closes the
    /// connection before reading anything.
    /// `countAddress: false` (a PROXY protocol listener) leaves the per-IP cap to the address the header
    /// carries (``admitProxiedAddress(_:channel:listener:)``): the socket's peer is the load balancer.
    func admitAtAccept(_ channel: any Channel, listener: String, countAddress: Bool = true) -> Bool {
        let ip = countAddress ? channel.remoteAddress?.ipAddress : nil
        if let refusal = self.admission.admit(listener: listener, ip: ip) {
            self.metrics.connectionLimitRefused(listener: listener, ConnectionLimit(refusal))
            return false
        }
        let admission = self.admission
        channel.closeFuture.whenComplete { _ in admission.release(listener: listener, ip: ip) }
        return true
    }
}

extension GatewayEnvironment {
    /// The per-IP cap for the client a PROXY protocol header named; released when the channel closes.
    func admitProxiedAddress(_ ip: String, channel: any Channel, listener: String) -> Bool {
        if let refusal = self.admission.admitAddress(ip) {
            self.metrics.connectionLimitRefused(listener: listener, ConnectionLimit(refusal))
            return false
        }
        let admission = self.admission
        channel.closeFuture.whenComplete { _ in admission.releaseAddress(ip) }
        return true
    }
}

extension GatewayConfiguration {
    /// Compiles each route's origin policy; a malformed `allow` entry is a ``ConfigurationError``.
    func compiledOriginPolicies() throws(ConfigurationError) -> [CompiledOriginPolicy] {
        var compiled: [CompiledOriginPolicy] = []
        for (index, route) in self.routes.enumerated() {
            do {
                compiled.append(try CompiledOriginPolicy(route.origins))
            } catch {
                throw ConfigPath().key("routes").index(index).key("origins").key("allow").index(error.index).error(
                    .invalidValue,
                    "\(quote(error.entry)) is not an origin (scheme://host[:port]) or a scheme://*.suffix pattern"
                )
            }
        }
        return compiled
    }
}

/// Closes a connection refused at accept as soon as it is active; it never asks to read.
final class CloseAtAcceptHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { context.close(promise: nil) }
    }

    func channelActive(context: ChannelHandlerContext) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

@available(*, unavailable)
extension CloseAtAcceptHandler: Sendable {}
