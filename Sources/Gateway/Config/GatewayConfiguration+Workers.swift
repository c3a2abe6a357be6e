import NIOCore

/// `workers` (issue #15): how many event loops (threads) carry connections, like nginx's
/// `worker_processes` and HAProxy's `nbthread`. Each accepted connection lives on one loop, client and
/// upstream channel alike, for its whole life. Fewer loops than cores trade throughput for tail latency:
/// on a small machine one loop avoids the hand-offs between loops that show in rr-32's p99 (BENCHMARKS.md).
///
/// ```yaml
/// workers: 2        # default: the number of cores
/// ```
extension GatewayConfiguration {
    /// The most event loops a configuration may ask for.
    public static let workersRange = 1...256

    /// The event-loop count `workers` asks for, or the number of cores when it is not set.
    public var eventLoopCount: Int {
        // NIO's count honours the cgroup CPU quota and the cpuset (a container's share), as before `workers`.
        self.workers ?? System.coreCount
    }

    /// `workers: N`, 1–256.
    static let workersKey = YAMLSchema<GatewayConfiguration>.Key.optional("workers") { value, field, _ throws(ConfigurationError) in
        value.workers = try field.count(in: GatewayConfiguration.workersRange)
    }
}
