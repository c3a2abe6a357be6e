// Retains and releases per message and per connection, in memory (issue #15): the scenarios of
// GatewayBenchmarks and CoreBenchmarks (the other .swift files here are symbolic links to theirs) with
// the harness's ARC counters: without the "RuntimeInterposer" trait (its package is not on this machine)
// they are the Swift runtime's own retain/release hooks, which Swift 6.3 on Linux crashes on for some
// values (fixed in 6.4), so they get a target of their own: a crash must not take the malloc thresholds of
// the other targets with it. Thresholds in ../../Thresholds/GatewayARCBenchmarks.*.p90.json:
//   cd Benchmarks && Scripts/thresholds.sh check     (BENCHMARKS.md, "thresh23")

import Benchmark
import Frames

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: BenchmarkMetric.arc + [.mallocCountTotal],
        warmupIterations: 20,
        maxDuration: .seconds(2),
        maxIterations: 1_000,
        thresholds: [
            .retainCount: .init(absolute: [.p50: 4, .p90: 4]),
            .releaseCount: .init(absolute: [.p50: 4, .p90: 4]),
            .objectAllocCount: .init(absolute: [.p50: 4, .p90: 4]),
            .mallocCountTotal: .init(absolute: [.p50: 4, .p90: 4]),
        ]
    )

    let messages = 1_000
    let fromClient = frames(count: messages, role: .client)
    let fromUpstream = frames(count: messages, role: .server)
    Benchmark("arc relay client→upstream 1000 × 32 B text, one read") { benchmark in
        let relay = try InMemoryRelay()
        _ = try relay.relay(fromClient, from: relay.client, to: relay.upstream)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try relay.relay(fromClient, from: relay.client, to: relay.upstream))
        }
    }
    Benchmark("arc relay upstream→client 1000 × 32 B text, one read") { benchmark in
        let relay = try InMemoryRelay()
        _ = try relay.relay(fromUpstream, from: relay.upstream, to: relay.client)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try relay.relay(fromUpstream, from: relay.upstream, to: relay.client))
        }
    }

    // No "per connection" here: under these counters Swift 6.3.1's runtime crashes (SIGSEGV in
    // `__swift_retain_` from `_swift_retain_adapterImpl`, a String's bits taken for an object pointer) at the
    // first connection, in `IPAddress.init` from `ClientConnectionHandler.init` (BENCHMARKS.md, "thresh23").
    // Retains per connection: Benchmarks/Scripts/gateway-counts.sh BINARY LABEL connect (uprobes, live).

    let coreFromClient = wire(count: messages, role: .client)
    let coreFromUpstream = wire(count: messages, role: .server)
    Benchmark("arc core framing client→upstream 1000 × 32 B text, 16 KiB reads") { benchmark in
        let relay = CoreRelay()
        _ = relay.relayFromClient(coreFromClient)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(relay.relayFromClient(coreFromClient))
        }
    }
    Benchmark("arc core framing upstream→client 1000 × 32 B text, 16 KiB reads") { benchmark in
        let relay = CoreRelay()
        _ = relay.relayFromUpstream(coreFromUpstream)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(relay.relayFromUpstream(coreFromUpstream))
        }
    }
}
