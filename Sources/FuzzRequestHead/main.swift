// libFuzzer harness for a client's request head (README, "Fuzzing"): the bytes go through the listener's
// own head scanner (``RequestHeadScanner`` under the 16 KiB head limit, as ``ClientConnectionHandler``
// runs it), the head through ``ClientUpgradeRequest/validate(_:limits:routes:)``
// (RFC 6455 §4.2.1, DESIGN §1.3–1.4), and an accepted one through
// ``UpstreamHandshake/requestHead(for:upstream:peer:peerIsTrusted:clientUsedTLS:)``. Byte 0 picks the
// read size and whether the peer is a trusted proxy; the rest is the client's stream. Properties checked
// on every input (a failed one traps, a bug found):
// 1. **Reads change nothing:** in one read and in reads of 1–16 bytes, the same head (or the same
//    failure) and the same verdict.
// 2. **Never accepts what the strict rules reject** (checked independently of the code under test): an
//    accepted request is `GET` over HTTP/1.1 with an origin-form target, at most the header limit, every
//    field name a token and no CR, LF or NUL in a value, exactly one `Host`, `Upgrade`,
//    `Sec-WebSocket-Key` (24 base64 characters ending `==`) and `Sec-WebSocket-Version: 13`, at most one
//    `Origin`, and no body (`Transfer-Encoding` absent, `Content-Length` absent or 0).
// 3. **The request sent upstream is well formed:** the gateway's own writer's bytes read back by NIO's
//    decoder as exactly one head, with exactly one `Host`, `Upgrade`, `Connection`, `Sec-WebSocket-Key`
//    (a fresh one, never the client's) and `Sec-WebSocket-Version`, and no other hop-by-hop field.
// 4. **Never more lenient than llhttp** (NIO's decoder, the reference): a head the gateway upgrades,
//    llhttp reads the same (values compared without trailing OWS, which llhttp keeps and the scanner
//    drops); a head the checks refuse is answered 400 whether llhttp reads it or not.
// Gateway types are internal: the harness imports them `@testable` (fuzz builds are debug builds);
// in a release build the file is empty and the program does nothing.
#if DEBUG
import Frames
import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import Gateway

private let limits = GatewayConfiguration.Limits()
private let routes = RouteTable([
    .init(
        hosts: ["chat.example.com"],
        pathPrefix: "/chat",
        upstreams: [.init(scheme: .wss, host: "::1", port: 443, path: "/in")],
        subprotocols: ["chat.v1"]
    ),
    .init(pathPrefix: "/", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 9000)]),
])

/// The head the gateway's ``RequestHeadScanner`` reads from `stream` in reads of `chunk` bytes (as
/// ``ClientConnectionHandler`` scans it, under the listener's request-head limit); nil when it refused the
/// bytes or needs more.
private func heads(_ stream: some Collection<UInt8>, chunk: Int) -> HTTPRequestHead? {
    var scanner = RequestHeadScanner(limit: limits.requestHeadBytes)
    var buffer = ByteBuffer()
    let bytes = Array(stream)
    var offset = 0
    while offset < bytes.count {
        let end = min(bytes.count, offset + chunk)
        buffer.writeBytes(bytes[offset..<end])
        offset = end
        switch scanner.scan(buffer) {
        case .needMore: continue
        case .head(let head, _): return head
        case .failure: return nil
        }
    }
    return nil
}

/// llhttp (NIO's request decoder, the gateway's parser before issue #15) as the differential reference:
/// the first head it reads from `bytes` in one read.
private func llhttpHead(_ bytes: some Collection<UInt8>) -> HTTPRequestHead? {
    let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
    _ = try? channel.writeInbound(ByteBuffer(bytes: Array(bytes)))
    var head: HTTPRequestHead?
    while head == nil, let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
        if case .head(let first) = part { head = first }
    }
    _ = try? channel.finish(acceptAlreadyClosed: true)
    return head
}

private func decode(_ bytes: ByteBuffer) -> (HTTPRequestHead?, leftover: Bool) {
    let decoder = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .fireError)))
    var parts: [HTTPServerRequestPart] = []
    let failed = (try? decoder.writeInbound(bytes)) == nil
    while let part = try? decoder.readInbound(as: HTTPServerRequestPart.self) { parts.append(part) }
    _ = try? decoder.finish()
    guard !failed, parts.count == 2, case .head(let decoded) = parts[0], case .end = parts[1] else { return (nil, true) }
    return (decoded, false)
}

private let base64 = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

private func checkAccepted(_ head: HTTPRequestHead, _ request: ClientUpgradeRequest) {
    let headers = head.headers
    precondition(head.method == .GET && head.version == .http1_1, "accepted \(head.method) \(head.version)")
    precondition(head.uri.utf8.first == UInt8(ascii: "/"), "accepted target \(head.uri)")
    precondition(headers.count <= limits.requestHeaders, "accepted \(headers.count) fields")
    for (name, value) in headers {
        precondition(HTTPSyntax.isToken(name), "accepted field name \(name.utf8.map { $0 })")
        precondition(!value.utf8.contains { $0 == 0 || $0 == 10 || $0 == 13 }, "accepted a CR, LF or NUL in \(name)")
    }
    for name in ["Host", "Upgrade", "Sec-WebSocket-Key", "Sec-WebSocket-Version"] {
        precondition(headers[name].count == 1, "accepted with \(headers[name].count) \(name)")
    }
    precondition(headers["Origin"].count <= 1, "accepted with several Origin")
    let key = Array(HTTPSyntax.trimmingOWS(headers["Sec-WebSocket-Key"][0]).utf8)
    precondition(key.count == 24 && key.suffix(2) == [61, 61] && key.prefix(22).allSatisfy(base64.contains), "accepted key \(key)")
    precondition(HTTPSyntax.trimmingOWS(headers["Sec-WebSocket-Version"][0]) == "13", "accepted version")
    precondition(!headers.contains(name: "Transfer-Encoding"), "accepted a Transfer-Encoding")
    precondition(headers["Content-Length"].allSatisfy { $0 == "0" }, "accepted a Content-Length \(headers["Content-Length"])")
    precondition(
        request.route.route.subprotocols.isEmpty || request.subprotocols.allSatisfy(request.route.route.subprotocols.contains),
        "subprotocols"
    )
}

private func checkUpstreamHead(_ request: ClientUpgradeRequest, trusted: Bool) {
    let handshake = UpstreamHandshake(subprotocolsOffered: request.subprotocols, deflateOffer: nil)
    let bytes = handshake.requestHead(
        for: request,
        upstream: request.route.route.upstreams[0],
        peer: IPAddress("192.0.2.7"),
        peerIsTrusted: trusted,
        clientUsedTLS: false
    )
    let (decoded, leftover) = decode(bytes)
    guard !leftover, let head = decoded else {
        preconditionFailure("the upstream request does not read back: \(String(buffer: bytes))")
    }
    for name in ["Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version"] {
        precondition(head.headers[name].count == 1, "upstream request with \(head.headers[name].count) \(name)")
    }
    precondition(head.headers["Sec-WebSocket-Key"][0] == handshake.key && handshake.key != request.key, "upstream key")
    for name in [
        "Transfer-Encoding", "Content-Length", "TE", "Trailer", "Keep-Alive", "Proxy-Connection", "Sec-WebSocket-Accept", "Sec-WebSocket-Extensions",
    ] {
        precondition(!head.headers.contains(name: name), "upstream request with \(name)")
    }
    precondition(head.headers["Sec-WebSocket-Protocol"].count <= 1, "upstream request with several Sec-WebSocket-Protocol")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequestHead(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let chunk = Int(data[0] & 0x0F) + 1
    let trusted = data[0] & 0x10 != 0
    let stream = UnsafeBufferPointer(start: data + 1, count: size - 1)
    // Past the head limit the verdict depends on how the bytes were read (the limiter counts reads).
    guard stream.count <= limits.requestHeadBytes else { return 0 }
    let whole = heads(stream, chunk: max(1, stream.count))
    let chunked = heads(stream, chunk: chunk)
    precondition(whole == chunked, "reads changed the head: \(String(describing: whole)) vs \(String(describing: chunked))")
    guard let head = whole else { return 0 }
    let verdict = ClientUpgradeRequest.validate(head, limits: limits, routes: routes)
    precondition(verdict == ClientUpgradeRequest.validate(head, limits: limits, routes: routes), "validation is not a function of the head")
    switch verdict {
    case .success(let request):
        // 4. **Never more lenient than llhttp:** a head the gateway upgrades, llhttp reads the same, but
        // for a value's trailing OWS, which llhttp keeps and the scanner drops (RFC 9110 §5.5). A head
        // the checks refuse may be one llhttp refuses too for another reason (a Transfer-Encoding with a
        // Content-Length, say): both answer 400, so only upgraded heads are compared.
        let reference = llhttpHead(stream).map { read in
            var trimmed = read
            trimmed.headers = HTTPHeaders(read.headers.map { ($0.name, HTTPSyntax.trimmingOWS($0.value)) })
            return trimmed
        }
        precondition(reference == head, "llhttp reads it otherwise: \(String(describing: reference)) vs \(head)")
        checkAccepted(head, request)
        checkUpstreamHead(request, trusted: trusted)
    case .failure(let rejection):
        precondition([400, 404, 405, 414, 426, 431].contains(rejection.response.status), "refused with \(rejection.response.status)")
    }
    return 0
}
#endif
