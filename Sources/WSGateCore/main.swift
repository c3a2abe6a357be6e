// wsgate-core: the epoll data-plane prototype of issue #15 part 2, for the load harness only.
//   wsgate-core --listen 127.0.0.1:18905 --upstream 127.0.0.1:18900 [--loops 2]
// Plain ws:// only; limits as the bench config of wsgate (16 MiB frames and messages, 100,000 fragments).
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

var configuration = RelayCoreConfiguration()
configuration.listenPort = 18905
configuration.loops = 2
configuration.frameLimits.maxFrameSize = 16 << 20
configuration.frameLimits.maxMessageSize = 16 << 20
configuration.frameLimits.maxFragmentsPerMessage = 100_000
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
    default:
        fatalError("usage: wsgate-core --listen HOST:PORT --upstream HOST:PORT [--loops N]")
    }
}
// Two descriptors per connection: take the hard limit (the bench's idle-10k needs 20,000).
var limit = rlimit()
if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 {
    limit.rlim_cur = limit.rlim_max
    setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
}
signal(SIGPIPE, SIG_IGN)
do {
    let core = try RelayCore(configuration)
    print(
        "wsgate-core: ws://\(configuration.listenHost):\(core.port) -> \(configuration.upstreamHost):\(configuration.upstreamPort), \(configuration.loops) loops"
    )
    core.wait()
} catch {
    print("wsgate-core: \(error)")
    exit(1)
}
