import Logging
import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the access log records about one connection, written as one JSON line when it ends
/// (DESIGN §6).
struct ConnectionRecord {
    var id: UInt64
    var clientAddress: String?
    var listener: String
    var start: NIODeadline = .now()
    var route: String?
    var upstream: String?
    var tlsVersion: String?
    var tlsCipher: String?
    /// The verified client certificate's subject (RFC 2253), with mTLS (issue #13).
    var clientCertificateSubject: String?
    var subprotocol: String?
    /// The extensions in effect on each leg (the `Sec-WebSocket-Extensions` value agreed), if any.
    var clientExtensions: String?
    var upstreamExtensions: String?
    /// The HTTP status the handshake ended with (101 when it switched to frames).
    var status: Int?
    var refusal: String?
    var clientMessages = 0
    var clientBytes = 0
    var upstreamMessages = 0
    var upstreamBytes = 0
    var closeCode: Int?
    var closedBy: String?
    /// What carried the WebSocket's handshake: `http1` (an HTTP/1.1 upgrade) or `h2` (an RFC 8441
    /// stream, issue #16).
    var httpProtocol = ClientAnswerEncoding.http1.label

    /// Counts and codes are `.stringConvertible` integers, so the log writes them as JSON numbers;
    /// everything that came from a peer (subprotocol, extensions, address, refusal) is a string and is
    /// always quoted, whatever it looks like (a subprotocol `123` stays the string "123").
    var metadata: Logger.Metadata {
        var fields: Logger.Metadata = [
            "id": .stringConvertible(self.id),
            "listener": .string(self.listener),
            "protocol": .string(self.httpProtocol),
            "duration_ms": .stringConvertible((NIODeadline.now() - self.start).nanoseconds / 1_000_000),
            "client_to_upstream_messages": .stringConvertible(self.clientMessages),
            "client_to_upstream_bytes": .stringConvertible(self.clientBytes),
            "upstream_to_client_messages": .stringConvertible(self.upstreamMessages),
            "upstream_to_client_bytes": .stringConvertible(self.upstreamBytes),
        ]
        func add(_ key: String, _ value: String?) {
            if let value { fields[key] = .string(value) }
        }
        func add(_ key: String, _ value: Int?) {
            if let value { fields[key] = .stringConvertible(value) }
        }
        add("client", self.clientAddress)
        add("route", self.route)
        add("upstream", self.upstream)
        add("tls_version", self.tlsVersion)
        add("tls_cipher", self.tlsCipher)
        add("client_cert_subject", self.clientCertificateSubject)
        add("subprotocol", self.subprotocol)
        add("client_extensions", self.clientExtensions)
        add("upstream_extensions", self.upstreamExtensions)
        add("status", self.status)
        add("refusal", self.refusal)
        add("close_code", self.closeCode)
        add("closed_by", self.closedBy)
        return fields
    }
}

/// Why the access-log file could not be opened; the gateway refuses to start (or to reload) rather
/// than run without the log it was told to write.
public struct AccessLogError: Error, Hashable, CustomStringConvertible {
    public enum Code: Hashable, Sendable {
        /// The path is a symbolic link: opened with `O_NOFOLLOW`, so a link planted where the log goes
        /// cannot make the gateway append to (or create) another file.
        case symbolicLink
        case openFailed
    }

    public var code: Code
    public var path: String
    public var errno: Int32

    public var description: String {
        switch self.code {
        case .symbolicLink: "access log \(self.path): is a symbolic link; give the real file's path"
        case .openFailed: "access log \(self.path): \(String(cString: strerror(self.errno)))"
        }
    }
}

/// Writes one JSON object per line: `{"ts":…,"msg":…,<metadata>}`. Numbers stay numbers.
struct JSONLineLogHandler: LogHandler {
    final class Sink: Sendable {
        private let lock = NIOLock()
        private let descriptor: Int32

        init(_ destination: GatewayConfiguration.AccessLogDestination) throws(AccessLogError) {
            switch destination {
            case .standardOutput: self.descriptor = 1
            case .standardError: self.descriptor = 2
            case .file(let path):
                let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0o640)
                guard descriptor >= 0 else {
                    let error = errno
                    throw AccessLogError(code: error == ELOOP ? .symbolicLink : .openFailed, path: path, errno: error)
                }
                self.descriptor = descriptor
            case .off: self.descriptor = -1
            }
        }

        var isOpen: Bool { self.descriptor >= 0 }

        /// A file opened here is closed when the last configuration and connection using it are gone
        /// (a reload opens the file again: log rotation is `mv` and SIGHUP).
        deinit {
            if self.descriptor > 2 { close(self.descriptor) }
        }

        /// One `write(2)` per line under a lock, so lines from different event loops never interleave.
        func write(_ line: String) {
            guard self.descriptor >= 0 else { return }
            var line = line
            self.lock.withLock {
                line.withUTF8 { bytes in
                    var offset = 0
                    while offset < bytes.count {
                        let written = Glibc.write(self.descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                        if written < 0 {
                            if errno == EINTR { continue }
                            return
                        }
                        offset += written
                    }
                }
            }
        }
    }

    let sink: Sink
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields = self.metadata
        fields.merge(event.metadata ?? [:]) { $1 }
        var line = "{\"msg\":\(Self.quote(event.message.description))"
        for key in fields.keys.sorted() {
            line += ",\(Self.quote(key)):\(Self.json(fields[key]!))"
        }
        line += "}\n"
        self.sink.write(line)
    }

    /// A metadata value as JSON. Only an integer the gateway put there as `.stringConvertible` is a
    /// number, and only if its text is a JSON number of ASCII digits (RFC 8259 §6); every string is
    /// quoted and escaped, arrays and dictionaries are JSON arrays and objects.
    static func json(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let text):
            return Self.quote(text)
        case .stringConvertible(let convertible):
            let text = convertible.description
            return convertible is any BinaryInteger && Self.isJSONInteger(text) ? text : Self.quote(text)
        case .array(let values):
            return "[" + values.map(Self.json).joined(separator: ",") + "]"
        case .dictionary(let fields):
            return "{" + fields.keys.sorted().map { "\(Self.quote($0)):\(Self.json(fields[$0]!))" }.joined(separator: ",") + "}"
        }
    }

    /// `-?(0|[1-9][0-9]*)` in ASCII digits only (Character.isNumber would also take `٣` or `½`).
    static func isJSONInteger(_ text: String) -> Bool {
        var digits = Substring(text).utf8[...]
        if digits.first == UInt8(ascii: "-") { digits = digits.dropFirst() }
        guard let first = digits.first, digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return false }
        return first != UInt8(ascii: "0") || digits.count == 1
    }

    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// The access log: one line per connection at its end.
struct AccessLog: Sendable {
    let logger: Logger
    let enabled: Bool

    init(_ destination: GatewayConfiguration.AccessLogDestination) throws(AccessLogError) {
        let sink = try JSONLineLogHandler.Sink(destination)
        self.enabled = sink.isOpen
        self.logger = Logger(label: "wsgate.access") { _ in JSONLineLogHandler(sink: sink) }
    }

    func record(_ record: ConnectionRecord) {
        guard self.enabled else { return }
        self.logger.info("connection", metadata: record.metadata)
    }
}
