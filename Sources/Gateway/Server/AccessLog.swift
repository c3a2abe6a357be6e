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

    var metadata: Logger.Metadata {
        var fields: Logger.Metadata = [
            "id": "\(self.id)",
            "listener": "\(self.listener)",
            "duration_ms": "\((NIODeadline.now() - self.start).nanoseconds / 1_000_000)",
            "client_to_upstream_messages": "\(self.clientMessages)",
            "client_to_upstream_bytes": "\(self.clientBytes)",
            "upstream_to_client_messages": "\(self.upstreamMessages)",
            "upstream_to_client_bytes": "\(self.upstreamBytes)",
        ]
        func add(_ key: String, _ value: CustomStringConvertible?) {
            if let value { fields[key] = "\(value)" }
        }
        add("client", self.clientAddress)
        add("route", self.route)
        add("upstream", self.upstream)
        add("tls_version", self.tlsVersion)
        add("tls_cipher", self.tlsCipher)
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

/// Writes one JSON object per line: `{"ts":…,"msg":…,<metadata>}`. Numbers stay numbers.
struct JSONLineLogHandler: LogHandler {
    final class Sink: Sendable {
        private let lock = NIOLock()
        private let descriptor: Int32

        init(_ destination: GatewayConfiguration.AccessLogDestination) {
            switch destination {
            case .standardOutput: self.descriptor = 1
            case .standardError: self.descriptor = 2
            case .file(let path): self.descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
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
            let value = fields[key]!.description
            let isNumber = !value.isEmpty && value.allSatisfy(\.isNumber) && value.count < 19
            line += ",\(Self.quote(key)):\(isNumber ? value : Self.quote(value))"
        }
        line += "}\n"
        self.sink.write(line)
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

    init(_ destination: GatewayConfiguration.AccessLogDestination) {
        let sink = JSONLineLogHandler.Sink(destination)
        self.enabled = sink.isOpen
        self.logger = Logger(label: "wsgate.access") { _ in JSONLineLogHandler(sink: sink) }
    }

    func record(_ record: ConnectionRecord) {
        guard self.enabled else { return }
        self.logger.info("connection", metadata: record.metadata)
    }
}
