import CoreMetrics

/// The one place the gateway records metrics (swift-metrics). Every policy decision, refusal, close and
/// failure goes through here, so the names and dimensions stay consistent and a test can assert each
/// one with `MetricsTestKit.TestMetrics` passed as the factory.
///
/// Names are Prometheus-style (`wsgate_…_total`); dimensions are `(key, value)` pairs with bounded
/// value sets (route names, sides, reasons — never client addresses or free text).
///
/// Counting is for decisions and connection-level events, not per frame: per-message and per-byte
/// figures are accumulated in the connection's record and added once when it ends.
struct GatewayMetrics: Sendable {
    let factory: any MetricsFactory

    init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
    }

    /// Adds `amount` to the counter `name` with `dimensions`.
    func count(_ name: String, _ dimensions: [(String, String)] = [], by amount: Int64 = 1) {
        Counter(label: name, dimensions: dimensions, factory: self.factory).increment(by: amount)
    }

    /// Records one observation in seconds (a histogram in Prometheus).
    func recordSeconds(_ name: String, _ dimensions: [(String, String)] = [], _ seconds: Double) {
        Recorder(label: name, dimensions: dimensions, aggregate: true, factory: self.factory).record(seconds)
    }

    /// Moves the gauge `name` by `delta` (connections open and the like).
    func add(_ name: String, _ dimensions: [(String, String)] = [], _ delta: Double) {
        let meter = Meter(label: name, dimensions: dimensions, factory: self.factory)
        // A meter only moves by non-negative amounts: a negative increment would be dropped.
        if delta < 0 { meter.decrement(by: -delta) } else { meter.increment(by: delta) }
    }
}
