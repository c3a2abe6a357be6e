import NIOCore

/// Switches the client and upstream channels from HTTP to frames once the upstream sent a valid 101
/// (DESIGN §1.8–1.9), synchronously and without futures (issue #15).
///
/// Neither channel has an HTTP handler to remove: ``ClientConnectionHandler`` scans the client's head
/// itself and keeps count of any bytes the client sent after it, and the upstream channel's one
/// ``UpstreamLegHandler`` read the 101 itself and keeps what follows it. So the switch is
/// ``installRelay(_:after:)``: put a ``RelayHandler`` behind the client's handler and remove that
/// handler (two synchronous changes on the client's pipeline), and let the ``UpstreamLegHandler`` relay,
/// starting with the bytes it kept (frames the upstream sent right behind its 101).
///
/// Before it, bytes from the client are early data (RFC 6455 §4.1: the client waits for the answer),
/// which ``ClientConnectionHandler`` refuses and never forwards.
struct UpgradePipelineSwitch {
    let client: any Channel
    let upstream: any Channel
    /// The upstream channel's one handler (no pipeline lookup at the switch).
    let upstreamLeg: UpstreamLegHandler

    init(client: any Channel, upstream: any Channel, upstreamLeg: UpstreamLegHandler) {
        self.client = client
        self.upstream = upstream
        self.upstreamLeg = upstreamLeg
    }

    /// The relay takes over both channels; `handler` (the upgrade's) leaves the client's pipeline.
    func installRelay(_ session: RelaySession, after handler: ClientConnectionHandler) throws {
        let pipeline = self.client.pipeline.syncOperations
        try pipeline.addHandler(RelayHandler(side: .client, session: session), position: .after(handler))
        pipeline.removeHandler(handler, promise: nil)
        self.upstreamLeg.startRelay(session)
        if !self.upstream.isActive { session.inactive(.upstream) }
    }
}
