import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

extension ServerBootstrap {
    /// Stops accepting for a second after `accept` fails for want of a resource (EMFILE, ENFILE,
    /// ENOBUFS, ENOMEM; RELIABILITY R-12): ``AcceptErrorPause``.
    func backingOffAfterAcceptErrors() -> ServerBootstrap {
        self.serverChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(AcceptErrorPause())
            }
        }
    }
}

/// On a listener: after `accept` fails for want of a resource, stop reading it (auto-read off) for
/// ``pause``, then try again; other errors pass. Waiting connections stay in the backlog and are
/// accepted within about a second of descriptors being freed; connections already accepted are
/// unaffected.
///
/// Why not NIO's `AcceptBackoffHandler`: it delays the listener's next `read()`, but when `accept`
/// fails before any connection of a read cycle was accepted, NIO still counts the read as pending, never
/// asks the pipeline for another and leaves the listener registered for readability, which epoll
/// reports again at once. Out of descriptors, one event loop retried `accept4` about 5,800 times a
/// second (strace, `wsgate run` under `ulimit -n 64`), with or without that handler. Turning auto-read
/// off unregisters the listener from epoll; turning it back on registers it and reads once.
final class AcceptErrorPause: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    /// How long the listener stops accepting after such an error: NIO's default backoff.
    static let pause: TimeAmount = .seconds(1)

    private var resume: Scheduled<Void>?

    /// The accept errors that a pause can outlast: out of descriptors or kernel memory.
    static func isResourceShortage(_ error: any Error) -> Bool {
        guard let error = error as? IOError else { return false }
        return [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error.errnoCode)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard Self.isResourceShortage(error) else {
            context.fireErrorCaught(error)
            return
        }
        guard self.resume == nil else { return }
        let channel = context.channel
        try? channel.syncOptions?.setOption(.autoRead, value: false)
        self.resume = context.eventLoop.assumeIsolated().scheduleTask(in: Self.pause) {
            self.resume = nil
            try? channel.syncOptions?.setOption(.autoRead, value: true)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.resume?.cancel()
        self.resume = nil
    }
}

@available(*, unavailable)
extension AcceptErrorPause: Sendable {}
