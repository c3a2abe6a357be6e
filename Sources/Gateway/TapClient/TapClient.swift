import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// `wsgate tap`'s HTTP side: `GET /tap?…` on the admin listener, the chunked NDJSON body handed on as
/// it arrives (``TapLineSplitter``, ``TapLineDecoder`` make events of it).
///
/// ```swift
/// let admin = try TapClient.Admin("http://127.0.0.1:9090")
/// let stream = try await TapClient.open(admin, query: [("route", "/chat")], token: nil, group: group) { bytes in … }
/// try await stream.finished.get()   // the gateway ended the stream (or stream.close())
/// ```
public enum TapClient {
    /// Where the admin listener is: `http://host[:port][/prefix]` (plain HTTP: the admin listener has
    /// no TLS; put it behind a TLS proxy and tap through a tunnel, or on loopback).
    public struct Admin: Equatable, Sendable {
        public var host: String
        public var port: Int
        /// A path prefix the admin listener is mounted under (`""` normally).
        public var prefix: String

        public init(_ url: String) throws(TapClientError) {
            guard url.hasPrefix("http://") else {
                throw TapClientError("--admin must be an http:// URL (the admin listener speaks plain HTTP): \(url)")
            }
            let rest = url.dropFirst("http://".count)
            let authority = rest.prefix { $0 != "/" }
            var prefix = String(rest.dropFirst(authority.count))
            while prefix.hasSuffix("/") { prefix.removeLast() }
            var host = String(authority)
            var port = 80
            if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
                host = String(authority[authority.index(after: authority.startIndex)..<close])
                let after = authority[authority.index(after: close)...]
                if after.hasPrefix(":") {
                    guard let value = Int(after.dropFirst()), (1...65535).contains(value) else { throw TapClientError("bad port in \(url)") }
                    port = value
                } else if !after.isEmpty {
                    throw TapClientError("bad host in \(url)")
                }
            } else if let colon = authority.lastIndex(of: ":") {
                host = String(authority[..<colon])
                guard let value = Int(authority[authority.index(after: colon)...]), (1...65535).contains(value) else {
                    throw TapClientError("bad port in \(url)")
                }
                port = value
            }
            guard !host.isEmpty, !host.contains("@") else { throw TapClientError("bad host in \(url)") }
            self.host = host
            self.port = port
            self.prefix = prefix
        }
    }

    /// The request target: `prefix/tap?name=value&…` with the values percent-encoded (RFC 3986 §3.4:
    /// everything but unreserved characters).
    public static func target(_ admin: Admin, query: [(String, String)]) -> String {
        let encoded = query.map { "\(Self.percentEncoded($0.0))=\(Self.percentEncoded($0.1))" }
        return admin.prefix + "/tap" + (encoded.isEmpty ? "" : "?" + encoded.joined(separator: "&"))
    }

    static func percentEncoded(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                result += "%" + (hex.count == 1 ? "0" : "") + hex
            }
        }
        return result
    }

    /// Connects, sends the request, and returns once the answer's head is 200; `onBytes` then gets the
    /// body's bytes as they arrive, on the channel's event loop. Any other status is thrown with the
    /// body's first line (a 401 says a token is needed).
    public static func open(
        _ admin: Admin,
        query: [(String, String)],
        token: String?,
        group: any EventLoopGroup,
        timeout: TimeAmount = .seconds(10),
        onBytes: @escaping @Sendable (ByteBuffer) -> Void
    ) async throws -> TapStream {
        let started = group.next().makePromise(of: Void.self)
        let finished = started.futureResult.eventLoop.makePromise(of: Void.self)
        let channel = try await ClientBootstrap(group: started.futureResult.eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(TapStreamHandler(started: started, finished: finished, onBytes: onBytes))
                }
            }
            .connect(host: admin.host, port: admin.port)
            .get()
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: admin.host.contains(":") ? "[\(admin.host)]:\(admin.port)" : "\(admin.host):\(admin.port)")
        headers.add(name: "Accept", value: "application/x-ndjson")
        headers.add(name: "User-Agent", value: "wsgate-tap")
        if let token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: Self.target(admin, query: query), headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let timer = channel.eventLoop.scheduleTask(in: timeout) {
            started.fail(TapClientError("no answer from the admin listener within \(timeout)"))
        }
        do {
            try await started.futureResult.get()
            timer.cancel()
        } catch {
            timer.cancel()
            try? await channel.close()
            throw error
        }
        return TapStream(channel: channel, finished: finished.futureResult)
    }
}

/// An open tap stream.
public struct TapStream: Sendable {
    let channel: any Channel
    /// Succeeds when the gateway ends the stream or ``close()`` is called; fails on a connection error.
    public let finished: EventLoopFuture<Void>

    public func close() async {
        try? await self.channel.close()
    }
}

public struct TapClientError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Checks the answer's status, then hands the body on.
final class TapStreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let started: EventLoopPromise<Void>
    private let finished: EventLoopPromise<Void>
    private let onBytes: @Sendable (ByteBuffer) -> Void
    /// The status when it is not 200, and the start of its body.
    private var refusal: (status: HTTPResponseStatus, body: String)?

    init(started: EventLoopPromise<Void>, finished: EventLoopPromise<Void>, onBytes: @escaping @Sendable (ByteBuffer) -> Void) {
        self.started = started
        self.finished = finished
        self.onBytes = onBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            if head.status == .ok {
                self.started.succeed()
            } else {
                self.refusal = (head.status, "")
            }
        case .body(let buffer):
            if var refusal = self.refusal {
                if refusal.body.utf8.count < 512 { refusal.body += String(buffer: buffer) }
                self.refusal = refusal
            } else {
                self.onBytes(buffer)
            }
        case .end:
            if let refusal = self.refusal {
                let line = refusal.body.split(separator: "\n").first.map(String.init) ?? ""
                self.started.fail(TapClientError("the admin listener answered \(refusal.status.code) \(refusal.status.reasonPhrase): \(line)"))
            }
            self.finished.succeed()
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.started.fail(TapClientError("the admin listener closed the connection without an answer"))
        self.finished.succeed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.started.fail(error)
        self.finished.fail(error)
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension TapStreamHandler: Sendable {}
