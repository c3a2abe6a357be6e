import NIOCore
import NIOHTTP1

extension ClientConnectionHandler {
    /// Issue #14: a connection that starts relaying enters the live table (`/connections`) until its
    /// relay finishes, and the taps that watch it are told of its handshake (`open`, redacted).
    func observe(_ session: RelaySession, request: ClientUpgradeRequest, channel: any Channel) {
        let record = self.recorder.record
        let address = record.clientAddress ?? channel.remoteAddress?.ipAddress ?? "unknown"
        let client: String
        if let remote = channel.remoteAddress, let port = remote.port, remote.ipAddress == record.clientAddress {
            client = address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
        } else {
            client = address
        }
        let info = LiveConnectionInfo(
            id: record.id,
            listener: record.listener,
            route: request.route.route.label,
            client: client,
            clientAddress: address,
            upstream: record.upstream ?? "",
            protocol: record.httpProtocol,
            started: record.start,
            tls: record.tlsVersion.map { LiveConnectionInfo.TLS(version: $0, cipher: record.tlsCipher ?? "", serverName: self.serverName) },
            subprotocol: record.subprotocol,
            clientExtensions: record.clientExtensions,
            upstreamExtensions: record.upstreamExtensions,
            scheme: self.clientUsedTLS ? "wss" : "ws",
            method: request.head.method.rawValue,
            target: request.head.uri,
            tokenQueryParameters: request.route.route.auth?.jwt?.tokenSources.compactMap { if case .query(let name) = $0 { name } else { nil } } ?? []
        )
        let registry = self.environment.connections
        registry.live.insert(info, session: session)
        session.tapInfo = info
        let previous = session.onFinish
        session.onFinish = { outcome, stats in
            registry.live.remove(info.id)
            previous?(outcome, stats)
        }
        // A connection whose relay never started properly leaves the table with its channel.
        channel.closeFuture.whenComplete { _ in registry.live.remove(info.id) }
        session.retap(registry.taps)
        guard let tap = session.tap else { return }
        let redaction = registry.taps.redaction.including(request.route.route.auth?.jwt)
        let open = TapOpen(
            connection: info.id,
            time: TapEvent.now,
            route: info.route,
            scheme: self.clientUsedTLS ? "wss" : "ws",
            listener: info.listener,
            client: info.client,
            method: request.head.method.rawValue,
            target: redaction.redactedTarget(request.head.uri),
            headers: redaction.redactedHeaders(request.head.headers)
        )
        tap.emit(.open(open))
    }
}
