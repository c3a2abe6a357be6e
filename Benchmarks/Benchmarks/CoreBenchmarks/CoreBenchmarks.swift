// The RelayCore prototype's in-memory framing (issue #15): `RelayFraming` over the loop's buffer pool,
// 1,000 stream-32 messages per sample in 16 KiB reads, so a malloc per message shows without sockets or
// a load run. Thresholds in ../../Thresholds/CoreBenchmarks.*.p90.json (BENCHMARKS.md, "thresh23"):
//   cd Benchmarks && swift package --disable-sandbox benchmark thresholds check --target CoreBenchmarks

import Benchmark
import Frames

let benchmarks: @Sendable () -> Void = {
    // Mallocs are what these benchmarks are for: an absolute slack of 4 per sample (1,000 messages), so
    // one malloc more per 200 messages fails the check (BENCHMARKS.md, "thresh23").
    Benchmark.defaultConfiguration = .init(
        metrics: [.mallocCountTotal, .wallClock, .cpuTotal],
        timeUnits: .microseconds,
        warmupIterations: 20,
        maxDuration: .seconds(2),
        maxIterations: 2_000,
        thresholds: [.mallocCountTotal: .init(absolute: [.p50: 4, .p90: 4])]
    )

    let messages = 1_000
    let fromClient = wire(count: messages, role: .client)
    let fromUpstream = wire(count: messages, role: .server)
    // Batched (the prototype's default) and per event (`batchedParsing` off), in one binary.
    for batching in [true, false] {
        let suffix = batching ? "" : ", per event"
        Benchmark("core framing client→upstream 1000 × 32 B text, 16 KiB reads\(suffix)") { benchmark in
            let relay = CoreRelay(batching: batching)
            // The first pass fills the pool: not measured.
            _ = relay.relayFromClient(fromClient)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(relay.relayFromClient(fromClient))
            }
        }
        Benchmark("core framing upstream→client 1000 × 32 B text, 16 KiB reads\(suffix)") { benchmark in
            let relay = CoreRelay(batching: batching)
            _ = relay.relayFromUpstream(fromUpstream)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(relay.relayFromUpstream(fromUpstream))
            }
        }
    }
}
