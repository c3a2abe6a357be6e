import Foundation
import Frames
import NIOHTTP1

/// What the admin listener does with one request (issue #14): a pure function of the request, so
/// routing, the token guard and every error answer are tested without a socket.
enum AdminRoute: Equatable {
    /// A complete answer.
    case answer(AdminAnswer)
    /// `/metrics`: the registry's text.
    case metrics
    /// `GET /connections?limit=`.
    case listConnections(limit: Int)
    /// `GET /connections/{id}`.
    case showConnection(UInt64)
    /// `POST /connections/{id}/close`.
    case closeConnection(UInt64, CloseCodeRequest)
    /// `GET /tap?…`: a stream.
    case tap(TapRequest)
}

/// A status, a content type, a body and extra headers.
struct AdminAnswer: Error, Equatable {
    var status: HTTPResponseStatus
    var contentType: String
    var body: [UInt8]
    var headers: [String: String] = [:]

    static let plain = "text/plain; charset=utf-8"
    static let json = "application/json"

    static func text(_ status: HTTPResponseStatus, _ text: String) -> AdminAnswer {
        AdminAnswer(status: status, contentType: plain, body: Array(text.utf8))
    }

    /// `{"error":"…"}` with `status`.
    static func error(_ status: HTTPResponseStatus, _ message: String) -> AdminAnswer {
        AdminAnswer(status: status, contentType: json, body: Array("{\"error\":\(JSONLineLogHandler.quote(message))}\n".utf8))
    }
}

/// The Close an operator asks for: 1008 (policy) or 1001 (going away), a reason of at most 123 bytes.
struct CloseCodeRequest: Equatable, Sendable {
    var code: CloseCode
    var reason: String
}

/// `/tap`'s parameters.
struct TapRequest: Equatable, Sendable {
    var filter = TapSubscriber.Filter()
    var payload = TapPayloadMode.truncated
    var maxPayload = TapSubscriber.defaultMaxPayload
}

enum AdminRouter {
    static let defaultConnectionLimit = 1000
    static let maxConnectionLimit = 10000

    /// Routes one request. `token`: the bearer token that guards `/connections*` and `/tap`
    /// (`nil`: no guard); `/metrics`, `/healthz` and `/readyz` are never guarded.
    static func route(
        method: HTTPMethod,
        uri: String,
        headers: HTTPHeaders,
        body: [UInt8],
        token: AdminToken.Value?,
        isReady: Bool
    ) -> AdminRoute {
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = String(parts.first ?? "")
        let query = parts.count > 1 ? Self.query(parts[1]) : [:]
        let readOnly = method == .GET || method == .HEAD
        switch path {
        case "/metrics":
            return readOnly ? .metrics : Self.methodNotAllowed("GET")
        case "/healthz":
            return readOnly ? .answer(.text(.ok, "ok\n")) : Self.methodNotAllowed("GET")
        case "/readyz":
            guard readOnly else { return Self.methodNotAllowed("GET") }
            return .answer(isReady ? .text(.ok, "ready\n") : .text(.serviceUnavailable, "draining\n"))
        case "/":
            // The dashboard page holds no data: everything it shows comes from `/connections`, `/metrics`
            // and `/tap`, which it requests with the token from its URL fragment. A browser cannot send a
            // bearer token when it navigates, so guarding the page itself would lock the dashboard out.
            guard readOnly else { return Self.methodNotAllowed("GET") }
            return .answer(AdminAnswer(status: .ok, contentType: "text/html; charset=utf-8", body: Array(DashboardPage.html.utf8)))
        default:
            break
        }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        let guarded = path == "/tap" || segments.first == "connections"
        guard guarded else {
            return .answer(.text(.notFound, "not found (try /, /connections, /tap, /metrics, /healthz, /readyz)\n"))
        }
        if let token, !token.authorizes(headers["Authorization"].first) {
            var answer = AdminAnswer.error(.unauthorized, "a bearer token is required (Authorization: Bearer …)")
            answer.headers["WWW-Authenticate"] = "Bearer realm=\"wsgate admin\""
            return .answer(answer)
        }
        if path == "/tap" {
            guard method == .GET else { return Self.methodNotAllowed("GET") }
            return Self.tap(query)
        }
        // /connections, /connections/{id}, /connections/{id}/close
        let rest = Array(segments.dropFirst())
        switch rest.count {
        case 0:
            guard readOnly else { return Self.methodNotAllowed("GET") }
            var limit = Self.defaultConnectionLimit
            if let text = query["limit"] {
                guard let value = Int(text), (1...Self.maxConnectionLimit).contains(value) else {
                    return .answer(.error(.badRequest, "limit must be a whole number from 1 to \(Self.maxConnectionLimit)"))
                }
                limit = value
            }
            return .listConnections(limit: limit)
        case 1:
            guard readOnly else { return Self.methodNotAllowed("GET") }
            guard let id = UInt64(rest[0]) else { return .answer(.error(.notFound, "no such connection")) }
            return .showConnection(id)
        case 2 where rest[1] == "close":
            guard method == .POST else { return Self.methodNotAllowed("POST") }
            guard let id = UInt64(rest[0]) else { return .answer(.error(.notFound, "no such connection")) }
            switch Self.closeRequest(body) {
            case .success(let request): return .closeConnection(id, request)
            case .failure(let answer): return .answer(answer)
            }
        default:
            return .answer(.error(.notFound, "not found"))
        }
    }

    private static func methodNotAllowed(_ allow: String) -> AdminRoute {
        var answer = AdminAnswer.error(.methodNotAllowed, "method not allowed")
        answer.headers["Allow"] = allow == "GET" ? "GET, HEAD" : allow
        return .answer(answer)
    }

    /// `{"code":1008|1001,"reason":"…"}`; the reason is optional, at most 123 bytes of UTF-8 (RFC 6455
    /// §5.5: a Close body is at most 125 bytes, two of them the code).
    static func closeRequest(_ body: [UInt8]) -> Result<CloseCodeRequest, AdminAnswer> {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            return .failure(.error(.badRequest, "the body must be a JSON object {\"code\":1008|1001,\"reason\":\"…\"}"))
        }
        // `true` reads as 1 and 1008.5 as no integer: neither is a code.
        guard let code = object["code"] as? Int, code == 1008 || code == 1001 else {
            return .failure(.error(.badRequest, "code must be 1008 (policy violation) or 1001 (going away)"))
        }
        let reasonValue = object["reason"] ?? ""
        guard let reason = reasonValue as? String else { return .failure(.error(.badRequest, "reason must be a string")) }
        guard reason.utf8.count <= 123 else {
            return .failure(.error(.badRequest, "reason is \(reason.utf8.count) bytes of UTF-8; at most 123 fit in a Close frame"))
        }
        return .success(CloseCodeRequest(code: CloseCode(UInt16(code)), reason: reason))
    }

    private static func tap(_ query: [String: String]) -> AdminRoute {
        var request = TapRequest()
        request.filter.route = query["route"].flatMap { $0.isEmpty ? nil : $0 }
        request.filter.client = query["client"].flatMap { $0.isEmpty ? nil : $0 }
        if let text = query["connection"], !text.isEmpty {
            guard let id = UInt64(text) else { return .answer(.error(.badRequest, "connection must be a connection id")) }
            request.filter.connection = id
        }
        if let text = query["payload"], !text.isEmpty {
            guard let mode = TapPayloadMode(rawValue: text) else {
                return .answer(.error(.badRequest, "payload must be none, truncated or full"))
            }
            request.payload = mode
        }
        if let text = query["max_payload"], !text.isEmpty {
            guard let value = Int(text), (0...TapSubscriber.fullPayloadLimit).contains(value) else {
                return .answer(.error(.badRequest, "max_payload must be a byte count from 0 to \(TapSubscriber.fullPayloadLimit)"))
            }
            request.maxPayload = value
        }
        return .tap(request)
    }

    /// The query's parameters, percent-decoded; the first of repeated names wins.
    static func query(_ text: Substring) -> [String: String] {
        var parameters: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = TapRedaction.percentDecoded(parts[0])
            if parameters[name] == nil { parameters[name] = parts.count > 1 ? TapRedaction.percentDecoded(parts[1]) : "" }
        }
        return parameters
    }
}
