// wsgate-core: the epoll data-plane prototype of issue #15 part 2, for the load harness only.
//   wsgate-core --listen 127.0.0.1:18905 --upstream 127.0.0.1:18900 [--loops 2]
//               [--tls-cert PEM --tls-key PEM [--tls-host NAME:PEM:KEY]...] [--batch on|off] [--key-batch BYTES] [--buffer BYTES]
// ws://, or wss:// with --tls-cert/--tls-key (core22), plus SNI virtual hosts with --tls-host (engine23); limits as the bench config of wsgate (16 MiB frames and messages, 100,000 fragments).
import Frames
import RelayCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

func hostPort(_ value: String) -> (String, UInt16)? {
    guard let colon = value.lastIndex(of: ":"), let port = UInt16(value[value.index(after: colon)...]) else { return nil }
    return (String(value[..<colon]), port)
}

/// A whole file as a string (a PEM), or exits.
func contents(of path: String) -> String {
    guard let file = fopen(path, "rb") else { fatalError("cannot open \(path)") }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = fread(&chunk, 1, chunk.count, file)
        if count == 0 { break }
        bytes += chunk[..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}

var configuration = RelayCoreConfiguration()
var certificatePath: String?
var keyPath: String?
var virtualHosts: [(serverName: String, certificatePEM: String, privateKeyPEM: String)] = []
configuration.listenPort = 18905
configuration.loops = 2
configuration.frameLimits.maxFrameSize = 16 << 20
configuration.frameLimits.maxMessageSize = 16 << 20
configuration.frameLimits.maxFragmentsPerMessage = 100_000
/// The drain's deadline after SIGTERM/SIGINT: the gateway's `timeouts.drain` default.
var drainMilliseconds = 25_000
var arguments = CommandLine.arguments.dropFirst()
while let flag = arguments.popFirst() {
    let value = arguments.popFirst() ?? ""
    switch flag {
    case "--listen":
        guard let (host, port) = hostPort(value) else { fatalError("--listen HOST:PORT") }
        configuration.listenHost = host
        configuration.listenPort = port
    case "--upstream":
        guard let (host, port) = hostPort(value) else { fatalError("--upstream HOST:PORT") }
        configuration.upstreamHost = host
        configuration.upstreamPort = port
    case "--loops":
        guard let loops = Int(value), loops > 0 else { fatalError("--loops N") }
        configuration.loops = loops
    case "--tls-cert": certificatePath = value
    case "--tls-key": keyPath = value
    case "--tls-host":
        let parts = value.split(separator: ":", maxSplits: 2).map(String.init)
        guard parts.count == 3 else { fatalError("--tls-host NAME:CERT-PEM:KEY-PEM") }
        virtualHosts.append((parts[0], contents(of: parts[1]), contents(of: parts[2])))
    case "--batch": configuration.batchedParsing = value != "off"
    case "--buffer":
        guard let bytes = Int(value), bytes >= 4096 else { fatalError("--buffer BYTES (at least 4096)") }
        configuration.bufferSize = bytes
    case "--drain-timeout":
        guard let milliseconds = Int(value), milliseconds >= 0 else {
            fatalError("--drain-timeout MILLISECONDS (the drain's deadline after SIGTERM/SIGINT)")
        }
        drainMilliseconds = milliseconds
    case "--key-batch":
        guard let bytes = Int(value), bytes > 0 else { fatalError("--key-batch BYTES") }
        configuration.maskingKeyBatchBytes = bytes
    default:
        fatalError(
            "usage: wsgate-core --listen HOST:PORT --upstream HOST:PORT [--loops N] [--tls-cert PEM --tls-key PEM [--tls-host NAME:PEM:KEY]...] [--batch on|off] [--key-batch BYTES] [--buffer BYTES]"
        )
    }
}
// Two descriptors per connection: take the hard limit (the bench's idle-10k needs 20,000).
var limit = rlimit()
if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 {
    limit.rlim_cur = limit.rlim_max
    setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
}
signal(SIGPIPE, SIG_IGN)
// [--drain-timeout MILLISECONDS] (corectl23): SIGTERM/SIGINT drain the core — no new connections, Close 1001
// to every leg at its next message boundary, the rest closed after the drain timeout (25,000 ms, the
// gateway's timeouts.drain) — and it exits 0 when no connection is left. A second signal during the drain is
// ignored (the deadline bounds the drain).
// SIGTERM/SIGINT are blocked here, before the loops' threads exist (they inherit the mask), and read from a
// signalfd by this thread: no work in a signal handler.
guard let signals = try? TerminationSignals() else { fatalError("signalfd: \(String(cString: strerror(errno)))") }
do {
    if let certificatePath, let keyPath {
        configuration.tls = try RelayTLSContext(
            certificatePEM: contents(of: certificatePath),
            privateKeyPEM: contents(of: keyPath),
            virtualHosts: virtualHosts
        )
    }
    let core = try RelayCore(configuration)
    print(
        "wsgate-core: \(configuration.tls == nil ? "ws" : "wss")://\(configuration.listenHost):\(core.port) -> \(configuration.upstreamHost):\(configuration.upstreamPort), \(configuration.loops) loops, batch \(configuration.batchedParsing ? "on" : "off"), key batch \(configuration.maskingKeyBatchBytes) B, buffers \(configuration.bufferSize) B"
    )
    let received = signals.wait()
    print("wsgate-core: signal \(received), draining (deadline \(drainMilliseconds) ms)")
    core.drain(milliseconds: drainMilliseconds)
    core.wait()
    let counters = core.counters()
    print(
        "wsgate-core: drained; accepted \(counters.accepted), forced at the deadline \(counters.drainForced), accept pauses \(counters.acceptPauses), messages \(counters.messagesToUpstream) up / \(counters.messagesToClient) down"
    )
} catch {
    print("wsgate-core: \(error)")
    exit(1)
}
