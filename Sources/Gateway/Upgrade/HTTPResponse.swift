import NIOCore

/// A plain HTTP/1.1 response the gateway writes itself (rejections, the 101, relayed upstream answers).
struct HTTPResponse: Sendable, Hashable {
    var status: Int
    var reason: String
    var headers: [(String, String)]
    var body: [UInt8]

    init(status: Int, reason: String? = nil, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.reason = reason ?? HTTPResponse.standardReason(status)
        self.headers = headers
        self.body = body
    }

    init(status: Int, reason: String? = nil, headers: [(String, String)] = [], body: String) {
        self.init(status: status, reason: reason, headers: headers, body: Array(body.utf8))
    }

    static func == (lhs: HTTPResponse, rhs: HTTPResponse) -> Bool {
        lhs.status == rhs.status && lhs.reason == rhs.reason && lhs.body == rhs.body
            && lhs.headers.map { [$0.0, $0.1] } == rhs.headers.map { [$0.0, $0.1] }
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(self.status)
        hasher.combine(self.body)
    }

    /// A rejection: the body says why, the connection is closed after it.
    static func rejection(_ status: Int, _ message: String, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(
            status: status,
            headers: headers + [("Content-Type", "text/plain; charset=utf-8"), ("Connection", "close")],
            body: message + "\n"
        )
    }

    /// Sent in clear to a plain HTTP request on a TLS listener, as nginx does ("The plain HTTP request
    /// was sent to HTTPS port"), instead of a silent close; the connection is still recorded as a
    /// failed TLS handshake (1015, class `plaintext_http`).
    static let plaintextHTTPOnTLSPort: [UInt8] = {
        var buffer = ByteBuffer()
        HTTPResponse.rejection(400, "This port speaks TLS: a plain HTTP request was sent to it. Use https:// or wss://.").write(to: &buffer)
        return Array(buffer.readableBytesView)
    }()

    /// The serialized response. A `Content-Length` is added when the status allows a body.
    func write(to buffer: inout ByteBuffer) {
        buffer.writeString("HTTP/1.1 \(self.status) \(self.reason)\r\n")
        for (name, value) in self.headers {
            buffer.writeString("\(name): \(value)\r\n")
        }
        if self.status != 101 && self.status != 204 && self.status != 304 {
            buffer.writeString("Content-Length: \(self.body.count)\r\n")
        }
        buffer.writeString("\r\n")
        buffer.writeBytes(self.body)
    }

    static func standardReason(_ status: Int) -> String {
        switch status {
        case 101: "Switching Protocols"
        case 200: "OK"
        case 400: "Bad Request"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 426: "Upgrade Required"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: "Status \(status)"
        }
    }
}
