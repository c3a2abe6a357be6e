// Allocation benchmarks of the gateway's relay and upgrade in memory (issue #15): no socket, so a
// regression in mallocs per message or per connection shows without a load run. The relay and the
// upgrade are the gateway's own handlers (`@_spi(Benchmarks)`, Sources/Gateway/Benchmarking) driven
// through `EmbeddedChannel`s (Scenarios.swift). Check (see ../BENCHMARKS.md, "thresh23"):
//   cd Benchmarks && Scripts/thresholds.sh check
//
// Retains per message: GatewayARCBenchmarks (the harness's runtime hooks); per connection they crash Swift
// 6.3.1, so Benchmarks/Scripts/gateway-counts.sh counts them on a live gateway (BENCHMARKS.md, "thresh23").

import Benchmark
import Frames
@_spi(Benchmarks) import Gateway
import NIOCore
import NIOEmbedded

let benchmarks: @Sendable () -> Void = {
    // Mallocs are what these benchmarks are for; the thresholds (Thresholds/, recorded and checked with
    // `--metric mallocCountTotal` alone by Scripts/thresholds.sh) allow an absolute slack of 4 per sample.
    Benchmark.defaultConfiguration = .init(
        metrics: [.mallocCountTotal, .wallClock, .cpuTotal],
        timeUnits: .microseconds,
        warmupIterations: 20,
        maxDuration: .seconds(2),
        maxIterations: 2_000,
        thresholds: [.mallocCountTotal: .init(absolute: [.p50: 4, .p90: 4])]
    )

    // --- Relay: one read of 1,000 stream-32 messages (per message = per sample / 1,000). -------------
    let messages = 1_000
    let fromClient = frames(count: messages, role: .client)
    let fromUpstream = frames(count: messages, role: .server)
    // Each also without the read loop's batches ("per event"): the same binary's "before" (issue #15).
    for batching in [true, false] {
        let suffix = batching ? "" : ", per event"
        Benchmark("relay client→upstream 1000 × 32 B text, one read\(suffix)") { benchmark in
            let relay = try InMemoryRelay(batching: batching)
            // The first read grows the relay's output buffer: not measured.
            _ = try relay.relay(fromClient, from: relay.client, to: relay.upstream)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(try relay.relay(fromClient, from: relay.client, to: relay.upstream))
            }
        }
        Benchmark("relay upstream→client 1000 × 32 B text, one read\(suffix)") { benchmark in
            let relay = try InMemoryRelay(batching: batching)
            _ = try relay.relay(fromUpstream, from: relay.upstream, to: relay.client)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(try relay.relay(fromUpstream, from: relay.upstream, to: relay.client))
            }
        }
    }

    // rng15: the keys straight from the kernel (4 KiB per `getrandom(2)`), the same binary's "before".
    Benchmark("relay client→upstream 1000 × 32 B text, one read, kernel keys") { benchmark in
        let relay = try InMemoryRelay(kernelKeys: true)
        _ = try relay.relay(fromClient, from: relay.client, to: relay.upstream)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try relay.relay(fromClient, from: relay.client, to: relay.upstream))
        }
    }

    // --- Upgrade: one whole connection in memory (per connection = per sample). ----------------------
    var configuration = GatewayConfiguration(
        listeners: [.init(name: "bench", host: "127.0.0.1", port: 0)],
        routes: [.init(hosts: ["gw.example"], pathPrefix: "/chat", upstreams: [.init(scheme: .ws, host: "127.0.0.1", port: 9001)])],
        accessLog: .off
    )
    configuration.admin = .off
    let environment = try! BenchmarkSupport.Environment(configuration)
    let loop = EmbeddedEventLoop()
    Benchmark("connection: upgrade, one message each way, close (in memory)") { benchmark in
        _ = try InMemoryConnection.run(environment, loop: loop)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try InMemoryConnection.run(environment, loop: loop))
        }
    }
}
