import NIOCore

extension GatewayEnvironment {
    /// Counts a newly accepted connection against its listener's and its IP's caps, and releases it when
    /// the channel closes. `false` when a cap is full: the refusal is counted and the caller closes the
    /// connection before reading anything.
    func admitAtAccept(_ channel: any Channel, listener: String) -> Bool {
        let ip = channel.remoteAddress?.ipAddress
        if let refusal = self.admission.admit(listener: listener, ip: ip) {
            self.metrics.connectionLimitRefused(listener: listener, ConnectionLimit(refusal))
            return false
        }
        let admission = self.admission
        channel.closeFuture.whenComplete { _ in admission.release(listener: listener, ip: ip) }
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
