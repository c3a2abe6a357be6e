import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOTLS
import TLSShim

/// What an HTTP/2 connection's streams need from the connection that carries them (issue #16): the
/// environment it was accepted under, its listener's settings, its client address and TLS.
struct HTTP2ConnectionSetup {
    let environment: GatewayEnvironment
    let listener: String
    let requireSNIHostMatch: Bool
    /// `client_address: chain` behind a trusted proxy: each stream's per-IP cap is applied at its head.
    let admitsClientAddressAtHead: Bool
    /// Whether the per-IP cap counts the socket's peer (no PROXY header, no chain).
    let countsSocketAddress: Bool

    /// swift-nio-http2's handler with the gateway's settings: `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`
    /// (RFC 8441 §3), the concurrent-stream limit, the HPACK decoder's hard header-list limit (the
    /// configured one is enforced per stream with 431), the stream windows and outbound watermarks
    /// derived from `max_connection_buffer`, and the rapid-reset guard (CVE-2023-44487).
    static func handler(
        limits: GatewayConfiguration.Limits,
        on eventLoop: any EventLoop,
        streamDelegate: (any NIOHTTP2StreamDelegate)?,
        initializer: @escaping NIOChannelInitializer
    ) -> NIOHTTP2Handler {
        let http2 = limits.http2
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: http2.maxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: http2.hardHeaderListBytes),
            HTTP2Setting(parameter: .initialWindowSize, value: http2.streamWindow),
            HTTP2Setting(parameter: .enableConnectProtocol, value: 1),
        ]
        connection.targetWindowSize = http2.connectionWindow
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = http2.streamWindow
        let high = http2.streamOutboundHighWatermark(relay: limits.bufferHighWatermark)
        stream.outboundBufferSizeHighWatermark = high
        stream.outboundBufferSizeLowWatermark = min(limits.bufferLowWatermark, high / 2)
        stream.streamResetFrameRateLimit.maximumCount = http2.maxResets
        stream.streamResetFrameRateLimit.windowLength = TimeAmount(http2.resetWindow)
        return NIOHTTP2Handler(
            mode: .server,
            eventLoop: eventLoop,
            connectionConfiguration: connection,
            streamConfiguration: stream,
            streamDelegate: streamDelegate,
            inboundStreamInitializer: initializer
        )
    }

    /// One stream's pipeline: the codec, then the same ``ClientConnectionHandler`` as an HTTP/1.1
    /// connection's, answering in HTTP/2. The stream counts as a connection for the caps; one refused
    /// there is answered `:status 503` (its codec alone).
    func initializeStream(_ stream: any Channel, client: IPAddress?, tls: TLSConnectionInfo?, memory: HTTP2ConnectionMemory?) throws {
        let environment = self.environment
        let record = ConnectionRecord(
            id: environment.makeConnectionID(),
            clientAddress: client?.description ?? stream.remoteAddress?.ipAddress,
            listener: self.listener,
            httpProtocol: ClientAnswerEncoding.http2.label
        )
        let recorder = UpgradeRecorder(record: record, metrics: environment.metrics, accessLog: environment.accessLog)
        let closeTimeout = TimeAmount(environment.timeouts.close)
        let maxHeaderList = environment.limits.http2.maxHeaderListBytes
        let pipeline = stream.pipeline.syncOperations
        guard self.admit(stream, client: client) else {
            let refusal = HandshakeRejection(503, "too many connections", reason: "connection-limit")
            let codec = HTTP2WebSocketStreamCodec(recorder: recorder, refusal: refusal, closeTimeout: closeTimeout, maxHeaderListBytes: maxHeaderList)
            try pipeline.addHandler(codec)
            return
        }
        let codec = HTTP2WebSocketStreamCodec(recorder: recorder, closeTimeout: closeTimeout, maxHeaderListBytes: maxHeaderList, memory: memory)
        try pipeline.addHandler(codec)
        try pipeline.addHandler(
            ClientConnectionHandler(
                environment: environment,
                record: record,
                clientUsedTLS: true,
                requireSNIHostMatch: self.requireSNIHostMatch,
                admitsClientAddressAtHead: self.admitsClientAddressAtHead,
                answerEncoding: .http2,
                establishedTLS: tls
            )
        )
    }

    /// Every per-listener and per-IP cap counts each stream as a connection, released when it closes.
    private func admit(_ stream: any Channel, client: IPAddress?) -> Bool {
        guard self.environment.admitAtAccept(stream, listener: self.listener, countAddress: self.countsSocketAddress) else { return false }
        if !self.countsSocketAddress, !self.admitsClientAddressAtHead, let client {
            return self.environment.admitProxiedAddress(client.description, channel: stream, listener: self.listener)
        }
        return true
    }
}

extension ConnectionRecord {
    init(id: UInt64, clientAddress: String?, listener: String, httpProtocol: String) {
        self.init(id: id, clientAddress: clientAddress, listener: listener)
        self.httpProtocol = httpProtocol
    }
}
