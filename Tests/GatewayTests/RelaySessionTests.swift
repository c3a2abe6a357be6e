import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

@Suite struct RelaySessionTests {
    /// The session holds both legs' contexts, each context its handler and each handler the session:
    /// a cycle that kept every closed connection's session, handlers and pipelines alive (~1.5 KiB per
    /// connection, the RSS growth seen over the load runs). Removing the handlers must free them.
    @Test func aSessionIsFreedWhenBothLegsAreClosed() throws {
        let loop = EmbeddedEventLoop()
        weak var weakSession: RelaySession?
        weak var weakHandler: RelayHandler?
        try {
            let session = RelaySession(eventLoop: loop, limits: .init(), closeTimeout: .seconds(5), idleTimeout: .seconds(120))
            weakSession = session
            let handler = RelayHandler(side: .client, session: session)
            weakHandler = handler
            let client = EmbeddedChannel(handler: handler, loop: loop)
            let upstream = EmbeddedChannel(handler: RelayHandler(side: .upstream, session: session), loop: loop)
            _ = try client.finish(acceptAlreadyClosed: true)
            _ = try upstream.finish(acceptAlreadyClosed: true)
            loop.run()
        }()
        #expect(weakHandler == nil)
        #expect(weakSession == nil)
    }
}
