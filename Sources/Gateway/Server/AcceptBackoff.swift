import NIOCore
import NIOPosix

extension ServerBootstrap {
    /// Stops accepting for a second after `accept` fails for want of a resource (EMFILE, ENFILE,
    /// ENOBUFS, ENOMEM; RELIABILITY R-12), with NIO's `AcceptBackoffHandler`.
    ///
    /// Out of descriptors, `accept` fails while the listener stays readable, so without a backoff the
    /// event loop retried at once, forever: a busy loop (measured: about 5,800 failed `accept4` a second
    /// on one event loop of a `wsgate run` under `ulimit -n 64`). NIO installs this handler itself only
    /// for the async `bind` that returns an `NIOAsyncChannel`, not for `bind(host:port:)`, which every
    /// listener here uses. Connections already accepted are unaffected; new ones wait in the backlog and
    /// are accepted within about a second of descriptors being freed.
    func backingOffAfterAcceptErrors() -> ServerBootstrap {
        self.serverChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(AcceptBackoffHandler(shouldForwardIOErrorCaught: false))
            }
        }
    }
}
