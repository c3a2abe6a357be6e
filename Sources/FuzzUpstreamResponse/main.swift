// libFuzzer harness for the upstream's answer to the gateway's upgrade request (README, "Fuzzing"): the
// bytes go through the gateway's own upstream pipeline (`UpstreamHandshakePipeline`: the
// ``UpstreamLegHandler`` and its ``UpstreamResponseScanner``) on an `EmbeddedChannel`, and the head it yields through
// ``UpstreamHandshake/check(_:)`` (DESIGN §1.7). Byte 0 picks the offer (permessage-deflate, subprotocols),
// byte 1 the read size; the rest is the upstream's stream. Properties checked on every input (a failed
// one traps, a bug found):
// 1. **Reads change nothing:** in one read and in reads of 1–16 bytes, the same answer and verdict.
// 2. **Only a strict 101 is a WebSocket:** an accepted answer is a 101 with exactly one
//    `Sec-WebSocket-Accept` equal to the key's, `Upgrade` exactly `websocket`, `Connection` listing
//    `upgrade`, a subprotocol only if offered and as sent, permessage-deflate only if offered, with
//    windows of 8–15 bits (RFC 6455 §4.1, RFC 7692 §7).
// 3. **A refusal relays cleanly:** a non-101 is relayed as a final status (200–599) whose bytes, read
//    back by an HTTP client, are exactly one response with the same status, only the relayed header
//    names, and the collected body: nothing the upstream sent can split it into a second response.
// Gateway types are internal: the harness imports them `@testable` (fuzz builds are debug builds);
// in a release build the file is empty and the program does nothing.
#if DEBUG
import Frames
import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import Gateway

private let key = "AQIDBAUGBwgJCgsMDQ4PEA=="
private let accept = HandshakeKey.acceptValue(forKey: key)
private let request = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["Host": "upstream"])

/// The gateway's upstream pipeline fed `stream` in reads of `chunk` bytes, then closed: its answer, or
/// nil when it fails (decode error, closed before an answer).
private func answer(_ stream: ArraySlice<UInt8>, chunk: Int) -> UpstreamResponse? {
    let channel = EmbeddedChannel()
    let promise = channel.eventLoop.makePromise(of: UpstreamResponse.self)
    try! UpstreamHandshakePipeline.install(on: channel, tls: nil, answer: promise)
    try! channel.writeOutbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: upstream\r\n\r\n"))
    var offset = stream.startIndex
    while offset < stream.endIndex {
        let end = min(stream.endIndex, offset + chunk)
        do {
            try channel.writeInbound(ByteBuffer(bytes: stream[offset..<end]))
        } catch {
            break
        }
        offset = end
    }
    _ = try? channel.finish()
    let result = ResultBox()
    promise.futureResult.whenSuccess { result.value = $0 }
    promise.futureResult.whenFailure { _ in }
    channel.embeddedEventLoop.run()
    return result.value
}

/// Where the embedded loop's callback leaves the answer (it runs on this thread, in `run()`).
private final class ResultBox: @unchecked Sendable {
    var value: UpstreamResponse?
}

/// An HTTP client's reading of `bytes` (the response to a GET): its parts, and whether it all parsed.
private func clientReads(_ bytes: ByteBuffer) -> (parts: [HTTPClientResponsePart], error: (any Error)?) {
    let channel = EmbeddedChannel()
    try! channel.pipeline.syncOperations.addHandler(HTTPRequestEncoder())
    try! channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .fireError)))
    try! channel.writeOutbound(HTTPClientRequestPart.head(request))
    try! channel.writeOutbound(HTTPClientRequestPart.end(nil))
    var parts: [HTTPClientResponsePart] = []
    var failure: (any Error)?
    do {
        try channel.writeInbound(bytes)
    } catch {
        failure = error
    }
    while let part = try? channel.readInbound(as: HTTPClientResponsePart.self) { parts.append(part) }
    _ = try? channel.finish()
    return (parts, failure)
}

private func checkAccepted(_ head: HTTPResponseHead, _ handshake: UpstreamHandshake, subprotocol: String?, deflate: PerMessageDeflateParameters?) {
    precondition(head.status.code == 101, "accepted a \(head.status.code)")
    let accepts = head.headers["Sec-WebSocket-Accept"]
    precondition(accepts.count == 1 && HTTPSyntax.trimmingOWS(accepts[0]) == accept, "accepted with Sec-WebSocket-Accept \(accepts)")
    let upgrades = head.headers["Upgrade"].flatMap { $0.split(separator: ",") }.map { HTTPSyntax.trimmingOWS($0).lowercased() }.filter { !$0.isEmpty }
    precondition(upgrades == ["websocket"], "accepted with Upgrade \(head.headers["Upgrade"])")
    precondition(HTTPSyntax.lowercasedTokens(head.headers["Connection"]).contains("upgrade"), "accepted without Connection: upgrade")
    let protocols = HTTPSyntax.commaList(head.headers["Sec-WebSocket-Protocol"])
    if let subprotocol {
        precondition(handshake.subprotocolsOffered.contains(subprotocol) && protocols == [subprotocol], "subprotocol \(subprotocol) of \(protocols)")
    } else {
        precondition(protocols.isEmpty, "accepted with unused Sec-WebSocket-Protocol \(protocols)")
    }
    if let deflate {
        precondition(handshake.deflateOffer != nil, "permessage-deflate accepted but never offered")
        precondition((8...15).contains(deflate.serverMaxWindowBits) && (8...15).contains(deflate.clientMaxWindowBits), "window bits \(deflate)")
    } else if handshake.deflateOffer == nil {
        precondition(HTTPSyntax.commaList(head.headers["Sec-WebSocket-Extensions"]).isEmpty, "accepted with an extension never offered")
    }
}

private func checkRefused(_ response: UpstreamResponse, status: Int) {
    precondition((200...599).contains(status), "a \(status) relayed to the client as the final answer")
    let relayed = response.relayedToClient()
    var bytes = ByteBuffer()
    relayed.write(to: &bytes)
    let (parts, error) = clientReads(bytes)
    precondition(error == nil, "the relayed \(status) does not parse: \(String(describing: error))")
    guard case .head(let head)? = parts.first, case .end? = parts.last else { preconditionFailure("the relayed \(status) reads as \(parts)") }
    precondition(parts.dropFirst().dropLast().allSatisfy { if case .body = $0 { true } else { false } }, "the relayed \(status) reads as \(parts)")
    precondition(Int(head.status.code) == status, "relayed \(status), read back \(head.status.code)")
    let allowed = UpstreamResponse.relayedHeaders.union(["connection", "content-length"])
    for (name, _) in head.headers { precondition(allowed.contains(name.lowercased()), "relayed header \(name)") }
    var body: [UInt8] = []
    for case .body(let chunk) in parts { body += chunk.readableBytesView }
    precondition(body == relayed.body, "relayed body \(relayed.body.count) bytes, read back \(body.count)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzUpstreamResponse(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let handshake = UpstreamHandshake(
        key: key,
        subprotocolsOffered: data[0] & 2 != 0 ? ["chat", "v2"] : [],
        deflateOffer: data[0] & 1 != 0 ? PerMessageDeflate.clientOffer() : nil
    )
    let stream = UnsafeBufferPointer(start: data + 2, count: size - 2)[...]
    let whole = answer(ArraySlice(stream), chunk: max(1, stream.count))
    let chunked = answer(ArraySlice(stream), chunk: Int(data[1] % 16) + 1)
    precondition(whole?.head == chunked?.head, "reads changed the answer: \(String(describing: whole?.head)) vs \(String(describing: chunked?.head))")
    guard let whole, let chunked else { return 0 }
    let verdict = handshake.check(whole.head)
    precondition(verdict == handshake.check(chunked.head), "reads changed the verdict")
    switch verdict {
    case .accepted(let subprotocol, let deflate):
        checkAccepted(whole.head, handshake, subprotocol: subprotocol, deflate: deflate)
    case .invalid:
        // A 101 that breaks the rules, or a status outside 100–599 (RFC 9110 §15): 502.
        let code = whole.head.status.code
        precondition(code == 101 || !(100...599).contains(code), "invalid verdict for a \(code)")
    case .refused(let status):
        precondition(status == Int(whole.head.status.code) && status != 101, "refused \(status)")
        precondition(whole.body == chunked.body, "reads changed the relayed body")
        checkRefused(whole, status: status)
    }
    return 0
}
#endif
